"""The OpenAPI document: generated from the resolver, committed in docs/, complete, and honest
about what the API answers (checked against real calls through the API handler)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from hookline.api.app import app
from hookline.wiring import Services
from hookline_dev import openapi
from tests.apigw import api_event, call, sample

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "docs" / "openapi.json"
METHODS = ("get", "put", "post", "patch", "delete")
#: Route modules' request models that give no field an example (reported, not edited here).


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return openapi.openapi_document()


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def _resolver_routes() -> set[tuple[str, str]]:
    """The documented operations of the resolver (the public docs routes are not in it)."""
    routes = [*app._dynamic_routes, *app._static_routes]
    return {(r.openapi_path, r.method.lower()) for r in routes if r.include_in_schema}


def test_committed_copy_is_the_generated_document(document: dict[str, Any]) -> None:
    assert COMMITTED.is_file(), "docs/openapi.json is missing: run `make openapi`"
    assert COMMITTED.read_text(encoding="utf-8") == openapi.render(document), (
        "docs/openapi.json is stale: run `make openapi` and commit it"
    )


def test_route_modules_are_written() -> None:
    """The committed document is only meaningful once every route module has its routes."""
    stubs = [
        path.name
        for path in (ROOT / "hookline" / "api" / "routes").glob("*.py")
        if path.name != "__init__.py" and "@router." not in path.read_text(encoding="utf-8")
    ]
    assert stubs == []


def test_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    from aws_lambda_powertools.event_handler.openapi.models import OpenAPI

    assert document["openapi"].startswith("3.1")
    OpenAPI.model_validate(document)
    import schemathesis

    schema = schemathesis.openapi.from_dict(document)
    assert len(list(schema.get_all_operations())) == len(_operations(document))


def test_info_servers_security_and_tags(document: dict[str, Any]) -> None:
    import hookline

    assert document["info"]["title"] == "Hookline"
    assert document["info"]["version"] == hookline.__version__
    urls = [server["url"] for server in document["servers"]]
    assert any("execute-api" in url for url in urls) and "http://127.0.0.1:3000" in urls
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearer"]["scheme"] == "bearer" and schemes["basic"]["scheme"] == "basic"
    assert document["security"] == [{"bearer": []}, {"basic": []}]
    declared = {tag["name"] for tag in document["tags"]}
    for path, method, operation in _operations(document):
        assert operation.get("tags"), f"{method.upper()} {path} has no tag"
        assert set(operation["tags"]) <= declared


def test_every_route_of_the_resolver_is_documented(document: dict[str, Any]) -> None:
    documented = {(path, method) for path, method, _ in _operations(document)}
    routes = _resolver_routes()
    assert len(routes) >= 40
    assert routes - documented == set()
    assert documented - routes == {("/v1/hooks/{token}", "post")}


def test_inbound_route_is_described_by_hand(document: dict[str, Any]) -> None:
    operation = document["paths"]["/v1/hooks/{token}"]["post"]
    assert operation["security"] == []
    content = operation["requestBody"]["content"]
    assert set(content) == {
        "application/x-www-form-urlencoded",
        "multipart/form-data",
        "application/json",
    }
    form = document["components"]["schemas"]["InboundForm"]
    assert form["required"] == ["email"] and form["properties"]["user_pass"]["writeOnly"]
    answer = document["components"]["schemas"]["InboundAnswer"]
    for status, response in operation["responses"].items():
        example = response["content"]["application/json"]["example"]
        if status == "429":  # API Gateway's throttling answer
            assert example["data"]["status"] == 429
            continue
        jsonschema.validate(example, answer)
        assert example["success"] is (status == "200")
        assert ("user_id" in example) is (status == "200")


def test_every_operation_documents_the_error_shape_with_examples(
    document: dict[str, Any],
) -> None:
    error_schema = document["components"]["schemas"]["Error"]
    text = json.dumps(document)
    assert "HTTPValidationError" not in text and '"422"' not in text
    for path, method, operation in _operations(document):
        if path == "/v1/hooks/{token}":
            continue
        responses = operation["responses"]
        expected = {"400", "401", "403", "404", "405", "500"}
        if method in ("post", "put", "patch"):
            expected |= {"413", "415"}
        assert expected <= set(responses), f"{method.upper()} {path}"
        assert any(code.startswith("2") for code in responses)
        for code, response in responses.items():
            if code.startswith("2"):
                continue
            media = response["content"]["application/json"]
            assert media["schema"] == {"$ref": "#/components/schemas/Error"}
            example = media["example"]
            jsonschema.validate(example, error_schema)
            assert example["data"]["status"] == int(code), f"{method.upper()} {path} {code}"


def test_success_statuses_come_from_the_route_code(document: dict[str, Any]) -> None:
    paths = document["paths"]
    assert set(paths["/v1/communities"]["post"]["responses"]) & {"200", "201"} == {"201"}
    events = paths["/v1/communities/{community_id}/events"]["post"]["responses"]
    assert {"200", "202"} <= set(events)
    recover = paths["/v1/communities/{community_id}/webhooks/{webhook_id}/recover"]["post"]
    assert "202" in recover["responses"] and "200" not in recover["responses"]


def _bodies(document: dict[str, Any]) -> list[Any]:
    params = []
    for path, method, operation in _operations(document):
        for media_type, media in operation.get("requestBody", {}).get("content", {}).items():
            params.append(pytest.param(path, method, media_type, media, id=f"{method} {path}"))
    return params


@pytest.mark.parametrize(
    ("path", "method", "media_type", "media"), _bodies(openapi.openapi_document())
)
def test_request_bodies_have_examples(
    path: str, method: str, media_type: str, media: dict[str, Any], document: dict[str, Any]
) -> None:
    example = media.get("example")
    assert isinstance(example, dict) and example, f"no example for {method.upper()} {path}"
    ref = media["schema"].get("$ref") or next(
        (o["$ref"] for o in media["schema"].get("anyOf", []) if "$ref" in o), None
    )
    if ref:
        name = ref.rsplit("/", 1)[-1]
        schema = document["components"]["schemas"][name]
        assert set(example) <= set(schema["properties"]), name


def test_check_detects_a_stale_copy(tmp_path: Path, document: dict[str, Any]) -> None:
    fresh = tmp_path / "openapi.json"
    assert openapi.main(["--write", str(fresh)]) == 0
    assert json.loads(fresh.read_text()) == json.loads(openapi.render(document))
    assert fresh.read_text().endswith("}\n")
    assert openapi.main(["--check", str(fresh)]) == 0
    stale = json.loads(fresh.read_text())
    stale["info"]["version"] = "0.0.0"
    fresh.write_text(json.dumps(stale, sort_keys=True, indent=2) + "\n")
    assert openapi.main(["--check", str(fresh)]) == 1
    assert openapi.main(["--check", str(tmp_path / "missing.json")]) == 1


def _docs_get(path: str, host: str = "127.0.0.1:3000") -> Any:
    """GET a docs route with its sample event (events/api-docs*.json, api-openapi-json.json)."""
    if path == "/v1/openapi.json":
        event = sample("api-openapi-json")
    elif path == "/v1/docs":
        event = sample("api-docs")
    else:
        event = sample("api-docs-asset")
        asset = path.removeprefix("/v1/docs/")
        event["path"], event["pathParameters"] = path, {"asset": asset}
        event["requestContext"]["path"] = f"/{event['requestContext']['stage']}{path}"
    event["headers"]["Host"] = event["requestContext"]["domainName"] = host
    from hookline.api.app import handle

    return handle(event, None)  # type: ignore[arg-type]


def test_swagger_ui_page_loads_the_bundle_as_a_file_and_needs_no_cdn(
    memory_services: Services,
) -> None:
    page = _docs_get("/v1/docs")
    assert page["statusCode"] == 200, page
    html = page["body"]
    assert "SwaggerUIBundle(" in html and "cdn" not in html.lower()
    scripts = re.findall(r"<script[^>]+src='([^']+)'", html)
    assert scripts == ["docs/swagger-ui-bundle.min.js"]
    assert re.findall(r"<link[^>]+href='([^']+)'", html) == ["docs/swagger-ui.min.css"]
    assert "</script><script>" not in html.split("spec:", 1)[1].split("presets", 1)[0]

    from aws_lambda_powertools.event_handler.openapi import swagger_ui

    assets = Path(swagger_ui.__file__).parent
    for name, kind in (("swagger-ui-bundle.min.js", "javascript"), ("swagger-ui.min.css", "css")):
        answer = _docs_get(f"/v1/docs/{name}")
        assert answer["statusCode"] == 200
        content_type = answer["multiValueHeaders"]["Content-Type"][0]
        assert kind in content_type
        assert answer["body"] == (assets / name).read_text(encoding="utf-8")  # unmodified
    assert _docs_get("/v1/docs/../../etc/passwd")["statusCode"] == 404
    assert _docs_get("/v1/docs/oauth2.py")["statusCode"] == 404
    served = json.loads(_docs_get("/v1/openapi.json")["body"])
    assert served["paths"] == openapi.openapi_document()["paths"]
    deployed = _docs_get("/v1/openapi.json", host="abc123.execute-api.eu-west-1.amazonaws.com")
    stage = api_event("api-list-webhooks")["requestContext"]["stage"]
    assert json.loads(deployed["body"])["servers"][0]["url"] == (
        f"https://abc123.execute-api.eu-west-1.amazonaws.com/{stage}"
    )


def test_no_lambda_imports_the_generator() -> None:
    """Generating the document is slow: no function's import path may pull it in."""
    for path in (ROOT / "functions").glob("*/app.py"):
        assert "openapi" not in path.read_text(encoding="utf-8"), path
    code = (
        "import sys\n"
        "from hookline_dev.local.lambdas import load_handler\n"
        "for name in ('api', 'authorizer', 'dispatch', 'attempt', 'inbound'):\n"
        "    load_handler(name)\n"
        "assert 'hookline_dev.openapi' not in sys.modules, 'imported'\n"
    )
    env = {
        **os.environ,
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_DISABLED": "true",
    }
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


