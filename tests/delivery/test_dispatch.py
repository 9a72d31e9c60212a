"""Fan-out: matching, one webhook lookup per community per batch, concurrency, no duplicates,
and the dispatch handler's partial batch response."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import standardwebhooks

from hookline import wiring
from hookline.config import Settings
from hookline.domain import policy
from hookline.domain.delivery import delivery_id_for, new_delivery
from hookline.domain.dispatch import dispatch_events
from hookline.domain.models import Event
from hookline_dev.memory import MemoryTables
from tests.apigw import sample
from tests.delivery_helpers import (
    SECRET,
    CountingTable,
    delivery_context,
    dispatch_handler,
    event_item,
    load_function,
    make_community,
    make_event,
    make_webhook,
    stream_batch,
    stream_record,
)
from tests.receivers import Receiver


def test_only_active_matching_webhooks_get_the_event(memory_services: wiring.Services) -> None:
    community, _ = make_community(memory_services)
    with (
        Receiver() as posts,
        Receiver() as members,
        Receiver() as inactive,
        Receiver() as everything,
        Receiver() as exact,
        Receiver() as other_community,
    ):
        make_webhook(memory_services, community.id, posts.url_for("/p"), events=["post.*"])
        make_webhook(memory_services, community.id, members.url_for("/m"), events=["member.*"])
        make_webhook(
            memory_services,
            community.id,
            inactive.url_for("/i"),
            events=["post.*"],
            status="inactive",
        )
        make_webhook(memory_services, community.id, everything.url_for("/e"), events=["*"])
        make_webhook(memory_services, community.id, exact.url_for("/x"), events=["post.created"])
        elsewhere, _ = make_community(memory_services)
        make_webhook(memory_services, elsewhere.id, other_community.url_for("/o"))

        event = make_event(community, "post.created")
        report = dispatch_events(delivery_context(memory_services), [event])
        for rx in (posts, everything, exact):
            [request] = rx.wait_for(1)
            standardwebhooks.Webhook(SECRET).verify(request.body, request.headers)
        time.sleep(0.05)
        assert members.requests == [] and inactive.requests == []
        assert other_community.requests == []
    assert report.events == 1 and report.attempted == 3 and report.delivered == 3
    assert report.failed_event_ids == set()


def test_post_created_does_not_reach_member_subscribers(memory_services: wiring.Services) -> None:
    community, _ = make_community(memory_services)
    with Receiver() as members:
        make_webhook(memory_services, community.id, members.url_for("/m"), events=["member.*"])
        report = dispatch_events(
            delivery_context(memory_services),
            [make_event(community, "post.created"), make_event(community, "post.updated")],
        )
        time.sleep(0.05)
        assert members.requests == []
    assert report.attempted == 0 and report.failed_event_ids == set()


def test_one_webhook_lookup_per_community_per_batch(memory_services: wiring.Services) -> None:
    tables = memory_services.tables
    assert isinstance(tables, MemoryTables)
    counting = CountingTable(tables.webhooks)
    tables.webhooks = counting  # type: ignore[assignment]
    first, _ = make_community(memory_services)
    second, _ = make_community(memory_services)
    with Receiver() as rx:
        make_webhook(memory_services, first.id, rx.url_for("/1"), events=["post.*"])
        make_webhook(memory_services, first.id, rx.url_for("/2"), events=["member.*"])
        make_webhook(memory_services, second.id, rx.url_for("/3"))
        events = [make_event(first, "post.created") for _ in range(6)]
        events += [make_event(first, "member.joined") for _ in range(3)]
        events += [make_event(second, "reply.created") for _ in range(5)]
        report = dispatch_events(delivery_context(memory_services), events)
        rx.wait_for(14)
    assert report.delivered == 14
    assert counting.queries == {f"C#{first.id}": 1, f"C#{second.id}": 1}


def test_a_slow_endpoint_does_not_hold_up_the_others(memory_services: wiring.Services) -> None:
    community, _ = make_community(memory_services)
    other, _ = make_community(memory_services)
    with Receiver((200, {}, b"ok", 1.5)) as slow, Receiver() as fast_a, Receiver() as fast_b:
        # The slow webhook is created first so it is planned first for every event.
        make_webhook(memory_services, community.id, slow.url_for("/slow"), events=["post.*"])
        make_webhook(memory_services, community.id, fast_a.url_for("/a"), events=["post.*"])
        make_webhook(memory_services, other.id, fast_b.url_for("/b"))
        events = [make_event(community, "post.created") for _ in range(3)]
        events += [make_event(other, "member.joined") for _ in range(3)]
        started = time.time()
        report = dispatch_events(delivery_context(memory_services), events)
        elapsed = time.time() - started
        fast = fast_a.wait_for(3) + fast_b.wait_for(3)
        slow_requests = slow.wait_for(3)
    assert report.delivered == 9
    latest_fast = max(r.received_at for r in fast) - started
    # Each slow request answers 1.5 s after it arrives; the fast ones are long done by then
    # (bounds loose enough for a loaded 2-core CI machine).
    assert latest_fast < 1.0, latest_fast
    assert min(r.received_at for r in slow_requests) + 1.5 - started > latest_fast + 0.4
    # Three 1.5 s answers one after another would take 4.5 s; concurrently about 1.5 s.
    assert elapsed < 3.5, elapsed


def test_concurrency_is_bounded(memory_services: wiring.Services) -> None:
    wiring.configure(settings=Settings(allow_private_targets=True, dispatch_concurrency=2))
    services = wiring.services()
    community, _ = make_community(services)
    with Receiver((200, {}, b"ok", 0.3)) as rx:
        make_webhook(services, community.id, rx.url_for("/x"))
        events = [make_event(community) for _ in range(4)]
        started = time.monotonic()
        report = dispatch_events(delivery_context(services), events)
        elapsed = time.monotonic() - started
    assert report.delivered == 4
    assert 0.55 < elapsed < 1.5, elapsed  # two waves of two


def test_a_retried_batch_delivers_nothing_twice(memory_services: wiring.Services) -> None:
    community, _ = make_community(memory_services)
    with Receiver() as ok, Receiver((500,)) as failing:
        make_webhook(memory_services, community.id, ok.url_for("/ok"), events=["post.*"])
        make_webhook(memory_services, community.id, failing.url_for("/down"), events=["post.*"])
        events = [make_event(community, "post.created") for _ in range(3)]
        ctx = delivery_context(memory_services)
        first = dispatch_events(ctx, events)
        second = dispatch_events(ctx, events + events[:1])  # the stream hands it all over again
        time.sleep(0.05)
        assert len(ok.requests) == 3 and len(failing.requests) == 3
        assert len({r.header("webhook-id") for r in ok.requests}) == 3
    assert first.delivered == 3 and first.failed == 3
    # The failed ones were written into their retry group: the start runs again (idempotent).
    assert second.attempted == 0 and second.skipped == 3 and second.resumed == 3
    scheduler = memory_services.scheduler
    names = {s["name"] for s in scheduler.started}  # type: ignore[attr-defined]
    assert len(scheduler.started) == 6 and 1 <= len(names) <= 2  # type: ignore[attr-defined]


def test_a_pending_delivery_left_by_a_crash_is_attempted_again(
    memory_services: wiring.Services,
) -> None:
    community, _ = make_community(memory_services)
    with Receiver() as rx:
        webhook = make_webhook(memory_services, community.id, rx.url_for("/x"))
        event = make_event(community)
        ctx = delivery_context(memory_services)
        # An earlier invocation created the delivery and died before attempting it.
        ctx.deliveries.create(new_delivery(event, webhook), expires_at=ctx.expires_at())
        report = dispatch_events(ctx, [event])
        [request] = rx.wait_for(1)
    assert report.delivered == 1
    assert request.header("X-Hookline-Attempt") == "1"
    stored = ctx.deliveries.find(community.id, delivery_id_for(event, webhook.id))
    assert stored is not None and stored.state == "delivered" and stored.attempts == 1


def test_failed_first_attempt_starts_retries(memory_services: wiring.Services) -> None:
    community, _ = make_community(memory_services)
    with Receiver((503, {"Retry-After": "600"}, b"busy")) as rx:
        webhook = make_webhook(memory_services, community.id, rx.url_for("/busy"))
        event = make_event(community)
        report = dispatch_events(delivery_context(memory_services), [event])
    assert report.failed == 1 and report.failed_event_ids == set()
    delivery_id = delivery_id_for(event, webhook.id)
    [started] = memory_services.scheduler.started  # type: ignore[attr-defined]
    stored = delivery_context(memory_services).deliveries.find(community.id, delivery_id)
    assert stored is not None and stored.state == "retrying" and stored.next_attempt_at
    assert started["name"] == stored.retry_group == started["document"]["group"]
    document = started["document"]
    assert document["webhook_id"] == webhook.id and document["attempt"] == 1
    assert document["since"] <= stored.created_at < document["until"]
    # The first retry counts from the window's end; the Retry-After lengthens this member's.
    assert 300 <= document["wait_seconds"] <= 361
    assert policy.seconds_until(stored.next_attempt_at, 1) >= 599


def test_retry_count_zero_fails_at_once(memory_services: wiring.Services) -> None:
    community, _ = make_community(memory_services)
    with Receiver((500,)) as rx:
        webhook = make_webhook(memory_services, community.id, rx.url_for("/x"), retry_count=0)
        event = make_event(community)
        report = dispatch_events(delivery_context(memory_services), [event])
    assert report.failed == 1 and report.failed_event_ids == set()
    assert memory_services.scheduler.started == []  # type: ignore[attr-defined]
    stored = delivery_context(memory_services).deliveries.find(
        community.id, delivery_id_for(event, webhook.id)
    )
    assert stored is not None and stored.state == "failed"


def test_unschedulable_retry_reports_the_event(memory_services: wiring.Services) -> None:
    scheduler = memory_services.scheduler
    scheduler.fail = True  # type: ignore[attr-defined]
    community, _ = make_community(memory_services)
    with Receiver() as ok, Receiver((503, {"Retry-After": "60"}, b"busy")) as down:
        make_webhook(memory_services, community.id, ok.url_for("/ok"), events=["post.*"])
        hook = make_webhook(
            memory_services, community.id, down.url_for("/down"), events=["member.*"]
        )
        good = make_event(community, "post.created")
        bad = make_event(community, "member.joined")
        ctx = delivery_context(memory_services)
        report = dispatch_events(ctx, [good, bad])
        assert report.failed_event_ids == {bad.id}
        # The stream hands both over again and the scheduler is back: nothing is sent again,
        # the failed delivery's retries start (it still gets 1 + retry_count attempts).
        scheduler.fail = False  # type: ignore[attr-defined]
        again = dispatch_events(ctx, [good, bad])
        time.sleep(0.05)
        assert len(ok.requests) == 1 and len(down.requests) == 1
    assert again.failed_event_ids == set() and again.skipped == 1 and again.resumed == 1
    assert again.attempted == 0
    [started] = scheduler.started  # type: ignore[attr-defined]
    stored = ctx.deliveries.find(bad.community_id, delivery_id_for(bad, hook.id))
    assert stored is not None and stored.state == "retrying" and stored.attempts == 1
    assert started["name"] == stored.retry_group
    assert stored.max_attempts == 1 + hook.retry_count


def test_a_community_whose_webhooks_cannot_be_read_fails_only_its_events(
    memory_services: wiring.Services,
) -> None:
    tables = memory_services.tables
    assert isinstance(tables, MemoryTables)
    healthy, _ = make_community(memory_services)
    broken, _ = make_community(memory_services)
    tables.webhooks = CountingTable(  # type: ignore[assignment]
        tables.webhooks, fail_partitions=frozenset({f"C#{broken.id}"})
    )
    with Receiver() as rx:
        make_webhook(memory_services, healthy.id, rx.url_for("/ok"))
        fine = make_event(healthy)
        lost = [make_event(broken), make_event(broken)]
        report = dispatch_events(delivery_context(memory_services), [fine, *lost])
        rx.wait_for(1)
    assert report.failed_event_ids == {e.id for e in lost}
    assert report.delivered == 1


def test_operational_events_are_delivered_like_any_other(memory_services: wiring.Services) -> None:
    community, _ = make_community(memory_services)
    with Receiver() as rx:
        webhook = make_webhook(memory_services, community.id, rx.url_for("/ops"))
        event = make_event(community, "delivery.failed", {"delivery_id": "dlv_1"}, operational=True)
        report = dispatch_events(delivery_context(memory_services), [event])
        [request] = rx.wait_for(1)
    assert report.delivered == 1 and request.header("X-Hookline-Event") == "delivery.failed"
    stored = delivery_context(memory_services).deliveries.find(
        community.id, delivery_id_for(event, webhook.id)
    )
    assert stored is not None and stored.operational is True


# --------------------------------------------------------------------------------------------
# The Lambda handler


def test_sample_stream_batch_is_dispatched(
    memory_services: wiring.Services, lambda_context: Any
) -> None:
    """events/dispatch-stream-batch.json, as `sam local invoke -e` would pass it."""
    community, _ = make_community(memory_services)
    text = json.dumps(sample("dispatch-stream-batch")).replace("com_REPLACE", community.id)
    with Receiver() as rx:
        make_webhook(memory_services, community.id, rx.url_for("/all"))
        response = dispatch_handler()(json.loads(text), lambda_context)
        requests = rx.wait_for(2)
    assert response == {"batchItemFailures": []}
    bodies = [json.loads(r.body) for r in requests]
    post = next(b for b in bodies if b["event"] == "post.created")
    # Numbers come out of the stream image as Decimal and go out as JSON numbers.
    assert post["data"]["post_id"] == 1024 and post["data"]["score"] == 4.5
    assert post["actor"] == {"user_id": 45, "display_name": "Priya Sharma"}
    member = next(b for b in bodies if b["event"] == "member.joined")
    assert "actor" not in member


def test_sample_queue_batch_is_delivered(
    memory_services: wiring.Services, lambda_context: Any
) -> None:
    """events/deliver-queue-batch.json, as `sam local invoke DeliverFunction -e` would pass it."""
    community, _ = make_community(memory_services)
    with Receiver() as rx:
        hook = make_webhook(memory_services, community.id, rx.url_for("/all"))
        text = (
            json.dumps(sample("deliver-queue-batch"))
            .replace("com_REPLACE", community.id)
            .replace("wh_REPLACE", hook.id)
        )
        response = load_function("deliver")(json.loads(text), lambda_context)
        [request] = rx.wait_for(1)
    assert response == {"batchItemFailures": []}
    sent = Event.model_validate(json.loads(json.loads(text)["Records"][0]["body"])["event"])
    assert request.header("webhook-id") == delivery_id_for(sent, hook.id)
    assert json.loads(request.body)["data"]["post_id"] == 1024
    standardwebhooks.Webhook(SECRET).verify(request.body, request.headers)


class RefusingQueue:
    """A delivery queue that refuses the orders of one webhook (a failed SendMessageBatch entry)."""

    def __init__(self, refused_webhook: str) -> None:
        self.refused_webhook = refused_webhook
        self.sent: list[dict[str, Any]] = []

    def send(self, messages: Any) -> list[int]:
        refused = [i for i, m in enumerate(messages) if m["webhook_id"] == self.refused_webhook]
        self.sent.extend(m for i, m in enumerate(messages) if i not in refused)
        return refused


def test_dispatcher_names_exactly_the_records_not_queued(
    memory_services: wiring.Services, lambda_context: Any
) -> None:
    community, _ = make_community(memory_services)
    posts = make_webhook(memory_services, community.id, "https://127.0.0.1/p", events=["post.*"])
    members = make_webhook(
        memory_services, community.id, "https://127.0.0.1/m", events=["member.*"]
    )
    queue = RefusingQueue(members.id)
    wiring.configure(queue=queue)
    queued = make_event(community, "post.created")
    refused = make_event(community, "member.joined")
    nobody = make_event(community, "space.created")
    batch = stream_batch([queued, refused, nobody], first_sequence=500)
    malformed = event_item(make_event(community))
    del malformed["event"]
    batch["Records"].append(stream_record(malformed, "503"))
    batch["Records"].append(stream_record(event_item(queued), "504", event_name="MODIFY"))
    response = dispatch_handler()(batch, lambda_context)
    assert response == {"batchItemFailures": [{"itemIdentifier": "501"}, {"itemIdentifier": "503"}]}
    assert [(m["webhook_id"], m["event"]["id"]) for m in queue.sent] == [(posts.id, queued.id)]


def test_consumer_names_exactly_the_messages_not_finished(
    memory_services: wiring.Services, lambda_context: Any
) -> None:
    from hookline_dev.local.queue import sqs_record

    memory_services.scheduler.fail = True  # type: ignore[attr-defined]
    community, _ = make_community(memory_services)
    with Receiver() as ok, Receiver((500,)) as down:
        good = make_webhook(memory_services, community.id, ok.url_for("/ok"))
        bad = make_webhook(memory_services, community.id, down.url_for("/down"))
        event = make_event(community, "post.created")
        records = [
            sqs_record(
                message_id=f"m{i}",
                receipt_handle=f"r{i}",
                body=json.dumps({"webhook_id": hook.id, "event": event.model_dump()}),
                source_arn="arn:aws:sqs:us-east-1:123456789012:deliveries",
            )
            for i, hook in enumerate((good, bad))
        ]
        records.append(
            sqs_record(message_id="m2", receipt_handle="r2", body="{}", source_arn="arn:x")
        )
        response = load_function("deliver")({"Records": records}, lambda_context)
        ok.wait_for(1)
    # m1's attempt failed and its retries could not be scheduled; m2 is not an order.
    assert response == {"batchItemFailures": [{"itemIdentifier": "m1"}, {"itemIdentifier": "m2"}]}


def test_a_batch_where_every_record_fails_raises(
    memory_services: wiring.Services, lambda_context: Any
) -> None:
    from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

    community, _ = make_community(memory_services)
    broken = event_item(make_event(community))
    del broken["data"]
    del broken["event"]
    with pytest.raises(BatchProcessingError):
        dispatch_handler()({"Records": [stream_record(broken, "1")]}, lambda_context)
