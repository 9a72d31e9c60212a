"""Issue-12 findings reproduced as a new user would: over HTTP against the local stack, started
as deployed (private and loopback targets refused), each now getting the safe answer."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from standardwebhooks.webhooks import Webhook as StandardWebhook

from hookline.domain.signing import body_signature
from tests.localstack_fixtures import LocalStackHandle, start_local_stack
from tests.stack_tenants import token_of


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStackHandle]:
    handle = start_local_stack(
        data_dir=tmp_path_factory.mktemp("hookline-security"), allow_private_targets=False
    )
    try:
        yield handle
    finally:
        handle.stop()


class Admin:
    def __init__(self, stack: LocalStackHandle) -> None:
        created = requests.post(
            stack.url("/v1/communities"),
            headers=stack.operator_headers(),
            json={"name": "Security Forum", "site_url": "https://security.example"},
            timeout=30,
        )
        assert created.status_code == 201, created.text
        self.stack = stack
        self.base = f"/v1/communities/{created.json()['id']}"
        self.key = created.json()["api_key"]["key"]

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return requests.request(
            method,
            self.stack.url(self.base + path),
            headers={"Authorization": f"Bearer {self.key}"},
            timeout=30,
            **kwargs,
        )


@pytest.fixture(scope="module")
def admin(stack: LocalStackHandle) -> Admin:
    return Admin(stack)


def _refused(response: requests.Response, field: str, code: str = "invalid_param") -> None:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == code and body["data"] == {"status": 400, "field": field}, body


# -- 1: replayed incoming calls --------------------------------------------------------------


def test_a_signed_incoming_call_cannot_be_replayed(admin: Admin) -> None:
    created = admin.call(
        "POST", "/incoming-webhooks", json={"name": "signed", "require_signature": True}
    ).json()
    secret, url = (
        created["signing_secret"],
        admin.stack.url(f"/v1/hooks/{token_of(created['url'])}"),
    )
    body = json.dumps({"email": "replay@security.example"}).encode()
    now = datetime.now(UTC)
    headers = {
        "Content-Type": "application/json",
        "webhook-id": "msg_2f6c1d",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": StandardWebhook(secret).sign("msg_2f6c1d", now, body.decode()),
    }
    first = requests.post(url, data=body, headers=headers, timeout=30)
    assert first.status_code == 200, first.text
    replay = requests.post(url, data=body, headers=headers, timeout=30)
    assert replay.status_code == 409, replay.text
    assert replay.json()["success"] is False and "already received" in replay.json()["message"]

    # The body-only scheme with a fresh timestamp: refused, it does not cover the timestamp.
    body_only = {
        "Content-Type": "application/json",
        "X-Hookline-Signature": body_signature(secret, body),
        "X-Hookline-Timestamp": str(int(time.time())),
    }
    refused = requests.post(url, data=body, headers=body_only, timeout=30)
    assert refused.status_code == 401, refused.text
    assert "X-Hookline-Signature does not cover a timestamp" in refused.json()["message"]


# -- 2: unknown tokens are refused before any lookup ------------------------------------------


@pytest.mark.parametrize("token", ["nope", "x" * 43 + "!", "A" * 300])
def test_malformed_tokens_get_404(stack: LocalStackHandle, token: str) -> None:
    response = requests.post(
        stack.url(f"/v1/hooks/{token}"), data={"email": "a@security.example"}, timeout=30
    )
    assert response.status_code == 404
    assert response.json() == {"success": False, "message": "Not found."}


# -- 4: IPv4-translated addresses -------------------------------------------------------------


@pytest.mark.parametrize("host", ["[::ffff:0:127.0.0.1]", "[::ffff:0:a9fe:a9fe]"])
def test_ipv4_translated_targets_are_refused(admin: Admin, host: str) -> None:
    response = admin.call("POST", "/webhooks", json={"url": f"https://{host}/", "events": ["*"]})
    _refused(response, "url", code="invalid_url")


# -- 6, 7, 13: secrets and custom headers -----------------------------------------------------


def test_header_values_are_write_only_and_secrets_masked_without_a_suffix(admin: Admin) -> None:
    created = admin.call(
        "POST",
        "/webhooks",
        json={
            "url": "https://hooks.security.example/in",
            "events": ["post.*"],
            "headers": {"X-Api-Key": "third-party-key-81c2"},
        },
    )
    assert created.status_code == 201, created.text
    hook = created.json()
    assert hook["headers"] == {"X-Api-Key": "********"}
    for read in (admin.call("GET", f"/webhooks/{hook['id']}"), admin.call("GET", "/webhooks")):
        assert read.status_code == 200
        assert "third-party-key-81c2" not in read.text
        assert hook["secret"] not in read.text
    fetched = admin.call("GET", f"/webhooks/{hook['id']}").json()
    assert fetched["secret"] == "whsec_********"
    assert fetched["headers"] == {"X-Api-Key": "********"}


@pytest.mark.parametrize(
    ("path", "field", "value"),
    [
        ("/webhooks", "secret", "whsec_AA=="),
        ("/webhooks", "secret", "short-plain-key"),
        ("/incoming-webhooks", "signing_secret", "whsec_AA=="),
        ("/incoming-webhooks", "signing_secret", "short-plain-key"),
    ],
)
def test_weak_secrets_are_refused(admin: Admin, path: str, field: str, value: str) -> None:
    fields: dict[str, Any] = (
        {"url": "https://hooks.security.example/in", "events": ["*"]}
        if path == "/webhooks"
        else {"name": "weak"}
    )
    _refused(admin.call("POST", path, json={**fields, field: value}), field)


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Hookline-Attempt": "7"},
        {"Upgrade": "h2c"},
        {"TE": "trailers"},
        {"Keep-Alive": "timeout=5"},
        {"Trailer": "X-Sum"},
        {"Expect": "100-continue"},
        {"Content-Encoding": "gzip"},
        {"Proxy-Authorization": "Basic eDp5"},
        {"X-Note": "next\x85line"},
    ],
)
def test_reserved_headers_and_invisible_bytes_are_refused(
    admin: Admin, headers: dict[str, str]
) -> None:
    response = admin.call(
        "POST",
        "/webhooks",
        json={"url": "https://hooks.security.example/in", "events": ["*"], "headers": headers},
    )
    _refused(response, "headers")
