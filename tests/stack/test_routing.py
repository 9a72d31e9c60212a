"""Routing through `hookline local` over HTTP, as a new user would: content filters on the payload
(and, in the rate-limit tests, pacing per webhook)."""

from __future__ import annotations

import io
import itertools
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from hookline import clock
from hookline.observability import logger
from tests.localstack_fixtures import LocalStackHandle, local_stack  # noqa: F401
from tests.receivers import Receiver, Reply

SUPPORT_ONLY = {"data": {"space_slug": ["support"]}}


class Admin:
    """One community's admin, talking to the stack with its API key."""

    def __init__(self, stack: LocalStackHandle) -> None:
        self.stack = stack
        response = requests.post(
            stack.url("/v1/communities"),
            headers=stack.operator_headers(),
            json={"name": "Routing", "site_url": "https://community.example"},
            timeout=10,
        )
        assert response.status_code == 201, response.text
        body = response.json()
        self.community_id = body["id"]
        self.headers = stack.headers(body["api_key"]["key"])

    def call(self, method: str, path: str, body: Any = None) -> requests.Response:
        return requests.request(
            method,
            self.stack.url(f"/v1/communities/{self.community_id}{path}"),
            headers=self.headers,
            json=body,
            timeout=10,
        )

    def webhook(self, url: str, **fields: Any) -> dict[str, Any]:
        response = self.call("POST", "/webhooks", {"url": url, "events": ["post.*"], **fields})
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    def publish(self, data: dict[str, Any], event: str = "post.created") -> str:
        response = self.call("POST", "/events", {"event": event, "data": data})
        assert response.status_code in (200, 202), response.text
        event_id: str = response.json()["id"]
        return event_id

    def deliveries(self, webhook_id: str) -> list[dict[str, Any]]:
        response = self.call("GET", f"/webhooks/{webhook_id}/deliveries?per_page=50")
        assert response.status_code == 200, response.text
        found: list[dict[str, Any]] = response.json()["data"]
        return found


@pytest.fixture
def admin(local_stack: LocalStackHandle) -> Admin:  # noqa: F811
    return Admin(local_stack)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as rx:
        yield rx


def _error(response: requests.Response) -> dict[str, Any]:
    assert response.status_code == 400, response.text
    body: dict[str, Any] = response.json()
    assert body["code"] == "invalid_param"
    return body


# ------------------------------------------------------------------------------ content filters


def test_filter_delivers_only_the_matching_space(admin: Admin, receiver: Receiver) -> None:
    hook = admin.webhook(receiver.url_for("/support"), filter=SUPPORT_ONLY)
    assert hook["filter"] == SUPPORT_ONLY
    assert admin.call("GET", f"/webhooks/{hook['id']}").json()["filter"] == SUPPORT_ONLY
    wanted = [admin.publish({"space_slug": "support", "n": n}) for n in range(3)]
    for n, space in enumerate(["general", "sales", "Support", "support-team"]):
        admin.publish({"space_slug": space, "n": n})
    admin.publish({"n": 99})
    # A later event for the support space: once it has arrived, everything before it has been
    # dispatched too (the stream keeps the community's order).
    wanted.append(admin.publish({"space_slug": "support", "n": 100}))

    received = receiver.wait_for(4, timeout=15)
    time.sleep(0.5)
    bodies = [json.loads(r.body) for r in receiver.requests]
    assert sorted(b["id"] for b in bodies) == sorted(wanted)
    assert {b["data"]["space_slug"] for b in bodies} == {"support"}
    assert len(received) == 4
    # A filtered-out event creates no delivery.
    assert sorted(d["event_id"] for d in admin.deliveries(hook["id"])) == sorted(wanted)


