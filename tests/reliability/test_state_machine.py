"""The real retry workflow (statemachine/retry.asl.json) on moto's Step Functions engine: a plain
loop, Wait (SecondsPath) -> Attempt -> Done?, one execution per retry group.

Each test scripts the AttemptFunction answers (tests/asl_engines.py: moto's lambda-simple
response queue, CRASH for a function error) and checks the control flow from the execution
history, which records every Lambda payload.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from moto import mock_aws

from tests.asl_engines import CRASH, MOTO_CONFIG, MotoWorkflow, actions
from tests.asl_engines import group_document as doc


@pytest.fixture
def workflow() -> Iterator[MotoWorkflow]:
    with mock_aws(config=MOTO_CONFIG):
        yield MotoWorkflow.create()


def test_the_workflow_loops_until_the_answer_is_done(workflow: MotoWorkflow) -> None:
    workflow.script(doc(2, 0), doc(3, 0), doc(4, done=True))
    execution = workflow.start("wh_1-w1000", doc(1, 0))

    described = workflow.wait(execution)
    assert described["status"] == "SUCCEEDED"
    payloads = workflow.invocations(execution)
    assert actions(payloads) == [("attempt", 1), ("attempt", 2), ("attempt", 3)]
    assert payloads[0] == {
        "action": "attempt",
        **{k: v for k, v in doc(1, 0).items() if k != "done"},
    }
    assert workflow.states(execution) == ["Wait", "Attempt", "Done?"] * 3 + ["Done"]
    assert json.loads(described["output"]) == doc(4, done=True)


def test_no_schedule_arithmetic_is_left_in_the_definition(workflow: MotoWorkflow) -> None:
    definition = workflow.sfn.describe_state_machine(stateMachineArn=workflow.state_machine_arn)[
        "definition"
    ]
    assert "ArrayGetItem" not in definition and "MathAdd" not in definition
    assert set(json.loads(definition)["States"]) == {
        "Wait",
        "Attempt",
        "RecordCrash",
        "Done?",
        "Done",
    }


def test_each_round_waits_what_the_previous_answer_said(workflow: MotoWorkflow) -> None:
    workflow.script(doc(2, 1), doc(3, 0), doc(3, done=True))
    execution = workflow.start("wh_1-w1000", doc(1, 0))

    assert workflow.wait(execution)["status"] == "SUCCEEDED"
    assert workflow.waits(execution) == [0.0, 1.0, 0.0]


def test_a_crashed_round_is_recorded_and_the_loop_goes_on(workflow: MotoWorkflow) -> None:
    workflow.script(CRASH, doc(2, 0), doc(3, done=True))
    execution = workflow.start("wh_1-w1000", doc(1, 0))

    assert workflow.wait(execution)["status"] == "SUCCEEDED"
    payloads = workflow.invocations(execution)
    assert [p["action"] for p in payloads] == ["attempt", "record_crash", "attempt"]
    assert payloads[1]["group"] == "wh_1-w1000" and "Error" in payloads[1]["error"]
    assert workflow.states(execution) == [
        "Wait",
        "Attempt",
        "RecordCrash",
        "Done?",
        "Wait",
        "Attempt",
        "Done?",
        "Done",
    ]


def test_a_group_is_one_execution_however_many_members_start_it(workflow: MotoWorkflow) -> None:
    workflow.script(doc(2, done=True))
    first = workflow.start("wh_1-w1000", doc(1, 5))
    for _ in range(3):
        with pytest.raises(workflow.sfn.exceptions.ExecutionAlreadyExists):
            workflow.start("wh_1-w1000", doc(1, 4))

    assert workflow.wait(first)["status"] == "SUCCEEDED"
    listed = workflow.sfn.list_executions(stateMachineArn=workflow.state_machine_arn)
    assert len(listed["executions"]) == 1
