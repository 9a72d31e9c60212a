"""Tenant isolation over every route, through the whole local stack (HTTP server, API Gateway
emulation, the authorizer and its cache, ApiFunction, InboundFunction).

Two communities, each with keys, a webhook that has deliveries, a space, a course, an incoming
webhook and a member. The route list comes from the resolver itself, so a new route is covered
(or, if it takes a body, must be given one below) the day it is added.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from hookline.api.app import app
from tests.localstack_fixtures import LocalStackHandle, local_stack  # noqa: F401
from tests.stack_tenants import Tenant, make_tenant

_PARAM = re.compile(r"<(\w+)>")

#: A valid body for every route that takes one (so validation cannot answer before the
#: community check, and a leak would show as a 2xx).
BODIES: dict[tuple[str, str], Any] = {
    ("PATCH", "/v1/communities/<community_id>"): {"name": "Taken over"},
    ("POST", "/v1/communities/<community_id>/api-keys"): {"name": "intruder"},
    ("POST", "/v1/communities/<community_id>/webhooks"): {
        "url": "https://intruder.example.com/hook",
        "events": ["*"],
    },
    ("PATCH", "/v1/communities/<community_id>/webhooks/<webhook_id>"): {
        "url": "https://intruder.example.com/hook"
    },
    ("PUT", "/v1/communities/<community_id>/webhooks/<webhook_id>"): {
        "url": "https://intruder.example.com/hook"
    },
    ("POST", "/v1/communities/<community_id>/events"): {"event": "post.created", "data": {}},
    ("POST", "/v1/communities/<community_id>/events/batch"): {
        "events": [{"event": "post.created", "data": {}}]
    },
    ("POST", "/v1/communities/<community_id>/webhooks/<webhook_id>/recover"): {
        "since": "2020-01-01T00:00:00Z"
    },
    ("POST", "/v1/communities/<community_id>/webhooks/<webhook_id>/replay"): {
        "since": "2020-01-01T00:00:00Z"
    },
    ("POST", "/v1/communities/<community_id>/spaces"): {"name": "Intruders"},
    ("PATCH", "/v1/communities/<community_id>/spaces/<space_id>"): {"name": "Intruders"},
    ("POST", "/v1/communities/<community_id>/courses"): {"name": "Intruders"},
    ("PATCH", "/v1/communities/<community_id>/courses/<course_id>"): {"name": "Intruders"},
    ("POST", "/v1/communities/<community_id>/incoming-webhooks"): {"name": "Intruders"},
    ("PATCH", "/v1/communities/<community_id>/incoming-webhooks/<incoming_id>"): {
        "name": "Intruders"
    },
    ("POST", "/v1/communities/<community_id>/portal-sessions"): {"expires_in": 60},
    ("POST", "/v1/communities/<community_id>/webhooks/<webhook_id>/filter-test"): {
        "payload": {"event": "post.created", "data": {}}
    },
    ("POST", "/v1/communities/<community_id>/event-types"): {"name": "intruder.came"},
    ("PATCH", "/v1/communities/<community_id>/event-types/<name>"): {"description": "Mine"},
}
#: Body routes whose body is optional.
NO_BODY = {
    ("POST", "/v1/communities/<community_id>/webhooks/<webhook_id>/rotate-secret"),
    ("POST", "/v1/communities/<community_id>/webhooks/<webhook_id>/rotate-secret/complete"),
    ("POST", "/v1/communities/<community_id>/webhooks/<webhook_id>/test"),
    (
        "POST",
        "/v1/communities/<community_id>/webhooks/<webhook_id>/deliveries/<delivery_id>/resend",
    ),
    ("POST", "/v1/communities/<community_id>/incoming-webhooks/<incoming_id>/rotate"),
}


def community_routes() -> list[tuple[str, str]]:
    routes = [*app._static_routes, *app._dynamic_routes]
    return sorted(
        {(r.method.upper(), r.path) for r in routes if "<community_id>" in r.path},
        key=lambda r: (r[1], r[0]),
    )


def fill(path: str, ids: dict[str, str]) -> str:
    return _PARAM.sub(lambda m: ids[m.group(1)], path)


def body_of(method: str, path: str) -> dict[str, Any]:
    if (method, path) in BODIES:
        return {"json": BODIES[(method, path)]}
    return {}


def assert_error_only(response: requests.Response, statuses: tuple[int, ...]) -> None:
    """The answer is one of `statuses` in the error shape, and carries nothing else."""
    assert response.status_code in statuses, (response.status_code, response.text)
    body = response.json()
    assert set(body) == {"code", "message", "data"}, body
    assert set(body["data"]) <= {"status", "field"}, body
    assert body["data"]["status"] == response.status_code


@pytest.fixture(scope="module")
def tenants(local_stack: LocalStackHandle) -> Iterator[tuple[Tenant, Tenant]]:  # noqa: F811
    yield make_tenant(local_stack, "acme"), make_tenant(local_stack, "globex")


def test_every_body_route_is_given_a_valid_body() -> None:
    for method, path in community_routes():
        if method in ("POST", "PUT", "PATCH"):
            assert (method, path) in BODIES or (method, path) in NO_BODY, (method, path)


def _snapshot(tenant: Tenant) -> dict[str, Any]:
    """What a leak through a write would change."""
    return {
        "community": tenant.ok("GET", ""),
        "keys": sorted(
            (k["id"], k.get("revoked_at")) for k in tenant.ok("GET", "/api-keys")["data"]
        ),
        "webhooks": [
            (w["id"], w["url"], w["name"], w["secret"], w["is_active"])
            for w in tenant.ok("GET", "/webhooks")["data"]
        ],
        "spaces": [(s["id"], s["name"]) for s in tenant.ok("GET", "/spaces")["data"]],
        "courses": [(c["id"], c["name"]) for c in tenant.ok("GET", "/courses")["data"]],
        "incoming": [(i["id"], i["name"]) for i in tenant.ok("GET", "/incoming-webhooks")["data"]],
        "members": sorted(m["id"] for m in tenant.ok("GET", "/members")["data"]),
        "event_types": tenant.ok("GET", "/event-types")["data"],
        "attempts": len(tenant.ok("GET", f"/webhooks/{tenant.webhook_id}/logs")["data"]),
    }


def test_another_communitys_key_gets_403_on_every_route(tenants: tuple[Tenant, Tenant]) -> None:
    acme, globex = tenants
    before = _snapshot(acme)
    for method, path in community_routes():
        response = globex.call(method, fill(path, acme.ids()), **body_of(method, path))
        assert_error_only(response, (403, 404))
        assert response.status_code == 403, (method, path)
        for marker in acme.markers()[1:]:
            assert marker not in response.text, (method, path, marker)
    assert _snapshot(acme) == before
    # Nothing done with the intruder's key reached acme's token or spare key either.
    assert acme.get("", key=acme.spare_key).status_code == 200
    assert acme.inbound({"email": acme.email}).status_code == 200


def test_an_own_key_cannot_reach_another_communitys_resources(
    tenants: tuple[Tenant, Tenant],
) -> None:
    acme, globex = tenants
    before = _snapshot(globex)
    for method, path in community_routes():
        params = set(_PARAM.findall(path)) - {"community_id"}
        if not params:
            continue
        ids = {**globex.ids(), "community_id": acme.community_id}
        response = acme.call(method, fill(path, ids), **body_of(method, path))
        assert_error_only(response, (404,))
        for marker in globex.markers():
            if marker not in fill(path, ids):
                assert marker not in response.text, (method, path, marker)
    # Mixed: acme's own webhook with globex's delivery.
    for method, suffix in (("GET", ""), ("POST", "/resend")):
        mixed = acme.call(
            method, f"/webhooks/{acme.webhook_id}/deliveries/{globex.delivery_id}{suffix}"
        )
        assert_error_only(mixed, (404,))
    assert _snapshot(globex) == before
    assert globex.get("", key=globex.spare_key).status_code == 200


def test_lists_never_include_another_communitys_items(tenants: tuple[Tenant, Tenant]) -> None:
    acme, globex = tenants
    lists = [
        (m, p)
        for m, p in community_routes()
        if m == "GET" and not p.endswith(">") and not p.endswith(("/logs", "/current"))
    ]
    lists += [("GET", "/v1/communities/<community_id>/webhooks/<webhook_id>/logs")]
    lists += [("GET", "/v1/communities/<community_id>/incoming-webhooks/<incoming_id>/logs")]
    for owner, other in ((acme, globex), (globex, acme)):
        for method, path in lists:
            response = owner.call(method, fill(path, owner.ids()))
            assert response.status_code == 200, (path, response.text)
            for marker in other.markers():
                assert marker not in response.text, (owner.name, path, marker)
        by_email = owner.ok("GET", "/members", params={"email": other.email})
        assert by_email["data"] == []
    assert acme.ok("GET", "/members", params={"email": acme.email})["data"][0]["id"] == acme.user_id


def test_an_incoming_token_acts_only_on_its_own_community(tenants: tuple[Tenant, Tenant]) -> None:
    acme, globex = tenants
    email = "newcomer@shared.example"
    answer = globex.inbound({"email": email, "first_name": "Nia"})
    assert answer.status_code == 200, answer.text
    user_id = answer.json()["user_id"]

    assert globex.ok("GET", "/members", params={"email": email})["data"][0]["id"] == user_id
    assert acme.ok("GET", "/members", params={"email": email})["data"] == []
    assert acme.get(f"/members/{user_id}").status_code == 404
    members = globex.ok("GET", f"/spaces/{globex.space_id}/members")["data"]
    assert user_id in str(members)
    assert user_id not in acme.get(f"/spaces/{acme.space_id}/members").text
    assert user_id not in acme.get(f"/incoming-webhooks/{acme.incoming_id}/logs").text


def test_a_revoked_key_stops_working_at_once_despite_the_authorizer_cache(
    tenants: tuple[Tenant, Tenant],
    local_stack: LocalStackHandle,  # noqa: F811
) -> None:
    acme, _ = tenants
    doomed = acme.ok("POST", "/api-keys", json={"name": "doomed"})
    assert acme.get("", key=doomed["key"]).status_code == 200  # the authorizer's answer is cached
    calls = local_stack.gateway.authorizer_invocations if local_stack.gateway else 0

    acme.ok("DELETE", f"/api-keys/{doomed['id']}")
    refused = acme.get("", key=doomed["key"])
    assert refused.status_code == 401, refused.text
    assert_error_only(refused, (401,))
    assert local_stack.gateway is not None
    # The authorizer was not asked again: ApiFunction's own check refused the key.
    assert local_stack.gateway.authorizer_invocations == calls
    for method, path in community_routes():
        response = acme.call(
            method, fill(path, acme.ids()), key=doomed["key"], **body_of(method, path)
        )
        assert response.status_code == 401, (method, path, response.status_code)


def test_a_key_of_another_community_cannot_revoke_or_list_keys(
    tenants: tuple[Tenant, Tenant],
) -> None:
    acme, globex = tenants
    assert_error_only(globex.call("DELETE", f"{acme.base}/api-keys/{acme.key_id}"), (403,))
    assert_error_only(globex.call("DELETE", f"/api-keys/{acme.key_id}"), (404,))
    assert acme.get("").status_code == 200


def test_only_the_operator_creates_communities(tenants: tuple[Tenant, Tenant]) -> None:
    acme, _ = tenants
    response = acme.call(
        "POST", "/v1/communities", json={"name": "x", "site_url": "https://x.example"}
    )
    assert_error_only(response, (403,))


def test_rotated_deleted_and_inactive_tokens_stop_at_once(tenants: tuple[Tenant, Tenant]) -> None:
    acme, _ = tenants
    made = acme.ok("POST", "/incoming-webhooks", json={"name": "rotating"})
    old = made["url"].rsplit("/", 1)[-1]
    assert acme.inbound({"email": "r1@acme.example"}, token=old).status_code == 200
    unknown = acme.inbound({"email": "r1@acme.example"}, token="x" * 43)
    assert unknown.status_code == 404

    rotated = acme.ok("POST", f"/incoming-webhooks/{made['id']}/rotate")
    new = rotated["url"].rsplit("/", 1)[-1]
    gone = acme.inbound({"email": "r2@acme.example"}, token=old)
    assert gone.status_code == 404 and gone.json() == unknown.json()
    assert acme.inbound({"email": "r2@acme.example"}, token=new).status_code == 200

    acme.ok("PATCH", f"/incoming-webhooks/{made['id']}", json={"status": "inactive"})
    inactive = acme.inbound({"email": "r3@acme.example"}, token=new)
    assert inactive.status_code == 404 and inactive.json() == unknown.json()

    acme.ok("DELETE", f"/incoming-webhooks/{made['id']}")
    deleted = acme.inbound({"email": "r4@acme.example"}, token=new)
    assert deleted.status_code == 404 and deleted.json() == unknown.json()
    assert acme.ok("GET", "/members", params={"email": "r3@acme.example"})["data"] == []
