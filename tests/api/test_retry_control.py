"""Retry control through the API handler (in-memory tables, real HTTP to loopback receivers):
resend while a retry is scheduled, recover with a range and states, and replay."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any
from unittest import mock

import pytest

from hookline import clock, wiring
from hookline.config import Settings
from hookline.domain import delivery_endings, dispatch, policy, redelivery, retry, retry_workflow
from hookline.domain.delivery import delivery_id_for
from hookline.domain.models import Delivery, Webhook
from hookline.domain.publishing import publish
from tests.api.test_deliveries_api import Api, api  # noqa: F401
from tests.receivers import Receiver

SCHEDULE = [300, 1800, 7200]


class RecordingQueue:
    """The DeliveryQueue port, keeping what was sent (or refusing it)."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.refuse = False

    def send(self, messages: Sequence[Mapping[str, Any]], *, delay_seconds: int = 0) -> list[int]:
        if self.refuse:
            return list(range(len(messages)))
        self.sent.extend(dict(m) for m in messages)
        return []


@pytest.fixture
def queue(api: Api) -> RecordingQueue:  # noqa: F811
    recording = RecordingQueue()
    wiring.configure(queue=recording)
    api.world.refresh()
    return recording


def _retrying(api: Api, webhook: Webhook) -> Delivery:  # noqa: F811
    """A delivery whose first attempt failed and whose retry cycle started (as the consumer)."""
    delivery, outcome = api.world.first_attempt(webhook)
    retry.start_retries(api.world.ctx, delivery, webhook, outcome)
    stored = api.world.delivery(delivery.id)
    assert stored.state == "retrying" and stored.max_attempts == 1 + webhook.retry_count
    return stored


def _wake(api: Api, delivery: Delivery, at: datetime | None = None) -> dict[str, Any]:  # noqa: F811
    """The delivery's retry group waking at `at` (the clock set there; default now): one round."""
    stored = api.world.delivery(delivery.id)
    group = stored.retry_group or delivery.retry_group
    assert group, stored
    document = policy.workflow_document(
        community_id=stored.community_id,
        webhook_id=stored.webhook_id,
        group=group,
        since=stored.created_at,
        until=clock.iso(clock.parse_iso(stored.created_at) + timedelta(milliseconds=1)),
        attempt=1,
        wait_seconds=0,
    )
    if at is None:
        return retry_workflow.run_round(api.world.ctx, document)
    real_now = clock.now
    offset = at - real_now()
    with mock.patch.object(clock, "now", lambda: real_now() + offset):
        return retry_workflow.run_round(api.world.ctx, document)


def _due(delivery: Delivery) -> datetime:
    return clock.parse_iso(delivery.next_attempt_at or "") + timedelta(milliseconds=5)


# -- resend while retrying ----------------------------------------------------------------


def test_a_resend_while_retrying_that_succeeds_ends_the_cycle(api: Api) -> None:  # noqa: F811
    with Receiver([(500,), (200,)]) as rx:
        webhook = api.webhook(rx.url_for("/hook"), retry_count=3)
        delivery = _retrying(api, webhook)

        status, body = api.resend(webhook.id, delivery.id)
        assert status == 200, body
        assert body["success"] is True and body["attempt"]["attempt"] == 2
        assert body["delivery"]["state"] == "delivered"
        assert body["delivery"]["next_attempt_at"] is None

        # The pending workflow wakes for attempt 2: nothing is left retrying, nothing is sent.
        assert _wake(api, delivery, _due(delivery))["done"] is True
        assert len(rx.requests) == 2
    assert [
        a.attempt for a in api.world.ctx.deliveries.attempts(delivery.community_id, delivery.id)
    ] == [1, 2]


