"""End to end: the real retry workflow (statemachine/retry.asl.json) on moto's Step Functions
engine, started by start_retries through StepFunctionsScheduler, over moto DynamoDB tables built
from template.yaml, with the real AttemptFunction handler making real HTTP attempts to loopback
receivers.

moto's "lambda-simple" AttemptFunction answers each invocation with the next result queued at its
response queue (tests/asl_engines.py). The driver reads every Task's payload
from the execution history as the state machine schedules it, runs the real handler on exactly
that payload and queues its answer. So that the invocation cannot outrun the driver, the test
swaps moto's result list for one whose emptiness check waits (briefly) for the next answer.
(tests/test_state_machine.py covers the control flow alone, with scripted results.)
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.awslambda_simple.models import lambda_simple_backends

from hookline import wiring
from hookline.adapters import dynamodb, http_attempt, stepfunctions
from hookline.adapters.dynamodb import DynamoTables
from hookline.adapters.stepfunctions import StepFunctionsScheduler, execution_name
from hookline.config import Settings
from hookline.domain import delivery_actions, retry
from hookline_dev.template import create_tables, table_environment
from tests.asl_engines import CRASH, MOTO_CONFIG, REGION, MotoWorkflow, Result, actions
from tests.conftest import RecordingMailer
from tests.receivers import Receiver
from tests.retry_fixtures import World, invoke_attempt

ACCOUNT = "123456789012"
ANSWER_TIMEOUT = 10.0


def _settings(table_env: dict[str, str], **changes: Any) -> Settings:
    by_env = {f.name.upper(): f.name for f in fields(Settings)}
    tables: dict[str, Any] = {
        by_env[name]: value for name, value in table_env.items() if name in by_env
    }
    return Settings(**tables, **changes)


@dataclass
class Stack(MotoWorkflow):
    context: Any = None
    ran: list[dict[str, Any]] = field(default_factory=list)  # payloads the driver ran

    def cycle_arn(self, delivery_id: str, attempt: int) -> str:
        return self.execution_arn(execution_name(delivery_id, attempt))

    def drive(
        self, execution_arn: str, *, crash_at: frozenset[int] = frozenset()
    ) -> dict[str, Any]:
        """Run the execution to its end, answering each Task with what the real handler returns
        for its payload; an attempt numbered in `crash_at` crashes instead (a function error).
        Returns describe_execution."""

        def answer(payload: dict[str, Any]) -> Result:
            if payload["action"] == "attempt" and payload["attempt"] in crash_at:
                return CRASH
            self.ran.append(payload)
            return invoke_attempt(payload, self.context)

        return self.wait(execution_arn, answer=answer)


class _AwaitedResults(list[str]):
    """moto's lambda-simple result queue, but an invocation that finds it empty waits up to
    ANSWER_TIMEOUT seconds for the driver to queue the answer instead of echoing its payload."""

    def __init__(self) -> None:
        super().__init__()
        self._changed = threading.Condition()

    def append(self, item: str) -> None:
        with self._changed:
            super().append(item)
            self._changed.notify_all()

    def __bool__(self) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: len(self) > 0, timeout=ANSWER_TIMEOUT)


@dataclass(frozen=True)
class Aws:
    sfn: Any
    state_machine_arn: str
    settings: Settings


@pytest.fixture(scope="module")
def aws() -> Iterator[Aws]:
    """One moto account per module: tables, AttemptFunction and the state machine. Tests keep
    apart by using their own community, webhooks and deliveries."""
    with mock_aws(config=MOTO_CONFIG):
        dynamodb.resource.cache_clear()
        stepfunctions._client.cache_clear()
        names = create_tables(boto3.client("dynamodb", region_name=REGION), "hookline-e2e")
        workflow = MotoWorkflow.create()
        arn = workflow.state_machine_arn
        settings = _settings(
            table_environment(names),
            retry_state_machine_arn=arn,
            retry_schedule=(0,),
            allow_private_targets=True,
            delivery_timeout_seconds=2.0,
        )
        try:
            yield Aws(sfn=workflow.sfn, state_machine_arn=arn, settings=settings)
        finally:
            dynamodb.resource.cache_clear()
            stepfunctions._client.cache_clear()


@pytest.fixture
def stack(aws: Aws, lambda_context: Any) -> Iterator[Stack]:
    wiring.configure(
        settings=aws.settings,
        tables=DynamoTables(aws.settings),
        scheduler=StepFunctionsScheduler(aws.state_machine_arn),
        mailer=RecordingMailer(),
        sender=http_attempt.post,
    )
    backend = lambda_simple_backends[ACCOUNT][REGION]
    backend.lambda_simple_results_queue = _AwaitedResults()
    yield Stack(sfn=aws.sfn, state_machine_arn=aws.state_machine_arn, context=lambda_context)
    # Every answer was consumed: nothing leaks into the next test.
    assert list(backend.lambda_simple_results_queue) == []


def test_success_on_the_second_attempt_ends_the_workflow(stack: Stack) -> None:
    world = World.create()
    with Receiver([(500,), (200,)]) as rx:
        webhook = world.webhook(rx.url_for("/hook"))
        delivery, outcome = world.first_attempt(webhook)
        retry.start_retries(world.ctx, delivery, webhook, outcome)
        assert world.delivery(delivery.id).state == "retrying"

        execution = stack.cycle_arn(delivery.id, 1)
        assert stack.drive(execution)["status"] == "SUCCEEDED"
        assert len(rx.requests) == 2

    started = json.loads(stack.sfn.describe_execution(executionArn=execution)["input"])
    assert started == {
        "delivery_id": delivery.id,
        "community_id": world.community.id,
        "webhook_id": webhook.id,
        "attempt": 1,
        "schedule": [0, 0, 0],
    }
    assert stack.invocations(execution) == stack.ran
    assert actions(stack.ran) == [("attempt", 2)]
    assert stack.final_state(execution) == "Delivered"
    stored = world.delivery(delivery.id)
    assert stored.state == "delivered" and stored.attempts == 2


def test_all_failing_gives_exactly_one_plus_retry_count_attempts_then_failed(
    stack: Stack,
) -> None:
    world = World.create()
    with Receiver((500,)) as rx:
        webhook = world.webhook(rx.url_for("/hook"), retry_count=2)
        delivery, outcome = world.first_attempt(webhook)
        retry.start_retries(world.ctx, delivery, webhook, outcome)

        execution = stack.cycle_arn(delivery.id, 1)
        assert stack.drive(execution)["status"] == "SUCCEEDED"
        assert stack.final_state(execution) == "GaveUp"
        sent = stack.invocations(execution)
        assert actions(sent) == [("attempt", 2), ("attempt", 3), ("give_up", 3)]
        assert sent == stack.ran  # MarkFailed's payload went through the real handler too
        time.sleep(0.2)
        assert len(rx.requests) == 3  # 1 + retry_count, and nothing more

    stored = world.delivery(delivery.id)
    assert stored.state == "failed"
    assert stored.next_attempt_at is None
    assert stored.last_error == "HTTP 500 Internal Server Error"
    log = world.ctx.deliveries.attempts(delivery.community_id, delivery.id)
    assert [(a.attempt, a.status_code) for a in log] == [(1, 500), (2, 500), (3, 500)]
    failed_event = world.ctx.events.get(world.community.id, f"evt_failed_{delivery.id}")
    assert failed_event.event == "delivery.failed" and failed_event.operational
    assert world.get_webhook(webhook.id).permanent_failures == 1


def test_a_crashed_attempt_is_caught_and_counts(stack: Stack) -> None:
    world = World.create()
    with Receiver([(500,), (200,)]) as rx:
        webhook = world.webhook(rx.url_for("/hook"), retry_count=2)
        delivery, outcome = world.first_attempt(webhook)
        retry.start_retries(world.ctx, delivery, webhook, outcome)

        execution = stack.cycle_arn(delivery.id, 1)
        assert stack.drive(execution, crash_at=frozenset({2}))["status"] == "SUCCEEDED"
        sent = stack.invocations(execution)
        assert actions(sent) == [("attempt", 2), ("record_crash", 2), ("attempt", 3)]
        assert sent[1:] == stack.ran  # the crash itself was moto's, the rest the real handler's
        assert stack.final_state(execution) == "Delivered"
        assert len(rx.requests) == 2  # the crashed attempt sent nothing

    log = world.ctx.deliveries.attempts(delivery.community_id, delivery.id)
    assert [(a.attempt, a.success) for a in log] == [(1, False), (2, False), (3, True)]
    assert log[1].error == (
        "attempt crashed: Function.ResponseSizeTooLarge: Response payload size exceeded "
        "maximum allowed payload size (6291556 bytes)."
    )
    stored = world.delivery(delivery.id)
    assert stored.state == "delivered" and stored.attempts == 3


def test_starting_the_same_cycle_again_is_harmless(stack: Stack) -> None:
    world = World.create()
    with Receiver([(500,), (200,)]) as rx:
        webhook = world.webhook(rx.url_for("/hook"))
        delivery, outcome = world.first_attempt(webhook)
        retry.start_retries(world.ctx, delivery, webhook, outcome)
        retry.start_retries(world.ctx, delivery, webhook, outcome)  # a redelivered stream record

        execution = stack.cycle_arn(delivery.id, 1)
        assert stack.drive(execution)["status"] == "SUCCEEDED"
        # Once the execution has ended its name stays taken: ExecutionAlreadyExists = started.
        wiring.services().scheduler.schedule(
            delivery_id=delivery.id,
            community_id=world.community.id,
            webhook_id=webhook.id,
            attempt=1,
            waits=[0, 0, 0],
        )
        time.sleep(0.2)
        assert len(rx.requests) == 2

    listed = stack.sfn.list_executions(stateMachineArn=stack.state_machine_arn)["executions"]
    assert [e["name"] for e in listed].count(execution_name(delivery.id, 1)) == 1
    assert world.delivery(delivery.id).state == "delivered"


def test_a_failing_resend_starts_a_cycle_numbered_after_its_attempt(stack: Stack) -> None:
    world = World.create()
    with Receiver([(500,), (500,), (200,)]) as rx:
        webhook = world.webhook(rx.url_for("/hook"), retry_count=1)
        delivery, _ = world.first_attempt(webhook)
        retry.give_up(world.ctx, delivery.community_id, delivery.id)

        answer = delivery_actions.resend(world.ctx, world.community.id, webhook.id, delivery.id)
        assert answer["success"] is False

        execution = stack.cycle_arn(delivery.id, 2)
        assert stack.drive(execution)["status"] == "SUCCEEDED"
        assert len(rx.requests) == 3

    started = json.loads(stack.sfn.describe_execution(executionArn=execution)["input"])
    assert started["attempt"] == 2 and started["schedule"] == [0, 0]
    sent = stack.invocations(execution)
    assert sent == stack.ran
    assert [(p["attempt"], p["max_attempts"]) for p in sent] == [(3, 3)]
    log = world.ctx.deliveries.attempts(delivery.community_id, delivery.id)
    assert [(a.attempt, a.success) for a in log] == [(1, False), (2, False), (3, True)]
    assert world.delivery(delivery.id).state == "delivered"


def test_a_start_that_fails_raises_and_leaves_the_delivery_pending(stack: Stack) -> None:
    world = World.create()
    missing = stack.state_machine_arn.replace("hookline-retry", "not-deployed")
    wiring.configure(scheduler=StepFunctionsScheduler(missing))
    world.refresh()
    with Receiver((500,)) as rx:
        webhook = world.webhook(rx.url_for("/hook"))
        delivery, outcome = world.first_attempt(webhook)
        with pytest.raises(Exception, match=r"StateMachineDoesNotExist|does not exist"):
            retry.start_retries(world.ctx, delivery, webhook, outcome)
    stored = world.delivery(delivery.id)
    assert stored.state == "pending"  # the stream's redelivery makes its next attempt
    assert "could not be scheduled" in (stored.reason or "")
