"""Standing in for the delivery queue (SQS) and its event source mapping to DeliverFunction.

* ``sqs_record`` builds the record Lambda hands an SQS consumer.
* ``LocalQueue`` (the local stack) is the delivery queue in process, with SQS's delays,
  visibility timeout, receive counts and redrive to a dead-letter list.
* ``QueueMapping`` polls it and invokes the consumer with the exact Lambda event, deleting what
  succeeded; a message named in ``batchItemFailures`` (or a batch whose invocation failed) stays
  in the queue until its visibility timeout ends, and after ``max_receives`` receives goes to
  the dead letters, as the redrive policy does.
* ``InlineQueue`` (tests, benchmarks) is the DeliveryQueue port itself: ``send`` invokes the
  consumer at once with the same records and hands failed messages over again.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import json
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hookline_dev.local.lambdas import ACCOUNT_ID, REGION, FunctionError, Functions, HandlerMissing
from hookline_dev.local.poller import _PollingThread

Record = dict[str, Any]
Invoke = Callable[[dict[str, Any]], Any]

#: DeliverFunction's batch size when the template says nothing.
DEFAULT_BATCH_SIZE = 10
#: How long an idle poller waits in one receive (SQS long polling allows up to 20 s).
LONG_POLL_SECONDS = 1.0


def queue_arn(name: str) -> str:
    return f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{name}"


def sqs_record(
    *,
    message_id: str,
    receipt_handle: str,
    body: str,
    source_arn: str,
    receive_count: int = 1,
    sent_ms: int | None = None,
    first_receive_ms: int | None = None,
    attributes: Mapping[str, str] | None = None,
) -> Record:
    """One record of the event Lambda's SQS event source passes to its function."""
    now = int(time.time() * 1000)
    return {
        "messageId": message_id,
        "receiptHandle": receipt_handle,
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": str(receive_count),
            "SentTimestamp": str(sent_ms or now),
            "SenderId": "AIDAIENQZJOLO23YVJ4VO",
            "ApproximateFirstReceiveTimestamp": str(first_receive_ms or now),
            **(attributes or {}),
        },
        "messageAttributes": {},
        "md5OfBody": hashlib.md5(body.encode(), usedforsecurity=False).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": source_arn,
        "awsRegion": REGION,
    }


def failed_ids(response: Any, records: Sequence[Record]) -> set[str]:
    """The message ids a consumer's answer asks to hand over again (all on a malformed one)."""
    every = {r["messageId"] for r in records}
    if not isinstance(response, dict):
        return set()
    failures = response.get("batchItemFailures") or []
    named = {f.get("itemIdentifier") for f in failures if isinstance(f, dict)}
    if not named <= every:
        return every  # an unknown or empty identifier fails the whole batch, as in Lambda
    return {str(n) for n in named}


class InlineQueue:
    """The DeliveryQueue port in process: ``send`` runs the consumer on the messages at once
    (in batches of ``batch_size``), handing failed ones over again up to ``max_receives`` times;
    what is still failing then is kept in ``dead_letters``."""

    def __init__(
        self,
        invoke: Invoke | None = None,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_receives: int = 5,
        name: str = "hookline-local-deliveries",
        function_name: str = "hookline-deliver",
    ) -> None:
        self._invoke = invoke
        self.function_name = function_name
        self.batch_size = batch_size
        self.max_receives = max_receives
        self.arn = queue_arn(name)
        self.sent: list[dict[str, Any]] = []
        self.dead_letters: list[Record] = []
        self.invocations = 0
        self._lock = threading.Lock()

    def invoke(self, event: dict[str, Any]) -> Any:
        if self._invoke is not None:
            return self._invoke(event)
        from hookline_dev.local.lambdas import LambdaContext, load_handler

        return load_handler("deliver")(event, LambdaContext(function_name=self.function_name))

    def send(self, messages: Sequence[Mapping[str, Any]], *, delay_seconds: int = 0) -> list[int]:
        with self._lock:
            self.sent.extend(dict(m) for m in messages)
        sent_ms = int(time.time() * 1000)
        pending = [(str(uuid.uuid4()), json.dumps(m, separators=(",", ":"))) for m in messages]
        for start in range(0, len(pending), self.batch_size):
            batch = pending[start : start + self.batch_size]
            if delay_seconds:
                # A delayed message arrives later, on its own thread, as SQS would deliver it.
                timer = threading.Timer(delay_seconds, self._consume, (batch, sent_ms))
                timer.daemon = True
                timer.start()
            else:
                self._consume(batch, sent_ms)
        return []

    def _consume(self, batch: list[tuple[str, str]], sent_ms: int) -> None:
        for receive in range(1, self.max_receives + 1):
            records = [
                sqs_record(
                    message_id=message_id,
                    receipt_handle=uuid.uuid4().hex,
                    body=body,
                    source_arn=self.arn,
                    receive_count=receive,
                    sent_ms=sent_ms,
                )
                for message_id, body in batch
            ]
            with self._lock:
                self.invocations += 1
            try:
                retry = failed_ids(self.invoke({"Records": records}), records)
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException:  # the invocation died: the batch comes back
                retry = {r["messageId"] for r in records}
            batch = [(m, b) for m, b in batch if m in retry]
            if not batch:
                return
        self.dead_letters.extend(
            sqs_record(message_id=m, receipt_handle="", body=b, source_arn=self.arn)
            for m, b in batch
        )


