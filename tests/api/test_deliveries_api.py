"""Deliveries API (get, list, resend, recover) through the real API handler and events/ samples."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import standardwebhooks

from hookline import clock, wiring
from hookline.domain import delivery_endings, redelivery, retry, retry_workflow
from hookline.domain.delivery import DeliveryContext
from hookline.domain.models import Delivery, Webhook
from tests.api_events import OPERATOR, admin, call_api, load, request
from tests.receivers import Receiver
from tests.retry_fixtures import World, attempt_payload


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver((500, {}, b"down")) as rx:
        yield rx


@pytest.fixture
def api(memory_services: Any, lambda_context: Any) -> Api:
    status, body = call_api(
        request("api-create-community.json", authorizer=OPERATOR), lambda_context
    )
    assert status == 201, body
    return Api(body, lambda_context)


class Api:
    """A community created through the API, its admin key's authorizer context, and helpers."""

    def __init__(self, community: dict[str, Any], context: Any) -> None:
        self.community_id: str = community["id"]
        self.auth = admin(community["id"], community["api_key"]["id"])
        self.context = context
        self.world = World(
            ctx=DeliveryContext.from_services(wiring.services()),
            community=DeliveryContext.from_services(wiring.services()).communities.get(
                community["id"]
            ),
        )

    @property
    def scheduler(self) -> Any:
        return wiring.services().scheduler

    def webhook(self, url: str, **fields: Any) -> Webhook:
        body = {"url": url, "events": ["post.*"], **fields}
        status, created = self.call(
            "api-create-webhook.json",
            path=f"/v1/communities/{self.community_id}/webhooks",
            body=body,
        )
        assert status == 201, created
        return self.world.get_webhook(created["id"])

    def failed_delivery(self, webhook: Webhook) -> Delivery:
        """A delivery whose attempt failed and that gave up (as after its last retry)."""
        delivery, _ = self.world.first_attempt(webhook)
        delivery_endings.give_up(self.world.ctx, delivery.community_id, delivery.id)
        return self.world.delivery(delivery.id)

    def base(self, webhook_id: str) -> str:
        return f"/v1/communities/{self.community_id}/webhooks/{webhook_id}"

    def call(self, template: str, **changes: Any) -> tuple[int, Any]:
        changes.setdefault("authorizer", self.auth)
        return call_api(request(template, **changes), self.context)

    def get(self, path: str) -> tuple[int, Any]:
        return self.call("api-list-webhooks.json", path=path)

    def resend(self, webhook_id: str, delivery_id: str) -> tuple[int, Any]:
        path = f"{self.base(webhook_id)}/deliveries/{delivery_id}/resend"
        return self.call("api-delivery-resend.json", path=path)

    def recover(self, webhook_id: str, body: Any = ..., **changes: Any) -> tuple[int, Any]:
        return self.call(
            "api-webhook-recover.json",
            path=f"{self.base(webhook_id)}/recover",
            body=body,
            **changes,
        )


# -- GET ----------------------------------------------------------------------------------


def test_get_a_delivery_with_all_its_attempts(api: Api, lambda_context: Any) -> None:
    with Receiver([(500,), (502,), (200,)]) as rx:
        webhook = api.webhook(rx.url_for("/hook"))
        delivery, outcome = api.world.first_attempt(webhook)
        retry.start_retries(api.world.ctx, delivery, webhook, outcome)
        for _ in (2, 3):
            retry_workflow.run_round(api.world.ctx, attempt_payload(delivery))

    status, body = api.get(f"{api.base(webhook.id)}/deliveries/{delivery.id}")

    assert status == 200, body
    assert body["id"] == delivery.id
    assert body["state"] == "delivered"
    assert body["attempts"] == 3
    assert body["webhook_id"] == webhook.id and body["event"] == "post.created"
    log = body["attempt_log"]
    assert [(a["attempt"], a["status_code"], a["success"]) for a in log] == [
        (1, 500, False),
        (2, 502, False),
        (3, 200, True),
    ]
    for entry in log:
        assert {"id", "created_at", "response_time_ms", "response_body", "error"} <= set(entry)


