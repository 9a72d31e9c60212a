"""The two engines that run statemachine/retry.asl.json, behind one driver: moto's Step Functions
engine (what AWS stands in for in the tests) and hookline_dev.local.asl (the local stack's timer).

On moto, AttemptFunction is a "lambda-simple" function: every invocation returns the next result
queued at moto's lambda-simple response queue. lambda-simple always succeeds, except that moto
answers a payload over 6 MB with FunctionError "Unhandled" / errorType
"Function.ResponseSizeTooLarge" -- so a queued CRASH is how a test makes the function crash. The
local engine gets the same results through its invoker and raises the same error for CRASH, so
one script runs on both.
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import boto3
import requests

from hookline_dev.local.asl import StateMachine, TaskError, get_path
from hookline_dev.template import retry_state_machine_definition

REGION = "us-east-1"
#: mock_aws config that lets moto execute state machines with in-process Lambda functions.
MOTO_CONFIG: Any = {
    "stepfunctions": {"execute_state_machine": True},
    "lambda": {"use_docker": False},
}
LAMBDA_SIMPLE_RESPONSES = "http://motoapi.amazonaws.com/moto-api/static/lambda-simple/response"
CRASH = "x" * 6_000_001  # > 6 MB: moto reports a function error (see the module docstring)
CRASH_ERROR = "Function.ResponseSizeTooLarge"

#: A scripted task result: the workflow's next document, or CRASH.
Result = dict[str, Any] | str


def group_document(attempt: int = 1, wait_seconds: int = 0, done: bool = False) -> dict[str, Any]:
    """A retry group's workflow document (hookline.domain.policy.workflow_document)."""
    return {
        "community_id": "cmt_1",
        "webhook_id": "wh_1",
        "group": "wh_1-w1000",
        "since": "2026-12-02T00:00:00.000Z",
        "until": "2026-12-02T00:01:00.000Z",
        "attempt": attempt,
        "wait_seconds": wait_seconds,
        "done": done,
    }


def actions(payloads: list[dict[str, Any]]) -> list[tuple[str, int]]:
    return [(p["action"], p["attempt"]) for p in payloads]


def _zipped_stub() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", "def lambda_handler(event, context):\n    return event\n")
    return buffer.getvalue()


@dataclass(frozen=True)
class Run:
    """What an engine did with one execution."""

    status: str
    states: list[str]  # every state entered, in order
    payloads: list[dict[str, Any]]  # every AttemptFunction Payload, in order
    waits: list[float]  # the seconds of every Wait state, in order
    output: Any
    error: str | None = None


@dataclass
class MotoWorkflow:
    """The retry state machine created on moto (call inside an active mock_aws)."""

    sfn: Any
    state_machine_arn: str

    @classmethod
    def create(cls) -> MotoWorkflow:
        role_arn = boto3.client("iam", region_name=REGION).create_role(
            RoleName="hookline-retry-role", AssumeRolePolicyDocument="{}", Path="/"
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
        arn = sfn.create_state_machine(
            name="hookline-retry",
            definition=retry_state_machine_definition(function_arn),
            roleArn=role_arn,
            type="STANDARD",
        )["stateMachineArn"]
        return cls(sfn=sfn, state_machine_arn=arn)

    def script(self, *results: Result) -> None:
        """Queue what the next AttemptFunction invocations return, in order."""
        payloads = [r if isinstance(r, str) else json.dumps(r) for r in results]
        response = requests.post(
            LAMBDA_SIMPLE_RESPONSES, json={"results": payloads, "region": REGION}, timeout=5
        )
        assert response.status_code == 201

    def start(self, name: str, document: dict[str, Any]) -> str:
        return str(
            self.sfn.start_execution(
                stateMachineArn=self.state_machine_arn, name=name, input=json.dumps(document)
            )["executionArn"]
        )

    def execution_arn(self, name: str) -> str:
        return self.state_machine_arn.replace(":stateMachine:", ":execution:") + ":" + name

    def wait(
        self,
        execution_arn: str,
        timeout: float = 60.0,
        answer: Callable[[dict[str, Any]], Result] | None = None,
    ) -> dict[str, Any]:
        """Poll until the execution ends; returns describe_execution. With `answer`, queue
        answer(payload) for each Task payload as the state machine schedules it. `timeout`
        only guards against a hang: a loaded machine (a full parallel run) can take 20 s for
        a 50-member group's three rounds."""
        deadline = time.monotonic() + timeout
        answered = 0
        while True:
            described: dict[str, Any] = self.sfn.describe_execution(executionArn=execution_arn)
            if answer is not None:
                scheduled = self.invocations(execution_arn)
                for payload in scheduled[answered:]:
                    self.script(answer(payload))
                answered = len(scheduled)
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
        return [
            json.loads(e["taskScheduledEventDetails"]["parameters"])["Payload"]
            for e in self.history(execution_arn)
            if e["type"] == "TaskScheduled"
        ]

    def states(self, execution_arn: str) -> list[str]:
        return [
            e["stateEnteredEventDetails"]["name"]
            for e in self.history(execution_arn)
            if "stateEnteredEventDetails" in e
        ]

    def final_state(self, execution_arn: str) -> str:
        return self.states(execution_arn)[-1]

    def entered_inputs(self, execution_arn: str, event_type: str) -> list[dict[str, Any]]:
        """The input of every state entered with history event `event_type`."""
        return [
            json.loads(e["stateEnteredEventDetails"]["input"])
            for e in self.history(execution_arn)
            if e["type"] == event_type
        ]

    def waits(self, execution_arn: str) -> list[float]:
        definition = json.loads(
            self.sfn.describe_state_machine(stateMachineArn=self.state_machine_arn)["definition"]
        )
        waits = []
        for event in self.history(execution_arn):
            if event["type"] == "WaitStateEntered":
                details = event["stateEnteredEventDetails"]
                state = definition["States"][details["name"]]
                seconds = state.get("Seconds")
                if seconds is None:
                    seconds = get_path(json.loads(details["input"]), state["SecondsPath"])
                waits.append(float(seconds))
        return waits

    def run(self, name: str, document: dict[str, Any], results: Iterable[Result]) -> Run:
        self.script(*results)
        arn = self.start(name, document)
        described = self.wait(arn)
        output = json.loads(described["output"]) if described.get("output") else None
        return Run(
            described["status"],
            self.states(arn),
            self.invocations(arn),
            self.waits(arn),
            output,
            described.get("error"),
        )


@dataclass
class LocalWorkflow:
    """The same definition on hookline_dev.local.asl, answering tasks from a script."""

    definition: dict[str, Any] = field(
        default_factory=lambda: json.loads(
            retry_state_machine_definition("arn:aws:lambda:us-east-1:123456789012:function:a")
        )
    )

    def run(self, name: str, document: dict[str, Any], results: Iterable[Result]) -> Run:
        queued = list(results)
        payloads: list[dict[str, Any]] = []

        def invoke(function: str, payload: Any) -> Any:
            payloads.append(payload)
            result = queued.pop(0)
            if result == CRASH:
                raise TaskError(CRASH_ERROR, "the response is larger than 6 MB")
            return result

        machine = StateMachine(self.definition, invoke)
        execution = machine.start(name, document)
        waits = []
        # The local timer sleeps at each pause; a test need not.
        while (pause := machine.step(execution)) is not None:
            if execution.resume == "wait":  # a Wait state, not a task's Retry interval
                waits.append(pause.seconds)
        assert queued == [], "the script had results the workflow never asked for"
        return Run(
            execution.status, execution.history, payloads, waits, execution.output, execution.error
        )
