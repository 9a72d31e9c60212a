"""The local stack's journal on its own, over moto: wire-format writes replayed in order (binary
attributes included), a line torn by a kill ignored, expired items compacted away, and one
fdatasync shared by concurrent writers."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from hookline_dev.local import aws
from hookline_dev.local.state import JOURNAL, Journal


def _table(client: Any, name: str) -> None:
    client.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
    )


def _put(pk: str, **extra: Any) -> bytes:
    return json.dumps({"TableName": "t", "Item": {"pk": {"S": pk}, **extra}}).encode()


def test_replay_applies_writes_in_order_and_ignores_a_torn_line(tmp_path: Path) -> None:
    journal = Journal(tmp_path, "events")
    journal.open()
    assert journal.record_request(
        "dynamodb", "PutItem", _put("a", blob={"B": "AAEC"}, n={"N": "1"}), b"{}"
    )
    update = {
        "TableName": "t",
        "Key": {"pk": {"S": "a"}},
        "UpdateExpression": "SET n = n + :one",
        "ExpressionAttributeValues": {":one": {"N": "1"}},
    }
    assert journal.record_request("dynamodb", "UpdateItem", json.dumps(update).encode(), b"{}")
    assert journal.record_request("dynamodb", "PutItem", _put("b"), b"{}")
    assert not journal.record_request(
        "dynamodb", "GetItem", b"{}", b"{}"
    )  # reads are not journaled
    journal.sync()
    journal.close()
    with (tmp_path / JOURNAL).open("ab") as handle:
        handle.write(b'{"op":"DeleteItem","params":{"TableName":"t","Key":{"pk":')  # torn by a kill

    with aws.moto_session() as session:
        client = session.client("dynamodb")
        _table(client, "t")
        held = Journal(tmp_path, "events").replay(client)
        assert held == []
        item = client.get_item(TableName="t", Key={"pk": {"S": "a"}})["Item"]
        assert item["blob"] == {"B": b"\x00\x01\x02"}
        assert item["n"] == {"N": "2"}
        assert "Item" in client.get_item(TableName="t", Key={"pk": {"S": "b"}})


def test_compaction_keeps_live_items_and_drops_expired_ones(tmp_path: Path) -> None:
    with aws.moto_session() as session:
        client = session.client("dynamodb")
        _table(client, "t")
        past, future = str(int(time.time()) - 10), str(int(time.time()) + 3600)
        client.put_item(TableName="t", Item={"pk": {"S": "old"}, "expires_at": {"N": past}})
        client.put_item(TableName="t", Item={"pk": {"S": "new"}, "expires_at": {"N": future}})
        journal = Journal(tmp_path, "events")
        journal.compact(client, {"T": "t"}, {"t": "expires_at"})
        lines = [json.loads(x) for x in (tmp_path / JOURNAL).read_text().splitlines()]
        assert [line["params"]["Item"]["pk"]["S"] for line in lines] == ["new"]
        assert oct((tmp_path / JOURNAL).stat().st_mode & 0o777) == "0o600"


def test_concurrent_writers_share_fdatasync(tmp_path: Path, monkeypatch: Any) -> None:
    import hookline_dev.local.state as state

    calls = []

    def slow_sync(fd: int) -> None:
        calls.append(fd)
        time.sleep(0.02)

    monkeypatch.setattr(state.os, "fdatasync", slow_sync)
    journal = Journal(tmp_path, "events")
    journal.open()

    def write(n: int) -> None:
        for i in range(10):
            journal.record_request("dynamodb", "PutItem", _put(f"{n}-{i}"), b"{}")
            journal.sync()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    journal.close()
    assert len((tmp_path / JOURNAL).read_text().splitlines()) == 80
    assert len(calls) < 80  # writers waiting meanwhile were covered by one sync


def test_unconsumed_sqs_messages_are_sent_again(tmp_path: Path) -> None:
    with aws.moto_session() as session:
        sqs = session.client("sqs")
        queue = sqs.create_queue(QueueName="q")["QueueUrl"]
        journal = Journal(tmp_path, "events")
        journal.open()
        aws.record_writes(journal.record_request, journal.sync)
        try:
            sqs.send_message(QueueUrl=queue, MessageBody="consumed")
            sqs.send_message_batch(
                QueueUrl=queue,
                Entries=[
                    {"Id": "1", "MessageBody": "waiting"},
                    {"Id": "2", "MessageBody": "taken"},
                ],
            )
            handed = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
            by_body = {m["Body"]: m["ReceiptHandle"] for m in handed}
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=by_body["consumed"])
            sqs.delete_message_batch(
                QueueUrl=queue, Entries=[{"Id": "a", "ReceiptHandle": by_body["taken"]}]
            )
        finally:
            aws.record_writes(None)
            journal.close()

    with aws.moto_session() as session:  # a fresh moto, as after a restart
        sqs = session.client("sqs")
        queue = sqs.create_queue(QueueName="q")["QueueUrl"]
        resent = Journal(tmp_path, "events").resend_messages(sqs)
        assert [p["MessageBody"] for p in resent.values()] == ["waiting"]
        waiting = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
        assert [m["Body"] for m in waiting] == ["waiting"]