def test_get_an_unknown_or_foreign_delivery_is_404(api: Api, receiver: Receiver) -> None:
    webhook = api.webhook(receiver.url_for("/a"))
    other = api.webhook(receiver.url_for("/b"))
    delivery, _ = api.world.first_attempt(webhook)

    status, body = api.get(f"{api.base(webhook.id)}/deliveries/dlv_nope")
    assert status == 404 and body["code"] == "not_found"
    assert body["data"]["status"] == 404
    # The delivery exists but belongs to another webhook of the community.
    status, body = api.get(f"{api.base(other.id)}/deliveries/{delivery.id}")
    assert status == 404


def test_another_communitys_key_is_refused(api: Api, receiver: Receiver) -> None:
    webhook = api.webhook(receiver.url_for("/a"))
    delivery, _ = api.world.first_attempt(webhook)
    status, body = api.call(
        "api-list-webhooks.json",
        path=f"{api.base(webhook.id)}/deliveries/{delivery.id}",
        authorizer=admin("com_other", "key_other"),
    )
    assert status == 403 and body["code"] == "rest_forbidden"


def test_list_deliveries_newest_first_paginated_and_filtered(api: Api, receiver: Receiver) -> None:
    webhook = api.webhook(receiver.url_for("/hook"))
    made = []
    for _ in range(3):
        made.append(api.failed_delivery(webhook))
        time.sleep(0.002)  # distinct created_at
    pending, _ = api.world.first_attempt(webhook)

    status, first = api.get(f"{api.base(webhook.id)}/deliveries?per_page=2")
    assert status == 200, first
    assert [d["id"] for d in first["data"]] == [pending.id, made[2].id]
    assert first["page"] == 1 and first["per_page"] == 2 and first["next_cursor"]
    status, second = api.get(
        f"{api.base(webhook.id)}/deliveries?per_page=2&cursor={first['next_cursor']}"
    )
    assert [d["id"] for d in second["data"]] == [made[1].id, made[0].id]
    assert second["next_cursor"] is None
    status, page2 = api.get(f"{api.base(webhook.id)}/deliveries?per_page=2&page=2")
    assert [d["id"] for d in page2["data"]] == [made[1].id, made[0].id]

    status, failed = api.get(f"{api.base(webhook.id)}/deliveries?state=failed")
    assert [d["state"] for d in failed["data"]] == ["failed"] * 3


@pytest.mark.parametrize(
    ("query", "field"),
    [("state=broken", "state"), ("per_page=51", "per_page"), ("page=0", "page")],
)
def test_list_deliveries_rejects_bad_parameters(
    api: Api, receiver: Receiver, query: str, field: str
) -> None:
    webhook = api.webhook(receiver.url_for("/hook"))
    status, body = api.get(f"{api.base(webhook.id)}/deliveries?{query}")
    assert status == 400, body
    assert body["code"] == "invalid_param" and body["data"]["field"] == field


def test_list_deliveries_of_an_unknown_webhook_is_404(api: Api) -> None:
    status, body = api.get(f"{api.base('wh_nope')}/deliveries")
    assert status == 404 and body["code"] == "not_found"


# -- resend -------------------------------------------------------------------------------


def test_resend_delivers_now(api: Api) -> None:
    with Receiver([(500,), (200, {}, b"ok now")]) as rx:
        webhook = api.webhook(rx.url_for("/hook"), retry_count=0)
        delivery = api.failed_delivery(webhook)
        assert delivery.state == "failed"

        status, body = api.resend(webhook.id, delivery.id)
        requests = rx.wait_for(2)

    assert status == 200, body
    assert body["success"] is True
    assert body["attempt"]["attempt"] == 2 and body["attempt"]["status_code"] == 200
    assert body["delivery"]["state"] == "delivered"
    assert body["delivery"]["next_attempt_at"] is None
    assert body["message"] == "Delivered on attempt 2."
    standardwebhooks.Webhook(webhook.secret or "").verify(requests[1].body, requests[1].headers)
    assert api.scheduler.started == []


