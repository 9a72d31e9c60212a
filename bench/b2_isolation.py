"""B2 — slow-endpoint isolation.

20 endpoints; in the "with slow" variants endpoint 20, a webhook of *another* community, holds
every request past the delivery timeout (production's 10 s), in the "without" variants it is
absent. Both communities publish at the same rate. Measured: publish → receipt latency of the
deliveries to the 19 healthy endpoints, p50/p99.

* engine, stream: events are published at a steady rate and handed to the dispatcher
  (``queue_events``) the way Lambda's event source mapping does it — one batch at a time per
  shard, each batch being whatever arrived while the previous invocation ran (capped at 100).
  The delivery queue is consumed as Lambda's SQS event source does: concurrent DeliverFunction
  invocations (``CONSUMERS`` of them) taking batches of up to 10 orders.
* engine, burst: all events in one batch, delivered in process (``dispatch_events``).
* local stack: issue 11's check as a new user would make it, through `hookline local` over HTTP
  with the production timeout: one community's ``LOCAL_HEALTHY`` healthy webhooks, the other
  community's hung one (or none), both communities publishing at the same rate; a fresh stack
  per run, so deferred orders of the hung endpoint do not spill into the next run.
* sequential: what CMS plugins do inline or from cron — one worker, one event after another,
  POSTing to the endpoints in order with ``requests`` (the slow endpoint is 10th of 20).
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import requests

from bench import harness
from bench.receiver import ReceiverFarm
from hookline import clock
from hookline.domain.communities import create_community
from hookline.domain.delivery import DeliveryContext, build_request, delivery_id_for
from hookline.domain.dispatch import DeliveryOrder, deliver_orders, dispatch_events, queue_events
from hookline.domain.models import Event, Webhook
from hookline.domain.publishing import publish
from hookline.domain.repositories import CommunityRepository, WebhookRepository
from hookline.domain.webhooks import create_webhook

ENDPOINTS = 20
SLOW = ENDPOINTS - 1  # receiver index of the slow endpoint
SEQUENTIAL_SLOW_POSITION = 9  # 0-based position of the slow endpoint in the plugin's loop
TARGET_RATIO = 1.2
STREAM_BATCH = 100
#: Concurrent DeliverFunction invocations (the template allows 50; fewer on this machine).
CONSUMERS = 16
#: SQS batch size of DeliverFunction's event source.
QUEUE_BATCH = 10
#: Healthy webhooks in the local-stack variants (fewer than the engine's 19: every delivery
#: there goes through the API, the tables, the stream and the queue in this one process).
LOCAL_HEALTHY = 5


class ConsumerPool:
    """The delivery queue and Lambda's SQS event source: ``send`` queues the orders and returns;
    ``CONSUMERS`` threads, each one DeliverFunction invocation at a time, take up to
    ``QUEUE_BATCH`` orders and deliver them."""

    def __init__(self) -> None:
        self.ctx: DeliveryContext | None = None
        self._inbox: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(CONSUMERS)]
        for thread in self._threads:
            thread.start()

    def send(self, messages: Any, *, delay_seconds: int = 0) -> list[int]:
        for message in messages:
            if delay_seconds:  # a delayed message (a deferred order) arrives later
                timer = threading.Timer(delay_seconds, self._inbox.put, (dict(message),))
                timer.daemon = True
                timer.start()
            else:
                self._inbox.put(dict(message))
        return []

    def _run(self) -> None:
        while True:
            first = self._inbox.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < QUEUE_BATCH:
                try:
                    more = self._inbox.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._inbox.put(None)
                    break
                batch.append(more)
            assert self.ctx is not None
            results = deliver_orders(self.ctx, [DeliveryOrder.from_message(m) for m in batch])
            # As SQS does with the partial batch response: an unfinished order comes back.
            for message, result in zip(batch, results, strict=True):
                if isinstance(result, BaseException):
                    self._inbox.put(message)

    def close(self) -> None:
        for _ in self._threads:
            self._inbox.put(None)


def _publisher(
    eng: harness.Engine, count: int, rate: float, sink: queue.Queue[tuple[float, Event]]
) -> threading.Thread:
    """Publish ``count`` events at ``rate``/s on a thread; each goes to ``sink`` with its time."""
    events = harness.publish_events(eng, count)  # stored up front; "published" when queued

    def run() -> None:
        start = time.monotonic()
        for index, event in enumerate(events):
            delay = start + index / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            sink.put((time.monotonic(), event))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _wait_for_healthy(farm: ReceiverFarm, count: int, *, timeout: float) -> int:
    """Wait until the healthy receivers (indices below SLOW) got ``count`` requests: the hung
    receiver is in the same farm, and its requests must not end the wait early."""
    end = time.monotonic() + timeout
    while True:
        seen = sum(1 for _, index, _ in farm.records() if index < SLOW)
        if seen >= count or time.monotonic() >= end:
            return seen
        time.sleep(0.01)


def _latencies(farm: ReceiverFarm, published: dict[str, float], healthy: int) -> list[float]:
    return [
        (at - published[event_id]) * 1000
        for at, index, event_id in farm.records()
        if index < healthy and event_id in published
    ]


def _engine(
    farm: ReceiverFarm, *, slow: bool, events: int, rate: float, timeout: float, burst: bool
) -> dict[str, Any]:
    pool = ConsumerPool()
    eng = harness.engine(timeout=timeout, queue=pool)
    pool.ctx = eng.ctx
    harness.add_webhooks(eng, farm.urls[:SLOW])
    other, _, _ = create_community(
        CommunityRepository(eng.tables.communities), name="Other", site_url="https://o.example"
    )
    if slow:
        create_webhook(
            WebhookRepository(eng.tables.webhooks),
            other.id,
            {"name": "hung", "url": farm.url(SLOW), "events": ["post.*"]},
            allow_private=True,
        )
    farm.clear()
    published: dict[str, float] = {}
    batches = 0
    started = time.monotonic()
    with harness.quiet():
        if burst:
            batch = harness.publish_events(eng, events)
            batch += [_publish_other(eng, other, i) for i in range(events)]
            now = time.monotonic()
            published = {event.id: now for event in batch}
            dispatch_events(eng.ctx, batch)
            batches = 1
        else:
            inbox: queue.Queue[tuple[float, Event]] = queue.Queue()
            publisher = _publisher(eng, events, rate, inbox)
            seen = 0
            while seen < events:
                pending = [inbox.get()]
                while len(pending) < STREAM_BATCH:
                    try:
                        pending.append(inbox.get_nowait())
                    except queue.Empty:
                        break
                for at, event in pending:
                    published[event.id] = at
                seen += len(pending)
                # The other community publishes as often, on the same shard.
                others = [_publish_other(eng, other, seen + i) for i in range(len(pending))]
                queue_events(eng.ctx, [event for _, event in pending] + others)
                batches += 1
            publisher.join()
    received = _wait_for_healthy(farm, events * SLOW, timeout=timeout + 5)
    lat = _latencies(farm, published, SLOW)
    pool.close()
    return _stats(
        lat, events * SLOW, time.monotonic() - started, batches=batches, received=received
    )


def _local(farm: ReceiverFarm, *, slow: bool, events: int, rate: float) -> dict[str, Any]:
    """Both communities publish ``events`` at ``rate``/s over HTTP to a fresh local stack; the
    latencies are those of the healthy community's deliveries."""
    from bench.localstack import local_stack, other_community, payload

    with local_stack(farm.urls[:LOCAL_HEALTHY]) as healthy:
        other = other_community(healthy, [farm.url(SLOW)] if slow else [])
        datas = [payload(healthy, index) for index in range(events)]
        farm.clear()
        published: dict[str, float] = {}
        lock = threading.Lock()
        started = time.monotonic()

        def publish(index: int) -> None:
            delay = started + index / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            other.publish(datas[index])
            at = time.monotonic()
            event_id = healthy.publish(datas[index])
            with lock:
                published[event_id] = at

        def publisher(first: int) -> None:
            for index in range(first, events, 2):
                publish(index)

        threads = [threading.Thread(target=publisher, args=(k,)) for k in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        expected = events * LOCAL_HEALTHY
        end = time.monotonic() + 60
        while time.monotonic() < end:
            seen = [e for _, i, e in farm.records() if i < LOCAL_HEALTHY and e in published]
            if len(seen) >= expected:
                break
            time.sleep(0.02)
        lat = _latencies(farm, published, LOCAL_HEALTHY)
        invocations = healthy.stack.dispatcher.invocations if healthy.stack.dispatcher else 0
        return _stats(
            lat,
            expected,
            time.monotonic() - started,
            batches=invocations,
            received=farm.count(),
        )


def _publish_other(eng: harness.Engine, community: Any, index: int) -> Event:
    event, _ = publish(eng.ctx.events, community, "post.created", {"post_id": index})
    return event


def _sequential(
    farm: ReceiverFarm, *, slow: bool, events: int, rate: float, timeout: float
) -> dict[str, Any]:
    eng = harness.engine(timeout=timeout)
    order = list(range(SLOW))
    if slow:
        order.insert(SEQUENTIAL_SLOW_POSITION, SLOW)
    hooks = harness.add_webhooks(eng, [farm.url(i) for i in order])
    farm.clear()
    inbox: queue.Queue[tuple[float, Event]] = queue.Queue()
    started = time.monotonic()
    publisher = _publisher(eng, events, rate, inbox)
    published: dict[str, float] = {}
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_connections=ENDPOINTS, pool_maxsize=1)
    session.mount("http://", adapter)
    for _ in range(events):
        at, event = inbox.get()
        published[event.id] = at
        for hook in hooks:
            _post(session, hook, event, timeout)
    publisher.join()
    session.close()
    farm.wait_for(events * SLOW, timeout=5)
    lat = _latencies(farm, published, SLOW)
    return _stats(
        lat, events * SLOW, time.monotonic() - started, batches=events, received=farm.count()
    )


