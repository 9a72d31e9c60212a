"""B1 — delivery throughput.

1,000 events x 5 webhooks (1 KB payloads) = 5,000 signed deliveries to five loopback receivers
through the real dispatcher (``dispatch_events``: fan-out, delivery records, signing, the real
HTTP attempt, attempt records), in stream-sized batches of 100 events, with the storage port in
memory — against a bare baseline: the same 5,000 POSTs (same URLs, bytes and headers, signed
beforehand) from a plain ``requests`` thread pool of the same size (settings.dispatch_concurrency).
Rounds alternate engine and baseline. The receivers' own capacity (bare raw-socket client) is
measured in the same run so it is clear they are not the bottleneck.

A second, unrated run goes through the full local stack (API → local tables → stream poller →
DispatchFunction) — see ``local_stack_run``.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests

from bench import harness
from bench.receiver import ReceiverFarm, blast
from hookline import clock
from hookline.domain.delivery import build_request, delivery_id_for
from hookline.domain.dispatch import dispatch_events

TARGET_RATIO = 0.9
STREAM_BATCH = 100  # DispatchBatchSize's default in template.yaml


def _engine_run(
    farm: ReceiverFarm,
    events: int,
    webhooks: int,
    concurrency: int,
    profiles: list[Any] | None = None,
) -> dict[str, Any]:
    eng = harness.engine(concurrency=concurrency)
    hooks = harness.add_webhooks(eng, farm.urls[:webhooks])
    batch = harness.publish_events(eng, events)
    expected = events * webhooks
    farm.clear()
    delivered = failed = 0
    profiling = (
        harness.profile_threads(profiles) if profiles is not None else contextlib.nullcontext()
    )
    with harness.quiet(), profiling:
        cpu = time.process_time()
        started = time.perf_counter()
        for chunk in harness.chunks(batch, STREAM_BATCH):
            report = dispatch_events(eng.ctx, chunk)
            delivered += report.delivered
            failed += report.failed + len(report.failed_event_ids)
        seconds = time.perf_counter() - started
        cpu = time.process_time() - cpu
    received = farm.wait_for(expected, timeout=10)
    checked, valid = verify_samples(farm, [hook.secret or "" for hook in hooks])
    return {
        "seconds": seconds,
        "rate": expected / seconds,
        "delivered": delivered,
        "failed": failed,
        "received": received,
        "cpu_seconds": cpu,
        "signatures_checked": checked,
        "signatures_valid": valid,
    }


def profile_engine(
    farm: ReceiverFarm, events: int, webhooks: int, concurrency: int
) -> dict[str, Any]:
    """One more engine run under cProfile (per-thread CPU time): where the engine's CPU goes."""
    from bench import report

    profiles: list[Any] = []
    _engine_run(farm, events, webhooks, concurrency, profiles)
    rows = harness.top_functions(profiles, limit=100_000)
    return {"top": rows[:40], "groups": report.group_profile(rows)}


def _signed_requests(
    farm: ReceiverFarm, events: int, webhooks: int
) -> list[tuple[str, bytes, dict[str, str]]]:
    """The exact POSTs the engine makes (URL, body, headers), built and signed up front."""
    eng = harness.engine()
    hooks = harness.add_webhooks(eng, farm.urls[:webhooks])
    batch = harness.publish_events(eng, events)
    now = clock.now()
    out = []
    for event in batch:
        for hook in hooks:
            delivery_id = delivery_id_for(event, hook.id)
            body, headers = build_request(hook, event, delivery_id=delivery_id, attempt=1, now=now)
            out.append((hook.url, body, headers))
    return out


class BareSender:
    """The baseline: a plain ``requests`` thread pool, one Session per thread (keep-alive), kept
    across runs like the engine's connection pools."""

    def __init__(self, concurrency: int) -> None:
        self.pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="bare")
        self.local = threading.local()

    def send(self, post: tuple[str, bytes, dict[str, str]]) -> bool:
        session = getattr(self.local, "session", None)
        if session is None:
            session = self.local.session = requests.Session()
        url, body, headers = post
        response = session.post(url, data=body, headers=headers, timeout=10)
        response.content  # noqa: B018 - read the answer, as the engine does
        return 200 <= response.status_code < 300

    def close(self) -> None:
        self.pool.shutdown()


