"""One attempt, end to end: the request a real loopback receiver gets, and what is recorded."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from datetime import timedelta
from typing import Any

import pytest
import standardwebhooks
from standardwebhooks.webhooks import WebhookVerificationError

import hookline
from hookline import clock, wiring
from hookline.config import Settings
from hookline.domain import formats
from hookline.domain.attempts import SUCCESS_BODY_LIMIT_BYTES, AttemptOutcome
from hookline.domain.delivery import (
    attempt_delivery,
    build_request,
    delivery_id_for,
    new_delivery,
)
from hookline.domain.models import Delivery, Event, PreviousSecret, Webhook
from hookline.domain.payload import payload_of
from hookline.domain.repositories import WebhookRepository
from tests.delivery_helpers import (
    OLD_SECRET,
    SECRET,
    closed_port,
    delivery_context,
    make_community,
    make_event,
    make_webhook,
)
from tests.receivers import Receiver


def _stored_delivery(services: wiring.Services, event: Event, webhook: Webhook) -> Delivery:
    ctx = delivery_context(services)
    delivery = new_delivery(event, webhook)
    assert ctx.deliveries.create(delivery, expires_at=ctx.expires_at())
    return delivery


def _attempt(
    services: wiring.Services, webhook: Webhook, event: Event, attempt: int = 1
) -> tuple[Any, AttemptOutcome, Delivery]:
    delivery = _stored_delivery(services, event, webhook)
    record, outcome = attempt_delivery(
        delivery_context(services), delivery, webhook, event, attempt
    )
    return record, outcome, delivery


def _body_signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _event_at(event_id: str, timestamp: str) -> Event:
    return Event(id=event_id, community_id="com_1", event="x", data={}, timestamp=timestamp)


def test_delivery_id_is_deterministic_per_event_and_webhook() -> None:
    one = _event_at("evt_1", "2026-11-23T18:25:00.000Z")
    two = _event_at("evt_2", "2026-11-23T18:25:00.000Z")
    assert delivery_id_for(one, "wh_1") == delivery_id_for(one.model_copy(), "wh_1")
    assert delivery_id_for(one, "wh_1") != delivery_id_for(one, "wh_2")
    assert delivery_id_for(one, "wh_1") != delivery_id_for(two, "wh_1")
    assert delivery_id_for(one, "wh_1").startswith("dlv_")
    assert len(delivery_id_for(one, "wh_1")) == 4 + 12 + 20


def test_delivery_ids_sort_by_their_events_time() -> None:
    times = ["2026-11-23T18:25:00.000Z", "2026-11-23T18:25:00.001Z", "2027-01-01T00:00:00.000Z"]
    made = [delivery_id_for(_event_at(f"evt_{9 - n}", t), "wh_9") for n, t in enumerate(times)]
    assert made == sorted(made)


def test_payload_carries_actor_only_when_given(memory_services: wiring.Services) -> None:
    community, _ = make_community(memory_services)
    without = make_event(community, "post.created", {"title": "x"})
    assert set(payload_of(without)) == {
        "id",
        "event",
        "timestamp",
        "site_url",
        "community_id",
        "data",
    }
    with_actor = make_event(community, "post.created", {"title": "x"}, actor={"user_id": 1})
    assert payload_of(with_actor)["actor"] == {"user_id": 1}


def test_receiver_gets_signed_exact_bytes_and_our_headers(
    memory_services: wiring.Services,
) -> None:
    community, _ = make_community(memory_services)
    with Receiver((200, {}, b'{"ok":true}')) as rx:
        webhook = make_webhook(
            memory_services,
            community.id,
            rx.url_for("/hooks/crm?src=hookline"),
            events=["post.*"],
            headers={
                "X-Api-Key": "crm-key",
                "X-Hookline-Event": "spoofed",
                "x-hookline-delivery": "spoofed",
                "User-Agent": "spoofed",
                "Content-Type": "text/plain",
                "webhook-signature": "v1,spoofed",
            },
        )
        event = make_event(
            community,
            "post.created",
            {"post_id": 1024, "title": "Grüße — naïve café", "tags": ["a", "b"], "score": 4.5},
            actor={"user_id": 45, "display_name": "Priya Sharma"},
        )
        before = int(time.time())
        record, outcome, delivery = _attempt(memory_services, webhook, event)
        [request] = rx.wait_for(1)

    assert outcome.success and outcome.status_code == 200
    assert request.method == "POST"
    assert request.path == "/hooks/crm?src=hookline"
    expected_body = formats.to_json(payload_of(event))
    assert request.body == expected_body
    sent = json.loads(request.body)
    assert sent == {
        "id": event.id,
        "event": "post.created",
        "timestamp": event.timestamp,
        "site_url": "https://forum.example.com",
        "community_id": community.id,
        "data": event.data,
        "actor": {"user_id": 45, "display_name": "Priya Sharma"},
    }
    assert sent["timestamp"].endswith("Z")

    assert request.header("Content-Type") == "application/json"
    assert request.header("User-Agent") == f"Hookline/{hookline.__version__}"
    assert request.header("X-Hookline-Event") == "post.created"
    assert request.header("X-Hookline-Delivery") == delivery.id
    assert request.header("X-Hookline-Attempt") == "1"
    stamp = request.header("X-Hookline-Timestamp")
    assert stamp is not None and stamp.isdigit() and before - 1 <= int(stamp) <= time.time() + 1
    assert request.header("webhook-id") == delivery.id
    assert request.header("webhook-timestamp") == stamp
    assert request.header("X-Api-Key") == "crm-key"
    # Custom headers never replace ours (and are not sent twice).
    assert "spoofed" not in json.dumps(request.headers)

    # Standard Webhooks, checked by the public library; sha256= recomputed by hand.
    verified = standardwebhooks.Webhook(SECRET).verify(request.body, request.headers)
    assert verified["id"] == event.id
    assert request.header("X-Hookline-Signature") == _body_signature(SECRET, request.body)
    assert len((request.header("webhook-signature") or "").split()) == 1

    ctx = delivery_context(memory_services)
    stored = ctx.deliveries.find(delivery.community_id, delivery.id)
    assert stored is not None
    assert stored.state == "delivered" and stored.attempts == 1 and stored.last_status_code == 200
    [logged] = ctx.deliveries.attempts(delivery.community_id, delivery.id)
    assert logged == record
    assert logged.model_dump() | {"id": "", "created_at": "", "response_time_ms": 0} == {
        "id": "",
        "delivery_id": delivery.id,
        "community_id": community.id,
        "webhook_id": webhook.id,
        "event_id": event.id,
        "event": "post.created",
        "attempt": 1,
        "status_code": 200,
        "response_time_ms": 0,
        "response_body": '{"ok":true}',
        "error": None,
        "success": True,
        "rate_limit_wait_ms": 0,
        "created_at": "",
    }
    item = memory_services.tables.deliveries.get(f"CD#{community.id}", f"D#{delivery.id}")
    assert item is not None
    retention = clock.epoch_seconds() + 30 * 86400
    assert retention - 60 <= item["expires_at"] <= retention + 60
    refreshed = WebhookRepository(memory_services.tables.webhooks).get(community.id, webhook.id)
    assert refreshed.last_triggered_at is not None and refreshed.last_error is None


def test_rotation_window_signs_with_both_secrets(memory_services: wiring.Services) -> None:
    community, _ = make_community(memory_services)
    future = clock.iso(clock.now() + timedelta(hours=23))
    with Receiver() as rx:
        webhook = make_webhook(
            memory_services,
            community.id,
            rx.url_for("/rotating"),
            previous_secrets=[PreviousSecret(secret=OLD_SECRET, expires_at=future)],
        )
        _attempt(memory_services, webhook, make_event(community))
        [request] = rx.wait_for(1)

    entries = (request.header("webhook-signature") or "").split(" ")
    assert len(entries) == 2 and all(e.startswith("v1,") for e in entries)
    standardwebhooks.Webhook(SECRET).verify(request.body, request.headers)
    standardwebhooks.Webhook(OLD_SECRET).verify(request.body, request.headers)
    with pytest.raises(WebhookVerificationError):
        standardwebhooks.Webhook("whsec_" + "A" * 43).verify(request.body, request.headers)
    # The body scheme keeps the replaced secret and adds the new one as "Next".
    assert request.header("X-Hookline-Signature") == _body_signature(OLD_SECRET, request.body)
    assert request.header("X-Hookline-Signature-Next") == _body_signature(SECRET, request.body)


def test_expired_previous_secret_no_longer_signs(memory_services: wiring.Services) -> None:
    community, _ = make_community(memory_services)
    past = clock.iso(clock.now() - timedelta(minutes=1))
    webhook = make_webhook(
        memory_services,
        community.id,
        "https://example.com/h",
        previous_secrets=[PreviousSecret(secret=OLD_SECRET, expires_at=past)],
    )
    body, headers = build_request(
        webhook, make_event(community), delivery_id="dlv_x", attempt=2, now=clock.now()
    )
    assert len(headers["webhook-signature"].split()) == 1
    standardwebhooks.Webhook(SECRET).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        standardwebhooks.Webhook(OLD_SECRET).verify(body, headers)
    assert headers["X-Hookline-Attempt"] == "2"


def test_plain_text_secret_signs_both_schemes(memory_services: wiring.Services) -> None:
    community, _ = make_community(memory_services)
    webhook = make_webhook(
        memory_services, community.id, "https://example.com/h", secret="my-plain-secret-0123"
    )
    body, headers = build_request(
        webhook, make_event(community), delivery_id="dlv_y", attempt=1, now=clock.now()
    )
    assert headers["X-Hookline-Signature"] == _body_signature("my-plain-secret-0123", body)
    standardwebhooks.Webhook(b"my-plain-secret-0123").verify(body, headers)


def test_webhook_without_secret_is_sent_unsigned(memory_services: wiring.Services) -> None:
    community, _ = make_community(memory_services)
    webhook = make_webhook(memory_services, community.id, "https://example.com/h", secret=None)
    _body, headers = build_request(
        webhook, make_event(community), delivery_id="dlv_z", attempt=1, now=clock.now()
    )
    lowered = {k.lower() for k in headers}
    assert not lowered & {"webhook-id", "webhook-signature", "x-hookline-signature"}
    assert headers["X-Hookline-Delivery"] == "dlv_z"


@pytest.mark.parametrize("fmt", ["slack", "discord"])
def test_chat_formats_are_signed_as_sent(memory_services: wiring.Services, fmt: str) -> None:
    community, _ = make_community(memory_services)
    with Receiver() as rx:
        webhook = make_webhook(memory_services, community.id, rx.url_for("/chat"), format=fmt)
        event = make_event(community, "post.created", {"title": "Welcome"}, actor={"name": "Ana"})
        _attempt(memory_services, webhook, event)
        [request] = rx.wait_for(1)
    sent = json.loads(request.body)
    text = sent["text"] if fmt == "slack" else sent["content"]
    assert "Welcome" in text and "Ana" in text
    standardwebhooks.Webhook(SECRET).verify(request.body, request.headers)
    assert request.header("X-Hookline-Signature") == _body_signature(SECRET, request.body)


@pytest.mark.parametrize(
    ("reply", "status", "error_part"),
    [
        ((500, {}, b"boom"), 500, "HTTP 500"),
        ((404, {}, b"nope"), 404, "HTTP 404"),
        ((302, {"Location": "https://elsewhere.example/x"}, b""), 302, "redirect (302)"),
        ((410, {}, b"gone"), 410, "HTTP 410"),
    ],
)
def test_non_2xx_answers_are_failures(
    memory_services: wiring.Services, reply: tuple[Any, ...], status: int, error_part: str
) -> None:
    community, _ = make_community(memory_services)
    with Receiver(reply) as rx:
        webhook = make_webhook(memory_services, community.id, rx.url_for("/fail"))
        record, outcome, delivery = _attempt(memory_services, webhook, make_event(community))
        assert len(rx.wait_for(1)) == 1
        time.sleep(0.05)
        assert len(rx.requests) == 1  # a redirect is never followed
    assert not outcome.success and outcome.status_code == status
    assert error_part in (outcome.error or "")
    assert record.success is False and record.status_code == status
    assert record.error == outcome.error
    stored = delivery_context(memory_services).deliveries.find(delivery.community_id, delivery.id)
    assert stored is not None
    # The retry policy decides the state; the attempt only records what happened.
    assert stored.state == "pending" and stored.attempts == 1
    assert stored.last_status_code == status and stored.last_error == outcome.error
    refreshed = WebhookRepository(memory_services.tables.webhooks).get(community.id, webhook.id)
    assert refreshed.last_error == outcome.error and refreshed.last_triggered_at is None


def test_timeout_is_a_recorded_failure(memory_services: wiring.Services) -> None:
    wiring.configure(settings=Settings(allow_private_targets=True, delivery_timeout_seconds=0.3))
    services = wiring.services()
    community, _ = make_community(services)
    with Receiver((200, {}, b"late", 3.0)) as rx:
        webhook = make_webhook(services, community.id, rx.url_for("/slow"))
        started = time.monotonic()
        record, outcome, _ = _attempt(services, webhook, make_event(community))
        elapsed = time.monotonic() - started
    assert elapsed < 2.0
    assert not outcome.success and outcome.status_code is None
    assert "timeout" in (outcome.error or "")
    assert record.error == outcome.error and record.status_code is None


def test_connection_refused_is_a_recorded_failure(memory_services: wiring.Services) -> None:
    community, _ = make_community(memory_services)
    webhook = make_webhook(
        memory_services, community.id, f"http://127.0.0.1:{closed_port()}/nobody"
    )
    record, outcome, delivery = _attempt(memory_services, webhook, make_event(community))
    assert not outcome.success and outcome.status_code is None
    assert "refused" in (outcome.error or "")
    stored = delivery_context(memory_services).deliveries.find(delivery.community_id, delivery.id)
    assert stored is not None and stored.last_status_code is None
    assert record.error == outcome.error


def test_private_target_refused_unless_allowed(memory_services: wiring.Services) -> None:
    community, _ = make_community(memory_services)
    wiring.configure(settings=Settings(allow_private_targets=False))
    services = wiring.services()
    with Receiver() as rx:
        webhook = make_webhook(services, community.id, rx.url_for("/inside"))
        record, outcome, _ = _attempt(services, webhook, make_event(community))
        time.sleep(0.05)
        assert rx.requests == []
    assert not outcome.success and "refused" in (outcome.error or "")
    assert record.error == outcome.error


def test_huge_and_non_json_answers_are_kept_short(memory_services: wiring.Services) -> None:
    community, _ = make_community(memory_services)
    huge = b"x" * (2 * 1024 * 1024)
    with Receiver(
        [(200, {}, huge), (200, {"Content-Type": "text/html"}, b"<html>ok</html>")]
    ) as rx:
        webhook = make_webhook(memory_services, community.id, rx.url_for("/big"))
        record, outcome, _ = _attempt(memory_services, webhook, make_event(community))
        assert outcome.success and len(outcome.response_body) == 500
        # A 2xx answer keeps less (its delivery stays one write unit).
        assert record.response_body == "x" * SUCCESS_BODY_LIMIT_BYTES
        second, outcome2, _ = _attempt(memory_services, webhook, make_event(community))
    assert outcome2.success and second.response_body == "<html>ok</html>"


def test_a_sender_that_raises_still_leaves_a_record(memory_services: wiring.Services) -> None:
    def broken(*args: Any, **kwargs: Any) -> AttemptOutcome:
        raise RuntimeError("bug")

    wiring.configure(sender=broken)
    services = wiring.services()
    community, _ = make_community(services)
    webhook = make_webhook(services, community.id, "https://example.com/h")
    record, outcome, _ = _attempt(services, webhook, make_event(community))
    assert not outcome.success and "internal error" in (outcome.error or "")
    assert record.success is False


def test_sender_port_gets_settings(memory_services: wiring.Services) -> None:
    calls: list[dict[str, Any]] = []

    def fake(url: str, body: bytes, headers: Any, *, timeout: float, allow_private: bool):
        calls.append({"url": url, "timeout": timeout, "allow_private": allow_private})
        return AttemptOutcome(success=True, status_code=204, response_time_ms=3)

    wiring.configure(
        sender=fake, settings=Settings(delivery_timeout_seconds=7.5, allow_private_targets=False)
    )
    services = wiring.services()
    community, _ = make_community(services)
    webhook = make_webhook(services, community.id, "https://example.com/h")
    _attempt(services, webhook, make_event(community))
    assert calls == [{"url": "https://example.com/h", "timeout": 7.5, "allow_private": False}]


def test_attempt_logs_one_line_without_secrets(
    memory_services: wiring.Services,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    community, _ = make_community(memory_services)
    caplog.set_level(logging.DEBUG)
    with Receiver((500, {}, b"down")) as rx:
        webhook = make_webhook(
            memory_services,
            community.id,
            rx.url_for("/logged?token=query-secret"),
            headers={"Authorization": "Bearer custom-header-secret"},
        )
        event = make_event(community, data={"title": "body-content-marker"})
        _attempt(memory_services, webhook, event)
        [request] = rx.wait_for(1)
    [line] = [r for r in caplog.records if r.getMessage() == "delivery attempt"]
    fields = vars(line)
    assert fields["event_id"] == event.id and fields["webhook_id"] == webhook.id
    assert fields["success"] is False and fields["status_code"] == 500
    assert fields["url_host"] == "127.0.0.1" and fields["attempt"] == 1
    assert fields["error"].startswith("HTTP 500")
    ours = [vars(r) for r in caplog.records if r.name.startswith("hookline")]
    everything = json.dumps(ours, default=str)
    signature = (request.header("webhook-signature") or "").split(",", 1)[1]
    for secret in (
        SECRET,
        signature,
        "body-content-marker",
        "custom-header-secret",
        "query-secret",
    ):
        assert secret not in everything
    out = capsys.readouterr().out
    [emf] = [json.loads(x) for x in out.splitlines() if x.startswith('{"_aws"')]
    assert emf["DeliveryFailed"] == [1.0] and "DeliveryLatency" in emf
    assert emf["stage"] == "dev" and emf["service"] == "hookline"
    assert emf["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["stage", "service"]]
