"""Publishing and finding things as a new user would: over HTTP through the local stack (moto
DynamoDB and its stream, the dispatcher, the inspector as the receiving endpoint)."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest

from tests.localstack_fixtures import LocalStackHandle, local_stack  # noqa: F401
from tests.stack_tenants import Tenant, make_tenant


@pytest.fixture(scope="module")
def acme(local_stack: LocalStackHandle) -> Tenant:  # noqa: F811
    return make_tenant(local_stack, "acme")


def _received(tenant: Tenant, event_id: str) -> list[dict[str, Any]]:
    """Deliveries of `event_id` the tenant's inspector bin got."""
    return [
        r
        for r in tenant.stack.inspected(f"{tenant.name}-bin")
        if json.loads(r["body"]).get("id") == event_id
    ]


def _settled(tenant: Tenant, event_id: str) -> list[dict[str, Any]]:
    """Wait until the event arrived, then a little longer, so a duplicate would show too."""
    tenant.stack.wait_for(lambda: _received(tenant, event_id), timeout=15)
    time.sleep(0.5)
    return _received(tenant, event_id)


def test_a_retried_publish_with_its_key_is_delivered_once(acme: Tenant) -> None:
    body = {"event": "post.created", "data": {"title": "Once"}}
    headers = {"Idempotency-Key": "retry-me-1"}
    first = acme.call("POST", "/events", json=body, headers=headers)
    again = acme.call("POST", "/events", json=body, headers=headers)
    assert first.status_code == 202 and again.status_code == 202, again.text
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(_settled(acme, first.json()["id"])) == 1

    changed = acme.call(
        "POST", "/events", json={**body, "data": {"title": "Twice"}}, headers=headers
    )
    assert changed.status_code == 409, changed.text
    assert changed.json()["data"] == {"status": 409, "field": "Idempotency-Key"}


def test_reusing_an_event_id_with_another_body_is_409(acme: Tenant) -> None:
    body = {"event": "post.created", "id": "acme-post-7", "data": {"title": "Seven"}}
    assert acme.call("POST", "/events", json=body).status_code == 202
    same = acme.call("POST", "/events", json=body)
    assert same.status_code == 200 and same.json()["duplicate"] is True
    other = acme.call("POST", "/events", json={**body, "data": {"title": "Eight"}})
    assert other.status_code == 409 and other.json()["data"]["field"] == "id"
    assert len(_settled(acme, "acme-post-7")) == 1


def test_batch_publish_delivers_the_valid_events(acme: Tenant) -> None:
    events = [
        {"event": "post.created", "id": "batch-a", "data": {"n": 1}},
        {"event": "post.exploded"},
        {"event": "member.joined", "id": "batch-b", "data": {"n": 2}},
    ]
    response = acme.call("POST", "/events/batch", json={"events": events})
    assert response.status_code == 207, response.text
    results = response.json()["data"]
    assert [(r["index"], r["status"]) for r in results] == [(0, 202), (1, 400), (2, 202)]
    assert results[1]["error"]["code"] == "invalid_param"
    assert results[1]["error"]["data"]["field"] == "event"
    for event_id in ("batch-a", "batch-b"):
        arrived = _settled(acme, event_id)
        assert len(arrived) == 1 and arrived[0]["signature"]["verified"] is True


def test_events_are_found_with_their_deliveries(acme: Tenant) -> None:
    published = acme.ok("POST", "/events", json={"event": "answer.accepted", "data": {"n": 1}})
    _settled(acme, published["id"])
    listed = acme.ok("GET", "/events", params={"per_page": "3"})
    assert listed["data"][0]["id"] == published["id"]
    assert listed["data"][0]["data"] == {"n": 1}
    only = acme.ok("GET", "/events", params={"event": "answer.accepted"})["data"]
    assert [e["id"] for e in only] == [published["id"]]
    # Follow the cursor to the end: every event once, newest first.
    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {"per_page": "2", **({"cursor": cursor} if cursor else {})}
        page = acme.ok("GET", "/events", params=params)
        seen.extend(page["data"])
        cursor = page["next_cursor"]
        if not cursor:
            break
    stamps = [e["timestamp"] for e in seen]
    assert stamps == sorted(stamps, reverse=True) and len({e["id"] for e in seen}) == len(seen)
    assert acme.event_id in {e["id"] for e in seen}

    def delivered() -> dict[str, Any] | None:
        found = acme.ok("GET", f"/events/{published['id']}")
        states = [d["state"] for d in found["deliveries"]]
        return found if states == ["delivered"] else None

    found = acme.stack.wait_for(delivered, timeout=10)
    (delivery,) = found["deliveries"]
    assert delivery["webhook_id"] == acme.webhook_id and delivery["attempts"] == 1
    assert delivery["next_attempt_at"] is None
    assert acme.get("/events/no-such-event").status_code == 404


