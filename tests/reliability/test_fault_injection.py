"""Fault injection across the delivery pipeline: receivers that are down, hang or trickle; a
dispatcher dying half-way through a batch; storage refusing writes; StartExecution failing; an
attempt Lambda timing out inside the retry state machine.

The pipeline is tests/reliability_harness.py: the real DispatchFunction and AttemptFunction
handlers, stream records in the Lambda shape, the real retry ASL, real HTTP to loopback
receivers. DynamoDB throttling is injected into botocore itself, over moto.
"""

from __future__ import annotations

import itertools
import json
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.retries.standard
import pytest
from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders
from moto import mock_aws

from hookline import clock
from hookline.adapters import dynamodb
from hookline.adapters.dynamodb import DynamoTables
from hookline.config import Settings
from hookline.domain import policy
from hookline.domain.delivery import delivery_id_for, new_delivery
from hookline.domain.dispatch import DeliveryOrder
from hookline.ports import Sender
from hookline_dev.local.scheduler import LocalRetryScheduler
from hookline_dev.memory import MemoryTables
from hookline_dev.template import create_tables, table_environment
from tests.api_events import load
from tests.apigw import call
from tests.delivery_helpers import closed_port
from tests.receivers import Receiver, Reply
from tests.reliability_harness import (
    TIME_SCALE,
    FlakyTable,
    FlakyTables,
    Pipeline,
    attempt_of,
    by_attempt,
)

TIMEOUT = 1.0  # short enough to test timeouts, long enough for a loaded CI machine
SETTINGS = Settings(
    allow_private_targets=True,
    delivery_timeout_seconds=TIMEOUT,
    retry_schedule=(300, 1800, 7200),
)


@pytest.fixture
def pipeline() -> Pipeline:
    return Pipeline.create(SETTINGS)


def _log(pipeline: Pipeline, delivery_id: str) -> list[tuple[int, bool, int | None]]:
    return [(a.attempt, a.success, a.status_code) for a in pipeline.attempts(delivery_id)]


def _refused_for(attempts: int, port: int) -> Any:
    """Wraps the sender: the first `attempts` attempts of every delivery go to a loopback port
    where nothing listens (a real ECONNREFUSED), as if the receiver were down."""

    def wrap(send: Sender) -> Sender:
        def sender(url: str, body: bytes, headers: Any, **kwargs: Any) -> Any:
            if int(headers["X-Hookline-Attempt"]) <= attempts:
                url = f"http://127.0.0.1:{port}/down"
            return send(url, body, headers, **kwargs)

        return sender  # type: ignore[return-value]

    return wrap


# -- receivers that fail ------------------------------------------------------------------------


@pytest.mark.parametrize("down_for", [1, 3])
def test_a_receiver_down_for_the_first_attempts_gets_the_event_once_it_is_back(
    down_for: int,
) -> None:
    pipeline = Pipeline.create(SETTINGS, wrap_sender=_refused_for(down_for, closed_port()))
    with Receiver() as rx:
        hook = pipeline.webhook(rx.url_for("/hook"), retry_count=3)
        event, _ = pipeline.publish()
        pipeline.stream.deliver([event])
        pipeline.retries.run()
        requests = rx.requests

    delivery_id = delivery_id_for(event, hook.id)
    delivery = pipeline.delivery(delivery_id)
    assert delivery is not None and delivery.state == "delivered"
    log = pipeline.attempts(delivery_id)
    assert [a.attempt for a in log] == list(range(1, down_for + 2))
    assert all(a.error and a.error.startswith("connection refused") for a in log[:-1])
    assert log[-1].success and log[-1].status_code == 200
    assert [attempt_of(r) for r in requests] == [(delivery_id, down_for + 1)]
    # The attempts followed the schedule, never earlier, and the loop waited once per retry. The
    # first retry counts from the end of the retry group's 60 s window (so it is up to 60 s
    # later); a first attempt written too late for its window's group (the pipeline's clock
    # runs 2,000 times fast, a loaded machine does not) joins a later generation, whose first
    # retry counts from the end of its span of writes (the first wait after the write).
    times = [clock.parse_iso(a.created_at) for a in log]
    gaps = [(b - a).total_seconds() / TIME_SCALE for a, b in itertools.pairwise(times)]
    generation = policy.generation_of(delivery.retry_group)
    assert generation is not None
    late = 0 if generation == 0 else 300 - policy.JOIN_MARGIN_SECONDS + 60 * generation
    schedule = [300, 1800, 7200][:down_for]
    # Above the schedule: the window (60 s), and half a second of the machine's own delays
    # (scaled: 1,000 workflow seconds at this time scale).
    slack = 0.5 / TIME_SCALE
    allowed = [due + 60 + slack + (late if n == 0 else 0) for n, due in enumerate(schedule)]
    assert all(
        due - 2 <= gap <= most for gap, due, most in zip(gaps, schedule, allowed, strict=True)
    )
    assert len(pipeline.retries.waits) == down_for


