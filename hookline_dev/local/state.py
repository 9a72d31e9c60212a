"""State that survives a restart of `hookline local`: a directory holding the operator key and a
journal of every DynamoDB write and SQS message moto acknowledged.

Each write (PutItem, UpdateItem, DeleteItem, BatchWriteItem, TransactWriteItems) is appended to
``journal.jsonl`` and fsynced before the call returns to the handler, so before the HTTP answer
is sent: a `kill -9` loses nothing that was acknowledged. On start the journal is replayed into
a fresh moto in its original order, then compacted (one PutItem per live item).

SQS messages are journaled by id when sent, and as consumed when deleted (the receipt handle a
ReceiveMessage answer gave names the message); those not consumed are sent again on start.

The dispatcher's progress is journaled too (which events it has fanned out). Events published
but not yet dispatched when the stack stopped are written again after the dispatcher's stream
reader exists, so their stream INSERTs are dispatched now; dispatched ones are not handed over
again. Deliveries waiting for a retry are rescheduled for the time they were due.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from hookline import ids
from hookline_dev.local.lambdas import REGION, Functions

JOURNAL = "journal.jsonl"
KEY_FILE = "operator-key"
OPERATOR_KEY_ENV = "HOOKLINE_OPERATOR_KEY"
WRITE_OPERATIONS = frozenset(
    {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
)
#: What a message carries when sent again (its attributes; SQS gives it a new id).
_MESSAGE_FIELDS = ("MessageBody", "MessageAttributes", "MessageGroupId", "MessageDeduplicationId")


def operator_key(state_dir: Path | None, given: str | None) -> tuple[str, str]:
    """(key, where it came from): given > HOOKLINE_OPERATOR_KEY > the state directory's file
    (created with a new key the first time). Without a state directory, a new key."""
    if given:
        return given, "given"
    from_env = os.environ.get(OPERATOR_KEY_ENV, "").strip()
    if from_env:
        return from_env, "env"
    if state_dir is None:
        return ids.new_api_key(), "generated"
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
        # Guards the file and the group commit: lines appended, lines known durable, and
        # whether a thread is in fdatasync now (the others wait for it rather than sync again).
        self._lock = threading.Condition()
        self._appended = 0
        self._synced = 0
        self._syncing = False
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
            self._lock.notify_all()

    def _append(self, entry: dict[str, Any]) -> bool:
        line = (json.dumps(entry, separators=(",", ":")) + "\n").encode()
        with self._lock:
            if self._fd is None:
                return False
            os.write(self._fd, line)
            self._appended += 1
        return True

    def sync(self) -> None:
        """Return once everything appended so far is on disk. Called outside moto's lock;
        concurrent callers share one fdatasync (group commit)."""
        with self._lock:
            target = self._appended
            while self._synced < target and self._fd is not None:
                if self._syncing:
                    self._lock.wait()
                    continue
                self._syncing, upto, fd = True, self._appended, self._fd
                self._lock.release()
                try:
                    with contextlib.suppress(OSError):  # closed meanwhile by stop()
                        os.fdatasync(fd)
                finally:
                    self._lock.acquire()
                    self._syncing = False
                    self._synced = max(self._synced, upto)
                    self._lock.notify_all()

    def record_request(self, service: str, operation: str, body: bytes, answer: bytes) -> bool:
        """Called with moto held, for every DynamoDB or SQS call it answered 200: True when
        recorded (the caller then syncs before returning)."""
        if service == "sqs":
            entry = _sqs_entry(operation, json.loads(body or b"{}"), json.loads(answer or b"{}"))
            return entry is not None and self._append(entry)
        if operation not in WRITE_OPERATIONS:
            return False
        return self._append({"op": operation, "params": json.loads(body or b"{}")})

    def record_dispatched(self, keys: list[str]) -> None:
        if keys and self._append({"dispatched": keys}):
            self.sync()

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

    def unconsumed_messages(self) -> list[dict[str, Any]]:
        """SendMessage parameters of every message sent and not deleted, in sending order."""
        sent: dict[str, dict[str, Any]] = {}
        received: dict[str, str] = {}
        deleted: set[str] = set()
        for entry in self._entries():
            for message_id, params in (entry.get("sent") or {}).items():
                sent[message_id] = params
            received.update(entry.get("received") or {})
            deleted.update(entry.get("deleted") or ())
        for handle in deleted:
            sent.pop(received.get(handle, ""), None)
        return list(sent.values())

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

    def resend_messages(self, sqs: Any) -> dict[str, dict[str, Any]]:
        """Send every unconsumed message again: new message id -> its parameters."""
        from botocore.exceptions import ClientError

        resent = {}
        for params in self.unconsumed_messages():
            try:
                resent[sqs.send_message(**params)["MessageId"]] = params
            except ClientError as exc:
                print(f"[state] could not send a message again: {exc}", flush=True)
        return resent

    def compact(
        self,
        client: Any,
        tables: dict[str, str],
        ttl: dict[str, str],
        messages: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        """Rewrite the journal as one PutItem per live item (items past their TTL attribute are
        dropped, as DynamoDB would), keeping which events were dispatched and `messages`, the
        SQS messages now waiting (by id)."""
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
            if messages:
                out.write(json.dumps({"sent": messages}) + "\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(fresh, self.path)


def _sqs_entry(
    operation: str, request: dict[str, Any], answer: dict[str, Any]
) -> dict[str, Any] | None:
    """The journal entry of an SQS call: messages sent (by id), handed out, or consumed."""
    queue = request.get("QueueUrl")
    if operation == "SendMessage":
        params = {k: request[k] for k in _MESSAGE_FIELDS if k in request}
        return {"sent": {answer["MessageId"]: {"QueueUrl": queue, **params}}}
    if operation == "SendMessageBatch":
        by_entry = {e["Id"]: e for e in request.get("Entries") or []}
        sent = {
            ok["MessageId"]: {
                "QueueUrl": queue,
                **{k: by_entry[ok["Id"]][k] for k in _MESSAGE_FIELDS if k in by_entry[ok["Id"]]},
            }
            for ok in answer.get("Successful") or []
        }
        return {"sent": sent} if sent else None
    if operation == "ReceiveMessage":
        handed = {m["ReceiptHandle"]: m["MessageId"] for m in answer.get("Messages") or []}
        return {"received": handed} if handed else None
    if operation == "DeleteMessage":
        return {"deleted": [request["ReceiptHandle"]]}
    if operation == "DeleteMessageBatch":
        deleted = [e["ReceiptHandle"] for e in request.get("Entries") or []]
        return {"deleted": deleted} if deleted else None
    return None


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
    """Start again the retry group of every delivery that was waiting for a retry, its next
    round due when its earliest member is due (at once when that time has passed). Returns
    (delivery id, attempts made) of each."""
    from hookline import clock
    from hookline.config import settings
    from hookline.domain import policy

    scale = settings().retry_time_scale
    resumed: list[tuple[str, int]] = []
    groups: dict[str, list[dict[str, Any]]] = {}
    pages = client.get_paginator("scan").paginate(
        TableName=deliveries_table,
        FilterExpression="sk = :meta AND #s = :retrying",
        ExpressionAttributeNames={"#s": "state"},
        ExpressionAttributeValues={":meta": {"S": "META"}, ":retrying": {"S": "retrying"}},
    )
    for page in pages:
        for item in page.get("Items", []):
            group = (item.get("retry_group") or {}).get("S")
            if group:
                groups.setdefault(group, []).append(item)
    for name, items in groups.items():
        created = sorted(i["created_at"]["S"] for i in items)
        dues = [(i.get("next_attempt_at") or {}).get("S") for i in items]
        wait = min((policy.seconds_until(d, scale) for d in dues if d), default=0)
        last = clock.parse_iso(created[-1]) + timedelta(milliseconds=1)
        scheduler.schedule(
            name=name,
            document=policy.workflow_document(
                community_id=items[0]["community_id"]["S"],
                webhook_id=items[0]["webhook_id"]["S"],
                group=name,
                since=created[0],
                until=clock.iso(last),
                attempt=1,
                wait_seconds=wait,
            ),
        )
        for item in items:
            done = max(int(item.get("attempts", {}).get("N", "1")), 1)
            resumed.append((item["pk"]["S"].removeprefix("D#"), done))
    return resumed


class JournaledFunctions(Functions):
    """Functions that journal which events each dispatcher invocation finished."""

    journal: Journal | None = None

    def invoke(self, name: str, event: dict[str, Any]) -> Any:
        result = super().invoke(name, event)
        if name == "dispatch" and self.journal is not None:
            records = event.get("Records") or []
            self.journal.record_dispatched(dispatched_keys(records, result))
        return result


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
        self, client: Any, tables: dict[str, str], functions: Functions, scheduler: Any
    ) -> list[tuple[str, int]]:
        """Hand undispatched events to the dispatcher, compact the journal, record from now
        on, and reschedule pending retries: (delivery id, attempts made) of each."""
        journal = self.journal
        if journal is None:
            return []
        from hookline_dev import template
        from hookline_dev.local import aws

        journal.replay_held(client, self._held)
        self._held = []
        import boto3

        messages = journal.resend_messages(boto3.client("sqs", region_name=REGION))
        by_env = {s.env_var: s.ttl_attribute for s in template.table_specs() if s.ttl_attribute}
        ttl = {name: by_env[env] for env, name in tables.items() if env in by_env}
        journal.compact(client, tables, ttl, messages)
        journal.open()
        aws.record_writes(journal.record_request, journal.sync)
        if isinstance(functions, JournaledFunctions):
            functions.journal = journal
        return resume_retries(
            client, tables["DELIVERIES_TABLE"], tables["WEBHOOKS_TABLE"], scheduler
        )

    def close(self) -> None:
        if self.journal is not None:
            from hookline_dev.local import aws

            aws.record_writes(None)
            self.journal.close()
            self.journal = None