#: Told (message id, body, delay seconds) of each message sent, and the ids of those consumed.
SentHook = Callable[[list[tuple[str, str, int]]], None]
ConsumedHook = Callable[[list[str]], None]


@dataclass
class _Message:
    id: str
    body: str
    sent_ms: int
    visible_at: float
    receive_count: int = 0
    first_receive_ms: int | None = None
    receipt: str = ""


class LocalQueue:
    """The delivery queue in process, with the SQS semantics the consumer sees: a delayed message
    is invisible until its delay ends; a received one until its visibility timeout ends, unless
    deleted (by its latest receipt handle); a message received `max_receives` times and handed
    back once more goes to `dead_letters`, as the redrive policy moves it. Also the
    DeliveryQueue port (`send`). Receivers wait on a condition, not a poll interval."""

    def __init__(
        self,
        name: str = "hookline-local-deliveries",
        *,
        max_receives: int = 5,
        visibility_timeout: float = 30.0,
    ) -> None:
        self.arn = queue_arn(name)
        self.url = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT_ID}/{name}"
        self.max_receives = max_receives
        self.visibility_timeout = visibility_timeout
        self.dead_letters: list[Record] = []
        self.on_sent: SentHook | None = None
        self.on_consumed: ConsumedHook | None = None
        self._messages: dict[str, _Message] = {}
        #: (visible at, order, message id): a message's entry is stale when it moved on.
        self._heap: list[tuple[float, int, str]] = []
        self._order = itertools.count()
        self._ready = threading.Condition()

    def send(self, messages: Sequence[Mapping[str, Any]], *, delay_seconds: int = 0) -> list[int]:
        bodies = [json.dumps(m, separators=(",", ":")) for m in messages]
        self.send_bodies([(uuid.uuid4().hex, b, delay_seconds) for b in bodies])
        return []

    def send_bodies(self, messages: Sequence[tuple[str, str, int]]) -> None:
        """Queue (message id, body, delay seconds) triples; the journal's hook hears of them."""
        now = time.time()
        with self._ready:
            for message_id, body, delay in messages:
                message = _Message(message_id, body, int(now * 1000), now + max(delay, 0))
                self._messages[message_id] = message
                heapq.heappush(self._heap, (message.visible_at, next(self._order), message_id))
            if self.on_sent is not None:
                self.on_sent(list(messages))
            # As many waiting receivers as there are messages, not the whole pool.
            self._ready.notify(len(messages))

    def receive(self, limit: int, *, wait: float = 0.0) -> list[Record]:
        """Up to `limit` visible messages as Lambda SQS records (waiting up to `wait` seconds
        for the first); each is invisible for the visibility timeout from now."""
        deadline = time.monotonic() + wait
        with self._ready:
            while True:
                records = self._take(limit)
                remaining = deadline - time.monotonic()
                if records or remaining <= 0:
                    return records
                due = self._heap[0][0] - time.time() if self._heap else remaining
                self._ready.wait(min(remaining, max(due, 0.001)))

    def _take(self, limit: int) -> list[Record]:
        now = time.time()
        records: list[Record] = []
        while self._heap and len(records) < limit and self._heap[0][0] <= now:
            visible_at, _, message_id = heapq.heappop(self._heap)
            message = self._messages.get(message_id)
            if message is None or message.visible_at != visible_at:
                continue
            if message.receive_count >= self.max_receives:
                del self._messages[message_id]
                self.dead_letters.append(self._record(message))
                if self.on_consumed is not None:
                    self.on_consumed([message_id])
                continue
            message.receive_count += 1
            message.first_receive_ms = message.first_receive_ms or int(now * 1000)
            message.receipt = uuid.uuid4().hex
            message.visible_at = now + self.visibility_timeout
            heapq.heappush(self._heap, (message.visible_at, next(self._order), message_id))
            records.append(self._record(message))
        return records

    def _record(self, message: _Message) -> Record:
        return sqs_record(
            message_id=message.id,
            receipt_handle=message.receipt,
            body=message.body,
            source_arn=self.arn,
            receive_count=message.receive_count,
            sent_ms=message.sent_ms,
            first_receive_ms=message.first_receive_ms,
        )

    def wake(self) -> None:
        """End every receiver's wait now (stopping)."""
        with self._ready:
            self._ready.notify_all()

    def delete(self, receipt_handles: Sequence[str]) -> None:
        """DeleteMessage: a handle from an earlier receive of a message received again since
        deletes nothing (as SQS does once a message's visibility timed out and it was handed
        out again)."""
        wanted = set(receipt_handles)
        with self._ready:
            gone = [m.id for m in self._messages.values() if m.receipt in wanted]
            for message_id in gone:
                del self._messages[message_id]
            if gone and self.on_consumed is not None:
                self.on_consumed(gone)


