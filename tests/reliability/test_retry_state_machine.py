"""End to end: the real retry workflow (statemachine/retry.asl.json) on moto's Step Functions
engine, started by the delivery consumer's failed first attempts (one execution per retry
group) through StepFunctionsScheduler, over moto DynamoDB tables built
from template.yaml, with the real AttemptFunction handler making real HTTP attempts to loopback
receivers.

moto's "lambda-simple" AttemptFunction answers each invocation with the next result queued at its
response queue (tests/asl_engines.py). The driver reads every Task's payload
from the execution history as the state machine schedules it, runs the real handler on exactly
that payload and queues its answer. So that the invocation cannot outrun the driver, the test
swaps moto's result list for one whose emptiness check waits (briefly) for the next answer.
(tests/reliability/test_state_machine.py covers the control flow alone, with scripted results.)
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from datetime import timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.awslambda_simple.models import lambda_simple_backends

from hookline import clock, wiring
from hookline.adapters import dynamodb, http_attempt, stepfunctions
from hookline.adapters.dynamodb import DynamoTables
from hookline.adapters.stepfunctions import StepFunctionsScheduler
from hookline.config import Settings
from hookline.domain import delivery_actions, dispatch, policy
from hookline.domain.delivery import new_delivery
from hookline.domain.models import Delivery, Webhook
from hookline_dev.template import create_tables, table_environment
from tests.asl_engines import CRASH, MOTO_CONFIG, REGION, MotoWorkflow, Result, actions
from tests.conftest import RecordingMailer
from tests.receivers import Receiver
from tests.retry_fixtures import World, invoke_attempt

ACCOUNT = "123456789012"
ANSWER_TIMEOUT = 60.0  # a hang guard: a loaded full run can take 10 s to answer a round
#: The retry group window of these tests (seconds): each test starts its first attempts at the
#: beginning of a window, so the group's first wait (to the window's end) stays short.
WINDOW = 5


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

    def group_arn(self, delivery: Delivery) -> str:
        assert delivery.retry_group, delivery
        return self.execution_arn(delivery.retry_group)

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
        dynamodb.client.cache_clear()
        stepfunctions._client.cache_clear()
        names = create_tables(boto3.client("dynamodb", region_name=REGION), "hookline-e2e")
        workflow = MotoWorkflow.create()
        arn = workflow.state_machine_arn
        settings = _settings(
            table_environment(names),
            retry_state_machine_arn=arn,
            retry_schedule=(0,),
            retry_group_window_seconds=WINDOW,
            allow_private_targets=True,
            delivery_timeout_seconds=2.0,
        )
        try:
            yield Aws(sfn=workflow.sfn, state_machine_arn=arn, settings=settings)
        finally:
            dynamodb.client.cache_clear()
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


def fresh_window() -> None:
    """Sleep until a new group window has just begun."""
    time.sleep(WINDOW - time.time() % WINDOW + 0.02)


def first_attempts(world: World, webhook: Webhook, count: int = 1) -> list[Delivery]:
    """What the delivery consumer does with `count` orders: their first attempts, at once."""
    orders = [dispatch.DeliveryOrder(webhook.id, world.event()) for _ in range(count)]
    results = dispatch.deliver_orders(world.ctx, orders)
    assert all(not isinstance(r, BaseException) for r in results), results
    return [world.delivery(o.delivery_id) for o in orders]


def test_success_on_the_second_attempt_ends_the_workflow(stack: Stack) -> None:
    world = World.create()
    with Receiver([(500,), (200,)]) as rx:
        webhook = world.webhook(rx.url_for("/hook"))
        fresh_window()
        (delivery,) = first_attempts(world, webhook)
        assert delivery.state == "retrying" and delivery.retry_group
        assert delivery.max_attempts == 4

        execution = stack.group_arn(delivery)
        assert stack.drive(execution)["status"] == "SUCCEEDED"
        assert len(rx.requests) == 2

    started = json.loads(stack.sfn.describe_execution(executionArn=execution)["input"])
    assert set(started) == {
        "community_id",
        "webhook_id",
        "group",
        "since",
        "until",
        "attempt",
        "wait_seconds",
        "done",
    }
    assert (started["group"], started["attempt"], started["done"]) == (
        delivery.retry_group,
        1,
        False,
    )
    assert started["since"] <= delivery.created_at < started["until"]
    # To the window's end, then the first wait: at least the join margin (the schedule's is 0).
    assert 0 <= started["wait_seconds"] <= math.ceil(WINDOW + policy.join_margin(WINDOW))
    assert stack.invocations(execution) == stack.ran
    assert actions(stack.ran) == [("attempt", 1)]
    stored = world.delivery(delivery.id)
    assert stored.state == "delivered" and stored.attempts == 2


def test_fifty_deliveries_to_a_dead_endpoint_share_one_execution(stack: Stack) -> None:
    world = World.create()
    with Receiver((500,)) as rx:
        webhook = world.webhook(rx.url_for("/hook"), retry_count=3)
        fresh_window()
        members = first_attempts(world, webhook, 50)
        groups = {m.retry_group for m in members}
        assert len(groups) == 1 and None not in groups

        execution = stack.group_arn(members[0])
        assert stack.drive(execution)["status"] == "SUCCEEDED"
        time.sleep(0.2)
        assert len(rx.requests) == 50 * 4  # 1 + retry_count each, nothing more

    listed = stack.sfn.list_executions(stateMachineArn=stack.state_machine_arn)["executions"]
    assert [e["name"] for e in listed].count(members[0].retry_group) == 1
    assert actions(stack.ran) == [("attempt", 1), ("attempt", 2), ("attempt", 3)]
    for member in members:
        stored = world.delivery(member.id)
        assert (stored.state, stored.attempts) == ("failed", 4)
        log = world.ctx.deliveries.attempts(member.community_id, member.id)
        assert [a.attempt for a in log] == [1, 2, 3, 4]
        failed = world.ctx.events.get(world.community.id, f"evt_failed_{member.id}")
        assert failed.event == "delivery.failed"
    delivery_ids = {r.headers["webhook-id"] for r in rx.requests}
    assert delivery_ids == {m.id for m in members}  # the same webhook-id on every attempt


def test_a_crashed_round_is_caught_and_counts(stack: Stack) -> None:
    world = World.create()
    with Receiver([(500,), (500,), (200,), (200,)]) as rx:
        webhook = world.webhook(rx.url_for("/hook"), retry_count=2)
        fresh_window()
        members = first_attempts(world, webhook, 2)

        execution = stack.group_arn(members[0])
        assert stack.drive(execution, crash_at=frozenset({1}))["status"] == "SUCCEEDED"
        sent = stack.invocations(execution)
        assert actions(sent) == [("attempt", 1), ("record_crash", 1), ("attempt", 2)]
        assert sent[1:] == stack.ran  # the crash itself was moto's, the rest the real handler's
        assert len(rx.requests) == 4  # the crashed round sent nothing

    for member in members:
        log = world.ctx.deliveries.attempts(member.community_id, member.id)
        assert [(a.attempt, a.success) for a in log] == [(1, False), (2, False), (3, True)]
        assert (log[1].error or "").startswith(
            "attempt crashed: Function.ResponseSizeTooLarge: Response payload size exceeded"
        )
        stored = world.delivery(member.id)
        assert stored.state == "delivered" and stored.attempts == 3


def test_a_redelivered_order_rejoins_its_group_without_a_second_execution(stack: Stack) -> None:
    world = World.create()
    with Receiver([(500,), (200,)]) as rx:
        webhook = world.webhook(rx.url_for("/hook"))
        fresh_window()
        (delivery,) = first_attempts(world, webhook)
        event = world.ctx.events.get(world.community.id, delivery.event_id)
        # The SQS order comes back (the invocation died after the write): the start runs again.
        again = dispatch.deliver_order(world.ctx, dispatch.DeliveryOrder(webhook.id, event))
        assert again == "resumed"

        execution = stack.group_arn(delivery)
        assert stack.drive(execution)["status"] == "SUCCEEDED"
        assert len(rx.requests) == 2

    listed = stack.sfn.list_executions(stateMachineArn=stack.state_machine_arn)["executions"]
    assert [e["name"] for e in listed].count(delivery.retry_group) == 1
    assert world.delivery(delivery.id).state == "delivered"


def test_a_failing_resend_starts_a_group_of_its_own_counted_after_its_attempt(
    stack: Stack,
) -> None:
    world = World.create()
    with Receiver([(500,), (500,), (200,)]) as rx:
        webhook = world.webhook(rx.url_for("/hook"), retry_count=0)
        (delivery,) = first_attempts(world, webhook)
        assert world.delivery(delivery.id).state == "failed"
        world.ctx.webhooks.update(world.community.id, webhook.id, {"retry_count": 1})

        answer = delivery_actions.resend(world.ctx, world.community.id, webhook.id, delivery.id)
        assert answer["success"] is False
        resent = world.delivery(delivery.id)
        assert (resent.state, resent.max_attempts) == ("retrying", 3)

        execution = stack.group_arn(resent)
        assert stack.drive(execution)["status"] == "SUCCEEDED"
        assert len(rx.requests) == 3

    log = world.ctx.deliveries.attempts(delivery.community_id, delivery.id)
    assert [(a.attempt, a.success) for a in log] == [(1, False), (2, False), (3, True)]
    assert world.delivery(delivery.id).state == "delivered"


def test_a_start_that_fails_raises_and_the_redelivered_order_heals_it(stack: Stack) -> None:
    world = World.create()
    missing = stack.state_machine_arn.replace("hookline-retry", "not-deployed")
    wiring.configure(scheduler=StepFunctionsScheduler(missing))
    world.refresh()
    with Receiver([(500,), (200,)]) as rx:
        webhook = world.webhook(rx.url_for("/hook"))
        fresh_window()
        order = dispatch.DeliveryOrder(webhook.id, world.event())
        with pytest.raises(Exception, match=r"StateMachineDoesNotExist|does not exist"):
            dispatch.deliver_order(world.ctx, order)
        stored = world.delivery(order.delivery_id)
        assert stored.state == "retrying"  # written before the start: nothing is lost

        wiring.configure(scheduler=StepFunctionsScheduler(stack.state_machine_arn))
        world.refresh()
        assert dispatch.deliver_order(world.ctx, order) == "resumed"
        assert stack.drive(stack.group_arn(stored))["status"] == "SUCCEEDED"
        assert len(rx.requests) == 2
    assert world.delivery(order.delivery_id).state == "delivered"


def test_a_member_written_after_its_window_group_ended_gets_a_later_generation(
    stack: Stack,
) -> None:
    """A replayed delivery (written `pending` in the window, its order delayed) whose first
    attempt fails after its window's group has run its last round: it must not join that ended
    execution (it would stay `retrying` for ever) but a later generation of the window."""
    world = World.create()
    with Receiver([(500,), (200,), (500,), (500,)]) as rx:
        webhook = world.webhook(rx.url_for("/hook"), retry_count=1)
        fresh_window()
        (early,) = first_attempts(world, webhook)
        late_event = world.event()
        late = new_delivery(late_event, webhook).model_copy(update={"replayed": True})
        assert world.ctx.deliveries.create(late, expires_at=world.ctx.expires_at())
        assert policy.window(early.created_at, WINDOW, 1.0) == policy.window(
            late.created_at, WINDOW, 1.0
        )

        first = stack.group_arn(early)
        assert stack.drive(first)["status"] == "SUCCEEDED"  # early: 500, then 200
        order = dispatch.DeliveryOrder(webhook.id, late_event, replayed=True)
        assert dispatch.deliver_order(world.ctx, order) == "failed"

        joined = world.delivery(late.id)
        assert joined.state == "retrying" and joined.retry_group != early.retry_group
        assert policy.generation_of(joined.retry_group) == 1
        # Its first retry is the schedule's first wait (here the join margin) after its write.
        first_attempt = world.ctx.deliveries.attempt(late.community_id, late.id, 1)
        assert first_attempt is not None
        assert clock.parse_iso(joined.next_attempt_at or "") >= clock.parse_iso(
            first_attempt.created_at
        ) + timedelta(seconds=policy.join_margin(WINDOW))
        assert stack.drive(stack.group_arn(joined))["status"] == "SUCCEEDED"
        assert len(rx.requests) == 4

    stored = world.delivery(late.id)
    assert (stored.state, stored.attempts) == ("failed", 2)  # 1 + retry_count, then visibly
    failed = world.ctx.events.get(world.community.id, f"evt_failed_{late.id}")
    assert failed.event == "delivery.failed"
    assert world.delivery(early.id).state == "delivered"