def test_a_receiver_down_for_longer_than_the_retries_fails_visibly() -> None:
    pipeline = Pipeline.create(SETTINGS, wrap_sender=_refused_for(99, closed_port()))
    hook = pipeline.webhook("http://127.0.0.1:9/never", retry_count=2)
    event, _ = pipeline.publish()
    pipeline.stream.deliver([event])
    pipeline.retries.run()

    delivery_id = delivery_id_for(event, hook.id)
    delivery = pipeline.delivery(delivery_id)
    assert delivery is not None and delivery.state == "failed"
    assert delivery.next_attempt_at is None
    assert (delivery.last_error or "").startswith("connection refused")
    assert [a.attempt for a in pipeline.attempts(delivery_id)] == [1, 2, 3]
    failed = pipeline.ctx.events.get(pipeline.community.id, f"evt_failed_{delivery_id}")
    assert failed.event == "delivery.failed" and failed.data["attempts"] == 3


def test_a_hanging_receiver_times_out_without_holding_up_the_others(pipeline: Pipeline) -> None:
    with Receiver(Reply(200, delay=5.0)) as hanging, Receiver() as fast:
        slow_hook = pipeline.webhook(hanging.url_for("/slow"), retry_count=1)
        fast_hook = pipeline.webhook(fast.url_for("/fast"), retry_count=1)
        event, _ = pipeline.publish()
        started = time.time()
        pipeline.stream.deliver([event])
        took = time.time() - started
        [fast_request] = fast.wait_for(1)
        assert fast_request.received_at - started < TIMEOUT
        assert took < TIMEOUT + 1.0  # the dispatcher waited for the timeout, not the receiver

        slow_id = delivery_id_for(event, slow_hook.id)
        [first] = pipeline.attempts(slow_id)
        assert first.status_code is None and first.error == f"timeout after {TIMEOUT:g} s"
        assert first.response_time_ms < (TIMEOUT + 0.5) * 1000
        slow_delivery = pipeline.delivery(slow_id)
        assert slow_delivery is not None and slow_delivery.state == "retrying"

        hanging.respond((200,))
        pipeline.retries.run()

    assert _log(pipeline, slow_id) == [(1, False, None), (2, True, 200)]
    assert _log(pipeline, delivery_id_for(event, fast_hook.id)) == [(1, True, 200)]


def test_a_receiver_trickling_its_answer_is_cut_at_the_deadline(pipeline: Pipeline) -> None:
    with Receiver(Reply(200, body=b"x" * 100, trickle=0.2, trickle_headers=True)) as rx:
        hook = pipeline.webhook(rx.url_for("/trickle"), retry_count=0)
        event, _ = pipeline.publish()
        started = time.monotonic()
        pipeline.stream.deliver([event])
        assert time.monotonic() - started < TIMEOUT + 1.0

    delivery_id = delivery_id_for(event, hook.id)
    [attempt] = pipeline.attempts(delivery_id)
    assert not attempt.success and attempt.error == f"timeout after {TIMEOUT:g} s"
    delivery = pipeline.delivery(delivery_id)
    assert delivery is not None and delivery.state == "failed"


# -- the dispatcher dying or failing half-way -------------------------------------------------


