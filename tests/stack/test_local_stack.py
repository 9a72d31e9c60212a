"""`hookline local`: the stack over real HTTP, plus its parts (routing, stream mapping, retry
timer) in isolation."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from hookline.domain import policy
from hookline_dev.local import lambdas
from hookline_dev.local.apigw import match_route, policy_allows
from hookline_dev.local.blueprint import Route, StreamSource, load_blueprint
from hookline_dev.local.lambdas import FunctionError, Functions
from hookline_dev.local.poller import EventSourceMapping, pattern_matches
from hookline_dev.local.scheduler import LocalRetryScheduler
from tests.localstack_fixtures import local_stack  # noqa: F401

REPO = Path(__file__).resolve().parents[2]
PROXY_ROUTES = (
    Route("POST", "/v1/hooks/{token}", "inbound", authorized=False),
    Route("ANY", "/v1/{proxy+}", "api", authorized=True),
)
EVENTS = REPO / "events"


def _json(response: requests.Response) -> Any:
    assert response.headers["Content-Type"].startswith("application/json"), response.text
    return response.json()


def _community(stack: Any) -> tuple[str, str]:
    community: tuple[str, str] = stack.community()
    return community


def _webhook(stack: Any, community_id: str, key: str, url: str) -> dict[str, Any]:
    response = requests.post(
        stack.url(f"/v1/communities/{community_id}/webhooks"),
        headers=stack.headers(key),
        json={"name": "inspector", "url": url, "events": ["*"]},
        timeout=10,
    )
    assert response.status_code in (200, 201), response.text
    webhook: dict[str, Any] = response.json()
    return webhook


def _publish(stack: Any, community_id: str, key: str, data: dict[str, Any]) -> dict[str, Any]:
    response = requests.post(
        stack.url(f"/v1/communities/{community_id}/events"),
        headers=stack.headers(key),
        json={"event": "post.created", "data": data},
        timeout=10,
    )
    assert response.status_code in (200, 202), response.text
    published: dict[str, Any] = response.json()
    return published


# ------------------------------------------------------------------------------ over HTTP


def test_server_answers(local_stack):  # noqa: F811
    response = requests.get(local_stack.url("/_inspect"), timeout=5)
    assert response.status_code == 200
    assert "names" in _json(response)


def test_unknown_route_is_404_in_the_error_shape(local_stack):  # noqa: F811
    response = requests.get(local_stack.url("/nothing/here"), timeout=5)
    assert response.status_code == 404
    body = _json(response)
    assert body["code"] == "not_found"
    assert body["data"] == {"status": 404}
    assert isinstance(body["message"], str)
    # The template's routes only: /v1/hooks/{token} is POST only, like API Gateway.
    assert requests.get(local_stack.url("/v1/hooks/abc"), timeout=5).status_code == 404


def test_payload_over_10_mb_is_413(local_stack):  # noqa: F811
    body = b"x" * (10 * 1024 * 1024 + 1)
    response = requests.post(
        local_stack.url("/v1/hooks/some-token"),
        data=body,
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 413
    payload = _json(response)
    assert payload["code"] == "payload_too_large"
    assert payload["data"]["status"] == 413


def test_inspector_records_and_shows_json(local_stack):  # noqa: F811
    sent = {"hello": "world", "n": 1}
    response = requests.post(
        local_stack.url("/_inspect/json-bin"), json=sent, headers={"X-Test": "yes"}, timeout=5
    )
    assert response.status_code == 200
    assert response.json() == {"ok": True}
    requests.put(local_stack.url("/_inspect/json-bin"), data="second", timeout=5)

    shown = _json(requests.get(local_stack.url("/_inspect/json-bin"), timeout=5))
    assert shown["name"] == "json-bin"
    newest, oldest = shown["requests"]
    assert newest["method"] == "PUT" and newest["body"] == "second"
    assert oldest["method"] == "POST"
    assert json.loads(oldest["body"]) == sent
    assert oldest["headers"]["X-Test"] == "yes"
    assert oldest["received_at"].endswith("Z")
    assert oldest["client"] == "127.0.0.1"
    # No webhook targets this URL, so there is nothing to verify against.
    assert oldest["signature"]["verified"] is None


def test_inspector_simulates_failures(local_stack):  # noqa: F811
    response = requests.post(local_stack.url("/_inspect/failing?status=503"), data="x", timeout=5)
    assert response.status_code == 503
    started = time.monotonic()
    requests.post(local_stack.url("/_inspect/slow?delay=0.3"), data="x", timeout=5)
    assert time.monotonic() - started >= 0.3
    bad = requests.post(local_stack.url("/_inspect/x?status=99"), data="x", timeout=5)
    assert bad.status_code == 400


def test_inspector_html_escapes_everything(local_stack):  # noqa: F811
    requests.post(
        local_stack.url("/_inspect/html-bin"),
        data="<script>alert('body')</script>",
        headers={"X-Evil": "<img src=x onerror=alert(1)>", "Content-Type": "text/plain"},
        timeout=5,
    )
    for response in (
        requests.get(
            local_stack.url("/_inspect/html-bin"), headers={"Accept": "text/html"}, timeout=5
        ),
        requests.get(local_stack.url("/_inspect/html-bin?format=html"), timeout=5),
    ):
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/html")
        page = response.text
        assert "<script>alert" not in page
        assert "<img src=x" not in page
        assert "&lt;script&gt;alert(&#x27;body&#x27;)&lt;/script&gt;" in page
        assert "&lt;img src=x onerror=alert(1)&gt;" in page


def test_authorizer_refuses_missing_and_wrong_keys(local_stack):  # noqa: F811
    missing = requests.get(local_stack.url("/v1/communities/com_x"), timeout=5)
    assert missing.status_code == 401
    assert _json(missing)["code"] == "unauthorized"
    wrong = requests.get(
        local_stack.url("/v1/communities/com_x"), headers=local_stack.headers("hk_nope"), timeout=5
    )
    assert wrong.status_code == 401
    assert _json(wrong) == {
        "code": "unauthorized",
        "message": "Unauthorized",
        "data": {"status": 401},
    }


def test_authorizer_answers_are_cached_per_authorization_header(local_stack):  # noqa: F811
    community_id, key = _community(local_stack)
    before = local_stack.gateway.authorizer_invocations
    for _ in range(3):
        response = requests.get(
            local_stack.url(f"/v1/communities/{community_id}"),
            headers=local_stack.headers(key),
            timeout=10,
        )
        assert response.status_code == 200, response.text
    assert local_stack.gateway.authorizer_invocations == before + 1
    _, event = local_stack.gateway.recent_events[-1]
    authorizer = event["requestContext"]["authorizer"]
    assert authorizer["community_id"] == community_id
    assert authorizer["role"] == "admin"


def test_multipart_bodies_reach_functions_base64_encoded(local_stack):  # noqa: F811
    body = b"--b\r\nContent-Disposition: form-data; name=f\r\n\r\n\xff\x00\r\n--b--\r\n"
    requests.post(
        local_stack.url("/v1/hooks/tok123"),
        data=body,
        headers={"Content-Type": "multipart/form-data; boundary=b"},
        timeout=10,
    )
    function, event = local_stack.gateway.recent_events[-1]
    assert function == "inbound"
    assert event["resource"] == "/v1/hooks/{token}"
    assert event["pathParameters"] == {"token": "tok123"}
    assert "authorizer" not in event["requestContext"]
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == body


def test_openapi_document_and_swagger_ui(local_stack):  # noqa: F811
    document = requests.get(local_stack.url("/v1/openapi.json"), timeout=60)
    assert document.status_code == 200
    spec = document.json()
    assert spec["openapi"].startswith("3.")
    assert spec["servers"][0]["url"] == local_stack.base_url
    assert "/v1/hooks/{token}" in spec["paths"]
    page = requests.get(local_stack.url("/v1/docs"), timeout=30)
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert "SwaggerUIBundle" in page.text
    assert "docs/swagger-ui-bundle.min.js" in page.text


def test_handlers_are_loaded_from_the_repository(local_stack):  # noqa: F811
    for name in ("api", "authorizer", "dispatch", "attempt", "inbound"):
        handler = lambdas.load_handler(name)
        module = sys.modules[f"hookline_function_{name}"]
        assert handler is module.lambda_handler
        assert Path(module.__file__ or "") == REPO / "functions" / name / "app.py"


def test_api_gateway_event_matches_the_sample_events(local_stack):  # noqa: F811
    # The route takes no query parameters (400), but the event ApiFunction got shows them.
    response = requests.post(
        local_stack.url("/v1/communities?trace=1&trace=2"),
        headers={**local_stack.operator_headers(), "User-Agent": "local-test"},
        json={"name": "Shape", "site_url": "https://shape.example"},
        timeout=10,
    )
    # The route takes no query parameters, so the API names the unknown one; the event that
    # reached it is what this test checks.
    assert response.status_code == 400, response.text
    assert response.json()["data"]["field"] == "trace"
    assert response.headers.get("x-amzn-RequestId")
    function, event = local_stack.gateway.recent_events[-1]
    assert function == "api"
    sample = json.loads((EVENTS / "api-create-community.json").read_text())

    assert set(event) == set(sample)
    assert set(sample["requestContext"]) <= set(event["requestContext"])
    assert set(sample["requestContext"]["identity"]) <= set(event["requestContext"]["identity"])
    assert set(sample["requestContext"]["authorizer"]) <= set(event["requestContext"]["authorizer"])
    assert event["resource"] == "/v1/communities"
    assert event["path"] == "/v1/communities"
    assert event["httpMethod"] == "POST"
    assert event["pathParameters"] is None
    assert event["stageVariables"] is None
    assert event["queryStringParameters"] == {"trace": "2"}
    assert event["multiValueQueryStringParameters"] == {"trace": ["1", "2"]}
    assert event["headers"]["User-Agent"] == "local-test"
    assert event["multiValueHeaders"]["User-Agent"] == ["local-test"]
    assert event["isBase64Encoded"] is False
    assert json.loads(event["body"]) == {"name": "Shape", "site_url": "https://shape.example"}
    context = event["requestContext"]
    assert context["stage"] == "dev"
    # The path as requested (as through a custom domain): URLs built from it work as printed.
    assert context["path"] == "/v1/communities"
    assert context["resourcePath"] == "/v1/communities"
    assert context["httpMethod"] == "POST"
    assert context["accountId"] == "123456789012"
    assert context["identity"]["sourceIp"] == "127.0.0.1"
    assert context["authorizer"]["principalId"] == "operator"
    assert context["authorizer"]["role"] == "operator"
    assert context["authorizer"]["community_id"] == ""

    # A {proxy+} resource, and the deployed URL form /<stage>/v1/... is accepted too.
    community_id, _ = local_stack.community("Shape")
    got = requests.get(
        local_stack.url(f"/dev/v1/communities/{community_id}"),
        headers=local_stack.operator_headers(),
        timeout=10,
    )
    assert got.status_code == 200, got.text
    _, event = local_stack.gateway.recent_events[-1]
    assert event["resource"] == "/v1/communities/{proxy+}"
    assert event["path"] == f"/v1/communities/{community_id}"
    assert event["pathParameters"] == {"proxy": community_id}
    assert event["requestContext"]["path"] == f"/dev/v1/communities/{community_id}"


def test_published_event_reaches_the_inspector_signed_within_a_second(local_stack):  # noqa: F811
    community_id, key = _community(local_stack)
    webhook = _webhook(local_stack, community_id, key, local_stack.inspector_url("delivered"))
    # The first delivery pays the functions' cold start, as it would in Lambda.
    _publish(local_stack, community_id, key, {"title": "warm-up"})
    local_stack.wait_for(lambda: local_stack.inspected("delivered"), timeout=10)

    published = _publish(local_stack, community_id, key, {"title": "<b>hello</b>"})
    started = time.monotonic()
    received = local_stack.wait_for(lambda: len(local_stack.inspected("delivered")) == 2, timeout=5)
    elapsed = time.monotonic() - started
    assert elapsed < 1.0, f"publish -> receipt took {elapsed:.2f} s"

    newest = local_stack.inspected("delivered")[0]
    assert received
    assert json.loads(newest["body"])["id"] == published["id"]
    assert newest["signature"]["verified"] is True
    # Both schemes are checked, each on its own.
    assert newest["signature"]["schemes"] == {
        "standard-webhooks": {"verified": True, "reason": None},
        "x-hookline-signature": {"verified": True, "reason": None},
    }

    def attempts() -> list[Any]:
        return [a for a in local_stack.attempts if a.webhook_id == webhook["id"] and a.success]

    attempt = local_stack.wait_for(lambda: len(attempts()) == 2 and attempts())[-1]
    assert attempt.status_code == 200
    assert attempt.attempt == 1
    assert attempt.event == "post.created"


def test_failing_target_is_retried_on_the_scaled_schedule(local_stack):  # noqa: F811
    community_id, key = _community(local_stack)
    webhook = _webhook(
        local_stack, community_id, key, local_stack.inspector_url("always-500") + "?status=500"
    )
    _publish(local_stack, community_id, key, {"title": "retry me"})

    def attempts() -> list[Any]:
        return [
            a
            for a in local_stack.attempts
            if a.webhook_id == webhook["id"] and a.event == "post.created"
        ]

    # One attempt plus one per entry of the 300,1800,7200 schedule, the waits scaled down.
    done = local_stack.wait_for(lambda: len(attempts()) >= 4 and attempts(), timeout=15)
    assert sorted(a.attempt for a in done) == [1, 2, 3, 4]
    assert all(a.status_code == 500 and not a.success for a in done)
    assert local_stack.scheduler.wait_idle(10)
    # The group whose window holds the delivery's first attempt (its delivery.failed event goes
    # to this catch-all webhook too, and fails in a group of its own).
    first = min(done, key=lambda a: a.attempt)
    groups = [
        e
        for e in local_stack.scheduler.executions()
        if e.input["webhook_id"] == webhook["id"]
        and e.input["since"] <= first.created_at < e.input["until"]
    ]
    assert [e.status for e in groups] == ["SUCCEEDED"]  # one retry group, ended when done
    assert groups[0].history[-2:] == ["Done?", "Done"]


def test_cli_stops_cleanly_on_sigint(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "HOOKLINE_"))}
    process = subprocess.Popen(  # noqa: S603 (our own interpreter and module)
        [
            sys.executable,
            "-m",
            "hookline_dev.cli",
            "local",
            "--port",
            "0",
            "--data-dir",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 60
    base_url = operator_key = ""
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.strip().startswith("export HL="):
            exported = dict(part.split("=", 1) for part in line.split()[1:])
            base_url, operator_key = exported["HL"], exported["OP"]
        if line.startswith("Deliveries"):
            break
    assert base_url, "".join(lines)
    assert any(f"Operator key:  {operator_key}" in line for line in lines)
    assert any(f"State:         {tmp_path}" in line for line in lines)
    # The banner's block works as pasted: $HL has no /v1, the curl adds it.
    created = requests.post(
        f"{base_url}/v1/communities",
        headers={"Authorization": f"Bearer {operator_key}"},
        json={"name": "Banner", "site_url": "https://banner.example"},
        timeout=10,
    )
    assert created.status_code == 201, created.text
    assert any(
        'curl -s -X POST $HL/v1/communities -H "Authorization: Bearer $OP"' in line
        for line in lines
    )
    assert requests.get(f"{base_url}/_inspect", timeout=5).status_code == 200

    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert "Traceback" not in output
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{base_url}/_inspect", timeout=2)


# ------------------------------------------------------------------------------ the parts


def test_routes_pick_the_most_specific_resource():
    routes = (
        Route("ANY", "/v1/communities", "api", True),
        Route("ANY", "/v1/communities/{proxy+}", "api", True),
        Route("GET", "/v1/openapi.json", "api", False),
        Route("POST", "/v1/hooks/{token}", "inbound", False),
    )
    route, params = match_route(routes, "GET", "/v1/communities/c1/webhooks") or (None, None)
    assert route is not None and route.resource == "/v1/communities/{proxy+}"
    assert params == {"proxy": "c1/webhooks"}
    route, params = match_route(routes, "POST", "/v1/hooks/tok") or (None, None)
    assert route is not None and route.function == "inbound" and params == {"token": "tok"}
    route, _ = match_route(routes, "GET", "/v1/openapi.json") or (None, None)
    assert route is not None and not route.authorized
    assert match_route(routes, "POST", "/v1/hooks/tok/extra") is None
    assert match_route(routes, "GET", "/v1/hooks/tok") is None
    # Without a template the stack falls back to one greedy API route.
    route, params = match_route(PROXY_ROUTES, "GET", "/v1/x/y") or (None, None)
    assert route is not None and params == {"proxy": "x/y"}


def test_blueprint_reads_the_template():
    blueprint = load_blueprint()
    resources = {(r.method, r.resource): r for r in blueprint.routes}
    assert not resources[("POST", "/v1/hooks/{token}")].authorized
    assert resources[("ANY", "/v1/communities/{proxy+}")].authorized
    assert blueprint.identity_headers == ("Authorization",)
    assert blueprint.authorizer_cache_ttl == 30
    assert "multipart/form-data" in blueprint.binary_media_types
    assert blueprint.stream.filters == ({"eventName": ["INSERT"]},)
    assert blueprint.stream.report_item_failures
    assert blueprint.gateway_responses["MISSING_AUTHENTICATION_TOKEN"].status == 404


def test_policy_evaluation():
    arn = "arn:aws:execute-api:us-east-1:123456789012:local/dev/GET/v1/communities"
    allow_all = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Action": "execute-api:Invoke",
                "Effect": "Allow",
                "Resource": ["arn:aws:execute-api:us-east-1:123456789012:local/dev/*/*"],
            }
        ],
    }
    assert policy_allows(allow_all, arn)
    deny = {
        "Statement": [
            *allow_all["Statement"],
            {"Action": "execute-api:Invoke", "Effect": "Deny", "Resource": arn},
        ]
    }
    assert not policy_allows(deny, arn)
    assert not policy_allows({"Statement": []}, arn)


def test_filter_patterns():
    insert = {"eventName": "INSERT", "dynamodb": {"NewImage": {"sk": {"S": "E#1"}}}}
    assert pattern_matches({"eventName": ["INSERT"]}, insert)
    assert not pattern_matches({"eventName": ["MODIFY", "REMOVE"]}, insert)
    assert pattern_matches({"dynamodb": {"NewImage": {"sk": {"S": [{"prefix": "E#"}]}}}}, insert)
    assert pattern_matches({"dynamodb": {"OldImage": [{"exists": False}]}}, insert)


class _ScriptedFunctions(Functions):
    """Functions whose handlers are replaced by a script (no files, no AWS)."""

    def __init__(self, script: Any) -> None:
        super().__init__({})
        self.script = script
        self.calls: list[tuple[str, Any]] = []

    def invoke(self, name: str, event: dict[str, Any]) -> Any:
        self.calls.append((name, json.loads(json.dumps(event))))
        return self.script(name, event)


def _records(count: int) -> list[dict[str, Any]]:
    return [
        {"eventName": "INSERT", "dynamodb": {"SequenceNumber": str(100 + i)}} for i in range(count)
    ]


def test_batch_item_failures_redeliver_from_the_first_failed_record():
    failed_once: set[str] = set()

    def script(name: str, event: dict[str, Any]) -> Any:
        sequence = [r["dynamodb"]["SequenceNumber"] for r in event["Records"]]
        if "102" in sequence and "102" not in failed_once:
            failed_once.add("102")
            return {"batchItemFailures": [{"itemIdentifier": "103"}, {"itemIdentifier": "102"}]}
        return {"batchItemFailures": []}

    functions = _ScriptedFunctions(script)
    mapping = EventSourceMapping(None, functions, "dispatch", StreamSource())  # type: ignore[arg-type]
    mapping.process(_records(5))
    batches = [[r["dynamodb"]["SequenceNumber"] for r in e["Records"]] for _, e in functions.calls]
    assert batches == [["100", "101", "102", "103", "104"], ["102", "103", "104"]]
    assert mapping.dead_letters == []


def test_function_errors_bisect_then_dead_letter():
    def script(name: str, event: dict[str, Any]) -> Any:
        if any(r["dynamodb"]["SequenceNumber"] == "101" for r in event["Records"]):
            raise FunctionError(name, "ValueError", "poison", [])
        return None

    functions = _ScriptedFunctions(script)
    source = StreamSource(max_retries=2)
    mapping = EventSourceMapping(None, functions, "dispatch", source)  # type: ignore[arg-type]
    mapping.process(_records(4))
    assert len(mapping.dead_letters) == 1
    assert mapping.dead_letters[0]["sequence_numbers"] == ["101"]
    delivered = {
        r["dynamodb"]["SequenceNumber"]
        for name, e in functions.calls
        for r in e["Records"]
        if "101" not in [x["dynamodb"]["SequenceNumber"] for x in e["Records"]]
    }
    assert delivered == {"100", "102", "103"}


def _timer(script: Any) -> tuple[LocalRetryScheduler, _ScriptedFunctions]:
    functions = _ScriptedFunctions(script)
    scheduler = LocalRetryScheduler(functions, time_scale=0.0, workers=2)
    scheduler.start()
    return scheduler, functions


def _group(name: str, wait: int = 300) -> dict[str, Any]:
    return policy.workflow_document(
        community_id="c",
        webhook_id="w",
        group=name,
        since="2026-12-02T00:00:00.000Z",
        until="2026-12-02T00:01:00.000Z",
        attempt=1,
        wait_seconds=wait,
    )


def _answer(event: dict[str, Any], wait: int, done: bool) -> dict[str, Any]:
    fields = {k: v for k, v in event.items() if k not in ("action", "error")}
    return {**fields, "attempt": event["attempt"] + 1, "wait_seconds": wait, "done": done}


def test_retry_timer_runs_the_state_machine_until_done():
    answers = iter([(1800, False), (0, True)])
    scheduler, functions = _timer(lambda name, event: _answer(event, *next(answers)))
    try:
        for _ in range(2):  # the second start is a no-op: the same group's name (joined)
            scheduler.schedule(name="w-w1", document=_group("w-w1"))
        assert scheduler.wait_idle(5)
    finally:
        scheduler.stop()
    payloads = [event for _, event in functions.calls]
    assert [p["attempt"] for p in payloads] == [1, 2]
    assert all(p["action"] == "attempt" and p["group"] == "w-w1" for p in payloads)
    (execution,) = scheduler.executions()
    assert execution.status == "SUCCEEDED"
    assert execution.history[-1] == "Done"


def test_retry_timer_records_crashes_and_goes_on():
    def script(name: str, event: dict[str, Any]) -> Any:
        if event["action"] == "attempt":
            raise FunctionError(name, "RuntimeError", "boom", [])
        return _answer(event, 0, True)

    scheduler, functions = _timer(script)
    try:
        scheduler.schedule(name="w-w2", document=_group("w-w2"))
        assert scheduler.wait_idle(5)
    finally:
        scheduler.stop()
    actions = [(e["action"], e["attempt"]) for _, e in functions.calls]
    assert actions == [("attempt", 1), ("record_crash", 1)]
    crash = functions.calls[1][1]["error"]
    assert crash["Error"] == "RuntimeError"
    assert json.loads(crash["Cause"])["errorMessage"] == "boom"


def test_retry_timer_fails_the_execution_on_a_malformed_answer():
    scheduler, _ = _timer(lambda name, event: {"attempt": 2, "wait_seconds": 0})
    try:
        scheduler.schedule(name="w-w3", document=_group("w-w3"))
        assert scheduler.wait_idle(5)
    finally:
        scheduler.stop()
    (execution,) = scheduler.executions()
    assert execution.status == "FAILED"
    assert execution.error == "States.Runtime"
