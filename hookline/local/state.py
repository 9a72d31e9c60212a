"""State that survives a restart of `hookline local`: a directory holding the operator key and a
journal of every DynamoDB write moto acknowledged.

Each write (PutItem, UpdateItem, DeleteItem, BatchWriteItem, TransactWriteItems) is appended to
``journal.jsonl`` and fsynced before the call returns to the handler, so before the HTTP answer
is sent: a `kill -9` loses nothing that was acknowledged. On start the journal is replayed into
a fresh moto in its original order, then compacted (one PutItem per live item).

The dispatcher's progress is journaled too (which events it has fanned out). Events published
but not yet dispatched when the stack stopped are written again after the dispatcher's stream
reader exists, so their stream INSERTs are dispatched now; dispatched ones are not handed over
again. Deliveries waiting for a retry are rescheduled for the time they were due.
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import os
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from hookline import clock, ids
from hookline.local.lambdas import Functions

JOURNAL = "journal.jsonl"
KEY_FILE = "operator-key"
OPERATOR_KEY_ENV = "HOOKLINE_OPERATOR_KEY"
WRITE_OPERATIONS = frozenset(
    {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
)


def operator_key(state_dir: Path | None, given: str | None) -> tuple[str, str]:
    """(key, where it came from): given > HOOKLINE_OPERATOR_KEY > the state directory's file
    (created with a new key the first time). Without a state directory, a new key."""
    if given:
        return given, "given"
    from_env = os.environ.get(OPERATOR_KEY_ENV, "").strip()
    if from_env:
        return from_env, "env"
    if state_dir is None:
        return ids.new_api_key(), "new"
    path = state_dir / KEY_FILE
    if path.is_file():
        key = path.read_text(encoding="utf-8").strip()
        if key:
            return key, "state"
    key = ids.new_api_key()
    state_dir.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(key + "\n")
    return key, "new"


def reset(state_dir: Path) -> None:
    """Forget every community, key, webhook and delivery (the operator key is kept)."""
    (state_dir / JOURNAL).unlink(missing_ok=True)
    shutil.rmtree(state_dir / "outbox", ignore_errors=True)


# -- wire format <-> client parameters --------------------------------------------------------


def _blobs(node: Any, convert: Callable[[Any], Any]) -> Any:
    """Apply `convert` to every B / BS attribute value inside request parameters."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "B" and len(node) == 1:
                out[key] = convert(value)
            elif key == "BS" and len(node) == 1 and isinstance(value, list):
                out[key] = [convert(v) for v in value]
            else:
                out[key] = _blobs(value, convert)
        return out
    if isinstance(node, list):
        return [_blobs(v, convert) for v in node]
    return node


def _to_client(params: dict[str, Any]) -> dict[str, Any]:
    """Wire-format JSON (blobs base64) -> boto3 client parameters (blobs as bytes)."""
    converted: dict[str, Any] = _blobs(params, lambda v: base64.b64decode(v))
    return converted


def _to_wire(params: dict[str, Any]) -> dict[str, Any]:
    converted: dict[str, Any] = _blobs(params, lambda v: base64.b64encode(bytes(v)).decode("ascii"))
    return converted


def _snake(operation: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in operation).lstrip("_")


def _event_key(item: dict[str, Any]) -> str:
    return f"{(item.get('pk') or {}).get('S', '')}|{(item.get('sk') or {}).get('S', '')}"