def test_a_consumer_dying_half_way_through_a_batch_delivers_nothing_twice(
    pipeline: Pipeline,
) -> None:
    with Receiver() as rx:
        hook = pipeline.webhook(rx.url_for("/hook"))
        events = [pipeline.publish(post_id=i)[0] for i in range(6)]
        doomed = delivery_id_for(events[3], hook.id)
        pipeline.faults.crash_before_send.add((doomed, 1))

        pipeline.stream.deliver(events)
        pipeline.retries.run()
        requests = rx.requests

    assert pipeline.queue.crashes == 1  # one invocation died; its whole batch came back
    received = Counter(r.header("webhook-id") for r in requests)
    assert received == Counter({delivery_id_for(e, hook.id): 1 for e in events})
    for event in events:
        assert _log(pipeline, delivery_id_for(event, hook.id)) == [(1, True, 200)]
    assert pipeline.retries.executions == {}


def test_the_partial_batch_response_names_exactly_the_unfinished_messages() -> None:
    memory = MemoryTables()
    refused: set[str] = set()

    def fails(operation: str, pk: str, sk: str) -> bool:
        # Recording the first attempt of two of the deliveries is refused, once each.
        if operation == "put" and sk in refused:
            refused.discard(sk)
            return True
        return False

    flaky = FlakyTable(memory.deliveries, fails)
    pipeline = Pipeline.create(SETTINGS, tables=FlakyTables(memory, flaky))
    with Receiver() as rx:
        hook = pipeline.webhook(rx.url_for("/hook"))
        events = [pipeline.publish(post_id=i)[0] for i in range(6)]
        refused.update(f"D#{delivery_id_for(events[i], hook.id)}" for i in (1, 4))
        assert pipeline.stream.invoke(pipeline.stream.records(events)) == {"batchItemFailures": []}
        records = pipeline.queue.take()

        first = pipeline.queue.invoke(records)
        assert first == {
            "batchItemFailures": [{"itemIdentifier": records[i]["messageId"]} for i in (1, 4)]
        }
        assert len(rx.wait_for(6)) == 6  # all six were sent; two were not recorded

        # SQS hands over only the failed messages again: at-least-once, with the same webhook-id.
        second = pipeline.queue.invoke([records[1], records[4]])
        assert second == {"batchItemFailures": []}
        requests = rx.wait_for(8)
        time.sleep(0.1)

    assert len(flaky.refused) == 2
    ids = [delivery_id_for(e, hook.id) for e in events]
    assert Counter(r.header("webhook-id") for r in rx.requests) == Counter(
        {d: 2 if i in (1, 4) else 1 for i, d in enumerate(ids)}
    )
    assert len(requests) == 8
    for delivery_id in ids:
        assert _log(pipeline, delivery_id) == [(1, True, 200)]


def test_a_crash_after_the_post_resends_with_the_same_webhook_id(pipeline: Pipeline) -> None:
    """The one window at-least-once leaves open: the POST went out and the invocation died
    before recording it. The event is sent again, and receivers deduplicate on webhook-id."""
    with Receiver() as rx:
        hook = pipeline.webhook(rx.url_for("/hook"))
        event, _ = pipeline.publish()
        delivery_id = delivery_id_for(event, hook.id)
        pipeline.faults.crash_after_send.add((delivery_id, 1))
        pipeline.stream.deliver([event])
        pipeline.retries.run()
        first, second = rx.wait_for(2)

    assert first.header("webhook-id") == second.header("webhook-id") == delivery_id
    assert first.body == second.body
    assert json.loads(second.body)["id"] == event.id
    assert _log(pipeline, delivery_id) == [(1, True, 200)]


# -- the retry state machine ------------------------------------------------------------------


def test_an_attempt_lambda_timing_out_is_caught_counted_and_retried(pipeline: Pipeline) -> None:
    with Receiver(by_attempt({1: (500,)})) as rx:
        hook = pipeline.webhook(rx.url_for("/hook"), retry_count=3)
        event, _ = pipeline.publish()
        delivery_id = delivery_id_for(event, hook.id)
        pipeline.faults.crash_before_send.add((delivery_id, 2))
        pipeline.stream.deliver([event])
        pipeline.retries.run()
        requests = rx.requests

    log = pipeline.attempts(delivery_id)
    assert [(a.attempt, a.success) for a in log] == [(1, False), (2, False), (3, True)]
    assert (log[1].error or "").startswith("attempt crashed: Sandbox.Timedout")
    assert [attempt_of(r)[1] for r in requests] == [1, 3]
    actions = [(p["action"], p["attempt"]) for p in pipeline.retries.invocations]
    assert actions == [("attempt", 1), ("record_crash", 1), ("attempt", 2)]
    delivery = pipeline.delivery(delivery_id)
    assert delivery is not None and delivery.state == "delivered" and delivery.attempts == 3


