"""The real retry workflow (statemachine/retry.asl.json) on moto's Step Functions engine.

AttemptFunction is a moto "lambda-simple" function: every invocation returns the next result
queued at moto's lambda-simple response queue, so each test scripts the attempt outcomes and then
checks the control flow from the execution history (which records every Lambda payload).

A crashing attempt: lambda-simple always succeeds, except that moto answers a payload over 6 MB
with FunctionError "Unhandled" / errorType "Function.ResponseSizeTooLarge" -- so an oversized
queued result is how a test makes the function crash.
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
import requests
from moto import mock_aws

from hookline.adapters.template import retry_state_machine_definition

REGION = "us-east-1"
LAMBDA_SIMPLE_RESPONSES = "http://motoapi.amazonaws.com/moto-api/static/lambda-simple/response"
CRASH = "x" * 6_000_001  # > 6 MB: moto reports a function error (see the module docstring)


def decision(outcome: str, next_wait_seconds: int = 0) -> dict[str, Any]:
    return {"outcome": outcome, "next_wait_seconds": next_wait_seconds}


def _zipped_stub() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", "def lambda_handler(event, context):\n    return event\n")
    return buffer.getvalue()


@dataclass
class RetryWorkflow:
    sfn: Any
    state_machine_arn: str

    def script(self, *results: dict[str, Any] | str) -> None:
        """Queue what the next AttemptFunction invocations return, in order."""
        payloads = [r if isinstance(r, str) else json.dumps(r) for r in results]
        response = requests.post(
            LAMBDA_SIMPLE_RESPONSES, json={"results": payloads, "region": REGION}, timeout=5
        )
        assert response.status_code == 201

    def start(self, name: str, **overrides: Any) -> str:
        return str(
            self.sfn.start_execution(
                stateMachineArn=self.state_machine_arn,
                name=name,
                input=json.dumps(workflow_input(**overrides)),
            )["executionArn"]
        )

    def wait(self, execution_arn: str, timeout: float = 20.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            described: dict[str, Any] = self.sfn.describe_execution(executionArn=execution_arn)
            if described["status"] != "RUNNING":
                return described
            if time.monotonic() > deadline:
                raise AssertionError(f"execution still running after {timeout}s")
            time.sleep(0.02)

    def history(self, execution_arn: str) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = self.sfn.get_execution_history(
            executionArn=execution_arn, maxResults=1000
        )["events"]
        return events

    def invocations(self, execution_arn: str) -> list[dict[str, Any]]:
        """The Payload of every AttemptFunction invocation, in order."""
        payloads = []
        for event in self.history(execution_arn):
            if event["type"] == "TaskScheduled":
                parameters = json.loads(event["taskScheduledEventDetails"]["parameters"])
                payloads.append(parameters["Payload"])
        return payloads

    def final_state(self, execution_arn: str) -> str:
        entered = [
            e["stateEnteredEventDetails"]["name"]
            for e in self.history(execution_arn)
            if "stateEnteredEventDetails" in e
        ]
        return entered[-1]


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
def workflow() -> Iterator[RetryWorkflow]:
    with mock_aws(
        config={"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}
    ):
        iam = boto3.client("iam", region_name=REGION)
        role_arn = iam.create_role(
            RoleName="hookline-test-role", AssumeRolePolicyDocument="{}", Path="/"
        )["Role"]["Arn"]
        function_arn = boto3.client("lambda", region_name=REGION).create_function(
            FunctionName="hookline-attempt",
            Runtime="python3.12",
            Architectures=["arm64"],
            Role=role_arn,
            Handler="app.lambda_handler",
            Code={"ZipFile": _zipped_stub()},
        )["FunctionArn"]
        sfn = boto3.client("stepfunctions", region_name=REGION)
        state_machine_arn = sfn.create_state_machine(
            name="hookline-retry",
            definition=retry_state_machine_definition(function_arn),
            roleArn=role_arn,
            type="STANDARD",
        )["stateMachineArn"]
        yield RetryWorkflow(sfn=sfn, state_machine_arn=state_machine_arn)


def actions(payloads: list[dict[str, Any]]) -> list[tuple[str, int]]:
    return [(p["action"], p["attempt"]) for p in payloads]


def test_success_on_a_retry_ends_the_workflow(workflow: RetryWorkflow) -> None:
    workflow.script(decision("retry"), decision("delivered"))
    execution = workflow.start("dlv_1-retry")

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


def test_cancelled_attempt_ends_without_giving_up(workflow: RetryWorkflow) -> None:
    workflow.script(decision("cancelled"))
    execution = workflow.start("dlv_1-retry")

    assert workflow.wait(execution)["status"] == "SUCCEEDED"
    assert actions(workflow.invocations(execution)) == [("attempt", 2)]
    assert workflow.final_state(execution) == "Cancelled"


@pytest.mark.parametrize("last_outcome", ["failed", "retry"])
def test_all_attempts_failing_gives_up_after_the_schedule(
    workflow: RetryWorkflow, last_outcome: str
) -> None:
    # Attempt 1 was the dispatcher's; the schedule allows 3 more (1 + retry_count = 4 in all).
    # Even when AttemptFunction still answers "retry" at the end, the budget stops the loop.
    workflow.script(decision("retry"), decision("retry"), decision(last_outcome), {})
    execution = workflow.start("dlv_1-retry")

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


def test_a_permanent_failure_gives_up_at_once(workflow: RetryWorkflow) -> None:
    workflow.script(decision("failed"), {})
    execution = workflow.start("dlv_1-retry")

    assert workflow.wait(execution)["status"] == "SUCCEEDED"
    assert actions(workflow.invocations(execution)) == [("attempt", 2), ("give_up", 2)]


def test_a_crashed_attempt_is_recorded_and_counts(workflow: RetryWorkflow) -> None:
    workflow.script(CRASH, decision("retry"), decision("delivered"))
    execution = workflow.start("dlv_1-retry", schedule=[0, 0])

    assert workflow.wait(execution)["status"] == "SUCCEEDED"
    payloads = workflow.invocations(execution)
    assert actions(payloads) == [("attempt", 2), ("record_crash", 2), ("attempt", 3)]
    assert payloads[1]["error"]["Error"] == "Function.ResponseSizeTooLarge"
    assert "Cause" in payloads[1]["error"]
    assert workflow.final_state(execution) == "Delivered"


def test_when_recording_the_crash_fails_too_the_schedule_decides(
    workflow: RetryWorkflow,
) -> None:
    workflow.script(CRASH, CRASH, decision("delivered"))
    execution = workflow.start("dlv_1-retry", schedule=[0, 0])

    assert workflow.wait(execution)["status"] == "SUCCEEDED"
    assert actions(workflow.invocations(execution)) == [
        ("attempt", 2),
        ("record_crash", 2),
        ("attempt", 3),
    ]


def test_a_crash_on_the_last_attempt_gives_up(workflow: RetryWorkflow) -> None:
    workflow.script(CRASH, CRASH, {})
    execution = workflow.start("dlv_1-retry", schedule=[0])

    assert workflow.wait(execution)["status"] == "SUCCEEDED"
    assert actions(workflow.invocations(execution)) == [
        ("attempt", 2),
        ("record_crash", 2),
        ("give_up", 2),
    ]


def test_waits_come_from_the_schedule_then_from_the_decision(workflow: RetryWorkflow) -> None:
    # First wait: schedule[0] = 1 s. Second: AttemptFunction's next_wait_seconds (a Retry-After
    # longer than the schedule's 0) = 1 s.
    workflow.script(decision("retry", next_wait_seconds=1), decision("delivered"))
    started = time.monotonic()
    execution = workflow.start("dlv_1-retry", schedule=[1, 0])

    assert workflow.wait(execution)["status"] == "SUCCEEDED"
    assert time.monotonic() - started >= 1.9
    waits = [
        json.loads(e["stateEnteredEventDetails"]["input"])["wait_seconds"]
        for e in workflow.history(execution)
        if e["type"] == "WaitStateEntered"
    ]
    assert waits == [1, 1]
    assert actions(workflow.invocations(execution)) == [("attempt", 2), ("attempt", 3)]


def test_the_wait_before_each_attempt_follows_the_schedule_index(
    workflow: RetryWorkflow,
) -> None:
    # A crash whose recording fails too falls back to the schedule: the wait before attempt
    # n + 1 is schedule[n - 1].
    workflow.script(CRASH, CRASH, decision("delivered"))
    execution = workflow.start("dlv_1-retry", schedule=[0, 1])

    assert workflow.wait(execution)["status"] == "SUCCEEDED"
    waits = [
        json.loads(e["stateEnteredEventDetails"]["input"])["wait_seconds"]
        for e in workflow.history(execution)
        if e["type"] == "WaitStateEntered"
    ]
    assert waits == [0, 1]


def test_starting_the_same_execution_twice_is_harmless(workflow: RetryWorkflow) -> None:
    workflow.script(decision("delivered"))
    first = workflow.start("dlv_1-retry", schedule=[1])
    # While it runs, the same name and input return the same execution (STANDARD idempotency).
    assert workflow.start("dlv_1-retry", schedule=[1]) == first
    assert workflow.wait(first)["status"] == "SUCCEEDED"

    # Once it is closed, the name is taken: callers treat ExecutionAlreadyExists as "started".
    with pytest.raises(workflow.sfn.exceptions.ExecutionAlreadyExists):
        workflow.start("dlv_1-retry", schedule=[1])
    executions = workflow.sfn.list_executions(stateMachineArn=workflow.state_machine_arn)
    assert len(executions["executions"]) == 1
    assert actions(workflow.invocations(first)) == [("attempt", 2)]