class _Poller(_PollingThread):
    def __init__(self, mapping: QueueMapping, index: int, interval: float) -> None:
        super().__init__(f"hookline-sqs-{mapping.function}-{index}", interval)
        self.poll = mapping.poll  # type: ignore[method-assign]


class QueueMapping:
    """The delivery queue -> Lambda function event source mapping, polled on threads."""

    def __init__(
        self,
        queue: LocalQueue,
        functions: Functions,
        function: str,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        pollers: int = 8,
        after_batch: Callable[[], None] | None = None,
    ) -> None:
        """`after_batch` runs after each batch's deletes (the journal's sync)."""
        self.queue = queue
        self.functions = functions
        self.function = function
        self.batch_size = batch_size
        self.invocations = 0
        self.after_batch = after_batch
        # Lambda scales an SQS mapping out to concurrent invocations (up to the template's
        # MaximumConcurrency): so do the pollers here, and a batch waiting on a slow endpoint
        # holds up one poller only. Idle pollers wait on the queue's condition.
        self._pollers = [_Poller(self, i, 0.0) for i in range(pollers)]

    def start(self) -> None:
        for poller in self._pollers:
            poller.start()

    def stop(self, timeout: float = 5.0) -> None:
        for poller in self._pollers:
            poller._stop.set()
        self.queue.wake()
        for poller in self._pollers:
            poller.stop(timeout)

    def poll(self) -> bool:
        """Receive one batch (long polling, as Lambda's SQS pollers do: a sent message wakes a
        waiting poller at once) and invoke the function; True when there was a batch."""
        records = self.queue.receive(self.batch_size, wait=LONG_POLL_SECONDS)
        if not records:
            return False
        self.invocations += 1
        try:
            retry = failed_ids(self.functions.invoke(self.function, {"Records": records}), records)
        except HandlerMissing as exc:
            print(f"[{self.function}] {exc}", flush=True)
            retry = {r["messageId"] for r in records}
        except FunctionError as exc:
            print(f"[{self.function}] {exc.error_type}: {exc.message}", flush=True)
            retry = {r["messageId"] for r in records}
        self.queue.delete([r["receiptHandle"] for r in records if r["messageId"] not in retry])
        if self.after_batch is not None:
            self.after_batch()
        return True
