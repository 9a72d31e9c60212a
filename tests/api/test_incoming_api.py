"""The admin API of incoming webhooks and of the directory, through hookline.api (the handler
functions/api/app.py runs), with events built from the samples in events/."""

from __future__ import annotations

import json
from typing import Any

import pytest

from hookline import wiring
from hookline.domain.directory_repository import DirectoryRepository
from tests.apigw import ApiResponse, api_event, call, sample
from tests.incoming_helpers import World, fast_hashing, post_form  # noqa: F401

pytestmark = pytest.mark.usefixtures("fast_hashing")

HOST = "abc123.execute-api.us-east-1.amazonaws.com"


@pytest.fixture
def world(memory_services: wiring.Services) -> World:
    return World.create(memory_services)


def _api(
    world: World,
    path: str,
    *,
    method: str = "GET",
    body: Any = ...,
    query: dict[str, str] | None = None,
    community_id: str | None = None,
) -> ApiResponse:
    cid = world.community.id
    event = api_event(
        "api-create-incoming-webhook",
        community_id=community_id or cid,
        key_id=world.key.id,
        method=method,
        path=f"/v1/communities/{cid}{path}",
        query=query,
        body=None if body is ... else body,
    )
    return call(event)


def _create(world: World, **fields: Any) -> ApiResponse:
    return _api(world, "/incoming-webhooks", method="POST", body={"name": "Purchases", **fields})


def _token(url: str) -> str:
    return url.rsplit("/", 1)[1]


# -- incoming webhooks ------------------------------------------------------------------------


def test_create_from_the_sample_returns_the_url_once(world: World) -> None:
    space, course = world.space("Premium"), world.course("Onboarding")
    text = json.dumps(sample("api-create-incoming-webhook"))
    for placeholder, value in (
        ("com_REPLACE", world.community.id),
        ("key_REPLACE", world.key.id),
        ("sp_REPLACE", space.id),
        ("crs_REPLACE", course.id),
    ):
        text = text.replace(placeholder, value)
    created = call(json.loads(text))
    assert created.status == 201, created.body
    hook = created.body
    assert hook["url"].startswith(f"https://{HOST}/dev/v1/hooks/")
    token = _token(hook["url"])
    assert len(token) >= 43  # 32 random bytes, base64url
    assert hook["add_spaces"] == [space.id] and hook["add_courses"] == [course.id]
    assert hook["send_welcome_email"] is True and hook["status"] == "active"
    assert "token_hash" not in hook and "token" not in hook

    stored = json.dumps(world.services.tables.communities.scan_all())  # type: ignore[attr-defined]
    assert token not in stored

    fetched = _api(world, f"/incoming-webhooks/{hook['id']}")
    assert fetched.status == 200
    assert "url" not in fetched.body and token not in json.dumps(fetched.body)
    listed = _api(world, "/incoming-webhooks")
    assert [h["id"] for h in listed.body["data"]] == [hook["id"]]
    assert "url" not in listed.body["data"][0]

    status, answer = post_form(token, {"email": "new@example.com"})
    assert status == 200 and answer["message"].startswith("User created")


def test_url_for_the_local_stack(world: World) -> None:
    event = api_event(
        "api-create-incoming-webhook",
        community_id=world.community.id,
        key_id=world.key.id,
        path=f"/v1/communities/{world.community.id}/incoming-webhooks",
        body={"name": "Local"},
    )
    event["headers"].update({"Host": "127.0.0.1:8765", "X-Forwarded-Proto": "http"})
    event["requestContext"]["domainName"] = "127.0.0.1:8765"
    response = call(event)
    assert response.status == 201
    assert response.body["url"].startswith("http://127.0.0.1:8765/dev/v1/hooks/")


def test_missing_spaces_and_courses_are_named(world: World) -> None:
    space = world.space("Premium")
    response = _create(world, add_spaces=[space.id, "sp_nope", "sp_gone"])
    assert response.status == 400
    assert response.body["code"] == "invalid_param"
    assert response.body["data"]["field"] == "add_spaces"
    assert response.body["data"]["missing"] == ["sp_nope", "sp_gone"]
    assert "sp_nope" in response.body["message"] and "sp_gone" in response.body["message"]
    response = _create(world, remove_courses=["crs_x"])
    assert response.status == 400 and response.body["data"]["field"] == "remove_courses"
    assert _api(world, "/incoming-webhooks").body["data"] == []


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"name": ""}, "name"),
        ({"send_welcome_email": "yes"}, "send_welcome_email"),
        ({"status": "paused"}, "status"),
        ({"allowed_ips": ["300.1.1.1/8"]}, "allowed_ips"),
        ({"allowed_ips": "10.0.0.0/8"}, "allowed_ips"),
        ({"max_body_bytes": 10}, "max_body_bytes"),
        ({"signing_secret": "short"}, "signing_secret"),
        ({"signing_secret": "whsec_AA=="}, "signing_secret"),  # a 1-byte key
        ({"signing_secret": "whsec_" + "A" * 30}, "signing_secret"),  # 22 bytes
        ({"signing_secret": "fifteen-chars-x"}, "signing_secret"),
        ({"add_spaces": "sp_1"}, "add_spaces"),
        ({"unknown": 1}, "unknown"),
    ],
)
def test_invalid_fields_are_400_naming_the_field(
    world: World, fields: dict[str, Any], field: str
) -> None:
    response = _create(world, **fields)
    assert response.status == 400, response.body
    assert response.body["code"] == "invalid_param"
    assert response.body["data"]["field"] == field


