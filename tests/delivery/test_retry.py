"""The retry step (functions/attempt + hookline.domain.retry) against real loopback receivers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import standardwebhooks
from hypothesis import given, settings
from hypothesis import strategies as st

from hookline import clock, wiring
from hookline.domain import delivery_endings, policy, retry, retry_workflow, webhooks
from hookline.domain.dispatch import DeliveryOrder, deliver_order
from hookline.domain.policy import MAX_WAIT_SECONDS, lengthen, retry_wait, wait_after
from tests.receivers import Receiver
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
    assert [retry_wait((300, 1800, 7200), n) for n in range(5)] == [300, 1800, 7200, 7200, 7200]
    # A cycle of 2 retries after attempt 1: waits after attempts 1 and 2, then give up.
    assert [wait_after((300, 1800, 7200), 2, 3, n) for n in (1, 2, 3)] == [300, 1800, None]
    assert wait_after((300, 1800, 7200), 0, 1, 1) is None


def test_retry_after_lengthens_the_first_wait_capped_at_a_day() -> None:
    assert lengthen(300, 900) == 900
    assert lengthen(300, 60) == 300  # never shortens
    assert lengthen(300, 10**9) == MAX_WAIT_SECONDS
    assert wait_after((300, 1800), 3, 4, 2, retry_after=9000) == 9000


# -- window group generations --------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    created_ms=st.integers(min_value=1_700_000_000_000, max_value=1_900_000_000_000),
    delay=st.floats(min_value=0, max_value=20_000, allow_nan=False),
    window_seconds=st.sampled_from([0, 1, 5, 60, 600]),
    first_wait=st.sampled_from([0, 1, 60, 300]),
    time_scale=st.sampled_from([1.0, 0.01, 0.0005]),
)
def test_a_member_never_joins_a_group_whose_first_round_comes_within_the_margin_of_its_write(
    created_ms: int, delay: float, window_seconds: int, first_wait: int, time_scale: float
) -> None:
    """Whenever a member's write lands (a late order, a paced replay), the generation it joins
    has its first round - the earliest round that can end the group - at least the join margin
    after the write, so that round reads it; and no member is retried before the schedule."""
    created = datetime.fromtimestamp(created_ms / 1000, tz=UTC)
    written = created + timedelta(seconds=delay * time_scale)
    schedule = (first_wait, 1800)
    args = {
        "created_at": clock.iso(created),
        "window_seconds": window_seconds,
        "schedule": schedule,
        "time_scale": time_scale,
    }
    generation = policy.generation(written_at=written, **args)
    name, document, first_retry_at = policy.window_group(
        community_id="com_1", webhook_id="wh_1", generation=generation, **args
    )
    first_retry = clock.parse_iso(first_retry_at)
    margin = timedelta(seconds=policy.join_margin(window_seconds) * time_scale)
    slack = timedelta(milliseconds=1)  # ISO times keep milliseconds
    assert first_retry - written >= margin - slack
    assert first_retry - created >= timedelta(seconds=first_wait * time_scale) - slack
    if generation:
        # A late member waits the schedule's first wait after its own write.
        assert first_retry - written >= timedelta(seconds=first_wait * time_scale) - slack
    # Every generation reads the window's members; its name says which generation it is.
    assert policy.generation_of(name) == generation == policy.generation_of(document["group"])
    begin, end = policy.window(clock.iso(created), window_seconds, time_scale)
    assert (document["since"], document["until"]) == (clock.iso(begin), clock.iso(end))
    if written < end:
        assert generation == 0  # a timely member never costs an execution of its own


def test_late_members_share_a_generation_per_window_long_span_of_writes() -> None:
    created = clock.parse_iso("2026-12-02T10:00:00.000Z")
    args = {
        "created_at": clock.iso(created),
        "window_seconds": 60,
        "schedule": (300, 1800),
        "time_scale": 1.0,
    }
    # The window [10:00, 10:01) retries at 10:06; it takes writes until 30 s before that.
    at = [created + timedelta(seconds=s) for s in (5, 329, 331, 389, 391, 3600)]
    assert [policy.generation(written_at=t, **args) for t in at] == [0, 0, 1, 1, 2, 55]
    names = [
        policy.window_group(community_id="c", webhook_id="wh_1", generation=g, **args)[0]
        for g in (0, 1, 2)
    ]
    assert names == ["wh_1-w1796205600000", "wh_1-w1796205600000-g1", "wh_1-w1796205600000-g2"]
    # Not window groups: a resend's group of its own, a recover's.
    assert policy.generation_of("wh_1-s-dlv_1-a3") is None
    assert policy.generation_of("wh_1-r1796205600000-g-01abc") is None


# -- start_retries (the dispatcher's call after a failed first attempt) ----------------------


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


# -- crashes -----------------------------------------------------------------------------


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
        delivery_endings.give_up(world.ctx, delivery.community_id, delivery.id)


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
    assert delivery_endings.give_up(world.ctx, delivery.community_id, delivery.id) is not None
    assert world.delivery(delivery.id).state == "delivered"
    assert delivery_endings.give_up(world.ctx, world.community.id, "dlv_unknown") is None
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


# -- retry groups: a failed first attempt joins its webhook's group; each round attempts the
# -- due members (AttemptFunction's payload, as retry.asl.json sends it)


def _member(world: World, webhook: Any) -> Any:
    """The consumer's first attempt of a new event's delivery (it fails: a retry group member)."""
    order = DeliveryOrder(webhook.id, world.event())
    assert deliver_order(world.ctx, order) == "failed"
    return world.delivery(order.delivery_id)


def _round(world: World, member: Any, context: Any) -> dict[str, Any]:
    return invoke_attempt(attempt_payload(member), context)


def _group_round(world: World, members: list[Any], context: Any) -> dict[str, Any]:
    """A round of the first member's group as its workflow sends it, all members due now."""
    [document] = {
        r["name"]: r["document"] for r in started(world) if r["name"] == members[0].retry_group
    }.values()
    for member in members:
        world.ctx.deliveries.update(
            member.community_id, member.id, {"next_attempt_at": clock.now_iso()}
        )
    payload = {"action": "attempt", **{k: v for k, v in document.items() if k != "done"}}
    return invoke_attempt(payload, context)


