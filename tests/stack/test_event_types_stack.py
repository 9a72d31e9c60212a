"""Custom event types and the built-in schemas over HTTP through the local stack."""

from __future__ import annotations

import json

import pytest

from tests.localstack_fixtures import LocalStackHandle, local_stack  # noqa: F401
from tests.stack_tenants import call, new_community

REFUND_SCHEMA = {
    "type": "object",
    "required": ["order_id", "amount"],
    "properties": {"order_id": {"type": "integer"}, "amount": {"type": "number", "minimum": 0}},
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def stack(local_stack: LocalStackHandle) -> LocalStackHandle:  # noqa: F811
    return local_stack


def test_builtin_types_show_schema_and_example(stack: LocalStackHandle) -> None:
    _, key = new_community(stack, "Catalog")
    answer = call(stack, "GET", "/v1/event-types/post.created", key)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["name"] == "post.created" and body["custom"] is False
    assert body["schema"]["type"] == "object" and body["example"]["title"]
    missing = call(stack, "GET", "/v1/event-types/order.refunded", key)
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"


def test_order_refunded_is_publishable_once_registered(stack: LocalStackHandle) -> None:
    cid, key = new_community(stack, "Shop")
    base = f"/v1/communities/{cid}"
    refund = {"event": "order.refunded", "data": {"order_id": 5521, "amount": 19.5}}
    before = call(stack, "POST", f"{base}/events", key, json=refund)
    assert before.status_code == 400 and before.json()["data"]["field"] == "event"
    refused = call(
        stack,
        "POST",
        f"{base}/webhooks",
        key,
        json={"url": stack.inspector_url("refunds"), "events": ["order.refunded"]},
    )
    assert refused.status_code == 400 and refused.json()["data"]["field"] == "events"

    created = call(
        stack,
        "POST",
        f"{base}/event-types",
        key,
        json={
            "name": "order.refunded",
            "description": "An order was refunded.",
            "schema": REFUND_SCHEMA,
            "example": {"order_id": 1, "amount": 2.5},
        },
    )
    assert created.status_code == 201, created.text
    assert created.json()["schema"] == REFUND_SCHEMA and created.json()["custom"] is True
    hook = call(
        stack,
        "POST",
        f"{base}/webhooks",
        key,
        json={"url": stack.inspector_url("refunds"), "events": ["order.*"]},
    )
    assert hook.status_code == 201, hook.text

    for data, field in [
        ({"order_id": 5521, "amount": -3}, "data.amount"),
        ({"order_id": "x", "amount": 1}, "data.order_id"),
        ({"amount": 1}, "data"),
        ({"order_id": 1, "amount": 1, "note": "extra"}, "data"),
    ]:
        bad = call(stack, "POST", f"{base}/events", key, json={**refund, "data": data})
        assert bad.status_code == 400, bad.text
        assert bad.json()["code"] == "invalid_param" and bad.json()["data"]["field"] == field

    published = call(stack, "POST", f"{base}/events", key, json=refund)
    assert published.status_code == 202, published.text
    [received] = stack.wait_for(lambda: stack.inspected("refunds"), timeout=10)
    payload = json.loads(received["body"])
    assert payload["event"] == "order.refunded" and payload["data"] == refund["data"]


def test_custom_type_crud_and_isolation(stack: LocalStackHandle) -> None:
    cid, key = new_community(stack, "Crud")
    other_cid, other_key = new_community(stack, "Other")
    base = f"/v1/communities/{cid}/event-types"
    assert call(stack, "POST", base, key, json={"name": "badge.awarded"}).status_code == 201
    again = call(stack, "POST", base, key, json={"name": "badge.awarded"})
    assert again.status_code == 409 and again.json()["code"] == "conflict"
    builtin = call(stack, "POST", base, key, json={"name": "post.created"})
    assert builtin.status_code == 400 and builtin.json()["data"]["field"] == "name"
    unknown_field = call(stack, "POST", base, key, json={"name": "badge.lost", "group": "x"})
    assert unknown_field.status_code == 400 and unknown_field.json()["data"]["field"] == "group"
    bad_schema = call(stack, "POST", base, key, json={"name": "badge.lost", "schema": {"type": 12}})
    assert bad_schema.status_code == 400 and bad_schema.json()["data"]["field"] == "schema"

    listed = call(stack, "GET", base, key).json()["data"]
    assert [t["name"] for t in listed] == ["badge.awarded"]
    patched = call(
        stack,
        "PATCH",
        f"{base}/badge.awarded",
        key,
        json={"description": "A badge", "schema": {"type": "object", "required": ["badge"]}},
    )
    assert patched.status_code == 200, patched.text
    assert call(stack, "GET", f"{base}/badge.awarded", key).json()["description"] == "A badge"
    event = {"event": "badge.awarded", "data": {}}
    rejected = call(stack, "POST", f"/v1/communities/{cid}/events", key, json=event)
    assert rejected.status_code == 400 and rejected.json()["data"]["field"] == "data"

    # The other community sees none of it and cannot publish the type.
    assert call(stack, "GET", f"{base}/badge.awarded", other_key).status_code == 403
    theirs = f"/v1/communities/{other_cid}"
    assert call(stack, "GET", f"{theirs}/event-types/badge.awarded", other_key).status_code == 404
    foreign = call(stack, "POST", f"{theirs}/events", other_key, json=event)
    assert foreign.status_code == 400 and foreign.json()["data"]["field"] == "event"

    deleted = call(stack, "DELETE", f"{base}/badge.awarded", key)
    assert deleted.status_code == 200 and deleted.json()["deleted"] is True
    assert call(stack, "GET", f"{base}/badge.awarded", key).status_code == 404


def test_scopes_apply_to_event_types(stack: LocalStackHandle) -> None:
    cid, key = new_community(stack, "Scoped types")
    reader = call(
        stack, "POST", f"/v1/communities/{cid}/api-keys", key, json={"scopes": ["read"]}
    ).json()["key"]
    base = f"/v1/communities/{cid}/event-types"
    assert call(stack, "GET", base, reader).status_code == 200
    denied = call(stack, "POST", base, reader, json={"name": "badge.awarded"})
    assert denied.status_code == 403 and denied.json()["code"] == "rest_forbidden"