def test_a_failing_resend_starts_a_new_retry_cycle(api: Api, receiver: Receiver) -> None:
    webhook = api.webhook(receiver.url_for("/hook"), retry_count=2)
    delivery = api.failed_delivery(webhook)

    status, body = api.resend(webhook.id, delivery.id)

    assert status == 200, body
    assert body["success"] is False
    assert body["delivery"]["state"] == "retrying"
    assert body["delivery"]["next_attempt_at"]
    assert body["message"].startswith("Attempt 2 failed (HTTP 500")
    [started] = api.scheduler.started  # a retry group of its own, named after attempt 2
    resent = api.world.delivery(delivery.id)
    assert started["name"] == resent.retry_group and resent.retry_group.endswith("-a2")
    assert started["document"]["wait_seconds"] == 300 and resent.max_attempts == 2 + 2

    # A retry is now scheduled: another resend makes that attempt (3) now, in the same cycle.
    due = body["delivery"]["next_attempt_at"]
    status, body = api.resend(webhook.id, delivery.id)
    assert status == 200, body
    assert body["attempt"]["attempt"] == 3
    assert body["message"].startswith("Attempt 3 of 4 failed (HTTP 500")
    assert body["delivery"]["state"] == "retrying"
    # The following attempt keeps its time: the scheduled one's plus the next wait.
    assert clock.parse_iso(body["delivery"]["next_attempt_at"]) == clock.parse_iso(due) + timedelta(
        seconds=1800
    )
    assert len(receiver.requests) == 3
    assert len(api.scheduler.started) == 1  # no new cycle


def test_a_resend_whose_retries_cannot_start_stays_failed(api: Api, receiver: Receiver) -> None:
    webhook = api.webhook(receiver.url_for("/hook"))
    delivery = api.failed_delivery(webhook)
    api.scheduler.fail = True

    status, body = api.resend(webhook.id, delivery.id)

    assert status == 200, body
    assert body["success"] is False
    assert body["delivery"]["state"] == "failed"
    assert "retries could not be scheduled" in body["message"]
    assert len(receiver.requests) == 2


def test_resend_to_an_inactive_webhook_is_refused(api: Api, receiver: Receiver) -> None:
    webhook = api.webhook(receiver.url_for("/hook"), retry_count=0)
    delivery = api.failed_delivery(webhook)
    status, _ = api.call(
        "api-update-webhook.json", path=api.base(webhook.id), body={"is_active": False}
    )
    assert status == 200

    status, body = api.resend(webhook.id, delivery.id)
    assert status == 409 and body["data"]["field"] == "is_active"
    assert len(receiver.requests) == 1


def test_resend_of_an_unknown_delivery_is_404(api: Api, receiver: Receiver) -> None:
    webhook = api.webhook(receiver.url_for("/hook"))
    status, body = api.resend(webhook.id, "dlv_nope")
    assert status == 404 and body["code"] == "not_found"


def test_resend_sample_event_shape(api: Api) -> None:
    sample = load("api-delivery-resend.json")
    assert sample["httpMethod"] == "POST"
    assert sample["path"].endswith("/deliveries/dlv_REPLACE/resend")


# -- recover ------------------------------------------------------------------------------


def test_recover_queues_failed_deliveries_since_a_time(api: Api, receiver: Receiver) -> None:
    webhook = api.webhook(receiver.url_for("/hook"), retry_count=2)
    before = api.failed_delivery(webhook)
    time.sleep(0.005)
    since = clock.now_iso()
    time.sleep(0.005)
    failed = [api.failed_delivery(webhook), api.failed_delivery(webhook)]
    delivered_or_pending, _ = api.world.first_attempt(webhook)  # not failed: left alone

    status, body = api.recover(webhook.id, {"since": since})

    assert status == 202, body
    assert body["queued"] == 2
    assert body["since"] == since
    assert body["truncated"] is False
    [started] = api.scheduler.started  # one retry group for the call, first round at once
    assert (started["document"]["wait_seconds"], started["document"]["attempt"]) == (0, 0)
    assert started["document"]["since"] == since
    for d in failed:
        stored = api.world.delivery(d.id)
        assert stored.state == "retrying" and stored.retry_group == started["name"]
        assert stored.max_attempts == d.attempts + 1 + webhook.retry_count
    assert api.world.delivery(before.id).state == "failed"
    assert api.world.delivery(delivered_or_pending.id).state == "pending"

    # Queued deliveries are retrying now: a second call queues nothing more.
    status, body = api.recover(webhook.id, {"since": since})
    assert status == 202 and body["queued"] == 0


