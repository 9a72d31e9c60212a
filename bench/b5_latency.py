"""B5 — end-to-end latency in the local stack.

Events are published over HTTP to `hookline local` (API Gateway emulation → authorizer →
ApiFunction → local tables) at a steady rate; the stream poller hands them to DispatchFunction,
which delivers them to loopback receivers. Measured: publish (the moment the POST is sent) →
receipt at the receiver, p50/p99 over every delivery, and whether anything was lost (every
event reaches every webhook exactly once within the grace period after publishing ends).

Two phases on one stack: a light one (``light_rate``, to show the latency when the stack is not
saturated), then the target's steady ``rate`` for ``seconds``.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench import harness
from bench.localstack import StackClient, delivery_state, local_stack, payload
from bench.receiver import ReceiverFarm

TARGET_P99_MS = 1000.0


def _phase(
    farm: ReceiverFarm,
    client: StackClient,
    *,
    rate: float,
    seconds: float,
    webhooks: int,
    publishers: int,
    grace: float,
) -> dict[str, Any]:
    count = max(1, int(rate * seconds))
    datas = [payload(client, index) for index in range(count)]
    published: dict[str, float] = {}
    errors: list[str] = []
    skipped: list[int] = []
    lock = threading.Lock()
    farm.clear()
    start = time.monotonic() + 0.1
    cutoff = start + 2 * seconds  # a stack that cannot keep up is not waited for forever

    def send(index: int) -> None:
        delay = start + index / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        at = time.monotonic()
        if at > cutoff:
            with lock:
                skipped.append(index)
            return
        try:
            event_id = client.publish(datas[index])
        except Exception as exc:
            with lock:
                errors.append(str(exc)[:200])
            return
        with lock:
            published[event_id] = at

    with ThreadPoolExecutor(max_workers=publishers) as pool:
        list(pool.map(send, range(count)))
    publish_end = time.monotonic()
    expected = len(published) * webhooks
    deadline = time.monotonic() + grace
    farm.wait_for(expected, timeout=grace, poll=0.05)
    while True:
        # The count can include a late delivery of an earlier phase: wait for these very events.
        records = farm.records()
        seen = Counter((index, event_id) for _, index, event_id in records if event_id in published)
        if len(seen) >= expected or time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    drained = time.monotonic()
    # Diagnose what did not arrive: did the dispatcher make a delivery, and in what state?
    arrived = {event_id for _, event_id in seen}
    missing = [event_id for event_id in published if event_id not in arrived]
    diagnosis = Counter(delivery_state(client, event_id) for event_id in missing[:50])
    latencies = [
        (at - published[event_id]) * 1000 for at, _, event_id in records if event_id in published
    ]
    result: dict[str, Any] = {
        "rate_per_s": rate,
        "seconds": seconds,
        "events": count,
        "published": len(published),
        "not_offered": len(skipped),
        "publish_errors": len(errors),
        "publish_error_samples": errors[:3],
        "achieved_publish_rate": len(published) / max(publish_end - start, 1e-9),
        "expected_deliveries": expected,
        "received": len(seen),
        "lost": max(0, expected - len(seen)),
        "duplicates": sum(n - 1 for n in seen.values() if n > 1),
        "p50_ms": harness.percentile(latencies, 50),
        "p99_ms": harness.percentile(latencies, 99),
        "max_ms": max(latencies) if latencies else float("nan"),
        "drain_after_publish_s": drained - publish_end,
        "missing_sample_states": dict(diagnosis),
        "dead_letter_batches": len(client.stack.dead_letters),
        "dispatch_invocations": getattr(client.stack.dispatcher, "invocations", None),
    }
    result["met"] = bool(
        result["p99_ms"] < TARGET_P99_MS and result["lost"] == 0 and not errors and not skipped
    )
    return result


def run(
    *,
    rate: float = 50.0,
    seconds: float = 30.0,
    light_rate: float = 5.0,
    light_seconds: float = 10.0,
    webhooks: int = 1,
    publishers: int = 16,
    grace: float = 120.0,
    stack: tuple[ReceiverFarm, StackClient] | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Both phases; ``stack`` is an already started (receivers, stack client) pair to reuse."""
    log(
        f"B5: local stack, {light_rate:g} events/s for {light_seconds:g} s, then {rate:g} "
        f"events/s for {seconds:g} s, to {webhooks} webhook(s)"
    )
    with contextlib.ExitStack() as resources:
        if stack is None:
            farm = resources.enter_context(ReceiverFarm(webhooks))
            client = resources.enter_context(local_stack(farm.urls[:webhooks]))
        else:
            farm, client = stack
        before = farm.count()
        client.publish(payload(client, 0))  # warm-up: first invocation of each handler
        farm.wait_for(before + webhooks, timeout=30)
        light = _phase(
            farm,
            client,
            rate=light_rate,
            seconds=light_seconds,
            webhooks=webhooks,
            publishers=publishers,
            grace=grace,
        )
        main = _phase(
            farm,
            client,
            rate=rate,
            seconds=seconds,
            webhooks=webhooks,
            publishers=publishers,
            grace=grace,
        )
    return {
        "name": "B5 end-to-end latency (local stack)",
        "machine": harness.machine(),
        "workload": {
            "rate_per_s": rate,
            "seconds": seconds,
            "events": main["events"],
            "light_rate_per_s": light_rate,
            "light_seconds": light_seconds,
            "webhooks": webhooks,
            "publishers": publishers,
            "grace_s": grace,
        },
        **{k: v for k, v in main.items() if k not in ("rate_per_s", "seconds")},
        "light": light,
        "target": f"p99 < {TARGET_P99_MS:g} ms and nothing lost",
    }
