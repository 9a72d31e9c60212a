"""Portal sessions over HTTP through the local stack: the link, what its token may and may not
do, expiry, read-only sessions, and the portal's files with their security headers."""

from __future__ import annotations

import json
import re
import time
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from hookline import clock
from hookline.api import portal_assets
from tests.localstack_fixtures import LocalStackHandle, local_stack  # noqa: F401
from tests.portal_helpers import (
    Tenant,
    inspector_webhook,
    link_parts,
    new_community,
    portal_session,
    request_session,
)


@pytest.fixture(scope="module")
def tenants(local_stack: LocalStackHandle) -> tuple[Tenant, Tenant]:  # noqa: F811
    return new_community(local_stack, "Acme"), new_community(local_stack, "Other")


def _as(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _call(
    stack: LocalStackHandle, method: str, path: str, token: str, body: Any = None
) -> requests.Response:
    return requests.request(method, stack.url(path), headers=_as(token), json=body, timeout=10)


def test_session_link_and_defaults(
    local_stack: LocalStackHandle,  # noqa: F811
    tenants: tuple[Tenant, Tenant],
) -> None:
    acme, _ = tenants
    answer = request_session(local_stack, acme)
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert {"url", "expires_at"} <= set(body) and body["read_only"] is False
    expires = clock.parse_iso(body["expires_at"]) - clock.now()
    assert timedelta(seconds=3590) < expires <= timedelta(seconds=3600)
    url = urlsplit(body["url"])
    assert url.path.endswith("/portal/") and url.query == ""
    parts = link_parts(body["url"])
    assert parts["community"] == acme.id and parts["token"].startswith("hlp_")
    # The token is in the fragment only: browsers never send it, so no access log sees it.
    assert parts["token"] not in url.path
    page = requests.get(body["url"].split("#")[0], timeout=10)
    assert page.status_code == 200 and "text/html" in page.headers["Content-Type"]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"expires_in": 86401}, "expires_in"),
        ({"expires_in": 0}, "expires_in"),
        ({"expires_in": "3600"}, "expires_in"),
        ({"read_only": "yes"}, "read_only"),
        ({"scope": "all"}, "scope"),
    ],
)
def test_bad_session_fields_name_the_field(
    local_stack: LocalStackHandle,  # noqa: F811
    tenants: tuple[Tenant, Tenant],
    fields: dict[str, Any],
    field: str,
) -> None:
    acme, _ = tenants
    answer = request_session(local_stack, acme, fields)
    assert answer.status_code == 400, answer.text
    assert answer.json()["code"] == "invalid_param" and answer.json()["data"]["field"] == field


def test_maximum_lifetime_is_a_day(
    local_stack: LocalStackHandle,  # noqa: F811
    tenants: tuple[Tenant, Tenant],
) -> None:
    body = portal_session(local_stack, tenants[0], expires_in=86400)
    assert clock.parse_iso(body["expires_at"]) - clock.now() > timedelta(hours=23, minutes=59)


def test_token_works_on_its_own_community_only(
    local_stack: LocalStackHandle,  # noqa: F811
    tenants: tuple[Tenant, Tenant],
) -> None:
    acme, other = tenants
    token = link_parts(portal_session(local_stack, acme)["url"])["token"]
    own = _call(local_stack, "GET", f"/v1/communities/{acme.id}/webhooks", token)
    assert own.status_code == 200, own.text
    current = _call(local_stack, "GET", f"/v1/communities/{acme.id}/portal-sessions/current", token)
    assert current.status_code == 200 and current.json()["community_id"] == acme.id
    assert "token_hash" not in current.json()
    for method, path in (
        ("GET", f"/v1/communities/{other.id}/webhooks"),
        ("GET", f"/v1/communities/{other.id}/portal-sessions/current"),
        ("GET", f"/v1/communities/{other.id}"),
    ):
        refused = _call(local_stack, method, path, token)
        assert refused.status_code == 403, (path, refused.text)
        assert refused.json()["code"] == "rest_forbidden"


