"""Idempotency-Key, batch publishing, finding events and deliveries, list filters and the
refusal of unknown parameters, through the API handler over in-memory tables."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest

from hookline import clock, wiring
from hookline.domain.delivery import DeliveryContext, new_delivery
from hookline.domain.models import ApiKey, Attempt, Community
from hookline.domain.repositories import EventRepository
from tests.apigw import ApiResponse, api_event, call
from tests.delivery_helpers import make_community, make_webhook


def _call(
    community: Community,
    key: ApiKey,
    method: str,
    path: str,
    *,
    body: Any = None,
    query: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> ApiResponse:
    return call(
        api_event(
            "api-publish-event",
            community_id=community.id,
            key_id=key.id,
            method=method,
            path=f"/v1/communities/{community.id}{path}",
            body=body,
            query=query or {},
            headers=headers,
        )
    )


def _events(services: wiring.Services) -> list[dict[str, Any]]:
    return services.tables.events.scan_all()  # type: ignore[attr-defined, no-any-return]


# --------------------------------------------------------------------------------------------
# Idempotency-Key


def test_same_key_same_body_answers_the_first_result(memory_services: wiring.Services) -> None:
    community, key = make_community(memory_services)
    body = {"event": "post.created", "data": {"post_id": 1}}
    first = _call(community, key, "POST", "/events", body=body, headers={"Idempotency-Key": "k-1"})
    again = _call(community, key, "POST", "/events", body=body, headers={"idempotency-key": "k-1"})
    assert first.status == 202 and again.status == 202
    assert again.body == first.body
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert len(_events(memory_services)) == 1
    # Without the header every request publishes.
    _call(community, key, "POST", "/events", body=body)
    assert len(_events(memory_services)) == 2


def test_same_key_other_body_is_409_naming_the_header(memory_services: wiring.Services) -> None:
    community, key = make_community(memory_services)
    headers = {"Idempotency-Key": "k-2"}
    _call(community, key, "POST", "/events", body={"event": "post.created"}, headers=headers)
    other = _call(
        community, key, "POST", "/events", body={"event": "post.updated"}, headers=headers
    )
    assert other.status == 409 and other.body["code"] == "conflict"
    assert other.body["data"] == {"status": 409, "field": "Idempotency-Key"}
    assert len(_events(memory_services)) == 1


def test_keys_are_per_community_and_per_route(memory_services: wiring.Services) -> None:
    acme, acme_key = make_community(memory_services)
    globex, globex_key = make_community(memory_services)
    headers = {"Idempotency-Key": "shared"}
    body = {"event": "post.created"}
    assert _call(acme, acme_key, "POST", "/events", body=body, headers=headers).status == 202
    assert _call(globex, globex_key, "POST", "/events", body=body, headers=headers).status == 202
    batch = {"events": [body]}
    assert _call(acme, acme_key, "POST", "/events/batch", body=batch, headers=headers).status == 207
    assert len(_events(memory_services)) == 3


@pytest.mark.parametrize("value", ["", "with space", "é", "x" * 256])
def test_a_malformed_key_is_400(memory_services: wiring.Services, value: str) -> None:
    community, key = make_community(memory_services)
    response = _call(
        community,
        key,
        "POST",
        "/events",
        body={"event": "post.created"},
        headers={"Idempotency-Key": value},
    )
    assert response.status == 400 and response.body["data"]["field"] == "Idempotency-Key"
    assert _events(memory_services) == []


def test_a_failed_request_does_not_keep_the_key(memory_services: wiring.Services) -> None:
    community, key = make_community(memory_services)
    headers = {"Idempotency-Key": "k-3"}
    bad = _call(community, key, "POST", "/events", body={"event": "nope.x"}, headers=headers)
    assert bad.status == 400
    good = _call(community, key, "POST", "/events", body={"event": "post.created"}, headers=headers)
    assert good.status == 202


def test_a_replayed_webhook_create_never_shows_the_secret_again(
    memory_services: wiring.Services,
) -> None:
    community, key = make_community(memory_services)
    body = {"url": "https://example.com/hooks", "events": ["post.created"]}
    headers = {"Idempotency-Key": "wh-1"}
    first = _call(community, key, "POST", "/webhooks", body=body, headers=headers)
    again = _call(community, key, "POST", "/webhooks", body=body, headers=headers)
    assert first.status == 201 and again.status == 201
    assert first.body["secret"].startswith("whsec_") and "*" not in first.body["secret"]
    assert again.body["id"] == first.body["id"]
    assert again.body["secret"] != first.body["secret"] and "********" in again.body["secret"]
    listed = _call(community, key, "GET", "/webhooks").body["data"]
    assert [w["id"] for w in listed] == [first.body["id"]]


def test_a_replayed_api_key_create_never_shows_the_key_again(
    memory_services: wiring.Services,
) -> None:
    community, key = make_community(memory_services)
    headers = {"Idempotency-Key": "key-1"}
    first = _call(community, key, "POST", "/api-keys", body={"name": "ci"}, headers=headers)
    again = _call(community, key, "POST", "/api-keys", body={"name": "ci"}, headers=headers)
    assert first.status == again.status == 201
    assert first.body["key"].startswith("hk_") and "key" not in again.body
    assert again.body["id"] == first.body["id"]


# --------------------------------------------------------------------------------------------
# Batch publishing


def test_batch_answers_207_in_request_order(memory_services: wiring.Services) -> None:
    community, key = make_community(memory_services)
    _call(community, key, "POST", "/events", body={"event": "post.created", "id": "seen"})
    events = [
        {"event": "post.created", "data": {"n": 0}},
        {"event": "post.nope"},
        "not an object",
        {"event": "post.created", "id": "seen"},
        {"event": "post.created", "id": "seen", "data": {"other": True}},
        {"event": "delivery.failed"},
        {"event": "member.joined", "extra": 1},
        {"event": "member.joined", "id": "fresh", "data": {"n": 7}},
    ]
    response = _call(community, key, "POST", "/events/batch", body={"events": events})
    assert response.status == 207
    results = response.body["data"]
    assert [r["index"] for r in results] == list(range(len(events)))
    assert [r["status"] for r in results] == [202, 400, 400, 200, 409, 400, 400, 202]
    assert results[1]["error"]["data"]["field"] == "event"
    assert results[2]["error"]["data"]["field"] == "events[2]"
    assert results[4]["error"]["data"]["field"] == "id"
    assert results[6]["error"]["data"]["field"] == "extra"
    assert results[3]["id"] == "seen" and results[7]["id"] == "fresh"
    stored = {e["id"]: e for e in _events(memory_services)}
    assert set(stored) == {"seen", results[0]["id"], "fresh"}
    assert stored["fresh"]["data"] == {"n": 7}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"events": []}, "events"),
        ({"events": [{"event": "post.created"}] * 101}, "events"),
        ({"events": {"event": "post.created"}}, "events"),
        ({}, "events"),
        ({"events": [], "more": 1}, None),
    ],
)
def test_invalid_batch_is_400(
    memory_services: wiring.Services, body: dict[str, Any], field: str | None
) -> None:
    community, key = make_community(memory_services)
    response = _call(community, key, "POST", "/events/batch", body=body)
    assert response.status == 400 and response.body["code"] == "invalid_param"
    if field is not None:
        assert response.body["data"]["field"] == field
    assert _events(memory_services) == []


def test_batch_over_256_kb_is_413(memory_services: wiring.Services) -> None:
    community, key = make_community(memory_services)
    events = [{"event": "post.created", "data": {"text": "x" * 3000}}] * 90
    response = _call(community, key, "POST", "/events/batch", body={"events": events})
    assert response.status == 413


# --------------------------------------------------------------------------------------------
# Finding events and deliveries


def test_events_are_listed_newest_first_with_filters_and_cursor(
    memory_services: wiring.Services,
) -> None:
    community, key = make_community(memory_services)
    ids = []
    for n in range(5):
        kind = "post.created" if n % 2 == 0 else "member.joined"
        published = _call(community, key, "POST", "/events", body={"event": kind, "data": {"n": n}})
        ids.append(published.body["id"])
        time.sleep(0.002)  # distinct millisecond timestamps, so since/until split them exactly
    first = _call(community, key, "GET", "/events", query={"per_page": "2"}).body
    assert [e["id"] for e in first["data"]] == ids[::-1][:2]
    assert first["data"][0]["data"] == {"n": 4} and first["next_cursor"]
    second = _call(
        community, key, "GET", "/events", query={"per_page": "2", "cursor": first["next_cursor"]}
    ).body
    assert [e["id"] for e in second["data"]] == ids[::-1][2:4]
    posts = _call(community, key, "GET", "/events", query={"event": "post.created"}).body
    assert [e["id"] for e in posts["data"]] == [ids[4], ids[2], ids[0]]
    stored = EventRepository(memory_services.tables.events)
    middle = stored.get(community.id, ids[2]).timestamp
    since = _call(community, key, "GET", "/events", query={"since": middle}).body
    assert [e["id"] for e in since["data"]] == ids[::-1][:3]
    until = _call(community, key, "GET", "/events", query={"until": middle}).body
    assert [e["id"] for e in until["data"]] == [ids[1], ids[0]]
    # Another community sees none of them.
    other, other_key = make_community(memory_services)
    assert _call(other, other_key, "GET", "/events").body["data"] == []


def _deliver(
    services: wiring.Services, community: Community, event_id: str, webhook: Any, n: int = 0
) -> str:
    """A stored delivery, created `n` seconds from now (so listings have a defined order)."""
    ctx = DeliveryContext.from_services(services)
    event = EventRepository(services.tables.events).get(community.id, event_id)
    delivery = new_delivery(event, webhook, now=clock.now() + timedelta(seconds=n))
    ctx.deliveries.create(delivery, expires_at=ctx.expires_at(clock.now()))
    return delivery.id


def test_an_event_with_its_deliveries(memory_services: wiring.Services) -> None:
    community, key = make_community(memory_services)
    one = make_webhook(memory_services, community.id, "https://one.example/hooks")
    two = make_webhook(memory_services, community.id, "https://two.example/hooks")
    make_webhook(memory_services, community.id, "https://three.example/hooks")
    published = _call(community, key, "POST", "/events", body={"event": "post.created"}).body
    delivered = {_deliver(memory_services, community, published["id"], w) for w in (one, two)}
    found = _call(community, key, "GET", f"/events/{published['id']}")
    assert found.status == 200 and found.body["event"] == "post.created"
    assert {d["id"] for d in found.body["deliveries"]} == delivered
    assert {d["webhook_id"] for d in found.body["deliveries"]} == {one.id, two.id}
    for delivery in found.body["deliveries"]:
        assert {"state", "attempts", "next_attempt_at"} <= set(delivery)
    assert _call(community, key, "GET", "/events/evt_unknown").status == 404


def test_deliveries_across_the_community(memory_services: wiring.Services) -> None:
    community, key = make_community(memory_services)
    one = make_webhook(memory_services, community.id, "https://one.example/hooks")
    two = make_webhook(memory_services, community.id, "https://two.example/hooks")
    post = _call(community, key, "POST", "/events", body={"event": "post.created"}).body["id"]
    time.sleep(0.002)  # events in distinct milliseconds
    joined = _call(community, key, "POST", "/events", body={"event": "member.joined"}).body
    join = joined["id"]
    made = [
        _deliver(memory_services, community, post, one, 1),
        _deliver(memory_services, community, post, two, 2),
        _deliver(memory_services, community, join, one, 3),
    ]
    DeliveryContext.from_services(memory_services).deliveries.update(
        community.id, made[1], {"state": "failed"}
    )

    def listed(**query: str) -> list[str]:
        response = _call(community, key, "GET", "/deliveries", query=query)
        assert response.status == 200, response.body
        return [d["id"] for d in response.body["data"]]

    # Newest event first; one event's deliveries in id order (they share its time).
    assert listed() == sorted(made, reverse=True) and listed()[0] == made[2]
    assert listed(since=joined["timestamp"]) == [made[2]]
    assert listed(until=joined["timestamp"]) == sorted(made[:2], reverse=True)
    assert listed(webhook_id=one.id) == [made[2], made[0]]
    assert listed(state="failed") == [made[1]]
    assert listed(event="member.joined") == [made[2]]
    assert listed(webhook_id=one.id, event="post.created") == [made[0]]
    assert listed(until="2000-01-01T00:00:00Z") == []
    assert listed(since="2000-01-01T00:00:00Z") == listed()
    # Another community's webhook id finds nothing here.
    other, other_key = make_community(memory_services)
    foreign = _call(other, other_key, "GET", "/deliveries", query={"webhook_id": one.id})
    assert foreign.status == 200 and foreign.body["data"] == []


def _attempt(
    services: wiring.Services,
    community: Community,
    webhook_id: str,
    n: int,
    status_code: int | None,
    created_at: str,
) -> Attempt:
    attempt = Attempt(
        id=f"att_{n:04d}",
        delivery_id=f"dlv_{n:04d}",
        community_id=community.id,
        webhook_id=webhook_id,
        event_id="evt_x",
        event="post.created",
        attempt=1,
        status_code=status_code,
        success=status_code is not None and 200 <= status_code < 300,
        error=None if status_code else "connection refused",
        created_at=created_at,
    )
    DeliveryContext.from_services(services).deliveries.add_attempt(attempt, expires_at=0)
    return attempt


def test_log_filters_by_status_class_and_time(memory_services: wiring.Services) -> None:
    community, key = make_community(memory_services)
    hook = make_webhook(memory_services, community.id, "https://one.example/hooks")
    codes = [200, 404, 503, None, 204, 500]
    for n, code in enumerate(codes):
        _attempt(memory_services, community, hook.id, n, code, f"2026-01-0{n + 1}T00:00:00.000Z")

    def logged(**query: str) -> list[int | None]:
        response = _call(community, key, "GET", f"/webhooks/{hook.id}/logs", query=query)
        assert response.status == 200, response.body
        return [entry["status_code"] for entry in response.body["data"]]

    assert logged(status_code="2xx") == [204, 200]
    assert logged(status_code="4xx") == [404]
    assert logged(status_code="5xx") == [500, 503]
    assert logged(status_code="none") == [None]
    assert logged(since="2026-01-03T00:00:00Z") == [500, 204, None, 503]
    assert logged(since="2026-01-02", until="2026-01-05T00:00:00Z") == [None, 503, 404]
    assert logged(status_code="5xx", until="2026-01-04T00:00:00Z") == [503]
    bad = _call(community, key, "GET", f"/webhooks/{hook.id}/logs", query={"status_code": "201"})
    assert bad.status == 400 and bad.body["data"]["field"] == "status_code"
    reversed_range = _call(
        community,
        key,
        "GET",
        f"/webhooks/{hook.id}/logs",
        query={"since": "2026-01-05T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
    )
    assert reversed_range.status == 400 and reversed_range.body["data"]["field"] == "until"


# --------------------------------------------------------------------------------------------
# No silent ignores


@pytest.mark.parametrize(
    ("path", "query", "field"),
    [
        ("/webhooks", {"success": "false"}, "success"),
        ("/events", {"type": "post.created"}, "type"),
        ("/deliveries", {"status": "failed"}, "status"),
        ("/spaces", {"q": "x"}, "q"),
        ("", {"verbose": "1"}, "verbose"),
    ],
)
def test_an_unknown_query_parameter_is_400_naming_it(
    memory_services: wiring.Services, path: str, query: dict[str, str], field: str
) -> None:
    community, key = make_community(memory_services)
    response = _call(community, key, "GET", path, query=query)
    assert response.status == 400 and response.body["code"] == "invalid_param"
    assert response.body["data"]["field"] == field and field in response.body["message"]


def test_unknown_log_parameter_is_400(memory_services: wiring.Services) -> None:
    community, key = make_community(memory_services)
    hook = make_webhook(memory_services, community.id, "https://one.example/hooks")
    response = _call(community, key, "GET", f"/webhooks/{hook.id}/logs", query={"success": "false"})
    assert response.status == 400 and response.body["data"]["field"] == "success"


def test_webhooks_filter_by_status(memory_services: wiring.Services) -> None:
    community, key = make_community(memory_services)
    active = make_webhook(memory_services, community.id, "https://one.example/hooks")
    inactive = make_webhook(memory_services, community.id, "https://two.example/hooks")
    _call(community, key, "PATCH", f"/webhooks/{inactive.id}", body={"is_active": False})

    def listed(status: str) -> list[str]:
        response = _call(community, key, "GET", "/webhooks", query={"status": status})
        return [w["id"] for w in response.body["data"]]

    assert listed("inactive") == [inactive.id]
    assert listed("active") == [active.id]
    assert _call(community, key, "GET", "/webhooks", query={"status": "x"}).status == 400


@pytest.mark.parametrize(
    "body", [{"is_active": False, "status": "active"}, {"is_active": True, "status": "inactive"}]
)
def test_conflicting_fields_are_400(memory_services: wiring.Services, body: Any) -> None:
    community, key = make_community(memory_services)
    hook = make_webhook(memory_services, community.id, "https://one.example/hooks")
    response = _call(community, key, "PATCH", f"/webhooks/{hook.id}", body=body)
    assert response.status == 400 and response.body["data"]["field"] == "is_active,status"
    assert _call(community, key, "GET", f"/webhooks/{hook.id}").body["status"] == "active"
    agreeing = _call(
        community,
        key,
        "PATCH",
        f"/webhooks/{hook.id}",
        body={"is_active": False, "status": "inactive"},
    )
    assert agreeing.status == 200 and agreeing.body["status"] == "inactive"


# --------------------------------------------------------------------------------------------
# Cursors and page numbers


def test_forged_and_tampered_cursors_are_400(memory_services: wiring.Services) -> None:
    import base64
    import json

    community, key = make_community(memory_services)
    for n in range(3):
        make_webhook(memory_services, community.id, f"https://h{n}.example/hooks")
    page = _call(community, key, "GET", "/webhooks", query={"per_page": "1"}).body
    cursor = page["next_cursor"]
    assert _call(community, key, "GET", "/webhooks", query={"cursor": cursor}).status == 200
    raw, _, mac = cursor.rpartition(".")
    forged_key = base64.urlsafe_b64encode(json.dumps({"pk": f"C#{community.id}"}).encode())
    for bad in (
        forged_key.decode(),
        raw,
        f"{raw}.{mac[:-2]}AA",
        f"{forged_key.decode()}.{mac}",
        "not-a-cursor",
    ):
        response = _call(community, key, "GET", "/webhooks", query={"cursor": bad})
        assert response.status == 400, bad
        assert response.body["data"]["field"] == "cursor"


def test_a_cursor_of_one_list_does_not_open_another(memory_services: wiring.Services) -> None:
    community, key = make_community(memory_services)
    for n in range(3):
        make_webhook(memory_services, community.id, f"https://h{n}.example/hooks")
        _call(community, key, "POST", "/events", body={"event": "post.created"})
    webhooks_cursor = _call(community, key, "GET", "/webhooks", query={"per_page": "1"}).body[
        "next_cursor"
    ]
    response = _call(community, key, "GET", "/events", query={"cursor": webhooks_cursor})
    assert response.status == 400 and response.body["data"]["field"] == "cursor"


def test_page_numbers_stop_at_the_cap(memory_services: wiring.Services) -> None:
    community, key = make_community(memory_services)
    assert _call(community, key, "GET", "/webhooks", query={"page": "20"}).status == 200
    response = _call(community, key, "GET", "/webhooks", query={"page": "21"})
    assert response.status == 400 and response.body["data"]["field"] == "page"
    assert "cursor" in response.body["message"]


def test_sample_batch_event_file(memory_services: wiring.Services) -> None:
    """events/api-publish-batch.json as is (two events and an Idempotency-Key), sent twice."""
    community, key = make_community(memory_services)
    event = api_event("api-publish-batch", community_id=community.id, key_id=key.id)
    first, again = call(event), call(event)
    assert first.status == again.status == 207
    assert [r["status"] for r in first.body["data"]] == [202, 202]
    assert again.body == first.body and again.headers["Idempotent-Replayed"] == "true"
    assert len(_events(memory_services)) == 2


def test_a_key_whose_first_request_still_runs_is_409(
    memory_services: wiring.Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same key arriving while its first request is being processed (a client retrying on
    its own timeout) is refused, and the first request still completes."""
    from hookline.api.routes import events as routes

    community, key = make_community(memory_services)
    body = {"event": "post.created", "data": {"slow": True}}
    headers = {"Idempotency-Key": "slow-1"}
    during: list[ApiResponse] = []
    publish = routes._publish

    def slow_publish(*args: Any) -> Any:
        if not during:
            during.append(_call(community, key, "POST", "/events", body=body, headers=headers))
        return publish(*args)

    monkeypatch.setattr(routes, "_publish", slow_publish)
    first = _call(community, key, "POST", "/events", body=body, headers=headers)
    assert first.status == 202
    (retry,) = during
    assert retry.status == 409 and retry.body["data"]["field"] == "Idempotency-Key"
    assert "still being processed" in retry.body["message"]
    assert len(_events(memory_services)) == 1