def test_deliveries_across_the_community_and_log_filters(acme: Tenant) -> None:
    failing = acme.ok(
        "POST",
        "/webhooks",
        json={
            "url": acme.stack.inspector_url("acme-down") + "?status=503",
            "events": ["vote.cast"],
            "retry_count": 0,
        },
    )
    published = acme.ok("POST", "/events", json={"event": "vote.cast", "data": {}})

    def failed() -> list[dict[str, Any]]:
        return acme.ok(
            "GET", "/deliveries", params={"state": "failed", "webhook_id": failing["id"]}
        )["data"]

    (delivery,) = acme.stack.wait_for(failed, timeout=15)
    assert delivery["event_id"] == published["id"] and delivery["event"] == "vote.cast"
    everything = acme.ok("GET", "/deliveries", params={"per_page": "50"})["data"]
    assert {d["webhook_id"] for d in everything} == {acme.webhook_id, failing["id"]}
    assert delivery["id"] in {d["id"] for d in everything}
    by_event = acme.ok("GET", "/deliveries", params={"event": "vote.cast"})["data"]
    assert {d["webhook_id"] for d in by_event} == {acme.webhook_id, failing["id"]}
    # The community's listing is bounded by the events' time.
    before = acme.ok("GET", "/deliveries", params={"until": published["timestamp"]})["data"]
    assert delivery["id"] not in {d["id"] for d in before}

    logs = f"/webhooks/{failing['id']}/logs"
    five = acme.ok("GET", logs, params={"status_code": "5xx"})["data"]
    assert [a["status_code"] for a in five] == [503]
    assert acme.ok("GET", logs, params={"status_code": "2xx"})["data"] == []
    assert acme.ok("GET", logs, params={"since": five[0]["created_at"]})["data"] == five
    assert acme.ok("GET", logs, params={"until": five[0]["created_at"]})["data"] == []
    ok = acme.ok("GET", f"/webhooks/{acme.webhook_id}/logs", params={"status_code": "2xx"})
    assert ok["data"] and all(200 <= a["status_code"] < 300 for a in ok["data"])
    none = acme.ok("GET", f"/webhooks/{acme.webhook_id}/logs", params={"status_code": "none"})
    assert none["data"] == []


@pytest.mark.parametrize(
    ("path", "param"),
    [
        ("/webhooks/{webhook_id}/logs", "success"),
        ("/webhooks", "active"),
        ("/members", "q"),
        ("/incoming-webhooks/{incoming_id}/logs", "status"),
        ("/events/{event_id}", "expand"),
    ],
)
def test_unknown_query_parameters_are_400(acme: Tenant, path: str, param: str) -> None:
    response = acme.get(path.format(**acme.ids()), params={param: "x"})
    assert response.status_code == 400, response.text
    assert response.json()["data"]["field"] == param


def test_webhook_status_filter_and_conflicting_fields(acme: Tenant) -> None:
    paused = acme.ok(
        "POST",
        "/webhooks",
        json={"url": acme.stack.inspector_url("acme-paused"), "events": ["*"]},
    )
    clash = acme.call(
        "PATCH", f"/webhooks/{paused['id']}", json={"is_active": False, "status": "active"}
    )
    assert clash.status_code == 400 and clash.json()["data"]["field"] == "is_active,status"
    acme.ok("PATCH", f"/webhooks/{paused['id']}", json={"is_active": False})
    inactive = acme.ok("GET", "/webhooks", params={"status": "inactive"})["data"]
    assert [w["id"] for w in inactive] == [paused["id"]]
    active = acme.ok("GET", "/webhooks", params={"status": "active", "per_page": "50"})["data"]
    assert paused["id"] not in {w["id"] for w in active} and active


@pytest.mark.parametrize("path", ["/members", "/incoming-webhooks/{incoming_id}/logs"])
def test_forged_cursors_are_400_not_500(acme: Tenant, path: str) -> None:
    """issue 12 item 9: base64({"pk": "C#<own id>"}) used to reach DynamoDB and answer 500."""
    forged = base64.b64encode(json.dumps({"pk": f"C#{acme.community_id}"}).encode()).decode()
    for cursor in (forged, forged + ".AAAA", "x.y"):
        response = acme.get(path.format(**acme.ids()), params={"cursor": cursor})
        assert response.status_code == 400, response.text
        assert response.json()["data"]["field"] == "cursor"


def test_deep_pages_point_to_the_cursor(acme: Tenant) -> None:
    response = acme.get("/webhooks", params={"page": "10000", "per_page": "50"})
    assert response.status_code == 400 and response.json()["data"]["field"] == "page"
    assert "next_cursor" in response.json()["message"]


def test_replays_of_creating_posts_never_show_a_secret_again(acme: Tenant) -> None:
    headers = {"Idempotency-Key": "create-once-1"}
    creates = [
        ("/webhooks", {"url": acme.stack.inspector_url("acme-once"), "events": ["*"]}, "secret"),
        ("/api-keys", {"name": "once"}, "key"),
        ("/incoming-webhooks", {"name": "once", "require_signature": True}, "url"),
    ]
    for path, body, secret_field in creates:
        first = acme.call("POST", path, json=body, headers=headers)
        again = acme.call("POST", path, json=body, headers=headers)
        assert first.status_code == again.status_code == 201, (path, again.text)
        assert again.headers["Idempotent-Replayed"] == "true"
        assert again.json()["id"] == first.json()["id"]
        shown = first.json()[secret_field]
        secret = shown.rsplit("/", 1)[-1] if secret_field == "url" else shown
        assert secret and secret not in again.text, path
        if path == "/incoming-webhooks":
            assert first.json()["signing_secret"] not in again.text
    listed = acme.ok("GET", "/api-keys")["data"]
    assert sum(1 for k in listed if k["name"] == "once") == 1


def test_log_filter_none_finds_attempts_without_an_answer(acme: Tenant) -> None:
    refused = acme.ok(
        "POST",
        "/webhooks",
        json={"url": "http://127.0.0.1:9/closed", "events": ["reply.created"], "retry_count": 0},
    )
    acme.ok("POST", "/events", json={"event": "reply.created", "data": {}})
    logs = f"/webhooks/{refused['id']}/logs"

    def unanswered() -> list[dict[str, Any]]:
        return acme.ok("GET", logs, params={"status_code": "none"})["data"]

    (attempt,) = acme.stack.wait_for(unanswered, timeout=15)
    assert attempt["status_code"] is None and attempt["success"] is False and attempt["error"]
    for answered in ("2xx", "4xx", "5xx"):
        assert acme.ok("GET", logs, params={"status_code": answered})["data"] == []