class Journal:
    """The append-only, fsynced record of acknowledged writes (and dispatch progress)."""

    def __init__(self, state_dir: Path, events_table: str) -> None:
        self.state_dir = state_dir
        self.path = state_dir / JOURNAL
        self.events_table = events_table
        self._fd: int | None = None
        self._lock = threading.Lock()
        self.replayed = 0

    # -- writing ------------------------------------------------------------------------------

    def open(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def _append(self, entry: dict[str, Any]) -> bool:
        line = (json.dumps(entry, separators=(",", ":")) + "\n").encode()
        with self._lock:
            if self._fd is None:
                return False
            os.write(self._fd, line)
        return True

    def sync(self) -> None:
        """Make everything appended so far durable (outside moto's lock: fsyncs overlap)."""
        fd = self._fd
        if fd is not None:
            with contextlib.suppress(OSError):  # closed meanwhile by stop()
                os.fsync(fd)

    def record_request(self, operation: str, body: bytes) -> bool:
        """Called with moto held, for every DynamoDB call it answered 200: True when recorded
        (the caller then syncs before returning)."""
        if operation not in WRITE_OPERATIONS:
            return False
        return self._append({"op": operation, "params": json.loads(body or b"{}")})

    def record_dispatched(self, keys: list[str]) -> None:
        if keys and self._append({"dispatched": keys}):
            self.sync()

    def record_queued(self, bodies: list[str]) -> None:
        """Delivery orders put on the delivery queue (before the send is acknowledged)."""
        if bodies and self._append({"queued": bodies}):
            self.sync()

    def record_consumed(self, bodies: list[str]) -> None:
        """Delivery orders DeliverFunction finished (their messages are deleted)."""
        if bodies and self._append({"consumed": bodies}):
            self.sync()

    def pending_orders(self) -> list[str]:
        """Orders queued and not consumed: what was on the delivery queue at the stop."""
        left: Counter[str] = Counter()
        for entry in self._entries():
            left.update(entry.get("queued") or ())
            left.subtract(entry.get("consumed") or ())
        return [body for body, count in left.items() for _ in range(max(count, 0))]

    # -- replaying ----------------------------------------------------------------------------

    def _entries(self) -> Iterator[dict[str, Any]]:
        if not self.path.is_file():
            return
        with self.path.open("rb") as handle:
            for raw in handle:
                if not raw.endswith(b"\n"):
                    return  # a line cut short by a kill: never acknowledged
                try:
                    yield json.loads(raw)
                except ValueError:
                    return

    def replay(self, client: Any) -> list[dict[str, Any]]:
        """Apply the journal to `client` (moto, before anything reads the tables). Writes that
        create events not yet dispatched are held back and returned, in order, for
        `replay_held` once the dispatcher listens."""
        entries = list(self._entries())
        dispatched: set[str] = set()
        for entry in entries:
            dispatched.update(entry.get("dispatched") or ())
        held: list[dict[str, Any]] = []
        for entry in entries:
            operation = entry.get("op")
            if operation is None:
                continue
            params = entry["params"]
            if (
                operation == "PutItem"
                and params.get("TableName") == self.events_table
                and _event_key(params.get("Item") or {}) not in dispatched
            ):
                held.append(entry)
                continue
            self._apply(client, operation, params)
        return held

    def replay_held(self, client: Any, held: list[dict[str, Any]]) -> None:
        for entry in held:
            self._apply(client, entry["op"], entry["params"])

    def _apply(self, client: Any, operation: str, params: dict[str, Any]) -> None:
        from botocore.exceptions import ClientError

        try:
            getattr(client, _snake(operation))(**_to_client(params))
        except ClientError as exc:  # the same state gives the same answer: report, go on
            print(f"[state] replay of {operation} failed: {exc}", flush=True)
        self.replayed += 1

    def compact(self, client: Any, tables: dict[str, str], ttl: dict[str, str]) -> None:
        """Rewrite the journal as one PutItem per live item (items past their TTL attribute are
        dropped, as DynamoDB would), keeping which events were dispatched."""
        undispatched = set()
        for entry in self._entries():
            if entry.get("op") == "PutItem" and entry["params"].get("TableName") == (
                self.events_table
            ):
                undispatched.add(_event_key(entry["params"].get("Item") or {}))
        for entry in self._entries():
            undispatched.difference_update(entry.get("dispatched") or ())
        now = time.time()
        fresh = self.path.with_suffix(".tmp")
        dispatched: list[str] = []
        descriptor = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            for table_name in tables.values():
                attribute = ttl.get(table_name)
                pages = client.get_paginator("scan").paginate(TableName=table_name)
                for page in pages:
                    for item in page.get("Items", []):
                        expiry = (item.get(attribute) or {}).get("N") if attribute else None
                        if expiry is not None and float(expiry) < now:
                            continue
                        params = _to_wire({"TableName": table_name, "Item": item})
                        out.write(json.dumps({"op": "PutItem", "params": params}) + "\n")
                        if table_name == self.events_table:
                            key = _event_key(item)
                            if key not in undispatched:
                                dispatched.append(key)
            if dispatched:
                out.write(json.dumps({"dispatched": dispatched}) + "\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(fresh, self.path)


def dispatched_keys(records: list[dict[str, Any]], response: Any) -> list[str]:
    """The events of a dispatcher batch that are done: all of them, or those before the first
    batch item failure (Lambda checkpoints there and hands the rest over again)."""
    done = records
    failures = response.get("batchItemFailures") if isinstance(response, dict) else None
    if failures:
        sequence = [r.get("dynamodb", {}).get("SequenceNumber") for r in records]
        failed = [
            sequence.index(f.get("itemIdentifier"))
            for f in failures
            if isinstance(f, dict) and f.get("itemIdentifier") in sequence
        ]
        done = records[: min(failed)] if failed else []
    return [_event_key(r.get("dynamodb", {}).get("Keys") or {}) for r in done]


def resume_retries(
    client: Any, deliveries_table: str, webhooks_table: str, scheduler: Any
) -> list[tuple[str, int]]:
    """Schedule again every delivery that was waiting for a retry, due when it was due (at once
    when that time has passed). Returns (delivery id, attempts made) of each."""
    from hookline.config import settings
    from hookline.domain.policy import waits_for

    schedule = settings().retry_schedule
    resumed: list[tuple[str, int]] = []
    pages = client.get_paginator("scan").paginate(
        TableName=deliveries_table,
        FilterExpression="sk = :meta AND #s = :retrying",
        ExpressionAttributeNames={"#s": "state"},
        ExpressionAttributeValues={":meta": {"S": "META"}, ":retrying": {"S": "retrying"}},
    )
    for page in pages:
        for item in page.get("Items", []):
            community_id = item["community_id"]["S"]
            webhook_id = item["webhook_id"]["S"]
            webhook = client.get_item(
                TableName=webhooks_table,
                Key={"pk": {"S": f"C#{community_id}"}, "sk": {"S": f"W#{webhook_id}"}},
            ).get("Item")
            if webhook is None:
                continue
            done = max(int(item.get("attempts", {}).get("N", "1")), 1)
            retry_count = int(webhook.get("retry_count", {}).get("N", "3"))
            waits = waits_for(retry_count, schedule)[done - 1 :] or [0]
            due = (item.get("next_attempt_at") or {}).get("S")
            if due:
                remaining = (clock.parse_iso(due) - clock.now()).total_seconds()
                waits[0] = max(0, math.ceil(remaining))
            delivery_id = item["pk"]["S"].removeprefix("D#")
            scheduler.schedule(
                delivery_id=delivery_id,
                community_id=community_id,
                webhook_id=webhook_id,
                attempt=done,
                waits=waits,
            )
            resumed.append((delivery_id, done))
    return resumed


class JournaledFunctions(Functions):
    """Functions that journal which events each dispatcher invocation finished, and which
    delivery orders each DeliverFunction invocation finished."""

    journal: Journal | None = None

    def invoke(self, name: str, event: dict[str, Any]) -> Any:
        result = super().invoke(name, event)
        records = event.get("Records") or []
        if name == "dispatch" and self.journal is not None:
            self.journal.record_dispatched(dispatched_keys(records, result))
        if name == "deliver" and self.journal is not None:
            from hookline.local.queue import failed_ids

            retry = failed_ids(result, records)
            self.journal.record_consumed(
                [r["body"] for r in records if r["messageId"] not in retry]
            )
        return result


class JournaledQueue:
    """The delivery queue (SQS in moto) whose sends are journaled before they are answered."""

    def __init__(self, inner: Any, journal: Callable[[], Journal | None]) -> None:
        self.inner = inner
        self._journal = journal

    def send(self, messages: Any) -> list[int]:
        journal = self._journal()
        if journal is not None:
            journal.record_queued([json.dumps(m, separators=(",", ":")) for m in messages])
        failed: list[int] = self.inner.send(messages)
        return failed

    def hold(self, receipts: Any, seconds: int) -> None:
        self.inner.hold(receipts, seconds)


class Persistence:
    """The state directory as the local stack uses it: `restore` right after the tables exist,
    `resume` once the dispatcher's stream reader exists, `close` on stop."""

    def __init__(self, state_dir: Path | None, *, reset_state: bool = False) -> None:
        self.state_dir = state_dir.resolve() if state_dir is not None else None
        if self.state_dir is not None and reset_state:
            reset(self.state_dir)
        self.journal: Journal | None = None
        self._held: list[dict[str, Any]] = []

    def restore(self, client: Any, tables: dict[str, str]) -> None:
        """Replay the journal into the new (empty) tables; events not yet dispatched wait."""
        if self.state_dir is None:
            return
        self.journal = Journal(self.state_dir, tables["EVENTS_TABLE"])
        self._held = self.journal.replay(client)

    def resume(
        self,
        client: Any,
        tables: dict[str, str],
        functions: Functions,
        scheduler: Any,
        queue_url: str = "",
    ) -> list[tuple[str, int]]:
        """Hand undispatched events to the dispatcher, compact the journal, record from now
        on, and reschedule pending retries: (delivery id, attempts made) of each."""
        journal = self.journal
        if journal is None:
            return []
        from hookline.adapters import template
        from hookline.adapters.sqs import SqsDeliveryQueue
        from hookline.local import aws

        journal.replay_held(client, self._held)
        self._held = []
        by_env = {s.env_var: s.ttl_attribute for s in template.table_specs() if s.ttl_attribute}
        ttl = {name: by_env[env] for env, name in tables.items() if env in by_env}
        pending = journal.pending_orders()
        journal.compact(client, tables, ttl)
        journal.open()
        # What was on the delivery queue at the stop goes back on it (and into the journal).
        if pending:
            queue = JournaledQueue(SqsDeliveryQueue(queue_url), lambda: journal)
            queue.send([json.loads(body) for body in pending])
        aws.record_writes(journal.record_request, journal.sync)
        if isinstance(functions, JournaledFunctions):
            functions.journal = journal
        return resume_retries(
            client, tables["DELIVERIES_TABLE"], tables["WEBHOOKS_TABLE"], scheduler
        )

    def close(self) -> None:
        if self.journal is not None:
            from hookline.local import aws

            aws.record_writes(None)
            self.journal.close()
            self.journal = None