def test_the_operator_list_of_communities_signs_its_cursor(
    memory_services: wiring.Services,
) -> None:
    for _ in range(3):
        make_community(memory_services)

    def listed(query: dict[str, str]) -> ApiResponse:
        return call(
            api_event(
                "api-publish-event",
                role="operator",
                method="GET",
                path="/v1/communities",
                body=None,
                query=query,
            )
        )

    first = listed({"per_page": "1"})
    assert first.status == 200 and first.body["next_cursor"]
    second = listed({"per_page": "1", "cursor": first.body["next_cursor"]})
    assert second.status == 200 and second.body["data"] != first.body["data"]
    raw = first.body["next_cursor"].rpartition(".")[0]
    forged = listed({"per_page": "1", "cursor": raw})
    assert forged.status == 400 and forged.body["data"]["field"] == "cursor"


def test_batch_checks_custom_types_against_their_schema(memory_services: wiring.Services) -> None:
    community, key = make_community(memory_services)
    schema = {
        "type": "object",
        "required": ["order_id"],
        "properties": {"order_id": {"type": "integer"}},
    }
    created = _call(
        community, key, "POST", "/event-types", body={"name": "order.refunded", "schema": schema}
    )
    assert created.status == 201, created.body
    events = [
        {"event": "order.refunded", "data": {"order_id": 7}},
        {"event": "order.refunded", "data": {"order_id": "seven"}},
    ]
    results = _call(community, key, "POST", "/events/batch", body={"events": events}).body["data"]
    assert [r["status"] for r in results] == [202, 400]
    assert results[1]["error"]["data"]["field"].startswith("data")


