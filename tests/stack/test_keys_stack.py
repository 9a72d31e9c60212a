"""Scoped API keys, last_used_at, revocation on every route and secret rotation, over HTTP
through the local stack as a new user would call them."""

from __future__ import annotations

from typing import Any

import pytest
import standardwebhooks
from standardwebhooks.webhooks import WebhookVerificationError

from hookline.ids import new_webhook_secret
from hookline.receiver import is_valid
from tests.localstack_fixtures import LocalStackHandle, local_stack  # noqa: F401
from tests.stack_tenants import call, new_community


@pytest.fixture(scope="module")
def stack(local_stack: LocalStackHandle) -> LocalStackHandle:  # noqa: F811
    return local_stack


def _key(stack: LocalStackHandle, cid: str, admin: str, **fields: Any) -> dict[str, Any]:
    answer = call(stack, "POST", f"/v1/communities/{cid}/api-keys", admin, json=fields)
    assert answer.status_code == 201, answer.text
    return answer.json()


def test_publish_key_publishes_and_does_nothing_else(stack: LocalStackHandle) -> None:
    cid, admin = new_community(stack, "Scopes")
    publisher = _key(stack, cid, admin, name="cms", scopes=["publish"])
    assert publisher["scopes"] == ["publish"]
    base = f"/v1/communities/{cid}"
    published = call(
        stack, "POST", f"{base}/events", publisher["key"], json={"event": "post.created"}
    )
    assert published.status_code == 202, published.text
    for method, path, body in [
        ("GET", f"{base}/webhooks", None),
        ("GET", base, None),
        ("POST", f"{base}/webhooks", {"url": "https://example.com/h", "events": ["*"]}),
        ("POST", f"{base}/api-keys", {"name": "more"}),
        ("GET", "/v1/event-types", None),
    ]:
        answer = call(stack, method, path, publisher["key"], json=body)
        assert answer.status_code == 403, (method, path, answer.text)
        assert answer.json()["code"] == "rest_forbidden"


def test_read_key_only_reads(stack: LocalStackHandle) -> None:
    cid, admin = new_community(stack, "Readers")
    reader = _key(stack, cid, admin, scopes=["read"])["key"]
    base = f"/v1/communities/{cid}"
    assert call(stack, "GET", f"{base}/webhooks", reader).status_code == 200
    assert call(stack, "GET", f"{base}/api-keys", reader).status_code == 200
    assert call(stack, "GET", "/v1/event-types", reader).status_code == 200
    for method, path, body in [
        ("POST", f"{base}/events", {"event": "post.created"}),
        ("PATCH", base, {"name": "Renamed"}),
        ("POST", f"{base}/webhooks", {"url": "https://example.com/h", "events": ["*"]}),
    ]:
        answer = call(stack, method, path, reader, json=body)
        assert answer.status_code == 403, (method, path, answer.text)
        assert answer.json()["code"] == "rest_forbidden"
    both = _key(stack, cid, admin, scopes=["read", "publish"])["key"]
    assert call(stack, "GET", f"{base}/webhooks", both).status_code == 200
    published = call(stack, "POST", f"{base}/events", both, json={"event": "post.created"})
    assert published.status_code == 202


def test_default_key_is_admin_and_bad_scopes_are_refused(stack: LocalStackHandle) -> None:
    cid, admin = new_community(stack, "Defaults")
    assert _key(stack, cid, admin)["scopes"] == ["admin"]
    for scopes in (["owner"], [], "publish"):
        answer = call(
            stack, "POST", f"/v1/communities/{cid}/api-keys", admin, json={"scopes": scopes}
        )
        assert answer.status_code == 400, answer.text
        assert answer.json()["data"]["field"].startswith("scopes")


def test_last_used_at_is_kept(stack: LocalStackHandle) -> None:
    cid, admin = new_community(stack, "Usage")
    spare = _key(stack, cid, admin, name="spare", scopes=["read"])
    assert spare["last_used_at"] is None

    def listed() -> dict[str, Any]:
        keys = call(stack, "GET", f"/v1/communities/{cid}/api-keys", admin).json()["data"]
        return {k["id"]: k for k in keys}

    assert listed()[spare["id"]]["last_used_at"] is None
    assert call(stack, "GET", f"/v1/communities/{cid}", spare["key"]).status_code == 200
    first = listed()[spare["id"]]["last_used_at"]
    assert first is not None
    # Used again within the minute: not written again.
    assert call(stack, "GET", f"/v1/communities/{cid}", spare["key"]).status_code == 200
    assert listed()[spare["id"]]["last_used_at"] == first


