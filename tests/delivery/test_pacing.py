"""Rate limits per webhook in the domain (hookline.domain.pacing and the attempt that uses it):
defaults, spacing, waiting that is not a failure, and Retry-After slowing a webhook down."""

from __future__ import annotations

import io
import itertools
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from hookline import clock, wiring
from hookline.domain import pacing, retry_workflow
from hookline.domain.attempts import AttemptOutcome
from hookline.domain.delivery import attempt_and_record, delivery_id_for, new_delivery
from hookline.domain.dispatch import dispatch_events
from hookline.domain.models import Webhook
from hookline.domain.repositories import WebhookRepository
from hookline.observability import logger
from tests.delivery_helpers import delivery_context, make_community, make_event, make_webhook
from tests.receivers import Receiver, Reply
from tests.retry_fixtures import attempt_payload


def _webhook(**fields: Any) -> Webhook:
    stamp = clock.now_iso()
    base: dict[str, Any] = {
        "id": "wh_1",
        "community_id": "com_1",
        "url": "https://example.com/h",
        "events": ["*"],
        "created_at": stamp,
        "updated_at": stamp,
    }
    return Webhook.model_validate(base | fields)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, None),
        ({"format": "json"}, None),
        ({"format": "slack"}, 1.0),
        ({"format": "discord"}, 0.5),
        ({"format": "slack", "rate_limit": None}, None),
        ({"format": "slack", "rate_limit": 5}, 5.0),
    ],
)
def test_a_stored_webhook_without_a_rate_limit_gets_its_formats_default(
    fields: dict[str, Any], expected: float | None
) -> None:
    assert _webhook(**fields).rate_limit == expected


def test_interval_between_sends() -> None:
    assert pacing.interval_ms(None) == 0
    assert pacing.interval_ms(1) == 1000
    assert pacing.interval_ms(0.5) == 2000
    assert pacing.interval_ms(3) == 333
    assert pacing.interval_ms(1000) == 1


def test_an_unpaced_webhook_never_asks_the_limiter() -> None:
    class Refusing:
        def reserve(self, key: str, interval_ms: int, *, now_ms: int) -> int:
            raise AssertionError("asked the limiter")

        def hold(self, key: str, until_ms: int) -> None:
            raise AssertionError("asked the limiter")

    assert pacing.take_turn(Refusing(), _webhook()) is None
    past = clock.iso(clock.now().replace(year=2020))
    assert pacing.take_turn(Refusing(), _webhook(throttled_until=past)) is None
    ok = AttemptOutcome(success=False, status_code=500, response_time_ms=1, retry_after_seconds=9)
    assert pacing.slow_down(Refusing(), _webhook(), ok) is None


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """What the service's Logger writes, through its own handler and formatter."""
    handler: Any = logger.registered_handler
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    try:
        yield buffer
    finally:
        handler.setStream(previous)


def test_a_burst_is_delivered_in_full_spaced_to_the_limit(
    memory_services: wiring.Services, capsys: pytest.CaptureFixture[str], log_lines: io.StringIO
) -> None:
    community, _ = make_community(memory_services)
    with Receiver() as rx:
        hook = make_webhook(memory_services, community.id, rx.url_for("/h"), rate_limit=5)
        events = [make_event(community, "post.created", {"n": n}) for n in range(4)]
        report = dispatch_events(delivery_context(memory_services), events)
        received = rx.wait_for(4)
    assert report.delivered == 4 and report.failed == 0
    times = sorted(r.received_at for r in received)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 0.15, gaps  # 200 ms apart, less scheduling noise
    assert times[-1] - times[0] >= 0.55

    ctx = delivery_context(memory_services)
    attempts = [
        a
        for e in events
        for a in ctx.deliveries.attempts(e.community_id, delivery_id_for(e, hook.id))
    ]
    assert len(attempts) == 4 and all(a.success for a in attempts)
    waits = sorted(a.rate_limit_wait_ms for a in attempts)
    assert waits[0] == 0 and waits[-1] >= 500
    # Waiting is logged at INFO, never as an error or a failed attempt.
    lines = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    waiting = [line for line in lines if line.get("message") == "waiting for the rate limit"]
    assert len(waiting) == 3 and {line["level"] for line in waiting} == {"INFO"}
    assert all(line["webhook_id"] == hook.id and line["wait_ms"] > 0 for line in waiting)
    assert not [line for line in lines if line.get("level") in ("ERROR", "WARNING")]
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    metrics = [line for line in printed if "RateLimitWait" in line]
    assert len(metrics) == 3 and all(m["DeliveryRateLimited"] == [1.0] for m in metrics)
    assert memory_services.scheduler.started == []  # type: ignore[attr-defined]


def test_unlimited_webhooks_do_not_wait(memory_services: wiring.Services) -> None:
    community, _ = make_community(memory_services)
    with Receiver() as rx:
        make_webhook(memory_services, community.id, rx.url_for("/h"))
        events = [make_event(community, "post.created", {"n": n}) for n in range(6)]
        started = time.monotonic()
        dispatch_events(delivery_context(memory_services), events)
        rx.wait_for(6)
    assert time.monotonic() - started < 2


def test_retry_after_slows_the_webhooks_next_deliveries(memory_services: wiring.Services) -> None:
    community, _ = make_community(memory_services)
    with Receiver([Reply(429, {"Retry-After": "2"}), Reply(200)]) as rx:
        hook = make_webhook(memory_services, community.id, rx.url_for("/h"))
        ctx = delivery_context(memory_services)
        dispatch_events(ctx, [make_event(community)])
        [refused] = rx.wait_for(1)
        stored = WebhookRepository(memory_services.tables.webhooks).get(community.id, hook.id)
        assert stored.throttled_until is not None
        assert clock.parse_iso(stored.throttled_until) > clock.now()
        # The failed delivery goes to the retry policy as before (with at least the Retry-After).
        [retry] = memory_services.scheduler.started  # type: ignore[attr-defined]
        assert retry["document"]["wait_seconds"] >= 2

        # The webhook's next delivery, a new event, waits for the end of the Retry-After.
        dispatch_events(ctx, [make_event(community)])
        _, accepted = rx.wait_for(2)
    assert accepted.received_at - refused.received_at >= 1.8