def test_an_attempt_timing_out_after_its_post_is_counted_and_the_resend_carries_the_same_id(
    pipeline: Pipeline,
) -> None:
    with Receiver(by_attempt({1: (500,)})) as rx:
        hook = pipeline.webhook(rx.url_for("/hook"), retry_count=3)
        event, _ = pipeline.publish()
        delivery_id = delivery_id_for(event, hook.id)
        pipeline.faults.crash_after_send.add((delivery_id, 2))
        pipeline.stream.deliver([event])
        pipeline.retries.run()
        requests = rx.requests

    assert [attempt_of(r) for r in requests] == [(delivery_id, n) for n in (1, 2, 3)]
    assert {r.header("webhook-id") for r in requests} == {delivery_id}
    log = pipeline.attempts(delivery_id)
    assert [(a.attempt, a.success) for a in log] == [(1, False), (2, False), (3, True)]


@pytest.mark.parametrize("error", ["Lambda.ServiceException", "Lambda.Unknown"])
def test_a_lost_answer_from_the_attempt_lambda_sends_nothing_twice(
    pipeline: Pipeline, error: str
) -> None:
    with Receiver(by_attempt({1: (500,), 2: (500,)})) as rx:
        hook = pipeline.webhook(rx.url_for("/hook"), retry_count=3)
        event, _ = pipeline.publish()
        delivery_id = delivery_id_for(event, hook.id)
        pipeline.stream.deliver([event])
        group = (pipeline.delivery(delivery_id) or pytest.fail("no delivery")).retry_group
        pipeline.faults.lost_answers[(str(group), 2)] = error
        pipeline.faults.lost_answers[(str(group), 3)] = error
        pipeline.retries.run()
        requests = rx.requests

    assert [attempt_of(r)[1] for r in requests] == [1, 2, 3]
    assert _log(pipeline, delivery_id) == [(1, False, 500), (2, False, 500), (3, True, 200)]
    delivery = pipeline.delivery(delivery_id)
    assert delivery is not None and delivery.state == "delivered"


# -- StartExecution failing -------------------------------------------------------------------


def test_a_failed_start_execution_goes_back_to_the_queue_and_is_delivered(
    pipeline: Pipeline,
) -> None:
    with Receiver(by_attempt({1: (500,)})) as flaky, Receiver() as healthy:
        hook = pipeline.webhook(flaky.url_for("/hook"), events=["post.*"], retry_count=3)
        pipeline.webhook(healthy.url_for("/hook"), events=["member.*"])
        event, _ = pipeline.publish("post.created")
        other, _ = pipeline.publish("member.joined")
        delivery_id = delivery_id_for(event, hook.id)
        pipeline.faults.failing_starts = 1
        pipeline.stream.invoke(pipeline.stream.records([event, other]))
        records = pipeline.queue.take()

        answer = pipeline.queue.invoke(records)
        failed = records[0]["messageId"]
        assert answer == {"batchItemFailures": [{"itemIdentifier": failed}]}
        assert pipeline.retries.start_failures == 1

        pipeline.queue.deliver_records(records[:1])
        pipeline.retries.run()
        requests = flaky.requests
        assert len(healthy.requests) == 1

    delivery = pipeline.delivery(delivery_id)
    assert delivery is not None and delivery.state == "delivered"
    assert [attempt_of(r)[1] for r in requests] == list(range(1, delivery.attempts + 1))


def test_a_failed_start_execution_still_ends_after_one_plus_retry_count_attempts(
    pipeline: Pipeline,
) -> None:
    with Receiver((500,)) as rx:
        hook = pipeline.webhook(rx.url_for("/hook"), retry_count=2)
        event, _ = pipeline.publish()
        pipeline.faults.failing_starts = 1
        pipeline.stream.deliver([event])
        pipeline.retries.run()
        requests = rx.requests

    delivery_id = delivery_id_for(event, hook.id)
    delivery = pipeline.delivery(delivery_id)
    assert delivery is not None and delivery.state == "failed"
    assert [a.attempt for a in pipeline.attempts(delivery_id)] == [1, 2, 3]
    assert len(requests) == 3