def test_token_is_not_an_api_key(
    local_stack: LocalStackHandle,  # noqa: F811
    tenants: tuple[Tenant, Tenant],
) -> None:
    acme, _ = tenants
    token = link_parts(portal_session(local_stack, acme)["url"])["token"]
    for method, path, body in (
        ("POST", "/v1/communities", {"name": "Mine", "site_url": "https://x.example"}),
        ("GET", "/v1/communities", None),
        ("DELETE", f"/v1/communities/{acme.id}", None),
        ("POST", f"/v1/communities/{acme.id}/event-types", {"name": "order.refunded"}),
        ("GET", f"/v1/communities/{acme.id}/api-keys", None),
        ("POST", f"/v1/communities/{acme.id}/api-keys", {"name": "escalate"}),
        ("POST", f"/v1/communities/{acme.id}/portal-sessions", {}),
        ("PATCH", f"/v1/communities/{acme.id}", {"name": "Renamed"}),
        ("POST", f"/v1/communities/{acme.id}/events", {"event": "post.created", "data": {}}),
    ):
        refused = _call(local_stack, method, path, token, body)
        assert refused.status_code == 403, (method, path, refused.text)
    # An admin key cannot pass for a portal session either.
    admin = _call(
        local_stack, "GET", f"/v1/communities/{acme.id}/portal-sessions/current", acme.key
    )
    assert admin.status_code == 403


def test_read_only_session_changes_nothing(
    local_stack: LocalStackHandle,  # noqa: F811
    tenants: tuple[Tenant, Tenant],
) -> None:
    acme, _ = tenants
    made = requests.post(
        local_stack.url(f"/v1/communities/{acme.id}/webhooks"),
        headers=local_stack.headers(acme.key),
        json={"name": "CRM", "url": local_stack.inspector_url("ro"), "events": ["post.created"]},
        timeout=10,
    )
    assert made.status_code == 201, made.text
    hook = made.json()["id"]
    token = link_parts(portal_session(local_stack, acme, read_only=True)["url"])["token"]
    base = f"/v1/communities/{acme.id}"
    assert _call(local_stack, "GET", f"{base}/webhooks/{hook}", token).status_code == 200
    assert _call(local_stack, "GET", f"{base}/webhooks/{hook}/logs", token).status_code == 200
    for method, path, body in (
        ("PATCH", f"{base}/webhooks/{hook}", {"is_active": False}),
        ("POST", f"{base}/webhooks", {"url": "https://x.example/h", "events": ["*"]}),
        ("POST", f"{base}/webhooks/{hook}/test", None),
        ("POST", f"{base}/webhooks/{hook}/rotate-secret", None),
        ("DELETE", f"{base}/webhooks/{hook}", None),
        ("POST", f"{base}/spaces", {"name": "Premium"}),
        ("POST", f"{base}/incoming-webhooks", {"name": "Shop"}),
    ):
        refused = _call(local_stack, method, path, token, body)
        assert refused.status_code == 403, (method, path, refused.text)
        assert "read-only" in refused.json()["message"]
    after = requests.get(
        local_stack.url(f"{base}/webhooks/{hook}"),
        headers=local_stack.headers(acme.key),
        timeout=10,
    )
    assert after.json()["is_active"] is True and local_stack.inspected("ro") == []


def test_expired_session_is_refused(
    local_stack: LocalStackHandle,  # noqa: F811
    tenants: tuple[Tenant, Tenant],
) -> None:
    acme, _ = tenants
    token = link_parts(portal_session(local_stack, acme, expires_in=1)["url"])["token"]
    path = f"/v1/communities/{acme.id}/webhooks"
    assert _call(local_stack, "GET", path, token).status_code == 200
    time.sleep(1.2)
    # Refused at once, although the authorizer's answer for this token is still cached.
    expired = _call(local_stack, "GET", path, token)
    assert expired.status_code == 401 and expired.json()["code"] == "unauthorized"
    local_stack.gateway.clear_authorizer_cache()
    assert _call(local_stack, "GET", path, token).status_code == 401


def test_unknown_portal_token_is_refused(
    local_stack: LocalStackHandle,  # noqa: F811
    tenants: tuple[Tenant, Tenant],
) -> None:
    answer = _call(
        local_stack, "GET", f"/v1/communities/{tenants[0].id}/webhooks", "hlp_" + "x" * 43
    )
    assert answer.status_code == 401


def test_portal_files_and_their_headers(local_stack: LocalStackHandle) -> None:  # noqa: F811
    moved = requests.get(local_stack.url("/portal"), allow_redirects=False, timeout=10)
    assert moved.status_code == 301 and moved.headers["Location"] == "portal/"
    for path in ("/portal/", "/dev/portal/", "/portal/app.js", "/portal/portal.css"):
        answer = requests.get(local_stack.url(path), timeout=10)
        assert answer.status_code == 200, path
        csp = answer.headers["Content-Security-Policy"]
        assert (
            "script-src 'self'" in csp
            and "unsafe-inline" not in csp
            and "frame-ancestors 'none'" in csp
        )
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert answer.headers["Referrer-Policy"] == "no-referrer"
    for path in ("/portal/nope.js", "/portal/..%2Ftemplate.yaml", "/portal/%2e%2e"):
        assert requests.get(local_stack.url(path), timeout=10).status_code == 404, path
    refused = requests.post(local_stack.url("/portal/app.js"), timeout=10)
    assert refused.status_code in (403, 404, 405)