def test_test_pings_and_resends_are_not_paced(memory_services: wiring.Services) -> None:
    community, _ = make_community(memory_services)
    with Receiver() as rx:
        hook = make_webhook(memory_services, community.id, rx.url_for("/h"), rate_limit=0.01)
        ctx = delivery_context(memory_services)
        event = make_event(community)
        delivery = new_delivery(event, hook)
        ctx.deliveries.create(delivery, expires_at=ctx.expires_at())
        started = time.monotonic()
        # The first send takes the webhook's turn; paced, the next would wait 100 s.
        first = attempt_and_record(ctx, delivery, hook, event, 1)
        second = attempt_and_record(ctx, first.delivery, hook, event, 2, paced=False)
        rx.wait_for(2)
    assert time.monotonic() - started < 5
    assert first.attempt.rate_limit_wait_ms == 0 and second.attempt.rate_limit_wait_ms == 0


def test_a_turn_too_far_off_is_handed_back_untouched(memory_services: wiring.Services) -> None:
    community, _ = make_community(memory_services)
    with Receiver() as rx:
        hook = make_webhook(memory_services, community.id, rx.url_for("/h"), rate_limit=0.1)
        ctx = delivery_context(memory_services)
        first, second = make_event(community), make_event(community)
        deliveries = [new_delivery(e, hook) for e in (first, second)]
        for delivery in deliveries:
            ctx.deliveries.create(delivery, expires_at=ctx.expires_at())
        attempt_and_record(ctx, deliveries[0], hook, first, 1, wait_at_most=5)
        started = time.monotonic()
        with pytest.raises(pacing.NotYet) as handed_back:
            attempt_and_record(ctx, deliveries[1], hook, second, 1, wait_at_most=5)
        assert time.monotonic() - started < 1
        rx.wait_for(1)
        time.sleep(0.1)
        assert len(rx.requests) == 1
    # The next slot is 10 s off: come back when it is about half the horizon away.
    assert handed_back.value.retry_in_seconds in (7, 8)
    assert ctx.deliveries.attempts(deliveries[1].community_id, deliveries[1].id) == []
    assert ctx.deliveries.find(deliveries[1].community_id, deliveries[1].id) == deliveries[1]
    # Nothing was claimed: the next free slot is still the one 10 s after the first send.
    assert handed_back.value.turn.slot_ms - handed_back.value.turn.reserved_at_ms <= 10_000


def test_orders_whose_turn_is_far_off_go_back_on_the_queue_delayed(
    memory_services: wiring.Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On the delivery queue, a turn beyond the in-process horizon is not slept through: the
    order is queued again with a delay, and is delivered in its turn, once, with no attempt
    used up meanwhile."""
    monkeypatch.setattr(pacing, "MAX_WAIT_IN_PROCESS_SECONDS", 1.0)
    community, _ = make_community(memory_services)
    queue: Any = memory_services.queue
    with Receiver() as rx:
        hook = make_webhook(memory_services, community.id, rx.url_for("/h"), rate_limit=0.5)
        events = [make_event(community, "post.created", {"n": n}) for n in range(3)]
        started = time.monotonic()
        report = dispatch_events(delivery_context(memory_services), events)
        # Only the first was sent in this call; the other two were handed back at once.
        assert time.monotonic() - started < 1
        assert report.delivered == 1 and report.deferred == 2 and report.failed == 0
        assert len(queue.sent) == 2
        received = rx.wait_for(3, timeout=15)
        time.sleep(0.2)
        assert len(rx.requests) == 3
    times = sorted(r.received_at for r in received)
    assert all(b - a >= 1.5 for a, b in itertools.pairwise(times)), times
    ctx = delivery_context(memory_services)
    for event in events:
        [attempt] = ctx.deliveries.attempts(event.community_id, delivery_id_for(event, hook.id))
        assert attempt.success and attempt.attempt == 1
    assert memory_services.scheduler.started == []  # type: ignore[attr-defined]


def test_a_retry_whose_turn_is_far_off_waits_in_the_workflow_without_using_a_try(
    memory_services: wiring.Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pacing, "MAX_WAIT_IN_PROCESS_SECONDS", 1.0)
    community, _ = make_community(memory_services)
    with Receiver([Reply(500), Reply(200)]) as rx:
        hook = make_webhook(memory_services, community.id, rx.url_for("/h"), rate_limit=0.1)
        ctx = delivery_context(memory_services)
        event = make_event(community)
        ctx.events.add(event, expires_at=ctx.expires_at())
        dispatch_events(ctx, [event])  # attempt 1 fails and takes the webhook's turn
        rx.wait_for(1)
        delivery_id = delivery_id_for(event, hook.id)
        payload = attempt_payload(ctx.deliveries.find(event.community_id, delivery_id))  # type: ignore[arg-type]
        started = time.monotonic()
        answer = retry_workflow.run_round(ctx, payload)
        assert time.monotonic() - started < 1
        # No attempt 2 was made: the group waits for the turn and does not count the round.
        assert answer["done"] is False and 7 <= answer["wait_seconds"] <= 10
        assert answer["attempt"] == payload["attempt"]
        assert [a.attempt for a in ctx.deliveries.attempts(event.community_id, delivery_id)] == [1]
        assert len(rx.requests) == 1
