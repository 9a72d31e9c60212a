"""The real retry workflow (statemachine/retry.asl.json) on moto's Step Functions engine.

Each test scripts the AttemptFunction results (tests/asl_engines.py: moto's lambda-simple
response queue, CRASH for a function error) and checks the control flow from the execution
history, which records every Lambda payload.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from moto import mock_aws

from tests.asl_engines import CRASH, MOTO_CONFIG, MotoWorkflow, actions, decision


def workflow_input(**overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "delivery_id": "dlv_1",
        "community_id": "cmt_1",
        "webhook_id": "wh_1",
        "schedule": [0, 0, 0],
        "attempt": 1,
    }
    payload.update(overrides)
    return payload


@pytest.fixture
def workflow() -> Iterator[MotoWorkflow]:
    with mock_aws(config=MOTO_CONFIG):
        yield MotoWorkflow.create()


def test_success_on_a_retry_ends_the_workflow(workflow: MotoWorkflow) -> None:
    workflow.script(decision("retry"), decision("delivered"))
    execution = workflow.start("dlv_1-retry", workflow_input())

    assert workflow.wait(execution)["status"] == "SUCCEEDED"
    payloads = workflow.invocations(execution)
    assert actions(payloads) == [("attempt", 2), ("attempt", 3)]
    assert payloads[0] == {
        "action": "attempt",
        "delivery_id": "dlv_1",
        "community_id": "cmt_1",
        "webhook_id": "wh_1",
        "attempt": 2,
        "max_attempts": 4,
        "schedule": [0, 0, 0],
    }
    assert workflow.final_state(execution) == "Delivered"


def test_cancelled_attempt_ends_without_giving_up(workflow: MotoWorkflow) -> None:
    workflow.script(decision("cancelled"))
    execution = workflow.start("dlv_1-retry", workflow_input())

    assert workflow.wait(execution)["status"] == "SUCCEEDED"
    assert actions(workflow.invocations(execution)) == [("attempt", 2)]
    assert workflow.final_state(execution) == "Cancelled"


@pytest.mark.parametrize("last_outcome", ["failed", "retry"])
def test_all_attempts_failing_gives_up_after_the_schedule(
    workflow: MotoWorkflow, last_outcome: str
) -> None:
    # Attempt 1 was the dispatcher's; the schedule allows 3 more (1 + retry_count = 4 in all).
    # Even when AttemptFunction still answers "retry" at the end, the budget stops the loop.
    workflow.script(decision("retry"), decision("retry"), decision(last_outcome), {})
    execution = workflow.start("dlv_1-retry", workflow_input())

    assert workflow.wait(execution)["status"] == "SUCCEEDED"
    payloads = workflow.invocations(execution)
    assert actions(payloads) == [("attempt", 2), ("attempt", 3), ("attempt", 4), ("give_up", 4)]
    assert payloads[-1] == {
        "action": "give_up",
        "delivery_id": "dlv_1",
        "community_id": "cmt_1",
        "webhook_id": "wh_1",
        "attempt": 4,
    }
    assert workflow.final_state(execution) == "GaveUp"


def test_a_permanent_failure_gives_up_at_once(workflow: MotoWorkflow) -> None:
    workflow.script(decision("failed"), {})
    execution = workflow.start("dlv_1-retry", workflow_input())

    assert workflow.wait(execution)["status"] == "SUCCEEDED"
    assert actions(workflow.invocations(execution)) == [("attempt", 2), ("give_up", 2)]


def test_a_crashed_attempt_is_recorded_and_counts(workflow: MotoWorkflow) -> None:
    workflow.script(CRASH, decision("retry"), decision("delivered"))
    execution = workflow.start("dlv_1-retry", workflow_input(schedule=[0, 0]))

    assert workflow.wait(execution)["status"] == "SUCCEEDED"
    payloads = workflow.invocations(execution)
    assert actions(payloads) == [("attempt", 2), ("record_crash", 2), ("attempt", 3)]
    assert payloads[1]["error"]["Error"] == "Function.ResponseSizeTooLarge"
    assert "Cause" in payloads[1]["error"]
    assert workflow.final_state(execution) == "Delivered"


def test_when_recording_the_crash_fails_too_the_schedule_decides(
    workflow: MotoWorkflow,
) -> None:
    workflow.script(CRASH, CRASH, decision("delivered"))
    execution = workflow.start("dlv_1-retry", workflow_input(schedule=[0, 0]))

    assert workflow.wait(execution)["status"] == "SUCCEEDED"
    assert actions(workflow.invocations(execution)) == [
        ("attempt", 2),
        ("record_crash", 2),
        ("attempt", 3),
    ]


def test_a_crash_on_the_last_attempt_gives_up(workflow: MotoWorkflow) -> None:
    workflow.script(CRASH, CRASH, {})
    execution = workflow.start("dlv_1-retry", workflow_input(schedule=[0]))

    assert workflow.wait(execution)["status"] == "SUCCEEDED"
    assert actions(workflow.invocations(execution)) == [
        ("attempt", 2),
        ("record_crash", 2),
        ("give_up", 2),
    ]


def test_waits_come_from_the_schedule_then_from_the_decision(workflow: MotoWorkflow) -> None:
    # First wait: schedule[0] = 1 s. Second: AttemptFunction's next_wait_seconds (a Retry-After
    # longer than the schedule's 0) = 1 s.
    workflow.script(decision("retry", next_wait_seconds=1), decision("delivered"))
    started = time.monotonic()
    execution = workflow.start("dlv_1-retry", workflow_input(schedule=[1, 0]))

    assert workflow.wait(execution)["status"] == "SUCCEEDED"
    assert time.monotonic() - started >= 1.9
    waits = workflow.waits(execution)
    assert waits == [1, 1]
    assert actions(workflow.invocations(execution)) == [("attempt", 2), ("attempt", 3)]


def test_the_wait_before_each_attempt_follows_the_schedule_index(
    workflow: MotoWorkflow,
) -> None:
    # A crash whose recording fails too falls back to the schedule: the wait before attempt
    # n + 1 is schedule[n - 1].
    workflow.script(CRASH, CRASH, decision("delivered"))
    execution = workflow.start("dlv_1-retry", workflow_input(schedule=[0, 1]))

    assert workflow.wait(execution)["status"] == "SUCCEEDED"
    waits = workflow.waits(execution)
    assert waits == [0, 1]


def test_starting_the_same_execution_twice_is_harmless(workflow: MotoWorkflow) -> None:
    workflow.script(decision("delivered"))
    first = workflow.start("dlv_1-retry", workflow_input(schedule=[1]))
    # While it runs, the same name and input return the same execution (STANDARD idempotency).
    assert workflow.start("dlv_1-retry", workflow_input(schedule=[1])) == first
    assert workflow.wait(first)["status"] == "SUCCEEDED"

    # Once it is closed, the name is taken: callers treat ExecutionAlreadyExists as "started".
    with pytest.raises(workflow.sfn.exceptions.ExecutionAlreadyExists):
        workflow.start("dlv_1-retry", workflow_input(schedule=[1]))
    executions = workflow.sfn.list_executions(stateMachineArn=workflow.state_machine_arn)
    assert len(executions["executions"]) == 1
    assert actions(workflow.invocations(first)) == [("attempt", 2)]
