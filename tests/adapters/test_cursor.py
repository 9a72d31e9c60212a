"""Pagination cursors: only well-formed keys of the queried list decode, and only cursors
signed with the configured key verify."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from hookline.adapters import cursor as cursors
from hookline.errors import InvalidCursor
from hookline.ports import Query
from hookline_dev.memory import MemoryTable

KEY = cursors.signing_key("hk_operator_for_cursor_tests")


def _raw(key: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


def test_a_cursor_round_trips() -> None:
    item = {"pk": "C#c1", "sk": "W#w1", "name": "x"}
    cursor = cursors.after(item, "pk", "sk")
    assert cursors.decode(cursor, partition_attr="pk", partition="C#c1", prefix="W#") == {
        "pk": "C#c1",
        "sk": "W#w1",
    }
    assert cursors.verify(cursors.sign(cursor, KEY), KEY) == cursor


@pytest.mark.parametrize(
    "key",
    [
        {"pk": "C#c1"},  # the reproduction: a key set DynamoDB refuses
        {"pk": "C#c1", "sk": "W#w1", "extra": "x"},
        {"pk": "C#c1", "sk": 5},
        {"pk": "C#c1", "sk": ""},
        {"pk": "C#other", "sk": "W#w1"},
        {"pk": "C#c1", "sk": "E#e1"},  # another list of the same partition
        ["C#c1", "W#w1"],
        "C#c1",
    ],
)
def test_malformed_keys_are_refused(key: Any) -> None:
    with pytest.raises(InvalidCursor):
        cursors.decode(_raw(key), partition_attr="pk", partition="C#c1", prefix="W#")


@pytest.mark.parametrize("text", ["", "!!!", "bm90IGpzb24", "x" * 3])
def test_garbage_is_refused(text: str) -> None:
    with pytest.raises(InvalidCursor):
        cursors.decode(text, partition_attr="pk", partition="C#c1")


def test_index_cursors_need_the_index_keys() -> None:
    item = {"pk": "D#d1", "sk": "META", "gsi1pk": "WD#w1", "gsi1sk": "2026#d1"}
    cursor = cursors.after(item, "gsi1pk", "gsi1sk")
    decoded = cursors.decode(
        cursor, partition_attr="gsi1pk", partition="WD#w1", range_attr="gsi1sk"
    )
    assert decoded == item
    without_index_keys = _raw({"pk": "D#d1", "sk": "META"})
    with pytest.raises(InvalidCursor):
        cursors.decode(
            without_index_keys, partition_attr="gsi1pk", partition="WD#w1", range_attr="gsi1sk"
        )


def test_a_cursor_outside_the_time_range_is_refused() -> None:
    cursor = cursors.after({"pk": "C#c1", "sk": "E#1", "gsi1sk": "2026-01-05#e"}, "pk", "gsi1sk")
    decode = {"partition_attr": "pk", "partition": "C#c1", "range_attr": "gsi1sk"}
    assert cursors.decode(cursor, **decode, after="2026-01-01", before="2026-01-09")
    with pytest.raises(InvalidCursor):
        cursors.decode(cursor, **decode, after="2026-01-06")
    with pytest.raises(InvalidCursor):
        cursors.decode(cursor, **decode, before="2026-01-05")


def test_signatures_are_checked() -> None:
    cursor = cursors.after({"pk": "C#c1", "sk": "W#w1"}, "pk", "sk")
    signed = cursors.sign(cursor, KEY)
    other_key = cursors.signing_key("another operator key")
    raw, _, mac = signed.rpartition(".")
    forged = cursors.after({"pk": "C#c1", "sk": "W#w9"}, "pk", "sk")
    for bad in (cursor, f"{forged}.{mac}", f"{raw}.{mac[:-1]}", f"{raw}.", f".{mac}", "a.b.c"):
        with pytest.raises(InvalidCursor):
            cursors.verify(bad, KEY)
    with pytest.raises(InvalidCursor):
        cursors.verify(signed, other_key)


def test_no_signing_without_a_secret() -> None:
    with pytest.raises(RuntimeError):
        cursors.signing_key("")


def test_the_memory_table_checks_cursors_like_dynamodb() -> None:
    table = MemoryTable("t")
    for n in range(3):
        table.put({"pk": "C#c1", "sk": f"W#{n}"})
        table.put({"pk": "C#c1", "sk": f"E#{n}"})
    page = table.query(Query("C#c1", prefix="W#", limit=1))
    assert page.cursor is not None
    assert [i["sk"] for i in table.query(Query("C#c1", prefix="W#", cursor=page.cursor)).items] == [
        "W#1",
        "W#2",
    ]
    with pytest.raises(InvalidCursor):
        table.query(Query("C#c1", prefix="E#", cursor=page.cursor))
