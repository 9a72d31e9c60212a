"""Communities, API keys and webhook CRUD through the real API handler and the events/ samples."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from hookline import wiring
from tests.api_events import OPERATOR, admin, call_api, request


@pytest.fixture
def community(memory_services: Any, lambda_context: Any) -> dict[str, Any]:
    # As deployed: only public https targets are accepted.
    wiring.configure(settings=replace(memory_services.settings, allow_private_targets=False))
    status, body = call_api(
        request("api-create-community.json", authorizer=OPERATOR), lambda_context
    )
    assert status == 201, body
    return body


def _as(community: dict[str, Any]) -> dict[str, Any]:
    return admin(community["id"], community["api_key"]["id"])


def _webhook_path(community: dict[str, Any], suffix: str = "") -> str:
    return f"/v1/communities/{community['id']}/webhooks{suffix}"


def _create_webhook(community: dict[str, Any], ctx: Any, **fields: Any) -> tuple[int, Any]:
    body = {"url": "https://crm.example.com/hooks", "events": ["post.*"], **fields}
    event = request(
        "api-create-webhook.json",
        path=_webhook_path(community),
        body=body,
        authorizer=_as(community),
    )
    return call_api(event, ctx)


def test_create_community_returns_key_once(community: dict[str, Any], lambda_context: Any) -> None:
    key = community["api_key"]
    assert key["key"].startswith("hk_") and len(key["key"]) >= 3 + 43
    assert community["name"] == "Acme Forum"
    status, keys = call_api(
        request(
            "api-list-webhooks.json",
            path=f"/v1/communities/{community['id']}/api-keys",
            authorizer=_as(community),
        ),
        lambda_context,
    )
    assert status == 200
    assert [k["id"] for k in keys["data"]] == [key["id"]]
    assert "key" not in keys["data"][0] and "key_hash" not in keys["data"][0]


def test_only_operator_creates_communities(community: dict[str, Any], lambda_context: Any) -> None:
    status, body = call_api(
        request("api-create-community.json", authorizer=_as(community)), lambda_context
    )
    assert status == 403
    assert body["code"] == "rest_forbidden" and body["data"]["status"] == 403


def test_missing_authorizer_context_is_401(memory_services: Any, lambda_context: Any) -> None:
    status, body = call_api(request("api-create-community.json", authorizer=None), lambda_context)
    assert status == 401 and body["code"] == "unauthorized"


def test_webhook_crud(community: dict[str, Any], lambda_context: Any) -> None:
    status, created = _create_webhook(
        community, lambda_context, name="CRM", headers={"X-Api-Key": "k"}, description="d"
    )
    assert status == 201, created
    assert created["secret"].startswith("whsec_") and len(created["secret"]) > 40
    assert created["status"] == "active" and created["is_active"] is True
    assert created["retry_count"] == 3
    path = _webhook_path(community, f"/{created['id']}")

    status, fetched = call_api(
        request(
            "api-update-webhook.json", method="GET", path=path, body=None, authorizer=_as(community)
        ),
        lambda_context,
    )
    assert status == 200
    assert fetched["secret"] == "whsec_********"  # the kind of secret, nothing of its value
    assert fetched["headers"] == {"X-Api-Key": "********"}

    status, patched = call_api(
        request("api-update-webhook.json", path=path, authorizer=_as(community)), lambda_context
    )
    assert status == 200, patched
    assert patched["status"] == "inactive" and patched["is_active"] is False
    assert patched["retry_count"] == 5

    status, put = call_api(
        request(
            "api-update-webhook.json",
            method="PUT",
            path=path,
            body={"status": "active", "events": ["member.joined"]},
            authorizer=_as(community),
        ),
        lambda_context,
    )
    assert status == 200, put
    assert put["status"] == "active" and put["events"] == ["member.joined"]
    assert put["retry_count"] == 5

    status, listed = call_api(
        request("api-list-webhooks.json", path=_webhook_path(community), authorizer=_as(community)),
        lambda_context,
    )
    assert status == 200 and [w["id"] for w in listed["data"]] == [created["id"]]

    status, deleted = call_api(
        request(
            "api-update-webhook.json",
            method="DELETE",
            path=path,
            body=None,
            authorizer=_as(community),
        ),
        lambda_context,
    )
    assert status == 200 and deleted["deleted"] is True
    status, body = call_api(
        request(
            "api-update-webhook.json", method="GET", path=path, body=None, authorizer=_as(community)
        ),
        lambda_context,
    )
    assert status == 404 and body["code"] == "not_found"


def test_pagination(community: dict[str, Any], lambda_context: Any) -> None:
    ids = [_create_webhook(community, lambda_context, name=f"w{i}")[1]["id"] for i in range(5)]
    seen: list[str] = []
    status, page = call_api(
        request(
            "api-list-webhooks.json",
            path=_webhook_path(community) + "?per_page=2",
            authorizer=_as(community),
        ),
        lambda_context,
    )
    while True:
        assert status == 200
        seen += [w["id"] for w in page["data"]]
        if not page["next_cursor"]:
            break
        status, page = call_api(
            request(
                "api-list-webhooks.json",
                path=_webhook_path(community) + f"?per_page=2&cursor={page['next_cursor']}",
                authorizer=_as(community),
            ),
            lambda_context,
        )
    assert sorted(seen) == sorted(ids)
    status, third = call_api(
        request(
            "api-list-webhooks.json",
            path=_webhook_path(community) + "?per_page=2&page=3",
            authorizer=_as(community),
        ),
        lambda_context,
    )
    assert status == 200 and len(third["data"]) == 1
    status, body = call_api(
        request(
            "api-list-webhooks.json",
            path=_webhook_path(community) + "?per_page=51",
            authorizer=_as(community),
        ),
        lambda_context,
    )
    assert status == 400 and body["data"]["field"] == "per_page"


@pytest.mark.parametrize(
    ("fields", "code", "field"),
    [
        ({"url": "http://crm.example.com/hooks"}, "invalid_url", "url"),
        ({"url": "https://127.0.0.1/hooks"}, "invalid_url", "url"),
        ({"url": "not a url"}, "invalid_url", "url"),
        ({"events": ["post.created", "nope.made_up"]}, "invalid_param", "events"),
        ({"events": []}, "invalid_param", "events"),
        ({"retry_count": 11}, "invalid_param", "retry_count"),
        ({"status": "paused"}, "invalid_param", "status"),
        ({"headers": {"Content-Type": "text/plain"}}, "invalid_param", "headers"),
        ({"headers": {"X-Evil": "a\r\nInjected: 1"}}, "invalid_param", "headers"),
        ({"headers": {"Bad Name": "x"}}, "invalid_param", "headers"),
        ({"secret": "short"}, "invalid_param", "secret"),
        ({"secret": "whsec_AA=="}, "invalid_param", "secret"),  # a 1-byte key
        ({"secret": "whsec_" + "A" * 30}, "invalid_param", "secret"),  # 22 bytes of key
        ({"secret": "fifteen-chars-x"}, "invalid_param", "secret"),
        ({"colour": "blue"}, "invalid_param", "colour"),
    ],
)
def test_create_rejects_bad_fields(
    community: dict[str, Any], lambda_context: Any, fields: dict[str, Any], code: str, field: str
) -> None:
    status, body = _create_webhook(community, lambda_context, **fields)
    assert status == 400, body
    assert body["code"] == code
    assert body["data"] == {
        "status": 400,
        "field": field,
        **({"unknown": ["nope.made_up"]} if "nope.made_up" in str(fields) else {}),
    }
    if field == "events" and fields["events"]:
        assert "nope.made_up" in body["message"]


def test_sk_query_parameter_becomes_the_secret(
    community: dict[str, Any], lambda_context: Any
) -> None:
    status, created = _create_webhook(
        community, lambda_context, url="https://crm.example.com/hooks?a=1&sk=my-shared-secret"
    )
    assert status == 201
    assert created["url"] == "https://crm.example.com/hooks?a=1"
    assert created["secret"] == "my-shared-secret"


def test_other_community_key_is_forbidden(community: dict[str, Any], lambda_context: Any) -> None:
    _, other = call_api(request("api-create-community.json", authorizer=OPERATOR), lambda_context)
    _, webhook = _create_webhook(community, lambda_context)
    for method in ("GET", "PATCH", "PUT", "DELETE"):
        status, body = call_api(
            request(
                "api-update-webhook.json",
                method=method,
                path=_webhook_path(community, f"/{webhook['id']}"),
                body={"name": "x"} if method in ("PATCH", "PUT") else None,
                authorizer=_as(other),
            ),
            lambda_context,
        )
        assert status == 403 and body["code"] == "rest_forbidden", (method, body)
    status, _ = call_api(
        request("api-list-webhooks.json", path=_webhook_path(community), authorizer=_as(other)),
        lambda_context,
    )
    assert status == 403


def test_revoked_key_stops_at_once(community: dict[str, Any], lambda_context: Any) -> None:
    key_id = community["api_key"]["id"]
    status, body = call_api(
        request(
            "api-update-webhook.json",
            method="DELETE",
            path=f"/v1/communities/{community['id']}/api-keys/{key_id}",
            body=None,
            authorizer=_as(community),
        ),
        lambda_context,
    )
    assert status == 200 and body["revoked_at"]
    # Even with a cached authorizer answer, the API re-checks the key.
    status, body = call_api(
        request("api-list-webhooks.json", path=_webhook_path(community), authorizer=_as(community)),
        lambda_context,
    )
    assert status == 401 and body["code"] == "unauthorized"


@pytest.mark.parametrize(
    ("raw", "headers", "status", "code"),
    [
        ("{not json", {}, 400, "invalid_param"),
        ("[" * 100_000 + "]" * 100_000, {}, 400, "invalid_param"),
        (
            '{"url": "https://x.example.com"}',
            {"Content-Type": "text/plain"},
            415,
            "unsupported_media_type",
        ),
        ("x" * (256 * 1024 + 1), {}, 413, "payload_too_large"),
    ],
)
def test_bad_bodies(
    community: dict[str, Any],
    lambda_context: Any,
    raw: str,
    headers: dict[str, str],
    status: int,
    code: str,
) -> None:
    event = request(
        "api-create-webhook.json",
        path=_webhook_path(community),
        raw_body=raw,
        headers=headers,
        authorizer=_as(community),
    )
    got, body = call_api(event, lambda_context)
    assert (got, body["code"]) == (status, code)
    assert body["data"]["status"] == status


def test_method_not_allowed_and_unknown_route(
    community: dict[str, Any], lambda_context: Any
) -> None:
    status, body = call_api(
        request(
            "api-list-webhooks.json",
            method="PUT",
            path=f"/v1/communities/{community['id']}",
            body={"name": "x"},
            authorizer=_as(community),
        ),
        lambda_context,
    )
    assert status == 405 and body["code"] == "method_not_allowed"
    status, body = call_api(
        request("api-list-webhooks.json", path="/v1/nothing-here", authorizer=_as(community)),
        lambda_context,
    )
    assert status == 404 and body["code"] == "not_found"


def test_event_type_catalog(community: dict[str, Any], lambda_context: Any) -> None:
    status, body = call_api(
        request("api-list-event-types.json", authorizer=_as(community)), lambda_context
    )
    assert status == 200
    names = {t["name"] for t in body["data"]}
    for required in (
        "post.created",
        "reply.deleted",
        "vote.cast",
        "answer.accepted",
        "member.banned",
        "user.unfollowed",
        "trust_level.changed",
        "flag.resolved",
        "moderation.action",
        "feed.unpinned",
        "comment.deleted",
        "reaction.removed",
        "space.member_left",
        "course.unenrolled",
        "lesson.completed",
        "report.resolved",
        "payment.completed",
        "test.ping",
    ):
        assert required in names
    assert all(t["group"] and t["description"] for t in body["data"])


def test_one_event_type_from_its_sample(community: dict[str, Any], lambda_context: Any) -> None:
    status, body = call_api(
        request("api-get-event-type.json", authorizer=_as(community)), lambda_context
    )
    assert status == 200, body
    assert body["name"] == "post.created"


def test_patch_community(community: dict[str, Any], lambda_context: Any) -> None:
    path = f"/v1/communities/{community['id']}"
    status, body = call_api(
        request(
            "api-update-webhook.json",
            path=path,
            body={"name": "Renamed"},
            authorizer=_as(community),
        ),
        lambda_context,
    )
    assert status == 200 and body["name"] == "Renamed"
    status, body = call_api(
        request(
            "api-update-webhook.json",
            path=path,
            body={"site_url": "ftp://x"},
            authorizer=_as(community),
        ),
        lambda_context,
    )
    assert status == 400 and body["data"]["field"] == "site_url"


@pytest.mark.parametrize("content_type", ["Application/JSON", "application/json; charset=UTF-8"])
def test_json_media_type_is_case_insensitive(
    community: dict[str, Any], lambda_context: Any, content_type: str
) -> None:
    event = request(
        "api-create-webhook.json",
        path=_webhook_path(community),
        body={"url": "https://crm.example.com/hooks", "events": ["post.*"]},
        headers={"Content-Type": content_type},
        authorizer=_as(community),
    )
    status, body = call_api(event, lambda_context)
    assert status == 201, body


@pytest.mark.parametrize("raw", ["[{}]", '[{"name": "x"}]', "[]", '"text"', "7"])
def test_a_body_that_is_not_an_object_is_refused(
    community: dict[str, Any], lambda_context: Any, raw: str
) -> None:
    event = request(
        "api-update-webhook.json",
        path=f"/v1/communities/{community['id']}",
        raw_body=raw,
        authorizer=_as(community),
    )
    status, body = call_api(event, lambda_context)
    assert status == 400 and body["data"]["field"] == "body", body


@pytest.mark.parametrize(
    "secret",
    ["whsec_" + "A" * 32, "sixteen-chars-ok", "whsec_" + "QUFB" * 8 + "=="],
)
def test_secrets_with_enough_key_are_accepted(
    community: dict[str, Any], lambda_context: Any, secret: str
) -> None:
    status, created = _create_webhook(community, lambda_context, secret=secret)
    assert status == 201, created
    assert created["secret"] == secret