# -- a member written after its window's group ended ----------------------------------------


@pytest.mark.parametrize("failing_starts", [0, 1])
def test_an_order_delayed_past_its_window_groups_last_round_still_gets_its_retries(
    pipeline: Pipeline, failing_starts: int
) -> None:
    """A replayed delivery (written `pending`, created in the same window as an early member)
    whose order comes after the window's group ran its last round and ended: its failed first
    attempt must start a group that runs (a later generation), also when that start fails
    once and the order comes back (the replayed order rejoins)."""
    with Receiver(by_attempt({}, default=(500,))) as rx:
        hook = pipeline.webhook(rx.url_for("/hook"), retry_count=2)
        early_event, _ = pipeline.publish()
        pipeline.stream.deliver([early_event])
        early = pipeline.delivery(delivery_id_for(early_event, hook.id))
        assert early is not None and early.state == "retrying"
        late_event, _ = pipeline.publish()
        late = new_delivery(late_event, hook, now=clock.parse_iso(early.created_at))
        assert pipeline.ctx.deliveries.create(
            late.model_copy(update={"replayed": True}), expires_at=pipeline.ctx.expires_at()
        )
        pipeline.retries.run()  # the window's group: every round, then its end
        assert [e.status for e in pipeline.retries.executions.values()] == ["SUCCEEDED"]

        pipeline.faults.failing_starts = failing_starts
        pipeline.queue.send([DeliveryOrder(hook.id, late_event, replayed=True).to_message()])
        pipeline.queue.drain()
        assert pipeline.retries.start_failures == failing_starts
        joined = pipeline.delivery(late.id)
        assert joined is not None and joined.state == "retrying"
        assert joined.retry_group != early.retry_group
        pipeline.retries.run()
        requests = rx.requests

    for delivery_id in (early.id, late.id):
        assert _log(pipeline, delivery_id) == [(n, False, 500) for n in (1, 2, 3)]
        delivery = pipeline.delivery(delivery_id)
        assert delivery is not None and delivery.state == "failed"
        failed = pipeline.ctx.events.get(pipeline.community.id, f"evt_failed_{delivery_id}")
        assert failed.event == "delivery.failed" and failed.data["attempts"] == 3
    assert Counter(attempt_of(r) for r in requests) == {
        (d, n): 1 for d in (early.id, late.id) for n in (1, 2, 3)
    }
    assert all(e.status == "SUCCEEDED" for e in pipeline.retries.executions.values())


def test_the_local_retry_timer_runs_a_groups_loop_as_step_functions_would() -> None:
    """`hookline local` runs the same plain loop: each answer's wait, then the next round,
    until an answer says done."""

    class Recorder:
        def __init__(self) -> None:
            self.calls: list[dict[str, Any]] = []

        def config(self, name: str) -> Any:
            from hookline_dev.local.lambdas import FunctionConfig

            return FunctionConfig(name, f"hookline-local-{name}")

        def invoke(self, name: str, event: dict[str, Any]) -> Any:
            self.calls.append(event)
            rounds = event["attempt"] + 1
            answer = {k: v for k, v in event.items() if k != "action"}
            return {**answer, "attempt": rounds, "wait_seconds": 1800, "done": rounds >= 3}

    functions = Recorder()
    waits: list[float] = []
    timer = LocalRetryScheduler(
        functions,  # type: ignore[arg-type]
        time_scale=0.0,
        workers=1,
        listener=lambda _, what, seconds: waits.append(seconds) if what == "wait" else None,
    )
    timer.start()
    try:
        timer.schedule(
            name="wh_1-w1000",
            document=policy.workflow_document(
                community_id="com_1",
                webhook_id="wh_1",
                group="wh_1-w1000",
                since="2026-12-02T00:00:00.000Z",
                until="2026-12-02T00:01:00.000Z",
                attempt=1,
                wait_seconds=300,
            ),
        )
        assert timer.wait_idle(5)
    finally:
        timer.stop()
    assert [(c["action"], c["attempt"]) for c in functions.calls] == [
        ("attempt", 1),
        ("attempt", 2),
    ]
    assert waits == [300, 1800]
    execution = timer.execution("wh_1-w1000")
    assert execution is not None and execution.status == "SUCCEEDED"