def test_filter_can_be_changed_and_cleared(admin: Admin, receiver: Receiver) -> None:
    hook = admin.webhook(receiver.url_for("/hook"), filter=SUPPORT_ONLY)
    path = f"/webhooks/{hook['id']}"
    sales = {"data": {"space_slug": ["sales"], "score": [{"numeric": [">", 3]}]}}
    assert admin.call("PATCH", path, {"filter": sales}).json()["filter"] == sales
    admin.publish({"space_slug": "support"})
    admin.publish({"space_slug": "sales", "score": 2})
    kept = admin.publish({"space_slug": "sales", "score": 5})
    [first] = receiver.wait_for(1, timeout=15)
    assert json.loads(first.body)["id"] == kept

    put = admin.call("PUT", path, {"filter": None})
    assert put.status_code == 200 and put.json()["filter"] is None
    everything = admin.publish({"space_slug": "general"})
    receiver.wait_for(2, timeout=15)
    assert json.loads(receiver.requests[-1].body)["id"] == everything


@pytest.mark.parametrize(
    ("bad", "part"),
    [
        ({"data": {"space_slug": "support"}}, "data.space_slug"),
        ({"data": {"space_slug": [{"prefix": 1}]}}, "data.space_slug[0].prefix"),
        ({"data": {"x": [{"regex": "a.*"}]}}, "data.x[0].regex"),
        ({"data": {"score": [{"numeric": [">", "five"]}]}}, "data.score[0].numeric[1]"),
        ({"$or": [{"data": {"a": ["b"]}}]}, "$or"),
        ({}, ""),
    ],
)
def test_malformed_filter_is_400_naming_filter(
    admin: Admin, receiver: Receiver, bad: Any, part: str
) -> None:
    url = receiver.url_for("/hook")
    body = _error(admin.call("POST", "/webhooks", {"url": url, "events": ["*"], "filter": bad}))
    assert body["data"]["field"] == "filter"
    assert body["data"]["path"] == part
    assert part in body["message"]

    hook = admin.webhook(url)
    for method in ("PATCH", "PUT"):
        body = _error(admin.call(method, f"/webhooks/{hook['id']}", {"filter": bad}))
        assert body["data"]["field"] == "filter"
    assert admin.call("GET", f"/webhooks/{hook['id']}").json()["filter"] is None


@pytest.mark.parametrize("bad", ["support", ["support"], 5])
def test_filter_that_is_not_an_object_is_400_naming_filter(admin: Admin, bad: Any) -> None:
    body = _error(
        admin.call(
            "POST", "/webhooks", {"url": "http://127.0.0.1:9/h", "events": ["*"], "filter": bad}
        )
    )
    assert body["data"]["field"] == "filter"


def test_oversized_and_too_deep_filters_are_refused(admin: Admin) -> None:
    url = "http://127.0.0.1:9/h"
    big = {"data": {"space_slug": [f"space-{n:05d}" for n in range(400)]}}
    body = _error(admin.call("POST", "/webhooks", {"url": url, "events": ["*"], "filter": big}))
    assert body["data"]["field"] == "filter" and "bytes" in body["message"]
    deep: dict[str, Any] = {"x": ["y"]}
    for name in "abcdefg":
        deep = {name: deep}
    body = _error(admin.call("POST", "/webhooks", {"url": url, "events": ["*"], "filter": deep}))
    assert body["data"]["field"] == "filter" and "deeper" in body["message"]


def test_filter_test_says_whether_and_why_not(admin: Admin) -> None:
    hook = admin.webhook("http://127.0.0.1:9/h", filter=SUPPORT_ONLY)
    path = f"/webhooks/{hook['id']}/filter-test"

    yes = admin.call(
        "POST", path, {"payload": {"event": "post.created", "data": {"space_slug": "support"}}}
    )
    assert yes.status_code == 200, yes.text
    assert yes.json() == {"matches": True, "reasons": [], "filter": SUPPORT_ONLY}

    no = admin.call(
        "POST", path, {"payload": {"event": "post.created", "data": {"space_slug": "general"}}}
    )
    assert no.json()["matches"] is False
    assert no.json()["reasons"] == ['data.space_slug: "general" does not match ["support"]']

    wrong_type = admin.call(
        "POST", path, {"payload": {"event": "member.joined", "data": {"space_slug": "support"}}}
    )
    assert wrong_type.json()["matches"] is False
    assert "member.joined" in wrong_type.json()["reasons"][0]

    draft = {"data": {"space_slug": [{"prefix": "gen"}]}}
    tried = admin.call(
        "POST", path, {"payload": {"data": {"space_slug": "general"}}, "filter": draft}
    )
    assert tried.json() == {"matches": True, "reasons": [], "filter": draft}
    # Trying a draft does not store it.
    assert admin.call("GET", f"/webhooks/{hook['id']}").json()["filter"] == SUPPORT_ONLY

    assert (
        _error(admin.call("POST", path, {"payload": {}, "filter": {"data": "x"}}))["data"]["field"]
        == "filter"
    )
    assert _error(admin.call("POST", path, {"payload": "x"}))["data"]["field"] == "payload"
    assert _error(admin.call("POST", path, {}))["data"]["field"] == "payload"
    assert _error(admin.call("POST", path, {"payload": {}, "extra": 1}))["data"]["field"] == "extra"
    missing = admin.call("POST", "/webhooks/wh_nope/filter-test", {"payload": {}})
    assert missing.status_code == 404


