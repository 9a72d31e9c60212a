"""Fuzzing the API with schemathesis against the OpenAPI document the local stack serves, with a
valid admin key of a real community: no 5xx on any route, and every response conforms to the
document (status code documented, content type, body schema, headers) - schemathesis's checks,
all but one (see EXCLUDED_CHECKS).

Each operation gets cases valid by the document (half of them aimed at the community's real
resources, half with the fuzzer's own ids) and cases that break it on purpose (which must be
refused with a documented 4xx). The key id is aimed at a spare key: revoking the key the fuzzer
uses would turn every later answer into a 401. The operator key creates communities.

The fuzzer creates webhooks with any public URL it likes; their deliveries must not leave the
machine, so the local stack's HTTP sender is fenced to loopback for this module (a refused
target is an ordinary failed attempt). A bigger run is marked slow.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from hookline.adapters import http_attempt
from hookline.domain.attempts import AttemptOutcome
from tests.localstack_fixtures import LocalStackHandle, local_stack  # noqa: F401
from tests.stack_tenants import ID_ATTRIBUTES, Tenant, make_tenant

EXAMPLES = 12
SLOW_EXAMPLES = 150
#: "Schema-valid request rejected" holds the API to accept whatever the document's schemas allow;
#: business rules the schemas do not state (the event catalog, URL and slug rules, a cursor's
#: shape, fields only create requires) make it fire on correct 400s. Every other check runs.
EXCLUDED_CHECKS: list[Any] = [positive_data_acceptance]
DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def _labels() -> list[str]:
    """Operation labels, from the committed copy of the document (tests/api/test_openapi.py keeps
    it identical to the served one); the test itself fuzzes the served document."""
    committed = schemathesis.openapi.from_dict(json.loads(DOCUMENT.read_text()))
    return sorted(result.ok().label for result in committed.get_all_operations())  # type: ignore[union-attr]


_REAL_POST = http_attempt.post


def loopback_only(
    url: str, body: bytes, headers: Mapping[str, str], *, timeout: float, allow_private: bool
) -> AttemptOutcome:
    host = urlsplit(url).hostname or ""
    if host not in ("127.0.0.1", "localhost"):
        return AttemptOutcome.failure(f"refused by the fuzz test: {host} is not loopback")
    return _REAL_POST(url, body, headers, timeout=timeout, allow_private=allow_private)


@pytest.fixture(scope="module", autouse=True)
def _fenced() -> Iterator[None]:
    """Every sender the composition root builds in this module is the fenced one (patched where
    hookline.wiring looks it up, so background retries between tests are fenced too)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(http_attempt, "post", loopback_only)
        yield


@pytest.fixture(scope="module")
def tenant(local_stack: LocalStackHandle) -> Tenant:  # noqa: F811
    return make_tenant(local_stack, "fuzz")


@pytest.fixture(scope="module")
def served(local_stack: LocalStackHandle) -> Any:  # noqa: F811
    response = requests.get(local_stack.url("/v1/openapi.json"), timeout=30)
    assert response.status_code == 200
    return schemathesis.openapi.from_dict(response.json())


def fuzz(
    operation: Any, stack: LocalStackHandle, tenant: Tenant, examples: int, *, seed: bool
) -> None:
    names = {p.name for p in operation.path_parameters}
    pins = {
        name: (tenant.token if name == "token" else getattr(tenant, ID_ATTRIBUTES[name]))
        for name in names
        if name in ID_ATTRIBUTES or name == "token"
    }
    ours = {"community_id": pins["community_id"]} if "community_id" in pins else {}
    strategies = [
        operation.as_strategy(GenerationMode.POSITIVE, path_parameters=pins or None),
        operation.as_strategy(GenerationMode.POSITIVE, path_parameters=ours or None),
    ]
    if operation.body or list(operation.query):
        strategies.append(
            operation.as_strategy(GenerationMode.NEGATIVE, path_parameters=pins or None)
        )
    key = stack.operator_key if operation.label == "POST /v1/communities" else tenant.key
    auth = {"Authorization": f"Bearer {key}"}

    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=seed,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=st.one_of(strategies))
    def check(case: Case) -> None:
        response = case.call(base_url=stack.base_url, headers=auth, timeout=30)
        assert response.status_code < 500, (case.method, case.formatted_path, response.text)
        case.validate_response(response, headers=auth, excluded_checks=EXCLUDED_CHECKS)

    check()


@pytest.mark.parametrize("label", _labels())
def test_no_5xx_and_every_response_conforms(
    label: str,
    served: Any,
    local_stack: LocalStackHandle,  # noqa: F811
    tenant: Tenant,
) -> None:
    operation = served.find_operation_by_label(label)
    assert operation is not None, f"{label} is in docs/openapi.json but not served"
    fuzz(operation, local_stack, tenant, EXAMPLES, seed=True)


@pytest.mark.slow
@pytest.mark.parametrize("label", _labels())
def test_no_5xx_and_every_response_conforms_long_run(
    label: str,
    served: Any,
    local_stack: LocalStackHandle,  # noqa: F811
    tenant: Tenant,
) -> None:
    operation = served.find_operation_by_label(label)
    assert operation is not None
    fuzz(operation, local_stack, tenant, SLOW_EXAMPLES, seed=False)


_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def test_every_undeclared_method_is_405_naming_the_declared_ones(
    served: Any,
    local_stack: LocalStackHandle,  # noqa: F811
    tenant: Tenant,
) -> None:
    """schemathesis's undeclared-method checks, on every path of the document with the
    community's real ids: a method the document does not list is 405 in the error shape, with
    an Allow header naming exactly the methods it lists. (``/v1/hooks/{token}`` is
    InboundFunction's single POST route: API Gateway itself answers other methods there.)"""
    document = served.raw_schema
    ids = {**tenant.ids(), "token": tenant.token}
    checked = 0
    for template, item in document["paths"].items():
        if template == "/v1/hooks/{token}":
            continue
        declared = {m.upper() for m in item if m.upper() in (*_METHODS, "HEAD", "OPTIONS")}
        path = template
        for name, value in ids.items():
            path = path.replace("{" + name + "}", value)
        for method in sorted(set(_METHODS) - declared):
            answer = requests.request(
                method,
                local_stack.url(path),
                headers={"Authorization": f"Bearer {tenant.key}"},
                timeout=30,
            )
            assert answer.status_code == 405, (method, template, answer.text)
            assert answer.json()["code"] == "method_not_allowed"
            assert set(answer.headers["Allow"].split(", ")) == declared, (method, template)
            checked += 1
    assert checked > 50