def _baseline_run(
    farm: ReceiverFarm, posts: list[tuple[str, bytes, dict[str, str]]], sender: BareSender
) -> dict[str, Any]:
    farm.clear()
    cpu = time.process_time()
    started = time.perf_counter()
    ok = sum(sender.pool.map(sender.send, posts))
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu
    received = farm.wait_for(len(posts), timeout=10)
    return {
        "seconds": seconds,
        "rate": len(posts) / seconds,
        "delivered": ok,
        "failed": len(posts) - ok,
        "received": received,
        "cpu_seconds": cpu,
    }


def verify_samples(farm: ReceiverFarm, secrets: list[str]) -> tuple[int, int]:
    """Check the first requests each receiver got with the public standardwebhooks library
    (webhook i's secret for receiver i). Returns (checked, valid)."""
    from standardwebhooks import Webhook as StandardWebhook
    from standardwebhooks.webhooks import WebhookVerificationError

    checked = valid = 0
    for index, secret in enumerate(secrets):
        verifier = StandardWebhook(secret)
        for headers, body in farm.samples(index):
            checked += 1
            try:
                verifier.verify(body, {k.lower(): v for k, v in headers.items()})
            except WebhookVerificationError:
                continue
            valid += 1
    return checked, valid


def receiver_capacity(
    rounds: int,
    requests_per_round: int,
    kinds: tuple[str, ...] = ("bench", "tests"),
    receiver_counts: tuple[int, ...] = (5, 1),
) -> dict[str, Any]:
    """Requests/s each receiver implementation (bench/receiver.py's BenchServer, and
    tests/receivers.py's Receiver) serves to the bare raw-socket client (32 keep-alive
    connections, 1 KB bodies), over five receivers as in B1 and over a single one."""
    out: dict[str, Any] = {}
    for kind in kinds:
        for receivers in receiver_counts:
            with ReceiverFarm(receivers, kind=kind) as farm:
                blast(farm.ports, 300)
                rates = []
                for _ in range(rounds):
                    farm.clear()
                    result = blast(farm.ports, requests_per_round, connections=32)
                    rates.append(result.rate)
                out[f"{kind}_{receivers}"] = harness.summary(rates)
    return out


