"""What `hookline local` prints, and how its HTTP server answers what API Gateway would: delivery
and retry lines naming the webhook in order, whole lines across threads, failed API calls and the
access log without credentials, unknown methods in the error shape, URLs as printed."""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Iterator

import pytest
import requests

from hookline_dev.local import LocalOptions
from hookline_dev.local.console import Console, LineWriter
from hookline_dev.local.stack import AttemptRecord
from tests.localstack_fixtures import TIME_SCALE, LocalStackHandle


class _Out(io.StringIO):
    def lines(self) -> list[str]:
        return self.getvalue().splitlines()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStackHandle]:
    handle = LocalStackHandle(
        LocalOptions(
            port=0,
            allow_private_targets=True,
            time_scale=TIME_SCALE,
            auto_disable_scale=0.001,
            access_log=True,
            data_dir=tmp_path_factory.mktemp("console"),
        ),
        out=_Out(),
    )
    handle.start()
    try:
        yield handle
    finally:
        handle.stop()


def _out(stack: LocalStackHandle) -> _Out:
    assert isinstance(stack.out, _Out)
    return stack.out


# ------------------------------------------------------------------------------ the parts


def test_line_writer_never_merges_lines_of_two_threads() -> None:
    target = io.StringIO()
    lock = threading.Lock()
    out, err = LineWriter(target, lock), LineWriter(target, lock)

    def chatter(n: int) -> None:
        for i in range(200):
            # print() writes the text and the newline separately.
            print(f"thread-{n}", "line", i, file=out if n % 2 else err)

    threads = [threading.Thread(target=chatter, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lines = target.getvalue().splitlines()
    assert len(lines) == 1600
    assert all(re.fullmatch(r"thread-\d line \d+", line) for line in lines), lines[:5]


def _record(delivery_id: str, attempt: int) -> AttemptRecord:
    item = {"community_id": "com_1", "webhook_id": "wh_1"}
    return AttemptRecord(
        delivery_id, "wh_1", "post.created", attempt, False, 503, 5, "HTTP 503", "", item
    )


def test_a_retry_line_waits_for_the_attempt_it_follows() -> None:
    out = io.StringIO()
    console = Console(out, lambda community, webhook: "CRM", time_scale=0.01)
    # The retry timer is often faster than the stream that reports the attempt.
    console.retry(
        {"delivery_id": "dlv_1", "webhook_id": "wh_1", "community_id": "com_1", "attempt": 1}, 300
    )
    assert out.getvalue() == ""
    console.attempt(_record("dlv_1", 1))
    attempt_line, retry_line = out.getvalue().splitlines()
    assert '"CRM" (wh_1)' in attempt_line and attempt_line.endswith("attempt 1")
    assert 'retry of dlv_1 to "CRM" (wh_1): attempt 2 in 300 s (3 s at --time-scale 0.01)' in (
        retry_line
    )
    # Once the attempt is printed, its retry line follows at once.
    console.retry(
        {"delivery_id": "dlv_1", "webhook_id": "wh_1", "community_id": "com_1", "attempt": 1}, 300
    )
    assert len(out.getvalue().splitlines()) == 3
    # A retry resumed after a restart follows an attempt the previous run printed.
    console.retry(
        {"delivery_id": "dlv_2", "webhook_id": "wh_1", "community_id": "com_1", "attempt": 2}, 60
    )
    assert len(out.getvalue().splitlines()) == 3
    console.attempts_printed_before([("dlv_2", 2)])
    assert "retry of dlv_2" in out.getvalue().splitlines()[-1]


# ------------------------------------------------------------------------------ over HTTP


def test_delivery_and_retry_lines_name_the_webhook_in_order(stack: LocalStackHandle) -> None:
    community_id, key = stack.community("Console")
    url = stack.inspector_url("console-flaky") + "?status=503"
    hook = stack.webhook(community_id, key, url, name="Flaky CRM", retry_count=1)
    requests.post(
        stack.url(f"/v1/communities/{community_id}/events"),
        headers=stack.headers(key),
        json={"event": "post.created", "data": {"title": "x"}},
        timeout=10,
    )

    def mine() -> list[str]:
        return [line for line in _out(stack).lines() if hook["id"] in line]

    lines = stack.wait_for(lambda: len(mine()) >= 3 and mine(), timeout=15)
    first, retry, second = lines[:3]  # the retry line comes after the attempt it follows
    assert f'"Flaky CRM" ({hook["id"]})' in first and first.endswith("attempt 1")
    # The group's first wait counts from the end of its window (60 s at most past the 300 s;
    # the wall clock has run on a little at this time scale).
    found = re.search(rf"retry of {hook['id']}-w\d+ to .*: round 2 in (\d+) s", retry)
    assert found is not None and 200 <= int(found.group(1)) <= 361, retry
    assert f'"Flaky CRM" ({hook["id"]})' in retry
    assert second.endswith("attempt 2")


def test_failed_api_calls_are_logged_without_credentials(
    stack: LocalStackHandle, capfd: pytest.CaptureFixture[str]
) -> None:
    community_id, key = stack.community("Console")
    bad = requests.post(
        stack.url(f"/v1/communities/{community_id}/webhooks"),
        headers=stack.headers(key),
        json={"name": "x", "url": "ftp://nope.example", "events": ["*"]},
        timeout=10,
    )
    assert bad.status_code == 400
    wrong = requests.get(
        stack.url(f"/v1/communities/{community_id}/webhooks"),
        headers=stack.headers("hk_not_a_real_key_at_all_000000"),
        timeout=10,
    )
    assert wrong.status_code == 401
    token = "Tok3nTok3nTok3nTok3nTok3nTok3nTok3nTok3nAB"
    unknown = requests.post(
        stack.url(f"/v1/hooks/{token}"), json={"email": "a@b.example"}, timeout=10
    )
    assert unknown.status_code == 404

    text = _out(stack).getvalue()
    assert f"POST /v1/communities/{community_id}/webhooks -> 400 invalid_url" in text
    assert "(field url)" in text
    assert f"GET /v1/communities/{community_id}/webhooks -> 401" in text
    assert "POST /v1/hooks/[REDACTED] -> 404" in text
    # The access log (stderr) masks the token as well.
    logged = capfd.readouterr().err
    assert "/v1/hooks/[REDACTED]" in logged
    for secret in (token, key, "hk_not_a_real_key_at_all_000000"):
        assert secret not in text
        assert secret not in logged
    assert all("\n" not in line for line in logged.splitlines())


@pytest.mark.parametrize("method", ["TRACE", "QUERY", "PROPFIND"])
def test_unknown_methods_are_405_in_the_error_shape(stack: LocalStackHandle, method: str) -> None:
    response = requests.request(method, stack.url("/v1/communities"), timeout=5)
    assert response.status_code == 405
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {
        "code": "method_not_allowed",
        "message": f"Method {method} is not allowed",
        "data": {"status": 405},
    }
    assert "GET" in response.headers["Allow"]


def test_a_known_path_with_another_method_is_405_naming_the_allowed_ones(
    stack: LocalStackHandle,
) -> None:
    """RFC 9110 (and schemathesis's undeclared-method check): a 405 carries Allow."""
    _, key = stack.community("Allow")
    response = requests.put(
        stack.url("/v1/communities"), headers={"Authorization": f"Bearer {key}"}, timeout=5
    )
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"
    assert set(response.headers["Allow"].split(", ")) == {"GET", "POST"}
    # Query parameters do not turn it into a 400.
    with_query = requests.put(
        stack.url("/v1/communities?cursor=x&page=2"),
        headers={"Authorization": f"Bearer {key}"},
        timeout=5,
    )
    assert with_query.status_code == 405, with_query.text
    # A static route shadows the dynamic one beside it (/events/batch, /events/<event_id>).
    community_id, own_key = stack.community("Allow too")
    batch = requests.options(
        stack.url(f"/v1/communities/{community_id}/events/batch"),
        headers={"Authorization": f"Bearer {own_key}"},
        timeout=5,
    )
    assert batch.status_code == 405, batch.text
    assert batch.headers["Allow"] == "POST"


def test_incoming_webhook_urls_work_as_printed(stack: LocalStackHandle) -> None:
    community_id, key = stack.community("Console")
    created = requests.post(
        stack.url(f"/v1/communities/{community_id}/incoming-webhooks"),
        headers=stack.headers(key),
        json={"name": "signup"},
        timeout=10,
    )
    assert created.status_code == 201, created.text
    url = created.json()["url"]
    assert url.startswith(f"{stack.base_url}/v1/hooks/"), url
    answered = requests.post(url, json={"email": "new@member.example"}, timeout=10)
    # Reached InboundFunction (not API Gateway's missing-route answer).
    assert "x-amzn-ErrorType" not in answered.headers
    assert answered.status_code < 500


def test_auto_disable_window_is_scaled(stack: LocalStackHandle) -> None:
    from hookline.config import Settings

    assert Settings.from_env().auto_disable_after_hours == pytest.approx(0.12)
    assert "auto-disable window x0.001" in stack.banner()


def test_the_banner_says_where_state_is_kept(stack: LocalStackHandle) -> None:
    banner = stack.banner()
    assert "in memory only" in banner  # persist is off for this stack
    assert "(new on every start)" in banner
    assert f"export HL={stack.base_url} OP={stack.operator_key}" in banner


def test_the_banner_shows_how_to_open_the_portal_without_a_token(stack: LocalStackHandle) -> None:
    from tests.portal_helpers import new_community

    lines = [line for line in stack.banner().splitlines() if "portal-sessions" in line]
    assert len(lines) == 1
    line = lines[0]
    assert not re.search(r"\b(hk|hlp|whsec)_", line) and stack.operator_key not in line
    command = re.search(r"curl -s -X POST (\S+) -H \"Authorization: Bearer \$KEY\"", line)
    assert command is not None, line
    # The printed command works as printed, with the shell's variables filled in.
    tenant = new_community(stack, "Banner Forum")
    url = command.group(1).replace("$HL", stack.base_url).replace("$C", tenant.id)
    answer = requests.post(url, headers={"Authorization": f"Bearer {tenant.key}"}, timeout=10)
    assert answer.status_code == 201, answer.text
    assert "/portal/#community=" in answer.json()["url"]
