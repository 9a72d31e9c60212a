"""Standing in for Lambda's DynamoDB event source mapping: read a table's stream (the local
tables' own, hookline_dev.local.storage, or moto's through StreamReader) and call the dispatcher
with the exact Lambda event, with its filter, batching, partial batch responses, bisection and
bounded retries.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from hookline import clock
from hookline_dev.local.blueprint import StreamSource
from hookline_dev.local.lambdas import REGION, FunctionError, Functions, HandlerMissing

Record = dict[str, Any]

# botocore sends DynamoDB Streams calls to account-ID endpoints moto does not route.
STREAMS_CONFIG = Config(account_id_endpoint_mode="disabled", retries={"max_attempts": 2})


def lambda_record(raw: Record, stream_arn: str) -> Record:
    """A GetRecords record in the shape Lambda hands to a DynamoDB stream consumer."""
    data = dict(raw.get("dynamodb") or {})
    created = data.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        data["ApproximateCreationDateTime"] = int(created.timestamp())
    for key in ("Keys", "NewImage", "OldImage"):
        if key in data:
            data[key] = _json_image(data[key])
    return stream_record(raw.get("eventID"), raw.get("eventName"), data, stream_arn)


def stream_record(event_id: Any, name: Any, data: dict[str, Any], stream_arn: str) -> Record:
    """Lambda's DynamoDB stream record around `data` (Keys and images as JSON: binary base64)."""
    return {
        "eventID": event_id,
        "eventName": name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": REGION,
        "dynamodb": data,
        "eventSourceARN": stream_arn,
    }


def _json_value(value: Any) -> Any:
    """boto3 hands binary attributes over as bytes; Lambda events carry base64 text."""
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    if isinstance(value, list | set | tuple):
        return [_json_value(v) for v in value]
    return value


def _json_image(image: dict[str, Any]) -> dict[str, Any]:
    return {name: _json_value(attr) for name, attr in image.items()}


# --------------------------------------------------------------------------------------------
# Event filtering (the subset of EventBridge patterns Lambda event filtering accepts)


def _value_matches(rule: Any, value: Any, present: bool) -> bool:
    if not isinstance(rule, dict):
        return present and value == rule
    if "exists" in rule:
        return present == bool(rule["exists"])
    if not present:
        return False
    if "prefix" in rule:
        return isinstance(value, str) and value.startswith(str(rule["prefix"]))
    if "suffix" in rule:
        return isinstance(value, str) and value.endswith(str(rule["suffix"]))
    if "equals-ignore-case" in rule:
        return isinstance(value, str) and value.lower() == str(rule["equals-ignore-case"]).lower()
    if "anything-but" in rule:
        excluded = rule["anything-but"]
        excluded = excluded if isinstance(excluded, list) else [excluded]
        return value not in excluded
    if "numeric" in rule:
        try:
            number = float(value)
        except (TypeError, ValueError):
            return False
        ops = rule["numeric"]
        checks = {
            "=": lambda a, b: a == b,
            "<": lambda a, b: a < b,
            "<=": lambda a, b: a <= b,
            ">": lambda a, b: a > b,
            ">=": lambda a, b: a >= b,
        }
        return all(checks[ops[i]](number, float(ops[i + 1])) for i in range(0, len(ops), 2))
    raise ValueError(f"unsupported filter rule {rule!r}")


def pattern_matches(pattern: dict[str, Any], record: Any) -> bool:
    """Whether a record matches one filter pattern (all keys must match)."""
    for key, rule in pattern.items():
        present = isinstance(record, dict) and key in record
        value = record.get(key) if present else None
        if isinstance(rule, dict):
            if not present or not pattern_matches(rule, value):
                return False
            continue
        rules = rule if isinstance(rule, list) else [rule]
        values = value if isinstance(value, list) else [value]
        if not any(_value_matches(r, v, present) for r in rules for v in values):
            return False
    return True


def record_passes(filters: tuple[dict[str, Any], ...], record: Record) -> bool:
    """Lambda keeps a record matching any filter; no filters keeps everything."""
    return not filters or any(pattern_matches(p, record) for p in filters)


# --------------------------------------------------------------------------------------------
# Reading a stream


class RecordSource(Protocol):
    """New stream records, in Lambda's record shape, each read once."""

    def read(self, limit: int = 1000) -> list[Record]: ...


class StreamReader:
    """Follows every shard of one stream from LATEST (shards found later from their start)."""

    def __init__(self, stream_arn: str) -> None:
        self.stream_arn = stream_arn
        self.client = boto3.client("dynamodbstreams", region_name=REGION, config=STREAMS_CONFIG)
        self._iterators: dict[str, str | None] = {}
        self._last_seq: dict[str, str] = {}
        self._known: set[str] = set()
        self._described_at = 0.0
        self._refresh(initial=True)

    def _refresh(self, *, initial: bool = False) -> None:
        self._described_at = time.monotonic()
        description = self.client.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]
        for shard in description.get("Shards", []):
            shard_id = shard["ShardId"]
            if shard_id in self._known:
                continue
            self._known.add(shard_id)
            self._iterators[shard_id] = self.client.get_shard_iterator(
                StreamArn=self.stream_arn,
                ShardId=shard_id,
                ShardIteratorType="LATEST" if initial else "TRIM_HORIZON",
            )["ShardIterator"]

    def read(self, limit: int = 1000) -> list[Record]:
        """New records across shards, in Lambda's record shape."""
        if time.monotonic() - self._described_at > 1.0:
            self._refresh()
        records: list[Record] = []
        for shard_id, iterator in list(self._iterators.items()):
            if iterator is None:
                continue
            try:
                response = self.client.get_records(ShardIterator=iterator, Limit=limit)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "ExpiredIteratorException":
                    raise
                self._iterators[shard_id] = self._reacquire(shard_id)
                continue
            # A closed shard has no next iterator; its children are found by _refresh.
            self._iterators[shard_id] = response.get("NextShardIterator")
            for raw in response.get("Records", []):
                self._last_seq[shard_id] = raw["dynamodb"]["SequenceNumber"]
                records.append(lambda_record(raw, self.stream_arn))
        return records

    def _reacquire(self, shard_id: str) -> str:
        last = self._last_seq.get(shard_id)
        kwargs: dict[str, Any] = {"StreamArn": self.stream_arn, "ShardId": shard_id}
        if last:
            kwargs.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=last)
        else:
            kwargs.update(ShardIteratorType="LATEST")
        iterator: str = self.client.get_shard_iterator(**kwargs)["ShardIterator"]
        return iterator


