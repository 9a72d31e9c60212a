"""Chat formats end to end: a webhook with ``format: slack`` (or ``discord``) created through the
API, an event published through the API, the events table's stream record through the real
dispatcher, and a loopback receiver that accepts only what Slack's (Discord's) incoming webhooks
accept: a JSON object with a string ``text`` (``content``), 400 otherwise."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook as StandardWebhook

from hookline import wiring
from hookline.domain.delivery import DeliveryContext, attempt_delivery, new_delivery
from hookline.domain.models import Webhook
from hookline.domain.repositories import event_from_item
from tests.apigw import api_event, call
from tests.delivery_helpers import dispatch_handler, make_community, stream_record
from tests.receivers import Receiver, Recorded

TITLE = 'Launch <day> & "questions" @everyone'


def chat_receiver(field: str) -> Callable[[Recorded], tuple[Any, ...]]:
    """A receiver that behaves like a chat service's incoming webhook: it needs a JSON object
    whose ``field`` is a non-empty string, and answers 400 "invalid_payload" otherwise."""

    def answer(request: Recorded) -> tuple[Any, ...]:
        if (request.header("Content-Type") or "").split(";")[0].strip() != "application/json":
            return (400, {}, b"invalid_payload")
        try:
            body = json.loads(request.body)
        except ValueError:
            return (400, {}, b"invalid_payload")
        if not isinstance(body, dict) or not isinstance(body.get(field), str) or not body[field]:
            return (400, {}, b"invalid_payload")
        return (200, {}, b"ok")

    return answer


@pytest.fixture
def receiver_factory() -> Iterator[Callable[..., Receiver]]:
    """Start loopback receivers (closed after the test)."""
    started: list[Receiver] = []

    def start(script: Any) -> Receiver:
        started.append(Receiver(script))
        return started[-1]

    yield start
    for receiver in started:
        receiver.close()


@pytest.fixture
def community(memory_services: wiring.Services) -> tuple[str, str]:
    created, key = make_community(memory_services, site_url="https://forum.example.com")
    return created.id, key.id


def _create_webhook(community: tuple[str, str], url: str, fmt: str) -> dict[str, Any]:
    community_id, key_id = community
    answer = call(
        api_event(
            "api-create-webhook",
            community_id=community_id,
            key_id=key_id,
            body={"name": f"{fmt} channel", "url": url, "events": ["post.*"], "format": fmt},
        )
    )
    assert answer.status == 201, answer.body
    assert answer.body["format"] == fmt
    return answer.body  # type: ignore[no-any-return]


def _publish_and_dispatch(
    services: wiring.Services, community: tuple[str, str], lambda_context: Any
) -> dict[str, Any]:
    community_id, key_id = community
    answer = call(
        api_event(
            "api-publish-event",
            community_id=community_id,
            key_id=key_id,
            body={
                "event": "post.created",
                "data": {
                    "post_id": 7,
                    "title": TITLE,
                    "url": "https://forum.example.com/t/7",
                },
                "actor": {"user_id": 45, "display_name": "Priya Sharma"},
            },
        )
    )
    assert answer.status == 202, answer.body
    item = services.tables.events.get(f"C#{community_id}", f"E#{answer.body['id']}")
    assert item is not None
    result = dispatch_handler()({"Records": [stream_record(item, "4200")]}, lambda_context)
    assert result == {"batchItemFailures": []}
    return answer.body  # type: ignore[no-any-return]


def _deliveries(community: tuple[str, str], webhook_id: str) -> list[dict[str, Any]]:
    community_id, key_id = community
    path = f"/v1/communities/{community_id}/webhooks/{webhook_id}/deliveries"
    answer = call(
        api_event(
            "api-list-webhooks",
            community_id=community_id,
            key_id=key_id,
            webhook_id=webhook_id,
            path=path,
            query={},
        )
    )
    assert answer.status == 200, answer.body
    return answer.body["data"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(("fmt", "field"), [("slack", "text"), ("discord", "content")])
def test_chat_format_is_accepted_by_a_receiver_that_requires_it(
    fmt: str,
    field: str,
    memory_services: wiring.Services,
    community: tuple[str, str],
    lambda_context: Any,
    receiver_factory: Callable[..., Receiver],
) -> None:
    rx = receiver_factory(chat_receiver(field))
    chat = _create_webhook(community, rx.url_for(f"/{fmt}"), fmt)
    plain = _create_webhook(community, rx.url_for("/plain"), "json")
    event = _publish_and_dispatch(memory_services, community, lambda_context)

    requests = {r.path: r for r in rx.wait_for(2)}
    body = json.loads(requests[f"/{fmt}"].body)
    line = body[field]
    assert "Priya Sharma" in line and "https://forum.example.com/t/7" in line
    assert "\n" not in line
    if fmt == "slack":
        assert set(body) == {"text"}
        assert "&lt;day&gt; &amp;" in line  # Slack reads <...> as links and &...; as entities
    else:
        assert "<day> &" in line
        assert body["allowed_mentions"] == {"parse": []}  # no @everyone ping from user text

    # The chat body is signed like any delivery; receivers verify the raw bytes.
    request = requests[f"/{fmt}"]
    verified = StandardWebhook(chat["secret"]).verify(request.body, request.headers)
    assert verified == body

    [delivered] = _deliveries(community, chat["id"])
    assert delivered["state"] == "delivered" and delivered["event_id"] == event["id"]
    assert delivered["last_status_code"] == 200

    # The same receiver refuses our JSON format: it really checks the body.
    [refused] = _deliveries(community, plain["id"])
    assert refused["last_status_code"] == 400 and refused["state"] == "retrying"


@pytest.mark.parametrize(("fmt", "field"), [("slack", "text"), ("discord", "content")])
def test_attempt_delivery_sends_the_chat_body(
    fmt: str,
    field: str,
    memory_services: wiring.Services,
    community: tuple[str, str],
    receiver_factory: Callable[..., Receiver],
) -> None:
    """The retry step and the test endpoint use attempt_delivery: same body there."""
    rx = receiver_factory(chat_receiver(field))
    created = _create_webhook(community, rx.url_for("/chat"), fmt)
    ctx = DeliveryContext.from_services(memory_services)
    webhook: Webhook = ctx.webhooks.get(community[0], created["id"])
    stored = _publish_only(community)
    event = event_from_item(stored)
    delivery = new_delivery(event, webhook)
    ctx.deliveries.create(delivery, expires_at=ctx.expires_at())
    attempt, outcome = attempt_delivery(ctx, delivery, webhook, event, 1)
    assert outcome.success and attempt.status_code == 200
    [request] = rx.wait_for(1)
    assert isinstance(json.loads(request.body)[field], str)


def _publish_only(community: tuple[str, str]) -> dict[str, Any]:
    community_id, key_id = community
    answer = call(
        api_event(
            "api-publish-event",
            community_id=community_id,
            key_id=key_id,
            body={"event": "post.created", "data": {"title": TITLE}},
        )
    )
    assert answer.status == 202
    item = wiring.services().tables.events.get(f"C#{community_id}", f"E#{answer.body['id']}")
    assert item is not None
    return item


def test_test_endpoint_reports_the_chat_receivers_answer(
    memory_services: wiring.Services,
    community: tuple[str, str],
    receiver_factory: Callable[..., Receiver],
) -> None:
    rx = receiver_factory(chat_receiver("text"))
    created = _create_webhook(community, rx.url_for("/slack"), "slack")
    community_id, key_id = community
    answer = call(
        api_event(
            "api-webhook-test",
            community_id=community_id,
            key_id=key_id,
            webhook_id=created["id"],
        )
    )
    assert answer.status == 200 and answer.body["success"] is True, answer.body
    [request] = rx.wait_for(1)
    assert json.loads(request.body) == {
        "text": "Test delivery from Hookline: your endpoint is reachable — "
        "https://forum.example.com"
    }
