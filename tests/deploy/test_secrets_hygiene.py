"""Secrets hygiene in API responses: after a full scenario on the local stack (create, deliver,
fail and retry, rotate, incoming webhooks with a password, a required signature and a rotated
URL), no API response contains a secret, key, token or password, except the one response that
hands it out: creating the key/webhook/incoming webhook, or rotating it.

(The captured logs of the same kinds of scenario are checked by
tests/deploy/test_logging_hygiene.py.)
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import pytest

from hookline.domain.webhooks import mask_secret
from tests.localstack_fixtures import LocalStackHandle, local_stack  # noqa: F401
from tests.stack_tenants import Tenant, make_tenant, token_of

#: The responses that may carry a secret: (method, path suffix) of create and rotate routes.
HANDING_OUT = (
    ("POST", "/v1/communities"),
    ("POST", "/api-keys"),
    ("POST", "/webhooks"),
    ("POST", "/rotate-secret"),
    ("POST", "/incoming-webhooks"),
    ("POST", "/rotate"),
    ("PATCH", "/incoming-webhooks/"),  # turning require_signature on generates and shows a secret
)


#: Secrets no response ever shows (the client chose them, or they are the operator's).
NEVER_SHOWN = frozenset(
    {
        "operator key",
        "member password",
        "second password",
        "refused call's password",
        "patched webhook secret",
        "custom header value",
        "patched custom header value",
    }
)


def _hands_out(method: str, path: str) -> bool:
    return any(
        method == m and (path.endswith(suffix) or (suffix.endswith("/") and suffix in path))
        for m, suffix in HANDING_OUT
    )


def _wait(predicate: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


@pytest.fixture(scope="module")
def scenario(local_stack: LocalStackHandle) -> tuple[Tenant, dict[str, str]]:  # noqa: F811
    """Everything a community does, recording every response; returns the secrets involved."""
    acme = make_tenant(local_stack, "hygiene")
    secrets: dict[str, str] = {
        "operator key": local_stack.operator_key,
        "admin key": acme.key,
        "spare key": acme.spare_key,
        "webhook secret": acme.webhook_secret,
        "incoming token": acme.token,
        "member password": acme.password,
    }

    # A webhook whose secret the user chooses, given in the URL as peers allow (?sk=).
    # Its custom header carries a third-party API key: write-only, never shown.
    chosen = "whsec_" + "c2VjcmV0LWNob3Nlbi1ieS10aGUtdXNlci0xMjM0NTY="
    header_value = "crm-api-key-7f3a9c1e5b"
    failing = acme.ok(
        "POST",
        "/webhooks",
        json={
            "url": local_stack.inspector_url("hygiene-failing") + f"?status=500&sk={chosen}",
            "events": ["post.*"],
            "retry_count": 2,
            "headers": {"X-Crm-Key": header_value},
        },
    )
    secrets["chosen webhook secret"] = chosen
    secrets["custom header value"] = header_value

    # Deliver, fail and retry to the end; read the logs and deliveries.
    acme.ok("POST", "/events", json={"event": "post.created", "data": {"title": "hello"}})

    def failed() -> list[Any]:
        listed = acme.ok("GET", f"/webhooks/{failing['id']}/deliveries", params={"state": "failed"})
        return list(listed["data"])

    [delivery] = _wait(failed)
    acme.ok("GET", f"/webhooks/{failing['id']}/deliveries/{delivery['id']}")
    acme.ok("GET", f"/webhooks/{failing['id']}/logs")
    acme.ok("POST", f"/webhooks/{failing['id']}/test")
    acme.ok("POST", f"/webhooks/{failing['id']}/deliveries/{delivery['id']}/resend")
    acme.ok("GET", f"/webhooks/{acme.webhook_id}/logs")

    # Rotate the signing secret; set one through PATCH.
    rotated = acme.ok("POST", f"/webhooks/{acme.webhook_id}/rotate-secret")
    secrets["rotated webhook secret"] = rotated["secret"]
    patched = "whsec_" + "cGF0Y2hlZC1zZWNyZXQtc2V0LWJ5LXRoZS11c2VyLTk4NzY="
    acme.ok("PATCH", f"/webhooks/{failing['id']}", json={"secret": patched})
    secrets["patched webhook secret"] = patched
    patched_header = "crm-api-key-second-0b4d"
    acme.ok("PATCH", f"/webhooks/{failing['id']}", json={"headers": {"X-Crm-Key": patched_header}})
    secrets["patched custom header value"] = patched_header

    # Incoming webhooks: a required signature, a password, a rotated URL.
    signed = acme.ok(
        "POST", "/incoming-webhooks", json={"name": "signed", "require_signature": True}
    )
    secrets["incoming signing secret"] = signed["signing_secret"]
    later = acme.ok(
        "PATCH", f"/incoming-webhooks/{acme.incoming_id}", json={"require_signature": True}
    )
    secrets["incoming signing secret (patch)"] = later["signing_secret"]
    acme.ok("PATCH", f"/incoming-webhooks/{acme.incoming_id}", json={"require_signature": False})
    second_password = "An0ther-Very-Secret-Passw0rd"
    joined = acme.inbound({"email": "second@hygiene.example", "user_pass": second_password})
    assert joined.status_code == 200, joined.text
    secrets["second password"] = second_password
    refused = acme.inbound(
        {"email": "third@hygiene.example", "user_pass": "Th1rd-Secret-Pw!"},
        token=token_of(signed["url"]),
    )
    assert refused.status_code in (400, 401, 403), refused.text
    secrets["refused call's password"] = "Th1rd-Secret-Pw!"
    rotated_url = acme.ok("POST", f"/incoming-webhooks/{acme.incoming_id}/rotate")["url"]
    secrets["rotated incoming token"] = token_of(rotated_url)
    secrets["signed incoming token"] = token_of(signed["url"])

    # Read everything back.
    for path in (
        "",
        "/api-keys",
        "/webhooks",
        f"/webhooks/{acme.webhook_id}",
        f"/webhooks/{failing['id']}",
        "/incoming-webhooks",
        f"/incoming-webhooks/{acme.incoming_id}",
        f"/incoming-webhooks/{acme.incoming_id}/logs",
        f"/incoming-webhooks/{signed['id']}/logs",
        "/members",
        f"/members/{acme.user_id}",
        "/spaces",
        f"/spaces/{acme.space_id}/members",
    ):
        acme.ok("GET", path)
    acme.ok("GET", "/members", params={"email": "second@hygiene.example"})
    acme.ok("DELETE", f"/api-keys/{acme.spare_key_id}")
    return acme, secrets


def test_no_response_shows_a_secret_except_the_one_handing_it_out(
    scenario: tuple[Tenant, dict[str, str]],
) -> None:
    tenant, secrets = scenario
    assert len(tenant.seen) > 40
    for name, secret in secrets.items():
        showing = [(m, p, s) for m, p, s, text in tenant.seen if secret in text]
        if name in NEVER_SHOWN:
            assert showing == [], (name, showing)
            continue
        assert len(showing) <= 1, (name, showing)
        for method, path, status in showing:
            assert _hands_out(method, path) and status in (200, 201), (name, method, path)


def test_a_secret_chosen_by_the_user_is_shown_once_at_create_only(
    scenario: tuple[Tenant, dict[str, str]],
) -> None:
    tenant, secrets = scenario
    showing = [(m, p) for m, p, _, text in tenant.seen if secrets["chosen webhook secret"] in text]
    assert showing == [("POST", f"{tenant.base}/webhooks")]


def test_passwords_and_hashes_appear_in_no_response(
    scenario: tuple[Tenant, dict[str, str]],
) -> None:
    tenant, secrets = scenario
    for _, path, _, text in tenant.seen:
        for key in ("password", "password_hash", "key_hash", "token_hash", "user_pass"):
            assert f'"{key}"' not in text, (path, key)
        assert "scrypt" not in text.lower(), path
        for name in ("admin key", "spare key", "incoming token", "rotated incoming token"):
            digest = hashlib.sha256(secrets[name].encode()).hexdigest()
            assert digest not in text, (path, name)


def test_secrets_are_shown_masked_afterwards(scenario: tuple[Tenant, dict[str, str]]) -> None:
    tenant, secrets = scenario
    listed = json.loads(
        [t for m, p, _, t in tenant.seen if m == "GET" and p.endswith("/webhooks")][-1]
    )
    shown = {w["id"]: w["secret"] for w in listed["data"]}
    assert shown[tenant.webhook_id] == mask_secret(secrets["rotated webhook secret"])
    # The mask says which kind of secret it is and nothing of its value: no suffix.
    assert set(shown.values()) == {"whsec_********"}
    assert {h for w in listed["data"] for h in w["headers"].values()} == {"********"}
    incoming = json.loads(
        [t for m, p, _, t in tenant.seen if m == "GET" and p.endswith("/incoming-webhooks")][-1]
    )
    assert {h["signing_secret"] for h in incoming["data"]} <= {None, "whsec_********"}
    keys = json.loads(
        [t for m, p, _, t in tenant.seen if m == "GET" and p.endswith("/api-keys")][-1]
    )
    for key in keys["data"]:
        assert set(key) >= {"id", "prefix"} and "key" not in key
        assert len(key["prefix"]) <= 8