def test_log_filters_read_first_attempts_kept_in_the_delivery(
    memory_services: wiring.Services,
) -> None:
    """A delivery's first attempt is stored inside the delivery item: the status class filter
    finds it there as it finds later attempts."""
    community, key = make_community(memory_services)
    hook = make_webhook(memory_services, community.id, "https://one.example/hooks")
    ctx = DeliveryContext.from_services(memory_services)
    for n, code in enumerate([200, None, 503]):
        published = _call(community, key, "POST", "/events", body={"event": "post.created"})
        event = EventRepository(memory_services.tables.events).get(
            community.id, published.body["id"]
        )
        now = clock.now() + timedelta(seconds=n)
        delivery = new_delivery(event, hook, now=now)
        first = Attempt(
            id=f"att_first_{n}",
            delivery_id=delivery.id,
            community_id=community.id,
            webhook_id=hook.id,
            event_id=event.id,
            event=event.event,
            attempt=1,
            status_code=code,
            success=code == 200,
            error=None if code else "connection refused",
            created_at=clock.iso(now),
        )
        ctx.deliveries.create(delivery, expires_at=ctx.expires_at(now), first_attempt=first)

    def logged(status_code: str) -> list[int | None]:
        response = _call(
            community, key, "GET", f"/webhooks/{hook.id}/logs", query={"status_code": status_code}
        )
        assert response.status == 200, response.body
        return [entry["status_code"] for entry in response.body["data"]]

    assert logged("2xx") == [200]
    assert logged("5xx") == [503]
    assert logged("none") == [None]
    assert logged("4xx") == []
