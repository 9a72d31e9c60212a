"""events/ holds the samples `sam local invoke -e events/<file>` takes. They must not rot: each is
valid JSON in the shape its function receives, is used by at least one test, and each API Gateway
sample addresses a route the template declares (and the API resolver serves)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from hookline.api import portal_assets
from hookline_dev.template import load_template

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
TESTS = ROOT / "tests"
SAMPLES = sorted(EVENTS.glob("*.json"))


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _template_functions() -> dict[str, dict[str, Any]]:
    resources = load_template()["Resources"]
    return {
        name: resource["Properties"]
        for name, resource in resources.items()
        if resource["Type"] == "AWS::Serverless::Function"
    }


def _template_routes() -> list[tuple[str, str, str, bool]]:
    """(function logical id, method, resource path, behind the authorizer) of every Api event."""
    routes = []
    for function, properties in _template_functions().items():
        for event in (properties.get("Events") or {}).values():
            if event["Type"] != "Api":
                continue
            props = event["Properties"]
            authorized = (props.get("Auth") or {}).get("Authorizer") != "NONE"
            routes.append((function, props["Method"].upper(), props["Path"], authorized))
    return routes


def _is_api_gateway(sample: dict[str, Any]) -> bool:
    return "httpMethod" in sample and "requestContext" in sample and "type" not in sample


def _kind(sample: dict[str, Any]) -> str:
    """Which function a sample is for: the template's logical id."""
    if sample.get("type") == "REQUEST" and "methodArn" in sample:
        return "AuthorizerFunction"
    if "Records" in sample:
        sources = {r.get("eventSource") for r in sample["Records"]}
        return "DeliverFunction" if sources == {"aws:sqs"} else "DispatchFunction"
    if "action" in sample and "group" in sample:
        return "AttemptFunction"
    if _is_api_gateway(sample):
        return _route_of(sample)[0]
    return "unknown"


def _pattern(resource: str) -> re.Pattern[str]:
    regex = re.sub(r"\\\{\w+\\\+\\\}", ".+", re.escape(resource))
    regex = re.sub(r"\\\{\w+\\\}", "[^/]+", regex)
    return re.compile(f"^{regex}$")


def _route_of(sample: dict[str, Any]) -> tuple[str, str, str, bool]:
    matches = [
        route
        for route in _template_routes()
        if route[2] == sample["resource"] and route[1] in ("ANY", sample["httpMethod"].upper())
    ]
    assert len(matches) == 1, f"{sample['httpMethod']} {sample['resource']}: {matches}"
    return matches[0]


def test_there_are_samples() -> None:
    assert len(SAMPLES) >= 10


@pytest.mark.parametrize("path", SAMPLES, ids=[p.name for p in SAMPLES])
def test_sample_is_valid_json_object(path: Path) -> None:
    assert isinstance(_load(path), dict)


@pytest.mark.parametrize("path", SAMPLES, ids=[p.name for p in SAMPLES])
def test_sample_is_used_by_a_test(path: Path) -> None:
    names = (path.name, f'"{path.stem}"', f"'{path.stem}'")
    users = [
        test.name
        for test in TESTS.rglob("*.py")
        if test.name != Path(__file__).name
        and any(name in test.read_text(encoding="utf-8") for name in names)
    ]
    assert users, f"no test under tests/ refers to events/{path.name}"


@pytest.mark.parametrize("path", SAMPLES, ids=[p.name for p in SAMPLES])
def test_sample_is_for_a_known_function(path: Path) -> None:
    assert _kind(_load(path)) in _template_functions()


API_SAMPLES = [p for p in SAMPLES if _is_api_gateway(_load(p))]


