"""B3 — fan-out scaling.

Time per event through ``dispatch_events`` (in-memory storage, real signing and HTTP to loopback
receivers) as the community's webhook count grows with 3 of them subscribed (10, 100, 1,000
webhooks: the unsubscribed ones should cost next to nothing), and as the subscribed count grows
(1, 10, 100: linear, the slope being the cost of one more delivery). Events go in batches of 10.
The dispatcher's subscription index is warm, as in a running Lambda instance: per batch it reads
the community's subscription version, and rebuilds the index only when a webhook changed.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from typing import Any

from bench import harness
from bench.receiver import ReceiverFarm
from hookline.domain import subscriptions
from hookline.domain.dispatch import dispatch_events

RECEIVERS = 10
BATCH = 10


def _point(farm: ReceiverFarm, *, total: int, subscribed: int, events: int) -> dict[str, Any]:
    eng = harness.engine()
    urls = [farm.url(i % RECEIVERS) for i in range(subscribed)]
    harness.add_webhooks(eng, urls, events=("post.*",))
    # The others listen to member events only: matched against, never delivered to.
    harness.add_webhooks(eng, [farm.url(0)] * (total - subscribed), events=("member.*",))
    batch = harness.publish_events(eng, events)
    subscriptions.cache.index(eng.ctx.webhooks, eng.community.id)  # a warm instance
    farm.clear()
    with harness.quiet():
        started = time.perf_counter()
        delivered = 0
        for chunk in harness.chunks(batch, BATCH):
            delivered += dispatch_events(eng.ctx, chunk).delivered
        seconds = time.perf_counter() - started
    received = farm.wait_for(events * subscribed, timeout=10)
    return {
        "ms_per_event": seconds * 1000 / events,
        "delivered": delivered,
        "received": received,
        "expected": events * subscribed,
    }


def _lookups(totals: Sequence[int], repeats: int) -> dict[str, Any]:
    """The once-per-batch webhook lookup alone (``WebhookRepository.all``), ms, and the part of
    it that is turning the items into pydantic Webhook models (the rest is the in-memory
    adapter copying items; on DynamoDB it would be the Query and boto3's deserialisation)."""
    from hookline.domain.models import Webhook
    from hookline.domain.repositories import record_fields

    out = {}
    for total in totals:
        eng = harness.engine()
        harness.add_webhooks(eng, ["http://127.0.0.1:9/unused"] * total, events=("member.*",))
        items = [i for i in eng.tables.webhooks.scan_all() if str(i["sk"]).startswith("W#")]
        lookups, validations = [], []
        for _ in range(max(repeats, 3)):
            started = time.perf_counter()
            eng.ctx.webhooks.all(eng.community.id)
            lookups.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            for item in items:
                Webhook.model_validate(record_fields(item))
            validations.append((time.perf_counter() - started) * 1000)
        out[f"{total:,}"] = {
            "lookup_ms": harness.summary(lookups),
            "validation_ms": harness.summary(validations),
        }
    return out


def _slope(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float]:
    """Least-squares line y = a + b x; returns (a, b)."""
    n = len(xs)
    mean_x, mean_y = sum(xs) / n, sum(ys) / n
    var = sum((x - mean_x) ** 2 for x in xs)
    b = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / var if var else 0.0
    return mean_y - b * mean_x, b


def run(
    *,
    totals: Sequence[int] = (10, 100, 1000),
    subscribed_counts: Sequence[int] = (1, 10, 100),
    events: int = 20,
    rounds: int = 3,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "name": "B3 fan-out scaling",
        "machine": harness.machine(),
        "workload": {
            "events_per_point": events,
            "batch": BATCH,
            "totals_with_3_subscribed": list(totals),
            "subscribed": list(subscribed_counts),
            "rounds": rounds,
        },
    }
    with ReceiverFarm(RECEIVERS) as farm:
        _point(farm, total=3, subscribed=3, events=5)  # warm-up
        variants: dict[str, Callable[[], dict[str, Any]]] = {}
        for total in totals:
            variants[f"total={total}"] = functools.partial(
                _point, farm, total=total, subscribed=3, events=events
            )
        for count in subscribed_counts:
            variants[f"subscribed={count}"] = functools.partial(
                _point, farm, total=count, subscribed=count, events=events
            )
        log("B3: per-event time vs webhooks (3 subscribed) and vs subscribed")
        runs = harness.interleave(rounds, variants, log=lambda line: log(line[:150]))
    result["lookup"] = _lookups(totals, rounds)
    points = {
        name: harness.summary([r["ms_per_event"] for r in rows]) for name, rows in runs.items()
    }
    result["points"] = points
    result["lost"] = sum(r["expected"] - r["received"] for rows in runs.values() for r in rows)
    by_total = [points[f"total={t}"]["median"] for t in totals]
    by_sub = [points[f"subscribed={c}"]["median"] for c in subscribed_counts]
    intercept, slope = _slope([float(c) for c in subscribed_counts], by_sub)
    result["subscribed_fit"] = {"intercept_ms": intercept, "ms_per_subscribed_webhook": slope}
    total_intercept, total_slope = _slope([float(t) for t in totals], by_total)
    result["total_fit"] = {
        "intercept_ms": total_intercept,
        "ms_per_unsubscribed_webhook": total_slope,
    }
    result["flatness"] = by_total[-1] / by_total[0] if by_total[0] else None
    result["runs"] = runs
    return result


def plot(result: dict[str, Any], path: str) -> None:
    """Two panels: per-event time vs total webhooks, and vs subscribed webhooks."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    totals = result["workload"]["totals_with_3_subscribed"]
    subs = result["workload"]["subscribed"]
    points = result["points"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for axis, xs, key, title in (
        (left, totals, "total", "3 subscribed, total webhooks grows"),
        (right, subs, "subscribed", "subscribed webhooks grows"),
    ):
        med = [points[f"{key}={x}"]["median"] for x in xs]
        low = [points[f"{key}={x}"]["median"] - points[f"{key}={x}"]["min"] for x in xs]
        high = [points[f"{key}={x}"]["max"] - points[f"{key}={x}"]["median"] for x in xs]
        axis.errorbar(xs, med, yerr=[low, high], marker="o", capsize=4, label="measured")
        if key == "total":
            axis.set_xscale("log")
        axis.set_xlabel(f"{key} webhooks")
        axis.set_ylabel("ms per event (median, min-max)")
        axis.set_title(title)
        axis.grid(True, alpha=0.3)
        axis.set_ylim(bottom=0)
    fit = result["subscribed_fit"]
    right.plot(
        [0, max(subs)],
        [fit["intercept_ms"], fit["intercept_ms"] + fit["ms_per_subscribed_webhook"] * max(subs)],
        linestyle="--",
        label="least-squares line",
    )
    right.legend(loc="lower right")
    right.text(
        0.05,
        0.9,
        f"slope {fit['ms_per_subscribed_webhook']:.2f} ms / subscribed webhook",
        transform=right.transAxes,
    )
    fig.suptitle(f"B3 fan-out scaling — {harness.machine_line(result['machine'])}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
