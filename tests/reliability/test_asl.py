"""hookline_dev.local.asl against moto's Step Functions engine: the same definition
(statemachine/retry.asl.json) and the same scripted AttemptFunction results through both must
enter the same states, send the same payloads and end with the same status and output."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from moto import mock_aws

from tests.asl_engines import CRASH, MOTO_CONFIG, LocalWorkflow, MotoWorkflow, Result
from tests.asl_engines import group_document as doc

SCRIPTS: dict[str, tuple[dict[str, Any], list[Result]]] = {
    "done after one round": (doc(1, 0), [doc(2, done=True)]),
    "three rounds": (doc(1, 0), [doc(2, 1), doc(3, 0), doc(4, done=True)]),
    "rate-limit round keeps the count": (doc(1, 0), [doc(1, 1), doc(2, done=True)]),
    "crash recorded": (doc(1, 0), [CRASH, doc(2, 0), doc(3, done=True)]),
    "crash recorded, then done": (doc(1, 0), [CRASH, doc(2, done=True)]),
    "recover group starts at once": (doc(0, 0), [doc(1, 0), doc(2, done=True)]),
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

    on_moto = moto.run("wh_1-w1000", start, results)
    local = LocalWorkflow().run("wh_1-w1000", start, results)

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

    on_moto = moto.run("wh_1-w1000", start, results)
    local = LocalWorkflow().run("wh_1-w1000", start, results)

    assert on_moto.payloads[1]["action"] == "record_crash"
    assert local.payloads[1]["error"]["Error"] == on_moto.payloads[1]["error"]["Error"]


def test_an_answer_without_done_fails_the_execution_locally() -> None:
    # The Choice compares $.done: a missing key is States.Runtime (AWS fails the execution).
    answer = {k: v for k, v in doc(2, 0).items() if k != "done"}
    local = LocalWorkflow().run("wh_1-w1000", doc(1, 0), [answer])

    assert (local.status, local.error) == ("FAILED", "States.Runtime")
    assert local.states == ["Wait", "Attempt", "Done?"]