def test_a_failed_resend_while_retrying_keeps_the_count_and_the_schedule(
    api: Api,  # noqa: F811
) -> None:
    with Receiver((500, {}, b"down")) as rx:
        webhook = api.webhook(rx.url_for("/hook"), retry_count=2)
        delivery = _retrying(api, webhook)
        due = clock.parse_iso(delivery.next_attempt_at or "")

        status, body = api.resend(webhook.id, delivery.id)
        assert status == 200, body
        assert body["attempt"]["attempt"] == 2 and body["delivery"]["attempts"] == 2
        assert body["delivery"]["state"] == "retrying"
        after = clock.parse_iso(body["delivery"]["next_attempt_at"])
        assert after == due + timedelta(seconds=1800)  # attempt 3 keeps its time
        assert "Attempt 2 of 3 failed" in body["message"]

        # The workflow wakes at the old time for attempt 2: the member is not due (the resend
        # made it), so nothing is sent and it waits until the time the delivery shows.
        old = due + timedelta(milliseconds=5)
        answer = _wake(api, delivery, old)
        assert answer["done"] is False
        assert abs(answer["wait_seconds"] - (after - old).total_seconds()) <= 2
        assert len(rx.requests) == 2
        # Its attempt 3 is the last one: 1 + retry_count attempts in all.
        assert _wake(api, delivery, after + timedelta(milliseconds=5))["done"] is True
        assert len(rx.requests) == 3
        assert api.world.delivery(delivery.id).state == "failed"


def test_a_failed_resend_of_the_last_attempt_fails_the_delivery(api: Api) -> None:  # noqa: F811
    with Receiver((500, {}, b"down")) as rx:
        webhook = api.webhook(rx.url_for("/hook"), retry_count=1)
        delivery = _retrying(api, webhook)

        status, body = api.resend(webhook.id, delivery.id)
        assert status == 200, body
        assert body["delivery"]["state"] == "failed"
        assert body["delivery"]["next_attempt_at"] is None
        assert body["message"].startswith("Attempt 2 of 2 failed")
        failed = api.world.events_of_type("delivery.failed")
        assert [e.data["delivery_id"] for e in failed] == [delivery.id]

        assert _wake(api, delivery, _due(delivery))["done"] is True
        assert len(rx.requests) == 2


@pytest.mark.parametrize(("status", "outcome"), [(200, "delivered"), (500, "retrying")])
def test_the_workflow_waking_during_a_resend_does_not_send_it_too(
    api: Api,  # noqa: F811
    status: int,
    outcome: str,
) -> None:
    with Receiver([(500,), (status, {}, b"slow", 1.0)]) as rx:
        webhook = api.webhook(rx.url_for("/hook"), retry_count=2)
        delivery = _retrying(api, webhook)
        with ThreadPoolExecutor(1) as pool:
            resend = pool.submit(api.resend, webhook.id, delivery.id)
            deadline = time.monotonic() + 5
            while api.world.delivery(delivery.id).attempts < 2:
                assert time.monotonic() < deadline
                time.sleep(0.01)
            # The scheduled attempt 2 is due now (the workflow woke) while the resend's is out:
            # the claimed member has no next time, so the group looks again later.
            answer = _wake(api, delivery, _due(delivery))
            assert answer["done"] is False
            assert answer["wait_seconds"] == retry_workflow.IN_FLIGHT_RECHECK_SECONDS
            code, body = resend.result(timeout=10)
        assert code == 200, body
        assert len(rx.requests) == 2
        assert api.world.delivery(delivery.id).state == outcome


def test_a_resend_when_the_retry_is_due_is_409(api: Api) -> None:  # noqa: F811
    with Receiver((500, {}, b"down")) as rx:
        webhook = api.webhook(rx.url_for("/hook"), retry_count=2)
        delivery = _retrying(api, webhook)
        api.world.ctx.deliveries.update(
            delivery.community_id, delivery.id, {"next_attempt_at": clock.now_iso()}
        )

        status, body = api.resend(webhook.id, delivery.id)
        assert status == 409, body
        assert body["data"]["field"] == "delivery_id"
        assert len(rx.requests) == 1