def test_portal_files_load_nothing_from_elsewhere() -> None:
    """Every asset is ours: no absolute URL in any file, and no inline script in the page."""
    page = (portal_assets.ASSETS / "index.html").read_text(encoding="utf-8")
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", page) == []
    assert re.findall(r"\son\w+\s*=", page) == []
    for asset in portal_assets.ASSETS.iterdir():
        text = asset.read_text(encoding="utf-8")
        assert re.findall(r"(?:src|href)=[\"']?(?:https?:)?//", text) == [], asset.name
        assert "import(" not in text and "innerHTML" not in text, asset.name


def test_sample_events_of_the_portal_routes() -> None:
    """events/portal-page.json and events/portal-asset.json through ApiFunction's handler."""
    from hookline.api.app import handle
    from tests.apigw import sample
    from tests.conftest import LambdaContext

    page = handle(sample("portal-page"), LambdaContext())  # type: ignore[arg-type]
    assert page["statusCode"] == 301 and page["headers"]["Location"] == "portal/"
    normalised = sample("portal-page")
    normalised["requestContext"]["path"] = "/dev/portal/"  # /portal/ handed over as /portal
    index = handle(normalised, LambdaContext())  # type: ignore[arg-type]
    assert index["statusCode"] == 200 and "<!DOCTYPE html>" in index["body"]
    asset = handle(sample("portal-asset"), LambdaContext())  # type: ignore[arg-type]
    assert asset["statusCode"] == 200
    assert asset["headers"]["Content-Type"].startswith("text/javascript")
    assert asset["body"] == (portal_assets.ASSETS / "app.js").read_text(encoding="utf-8")


def test_template_and_local_stack_route_the_portal_without_the_authorizer() -> None:
    from hookline_dev.local.blueprint import load_blueprint
    from hookline_dev.template import load_template

    events = load_template()["Resources"]["ApiFunction"]["Properties"]["Events"]
    routes = {
        (e["Properties"]["Method"], e["Properties"]["Path"]): e["Properties"]
        for e in events.values()
    }
    for key in (("GET", "/portal"), ("GET", "/portal/{asset}")):
        assert routes[key]["Auth"] == {"Authorizer": "NONE"}, key
    local = {(r.method, r.resource): r for r in load_blueprint().routes}
    assert not local[("GET", "/portal")].authorized and local[("GET", "/portal")].function == "api"
    assert not local[("GET", "/portal/{asset}")].authorized
    assert local[("ANY", "/v1/communities/{proxy+}")].authorized


def test_changes_through_the_portal_name_the_session_as_actor(
    local_stack: LocalStackHandle,  # noqa: F811
    tenants: tuple[Tenant, Tenant],
) -> None:
    acme, _ = tenants
    inspector_webhook(local_stack, acme, "Spaces", "portal-actor", ["space.created"])
    session = portal_session(local_stack, acme)
    token = link_parts(session["url"])["token"]
    made = _call(
        local_stack, "POST", f"/v1/communities/{acme.id}/spaces", token, {"name": "Portal"}
    )
    assert made.status_code == 201, made.text
    deadline = time.monotonic() + 10
    while not local_stack.inspected("portal-actor") and time.monotonic() < deadline:
        time.sleep(0.1)
    [call] = local_stack.inspected("portal-actor")
    assert json.loads(call["body"])["actor"] == {"type": "portal_session", "id": session["id"]}


def test_another_site_cannot_act_with_the_portal(
    local_stack: LocalStackHandle,  # noqa: F811
    tenants: tuple[Tenant, Tenant],
) -> None:
    """CSRF: the token is never a cookie, so a cross-site form post carries no credential, and
    the API grants no other origin a CORS read."""
    acme, _ = tenants
    token = link_parts(portal_session(local_stack, acme)["url"])["token"]
    forged = requests.post(
        local_stack.url(f"/v1/communities/{acme.id}/spaces"),
        headers={"Origin": "https://evil.example", "Cookie": f"token={token}"},
        data={"name": "Forged"},
        timeout=10,
    )
    assert forged.status_code == 401
    read = _call(local_stack, "GET", f"/v1/communities/{acme.id}/webhooks", token)
    preflight = requests.options(
        local_stack.url(f"/v1/communities/{acme.id}/webhooks"),
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
        timeout=10,
    )
    for answer in (read, preflight):
        assert "Access-Control-Allow-Origin" not in answer.headers