# ------------------------------------------------------------------------------ rate limits


def _burst(admin: Admin, count: int) -> list[str]:
    return [admin.publish({"space_slug": "support", "n": n}) for n in range(count)]


def _most_in_one_second(times: list[float]) -> int:
    return max(sum(1 for t in times if start <= t < start + 1.0) for start in times)


@pytest.mark.parametrize(
    ("fields", "shown"),
    [
        ({}, None),
        ({"format": "slack"}, 1.0),
        ({"format": "discord"}, 0.5),
        ({"format": "slack", "rate_limit": None}, None),
        ({"rate_limit": 2}, 2.0),
        ({"rate_limit": 0.25}, 0.25),
        ({"rate_limit": 1000}, 1000.0),
    ],
)
def test_rate_limit_defaults_by_format_and_is_shown(
    admin: Admin, fields: dict[str, Any], shown: float | None
) -> None:
    hook = admin.webhook("http://127.0.0.1:9/h", **fields)
    assert hook["rate_limit"] == shown
    assert admin.call("GET", f"/webhooks/{hook['id']}").json()["rate_limit"] == shown


def test_rate_limit_is_set_by_patch_and_put(admin: Admin) -> None:
    hook = admin.webhook("http://127.0.0.1:9/h")
    path = f"/webhooks/{hook['id']}"
    assert admin.call("PATCH", path, {"rate_limit": 3}).json()["rate_limit"] == 3.0
    assert admin.call("PUT", path, {"rate_limit": None}).json()["rate_limit"] is None
    # A new format brings its default unless a rate_limit comes with it.
    assert admin.call("PATCH", path, {"format": "discord"}).json()["rate_limit"] == 0.5
    both = admin.call("PATCH", path, {"format": "slack", "rate_limit": 4}).json()
    assert both["format"] == "slack" and both["rate_limit"] == 4.0
    # A change of other fields keeps the limit.
    renamed = admin.call("PUT", path, {"name": "renamed"})
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["rate_limit"] == 4.0


@pytest.mark.parametrize("bad", [0, -1, 1000.5, "2", True, [1], {"per_second": 1}])
def test_bad_rate_limit_is_400_naming_rate_limit(admin: Admin, bad: Any) -> None:
    body = {"url": "http://127.0.0.1:9/h", "events": ["*"], "rate_limit": bad}
    assert _error(admin.call("POST", "/webhooks", body))["data"]["field"] == "rate_limit"
    hook = admin.webhook("http://127.0.0.1:9/h")
    patched = admin.call("PATCH", f"/webhooks/{hook['id']}", {"rate_limit": bad})
    assert _error(patched)["data"]["field"] == "rate_limit"


def test_a_burst_to_a_rate_limited_webhook_is_spaced_to_the_limit(
    admin: Admin, receiver: Receiver
) -> None:
    hook = admin.webhook(receiver.url_for("/paced"), rate_limit=2)
    wanted = _burst(admin, 10)
    received = receiver.wait_for(10, timeout=30)
    time.sleep(0.3)
    assert sorted(json.loads(r.body)["id"] for r in receiver.requests) == sorted(wanted)
    times = sorted(r.received_at for r in received)
    log = admin.call("GET", f"/webhooks/{hook['id']}/logs?per_page=50").json()["data"]
    sent = sorted(clock.parse_iso(e["created_at"]).timestamp() for e in log)
    assert _most_in_one_second(times) <= 3, (times, sent)
    assert times[-1] - times[0] >= 3.5, times

    # Waiting is not an attempt: one successful attempt each, and the log shows the waits.
    assert len(log) == 10 and all(entry["success"] for entry in log)
    assert {entry["attempt"] for entry in log} == {1}
    waits = sorted(entry["rate_limit_wait_ms"] for entry in log)
    assert waits[-1] >= 300 and sum(1 for w in waits if w > 0) >= 3, waits