def _post(session: requests.Session, hook: Webhook, event: Event, timeout: float) -> None:
    delivery_id = delivery_id_for(event, hook.id)
    body, headers = build_request(hook, event, delivery_id=delivery_id, attempt=1, now=clock.now())
    with contextlib.suppress(requests.RequestException):
        session.post(hook.url, data=body, headers=headers, timeout=timeout).content  # noqa: B018


def _stats(
    latencies: list[float], expected: int, seconds: float, *, batches: int, received: int
) -> dict[str, Any]:
    return {
        "p50_ms": harness.percentile(latencies, 50),
        "p99_ms": harness.percentile(latencies, 99),
        "max_ms": max(latencies) if latencies else float("nan"),
        "healthy_received": len(latencies),
        "healthy_expected": expected,
        "received": received,
        "batches": batches,
        "seconds": seconds,
    }


VARIANTS: dict[str, dict[str, Any]] = {
    "engine stream, without slow": {"kind": "engine", "slow": False, "burst": False},
    "engine stream, with slow": {"kind": "engine", "slow": True, "burst": False},
    "engine burst, without slow": {"kind": "engine", "slow": False, "burst": True},
    "engine burst, with slow": {"kind": "engine", "slow": True, "burst": True},
    "local stack, without slow": {"kind": "local", "slow": False},
    "local stack, with slow": {"kind": "local", "slow": True},
    "sequential, without slow": {"kind": "sequential", "slow": False},
    "sequential, with slow": {"kind": "sequential", "slow": True},
}