# -- DynamoDB throttling, injected into botocore over moto --------------------------------------


class Throttle:
    """A before-send hook answering DynamoDB calls with ProvisionedThroughputExceededException
    while `remaining` lasts (or always, with remaining=-1), for the chosen operations/tables."""

    def __init__(self, operations: set[str], table: str, remaining: int) -> None:
        self.operations = operations
        self.table = table
        self.remaining = remaining
        self.throttled = 0
        self.passed = 0

    def __call__(self, request: Any, **kwargs: Any) -> AWSResponse | None:
        target = (request.headers.get("X-Amz-Target") or b"").decode()
        operation = target.rsplit(".", 1)[-1]
        if operation not in self.operations:
            return None
        if json.loads(request.body or b"{}").get("TableName") != self.table:
            return None
        if self.remaining == 0:
            self.passed += 1
            return None
        if self.remaining > 0:
            self.remaining -= 1
        self.throttled += 1
        # botocore offers before-send to every handler, moto's included, and uses the first
        # answer (this one). A throttled request never reaches the table: point it where moto
        # does not look, so moto leaves it alone.
        request.url = "https://throttled.invalid/"
        body = json.dumps(
            {
                "__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
                "message": "The level of configured provisioned throughput was exceeded.",
            }
        ).encode()
        headers = HTTPHeaders()
        headers["Content-Type"] = "application/x-amz-json-1.0"
        return AWSResponse(request.url, 400, headers, _Raw(body))


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **kwargs: Any) -> Iterator[bytes]:
        yield self.body