# -- the document against the API's real answers ------------------------------------------------


def _concrete(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: f"{m.group(1)[:3]}_doc0001", path)


def _event(path: str, method: str) -> dict[str, Any]:
    role = "operator" if path == "/v1/communities" else "admin"
    event = api_event(
        "api-list-webhooks",
        community_id="com_doc0001",
        key_id="key_doc0001",
        role=role,
        method=method.upper(),
        path=_concrete(path),
        query={},
        body=None,
    )
    if path == "/v1/event-types":
        event["resource"] = event["requestContext"]["resourcePath"] = "/v1/event-types"
        event["pathParameters"] = None
    return event


def _documented(document: dict[str, Any], path: str, method: str) -> set[int]:
    return {int(code) for code in document["paths"][path][method]["responses"]}


def test_real_error_answers_are_documented(
    document: dict[str, Any], memory_services: Services
) -> None:
    """Without a caller, with a non-JSON body, malformed JSON or a body over 256 KB, every
    operation answers a status its documentation lists, in the documented error shape."""
    error_schema = document["components"]["schemas"]["Error"]
    for path, method in sorted(_resolver_routes()):
        documented = _documented(document, path, method)
        anonymous = _event(path, method)
        anonymous["requestContext"]["authorizer"] = None
        answer = call(anonymous)
        # Bodies are validated before the route runs (in AWS the authorizer answers 401 first).
        allowed = {400, 401} if method in ("post", "put", "patch") else {401}
        assert answer.status in allowed and answer.status in documented, (path, method)
        jsonschema.validate(answer.body, error_schema)
        if method not in ("post", "put", "patch"):
            continue
        for raw, content_type, status in (
            ("name=x", "text/plain", 415),
            ("{", "application/json", 400),
            ("x" * (256 * 1024 + 1), "application/json", 413),
        ):
            event = _event(path, method)
            event["body"] = raw
            event["headers"]["Content-Type"] = content_type
            answer = call(event)
            assert answer.status == status and status in documented, (path, method, raw[:10])
            jsonschema.validate(answer.body, error_schema)


def test_wrong_method_answers_405_as_documented(
    document: dict[str, Any], memory_services: Services
) -> None:
    answer = call(_event("/v1/communities", "put"))
    assert answer.status == 405 and 405 in _documented(document, "/v1/communities", "post")
    assert answer.body["code"] == "method_not_allowed"
