"""The per-endpoint cap: an endpoint whose first attempt is still running after
SLOW_ATTEMPT_SECONDS enters the slow lane, where its sends are spaced timeout / SLOW_LANE_CAP
apart (so at most SLOW_LANE_CAP run at once); its orders claim their turns and wait for them
on the queue, not in an invocation. Other endpoints pay nothing for it."""

from __future__ import annotations

import itertools
import time
from datetime import timedelta
from typing import Any

import pytest

from hookline import clock, wiring
from hookline.config import Settings
from hookline.domain import dispatch, pacing
from hookline.domain.dispatch import DeliveryOrder, deliver_orders
from hookline_dev.memory import MemoryRateLimiter
from tests.conftest import OPERATOR_KEY
from tests.delivery_helpers import delivery_context, make_community, make_event, make_webhook
from tests.receivers import Receiver

TIMEOUT = 2.0
SPACING_MS = TIMEOUT * 1000 / pacing.SLOW_LANE_CAP


class DelayedQueue:
    def __init__(self) -> None:
        self.sent: list[tuple[dict[str, Any], int]] = []

    def send(self, messages: Any, *, delay_seconds: int = 0) -> list[int]:
        self.sent.extend((dict(m), delay_seconds) for m in messages)
        return []


class CountingLimiter(MemoryRateLimiter):
    def __init__(self) -> None:
        super().__init__()
        self.keys: list[str] = []

    def reserve(self, key: str, interval_ms: int, *, now_ms: int, horizon_ms: int) -> Any:
        self.keys.append(key)
        return super().reserve(key, interval_ms, now_ms=now_ms, horizon_ms=horizon_ms)

    def hold(self, key: str, until_ms: int) -> None:
        self.keys.append(key)
        super().hold(key, until_ms)


@pytest.fixture
def lane(memory_services: wiring.Services, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(dispatch, "SLOW_ATTEMPT_SECONDS", 0.3)
    monkeypatch.setattr(dispatch, "SLOW_LANE_WAIT_IN_PROCESS_SECONDS", 0.1)
    queue, limiter = DelayedQueue(), CountingLimiter()
    wiring.configure(
        settings=Settings(
            operator_key=OPERATOR_KEY,
            allow_private_targets=True,
            delivery_timeout_seconds=TIMEOUT,
        ),
        queue=queue,
        rate_limiter=limiter,
    )
    return queue, limiter


def test_a_hanging_endpoint_enters_the_slow_lane_and_its_orders_wait_for_spaced_turns(
    lane: Any,
) -> None:
    queue, limiter = lane
    services = wiring.services()
    community, _ = make_community(services)
    with Receiver() as healthy, Receiver((200, {}, b"", TIMEOUT + 1)) as hung:
        fast = make_webhook(services, community.id, healthy.url_for("/ok"))
        slow = make_webhook(services, community.id, hung.url_for("/hang"))
        ctx = delivery_context(services)
        first = make_event(community)
        results = deliver_orders(
            ctx, [DeliveryOrder(fast.id, first), DeliveryOrder(slow.id, first)]
        )
        assert results == ["delivered", "failed"]  # the hung one timed out
        assert pacing.is_slow(ctx.webhooks.get(community.id, slow.id), clock.now())
        assert ctx.webhooks.get(community.id, fast.id).slow_until is None
        time.sleep(0.2)  # the attempts running when the lane began have all timed out

        # Six orders at once: the first takes the lane's turn now, the others claim the next
        # turns and go back on the queue until theirs, nothing sent or recorded for them.
        events = [make_event(community) for _ in range(6)]
        results = deliver_orders(ctx, [DeliveryOrder(slow.id, e) for e in events])
        assert results == ["failed"] + ["deferred"] * 5
        assert len(hung.requests) == 2
        slots = sorted(message["slot_ms"] for message, _ in queue.sent)
        assert all(b - a >= SPACING_MS for a, b in itertools.pairwise(slots))
        for message, delay in queue.sent:
            assert message["webhook_id"] == slow.id
            assert delay * 1000 >= message["slot_ms"] - clock.epoch_millis(clock.now())
        for event in events[1:]:
            assert ctx.deliveries.find(community.id, DeliveryOrder(slow.id, event).delivery_id) is (
                None
            )

        # A deferred order comes back with its slot and sends at it, taking no other turn.
        hung.respond((200,))
        message = next(m for m, _ in queue.sent if m["slot_ms"] == slots[0])
        order = DeliveryOrder.from_message(message)
        assert order.slot_ms == slots[0]
        assert deliver_orders(ctx, [order]) == ["delivered"]
        assert hung.requests[-1].received_at * 1000 >= order.slot_ms
        assert fast.id not in limiter.keys  # the healthy endpoint never asked the pace store


def test_the_lane_caps_concurrent_attempts_whatever_the_rate(lane: Any) -> None:
    """Orders arriving together (a burst to a lane endpoint) start at most SLOW_LANE_CAP
    attempts within one timeout."""
    queue, _ = lane
    services = wiring.services()
    community, _ = make_community(services)
    with Receiver((200, {}, b"", TIMEOUT + 1)) as hung:
        slow = make_webhook(services, community.id, hung.url_for("/hang"))
        ctx = delivery_context(services)
        until = clock.iso(clock.now() + timedelta(seconds=60))
        ctx.webhooks.update(community.id, slow.id, {"slow_until": until})
        before_ms = clock.epoch_millis(clock.now())
        results = deliver_orders(
            ctx, [DeliveryOrder(slow.id, make_event(community)) for _ in range(10)]
        )
        assert results.count("failed") == 1 and results.count("deferred") == 9
        assert len(hung.requests) == 1
        slots = sorted(message["slot_ms"] for message, _ in queue.sent)
        # The attempt made took the first slot; with the others, at most the cap in a timeout.
        within_a_timeout = [s for s in slots if s < before_ms + TIMEOUT * 1000]
        assert len(within_a_timeout) + 1 <= pacing.SLOW_LANE_CAP


def test_a_slot_survives_the_queue_and_a_bad_one_is_refused(
    memory_services: wiring.Services,
) -> None:
    community, _ = make_community(memory_services)
    event = make_event(community)
    order = DeliveryOrder("wh_1", event, slot_ms=1_800_000_000_000)
    assert DeliveryOrder.from_message(order.to_message()) == order
    assert "slot_ms" not in DeliveryOrder("wh_1", event).to_message()
    for bad in ("soon", True, 1.5):
        with pytest.raises(ValueError, match="slot_ms"):
            DeliveryOrder.from_message({**order.to_message(), "slot_ms": bad})


def test_orders_waiting_for_a_worker_do_not_make_a_fast_endpoint_slow(lane: Any) -> None:
    """A batch bigger than the worker pool: orders still queued or just taken up when the check
    comes (SLOW_ATTEMPT_SECONDS after the batch began) are not slow attempts."""
    wiring.configure(
        settings=Settings(
            operator_key=OPERATOR_KEY,
            allow_private_targets=True,
            delivery_timeout_seconds=TIMEOUT,
            dispatch_concurrency=1,
        )
    )
    services = wiring.services()
    community, _ = make_community(services)
    with Receiver((200, {}, b"", 0.2)) as quick:  # answers in 0.2 s, under the 0.3 s mark
        hook = make_webhook(services, community.id, quick.url_for("/ok"))
        ctx = delivery_context(services)
        orders = [DeliveryOrder(hook.id, make_event(community)) for _ in range(3)]
        assert deliver_orders(ctx, orders) == ["delivered"] * 3
    assert ctx.webhooks.get(community.id, hook.id).slow_until is None