def test_next_attempt_at_is_scaled_like_the_local_timer(api: Api) -> None:  # noqa: F811
    base = wiring.services().settings
    wiring.configure(settings=Settings(**{**base.__dict__, "retry_time_scale": 0.01}))
    api.world.refresh()
    with Receiver((500, {}, b"down")) as rx:
        webhook = api.webhook(rx.url_for("/hook"), retry_count=2)
        before = clock.now()
        delivery = _retrying(api, webhook)
        due = clock.parse_iso(delivery.next_attempt_at or "")
        assert timedelta(seconds=2.5) <= due - before <= timedelta(seconds=4)  # 300 s x 0.01

        status, body = api.resend(webhook.id, delivery.id)
        assert status == 200, body
        after = clock.parse_iso(body["delivery"]["next_attempt_at"])
        assert after == due + timedelta(seconds=18)  # 1800 s x 0.01
        # The workflow's wait is in unscaled seconds again.
        answer = _wake(api, delivery)
        assert 1800 <= answer["wait_seconds"] <= 2200


def test_policy_time_conversions() -> None:
    start = clock.parse_iso(clock.now_iso())
    assert clock.parse_iso(policy.due_at(300, 0.01, start=start)) == start + timedelta(seconds=3)
    moment = policy.due_at(300, 0.01)
    assert 290 <= policy.seconds_until(moment, 0.01) <= 300
    assert policy.seconds_until(clock.iso(start - timedelta(seconds=5)), 1.0) == 0
    # The wait before the attempt that leaves n in a 3-retry cycle: the schedule from its end.
    assert [policy.wait_before_remaining(3, SCHEDULE, n) for n in (3, 2, 1)] == SCHEDULE
    assert policy.wait_before_remaining(3, SCHEDULE, 1, retry_after=9000) == 9000
    assert policy.wait_before_remaining(0, SCHEDULE, 1) == 0
    # The wait after a failed attempt n of a cycle whose last attempt is 4 (3 retries).
    assert [policy.wait_after(SCHEDULE, 3, 4, n) for n in (1, 2, 3, 4)] == [*SCHEDULE, None]
    assert policy.wait_after(SCHEDULE, 3, 6, 3) == 300  # a cycle after a resend of attempt 2
    assert policy.wait_after(SCHEDULE, 5, 6, 5) == 7200  # past the schedule: its last entry


# -- recover ------------------------------------------------------------------------------


def test_recover_takes_a_range_and_states(api: Api) -> None:  # noqa: F811
    with Receiver((500, {}, b"down")) as rx:
        webhook = api.webhook(rx.url_for("/hook"), retry_count=1)
        failed = api.failed_delivery(webhook)
        cancelled, _ = api.world.first_attempt(webhook)
        delivery_endings.cancel(api.world.ctx, cancelled, "The webhook was deactivated.")
        until = clock.now_iso()
        later = api.failed_delivery(webhook)

        status, body = api.recover(
            webhook.id, {"since": "2020-01-01T00:00:00Z", "until": until, "state": ["failed"]}
        )
        assert status == 202, body
        assert body["queued"] == 1 and body["state"] == ["failed"] and body["until"] == until
        assert body["truncated"] is False and body["limit"] == redelivery.RECOVER_LIMIT
        assert api.world.delivery(failed.id).state == "retrying"
        assert api.world.delivery(failed.id).max_attempts == 3
        assert api.world.delivery(later.id).state == "failed"

        status, body = api.recover(
            webhook.id, {"since": "2020-01-01T00:00:00Z", "state": ["cancelled", "failed"]}
        )
        assert status == 202 and body["queued"] == 2, body
        assert api.world.delivery(cancelled.id).state == "retrying"
        assert api.world.delivery(later.id).state == "retrying"


# -- replay -------------------------------------------------------------------------------


def _replay(api: Api, webhook_id: str, body: dict[str, Any]) -> tuple[int, Any]:  # noqa: F811
    return api.call("api-webhook-recover.json", path=f"{api.base(webhook_id)}/replay", body=body)


