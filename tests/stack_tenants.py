"""Communities with something of everything, made over real HTTP on the local stack, for the
tenant-isolation, fuzzing and secrets tests.

    tenant = make_tenant(local_stack, "acme")     # community, keys, webhook (delivered to),
    tenant.get("/webhooks")                       # space, course, incoming webhook, member
    tenant.call("POST", "/events", json={...})    # paths are relative to the community
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests

from tests.localstack_fixtures import LocalStackHandle

#: Route parameter -> Tenant attribute holding the id to put there.
ID_ATTRIBUTES = {
    "community_id": "community_id",
    "key_id": "spare_key_id",
    "webhook_id": "webhook_id",
    "delivery_id": "delivery_id",
    "event_id": "event_id",
    "space_id": "space_id",
    "course_id": "course_id",
    "user_id": "user_id",
    "incoming_id": "incoming_id",
    "name": "event_type",
}


@dataclass
class Tenant:
    stack: LocalStackHandle
    name: str
    community_id: str
    key: str
    key_id: str
    spare_key: str = ""
    spare_key_id: str = ""
    webhook_id: str = ""
    webhook_secret: str = ""
    delivery_id: str = ""
    event_id: str = ""
    space_id: str = ""
    course_id: str = ""
    incoming_id: str = ""
    token: str = ""
    user_id: str = ""
    event_type: str = ""
    email: str = ""
    password: str = ""
    #: Every API response body this tenant's calls got, as (method, path, status, text).
    seen: list[tuple[str, str, int, str]] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"/v1/communities/{self.community_id}"

    def call(
        self, method: str, path: str, *, key: str | None = None, **kwargs: Any
    ) -> requests.Response:
        """`path` relative to the community (starting with /) or absolute (starting /v1)."""
        full = path if path.startswith("/v1") else self.base + path
        headers = {"Authorization": f"Bearer {key or self.key}", **kwargs.pop("headers", {})}
        response = requests.request(
            method, self.stack.url(full), headers=headers, timeout=30, **kwargs
        )
        self.seen.append((method, full, response.status_code, response.text))
        return response

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.call("GET", path, **kwargs)

    def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.call(method, path, **kwargs)
        assert response.status_code < 300, (method, path, response.status_code, response.text)
        return response.json()

    def inbound(self, data: dict[str, str], token: str | None = None) -> requests.Response:
        response = requests.post(
            self.stack.url(f"/v1/hooks/{token or self.token}"), data=data, timeout=30
        )
        self.seen.append(("POST", "/v1/hooks/<token>", response.status_code, response.text))
        return response

    def ids(self) -> dict[str, str]:
        return {param: getattr(self, attr) for param, attr in ID_ATTRIBUTES.items()}

    def markers(self) -> list[str]:
        """Strings only this tenant's data contains."""
        return [
            self.community_id,
            self.spare_key_id,
            self.webhook_id,
            self.delivery_id,
            self.event_id,
            self.space_id,
            self.course_id,
            self.incoming_id,
            self.user_id,
            self.email,
            f"{self.name}-bin",
            f"{self.name} Lounge",
            self.event_type,
        ]


def token_of(url: str) -> str:
    return urlsplit(url).path.rsplit("/", 1)[-1]


def make_tenant(stack: LocalStackHandle, name: str, *, wait: float = 10.0) -> Tenant:
    """A community with a spare API key, a webhook on the stack's inspector that has been
    delivered to, a space, a course, an incoming webhook and the member it created, and a
    custom event type."""
    created = requests.post(
        stack.url("/v1/communities"),
        headers=stack.operator_headers(),
        json={"name": f"{name} Forum", "site_url": f"https://{name}.example"},
        timeout=30,
    )
    assert created.status_code == 201, created.text
    body = created.json()
    tenant = Tenant(stack, name, body["id"], body["api_key"]["key"], body["api_key"]["id"])
    tenant.seen.append(("POST", "/v1/communities", 201, created.text))

    spare = tenant.ok("POST", "/api-keys", json={"name": "spare"})
    tenant.spare_key, tenant.spare_key_id = spare["key"], spare["id"]
    hook = tenant.ok(
        "POST",
        "/webhooks",
        json={"url": stack.inspector_url(f"{name}-bin"), "events": ["*"], "name": f"{name} hook"},
    )
    tenant.webhook_id, tenant.webhook_secret = hook["id"], hook["secret"]
    tenant.space_id = tenant.ok("POST", "/spaces", json={"name": f"{name} Lounge"})["id"]
    tenant.course_id = tenant.ok("POST", "/courses", json={"name": f"{name} 101"})["id"]
    incoming = tenant.ok(
        "POST",
        "/incoming-webhooks",
        json={
            "name": f"{name} signup",
            "add_spaces": [tenant.space_id],
            "add_courses": [tenant.course_id],
        },
    )
    tenant.incoming_id, tenant.token = incoming["id"], token_of(incoming["url"])
    tenant.event_type = tenant.ok("POST", "/event-types", json={"name": f"{name}.signal"})["name"]
    tenant.email, tenant.password = f"member@{name}.example", f"Pw-{name}-Sup3rSecret!"
    joined = tenant.inbound({"email": tenant.email, "user_pass": tenant.password})
    assert joined.status_code == 200, joined.text
    tenant.user_id = joined.json()["user_id"]
    tenant.event_id = tenant.ok(
        "POST", "/events", json={"event": "post.created", "data": {"title": name}}
    )["id"]

    # Wait for the post.created event itself (the member's events before it may be dispatched
    # first, in their own batch): nothing of this tenant is still to dispatch afterwards.
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        listed = tenant.ok("GET", f"/webhooks/{tenant.webhook_id}/deliveries")["data"]
        mine = [d for d in listed if d["event_id"] == tenant.event_id]
        if mine:
            tenant.delivery_id = mine[0]["id"]
            return tenant
        time.sleep(0.05)
    raise AssertionError(f"no delivery of {name}'s post.created within {wait} s")


def new_community(
    stack: LocalStackHandle, name: str, site_url: str = "https://forum.example.com"
) -> tuple[str, str]:
    """A bare community made with the operator key: (community id, its admin key)."""
    answer = requests.post(
        stack.url("/v1/communities"),
        headers=stack.operator_headers(),
        json={"name": name, "site_url": site_url},
        timeout=30,
    )
    assert answer.status_code == 201, answer.text
    return answer.json()["id"], answer.json()["api_key"]["key"]


def call(
    stack: LocalStackHandle, method: str, path: str, key: str, **kwargs: Any
) -> requests.Response:
    """One API call with `key` as the Bearer key."""
    return requests.request(
        method, stack.url(path), headers=stack.headers(key), timeout=30, **kwargs
    )
