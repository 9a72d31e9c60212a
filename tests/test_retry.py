"""The retry step (functions/attempt + hookline.domain.retry) against real loopback receivers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
import standardwebhooks
from standardwebhooks.webhooks import WebhookVerificationError

from hookline import clock, wiring
from hookline.domain import retry, rotation, signing, webhooks
from hookline.domain.attempts import AttemptOutcome
from hookline.domain.delivery import new_delivery
from hookline.domain.dispatch import dispatch_events
from hookline.domain.policy import MAX_WAIT_SECONDS, waits_for
from tests.receivers import Receiver, Reply
from tests.retry_fixtures import World, attempt_payload, invoke_attempt


@pytest.fixture
def world(memory_services: Any) -> World:
    return World.create()


@pytest.fixture
def failing() -> Iterator[Receiver]:
    with Receiver((500, {}, b"boom")) as rx:
        yield rx


def started(world: World) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = world.ctx.scheduler.started  # type: ignore[attr-defined]
    return runs


def verify(secret: str, request: Any) -> Any:
    return standardwebhooks.Webhook(secret).verify(request.body, request.headers)


# -- waits_for -----------------------------------------------------------------------------


def test_waits_follow_the_schedule_and_repeat_its_last_delay() -> None:
    assert waits_for(3, (300, 1800, 7200)) == [300, 1800, 7200]
    assert waits_for(5, (300, 1800, 7200)) == [300, 1800, 7200, 7200, 7200]
    assert waits_for(2, (300, 1800, 7200)) == [300, 1800]
    assert waits_for(0, (300, 1800, 7200)) == []


def test_retry_after_lengthens_the_first_wait_capped_at_a_day() -> None:
    assert waits_for(3, (300, 1800), retry_after=900) == [900, 1800, 1800]
    assert waits_for(2, (300, 1800), retry_after=60) == [300, 1800]  # never shortens
    assert waits_for(1, (300,), retry_after=10**9) == [MAX_WAIT_SECONDS]


# -- start_retries (the dispatcher's call after a failed first attempt) ----------------------


def test_a_failed_first_attempt_starts_the_retry_cycle(world: World, failing: Receiver) -> None:
    webhook = world.webhook(failing.url_for("/hook"))
    delivery, outcome = world.first_attempt(webhook)
    assert not outcome.success and outcome.status_code == 500

    before = clock.now()
    retry.start_retries(world.ctx, delivery, webhook, outcome)

    assert started(world) == [
        {
            "delivery_id": delivery.id,
            "community_id": world.community.id,
            "webhook_id": webhook.id,
            "attempt": 1,
            "waits": [300, 1800, 7200],
        }
    ]
    stored = world.delivery(delivery.id)
    assert stored.state == "retrying"
    assert stored.next_attempt_at is not None
    due = clock.parse_iso(stored.next_attempt_at) - before
    assert timedelta(seconds=299) <= due <= timedelta(seconds=302)


def test_retry_after_on_the_first_attempt_lengthens_the_first_wait(world: World) -> None:
    with Receiver(Reply(429, {"Retry-After": "900"})) as rx:
        webhook = world.webhook(rx.url_for("/hook"))
        delivery, outcome = world.first_attempt(webhook)
    assert outcome.retry_after_seconds == 900

    retry.start_retries(world.ctx, delivery, webhook, outcome)
    assert started(world)[0]["waits"] == [900, 1800, 7200]


def test_retry_count_above_the_schedule_repeats_the_last_delay(
    world: World, failing: Receiver
) -> None:
    webhook = world.webhook(failing.url_for("/hook"), retry_count=5)
    delivery, outcome = world.first_attempt(webhook)
    retry.start_retries(world.ctx, delivery, webhook, outcome)
    assert started(world)[0]["waits"] == [300, 1800, 7200, 7200, 7200]


def test_retry_count_zero_fails_at_once(world: World, failing: Receiver) -> None:
    webhook = world.webhook(failing.url_for("/hook"), retry_count=0)
    delivery, outcome = world.first_attempt(webhook)

    retry.start_retries(world.ctx, delivery, webhook, outcome)

    assert started(world) == []
    stored = world.delivery(delivery.id)
    assert stored.state == "failed"
    assert stored.next_attempt_at is None
    assert stored.last_error == "HTTP 500 Internal Server Error"
    assert "retry_count 0" in (stored.reason or "")
    assert len(failing.requests) == 1
    [failed_event] = world.events_of_type("delivery.failed")
    assert failed_event.operational is True
    assert failed_event.data["delivery_id"] == delivery.id


def test_a_scheduler_failure_raises_and_the_stream_redelivery_recovers(
    world: World, failing: Receiver
) -> None:
    world.ctx.scheduler.fail = True  # type: ignore[attr-defined]
    webhook = world.webhook(failing.url_for("/hook"))
    event = world.event()
    report = dispatch_events(world.ctx, [event])
    assert report.failed_event_ids == {event.id}  # -> a batch item failure

    [delivery] = world.ctx.deliveries.deliveries_of(webhook.id)
    assert delivery.state == "pending"  # what a redelivered stream record picks up again
    assert "could not be scheduled" in (delivery.reason or "")
    assert world.events_of_type("delivery.failed") == []  # not a permanent failure
    with pytest.raises(RuntimeError, match="scheduler unavailable"):
        retry.start_retries(world.ctx, delivery, webhook, AttemptOutcome.failure("HTTP 500"))

    world.ctx.scheduler.fail = False  # type: ignore[attr-defined]
    report = dispatch_events(world.ctx, [event])  # the stream hands the record over again
    assert report.failed_event_ids == set()
    stored = world.delivery(delivery.id)
    # The redelivery starts the retries without sending again: still 1 + retry_count in all.
    assert stored.state == "retrying" and stored.attempts == 1
    assert stored.reason is None
    assert [s["attempt"] for s in started(world)] == [1]
    assert len(failing.requests) == 1


def test_resume_retries_starts_the_cycle_without_another_attempt(
    world: World, failing: Receiver
) -> None:
    world.ctx.scheduler.fail = True  # type: ignore[attr-defined]
    webhook = world.webhook(failing.url_for("/hook"))
    delivery, outcome = world.first_attempt(webhook)
    with pytest.raises(RuntimeError):
        retry.start_retries(world.ctx, delivery, webhook, outcome)
    world.ctx.scheduler.fail = False  # type: ignore[attr-defined]

    assert retry.resume_retries(world.ctx, world.delivery(delivery.id), webhook) is True

    assert len(failing.requests) == 1
    assert started(world) == [
        {
            "delivery_id": delivery.id,
            "community_id": world.community.id,
            "webhook_id": webhook.id,
            "attempt": 1,
            "waits": [300, 1800, 7200],
        }
    ]
    assert world.delivery(delivery.id).state == "retrying"
    # Nothing to resume: retrying already, or never attempted.
    assert retry.resume_retries(world.ctx, world.delivery(delivery.id), webhook) is False
    fresh = new_delivery(world.event(), webhook)
    world.ctx.deliveries.create(fresh, expires_at=world.ctx.expires_at())
    assert retry.resume_retries(world.ctx, fresh, webhook) is False


def test_a_410_on_the_first_attempt_disables_the_webhook_at_once(world: World) -> None:
    with Receiver((410, {}, b"gone")) as rx:
        webhook = world.webhook(rx.url_for("/hook"))
        delivery, outcome = world.first_attempt(webhook)
    assert outcome.gone

    retry.start_retries(world.ctx, delivery, webhook, outcome)

    assert started(world) == []
    assert world.delivery(delivery.id).state == "failed"
    disabled = world.get_webhook(webhook.id)
    assert disabled.status == "inactive"
    assert "410" in (disabled.disabled_reason or "")
    [event] = world.events_of_type("webhook.disabled")
    assert event.operational and event.data["webhook_id"] == webhook.id
    # Only the host: a Slack or Discord URL's path is a credential.
    assert event.data["url_host"] == "127.0.0.1"
    assert "url" not in event.data
    assert "/hook" not in json.dumps(event.data)


# -- run_attempt through the AttemptFunction handler ---------------------------------------


def test_fail_twice_then_succeed(world: World, lambda_context: Any) -> None:
    with Receiver([(500,), (503,), (200, {}, b"thanks")]) as rx:
        webhook = world.webhook(rx.url_for("/hook"))
        delivery, outcome = world.first_attempt(webhook)
        retry.start_retries(world.ctx, delivery, webhook, outcome)
        schedule = started(world)[0]["waits"]

        second = invoke_attempt(attempt_payload(delivery, 2, schedule=schedule), lambda_context)
        assert second == {"outcome": "retry", "next_wait_seconds": 1800, "attempt": 2}
        assert world.delivery(delivery.id).state == "retrying"

        third = invoke_attempt(attempt_payload(delivery, 3, schedule=schedule), lambda_context)
        assert third == {"outcome": "delivered", "next_wait_seconds": 0, "attempt": 3}
        requests = rx.wait_for(3)

    assert [r.header("X-Hookline-Attempt") for r in requests] == ["1", "2", "3"]
    for request in requests:  # every attempt is signed and the same message
        verify(webhook.secret or "", request)
        assert request.header("webhook-id") == delivery.id
    stored = world.delivery(delivery.id)
    assert stored.state == "delivered"
    assert stored.attempts == 3
    assert stored.next_attempt_at is None
    log = world.ctx.deliveries.attempts(delivery.community_id, delivery.id)
    assert [(a.attempt, a.status_code, a.success) for a in log] == [
        (1, 500, False),
        (2, 503, False),
        (3, 200, True),
    ]
    assert world.get_webhook(webhook.id).last_triggered_at is not None


def test_retry_after_on_a_retry_lengthens_the_next_wait(world: World, lambda_context: Any) -> None:
    with Receiver([(500,), Reply(503, {"Retry-After": "4000"})]) as rx:
        webhook = world.webhook(rx.url_for("/hook"))
        delivery, outcome = world.first_attempt(webhook)
        retry.start_retries(world.ctx, delivery, webhook, outcome)
        decision = invoke_attempt(
            attempt_payload(delivery, 2, schedule=[300, 1800, 7200]), lambda_context
        )
    assert decision == {"outcome": "retry", "next_wait_seconds": 4000, "attempt": 2}
    stored = world.delivery(delivery.id)
    due = clock.parse_iso(stored.next_attempt_at or "") - clock.now()
    assert timedelta(seconds=3990) < due <= timedelta(seconds=4000)


def test_retry_after_shorter_than_the_schedule_keeps_the_schedule(
    world: World, lambda_context: Any
) -> None:
    with Receiver([(500,), Reply(429, {"Retry-After": "5"})]) as rx:
        webhook = world.webhook(rx.url_for("/hook"))
        delivery, _ = world.first_attempt(webhook)
        decision = invoke_attempt(attempt_payload(delivery, 2), lambda_context)
    assert decision["next_wait_seconds"] == 1800


def test_the_last_attempt_fails_and_give_up_marks_the_delivery_failed(
    world: World, failing: Receiver, lambda_context: Any
) -> None:
    webhook = world.webhook(failing.url_for("/hook"), retry_count=2)
    delivery, outcome = world.first_attempt(webhook)
    retry.start_retries(world.ctx, delivery, webhook, outcome)
    schedule = started(world)[0]["waits"]
    assert schedule == [300, 1800]

    assert invoke_attempt(attempt_payload(delivery, 2, schedule=schedule), lambda_context) == {
        "outcome": "retry",
        "next_wait_seconds": 1800,
        "attempt": 2,
    }
    assert invoke_attempt(attempt_payload(delivery, 3, schedule=schedule), lambda_context) == {
        "outcome": "failed",
        "next_wait_seconds": 0,
        "attempt": 3,
    }
    # Until the workflow gives up, the delivery is still retrying.
    assert world.delivery(delivery.id).state == "retrying"
    give_up = {k: v for k, v in attempt_payload(delivery, 3).items() if k not in ("schedule",)}
    give_up["action"] = "give_up"
    assert invoke_attempt(give_up, lambda_context)["outcome"] == "failed"

    assert len(failing.requests) == 3  # exactly 1 + retry_count
    stored = world.delivery(delivery.id)
    assert stored.state == "failed"
    assert stored.next_attempt_at is None
    assert stored.last_error == "HTTP 500 Internal Server Error"
    assert stored.reason == "No attempts left after 3 attempts."
    [event] = world.events_of_type("delivery.failed")
    assert event.id == f"evt_failed_{delivery.id}"
    assert event.operational
    assert event.data == {
        "delivery_id": delivery.id,
        "webhook_id": webhook.id,
        "event_id": delivery.event_id,
        "event": "post.created",
        "attempts": 3,
        "last_status_code": 500,
        "error": "HTTP 500 Internal Server Error",
    }
    # give_up again (the state machine retries the task) changes nothing.
    invoke_attempt(give_up, lambda_context)
    assert len(world.events_of_type("delivery.failed")) == 1
    assert world.get_webhook(webhook.id).permanent_failures == 1


def test_a_repeated_attempt_invocation_does_not_send_again(
    world: World, failing: Receiver, lambda_context: Any
) -> None:
    webhook = world.webhook(failing.url_for("/hook"))
    delivery, _ = world.first_attempt(webhook)
    payload = attempt_payload(delivery, 2)
    first = invoke_attempt(payload, lambda_context)
    again = invoke_attempt(payload, lambda_context)
    assert first["outcome"] == again["outcome"] == "retry"
    assert abs(first["next_wait_seconds"] - again["next_wait_seconds"]) <= 1
    assert len(failing.requests) == 2
    assert [
        a.attempt for a in world.ctx.deliveries.attempts(delivery.community_id, delivery.id)
    ] == [1, 2]


def test_a_deactivated_webhook_cancels_pending_retries(
    world: World, failing: Receiver, lambda_context: Any
) -> None:
    webhook = world.webhook(failing.url_for("/hook"))
    delivery, outcome = world.first_attempt(webhook)
    retry.start_retries(world.ctx, delivery, webhook, outcome)
    webhooks.update_webhook(
        world.ctx.webhooks, world.community.id, webhook.id, {"is_active": False}, allow_private=True
    )

    decision = invoke_attempt(attempt_payload(delivery, 2), lambda_context)

    assert decision == {"outcome": "cancelled", "next_wait_seconds": 0, "attempt": 1}
    assert len(failing.requests) == 1
    stored = world.delivery(delivery.id)
    assert stored.state == "cancelled"
    assert stored.next_attempt_at is None
    assert "deactivated" in (stored.reason or "")
    assert world.events_of_type("delivery.failed") == []


def test_a_deleted_webhook_cancels_pending_retries(
    world: World, failing: Receiver, lambda_context: Any
) -> None:
    webhook = world.webhook(failing.url_for("/hook"))
    delivery, outcome = world.first_attempt(webhook)
    retry.start_retries(world.ctx, delivery, webhook, outcome)
    world.ctx.webhooks.delete(world.community.id, webhook.id)

    decision = invoke_attempt(attempt_payload(delivery, 2), lambda_context)

    assert decision["outcome"] == "cancelled"
    assert len(failing.requests) == 1
    stored = world.delivery(delivery.id)
    assert stored.state == "cancelled"
    assert "deleted" in (stored.reason or "")


def test_an_already_delivered_delivery_stays_delivered(world: World, lambda_context: Any) -> None:
    with Receiver((200,)) as rx:
        webhook = world.webhook(rx.url_for("/hook"))
        delivery, outcome = world.first_attempt(webhook)
        assert outcome.success
        decision = invoke_attempt(attempt_payload(delivery, 2), lambda_context)
        assert len(rx.requests) == 1
    assert decision["outcome"] == "delivered"


def test_a_rotated_secret_signs_the_later_attempts(world: World, lambda_context: Any) -> None:
    with Receiver([(500,), (200,)]) as rx:
        webhook = world.webhook(rx.url_for("/hook"))
        old_secret = webhook.secret or ""
        delivery, outcome = world.first_attempt(webhook)
        retry.start_retries(world.ctx, delivery, webhook, outcome)
        rotated, _ = rotation.rotate_secret(world.ctx.webhooks, world.community.id, webhook.id)
        new_secret = rotated.secret or ""
        assert new_secret != old_secret

        assert invoke_attempt(attempt_payload(delivery, 2), lambda_context)["outcome"] == (
            "delivered"
        )
        first, second = rx.wait_for(2)

    with pytest.raises(WebhookVerificationError):
        verify(new_secret, first)  # attempt 1 predates the rotation
    verify(new_secret, second)
    verify(old_secret, second)  # the previous secret still signs during the overlap
    assert second.header("X-Hookline-Signature") == signing.body_signature(old_secret, second.body)
    assert second.header("X-Hookline-Signature-Next") == signing.body_signature(
        new_secret, second.body
    )


def test_a_410_on_a_retry_fails_and_disables_at_once(world: World, lambda_context: Any) -> None:
    with Receiver([(500,), (410,)]) as rx:
        webhook = world.webhook(rx.url_for("/hook"))
        delivery, outcome = world.first_attempt(webhook)
        retry.start_retries(world.ctx, delivery, webhook, outcome)
        decision = invoke_attempt(attempt_payload(delivery, 2), lambda_context)
    assert decision == {"outcome": "failed", "next_wait_seconds": 0, "attempt": 2}
    assert world.delivery(delivery.id).state == "failed"
    disabled = world.get_webhook(webhook.id)
    assert disabled.status == "inactive" and "410" in (disabled.disabled_reason or "")
    assert len(world.events_of_type("webhook.disabled")) == 1
    assert len(world.events_of_type("delivery.failed")) == 1


# -- crashes -----------------------------------------------------------------------------


def test_a_crashed_attempt_counts_as_a_failed_attempt(
    world: World, failing: Receiver, lambda_context: Any
) -> None:
    webhook = world.webhook(failing.url_for("/hook"))
    delivery, _ = world.first_attempt(webhook)
    error = {
        "Error": "Sandbox.Timedout",
        "Cause": json.dumps({"errorMessage": "Task timed out after 30.00 seconds"}),
    }
    payload = attempt_payload(delivery, 2, action="record_crash", error=error)

    decision = invoke_attempt(payload, lambda_context)

    assert decision == {"outcome": "retry", "next_wait_seconds": 1800, "attempt": 2}
    log = world.ctx.deliveries.attempts(delivery.community_id, delivery.id)
    assert [(a.attempt, a.success) for a in log] == [(1, False), (2, False)]
    assert log[1].error == "attempt crashed: Sandbox.Timedout: Task timed out after 30.00 seconds"
    stored = world.delivery(delivery.id)
    assert stored.attempts == 2 and stored.state == "retrying"
    assert len(failing.requests) == 1  # recording a crash sends nothing


def test_a_crash_on_the_last_attempt_fails(
    world: World, failing: Receiver, lambda_context: Any
) -> None:
    webhook = world.webhook(failing.url_for("/hook"), retry_count=1)
    delivery, _ = world.first_attempt(webhook)
    payload = attempt_payload(delivery, 2, action="record_crash", schedule=[300], error="boom")
    assert invoke_attempt(payload, lambda_context)["outcome"] == "failed"


def test_a_crash_after_the_attempt_was_recorded_keeps_the_record(
    world: World, lambda_context: Any
) -> None:
    with Receiver([(500,), (200,)]) as rx:
        webhook = world.webhook(rx.url_for("/hook"))
        delivery, _ = world.first_attempt(webhook)
        invoke_attempt(attempt_payload(delivery, 2), lambda_context)
    crash = attempt_payload(delivery, 2, action="record_crash", error={"Error": "X"})
    assert invoke_attempt(crash, lambda_context)["outcome"] == "delivered"
    assert [
        a.success for a in world.ctx.deliveries.attempts(delivery.community_id, delivery.id)
    ] == [False, True]


def test_bad_payloads_are_refused(world: World, lambda_context: Any) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        invoke_attempt({"action": "explode", "delivery_id": "d", "attempt": 2}, lambda_context)
    with pytest.raises(ValidationError):
        invoke_attempt({"action": "attempt", "delivery_id": "d", "attempt": 0}, lambda_context)


def test_an_unknown_delivery_is_cancelled(world: World, lambda_context: Any) -> None:
    payload = {
        "action": "attempt",
        "delivery_id": "dlv_gone",
        "community_id": world.community.id,
        "attempt": 2,
        "schedule": [1],
    }
    assert invoke_attempt(payload, lambda_context)["outcome"] == "cancelled"


# -- give_up, operational events, auto-disable ---------------------------------------------


def test_operational_deliveries_never_emit_delivery_failed(world: World, failing: Receiver) -> None:
    webhook = world.webhook(failing.url_for("/hook"), retry_count=0)
    operational = world.event("delivery.failed", operational=True, event_id="evt_failed_dlv_other")
    delivery, outcome = world.first_attempt(webhook, operational)
    assert delivery.operational

    retry.start_retries(world.ctx, delivery, webhook, outcome)

    assert world.delivery(delivery.id).state == "failed"
    assert [e.id for e in world.events_of_type("delivery.failed")] == ["evt_failed_dlv_other"]


def _fail_for_good(world: World, webhook_id: str, count: int) -> None:
    webhook = world.get_webhook(webhook_id)
    for _ in range(count):
        delivery, _ = world.first_attempt(webhook)
        retry.give_up(world.ctx, delivery.community_id, delivery.id)


def _with_settings(world: World, **changes: Any) -> World:
    current = wiring.services()
    wiring.configure(
        settings=replace(current.settings, **changes),
        scheduler=current.scheduler,
        tables=current.tables,
    )
    return world.refresh()


def test_auto_disable_needs_enough_failures_for_long_enough(
    world: World, failing: Receiver
) -> None:
    world = _with_settings(world, auto_disable_min_failures=3, auto_disable_after_hours=1)
    webhook = world.webhook(failing.url_for("/hook"))

    # Long enough, but too few failures.
    world.ctx.webhooks.update(
        world.community.id,
        webhook.id,
        {"failing_since": clock.iso(clock.now() - timedelta(hours=2))},
    )
    _fail_for_good(world, webhook.id, 2)
    assert world.get_webhook(webhook.id).status == "active"

    # Enough failures now, and failing for two hours: disabled.
    _fail_for_good(world, webhook.id, 1)
    disabled = world.get_webhook(webhook.id)
    assert disabled.status == "inactive"
    assert disabled.permanent_failures == 3
    assert "more than 1 hours" in (disabled.disabled_reason or "")
    [event] = world.events_of_type("webhook.disabled")
    assert event.data["webhook_id"] == webhook.id and event.data["failed_deliveries"] == 3


def test_many_failures_in_a_short_time_do_not_disable(world: World, failing: Receiver) -> None:
    world = _with_settings(world, auto_disable_min_failures=3, auto_disable_after_hours=1)
    webhook = world.webhook(failing.url_for("/hook"))
    _fail_for_good(world, webhook.id, 5)
    current = world.get_webhook(webhook.id)
    assert current.status == "active"
    assert current.permanent_failures == 5
    assert current.failing_since is not None


def test_a_success_restarts_the_auto_disable_clock(world: World) -> None:
    world = _with_settings(world, auto_disable_min_failures=2, auto_disable_after_hours=1)
    with Receiver([(500,), (500,), (200,), (500,)]) as rx:
        webhook = world.webhook(rx.url_for("/hook"))
        world.ctx.webhooks.update(
            world.community.id,
            webhook.id,
            {"failing_since": clock.iso(clock.now() - timedelta(hours=3))},
        )
        _fail_for_good(world, webhook.id, 1)
        assert world.get_webhook(webhook.id).permanent_failures == 1
        world.first_attempt(world.get_webhook(webhook.id))  # attempt 2 of the script: 500
        # A delivery that succeeds: the endpoint is alive.
        _, outcome = world.first_attempt(world.get_webhook(webhook.id))
        assert outcome.success
        cleared = world.get_webhook(webhook.id)
        assert cleared.failing_since is None and cleared.permanent_failures == 0
        _fail_for_good(world, webhook.id, 1)
    assert world.get_webhook(webhook.id).status == "active"


def test_reactivating_clears_the_auto_disable_state(world: World) -> None:
    with Receiver((410,)) as rx:
        webhook = world.webhook(rx.url_for("/hook"))
        delivery, outcome = world.first_attempt(webhook)
        retry.start_retries(world.ctx, delivery, webhook, outcome)
    assert world.get_webhook(webhook.id).status == "inactive"

    webhooks.update_webhook(
        world.ctx.webhooks, world.community.id, webhook.id, {"is_active": True}, allow_private=True
    )
    again = world.get_webhook(webhook.id)
    assert again.status == "active"
    assert again.disabled_reason is None
    assert again.failing_since is None
    assert again.permanent_failures == 0


def test_give_up_is_idempotent_and_skips_final_deliveries(world: World) -> None:
    with Receiver((200,)) as rx:
        webhook = world.webhook(rx.url_for("/hook"))
        delivery, _ = world.first_attempt(webhook)
    assert retry.give_up(world.ctx, delivery.community_id, delivery.id) is not None
    assert world.delivery(delivery.id).state == "delivered"
    assert retry.give_up(world.ctx, world.community.id, "dlv_unknown") is None
    assert world.events_of_type("delivery.failed") == []


def test_metrics_are_emitted(world: World, failing: Receiver, capsys: Any) -> None:
    webhook = world.webhook(failing.url_for("/hook"), retry_count=0)
    delivery, outcome = world.first_attempt(webhook)
    capsys.readouterr()
    retry.start_retries(world.ctx, delivery, webhook, outcome)
    emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "_aws" in line]
    names = {
        m["Name"] for e in emitted for d in e["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]
    }
    assert "DeliveryPermanentlyFailed" in names
    [metric] = [e for e in emitted if "DeliveryPermanentlyFailed" in e]
    assert metric["stage"] == "dev" and metric["service"] == "hookline"