def test_replay_delivers_what_the_webhook_never_got_once(
    api: Api,  # noqa: F811
    queue: RecordingQueue,
) -> None:
    with Receiver((200,)) as rx:
        webhook = api.webhook(rx.url_for("/hook"), filter={"data": {"title": ["Hello"]}})
        got = api.world.event()
        api.world.first_attempt(webhook, got)
        missed = api.world.event()
        api.world.event("member.joined")  # not subscribed
        publish(api.world.ctx.events, api.world.community, "post.created", {"title": "Other"})
        since = "2020-01-01T00:00:00Z"

        status, body = _replay(api, webhook.id, {"since": since})
        assert status == 202, body
        assert (body["queued"], body["skipped"], body["truncated"]) == (1, 1, False)
        assert [m["event"]["id"] for m in queue.sent] == [missed.id]
        pending = api.world.delivery(delivery_id_for(missed, webhook.id))
        assert pending.state == "pending" and pending.attempts == 0

        # The stream's own order for that event, arriving meanwhile, leaves it to the replay's.
        stream_order = dispatch.DeliveryOrder(webhook.id, missed)
        assert dispatch.deliver_order(api.world.ctx, stream_order) == "skipped"
        # The queue's consumer makes the first attempt, as for a published event.
        orders = [dispatch.DeliveryOrder.from_message(m) for m in queue.sent]
        assert [o.replayed for o in orders] == [True]
        assert dispatch.deliver_orders(api.world.ctx, orders) == ["delivered"]
        assert len(rx.requests) == 2
        assert rx.requests[1].headers["webhook-id"] == pending.id

        status, body = _replay(api, webhook.id, {"since": since})
        assert status == 202 and (body["queued"], body["skipped"]) == (0, 2), body
        assert len(queue.sent) == 1


def test_replay_is_capped_and_continues(
    api: Api,  # noqa: F811
    queue: RecordingQueue,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(redelivery, "REPLAY_LIMIT", 2)
    webhook = api.webhook("http://127.0.0.1:9/hook")
    for _ in range(3):
        api.world.event()
    body = {"since": "2020-01-01T00:00:00Z", "until": clock.iso(clock.now() + timedelta(days=1))}
    status, first = _replay(api, webhook.id, body)
    assert status == 202 and first["queued"] == 2 and first["truncated"] is True, first
    assert "cap of 2 per call was hit" in first["message"]
    status, second = _replay(api, webhook.id, body)
    assert (second["queued"], second["skipped"], second["truncated"]) == (1, 2, False)
    assert len({m["event"]["id"] for m in queue.sent}) == 3


def test_a_replay_that_cannot_be_queued_can_be_tried_again(
    api: Api,  # noqa: F811
    queue: RecordingQueue,
) -> None:
    webhook = api.webhook("http://127.0.0.1:9/hook")
    event = api.world.event()
    queue.refuse = True
    status, body = _replay(api, webhook.id, {"since": "2020-01-01T00:00:00Z"})
    assert status == 202 and body["queued"] == 0, body
    assert (
        api.world.ctx.deliveries.find(event.community_id, delivery_id_for(event, webhook.id))
        is None
    )
    queue.refuse = False
    status, body = _replay(api, webhook.id, {"since": "2020-01-01T00:00:00Z"})
    assert body["queued"] == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "since"),
        ({"since": "later"}, "since"),
        ({"since": "2026-11-20T00:00:00Z", "until": "2026-11-20T00:00:00Z"}, "until"),
        ({"since": "2026-11-20T00:00:00Z", "state": ["failed"]}, "state"),
    ],
)
def test_replay_rejects_bad_fields(
    api: Api,  # noqa: F811
    queue: RecordingQueue,
    body: dict[str, Any],
    field: str,
) -> None:
    webhook = api.webhook("http://127.0.0.1:9/hook")
    status, answer = _replay(api, webhook.id, body)
    assert status == 400, answer
    assert answer["data"]["field"] == field and field in answer["message"]
    assert queue.sent == []