class _PollingThread:
    def __init__(self, name: str, interval: float) -> None:
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                busy = self.poll()
            except Exception as exc:  # keep polling: a transient fault must not end the stack
                print(f"[{self._thread.name}] {exc!r}", flush=True)
                busy = False
            if not busy:
                self._stop.wait(self.interval)

    def poll(self) -> bool:
        """One round; True when there was work (poll again at once)."""
        raise NotImplementedError


class EventSourceMapping(_PollingThread):
    """A DynamoDB stream -> Lambda function mapping (one shard processed in order).

    With ReportBatchItemFailures, a response naming failed sequence numbers makes the batch
    retried from the lowest of them; a function error bisects the batch (when configured) and
    retries. After `max_retries` a batch goes to `dead_letters` and the shard moves on.
    """

    def __init__(
        self,
        reader: RecordSource,
        functions: Functions,
        function: str,
        source: StreamSource,
        *,
        interval: float = 0.05,
        batching_window: float | None = None,
    ) -> None:
        """`batching_window` overrides the source's MaximumBatchingWindowInSeconds."""
        super().__init__(f"hookline-esm-{function}", interval)
        self.reader = reader
        self.functions = functions
        self.function = function
        self.source = source
        self.dead_letters: list[dict[str, Any]] = []
        self.invocations = 0
        max_retries = source.max_retries
        self.max_retries = max_retries if 0 <= max_retries <= 10_000 else 3
        self.batching_window = (
            source.batching_window_seconds if batching_window is None else batching_window
        )
        self._pending: list[Record] = []
        self._window_started: float | None = None

    def poll(self) -> bool:
        fresh = [r for r in self.reader.read() if record_passes(self.source.filters, r)]
        self._pending.extend(fresh)
        if not self._pending:
            self._window_started = None
            return False
        window = self.batching_window
        if window > 0 and len(self._pending) < self.source.batch_size:
            now = time.monotonic()
            self._window_started = self._window_started or now
            if now - self._window_started < window:
                return False
        self._window_started = None
        batch = self._pending[: self.source.batch_size]
        del self._pending[: len(batch)]
        self.process(batch)
        return True

    def process(self, batch: list[Record]) -> None:
        """Deliver one batch, with retries, bisection and the dead-letter fallback."""
        work: list[tuple[list[Record], int]] = [(batch, 0)]
        while work and not self.stopping:
            records, retries = work.pop(0)
            failed_from = self._invoke(records)
            if failed_from is None:
                continue
            error, index = failed_from
            if error == "function" and self.source.bisect_on_error and len(records) > 1:
                half = len(records) // 2
                work[:0] = [(records[:half], retries + 1), (records[half:], retries + 1)]
                continue
            remaining = records[index:]
            if retries >= self.max_retries:
                self._dead_letter(remaining, error)
                continue
            # Lambda retries promptly; a short pause keeps a failing receiver from spinning.
            self._stop.wait(min(0.05 * (retries + 1), 0.5))
            work.insert(0, (remaining, retries + 1))

    def _invoke(self, records: list[Record]) -> tuple[str, int] | None:
        """None on success, else (kind, index of the first record to retry)."""
        self.invocations += 1
        try:
            response = self.functions.invoke(self.function, {"Records": records})
        except HandlerMissing as exc:
            print(f"[{self.function}] {exc}", flush=True)
            return ("function", 0)
        except FunctionError as exc:
            print(f"[{self.function}] {exc.error_type}: {exc.message}", flush=True)
            return ("function", 0)
        if not self.source.report_item_failures or not isinstance(response, dict):
            return None
        failures = response.get("batchItemFailures")
        if not failures:
            return None
        positions = {r["dynamodb"]["SequenceNumber"]: i for i, r in enumerate(records)}
        indexes = []
        for failure in failures:
            identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
            if identifier not in positions:
                # An unknown or empty identifier fails the whole batch, as in Lambda.
                return ("partial", 0)
            indexes.append(positions[identifier])
        return ("partial", min(indexes))

    def _dead_letter(self, records: list[Record], reason: str) -> None:
        entry = {
            "at": clock.now_iso(),
            "reason": "function error" if reason == "function" else "batch item failures",
            "sequence_numbers": [r["dynamodb"]["SequenceNumber"] for r in records],
            "records": records,
        }
        self.dead_letters.append(entry)
        print(
            f"[{self.function}] gave up on {len(records)} record(s) after "
            f"{self.max_retries} retries ({entry['reason']}); kept in dead letters",
            flush=True,
        )


class StreamTail(_PollingThread):
    """Calls `callback(record)` for every new record of a stream (the delivery log printer)."""

    def __init__(
        self, reader: RecordSource, callback: Callable[[Record], None], *, interval: float = 0.05
    ) -> None:
        super().__init__("hookline-tail", interval)
        self.reader = reader
        self.callback = callback

    def poll(self) -> bool:
        records = self.reader.read()
        for record in records:
            self.callback(record)
        return bool(records)