def test_name_is_required(world: World) -> None:
    response = _api(world, "/incoming-webhooks", method="POST", body={})
    assert response.status == 400 and response.body["data"]["field"] == "name"


def test_add_and_remove_of_the_same_space_is_400(world: World) -> None:
    space = world.space("Premium")
    response = _create(world, add_spaces=[space.id], remove_spaces=[space.id])
    assert response.status == 400 and response.body["data"]["field"] == "remove_spaces"
    hook = _create(world, add_spaces=[space.id]).body
    patched = _api(
        world,
        f"/incoming-webhooks/{hook['id']}",
        method="PATCH",
        body={"remove_spaces": [space.id]},
    )
    assert patched.status == 400


def test_patch_and_delete(world: World) -> None:
    space = world.space("Premium")
    hook = _create(world).body
    token = _token(hook["url"])
    path = f"/incoming-webhooks/{hook['id']}"
    patched = _api(
        world,
        path,
        method="PATCH",
        body={
            "name": "Renamed",
            "add_spaces": [space.id],
            "allowed_ips": ["203.0.113.0/24", "198.51.100.7"],
            "max_body_bytes": 4096,
        },
    )
    assert patched.status == 200, patched.body
    assert patched.body["name"] == "Renamed" and patched.body["add_spaces"] == [space.id]
    assert patched.body["allowed_ips"] == ["203.0.113.0/24", "198.51.100.7/32"]
    assert patched.body["max_body_bytes"] == 4096
    assert post_form(token, {"email": "a@example.com"})[0] == 200  # from 203.0.113.10

    off = _api(world, path, method="PATCH", body={"status": "inactive"})
    assert off.body["status"] == "inactive"
    assert post_form(token, {"email": "a@example.com"})[0] == 404

    deleted = _api(world, path, method="DELETE")
    assert deleted.status == 200 and deleted.body["deleted"] is True
    assert _api(world, path).status == 404
    assert _api(world, path, method="DELETE").status == 404


def test_signature_secret_is_shown_once(world: World) -> None:
    hook = _create(world, require_signature=True).body
    secret = hook["signing_secret"]
    assert hook["require_signature"] is True and secret.startswith("whsec_")
    path = f"/incoming-webhooks/{hook['id']}"
    fetched = _api(world, path).body
    assert fetched["require_signature"] is True
    assert fetched["signing_secret"] == "whsec_********"  # nothing of the value, no suffix
    # sending the mask back (a GET-modify-PUT client) keeps the secret
    kept = _api(world, path, method="PATCH", body={"signing_secret": "whsec_********"}).body
    assert kept["require_signature"] is True and kept["signing_secret"] == "whsec_********"
    # unsigned calls are refused
    assert post_form(_token(hook["url"]), {"email": "a@example.com"})[0] == 401
    # turning the requirement off drops the secret
    off = _api(world, path, method="PATCH", body={"require_signature": False}).body
    assert off["require_signature"] is False and off["signing_secret"] is None
    assert post_form(_token(hook["url"]), {"email": "a@example.com"})[0] == 200
    given = _api(world, path, method="PATCH", body={"signing_secret": "my-own-signing-secret"}).body
    assert given["require_signature"] is True
    assert given["signing_secret"] == "my-own-signing-secret"


def test_rotate_issues_a_new_url_and_kills_the_old(world: World) -> None:
    hook = _create(world).body
    old = _token(hook["url"])
    rotated = _api(world, f"/incoming-webhooks/{hook['id']}/rotate", method="POST")
    assert rotated.status == 200
    new = _token(rotated.body["url"])
    assert new != old and rotated.body["token_rotated_at"]
    assert post_form(old, {"email": "a@example.com"}) == (
        404,
        {"success": False, "message": "Not found."},
    )
    assert post_form(new, {"email": "a@example.com"})[0] == 200
    stored = json.dumps(world.services.tables.communities.scan_all())  # type: ignore[attr-defined]
    assert new not in stored and old not in stored