def test_a_revoked_key_stops_at_once_on_event_types(stack: LocalStackHandle) -> None:
    cid, admin = new_community(stack, "Revoked")
    spare = _key(stack, cid, admin, name="soon revoked")
    # Cached by the authorizer now.
    assert call(stack, "GET", "/v1/event-types", spare["key"]).status_code == 200
    revoked = call(stack, "DELETE", f"/v1/communities/{cid}/api-keys/{spare['id']}", admin)
    assert revoked.status_code == 200
    for path in ("/v1/event-types", "/v1/event-types/post.created", f"/v1/communities/{cid}"):
        answer = call(stack, "GET", path, spare["key"])
        assert answer.status_code == 401, (path, answer.text)


def _verifies(secret: str, request: dict[str, Any]) -> bool:
    try:
        standardwebhooks.Webhook(secret).verify(request["body"].encode(), request["headers"])
    except WebhookVerificationError:
        return False
    return True


def _one_header(request: dict[str, Any], name: str) -> dict[str, str]:
    headers = {k.lower(): v for k, v in request["headers"].items()}
    return {"X-Hookline-Signature": headers[name.lower()]}


def test_rotation_over_http_breaks_no_receiver(stack: LocalStackHandle) -> None:
    cid, admin = new_community(stack, "Rotation")
    base = f"/v1/communities/{cid}"
    bin_name = "rotation-bin"
    hook = call(
        stack,
        "POST",
        f"{base}/webhooks",
        admin,
        json={"url": stack.inspector_url(bin_name), "events": ["post.*"]},
    ).json()
    ops = "rotation-ops"
    call(
        stack,
        "POST",
        f"{base}/webhooks",
        admin,
        json={"url": stack.inspector_url(ops), "events": ["webhook.secret_rotated"]},
    )
    old = hook["secret"]
    chosen = new_webhook_secret()
    rotated = call(
        stack,
        "POST",
        f"{base}/webhooks/{hook['id']}/rotate-secret",
        admin,
        json={"secret": chosen, "overlap_seconds": 600},
    )
    assert rotated.status_code == 200, rotated.text
    answer = rotated.json()
    assert answer["secret"] == chosen
    assert answer["previous_secret_expires_at"] == answer["overlap_ends_at"]
    assert [p["expires_at"] for p in answer["previous_secrets"]] == [answer["overlap_ends_at"]]
    assert old not in rotated.text.replace(chosen, "")

    call(stack, "POST", f"{base}/events", admin, json={"event": "post.created"})
    [during] = stack.wait_for(lambda: stack.inspected(bin_name), timeout=10)
    body = during["body"].encode()
    assert _verifies(old, during) and _verifies(chosen, during)
    assert is_valid(_one_header(during, "X-Hookline-Signature"), body, old)
    assert is_valid(_one_header(during, "X-Hookline-Signature-Next"), body, chosen)

    [announced] = stack.wait_for(lambda: stack.inspected(ops), timeout=10)
    assert '"event":"webhook.secret_rotated"' in announced["body"]
    assert hook["id"] in announced["body"]
    assert old not in announced["body"] and chosen not in announced["body"]

    completed = call(stack, "POST", f"{base}/webhooks/{hook['id']}/rotate-secret/complete", admin)
    assert completed.status_code == 200, completed.text
    assert completed.json()["previous_secrets"] == []
    assert completed.json()["overlap_ends_at"] is None
    assert chosen not in completed.text

    call(stack, "POST", f"{base}/events", admin, json={"event": "post.updated"})
    after = stack.wait_for(
        lambda: [r for r in stack.inspected(bin_name) if "post.updated" in r["body"]],
        timeout=10,
    )[0]
    assert _verifies(chosen, after) and not _verifies(old, after)
    assert "x-hookline-signature-next" not in {k.lower() for k in after["headers"]}


@pytest.mark.parametrize(
    "body",
    [{"overlap_seconds": -5}, {"overlap_seconds": "soon"}, {"secret": "abc"}, {"grace": 10}],
)
def test_bad_rotation_bodies_are_400(stack: LocalStackHandle, body: dict[str, Any]) -> None:
    cid, admin = new_community(stack, "Bad rotation")
    base = f"/v1/communities/{cid}"
    hook = call(
        stack,
        "POST",
        f"{base}/webhooks",
        admin,
        json={"url": "https://example.com/h", "events": ["post.*"]},
    ).json()
    answer = call(stack, "POST", f"{base}/webhooks/{hook['id']}/rotate-secret", admin, json=body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["code"] == "invalid_param"
    assert answer.json()["data"]["field"] == next(iter(body))
