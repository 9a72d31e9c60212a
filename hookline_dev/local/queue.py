"""Standing in for the delivery queue (SQS) and its event source mapping to DeliverFunction.

* ``sqs_record`` builds the record Lambda hands an SQS consumer.
* ``QueueMapping`` (the local stack) polls a queue served by moto and invokes the consumer with
  the exact Lambda event, deleting what succeeded; a message named in ``batchItemFailures`` (or
  a batch whose invocation failed) stays in the queue until its visibility timeout ends, and
  after ``max_receives`` receives goes to the dead-letter queue, as the redrive policy does.
* ``InlineQueue`` (tests, benchmarks) is the DeliveryQueue port itself: ``send`` invokes the
  consumer at once with the same records and hands failed messages over again.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from hookline_dev.local.lambdas import ACCOUNT_ID, REGION, FunctionError, Functions, HandlerMissing
from hookline_dev.local.poller import _PollingThread

Record = dict[str, Any]
Invoke = Callable[[dict[str, Any]], Any]

#: DeliverFunction's batch size when the template says nothing.
DEFAULT_BATCH_SIZE = 10


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


class _Poller(_PollingThread):
    def __init__(self, mapping: QueueMapping, index: int, interval: float) -> None:
        super().__init__(f"hookline-sqs-{mapping.function}-{index}", interval)
        self.poll = mapping.poll  # type: ignore[method-assign]


class QueueMapping:
    """An SQS queue (moto) -> Lambda function event source mapping, polled on threads."""

    def __init__(
        self,
        client: Any,
        queue_url: str,
        functions: Functions,
        function: str,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        pollers: int = 8,
        interval: float = 0.02,
    ) -> None:
        self.client = client
        self.queue_url = queue_url
        self.arn = queue_arn(queue_url.rsplit("/", 1)[-1])
        self.functions = functions
        self.function = function
        self.batch_size = batch_size
        self.invocations = 0
        # Lambda scales an SQS mapping out to concurrent invocations: so do the pollers here,
        # and a batch waiting on a slow endpoint holds up one poller only.
        self._pollers = [_Poller(self, i, interval) for i in range(pollers)]

    def start(self) -> None:
        for poller in self._pollers:
            poller.start()

    def stop(self, timeout: float = 5.0) -> None:
        for poller in self._pollers:
            poller._stop.set()
        for poller in self._pollers:
            poller.stop(timeout)

    def poll(self) -> bool:
        """Receive one batch and invoke the function; True when there was a batch."""
        answer = self.client.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.batch_size,
            AttributeNames=["All"],
        )
        messages = answer.get("Messages") or []
        if not messages:
            return False
        records = [
            sqs_record(
                message_id=m["MessageId"],
                receipt_handle=m["ReceiptHandle"],
                body=m["Body"],
                source_arn=self.arn,
                receive_count=int(m["Attributes"].get("ApproximateReceiveCount", "1")),
                sent_ms=int(m["Attributes"].get("SentTimestamp", "0")) or None,
                first_receive_ms=int(m["Attributes"].get("ApproximateFirstReceiveTimestamp", "0"))
                or None,
            )
            for m in messages
        ]
        self.invocations += 1
        try:
            retry = failed_ids(self.functions.invoke(self.function, {"Records": records}), records)
        except HandlerMissing as exc:
            print(f"[{self.function}] {exc}", flush=True)
            retry = {r["messageId"] for r in records}
        except FunctionError as exc:
            print(f"[{self.function}] {exc.error_type}: {exc.message}", flush=True)
            retry = {r["messageId"] for r in records}
        done = [r for r in records if r["messageId"] not in retry]
        for start in range(0, len(done), 10):
            self.client.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": r["receiptHandle"]}
                    for i, r in enumerate(done[start : start + 10])
                ],
            )
        return True
