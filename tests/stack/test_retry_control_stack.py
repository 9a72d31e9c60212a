"""Retry control as a user drives it: over HTTP through the local stack, its retry timer running
the real ASL at --time-scale 0.005 (300 s -> 1.5 s, 1800 s -> 9 s), loopback receivers."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import requests

from hookline import clock
from hookline.domain import policy
from tests.localstack_fixtures import LocalStackHandle, start_local_stack
from tests.receivers import Receiver

SCALE = 0.005


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStackHandle]:
    handle = start_local_stack(
        time_scale=SCALE, data_dir=tmp_path_factory.mktemp("hookline-retry-control")
    )
    try:
        yield handle
    finally:
        handle.stop()


class Community:
    def __init__(self, stack: LocalStackHandle) -> None:
        self.stack = stack
        self.id, self.key = stack.community("Retry control")

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return requests.request(
            method,
            self.stack.url(f"/v1/communities/{self.id}{path}"),
            headers=self.stack.headers(self.key),
            timeout=15,
            **kwargs,
        )

    def webhook(self, url: str, **fields: Any) -> str:
        """A webhook for post.created only (so delivery.failed goes elsewhere)."""
        fields.setdefault("events", ["post.created"])
        return str(self.stack.webhook(self.id, self.key, url, **fields)["id"])

    def publish(self, title: str = "Hello") -> str:
        answer = self.call("POST", "/events", json={"event": "post.created", "data": {"t": title}})
        assert answer.status_code == 202, answer.text
        return str(answer.json()["id"])

    def deliveries(self, webhook_id: str) -> list[dict[str, Any]]:
        answer = self.call("GET", f"/webhooks/{webhook_id}/deliveries?per_page=50")
        assert answer.status_code == 200, answer.text
        return list(answer.json()["data"])

    def delivery_in(self, webhook_id: str, state: str, timeout: float = 10) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            return next((d for d in self.deliveries(webhook_id) if d["state"] == state), None)

        return self.stack.wait_for(found, timeout=timeout)

    def delivery(self, webhook_id: str, delivery_id: str) -> dict[str, Any]:
        answer = self.call("GET", f"/webhooks/{webhook_id}/deliveries/{delivery_id}")
        assert answer.status_code == 200, answer.text
        return dict(answer.json())


@pytest.fixture
def community(stack: LocalStackHandle) -> Community:
    return Community(stack)


def test_resend_while_retrying_that_succeeds_is_not_sent_again(community: Community) -> None:
    with Receiver([(500,), (200,)]) as rx:
        webhook_id = community.webhook(rx.url_for("/hook"), retry_count=3)
        community.publish()
        waiting = community.delivery_in(webhook_id, "retrying")
        # The real (scaled) time of the timer: 300 s x 0.005 after the first attempt.
        due = clock.parse_iso(waiting["next_attempt_at"])
        assert due - clock.parse_iso(waiting["updated_at"]) < timedelta(seconds=3)

        answer = community.call("POST", f"/webhooks/{webhook_id}/deliveries/{waiting['id']}/resend")
        assert answer.status_code == 200, answer.text
        assert answer.json()["success"] is True and answer.json()["attempt"]["attempt"] == 2

        # Past the old retry time and more: the workflow woke, found the 2xx and sent nothing.
        time.sleep(max((due - clock.now()).total_seconds(), 0) + 1.5)
        assert len(rx.requests) == 2
        final = community.delivery(webhook_id, waiting["id"])
        assert final["state"] == "delivered" and final["attempts"] == 2


def test_resend_while_retrying_keeps_the_count_and_the_schedule(community: Community) -> None:
    with Receiver((500, {}, b"down")) as rx:
        webhook_id = community.webhook(rx.url_for("/hook"), retry_count=2)
        community.publish()
        waiting = community.delivery_in(webhook_id, "retrying")
        due = clock.parse_iso(waiting["next_attempt_at"])

        answer = community.call("POST", f"/webhooks/{webhook_id}/deliveries/{waiting['id']}/resend")
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["attempt"]["attempt"] == 2 and body["delivery"]["state"] == "retrying"
        third_due = clock.parse_iso(body["delivery"]["next_attempt_at"])
        assert third_due == due + timedelta(seconds=1800 * SCALE)

        failed = community.delivery_in(webhook_id, "failed", timeout=25)
        assert failed["attempts"] == 3 and len(rx.requests) == 3
        log = community.delivery(webhook_id, waiting["id"])["attempt_log"]
        assert [a["attempt"] for a in log] == [1, 2, 3]
        # Attempt 3 came when the schedule said, not one wait after the old time.
        third = clock.parse_iso(log[2]["created_at"])
        assert third_due - timedelta(seconds=0.5) <= third <= third_due + timedelta(seconds=2)
        time.sleep(1)
        assert len(rx.requests) == 3


def test_recover_failed_deliveries_in_a_range(community: Community) -> None:
    with Receiver([(500,), (500,), (200,)]) as rx:
        webhook_id = community.webhook(rx.url_for("/hook"), retry_count=0)
        since = clock.now_iso()
        community.publish("one")
        community.publish("two")
        community.stack.wait_for(
            lambda: (
                len([d for d in community.deliveries(webhook_id) if d["state"] == "failed"]) == 2
            )
        )
        bad = community.call(
            "POST", f"/webhooks/{webhook_id}/recover", json={"since": since, "state": ["retrying"]}
        )
        assert bad.status_code == 400 and bad.json()["data"]["field"] == "state", bad.text

        answer = community.call(
            "POST",
            f"/webhooks/{webhook_id}/recover",
            json={"since": since, "until": clock.now_iso(), "state": ["failed"]},
        )
        assert answer.status_code == 202, answer.text
        assert answer.json()["queued"] == 2 and answer.json()["truncated"] is False
        community.stack.wait_for(lambda: len(rx.requests) >= 4, timeout=10)
        delivered = community.delivery_in(webhook_id, "delivered")
        assert delivered["attempts"] == 2


def test_replay_to_a_new_webhook_delivers_each_stored_event_once(community: Community) -> None:
    since = clock.now_iso()
    with Receiver((200,)) as sentinel, Receiver((200,)) as rx:
        community.webhook(sentinel.url_for("/sentinel"))
        published = [community.publish(f"before {n}") for n in range(3)]
        # The stream has fanned them out (to the sentinel only) before the new webhook exists.
        community.stack.wait_for(lambda: len(sentinel.requests) >= 3, timeout=10)
        webhook_id = community.webhook(rx.url_for("/hook"), events=["post.*"])
        first = community.call("POST", f"/webhooks/{webhook_id}/replay", json={"since": since})
        assert first.status_code == 202, first.text
        assert first.json()["queued"] == 3 and first.json()["truncated"] is False

        community.stack.wait_for(lambda: len(rx.requests) >= 3, timeout=10)
        again = community.call("POST", f"/webhooks/{webhook_id}/replay", json={"since": since})
        assert again.status_code == 202 and again.json()["queued"] == 0, again.text
        assert again.json()["skipped"] == 3
        time.sleep(1)
        ids = sorted(r.header("webhook-id") or "" for r in rx.requests)
        assert len(ids) == 3 and len(set(ids)) == 3
        bodies = {r.body for r in rx.requests}
        assert all(any(e.encode() in b for b in bodies) for e in published)


def test_a_paced_replay_to_a_dead_endpoint_fails_every_delivery_visibly(
    community: Community,
) -> None:
    """A replay writes its deliveries at once (one group window) and a rate limit spreads their
    first attempts over seconds: the later ones fail after the window's group took its last
    members (even after it ended). Each must still get 1 + retry_count attempts and end
    `failed`, with its delivery.failed event; none may stay `retrying`."""
    since = clock.now_iso()
    count = 4
    with Receiver((200,)) as watcher, Receiver((500,)) as dead:
        community.webhook(watcher.url_for("/failed"), events=["delivery.failed"])
        published = {community.publish(f"backlog {n}") for n in range(count)}
        webhook_id = community.webhook(dead.url_for("/hook"), rate_limit=1, retry_count=1)
        answer = community.call("POST", f"/webhooks/{webhook_id}/replay", json={"since": since})
        assert answer.status_code == 202 and answer.json()["queued"] == count, answer.text

        def ended() -> list[dict[str, Any]] | None:
            listed = community.deliveries(webhook_id)
            done = [d for d in listed if d["state"] == "failed"]
            return listed if len(listed) == count and len(done) == count else None

        listed = community.stack.wait_for(ended, timeout=60)
        community.stack.wait_for(lambda: len(watcher.requests) >= count, timeout=10)
        time.sleep(2 * SCALE * 300)  # a retry the group would still owe would have come
        sent = sorted(r.header("webhook-id") or "" for r in dead.requests)
        failures = [json.loads(r.body) for r in watcher.requests]

    assert all(d["attempts"] == 2 for d in listed), listed
    assert {d["event_id"] for d in listed} == published
    ids = {d["id"] for d in listed}
    assert sent == sorted([*ids, *ids])  # exactly 1 + retry_count each, nothing more
    assert sorted(f["data"]["delivery_id"] for f in failures) == sorted(ids)
    # The attempts a minute apart in workflow time came too late for one group: later
    # generations of the window took them, and every group ran to its end.
    groups = [
        e for e in community.stack.scheduler.executions() if e.input["webhook_id"] == webhook_id
    ]
    assert len(groups) > 1 and all(e.status == "SUCCEEDED" for e in groups)
    assert any(policy.generation_of(e.name) for e in groups)