def test_logs_are_paginated_newest_first(world: World) -> None:
    hook = _create(world).body
    token = _token(hook["url"])
    for i in range(3):
        post_form(token, {"email": f"u{i}@example.com"})
    post_form(token, {"email": "broken"})
    path = f"/incoming-webhooks/{hook['id']}/logs"
    first = _api(world, path, query={"per_page": "2"})
    assert first.status == 200
    assert [e["outcome"] for e in first.body["data"]] == ["rejected", "processed"]
    assert first.body["data"][0]["error"] == "email is not a valid email address."
    assert first.body["next_cursor"]
    second = _api(world, path, query={"per_page": "2", "cursor": first.body["next_cursor"]})
    assert [e["outcome"] for e in second.body["data"]] == ["processed", "processed"]
    assert second.body["next_cursor"] is None
    page_two = _api(world, path, query={"per_page": "2", "page": "2"})
    assert [e["id"] for e in page_two.body["data"]] == [e["id"] for e in second.body["data"]]
    bad = _api(world, path, query={"cursor": "not-a-cursor"})
    assert bad.status == 400 and bad.body["data"]["field"] == "cursor"
    assert _api(world, "/incoming-webhooks/in_missing/logs").status == 404


def test_another_communitys_key_is_403(world: World, memory_services: wiring.Services) -> None:
    other = World.create(memory_services, name="Other")
    hook = _create(world).body
    event = api_event(
        "api-create-incoming-webhook",
        community_id=other.community.id,
        key_id=other.key.id,
        method="GET",
        path=f"/v1/communities/{world.community.id}/incoming-webhooks/{hook['id']}",
        body=None,
    )
    assert call(event).status == 403


# -- directory --------------------------------------------------------------------------------


def test_spaces_api(world: World) -> None:
    created = _api(
        world, "/spaces", method="POST", body={"name": "Premium Members", "description": "Paid"}
    )
    assert created.status == 201, created.body
    space = created.body
    assert space["slug"] == "premium-members"
    path = f"/spaces/{space['id']}"
    assert _api(world, path).body == space
    assert [s["id"] for s in _api(world, "/spaces").body["data"]] == [space["id"]]
    conflict = _api(world, "/spaces", method="POST", body={"name": "X", "slug": "premium-members"})
    assert conflict.status == 409 and conflict.body["data"]["field"] == "slug"
    bad_slug = _api(world, "/spaces", method="POST", body={"name": "X", "slug": "No Way"})
    assert bad_slug.status == 400 and bad_slug.body["data"]["field"] == "slug"
    assert _api(world, "/spaces", method="POST", body={"slug": "x"}).body["data"]["field"] == (
        "name"
    )
    patched = _api(world, path, method="PATCH", body={"name": "Gold", "slug": "gold"})
    assert patched.status == 200 and patched.body["slug"] == "gold"
    assert _api(world, "/spaces/sp_missing").status == 404
    deleted = _api(world, path, method="DELETE")
    assert deleted.status == 200 and deleted.body["deleted"] is True
    assert _api(world, path).status == 404
    assert [e["event"] for e in world.events("space.created")] == ["space.created"]
    assert world.events("space.created")[0]["actor"] == {"type": "api_key", "id": world.key.id}


def test_courses_members_and_enrollments(world: World) -> None:
    space = _api(world, "/spaces", method="POST", body={"name": "Premium"}).body
    course = _api(world, "/courses", method="POST", body={"name": "Onboarding"}).body
    assert course["id"].startswith("crs_") and course["slug"] == "onboarding"
    hook = _create(world, add_spaces=[space["id"]], add_courses=[course["id"]]).body
    for email in ("ann@example.com", "bob@example.com"):
        assert post_form(_token(hook["url"]), {"email": email})[0] == 200

    members = _api(world, f"/spaces/{space['id']}/members")
    assert members.status == 200
    assert sorted(m["email"] for m in members.body["data"]) == [
        "ann@example.com",
        "bob@example.com",
    ]
    assert all("password_hash" not in m and m["joined_at"] for m in members.body["data"])
    enrolled = _api(world, f"/courses/{course['id']}/enrollments", query={"per_page": "1"})
    assert len(enrolled.body["data"]) == 1 and enrolled.body["next_cursor"]
    assert _api(world, "/courses/crs_missing/enrollments").status == 404

    found = _api(world, "/members", query={"email": "ANN@example.com"})
    assert found.status == 200
    [ann] = found.body["data"]
    assert ann["email"] == "ann@example.com"
    assert [s["id"] for s in ann["spaces"]] == [space["id"]]
    assert [c["id"] for c in ann["courses"]] == [course["id"]]
    assert _api(world, "/members", query={"email": "nobody@example.com"}).body["data"] == []
    invalid = _api(world, "/members", query={"email": "not an email"})
    assert invalid.status == 400 and invalid.body["data"]["field"] == "email"

    detail = _api(world, f"/members/{ann['id']}")
    assert detail.status == 200 and detail.body == ann
    assert _api(world, "/members/usr_missing").status == 404
    everyone = _api(world, "/members")
    assert len(everyone.body["data"]) == 2
    assert all("password_hash" not in m for m in everyone.body["data"])

    assert _api(world, f"/courses/{course['id']}", method="DELETE").status == 200
    repo = DirectoryRepository(world.services.tables.directory)
    assert repo.memberships_of("course", world.community.id, ann["id"]) == []
