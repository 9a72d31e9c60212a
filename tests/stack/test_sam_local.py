"""`sam local invoke` readiness: env.json in step with template.yaml, and the sample events filled
from a running local stack work unchanged against the real handlers."""

from __future__ import annotations

import json
from pathlib import Path

from hookline_dev import template
from hookline_dev.local import sam_local
from tests.localstack_fixtures import local_stack  # noqa: F401

REPO = Path(__file__).resolve().parents[2]


def test_env_json_is_in_step_with_the_template() -> None:
    assert (REPO / "env.json").read_text() == sam_local.env_json(), "run `make env-json`"
    env = json.loads(sam_local.env_json())
    for logical_id, variables in env.items():
        assert sorted(variables) == sorted(template.function_variable_names(logical_id))
        assert all(isinstance(value, str) for value in variables.values())
    assert env["ApiFunction"]["RETRY_SCHEDULE"] == template.parameter_default("RetrySchedule")
    assert env["ApiFunction"]["COMMUNITIES_TABLE"] == "hookline-local-communities"
    assert "RETRY_STATE_MACHINE_ARN" not in env["InboundFunction"]


def test_filled_events_work_unchanged(local_stack, tmp_path: Path) -> None:  # noqa: F811
    values = sam_local.fill_values(local_stack.base_url, local_stack.operator_key)
    written = sam_local.fill_events(values, REPO / "events", tmp_path)
    assert {p.name for p in written} == {p.name for p in (REPO / "events").glob("*.json")}
    for path in written:
        assert "REPLACE" not in path.read_text(), path.name

    functions = local_stack.gateway.functions
    listed = functions.invoke("api", json.loads((tmp_path / "api-list-webhooks.json").read_text()))
    assert listed["statusCode"] == 200, listed
    assert values["wh_REPLACE"] in listed["body"]
    logs = functions.invoke("api", json.loads((tmp_path / "api-webhook-logs.json").read_text()))
    assert logs["statusCode"] == 200, logs
    assert json.loads(logs["body"])["data"] == []  # the sample asks for failed attempts only
