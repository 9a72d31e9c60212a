"""State that survives a restart of `hookline local`: a directory holding the operator key and a
journal of every write to the local tables (hookline_dev.local.storage) and the delivery queue.

Each table write is appended to ``journal.jsonl`` as the item it left (DynamoDB's typed
attributes, binary as base64) or as the key it deleted. The journal is fdatasynced when the
function invocation that wrote ends, before its answer is used (so before the HTTP answer is
sent, the queue message deleted or the stream batch checkpointed): a `kill -9` loses nothing
that was acknowledged. Concurrent invocations share one fdatasync. On start the journal is
replayed into the empty tables in its original order, then compacted (one item per live item;
items past their TTL attribute are dropped, as DynamoDB's TTL would).

Delivery queue messages are journaled when sent and when consumed (deleted, or moved to the
dead letters); those not consumed are queued again on start, with what is left of their delay.

The dispatcher's progress is journaled too (which events it has fanned out). Events published
but not yet dispatched when the stack stopped are written again after the dispatcher's stream
reader exists, so their stream INSERTs are dispatched now; dispatched ones are not handed over
again. Deliveries waiting for a retry are rescheduled for the time they were due.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
import time
from collections.abc import Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hookline import ids
from hookline_dev.local.lambdas import Functions

if TYPE_CHECKING:
    from hookline_dev.local.queue import LocalQueue
    from hookline_dev.local.storage import LocalTables

JOURNAL = "journal.jsonl"
KEY_FILE = "operator-key"
OPERATOR_KEY_ENV = "HOOKLINE_OPERATOR_KEY"


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


def _event_key(item: dict[str, Any]) -> str:
    """An event's key from typed attributes (a stream record's Keys)."""
    return f"{(item.get('pk') or {}).get('S', '')}|{(item.get('sk') or {}).get('S', '')}"


def _python_key(item: dict[str, Any]) -> str:
    return f"{item.get('pk', '')}|{item.get('sk', '')}"


class Journal:
    """The append-only, fsynced record of acknowledged writes (and dispatch progress)."""

    def __init__(self, state_dir: Path, events_table: str = "EVENTS_TABLE") -> None:
        """`events_table` names the events table as writes name it (its environment variable)."""
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
        """Return once everything appended so far is on disk; concurrent callers share one
        fdatasync (group commit)."""
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

    def record_write(self, table: str, keys: dict[str, Any], image: dict[str, Any] | None) -> None:
        """A table write (storage.WriteHook): the item as it now is, or its key when deleted."""
        if image is None:
            self._append({"t": table, "del": keys})
        else:
            self._append({"t": table, "put": image})

    def record_sent(self, messages: list[tuple[str, str, int]]) -> None:
        due = time.time()
        self._append({"sent": {m: {"body": b, "due": due + d} for m, b, d in messages}})

    def record_consumed(self, message_ids: list[str]) -> None:
        self._append({"consumed": message_ids})

    def record_dispatched(self, keys: list[str]) -> None:
        if keys:
            self._append({"dispatched": keys})

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

    def unconsumed_messages(self) -> list[tuple[str, str, int]]:
        """(message id, body, delay left in seconds) of every message sent and not consumed,
        in sending order."""
        sent: dict[str, dict[str, Any]] = {}
        for entry in self._entries():
            sent.update(entry.get("sent") or {})
            for message_id in entry.get("consumed") or ():
                sent.pop(message_id, None)
        now = time.time()
        return [
            (m, p["body"], max(int(p.get("due", now) - now + 0.999), 0)) for m, p in sent.items()
        ]

    def replay(self, tables: Mapping[str, Any]) -> list[str]:
        """Apply the journal to `tables` (environment variable -> StreamedTable, before anything
        reads them). Returns the keys of events written and not yet dispatched, in order."""
        written: dict[str, None] = {}
        dispatched: set[str] = set()
        for entry in self._entries():
            dispatched.update(entry.get("dispatched") or ())
            table = tables.get(entry.get("t", ""))
            if table is None:
                continue
            if "put" in entry:
                item = table.load(entry["put"])
                if entry["t"] == self.events_table:
                    written[_python_key(item)] = None
            elif "del" in entry:
                keys = entry["del"]
                table.unload(keys["pk"]["S"], keys["sk"]["S"])
            self.replayed += 1
        return [key for key in written if key not in dispatched]

    def compact(
        self,
        tables: Mapping[str, Any],
        ttl: Mapping[str, str],
        undispatched: list[str],
        messages: list[tuple[str, str, int]],
    ) -> None:
        """Rewrite the journal as one put per live item (items past their TTL attribute are
        dropped, as DynamoDB would), which events were dispatched (all others), and `messages`
        (those waiting in the queue)."""
        from hookline_dev.local.storage import image

        waiting = set(undispatched)
        now = time.time()
        fresh = self.path.with_suffix(".tmp")
        dispatched: list[str] = []
        descriptor = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            for env, table in tables.items():
                attribute = ttl.get(env)
                for item in table.scan_all():
                    expiry = item.get(attribute) if attribute else None
                    if isinstance(expiry, int | float) and expiry < now:
                        continue
                    entry = {"t": env, "put": image(item)}
                    out.write(json.dumps(entry, separators=(",", ":")) + "\n")
                    if env == self.events_table and _python_key(item) not in waiting:
                        dispatched.append(_python_key(item))
            if dispatched:
                out.write(json.dumps({"dispatched": dispatched}) + "\n")
            if messages:
                sent = {m: {"body": b, "due": now + d} for m, b, d in messages}
                out.write(json.dumps({"sent": sent}) + "\n")
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


def resume_retries(tables: LocalTables, scheduler: Any) -> list[tuple[str, int]]:
    """Start again the retry group of every delivery that was waiting for a retry, its next
    round due when its earliest member is due (at once when that time has passed). Returns
    (delivery id, attempts made) of each."""
    resumed: list[tuple[str, int]] = []
    groups: dict[str, list[dict[str, Any]]] = {}
    for item in tables.deliveries.scan_all():
        # Delivery items (hookline.domain.delivery_repository.DeliveryRepository: sk "D#<id>").
        if not str(item.get("sk", "")).startswith("D#") or item.get("state") != "retrying":
            continue
        if item.get("retry_group"):
            groups.setdefault(str(item["retry_group"]), []).append(item)
    for name, items in groups.items():
        scheduler.schedule(name=name, document=_resumed_document(name, items))
        for item in items:
            resumed.append((str(item["id"]), max(int(item.get("attempts", 1)), 1)))
    return resumed


def _resumed_document(name: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    """The workflow document of a group resumed with these members. A window group keeps its
    whole window and its first round, so a member written after the restart still joins it."""
    from hookline import clock
    from hookline.config import settings
    from hookline.domain import policy

    config = settings()
    scale = config.retry_time_scale
    community_id, webhook_id = str(items[0]["community_id"]), str(items[0]["webhook_id"])
    created = sorted(str(i["created_at"]) for i in items)
    dues = [i.get("next_attempt_at") for i in items]
    wait = min((policy.seconds_until(str(d), scale) for d in dues if d), default=0)
    since = created[0]
    until = clock.iso(clock.parse_iso(created[-1]) + timedelta(milliseconds=1))
    generation = policy.window_generation(
        name,
        webhook_id=webhook_id,
        created_at=created[0],
        window_seconds=config.retry_group_window_seconds,
        time_scale=scale,
    )
    if generation is not None:
        _, window, _ = policy.window_group(
            community_id=community_id,
            webhook_id=webhook_id,
            created_at=created[0],
            window_seconds=config.retry_group_window_seconds,
            schedule=config.retry_schedule,
            time_scale=scale,
            generation=generation,
        )
        since, until = window["since"], window["until"]
        wait = min(wait, window["wait_seconds"])
    return policy.workflow_document(
        community_id=community_id,
        webhook_id=webhook_id,
        group=name,
        since=since,
        until=until,
        attempt=1,
        wait_seconds=wait,
    )


class JournaledFunctions(Functions):
    """Functions whose invocations end with the journal synced: what an invocation wrote (and,
    for the dispatcher, which events it finished) is on disk before its answer is used."""

    journal: Journal | None = None

    def invoke(self, name: str, event: dict[str, Any]) -> Any:
        try:
            result = super().invoke(name, event)
            if name == "dispatch" and self.journal is not None:
                records = event.get("Records") or []
                self.journal.record_dispatched(dispatched_keys(records, result))
            return result
        finally:
            if self.journal is not None:
                self.journal.sync()


class Persistence:
    """The state directory as the local stack uses it: `restore` right after the tables exist,
    `resume` once the dispatcher's stream reader exists, `close` on stop."""

    def __init__(self, state_dir: Path | None, *, reset_state: bool = False) -> None:
        self.state_dir = state_dir.resolve() if state_dir is not None else None
        if self.state_dir is not None and reset_state:
            reset(self.state_dir)
        self.journal: Journal | None = None
        self._undispatched: list[str] = []

    def restore(self, tables: LocalTables) -> None:
        """Replay the journal into the new (empty) tables; events not yet dispatched wait."""
        if self.state_dir is None:
            return
        self.journal = Journal(self.state_dir)
        self._undispatched = self.journal.replay(tables.by_env)

    def resume(
        self, tables: LocalTables, queue: LocalQueue, functions: Functions, scheduler: Any
    ) -> list[tuple[str, int]]:
        """Hand undispatched events to the dispatcher, queue unconsumed messages again,
        compact the journal, record from now on, and reschedule pending retries: (delivery
        id, attempts made) of each."""
        journal = self.journal
        if journal is None:
            return []
        for key in self._undispatched:
            pk, sk = key.split("|", 1)
            item = tables.events.get(pk, sk)
            if item is not None:
                tables.events.announce(item)
        messages = journal.unconsumed_messages()
        queue.send_bodies(messages)
        journal.compact(tables.by_env, tables.ttl, self._undispatched, messages)
        self._undispatched = []
        journal.open()
        tables.hook(journal.record_write)
        queue.on_sent = journal.record_sent
        queue.on_consumed = journal.record_consumed
        if isinstance(functions, JournaledFunctions):
            functions.journal = journal
        return resume_retries(tables, scheduler)

    def sync(self) -> None:
        if self.journal is not None:
            self.journal.sync()

    def close(self, tables: LocalTables | None = None) -> None:
        if tables is not None:
            tables.hook(None)
        if self.journal is not None:
            self.journal.close()
            self.journal = None
