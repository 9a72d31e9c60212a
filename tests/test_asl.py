"""hookline_dev.local.asl against moto's Step Functions engine: the same definition
(statemachine/retry.asl.json) and the same scripted AttemptFunction results through both must
enter the same states, send the same payloads and end with the same status and output."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from moto import mock_aws

from tests.asl_engines import CRASH, MOTO_CONFIG, LocalWorkflow, MotoWorkflow, Result, decision


def document(schedule: list[int], attempt: int = 1) -> dict[str, Any]:
    return {
        "delivery_id": "dlv_1",
        "community_id": "cmt_1",
        "webhook_id": "wh_1",
        "schedule": schedule,
        "attempt": attempt,
    }


SCRIPTS: dict[str, tuple[dict[str, Any], list[Result]]] = {
    "delivered on a retry": (document([0, 0, 0]), [decision("retry"), decision("delivered")]),
    "cancelled": (document([0, 0]), [decision("cancelled")]),
    "budget spent": (
        document([0, 0, 0]),
        [decision("retry"), decision("retry"), decision("retry"), {}],
    ),
    "permanent failure": (document([0, 0, 0]), [decision("failed"), {}]),
    "unknown outcome": (document([0, 0]), [decision("bogus"), decision("delivered")]),
    "rate-limit wait": (
        document([0, 0]),
        [decision("wait"), decision("wait"), decision("retry"), decision("delivered")],
    ),
    "waits from the schedule and the decision": (
        document([1, 0]),
        [decision("retry", next_wait_seconds=1), decision("delivered")],
    ),
    "crash recorded": (document([0, 0]), [CRASH, decision("retry"), decision("delivered")]),
    "crash recording fails": (document([0, 0]), [CRASH, CRASH, decision("delivered")]),
    "crash on the last attempt": (document([0]), [CRASH, CRASH, {}]),
    "resumed after attempt 3": (
        document([0, 0, 0, 0], attempt=3),
        [decision("retry"), decision("retry"), {}],
    ),
    "no attempts left": (document([], attempt=1), [{}]),
}


def without_causes(payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The payloads with a crash's Cause dropped: its text is the engine's own words."""
    return [{**p, "error": {"Error": p["error"]["Error"]}} if "error" in p else p for p in payloads]


@pytest.fixture
def moto() -> Iterator[MotoWorkflow]:
    with mock_aws(config=MOTO_CONFIG):
        yield MotoWorkflow.create()


@pytest.mark.parametrize("scenario", list(SCRIPTS))
def test_the_local_engine_runs_the_workflow_as_moto_does(moto: MotoWorkflow, scenario: str) -> None:
    start, results = SCRIPTS[scenario]

    on_moto = moto.run("dlv_1-retry", start, results)
    local = LocalWorkflow().run("dlv_1-retry", start, results)

    assert on_moto.status == "SUCCEEDED"
    assert local.states == on_moto.states
    assert without_causes(local.payloads) == without_causes(on_moto.payloads)
    assert local.waits == on_moto.waits
    assert (local.status, local.error, local.output) == (
        on_moto.status,
        on_moto.error,
        on_moto.output,
    )


def test_a_crash_payload_names_the_same_error_on_both(moto: MotoWorkflow) -> None:
    start, results = SCRIPTS["crash recorded"]

    on_moto = moto.run("dlv_1-retry", start, results)
    local = LocalWorkflow().run("dlv_1-retry", start, results)

    assert on_moto.payloads[1]["action"] == "record_crash"
    assert local.payloads[1]["error"]["Error"] == on_moto.payloads[1]["error"]["Error"]


def test_a_decision_without_its_keys_fails_the_execution_locally_as_on_aws() -> None:
    # The Attempt state's ResultSelector needs both keys: a missing one is States.Runtime, which
    # AWS documents States.ALL cannot catch, so the execution fails. moto's engine catches it
    # into RecordCrash instead (the one divergence found), hence no moto run here.
    local = LocalWorkflow().run("dlv_1-retry", document([0, 0]), [{"outcome": "retry"}])

    assert (local.status, local.error) == ("FAILED", "States.Runtime")
    assert local.states == ["Prepare", "HasAttemptsLeft", "ScheduledWait", "Wait", "Attempt"]