@pytest.mark.parametrize("path", API_SAMPLES, ids=[p.name for p in API_SAMPLES])
def test_api_gateway_sample_matches_a_template_route(path: Path) -> None:
    sample = _load(path)
    function, _method, resource, authorized = _route_of(sample)
    context = sample["requestContext"]
    assert context["resourcePath"] == resource
    assert context["httpMethod"] == sample["httpMethod"]
    assert _pattern(resource).match(sample["path"]), (sample["path"], resource)
    assert context["path"] == f"/{context['stage']}{sample['path']}"
    if "{proxy+}" in resource:
        prefix = resource.split("{proxy+}")[0]
        assert sample["pathParameters"] == {"proxy": sample["path"][len(prefix) :]}
    for name in re.findall(r"\{(\w+)\}", resource):
        assert sample["pathParameters"][name] == sample["path"].split("/")[-1]
    assert ("authorizer" in context) is authorized, "authorizer context must match the route"
    if sample.get("body") is not None and not sample.get("isBase64Encoded"):
        headers = {k.lower(): v for k, v in sample["headers"].items()}
        if headers.get("content-type", "").startswith("application/json"):
            json.loads(sample["body"])
    assert sample["multiValueHeaders"] == {k: [v] for k, v in sample["headers"].items()}
    if function == "ApiFunction" and not portal_assets.owns(sample["path"]):
        from hookline.api.app import app

        routes = [*app._static_routes, *app._dynamic_routes]
        served = [
            r for r in routes if r.rule.match(sample["path"]) and r.method == sample["httpMethod"]
        ]
        assert served, f"the API resolver has no route for {sample['httpMethod']} {sample['path']}"


def test_every_function_has_a_sample() -> None:
    kinds = {_kind(_load(p)) for p in SAMPLES}
    assert set(_template_functions()) <= kinds


def _route_params() -> list[Any]:
    params = []
    for function, method, resource, _ in _template_routes():
        params.append(pytest.param(function, method, resource, id=f"{method} {resource}"))
    return params


@pytest.mark.parametrize(("function", "method", "resource"), _route_params())
def test_every_template_route_has_a_sample(function: str, method: str, resource: str) -> None:
    samples = [_load(p) for p in API_SAMPLES]
    assert any(
        s["resource"] == resource and (method == "ANY" or s["httpMethod"] == method)
        for s in samples
    ), f"no sample in events/ for {method} {resource} ({function})"


def test_authorizer_sample_is_a_request_authorizer_event() -> None:
    sample = _load(EVENTS / "authorizer-request.json")
    assert sample["type"] == "REQUEST"
    arn = sample["methodArn"].split(":")
    assert arn[:3] == ["arn", "aws", "execute-api"]
    _api_id, stage, method, *path = arn[5].split("/")
    assert stage == sample["requestContext"]["stage"]
    assert method == sample["httpMethod"] and "/" + "/".join(path) == sample["path"]
    assert "Authorization" in sample["headers"]
    assert any(r[2] == sample["resource"] and r[3] for r in _template_routes())


def test_stream_sample_is_an_events_table_insert_batch() -> None:
    from aws_lambda_powertools.utilities.data_classes import DynamoDBStreamEvent

    from hookline.adapters.dynamodb import to_python
    from hookline.domain.repositories import event_from_item

    sample = _load(EVENTS / "dispatch-stream-batch.json")
    view = load_template()["Resources"]["EventsTable"]["Properties"]["StreamSpecification"]
    records = list(DynamoDBStreamEvent(sample).records)
    assert records
    for raw, record in zip(sample["Records"], records, strict=True):
        assert raw["eventSource"] == "aws:dynamodb" and raw["eventName"] == "INSERT"
        assert "/stream/" in raw["eventSourceARN"]
        assert raw["dynamodb"]["StreamViewType"] == view["StreamViewType"]
        assert record.dynamodb is not None
        event = event_from_item(to_python(record.dynamodb.new_image))
        assert event.id and event.community_id and event.event


def test_attempt_sample_is_a_valid_step_input() -> None:
    import sys

    from hookline_dev.local.lambdas import load_handler

    load_handler("attempt")
    step_input = sys.modules["hookline_function_attempt"].StepInput
    sample = _load(EVENTS / "attempt-input.json")
    step = step_input.model_validate(sample)
    assert step.action == "attempt" and step.attempt >= 1
    assert step.since < step.until and step.group.startswith(step.webhook_id)
