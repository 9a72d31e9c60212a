"""Operator routes over HTTP through the local stack: listing communities with a cursor, and
deleting one with everything of it (keys stop at once, pending retries are cancelled).

The stack here runs retry waits x0.02 (the 5 min wait takes 6 s), so a retry is still pending
when the community goes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.localstack_fixtures import LocalStackHandle, start_local_stack
from tests.stack_tenants import call, new_community


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStackHandle]:
    handle = start_local_stack(data_dir=tmp_path_factory.mktemp("operator"), time_scale=0.02)
    try:
        yield handle
    finally:
        handle.stop()


def _deliveries(stack: LocalStackHandle, webhook_id: str) -> list[dict[str, Any]]:
    assert stack.storage is not None
    items = stack.storage.deliveries.scan_all()
    return [i for i in items if i.get("webhook_id") == webhook_id and str(i["sk"]).startswith("D#")]


def test_list_communities_with_a_cursor(stack: LocalStackHandle) -> None:
    made = [new_community(stack, f"Listed {n}")[0] for n in range(3)]
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params = {"per_page": "2", **({"cursor": cursor} if cursor else {})}
        answer = requests.get(
            stack.url("/v1/communities"),
            headers=stack.operator_headers(),
            params=params,
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert len(body["data"]) <= 2
        seen += [c["id"] for c in body["data"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert [c for c in seen if c in made] == list(reversed(made))  # newest first
    _, admin = new_community(stack, "Not an operator")
    denied = call(stack, "GET", "/v1/communities", admin)
    assert denied.status_code == 403 and denied.json()["code"] == "rest_forbidden"
    bad = requests.get(
        stack.url("/v1/communities"),
        headers=stack.operator_headers(),
        params={"per_page": "0"},
        timeout=30,
    )
    assert bad.status_code == 400 and bad.json()["data"]["field"] == "per_page"


def test_delete_community_removes_everything_and_stops_at_once(stack: LocalStackHandle) -> None:
    cid, admin = new_community(stack, "Doomed")
    base = f"/v1/communities/{cid}"
    spare = call(stack, "POST", f"{base}/api-keys", admin, json={"scopes": ["read"]}).json()
    hook = call(
        stack,
        "POST",
        f"{base}/webhooks",
        admin,
        json={"url": stack.inspector_url("doomed") + "?status=503", "events": ["post.*"]},
    ).json()
    space = call(stack, "POST", f"{base}/spaces", admin, json={"name": "Lounge"}).json()
    incoming = call(
        stack,
        "POST",
        f"{base}/incoming-webhooks",
        admin,
        json={"name": "signup", "add_spaces": [space["id"]]},
    ).json()
    joined = requests.post(incoming["url"], data={"email": "gone@example.com"}, timeout=30)
    assert joined.status_code == 200, joined.text
    call(stack, "POST", f"{base}/event-types", admin, json={"name": "order.refunded"})
    # The reader key is used now, so the authorizer has cached it.
    assert call(stack, "GET", base, spare["key"]).status_code == 200
    published = call(stack, "POST", f"{base}/events", admin, json={"event": "post.created"})
    assert published.status_code == 202
    stack.wait_for(lambda: stack.inspected("doomed"), timeout=10)
    [retrying] = stack.wait_for(
        lambda: [d for d in _deliveries(stack, hook["id"]) if d["state"] == "retrying"],
        timeout=10,
    )

    by_admin = call(stack, "DELETE", base, admin)
    assert by_admin.status_code == 403 and by_admin.json()["code"] == "rest_forbidden"
    deleted = requests.delete(stack.url(base), headers=stack.operator_headers(), timeout=30)
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["deleted"] is True
    assert deleted.json()["removed"]["api_keys"] == 2
    assert deleted.json()["removed"]["webhooks"] == 1

    for key in (admin, spare["key"]):
        assert call(stack, "GET", base, key).status_code == 401
        assert call(stack, "GET", "/v1/event-types", key).status_code == 401
    gone = requests.post(incoming["url"], data={"email": "again@example.com"}, timeout=30)
    assert gone.status_code == 404
    assert (
        requests.get(stack.url(base), headers=stack.operator_headers(), timeout=30).status_code
        == 404
    )
    again = requests.delete(stack.url(base), headers=stack.operator_headers(), timeout=30)
    assert again.status_code == 404
    listed = requests.get(
        stack.url("/v1/communities"), headers=stack.operator_headers(), timeout=30
    ).json()
    assert cid not in [c["id"] for c in listed["data"]]

    # The delivery log went with the community; the pending retry ends when it comes due,
    # without another attempt.
    assert _deliveries(stack, hook["id"]) == []
    assert stack.scheduler is not None
    retry = str(retrying["retry_group"])

    def ended() -> bool:
        execution = stack.scheduler.execution(retry) if stack.scheduler else None
        return execution is not None and execution.status != "RUNNING"

    stack.wait_for(ended, timeout=30)
    assert len(stack.inspected("doomed")) == 1
