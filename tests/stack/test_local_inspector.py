"""The local stack's request inspector over HTTP: both signature schemes, clearing a bin,
numbering per bin, a self-refreshing page, and no credentials on its pages."""

from __future__ import annotations

import json
from typing import Any

import requests

from hookline.domain.signing import body_signature
from tests.localstack_fixtures import local_stack  # noqa: F401


def _setup(stack: Any, bin_name: str, **webhook: Any) -> dict[str, Any]:
    community_id, key = stack.community("Inspector")
    hook = stack.webhook(community_id, key, stack.inspector_url(bin_name), **webhook)
    return {"community_id": community_id, "key": key, "webhook": hook}


def _shown(stack: Any, bin_name: str) -> list[dict[str, Any]]:
    response = requests.get(stack.url(f"/_inspect/{bin_name}"), timeout=5)
    assert response.status_code == 200
    requests_: list[dict[str, Any]] = response.json()["requests"]
    return requests_


def test_both_signature_schemes_are_reported_each_on_its_own(local_stack):  # noqa: F811
    setup = _setup(local_stack, "schemes")
    secret = setup["webhook"]["secret"]
    body = b'{"hello": "world"}'
    # Only the body scheme, correctly signed: verified.
    requests.post(
        local_stack.inspector_url("schemes"),
        data=body,
        headers={"X-Hookline-Signature": body_signature(secret, body)},
        timeout=5,
    )
    # Both schemes, the body one forged: the page says which one failed.
    requests.post(
        local_stack.inspector_url("schemes"),
        data=body,
        headers={
            "X-Hookline-Signature": "sha256=" + "0" * 64,
            "webhook-id": "msg_1",
            "webhook-timestamp": "1",
            "webhook-signature": "v1,AAAA",
        },
        timeout=5,
    )
    forged, good = _shown(local_stack, "schemes")
    assert good["signature"]["verified"] is True
    assert good["signature"]["schemes"] == {
        "x-hookline-signature": {"verified": True, "reason": None}
    }
    assert forged["signature"]["verified"] is False
    schemes = forged["signature"]["schemes"]
    assert set(schemes) == {"standard-webhooks", "x-hookline-signature"}
    assert schemes["x-hookline-signature"] == {"verified": False, "reason": "no matching signature"}
    assert schemes["standard-webhooks"]["verified"] is False


def test_delete_clears_a_bin_and_numbering_is_per_bin(local_stack):  # noqa: F811
    for _ in range(3):
        requests.post(local_stack.inspector_url("numbers-a"), data="a", timeout=5)
    requests.post(local_stack.inspector_url("numbers-b"), data="b", timeout=5)
    assert [r["id"] for r in _shown(local_stack, "numbers-a")] == [3, 2, 1]
    assert [r["id"] for r in _shown(local_stack, "numbers-b")] == [1]

    cleared = requests.delete(local_stack.inspector_url("numbers-a"), timeout=5)
    assert cleared.status_code == 200
    assert cleared.json() == {"ok": True, "cleared": "numbers-a"}
    assert _shown(local_stack, "numbers-a") == []
    requests.post(local_stack.inspector_url("numbers-a"), data="again", timeout=5)
    assert [r["id"] for r in _shown(local_stack, "numbers-a")] == [1]
    assert [r["id"] for r in _shown(local_stack, "numbers-b")] == [1]


def test_pages_mask_credentials_and_the_html_page_refreshes(local_stack):  # noqa: F811
    setup = _setup(local_stack, "masked", headers={"X-Crm-Auth": "crm-third-party-value"})
    published = requests.post(
        local_stack.url(f"/v1/communities/{setup['community_id']}/events"),
        headers=local_stack.headers(setup["key"]),
        json={"event": "post.created", "data": {"title": "masked"}},
        timeout=10,
    )
    assert published.status_code == 202
    local_stack.wait_for(lambda: local_stack.inspected("masked"), timeout=10)
    requests.post(
        local_stack.inspector_url("masked"),
        data="x",
        headers={"Authorization": "Bearer hk_should_not_show", "X-Plain": "shown"},
        timeout=5,
    )
    manual, delivery = _shown(local_stack, "masked")
    headers = delivery["headers"]
    assert headers["X-Crm-Auth"] == "[REDACTED]"
    assert headers["webhook-signature"] == "[REDACTED]"
    assert headers["X-Hookline-Signature"] == "[REDACTED]"
    assert headers["webhook-id"].startswith("dlv_")
    assert delivery["signature"]["verified"] is True  # checked on the real values
    assert manual["headers"]["Authorization"] == "[REDACTED]"
    assert manual["headers"]["X-Plain"] == "shown"

    page = requests.get(local_stack.url("/_inspect/masked?format=html"), timeout=5).text
    assert "<meta http-equiv='refresh'" in page
    for secret in ("crm-third-party-value", "hk_should_not_show", setup["webhook"]["secret"]):
        assert secret not in page
        assert secret not in json.dumps(_shown(local_stack, "masked"))
    signature = local_stack.inspector.requests("masked")[1].to_json(mask=False)["headers"]
    assert signature["X-Crm-Auth"] == "crm-third-party-value"  # in-process callers see it all