def run(
    *,
    events: int = 1000,
    webhooks: int = 5,
    rounds: int = 3,
    concurrency: int | None = None,
    capacity_requests: int = 10000,
    capacity_rounds: int = 3,
    capacity_kinds: tuple[str, ...] = ("bench", "tests"),
    capacity_receivers: tuple[int, ...] = (5, 1),
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    from hookline.config import Settings

    concurrency = concurrency or Settings().dispatch_concurrency
    result: dict[str, Any] = {
        "name": "B1 delivery throughput",
        "machine": harness.machine(),
        "workload": {
            "events": events,
            "webhooks": webhooks,
            "deliveries": events * webhooks,
            "payload_bytes": harness.PAYLOAD_BYTES,
            "concurrency": concurrency,
            "stream_batch": STREAM_BATCH,
            "rounds": rounds,
        },
    }
    log("B1: receiver capacity (bare client)")
    result["receiver_capacity"] = receiver_capacity(
        capacity_rounds, capacity_requests, capacity_kinds, capacity_receivers
    )
    sender = BareSender(concurrency)
    with ReceiverFarm(webhooks) as farm, contextlib.closing(sender):
        posts = _signed_requests(farm, events, webhooks)
        # Warm-up (not reported): imports, first connections, allocator.
        _engine_run(farm, min(events, 100), webhooks, concurrency)
        _baseline_run(farm, posts[: min(len(posts), 500)], sender)
        log("B1: engine (in-memory storage) vs bare requests pool")
        runs = harness.interleave(
            rounds,
            {
                "engine": lambda: _engine_run(farm, events, webhooks, concurrency),
                "baseline": lambda: _baseline_run(farm, posts, sender),
            },
            log=lambda line: log(line[:160]),
        )
        log("B1: profiling one engine run")
        result["profile"] = profile_engine(farm, min(events, 200), webhooks, concurrency)
    engine_rates = [r["rate"] for r in runs["engine"]]
    baseline_rates = [r["rate"] for r in runs["baseline"]]
    ratios = [e / b for e, b in zip(engine_rates, baseline_rates, strict=True)]
    result["engine"] = harness.summary(engine_rates)
    result["baseline"] = harness.summary(baseline_rates)
    result["ratio"] = harness.summary(ratios)
    result["engine_cpu_ms_per_delivery"] = harness.summary(
        [r["cpu_seconds"] * 1000 / (events * webhooks) for r in runs["engine"]]
    )
    result["baseline_cpu_ms_per_delivery"] = harness.summary(
        [r["cpu_seconds"] * 1000 / (events * webhooks) for r in runs["baseline"]]
    )
    result["lost"] = sum(
        max(0, events * webhooks - r["received"]) for r in runs["engine"] + runs["baseline"]
    )
    result["failed"] = sum(r["failed"] for r in runs["engine"] + runs["baseline"])
    result["signatures_checked"] = sum(r["signatures_checked"] for r in runs["engine"])
    result["signatures_valid"] = sum(r["signatures_valid"] for r in runs["engine"])
    result["target"] = f"engine >= {TARGET_RATIO} x baseline"
    result["met"] = bool(result["ratio"]["median"] >= TARGET_RATIO)
    result["runs"] = runs
    return result


def local_stack_run(
    *,
    events: int = 1000,
    webhooks: int = 5,
    publishers: int = 8,
    timeout: float = 600.0,
    stack: tuple[ReceiverFarm, Any] | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """B1's workload (``events`` x ``webhooks``) through the full local stack: events published
    over HTTP by ``publishers`` threads as fast as the stack takes them, delivered by the stream
    poller, DispatchFunction, the delivery queue and DeliverFunction. Timed from the first
    publish to the last receipt. ``stack`` is an already started (receivers, stack client) pair
    to reuse, with one webhook per receiver."""
    from bench.localstack import local_stack, payload

    log(f"B1: full local stack, {events} events x {webhooks} webhooks")
    with contextlib.ExitStack() as resources:
        if stack is None:
            farm = resources.enter_context(ReceiverFarm(webhooks))
            client = resources.enter_context(local_stack(farm.urls[:webhooks]))
        else:
            farm, client = stack
        datas = [payload(client, index) for index in range(events)]
        farm.clear()
        cpu = time.process_time()
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=publishers) as pool:
            list(pool.map(client.publish, datas))
        published = time.monotonic()
        expected = events * webhooks
        received = farm.wait_for(expected, timeout=timeout, poll=0.05)
        records = farm.records(event_ids=False)
        cpu = time.process_time() - cpu
    last = max((at for at, _, _ in records), default=published)
    seconds = last - started
    return {
        "events": events,
        "webhooks": webhooks,
        "deliveries": expected,
        "received": received,
        "lost": max(0, expected - received),
        "publish_seconds": published - started,
        "seconds": seconds,
        "rate": received / seconds if seconds > 0 else 0.0,
        "cpu_ms_per_delivery": cpu * 1000 / max(received, 1),
    }


def profile_local_stack(*, events: int = 60, webhooks: int = 1) -> dict[str, Any]:
    """Where the local stack's CPU goes: a fresh stack started under the per-thread profiler
    (so its server, poller and dispatch threads are all profiled), the start-up cost cleared,
    then ``events`` events published and delivered."""
    from bench import report
    from bench.localstack import local_stack, payload

    profiles: list[Any] = []
    with (
        ReceiverFarm(webhooks) as farm,
        harness.profile_threads(profiles),
        local_stack(farm.urls[:webhooks]) as client,
    ):
        datas = [payload(client, index) for index in range(events)]
        for profiler in list(profiles):
            profiler.clear()
        for data in datas:
            client.publish(data)
        farm.wait_for(events * webhooks, timeout=120, poll=0.05)
    rows = harness.top_functions(profiles, limit=100_000)
    entry_points = sorted(
        (row for row in rows if "hookline_dev/local/" in row["function"]),
        key=lambda row: row["cumulative_s"],
        reverse=True,
    )
    return {
        "events": events,
        "top": rows[:40],
        "groups": report.group_profile(rows),
        "entry_points": entry_points[:8],
    }