def run(
    *,
    events: int = 10,
    rate: float = 5.0,
    timeout: float = 10.0,
    rounds: int = 3,
    sequential_events: int = 3,
    local_events: int | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """``local_events`` (default ``events``): events per community in the local-stack runs."""
    local_events = local_events or events
    hold = timeout + 1.0
    result: dict[str, Any] = {
        "name": "B2 slow-endpoint isolation",
        "machine": harness.machine(),
        "workload": {
            "endpoints": ENDPOINTS,
            "events": events,
            "rate_per_s": rate,
            "delivery_timeout_s": timeout,
            "slow_endpoint_holds_s": hold,
            "slow_endpoint": "a webhook of another community",
            "consumers": CONSUMERS,
            "sequential_events": sequential_events,
            "local_events": local_events,
            "local_healthy_webhooks": LOCAL_HEALTHY,
            "rounds": rounds,
        },
    }

    with ReceiverFarm(ENDPOINTS, hold={SLOW: hold}) as farm:

        def variant(spec: dict[str, Any]) -> Callable[[], dict[str, Any]]:
            if spec["kind"] == "engine":
                return lambda: _engine(
                    farm,
                    slow=spec["slow"],
                    events=events,
                    rate=rate,
                    timeout=timeout,
                    burst=spec["burst"],
                )
            if spec["kind"] == "local":
                return lambda: _local(farm, slow=spec["slow"], events=local_events, rate=rate)
            return lambda: _sequential(
                farm, slow=spec["slow"], events=sequential_events, rate=rate, timeout=timeout
            )

        log("B2: 19 healthy endpoints with and without a hung one in another community")
        _engine(farm, slow=False, events=2, rate=rate, timeout=timeout, burst=True)  # warm-up
        runs = harness.interleave(
            rounds,
            {name: variant(spec) for name, spec in VARIANTS.items()},
            log=lambda line: log(line[:150]),
        )
    result["variants"] = {
        name: {
            "p50_ms": harness.summary([r["p50_ms"] for r in rows]),
            "p99_ms": harness.summary([r["p99_ms"] for r in rows]),
            "lost": sum(r["healthy_expected"] - r["healthy_received"] for r in rows),
            "batches": harness.summary([r["batches"] for r in rows]),
            "seconds": harness.summary([r["seconds"] for r in rows]),
        }
        for name, rows in runs.items()
    }
    ratios = {}
    for prefix in ("engine stream", "engine burst", "local stack", "sequential"):
        with_slow = runs[f"{prefix}, with slow"]
        without = runs[f"{prefix}, without slow"]
        ratios[prefix] = harness.summary(
            [w["p99_ms"] / max(o["p99_ms"], 1e-9) for w, o in zip(with_slow, without, strict=True)]
        )
    result["p99_ratio"] = ratios
    result["target"] = f"healthy p99 with the slow endpoint <= {TARGET_RATIO} x without"
    result["met"] = bool(ratios["engine stream"]["median"] <= TARGET_RATIO)
    result["met_within_batch"] = bool(ratios["engine burst"]["median"] <= TARGET_RATIO)
    result["met_local_stack"] = bool(ratios["local stack"]["median"] <= TARGET_RATIO)
    result["runs"] = runs
    return result