def test_recover_uses_the_sample_event(api: Api, receiver: Receiver) -> None:
    webhook = api.webhook(receiver.url_for("/hook"))
    api.failed_delivery(webhook)
    status, body = api.recover(webhook.id)  # the sample's body: since 2026-11-20
    assert status == 202, body
    assert body["since"] == "2026-11-20T00:00:00.000Z"
    assert body["queued"] == 1


def test_recover_is_bounded(api: Api, receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redelivery, "RECOVER_LIMIT", 2)
    webhook = api.webhook(receiver.url_for("/hook"))
    for _ in range(3):
        api.failed_delivery(webhook)

    status, body = api.recover(webhook.id, {"since": "2020-01-01T00:00:00Z"})
    assert status == 202
    assert body["queued"] == 2 and body["truncated"] is True
    assert "cap of 2 per call was hit" in body["message"]
    status, body = api.recover(webhook.id, {"since": "2020-01-01T00:00:00Z"})
    assert body["queued"] == 1 and body["truncated"] is False


def test_recover_leaves_a_delivery_failed_when_the_scheduler_fails(
    api: Api, receiver: Receiver
) -> None:
    webhook = api.webhook(receiver.url_for("/hook"))
    delivery = api.failed_delivery(webhook)
    api.scheduler.fail = True
    status, body = api.recover(webhook.id, {"since": "2020-01-01T00:00:00Z"})
    assert status == 202 and body["queued"] == 0
    assert api.world.delivery(delivery.id).state == "failed"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "since"),
        ({"since": "yesterday"}, "since"),
        ({"since": 12}, "since"),
        ({"since": "2026-13-45T00:00:00Z"}, "since"),
        ({"since": "2026-11-20T00:00:00Z", "until": "soon"}, "until"),
        ({"since": "2026-11-20T00:00:00Z", "until": "2026-11-19T00:00:00Z"}, "until"),
        ({"since": "2026-11-20T00:00:00Z", "from": "2026-11-19T00:00:00Z"}, "from"),
        ({"since": "2026-11-20T00:00:00Z", "state": ["delivered"]}, "state"),
        ({"since": "2026-11-20T00:00:00Z", "state": ["failed", "nope"]}, "state"),
        ({"since": "2026-11-20T00:00:00Z", "state": []}, "state"),
        ({"since": "2026-11-20T00:00:00Z", "state": "failed"}, "state"),
    ],
)
def test_recover_rejects_bad_fields(api: Api, receiver: Receiver, body: Any, field: str) -> None:
    webhook = api.webhook(receiver.url_for("/hook"))
    status, answer = api.recover(webhook.id, body)
    assert status == 400, answer
    assert answer["code"] == "invalid_param"
    assert answer["data"]["field"] == field
    assert field in answer["message"]


def test_recover_of_an_unknown_webhook_is_404(api: Api) -> None:
    status, body = api.recover("wh_nope", {"since": "2026-11-20T00:00:00Z"})
    assert status == 404 and body["code"] == "not_found"


def test_recover_needs_an_active_webhook(api: Api, receiver: Receiver) -> None:
    webhook = api.webhook(receiver.url_for("/hook"), is_active=False)
    status, body = api.recover(webhook.id, {"since": "2026-11-20T00:00:00Z"})
    assert status == 409 and body["code"] == "conflict"