@pytest.fixture
def dynamo(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Tables from template.yaml in moto, the pipeline over them; botocore's retry backoff
    is made instant (the number of retries stays the adapter's own)."""
    monkeypatch.setattr(
        botocore.retries.standard.ExponentialBackoff, "delay_amount", lambda self, ctx: 0.0
    )
    with mock_aws():
        dynamodb.client.cache_clear()
        names = create_tables(boto3.client("dynamodb", region_name="us-east-1"), "hookline-faults")
        try:
            yield table_environment(names)
        finally:
            dynamodb.client.cache_clear()


def _dynamo_pipeline(env: dict[str, str]) -> Pipeline:
    settings = Settings(
        communities_table=env["COMMUNITIES_TABLE"],
        webhooks_table=env["WEBHOOKS_TABLE"],
        events_table=env["EVENTS_TABLE"],
        deliveries_table=env["DELIVERIES_TABLE"],
        directory_table=env["DIRECTORY_TABLE"],
        allow_private_targets=True,
        delivery_timeout_seconds=5.0,  # these tests are about storage faults, not slow receivers
    )
    return Pipeline.create(settings, tables=DynamoTables(settings))


def _throttle(operations: set[str], table: str, remaining: int) -> Throttle:
    hook = Throttle(operations, table, remaining)
    dynamodb.client().meta.events.register_first(
        "before-send.dynamodb", hook, unique_id="reliability-throttle"
    )
    return hook


def _unthrottle() -> None:
    dynamodb.client().meta.events.unregister(
        "before-send.dynamodb", unique_id="reliability-throttle"
    )


def test_transient_throttling_is_absorbed_by_retries(dynamo: dict[str, str]) -> None:
    pipeline = _dynamo_pipeline(dynamo)
    with Receiver() as rx:
        hook = pipeline.webhook(rx.url_for("/hook"))
        event, _ = pipeline.publish()
        throttle = _throttle({"PutItem", "UpdateItem"}, dynamo["DELIVERIES_TABLE"], 2)
        try:
            pipeline.stream.deliver([event])
        finally:
            _unthrottle()
        requests = rx.requests

    assert throttle.throttled == 2 and throttle.passed >= 1
    assert pipeline.stream.invocations == 1 and pipeline.queue.invocations == 1
    delivery_id = delivery_id_for(event, hook.id)
    assert _log(pipeline, delivery_id) == [(1, True, 200)]
    assert [attempt_of(r) for r in requests] == [(delivery_id, 1)]


def test_persistent_throttling_is_reported_and_nothing_is_lost(dynamo: dict[str, str]) -> None:
    pipeline = _dynamo_pipeline(dynamo)
    with Receiver() as rx:
        hooks = [pipeline.webhook(rx.url_for(f"/hook{i}")) for i in range(2)]
        events = [pipeline.publish(post_id=i)[0] for i in range(3)]
        pipeline.stream.invoke(pipeline.stream.records(events))
        records = pipeline.queue.take()
        throttle = _throttle({"PutItem"}, dynamo["DELIVERIES_TABLE"], -1)
        try:
            with pytest.raises(Exception, match="All records failed"):
                pipeline.queue.invoke(records)
        finally:
            _unthrottle()
        assert throttle.throttled >= 8  # the adapter's 8 tries per write, then reported
        assert len(rx.wait_for(6)) == 6  # sent, but not recorded: the batch comes back

        pipeline.queue.deliver_records(records)
        requests = rx.wait_for(12)
        time.sleep(0.1)

    expected = {delivery_id_for(e, h.id) for e in events for h in hooks}
    # At-least-once: each was sent again with the same webhook-id, and recorded once.
    assert Counter(r.header("webhook-id") for r in rx.requests) == Counter({d: 2 for d in expected})
    assert len(requests) == 12
    for delivery_id in expected:
        assert _log(pipeline, delivery_id) == [(1, True, 200)]


def test_publishing_under_throttling_answers_503_and_a_retry_publishes_once(
    dynamo: dict[str, str],
) -> None:
    pipeline = _dynamo_pipeline(dynamo)
    key_body = call(
        _api("POST", f"/v1/communities/{pipeline.community.id}/api-keys", {"name": "ci"})
    )
    assert key_body.status == 201
    body = {"event": "post.created", "id": "post-77-created", "data": {"post_id": 77}}
    path = f"/v1/communities/{pipeline.community.id}/events"
    with Receiver() as rx:
        hook = pipeline.webhook(rx.url_for("/hook"))
        throttle = _throttle({"PutItem"}, dynamo["EVENTS_TABLE"], -1)
        try:
            refused = call(_api("POST", path, body))
        finally:
            _unthrottle()
        assert throttle.throttled >= 8
        assert refused.status == 503 and refused.body["code"] == "service_unavailable"
        assert set(refused.body) == {"code", "message", "data"}
        assert refused.body["data"]["status"] == refused.status
        assert "throughput" not in json.dumps(refused.body)  # no AWS internals leak

        accepted = call(_api("POST", path, body))
        assert accepted.status == 202 and accepted.body["id"] == "post-77-created"
        again = call(_api("POST", path, body))
        assert again.status == 200 and again.body["duplicate"] is True

        event = pipeline.ctx.events.get(pipeline.community.id, "post-77-created")
        pipeline.stream.deliver([event])
        [request] = rx.wait_for(1)
    assert request.header("webhook-id") == delivery_id_for(event, hook.id)


def _api(method: str, path: str, body: Any) -> dict[str, Any]:
    """An operator call to the API (the authorizer has vouched for the key)."""
    event = load("api-publish-event.json")
    event["httpMethod"] = method
    event["path"] = path
    event["requestContext"]["httpMethod"] = method
    event["requestContext"]["path"] = "/dev" + path
    event["pathParameters"] = {"proxy": path.removeprefix("/v1/communities/")}
    event["body"] = json.dumps(body)
    event["requestContext"]["authorizer"] = {
        "principalId": "operator",
        "role": "operator",
        "community_id": "",
        "key_id": "operator",
    }
    return event


# -- the soak, small ---------------------------------------------------------------------------


def test_a_small_soak_accounts_for_every_delivery() -> None:
    """bench/soak.py end to end at a tiny size (`make soak` runs it at full size)."""
    from bench import soak

    config = soak.SoakConfig(
        rate=4, seconds=2, webhooks=3, time_scale=0.0001, drain_seconds=30, output=None
    )
    result = soak.run(config)
    text = soak.report(result)
    assert result.ok, text
    assert result.published == result.offered >= 6
    assert set(result.states) <= {"delivered", "failed"}, text
    assert len(result.pairs) == 3 * result.published
    assert "Every delivery accounted for" in text