def test_a_failed_first_attempt_joins_its_window_group(world: World, failing: Receiver) -> None:
    webhook = world.webhook(failing.url_for("/hook"), retry_count=3)
    member = _member(world, webhook)
    assert member.state == "retrying" and member.max_attempts == 4 and member.attempts == 1
    assert member.retry_group and member.retry_group.startswith(f"{webhook.id}-w")
    [run] = started(world)
    assert run["name"] == member.retry_group == run["document"]["group"]
    window_end = clock.parse_iso(run["document"]["until"])
    # The first retry counts from the end of the window: never earlier than the schedule.
    assert clock.parse_iso(member.next_attempt_at or "") == window_end + timedelta(seconds=300)
    created = clock.parse_iso(member.created_at)
    assert timedelta(0) < window_end - created <= timedelta(seconds=60)


def test_fail_twice_then_succeed(world: World, lambda_context: Any) -> None:
    with Receiver([(500,), (500,), (200,)]) as rx:
        webhook = world.webhook(rx.url_for("/hook"), retry_count=3)
        member = _member(world, webhook)
        first = _round(world, member, lambda_context)
        assert first["done"] is False and 1700 <= first["wait_seconds"] <= 1800
        assert _round(world, member, lambda_context)["done"] is True
        assert len(rx.requests) == 3
    stored = world.delivery(member.id)
    assert (stored.state, stored.attempts) == ("delivered", 3)
    assert [a.attempt for a in world.ctx.deliveries.attempts(member.community_id, member.id)] == [
        1,
        2,
        3,
    ]


def test_the_last_attempt_fails_and_gives_up_with_delivery_failed(
    world: World, failing: Receiver, lambda_context: Any
) -> None:
    webhook = world.webhook(failing.url_for("/hook"), retry_count=2)
    member = _member(world, webhook)
    assert _round(world, member, lambda_context)["done"] is False
    assert _round(world, member, lambda_context)["done"] is True
    assert len(failing.requests) == 3
    stored = world.delivery(member.id)
    assert (stored.state, stored.attempts, stored.next_attempt_at) == ("failed", 3, None)
    failed = world.ctx.events.get(world.community.id, f"evt_failed_{member.id}")
    assert failed.event == "delivery.failed" and failed.data["attempts"] == 3
    assert world.get_webhook(webhook.id).permanent_failures == 1


def test_a_repeated_round_sends_nothing_again(
    world: World, failing: Receiver, lambda_context: Any
) -> None:
    webhook = world.webhook(failing.url_for("/hook"), retry_count=3)
    member = _member(world, webhook)
    payload = attempt_payload(member)
    first = invoke_attempt(payload, lambda_context)
    again = invoke_attempt(payload, lambda_context)  # Step Functions retried the task
    assert len(failing.requests) == 2
    assert again["done"] is False and abs(again["wait_seconds"] - first["wait_seconds"]) <= 1
    assert world.delivery(member.id).attempts == 2


@pytest.mark.parametrize("change", ["deactivated", "deleted"])
def test_a_deactivated_or_deleted_webhook_cancels_every_member(
    world: World, failing: Receiver, lambda_context: Any, change: str
) -> None:
    webhook = world.webhook(failing.url_for("/hook"), retry_count=3)
    members = [_member(world, webhook), _member(world, webhook)]
    if change == "deleted":
        world.ctx.webhooks.delete(world.community.id, webhook.id)
    else:
        world.ctx.webhooks.update(world.community.id, webhook.id, {"status": "inactive"})
    same = [m for m in members if m.retry_group == members[0].retry_group]
    assert _group_round(world, same, lambda_context)["done"] is True
    assert len(failing.requests) == 2  # the first attempts only
    assert {world.delivery(m.id).state for m in same} == {"cancelled"}


def test_a_410_on_a_retry_fails_every_member_and_disables_the_webhook(
    world: World, lambda_context: Any
) -> None:
    with Receiver([(500,), (500,), (410,), (410,)]) as rx:
        webhook = world.webhook(rx.url_for("/hook"), retry_count=3)
        members = [_member(world, webhook), _member(world, webhook)]
        same = [m for m in members if m.retry_group == members[0].retry_group]
        assert _group_round(world, same, lambda_context)["done"] is True
    assert {world.delivery(m.id).state for m in same} == {"failed"}
    hook = world.get_webhook(webhook.id)
    assert not hook.is_active and "410" in (hook.disabled_reason or "")


def test_a_crashed_round_counts_a_failed_attempt_for_each_due_member(
    world: World, failing: Receiver
) -> None:
    webhook = world.webhook(failing.url_for("/hook"), retry_count=1)
    member = _member(world, webhook)
    error = {"Error": "Sandbox.Timedout", "Cause": json.dumps({"errorMessage": "timed out"})}
    answer = retry_workflow.record_crash(world.ctx, attempt_payload(member), error)
    assert answer["done"] is True  # its one retry was the crashed one
    log = world.ctx.deliveries.attempts(member.community_id, member.id)
    assert [(a.attempt, a.error) for a in log][1] == (
        2,
        "attempt crashed: Sandbox.Timedout: timed out",
    )
    assert world.delivery(member.id).state == "failed"
    assert len(failing.requests) == 1
