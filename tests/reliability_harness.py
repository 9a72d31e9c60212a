"""The delivery pipeline in one process with faults injected where production has them.

    pipeline = Pipeline.create(settings)           # MemoryTables, real handlers, real ASL
    hook = pipeline.webhook(rx.url_for("/a"), retry_count=2)
    event = pipeline.publish("post.created")
    pipeline.stream.deliver([event])                # DispatchFunction, then DeliverFunction
    pipeline.retries.run()                          # the retry state machine, waits skipped

What is real: functions/dispatch/app.py, functions/deliver/app.py and functions/attempt/app.py
(loaded as Lambda loads them), stream records in the Lambda DynamoDB-stream shape, SQS records
in the Lambda SQS shape, statemachine/retry.asl.json run by hookline_dev.local.asl, and HTTP
attempts to loopback receivers. What is simulated is only the AWS glue, with Lambda's semantics: the
stream's event source mapping (a partial batch response resumes from the first failed record;
an invocation that dies hands the whole batch over again), the delivery queue's (a message
named in a partial batch response, or of an invocation that died, comes back; the others are
deleted) and Step Functions (Task Retry/Catch, execution names unique per state machine).

Faults (``pipeline.faults``), each consumed once, keyed by (delivery id, attempt number):

* ``crash_before_send``: the invocation dies (a Lambda timeout or OOM) just before the POST;
* ``crash_after_send``: the POST went out, the invocation died before recording it;
* ``lost_answers``: the attempt invocation finished its work, then Step Functions saw the error
  named here instead of its answer (``Lambda.ServiceException`` is retried by the Task's
  Retry; anything else is caught and goes to RecordCrash);
* ``failing_starts``: the next N StartExecution calls fail.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from hookline import wiring
from hookline.adapters import http_attempt
from hookline.config import Settings
from hookline.domain import communities, webhooks
from hookline.domain.attempts import AttemptOutcome
from hookline.domain.delivery import HEADER_ATTEMPT, HEADER_DELIVERY, DeliveryContext
from hookline.domain.models import Attempt, Community, Delivery, Event, Webhook
from hookline.domain.publishing import publish
from hookline.ports import Sender, Tables
from hookline_dev.local.asl import Execution, StateMachine, TaskError
from hookline_dev.local.lambdas import LambdaContext, load_handler
from hookline_dev.local.queue import failed_ids, sqs_record
from hookline_dev.memory import MemoryTables
from hookline_dev.template import retry_state_machine_definition
from tests.delivery_helpers import event_item, stream_record

#: The retry policy's times and the workflow's waits run this much faster (as the local stack's
#: --time-scale does): a 300 s wait takes 150 ms, a retry group's 60 s window 30 ms.
TIME_SCALE = 0.0005
ATTEMPT_FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:hookline-attempt"

Key = tuple[str, int]


class Crash(BaseException):
    """A Lambda invocation dying (timeout, out of memory). A BaseException, so no ``except
    Exception`` in the code under test can swallow it: the invocation ends there."""


@dataclass
class Faults:
    crash_before_send: set[Key] = field(default_factory=set)
    crash_after_send: set[Key] = field(default_factory=set)
    lost_answers: dict[Key, str] = field(default_factory=dict)
    failing_starts: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def take(self, faults: set[Key], key: Key) -> bool:
        with self._lock:
            if key in faults:
                faults.discard(key)
                return True
            return False

    def take_lost_answer(self, key: Key) -> str | None:
        with self._lock:
            return self.lost_answers.pop(key, None)

    def take_failing_start(self) -> bool:
        with self._lock:
            if self.failing_starts > 0:
                self.failing_starts -= 1
                return True
            return False


class FaultySender:
    """The HTTP attempt port with crashes around the real POST."""

    def __init__(self, faults: Faults, inner: Sender = http_attempt.post) -> None:
        self.faults = faults
        self.inner = inner

    def __call__(
        self,
        url: str,
        body: bytes,
        headers: Any,
        *,
        timeout: float,
        allow_private: bool,
    ) -> AttemptOutcome:
        key = (str(headers[HEADER_DELIVERY]), int(headers[HEADER_ATTEMPT]))
        if self.faults.take(self.faults.crash_before_send, key):
            raise Crash(f"invocation died before sending {key}")
        outcome = self.inner(url, body, headers, timeout=timeout, allow_private=allow_private)
        if self.faults.take(self.faults.crash_after_send, key):
            raise Crash(f"invocation died after sending {key}")
        return outcome


def _lambda_error(error: str, message: str) -> str:
    return json.dumps({"errorType": error, "errorMessage": message})


class SyncRetries:
    """The RetryScheduler port over the real retry state machine, run on demand.

    ``schedule`` starts an execution of a retry group (a second start of the same name is
    ExecutionAlreadyExists: joined). ``run()`` drives every execution to its end, each wait
    TIME_SCALE times as long (the pipeline's settings scale the retry policy's times alike; the
    workflow seconds are kept in ``waits``); executions advance side by side, so attempts that
    time out overlap as they would in production.
    """

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        definition = json.loads(retry_state_machine_definition(ATTEMPT_FUNCTION_ARN))
        self.machine = StateMachine(
            definition, self._invoke, substitutions={ATTEMPT_FUNCTION_ARN: "attempt"}
        )
        self.executions: dict[str, Execution] = {}
        self.waits: list[tuple[str, float]] = []
        self.invocations: list[dict[str, Any]] = []
        self.start_failures = 0
        self._lock = threading.Lock()

    def schedule(self, *, name: str, document: Mapping[str, Any]) -> None:
        if self.faults.take_failing_start():
            with self._lock:
                self.start_failures += 1
            raise RuntimeError("StartExecution failed: ServiceUnavailable (injected)")
        with self._lock:
            if name not in self.executions:
                self.executions[name] = self.machine.start(name, dict(document))

    def running(self) -> list[Execution]:
        with self._lock:
            return [e for e in self.executions.values() if e.status == "RUNNING"]

    def run(self, *, max_rounds: int = 2000) -> None:
        """Run every execution (also those started meanwhile) until all have ended."""
        resume: dict[str, float] = {}
        with ThreadPoolExecutor(max_workers=16, thread_name_prefix="sync-retries") as pool:
            for _ in range(max_rounds):
                running = self.running()
                if not running:
                    return
                now = time.monotonic()
                ready = [e for e in running if resume.get(e.name, 0.0) <= now]
                if not ready:
                    time.sleep(min(resume[e.name] for e in running) - now)
                    continue
                for execution, pause in zip(ready, pool.map(self.machine.step, ready), strict=True):
                    if pause is not None:
                        with self._lock:
                            self.waits.append((execution.name, pause.seconds))
                        # A little late, as a timer is: the members are due when it wakes.
                        resume[execution.name] = (
                            time.monotonic() + pause.seconds * TIME_SCALE + 0.002
                        )
        raise AssertionError(f"executions still running after {max_rounds} rounds")

    def _invoke(self, function: str, payload: Any) -> Any:
        handler = load_handler(function)
        event = json.loads(json.dumps(payload))
        with self._lock:
            self.invocations.append(event)
        try:
            result = handler(event, LambdaContext(function_name=f"hookline-{function}"))
        except Crash as exc:
            raise TaskError(
                "Sandbox.Timedout", _lambda_error("Sandbox.Timedout", f"Task timed out ({exc})")
            ) from exc
        except Exception as exc:
            raise TaskError(
                type(exc).__name__, _lambda_error(type(exc).__name__, str(exc))
            ) from exc
        if event.get("action") == "attempt":
            # Keyed (group, n): the round that makes the members' attempt n.
            lost = self.faults.take_lost_answer((event["group"], int(event["attempt"]) + 1))
            if lost is not None:
                raise TaskError(lost, _lambda_error(lost, "the invocation's answer was lost"))
        return json.loads(json.dumps(result))


class Queue:
    """The delivery queue and its event source mapping, calling DeliverFunction.

    ``send`` (the DeliveryQueue port the dispatcher uses) keeps messages until they are
    processed. ``drain()`` hands them over in batches of ``batch_size``; a message named in a
    partial batch response, or in a batch whose invocation raised (or died), comes back, the
    others are deleted. ``crashes`` counts deaths, ``responses`` keeps every answer.
    """

    ARN = "arn:aws:sqs:us-east-1:123456789012:hookline-deliveries"

    def __init__(self) -> None:
        self.handler = load_handler("deliver")
        self.pending: list[dict[str, Any]] = []
        self.responses: list[dict[str, Any]] = []
        self.crashes = 0
        self.invocations = 0
        self._ids = itertools.count(1)
        self._receives: dict[str, int] = {}
        self._lock = threading.Lock()

    def send(self, messages: Sequence[Any], *, delay_seconds: int = 0) -> list[int]:
        # A delay is not kept: the consumer checks the webhook's turn again when it gets it.
        with self._lock:
            for message in messages:
                message_id = f"msg-{next(self._ids)}"
                self.pending.append(
                    {"messageId": message_id, "body": json.dumps(message, separators=(",", ":"))}
                )
        return []

    def take(self) -> list[dict[str, Any]]:
        """The pending messages as records of one receive (they leave the queue until done)."""
        with self._lock:
            taken, self.pending = self.pending, []
        records = []
        for message in taken:
            count = self._receives[message["messageId"]] = (
                self._receives.get(message["messageId"], 0) + 1
            )
            records.append(
                sqs_record(
                    message_id=message["messageId"],
                    receipt_handle=f"{message['messageId']}-{count}",
                    body=message["body"],
                    source_arn=self.ARN,
                    receive_count=count,
                )
            )
        return records

    def invoke(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        self.invocations += 1
        response: dict[str, Any] = self.handler(
            {"Records": records}, LambdaContext(function_name="hookline-deliver")
        )
        self.responses.append(response)
        return response

    def deliver_records(
        self, records: list[dict[str, Any]], *, batch_size: int = 10, max_invocations: int = 50
    ) -> None:
        for start in range(0, len(records), batch_size):
            pending = records[start : start + batch_size]
            for _ in range(max_invocations):
                try:
                    retry = failed_ids(self.invoke(pending), pending)
                except Crash:
                    self.crashes += 1
                    retry = {r["messageId"] for r in pending}
                except Exception:  # every record failed: the batch comes back
                    retry = {r["messageId"] for r in pending}
                pending = [r for r in pending if r["messageId"] in retry]
                if not pending:
                    break
            else:
                raise AssertionError("the queue never got past these messages")

    def drain(self) -> None:
        while self.pending:
            self.deliver_records(self.take())


class Stream:
    """The events table's stream and its event source mapping, calling DispatchFunction.

    ``deliver(events)`` hands the events' INSERT records over in batches of ``batch_size``. An
    answer naming failed records makes the mapping hand the batch over again from the first
    failed record (later records included, as Lambda does); an invocation that raises (or dies)
    gets the whole batch again. ``responses`` keeps every answer, ``crashes`` every death.
    """

    def __init__(self, queue: Queue) -> None:
        self.handler = load_handler("dispatch")
        self.queue = queue
        self.responses: list[dict[str, Any]] = []
        self.crashes = 0
        self.invocations = 0
        self._sequence = itertools.count(10_000)

    def records(self, events: Iterable[Event]) -> list[dict[str, Any]]:
        return [stream_record(event_item(e), str(next(self._sequence))) for e in events]

    def invoke(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        self.invocations += 1
        response: dict[str, Any] = self.handler(
            {"Records": records}, LambdaContext(function_name="hookline-dispatch")
        )
        self.responses.append(response)
        return response

    def deliver_records(
        self, records: list[dict[str, Any]], *, batch_size: int = 100, max_invocations: int = 50
    ) -> None:
        for start in range(0, len(records), batch_size):
            pending = records[start : start + batch_size]
            for _ in range(max_invocations):
                try:
                    response = self.invoke(pending)
                except Crash:
                    self.crashes += 1
                    continue
                except Exception:  # noqa: S112 - every record failed: the batch comes back
                    continue
                failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
                if not failed:
                    break
                first = min(
                    i for i, r in enumerate(pending) if r["dynamodb"]["SequenceNumber"] in failed
                )
                pending = pending[first:]
            else:
                raise AssertionError("the stream never got past this batch")

    def deliver(self, events: Iterable[Event], *, batch_size: int = 100) -> None:
        """Dispatch the events, then let the delivery queue hand every order to DeliverFunction."""
        self.deliver_records(self.records(events), batch_size=batch_size)
        self.queue.drain()


@dataclass
class Pipeline:
    """One community on in-memory tables with the real handlers wired to faulty ports."""

    ctx: DeliveryContext
    community: Community
    faults: Faults
    retries: SyncRetries
    stream: Stream
    queue: Queue
    tables: Tables

    @classmethod
    def create(
        cls,
        settings: Settings,
        *,
        tables: Tables | None = None,
        sender: Sender | None = None,
        wrap_sender: Callable[[Sender], Sender] | None = None,
    ) -> Pipeline:
        faults = Faults()
        retries = SyncRetries(faults)
        settings = dataclasses.replace(settings, retry_time_scale=TIME_SCALE)
        faulty: Sender = FaultySender(faults, sender or http_attempt.post)
        chosen_tables = tables or MemoryTables()
        queue = Queue()
        wiring.configure(
            queue=queue,
            settings=settings,
            tables=chosen_tables,
            scheduler=retries,
            mailer=_NoMail(),
            sender=wrap_sender(faulty) if wrap_sender else faulty,
        )
        ctx = DeliveryContext.from_services(wiring.services())
        community, _, _ = communities.create_community(
            ctx.communities, name="Fault Forum", site_url="https://forum.example.com"
        )
        return cls(ctx, community, faults, retries, Stream(queue), queue, chosen_tables)

    def webhook(self, url: str, *, events: Sequence[str] = ("*",), **fields: Any) -> Webhook:
        return webhooks.create_webhook(
            self.ctx.webhooks,
            self.community.id,
            {"url": url, "events": list(events), **fields},
            allow_private=True,
        )

    def publish(
        self, event_type: str = "post.created", *, event_id: str | None = None, **data: Any
    ) -> tuple[Event, bool]:
        return publish(
            self.ctx.events,
            self.community,
            event_type,
            data or {"post_id": 1, "title": "Hello"},
            event_id=event_id,
        )

    def delivery(self, delivery_id: str) -> Delivery | None:
        return self.ctx.deliveries.find(self.community.id, delivery_id)

    def attempts(self, delivery_id: str) -> list[Attempt]:
        return sorted(
            self.ctx.deliveries.attempts(self.community.id, delivery_id), key=lambda a: a.attempt
        )


class _NoMail:
    def send(self, *, to: str, subject: str, text: str) -> None:
        pass


def attempt_of(request: Any) -> Key:
    """(delivery id, attempt number) of a request a receiver recorded."""
    return (str(request.header(HEADER_DELIVERY)), int(request.header(HEADER_ATTEMPT) or 0))


class FlakyTable:
    """A Table whose writes raise ``error`` while ``fails(operation, pk, sk)`` says so."""

    def __init__(
        self,
        inner: Any,
        fails: Callable[[str, str, str], bool],
        error: Callable[[], Exception] = lambda: RuntimeError("write refused (injected)"),
    ) -> None:
        self.inner = inner
        self.fails = fails
        self.error = error
        self.refused: list[tuple[str, str, str]] = []
        self._lock = threading.Lock()

    def _check(self, operation: str, pk: str, sk: str) -> None:
        if self.fails(operation, pk, sk):
            with self._lock:
                self.refused.append((operation, pk, sk))
            raise self.error()

    def put(self, item: dict[str, Any], *, if_absent: bool = False) -> None:
        self._check("put", str(item["pk"]), str(item["sk"]))
        self.inner.put(item, if_absent=if_absent)

    def update(self, pk: str, sk: str, **kwargs: Any) -> Any:
        self._check("update", pk, sk)
        return self.inner.update(pk, sk, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@dataclass
class FlakyTables:
    """MemoryTables with one role's table wrapped."""

    inner: MemoryTables
    deliveries: Any

    @property
    def communities(self) -> Any:
        return self.inner.communities

    @property
    def webhooks(self) -> Any:
        return self.inner.webhooks

    @property
    def events(self) -> Any:
        return self.inner.events

    @property
    def directory(self) -> Any:
        return self.inner.directory

    def rate_limiter(self) -> Any:
        return self.inner.rate_limiter()


def by_attempt(replies: dict[int, Any], default: Any = (200,)) -> Callable[[Any], Any]:
    """A Receiver script answering by the request's attempt number (X-Hookline-Attempt), so a
    request sent twice for one attempt gets the same answer."""

    def reply(request: Any) -> Any:
        return replies.get(attempt_of(request)[1], default)

    return reply