def test_a_slack_webhook_without_a_rate_limit_gets_about_one_a_second(
    admin: Admin, receiver: Receiver
) -> None:
    hook = admin.webhook(receiver.url_for("/slack"), format="slack")
    assert hook["rate_limit"] == 1.0
    _burst(admin, 5)
    received = receiver.wait_for(5, timeout=30)
    times = sorted(r.received_at for r in received)
    assert all(b - a >= 0.8 for a, b in itertools.pairwise(times)), times
    assert times[-1] - times[0] >= 3.5, times


def test_retry_after_on_a_429_slows_the_webhooks_next_deliveries(admin: Admin) -> None:
    with Receiver([Reply(429, {"Retry-After": "2"}), Reply(200)]) as rx:
        hook = admin.webhook(rx.url_for("/busy"))  # json: no rate limit of its own
        refused_id = admin.publish({"n": 1})
        [refused] = rx.wait_for(1, timeout=15)
        later_id = admin.publish({"n": 2})
        received = rx.wait_for(3, timeout=20)
    after = received[1:]
    # Both the retry of the refused delivery and the next delivery wait out the Retry-After.
    assert sorted(json.loads(r.body)["id"] for r in after) == sorted([refused_id, later_id])
    assert all(r.received_at - refused.received_at >= 1.8 for r in after), [
        r.received_at - refused.received_at for r in after
    ]
    log = admin.call("GET", f"/webhooks/{hook['id']}/logs?per_page=50").json()["data"]
    assert sorted((e["status_code"], e["attempt"]) for e in log) == [(200, 1), (200, 2), (429, 1)]
    assert all(e["rate_limit_wait_ms"] > 0 for e in log if e["status_code"] == 200)


def test_a_long_burst_waits_on_the_queue_not_in_the_function(
    admin: Admin, receiver: Receiver
) -> None:
    """Turns more than a few seconds off go back on the delivery queue with a delay (moto's SQS
    here): still every event once, still spaced to the limit."""
    hook = admin.webhook(receiver.url_for("/long"), rate_limit=0.5)
    handler: Any = logger.registered_handler
    lines = io.StringIO()
    previous_stream, previous_level = handler.setStream(lines), logger.log_level
    logger.setLevel("INFO")
    try:
        # One batch request, so the whole burst reaches the queue at once however loaded the
        # machine is: turns every 2 s, the last ones are over 10 s off.
        batch = admin.call(
            "POST",
            "/events/batch",
            {"events": [{"event": "post.created", "data": {"n": n}} for n in range(10)]},
        )
        assert batch.status_code == 207, batch.text
        wanted = [item["id"] for item in batch.json()["data"]]
        assert len(wanted) == 10
        received = receiver.wait_for(10, timeout=60)
        time.sleep(0.5)
    finally:
        handler.setStream(previous_stream)
        logger.setLevel(previous_level)
    assert sorted(json.loads(r.body)["id"] for r in receiver.requests) == sorted(wanted)
    times = sorted(r.received_at for r in received)
    assert all(b - a >= 1.4 for a, b in itertools.pairwise(times)), times
    logged = [json.loads(line) for line in lines.getvalue().splitlines()]
    waits = [e for e in logged if e["message"] == "waiting for the rate limit"]
    assert {e["level"] for e in waits} == {"INFO"}
    assert any(e.get("handed_back") and e["webhook_id"] == hook["id"] for e in waits), [
        (e["wait_ms"], e.get("handed_back")) for e in waits
    ]
    log = admin.call("GET", f"/webhooks/{hook['id']}/logs?per_page=50").json()["data"]
    assert len(log) == 10 and {(e["attempt"], e["success"]) for e in log} == {(1, True)}
