"""Shared helpers of the portal tests (HTTP and browser): communities and portal links made
through the local stack's API, as a community platform would."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

from tests.localstack_fixtures import LocalStackHandle


@dataclass(frozen=True)
class Tenant:
    id: str
    key: str


def new_community(stack: LocalStackHandle, name: str = "Acme Forum") -> Tenant:
    answer = requests.post(
        stack.url("/v1/communities"),
        headers=stack.operator_headers(),
        json={"name": name, "site_url": "https://forum.example.com"},
        timeout=10,
    )
    assert answer.status_code == 201, answer.text
    body = answer.json()
    return Tenant(body["id"], body["api_key"]["key"])


def request_session(stack: LocalStackHandle, tenant: Tenant, body: Any = None) -> requests.Response:
    """POST …/portal-sessions with the community's admin key (no body when `body` is None)."""
    return requests.post(
        stack.url(f"/v1/communities/{tenant.id}/portal-sessions"),
        headers=stack.headers(tenant.key),
        json=body,
        timeout=10,
    )


def portal_session(stack: LocalStackHandle, tenant: Tenant, **fields: Any) -> dict[str, Any]:
    answer = request_session(stack, tenant, fields)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def link_parts(url: str) -> dict[str, str]:
    """community and token from a portal link's fragment."""
    return {name: values[0] for name, values in parse_qs(urlsplit(url).fragment).items()}


def admin_post(
    stack: LocalStackHandle, tenant: Tenant, path: str, body: dict[str, Any]
) -> dict[str, Any]:
    """POST /v1/communities/<id><path> with the admin key; the created resource."""
    answer = requests.post(
        stack.url(f"/v1/communities/{tenant.id}{path}"),
        headers=stack.headers(tenant.key),
        json=body,
        timeout=10,
    )
    assert answer.status_code in (201, 202), answer.text
    return dict(answer.json())


def inspector_webhook(
    stack: LocalStackHandle, tenant: Tenant, name: str, bin_name: str, events: list[str]
) -> str:
    """A webhook pointing at the local stack's inspector bin `bin_name`: its id."""
    body = {"name": name, "url": stack.inspector_url(bin_name), "events": events}
    return str(admin_post(stack, tenant, "/webhooks", body)["id"])
