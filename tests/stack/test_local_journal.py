"""The local stack's journal, tables and queue on their own: writes replayed in order (binary
attributes included), a line torn by a kill ignored, expired items compacted away, undispatched
events announced again, unconsumed queue messages queued again, SQS's visibility, receive count
and redrive, and one fdatasync shared by concurrent writers."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from hookline_dev.local.queue import LocalQueue
from hookline_dev.local.state import JOURNAL, Journal
from hookline_dev.local.storage import LocalTables


def _journaled(tmp_path: Path) -> tuple[Journal, LocalTables]:
    journal = Journal(tmp_path)
    journal.open()
    tables = LocalTables()
    tables.hook(journal.record_write)
    return journal, tables


def test_replay_applies_writes_in_order_and_ignores_a_torn_line(tmp_path: Path) -> None:
    journal, tables = _journaled(tmp_path)
    tables.webhooks.put({"pk": "a", "sk": "1", "blob": b"\x00\x01\x02", "n": 1, "f": 1.5})
    tables.webhooks.update("a", "1", add={"n": 1}, set={"tags": {"x", "y"}})
    tables.webhooks.put({"pk": "b", "sk": "1"})
    tables.webhooks.put({"pk": "c", "sk": "1"})
    tables.webhooks.delete("c", "1")
    journal.sync()
    journal.close()
    with (tmp_path / JOURNAL).open("ab") as handle:
        handle.write(b'{"t":"WEBHOOKS_TABLE","del":{"pk":{"S":"b"')  # torn by a kill

    fresh = LocalTables()
    Journal(tmp_path).replay(fresh.by_env)
    assert fresh.webhooks.get("a", "1") == {
        "pk": "a",
        "sk": "1",
        "blob": b"\x00\x01\x02",
        "n": 2,
        "f": 1.5,
        "tags": {"x", "y"},
    }
    assert fresh.webhooks.get("b", "1") is not None
    assert fresh.webhooks.get("c", "1") is None


def test_compaction_keeps_live_items_and_drops_expired_ones(tmp_path: Path) -> None:
    journal, tables = _journaled(tmp_path)
    past, future = int(time.time()) - 10, int(time.time()) + 3600
    tables.webhooks.put({"pk": "old", "sk": "1", "expires_at": past})
    tables.webhooks.put({"pk": "new", "sk": "1", "expires_at": future})
    journal.close()
    journal.compact(tables.by_env, tables.ttl, [], [])
    lines = [json.loads(x) for x in (tmp_path / JOURNAL).read_text().splitlines()]
    assert [line["put"]["pk"]["S"] for line in lines] == ["new"]
    assert oct((tmp_path / JOURNAL).stat().st_mode & 0o777) == "0o600"


def test_undispatched_events_are_returned_in_order_and_announced(tmp_path: Path) -> None:
    journal, tables = _journaled(tmp_path)
    for n in range(3):
        tables.events.put({"pk": "C#c", "sk": f"E#{n}"})
    journal.record_dispatched(["C#c|E#1"])
    journal.close()
    fresh = LocalTables()
    assert Journal(tmp_path).replay(fresh.by_env) == ["C#c|E#0", "C#c|E#2"]
    reader = fresh.events.subscribe()
    fresh.events.announce({"pk": "C#c", "sk": "E#0"})
    (record,) = reader.read()
    assert record["eventName"] == "INSERT"
    assert record["dynamodb"]["Keys"] == {"pk": {"S": "C#c"}, "sk": {"S": "E#0"}}


def test_concurrent_writers_share_fdatasync(tmp_path: Path, monkeypatch: Any) -> None:
    import hookline_dev.local.state as state

    calls = []

    def slow_sync(fd: int) -> None:
        calls.append(fd)
        time.sleep(0.02)

    monkeypatch.setattr(state.os, "fdatasync", slow_sync)
    journal, tables = _journaled(tmp_path)

    def write(n: int) -> None:
        for i in range(10):
            tables.deliveries.put({"pk": f"{n}", "sk": f"{i}"})
            journal.sync()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    journal.close()
    assert len((tmp_path / JOURNAL).read_text().splitlines()) == 80
    assert len(calls) < 80  # writers waiting meanwhile were covered by one sync


def test_unconsumed_queue_messages_are_queued_again(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.open()
    queue = LocalQueue(max_receives=1, visibility_timeout=0)
    queue.on_sent, queue.on_consumed = journal.record_sent, journal.record_consumed
    queue.send([{"n": "consumed"}, {"n": "dead"}])
    handed = {json.loads(r["body"])["n"]: r for r in queue.receive(10)}
    assert sorted(handed) == ["consumed", "dead"]
    queue.delete([handed["consumed"]["receiptHandle"]])
    assert queue.receive(1) == []  # "dead" was received once, then redriven (consumed too)
    queue.send([{"n": "waiting"}])
    queue.send([{"n": "later"}], delay_seconds=60)
    journal.close()

    waiting = Journal(tmp_path).unconsumed_messages()
    assert [json.loads(body)["n"] for _, body, _ in waiting] == ["waiting", "later"]
    assert waiting[0][2] == 0
    assert 58 <= waiting[1][2] <= 60


def test_queue_semantics_visibility_receive_count_and_dead_letters() -> None:
    queue = LocalQueue(max_receives=2, visibility_timeout=0.2)
    queue.send([{"n": 1}])
    (first,) = queue.receive(10)
    assert first["attributes"]["ApproximateReceiveCount"] == "1"
    assert first["eventSource"] == "aws:sqs" and first["eventSourceARN"] == queue.arn
    assert queue.receive(10) == []  # invisible until its visibility timeout ends
    (again,) = queue.receive(10, wait=1.0)
    assert again["messageId"] == first["messageId"]
    assert again["attributes"]["ApproximateReceiveCount"] == "2"
    queue.delete([first["receiptHandle"]])  # a handle from an earlier receive deletes nothing
    # Received max_receives times and handed back: the redrive policy moves it.
    assert queue.receive(10, wait=0.5) == []
    assert [m["messageId"] for m in queue.dead_letters] == [first["messageId"]]

    queue.send([{"n": 2}], delay_seconds=1)
    assert queue.receive(10) == []  # delayed
    (delayed,) = queue.receive(10, wait=2.0)
    assert json.loads(delayed["body"]) == {"n": 2}
    queue.delete([delayed["receiptHandle"]])
    assert queue.receive(10, wait=0.4) == []  # deleted: never handed out again
