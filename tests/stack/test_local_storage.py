"""The local stack's tables against DynamoDB's behaviour as moto serves it: the same writes give
the same stream records (names, keys, images, view type) and the same condition failures."""

from __future__ import annotations

from typing import Any

import pytest

from hookline.errors import ConditionFailed
from hookline_dev.local import aws
from hookline_dev.local.storage import LocalTables, StreamedTable


def _writes(table: Any) -> None:
    """put, conditional put refused, update, conditional update refused, delete, delete of
    nothing."""
    table.put(
        {
            "pk": "C#c",
            "sk": "E#1",
            "n": 1,
            "f": 0.5,
            "big": 1e20,
            "tags": ["a", 2, True],
            "m": {"x": None, "y": {"z": -3.25}},
            "blob": b"\x00\xff",
            "names": {"b"},
        }
    )
    with pytest.raises(ConditionFailed):
        table.put({"pk": "C#c", "sk": "E#1"}, if_absent=True)
    table.update("C#c", "E#1", set={"state": "done"}, add={"n": 2}, remove=["tags"])
    with pytest.raises(ConditionFailed):
        table.update("C#c", "E#1", set={"state": "x"}, expect={"state": "pending"})
    with pytest.raises(ConditionFailed):
        table.update("C#c", "E#2", set={"state": "x"})
    table.delete("C#c", "E#1")
    table.delete("C#c", "E#1")


def _shape(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "eventName": r["eventName"],
            "eventSource": r["eventSource"],
            "eventVersion": r["eventVersion"],
            "fields": sorted(r),
            "dynamodb": sorted(r["dynamodb"]),
            "Keys": r["dynamodb"]["Keys"],
            "NewImage": r["dynamodb"].get("NewImage"),
            "StreamViewType": r["dynamodb"]["StreamViewType"],
        }
        for r in records
    ]


def test_stream_records_match_moto_for_the_same_writes() -> None:
    from hookline.adapters.dynamodb import DynamoTable
    from hookline_dev import template
    from hookline_dev.local.poller import StreamReader

    with aws.moto_session() as session:
        client = session.client("dynamodb")
        names = template.create_tables(client, "conformance")
        name = names["EventsTable"]
        reader = StreamReader(client.describe_table(TableName=name)["Table"]["LatestStreamArn"])
        _writes(DynamoTable(name))
        moto_records = reader.read()

    local = LocalTables().events
    subscription = local.subscribe()
    _writes(local)
    local_records = subscription.read()

    assert [r["eventName"] for r in local_records] == ["INSERT", "MODIFY", "REMOVE"]
    assert _shape(local_records) == _shape(moto_records)
    sequence = [int(r["dynamodb"]["SequenceNumber"]) for r in local_records]
    assert sequence == sorted(sequence) and len(set(sequence)) == 3


def test_images_are_what_boto3_makes_and_read_back_as_the_adapter_reads() -> None:
    from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

    from hookline.adapters.dynamodb import to_dynamo, to_python
    from hookline_dev.local.poller import lambda_record
    from hookline_dev.local.storage import image, item_of

    item = {
        "s": "x",
        "i": -7,
        "f": 2.5,
        "tiny": 1e-7,
        "t": True,
        "none": None,
        "l": [1, "a", [b"\x01"]],
        "m": {"k": {"deep": 0.1}},
        "ss": {"a", "b"},
        "ns": {1, 2},
        "bs": {b"\x02"},
        "empty": "",
    }
    boto = {k: TypeSerializer().serialize(to_dynamo(v)) for k, v in item.items()}
    as_json = lambda_record({"dynamodb": {"NewImage": boto}}, "arn")["dynamodb"]["NewImage"]
    ours = image(item)
    for name in ("ss", "ns", "bs"):  # set members in any order
        (kind,) = ours[name]
        assert sorted(ours[name][kind]) == sorted(as_json[name][kind])
        as_json.pop(name), ours.pop(name)
    assert ours == as_json
    back = to_python({k: TypeDeserializer().deserialize(v) for k, v in boto.items()})
    assert item_of(image(item)) == back == item
    with pytest.raises(TypeError):
        image({"bad": object()})


def test_new_and_old_images_follow_the_view_type() -> None:
    table = StreamedTable("t", "T_TABLE", {}, view_type="NEW_AND_OLD_IMAGES")
    reader = table.subscribe()
    table.put({"pk": "a", "sk": "1", "v": 1})
    table.update("a", "1", set={"v": 2})
    table.delete("a", "1")
    inserted, modified, removed = (r["dynamodb"] for r in reader.read())
    assert "OldImage" not in inserted and inserted["NewImage"]["v"] == {"N": "1"}
    assert modified["OldImage"]["v"] == {"N": "1"} and modified["NewImage"]["v"] == {"N": "2"}
    assert removed["OldImage"]["v"] == {"N": "2"} and "NewImage" not in removed


def test_keys_only_records_and_readers_start_at_latest() -> None:
    table = StreamedTable("t", "T_TABLE", {}, view_type="KEYS_ONLY")
    table.put({"pk": "early", "sk": "1"})
    reader = table.subscribe()
    table.put({"pk": "a", "sk": "1", "v": 1})
    (record,) = reader.read()
    assert record["dynamodb"]["Keys"] == {"pk": {"S": "a"}, "sk": {"S": "1"}}
    assert "NewImage" not in record["dynamodb"] and "OldImage" not in record["dynamodb"]
    assert reader.read() == []
