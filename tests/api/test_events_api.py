"""Publishing, the delivery log and the test endpoint through the API (API Gateway events), and
the whole path on moto: publish -> the events table's real stream -> the dispatch handler ->
a loopback receiver."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import standardwebhooks
from botocore.config import Config
from moto import mock_aws

from hookline import clock, wiring
from hookline.adapters import dynamodb
from hookline.adapters.dynamodb import DynamoTables
from hookline.config import Settings
from hookline.domain.delivery import delivery_id_for
from hookline.domain.dispatch import dispatch_events
from hookline.domain.models import ApiKey, Community, Event
from hookline.domain.repositories import EventRepository
from tests.apigw import ApiResponse, api_event, call
from tests.delivery_helpers import (
    SECRET,
    delivery_context,
    dispatch_handler,
    make_community,
    make_event,
    make_webhook,
)
from tests.receivers import Receiver


def _publish(community: Community, key: ApiKey, body: Any = ..., **kwargs: Any) -> ApiResponse:
    return call(
        api_event(
            "api-publish-event", community_id=community.id, key_id=key.id, body=body, **kwargs
        )
    )


# --------------------------------------------------------------------------------------------
# Publishing


def test_publish_accepts_and_stores_the_event(memory_services: wiring.Services) -> None:
    community, key = make_community(memory_services)
    response = _publish(community, key, {"event": "post.created", "data": {"post_id": 1}})
    assert response.status == 202
    body = response.body
    assert body["id"].startswith("evt_") and body["event"] == "post.created"
    assert body["status"] == "accepted" and body["duplicate"] is False
    assert body["community_id"] == community.id and body["timestamp"].endswith("Z")
    item = memory_services.tables.events.get(f"C#{community.id}", f"E#{body['id']}")
    assert item is not None and item["data"] == {"post_id": 1} and item["actor"] is None
    assert item["site_url"] == community.site_url
    week = clock.epoch_seconds() + 7 * 86400
    assert week - 60 <= item["expires_at"] <= week + 60


def test_sample_publish_event_file(memory_services: wiring.Services) -> None:
    """events/api-publish-event.json as is (client id, actor, data)."""
    community, key = make_community(memory_services)
    response = _publish(community, key)
    assert response.status == 202 and response.body["id"] == "post-1024-created"
    stored = EventRepository(memory_services.tables.events).get(community.id, "post-1024-created")
    assert stored.actor == {"user_id": 45, "display_name": "Priya Sharma", "username": "priya"}


def test_a_repeated_client_id_is_idempotent(memory_services: wiring.Services) -> None:
    community, key = make_community(memory_services)
    first = _publish(community, key, {"event": "member.joined", "id": "j-1", "data": {"n": 1}})
    again = _publish(community, key, {"event": "member.joined", "id": "j-1", "data": {"n": 1}})
    assert first.status == 202 and again.status == 200
    assert again.body["id"] == "j-1" and again.body["duplicate"] is True
    assert again.body["data"] == {"n": 1} and again.body["timestamp"] == first.body["timestamp"]
    # The same id with another body is a conflict, never a silent duplicate.
    changed = _publish(community, key, {"event": "member.joined", "id": "j-1", "data": {"n": 2}})
    assert changed.status == 409 and changed.body["code"] == "conflict"
    assert changed.body["data"] == {"status": 409, "field": "id"}
    items = memory_services.tables.events.scan_all()  # type: ignore[attr-defined]
    assert len(items) == 1 and items[0]["data"] == {"n": 1}
    # The same client id in another community is another event.
    other, other_key = make_community(memory_services)
    assert _publish(other, other_key, {"event": "member.joined", "id": "j-1"}).status == 202


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"event": "post.exploded", "data": {}}, "event"),
        ({"data": {}}, "event"),
        ({"event": "", "data": {}}, "event"),
        ({"event": 5, "data": {}}, "event"),
        ({"event": "post.created", "data": [1, 2]}, "data"),
        ({"event": "post.created", "data": "text"}, "data"),
        ({"event": "post.created", "actor": "someone"}, "actor"),
        ({"event": "post.created", "id": "has space"}, "id"),
        ({"event": "post.created", "id": "slash/y"}, "id"),
        ({"event": "post.created", "id": ""}, "id"),
        ({"event": "post.created", "id": "x" * 101}, "id"),
        ({"event": "post.created", "id": 12}, "id"),
        ({"event": "post.created", "type": "post.created"}, "type"),
        ({"event": "test.ping"}, "event"),
        ({"event": "delivery.failed"}, "event"),
        ([1, 2], "body"),
    ],
)
def test_invalid_publish_is_400_naming_the_field(
    memory_services: wiring.Services, body: Any, field: str
) -> None:
    community, key = make_community(memory_services)
    response = _publish(community, key, body)
    assert response.status == 400, response.body
    assert response.body["code"] == "invalid_param"
    assert response.body["data"]["status"] == 400
    assert response.body["data"]["field"] == field, response.body
    assert memory_services.tables.events.scan_all() == []  # type: ignore[attr-defined]


def test_client_id_accepts_the_documented_alphabet(memory_services: wiring.Services) -> None:
    community, key = make_community(memory_services)
    for event_id in ("a", "Order_42.v1:created-x", "x" * 100):
        assert _publish(community, key, {"event": "post.created", "id": event_id}).status == 202


def test_invalid_json_and_huge_bodies(memory_services: wiring.Services) -> None:
    community, key = make_community(memory_services)
    broken = _publish(community, key, raw_body='{"event": "post.created",')
    assert broken.status == 400 and broken.body["data"]["field"] == "body"
    huge = {"event": "post.created", "data": {"blob": "x" * (256 * 1024)}}
    too_large = _publish(community, key, huge)
    assert too_large.status == 413 and too_large.body["code"] == "payload_too_large"


def test_publish_is_scoped_to_the_callers_community(memory_services: wiring.Services) -> None:
    community, key = make_community(memory_services)
    other, _ = make_community(memory_services)
    response = call(
        api_event(
            "api-publish-event",
            community_id=community.id,
            key_id=key.id,
            path=f"/v1/communities/{other.id}/events",
            body={"event": "post.created"},
        )
    )
    assert response.status == 403
    missing = call(
        api_event(
            "api-publish-event",
            role="operator",
            path="/v1/communities/com_missing/events",
            body={"event": "post.created"},
        )
    )
    assert missing.status == 404 and missing.body["code"] == "not_found"


# --------------------------------------------------------------------------------------------
# The delivery log


def _logs(
    community: Community, key: ApiKey, webhook_id: str, query: dict[str, str] | None = None
) -> ApiResponse:
    return call(
        api_event(
            "api-webhook-logs",
            community_id=community.id,
            key_id=key.id,
            webhook_id=webhook_id,
            query=query or {},
        )
    )


def test_logs_list_attempts_newest_first_with_filters_and_pages(
    memory_services: wiring.Services,
) -> None:
    community, key = make_community(memory_services)
    script: list[tuple[Any, ...]] = [
        (200, {}, "first"),
        (500, {}, "second"),
        (200, {}, "third"),
        (404, {}, "fourth"),
    ]
    with Receiver(script) as rx:
        webhook = make_webhook(memory_services, community.id, rx.url_for("/log"))
        ctx = delivery_context(memory_services)
        kinds = ["post.created", "member.joined", "post.created", "member.joined"]
        for kind in kinds:
            dispatch_events(ctx, [make_event(community, kind)])
            time.sleep(0.002)  # distinct created_at milliseconds keep the order observable

    everything = _logs(community, key, webhook.id)
    assert everything.status == 200
    data = everything.body["data"]
    assert [e["response_body"] for e in data] == ["fourth", "third", "second", "first"]
    assert everything.body["page"] == 1 and everything.body["per_page"] == 20
    assert everything.body["next_cursor"] is None
    entry = data[0]
    for name in (
        "id",
        "delivery_id",
        "event",
        "status_code",
        "response_time_ms",
        "created_at",
        "success",
        "attempt",
        "response_body",
        "error",
    ):
        assert name in entry
    assert entry["status_code"] == 404 and entry["success"] is False and entry["attempt"] == 1
    assert entry["error"].startswith("HTTP 404")

    failed = _logs(community, key, webhook.id, {"status": "failed"}).body["data"]
    assert [e["status_code"] for e in failed] == [404, 500]
    succeeded = _logs(community, key, webhook.id, {"status": "success"}).body["data"]
    assert [e["response_body"] for e in succeeded] == ["third", "first"]
    members = _logs(community, key, webhook.id, {"event": "member.joined"}).body["data"]
    assert {e["event"] for e in members} == {"member.joined"} and len(members) == 2
    both = _logs(community, key, webhook.id, {"event": "post.created", "status": "failed"})
    assert both.body["data"] == []

    page_one = _logs(community, key, webhook.id, {"per_page": "3"}).body
    assert len(page_one["data"]) == 3 and page_one["next_cursor"]
    by_cursor = _logs(
        community, key, webhook.id, {"per_page": "3", "cursor": page_one["next_cursor"]}
    ).body
    assert [e["response_body"] for e in by_cursor["data"]] == ["first"]
    assert by_cursor["next_cursor"] is None
    page_two = _logs(community, key, webhook.id, {"per_page": "3", "page": "2"}).body
    assert [e["response_body"] for e in page_two["data"]] == ["first"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"per_page": "51"}, "per_page"),
        ({"per_page": "0"}, "per_page"),
        ({"page": "0"}, "page"),
        ({"page": "two"}, "page"),
        ({"status": "ok"}, "status"),
        ({"cursor": "not-a-cursor"}, "cursor"),
    ],
)
def test_bad_log_queries_are_400(
    memory_services: wiring.Services, query: dict[str, str], field: str
) -> None:
    community, key = make_community(memory_services)
    webhook = make_webhook(memory_services, community.id, "https://example.com/h")
    response = _logs(community, key, webhook.id, query)
    assert response.status == 400, response.body
    assert response.body["data"]["field"] == field


def test_logs_of_an_unknown_or_foreign_webhook_are_404(memory_services: wiring.Services) -> None:
    community, key = make_community(memory_services)
    other, _ = make_community(memory_services)
    foreign = make_webhook(memory_services, other.id, "https://example.com/h")
    assert _logs(community, key, "wh_missing").status == 404
    response = _logs(community, key, foreign.id)
    assert response.status == 404 and response.body["code"] == "not_found"


def test_sample_logs_event_file(memory_services: wiring.Services) -> None:
    community, key = make_community(memory_services)
    webhook = make_webhook(memory_services, community.id, "https://example.com/h")
    event = api_event(
        "api-webhook-logs", community_id=community.id, key_id=key.id, webhook_id=webhook.id
    )
    response = call(event)
    assert response.status == 200 and response.body["data"] == []


# --------------------------------------------------------------------------------------------
# The test endpoint


def _test(community: Community, key: ApiKey, webhook_id: str) -> ApiResponse:
    return call(
        api_event(
            "api-webhook-test", community_id=community.id, key_id=key.id, webhook_id=webhook_id
        )
    )


def test_test_endpoint_sends_a_signed_ping_and_logs_it(memory_services: wiring.Services) -> None:
    community, key = make_community(memory_services)
    with Receiver((200, {}, "pong")) as rx:
        webhook = make_webhook(
            memory_services, community.id, rx.url_for("/ping"), events=["member.*"]
        )
        response = _test(community, key, webhook.id)
        [request] = rx.wait_for(1)
    assert response.status == 200
    body = response.body
    assert body["success"] is True and body["status_code"] == 200
    assert body["response_body"] == "pong" and isinstance(body["response_time"], int)
    assert body["message"] == "Webhook test successful."
    sent = standardwebhooks.Webhook(SECRET).verify(request.body, request.headers)
    assert sent["event"] == "test.ping" and sent["community_id"] == community.id
    assert request.header("X-Hookline-Event") == "test.ping"
    assert request.header("X-Hookline-Delivery") == body["delivery_id"]

    [entry] = _logs(community, key, webhook.id).body["data"]
    assert entry["event"] == "test.ping" and entry["delivery_id"] == body["delivery_id"]
    assert entry["success"] is True and entry["status_code"] == 200
    # Never stored as an event: it must not fan out to the community's other webhooks.
    assert memory_services.tables.events.scan_all() == []  # type: ignore[attr-defined]


def test_test_endpoint_reports_failure_and_works_for_inactive_webhooks(
    memory_services: wiring.Services,
) -> None:
    community, key = make_community(memory_services)
    with Receiver((500, {}, "broken")) as rx:
        webhook = make_webhook(
            memory_services, community.id, rx.url_for("/down"), status="inactive"
        )
        response = _test(community, key, webhook.id)
        rx.wait_for(1)
    body = response.body
    assert response.status == 200
    assert body["success"] is False and body["status_code"] == 500
    assert body["response_body"] == "broken"
    assert body["message"].startswith("Webhook test failed: HTTP 500")
    stored = delivery_context(memory_services).deliveries.find(community.id, body["delivery_id"])
    assert stored is not None and stored.state == "failed"
    assert memory_services.scheduler.started == []  # type: ignore[attr-defined]
    [entry] = _logs(community, key, webhook.id, {"status": "failed"}).body["data"]
    assert entry["status_code"] == 500


def test_test_endpoint_refuses_private_targets_in_aws(memory_services: wiring.Services) -> None:
    wiring.configure(settings=Settings(allow_private_targets=False))
    community, key = make_community(wiring.services())
    with Receiver() as rx:
        webhook = make_webhook(wiring.services(), community.id, rx.url_for("/inside"))
        body = _test(community, key, webhook.id).body
        time.sleep(0.05)
        assert rx.requests == []
    assert body["success"] is False and body["status_code"] is None
    assert "refused" in body["message"]


def test_test_endpoint_unknown_webhook_is_404(memory_services: wiring.Services) -> None:
    community, key = make_community(memory_services)
    assert _test(community, key, "wh_missing").status == 404


# --------------------------------------------------------------------------------------------
# End to end on moto: the events table's real stream feeds the dispatch handler


@pytest.fixture
def aws_services(memory_services: wiring.Services) -> Iterator[wiring.Services]:
    from hookline_dev import template

    with mock_aws():
        dynamodb.client.cache_clear()
        client = boto3.client("dynamodb", region_name="us-east-1")
        env = template.table_environment(template.create_tables(client, "e2e"))
        settings = Settings(
            communities_table=env["COMMUNITIES_TABLE"],
            webhooks_table=env["WEBHOOKS_TABLE"],
            events_table=env["EVENTS_TABLE"],
            deliveries_table=env["DELIVERIES_TABLE"],
            directory_table=env["DIRECTORY_TABLE"],
            idempotency_table=env["IDEMPOTENCY_TABLE"],
            allow_private_targets=True,
            delivery_timeout_seconds=2.0,
        )
        wiring.configure(settings=settings, tables=DynamoTables(settings))
        try:
            yield wiring.services()
        finally:
            dynamodb.client.cache_clear()


def _stream_batch_since(table: str, iterators: dict[str, str]) -> dict[str, Any]:
    """New records of the table's stream, as the Lambda event source mapping hands them over."""
    client = boto3.client("dynamodb", region_name="us-east-1")
    arn = client.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    streams = boto3.client(
        "dynamodbstreams",
        region_name="us-east-1",
        config=Config(account_id_endpoint_mode="disabled"),
    )
    records: list[dict[str, Any]] = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        shard_id = shard["ShardId"]
        iterator = (
            iterators.get(shard_id)
            or streams.get_shard_iterator(
                StreamArn=arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
        )
        answer = streams.get_records(ShardIterator=iterator)
        iterators[shard_id] = answer["NextShardIterator"]
        for record in answer["Records"]:
            image = dict(record["dynamodb"])
            image["ApproximateCreationDateTime"] = int(
                image["ApproximateCreationDateTime"].timestamp()
            )
            records.append({**record, "dynamodb": image, "eventSourceARN": arn})
    return {"Records": records}


def test_publish_to_receiver_through_the_real_stream(
    aws_services: wiring.Services, lambda_context: Any
) -> None:
    community, key = make_community(aws_services)
    events_table = aws_services.settings.events_table
    iterators: dict[str, str] = {}
    with (
        Receiver((200, {}, "thanks")) as posts,
        Receiver() as members,
        Receiver() as inactive,
    ):
        subscribed = make_webhook(
            aws_services, community.id, posts.url_for("/p"), events=["post.*"]
        )
        make_webhook(aws_services, community.id, members.url_for("/m"), events=["member.*"])
        make_webhook(
            aws_services,
            community.id,
            inactive.url_for("/i"),
            events=["post.*"],
            status="inactive",
        )
        published = _publish(community, key)
        assert published.status == 202
        batch = _stream_batch_since(events_table, iterators)
        assert [r["eventName"] for r in batch["Records"]] == ["INSERT"]

        handler = dispatch_handler()
        started = time.monotonic()
        assert handler(batch, lambda_context) == {"batchItemFailures": []}
        [request] = posts.wait_for(1)
        assert time.monotonic() - started < 1.0

        # Lambda hands the same batch over again (e.g. after a timeout): nothing is sent twice.
        assert handler(batch, lambda_context) == {"batchItemFailures": []}
        # A repeated publish with the same client id adds no stream record.
        assert _publish(community, key).status == 200
        assert _stream_batch_since(events_table, iterators)["Records"] == []

        tested = _test(community, key, subscribed.id)
        assert tested.body["success"] is True and tested.body["response_body"] == "thanks"
        time.sleep(0.05)
        assert len(posts.requests) == 2
        assert members.requests == [] and inactive.requests == []

    sent = standardwebhooks.Webhook(SECRET).verify(request.body, request.headers)
    assert sent["id"] == "post-1024-created" and sent["data"]["post_id"] == 1024
    assert sent["actor"]["display_name"] == "Priya Sharma"
    published = EventRepository(aws_services.tables.events).get(community.id, "post-1024-created")
    delivery_id = delivery_id_for(published, subscribed.id)
    assert request.header("webhook-id") == delivery_id

    log = _logs(community, key, subscribed.id).body["data"]
    assert [e["event"] for e in log] == ["test.ping", "post.created"]
    assert all(e["success"] and e["status_code"] == 200 for e in log)
    stored = delivery_context(aws_services).deliveries.find(community.id, delivery_id)
    assert stored is not None and stored.state == "delivered"


def test_dispatching_a_stored_event_twice_delivers_once(memory_services: wiring.Services) -> None:
    community, key = make_community(memory_services)
    with Receiver() as rx:
        make_webhook(memory_services, community.id, rx.url_for("/once"))
        for _ in range(2):
            _publish(community, key, {"event": "post.created", "id": "same"})
        stored: Event = EventRepository(memory_services.tables.events).get(community.id, "same")
        ctx = delivery_context(memory_services)
        dispatch_events(ctx, [stored])
        dispatch_events(ctx, [stored])
        rx.wait_for(1)
        time.sleep(0.05)
        assert len(rx.requests) == 1
