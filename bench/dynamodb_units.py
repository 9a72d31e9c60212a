"""DynamoDB request units as DynamoDB bills them, counted on the real code paths.

Item sizes follow DynamoDB's documented sizing rules; a write costs 1 WRU per KB of the larger of
the old and new item, plus the writes of every index template.yaml declares for the table, by
its projection; a read 1 RRU per 4 KB strongly consistent, half that eventually consistent.
``CountingTables`` wraps the in-memory tables and records each request's cost (bench/b6_cost.py
and tests/delivery/test_delivery_writes.py use it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from hookline.ports import Item, Page, Query
from hookline_dev.memory import MemoryTable, MemoryTables


def attribute_size(value: Any) -> int:
    """Bytes DynamoDB counts for one attribute value (its documented sizing rules)."""
    if value is None or isinstance(value, bool):
        return 1
    if isinstance(value, str):
        return len(value.encode("utf-8"))
    if isinstance(value, bytes | bytearray):
        return len(value)
    if isinstance(value, int | float | Decimal):
        digits = len(str(abs(Decimal(str(value)))).replace(".", "").lstrip("0")) or 1
        return math.ceil(digits / 2) + 1
    if isinstance(value, Mapping):
        return 3 + sum(len(str(k).encode()) + attribute_size(v) + 1 for k, v in value.items())
    if isinstance(value, list | tuple | set):
        return 3 + sum(attribute_size(v) + 1 for v in value)
    return len(str(value).encode())


def item_size(item: Mapping[str, Any]) -> int:
    return sum(len(name.encode()) + attribute_size(value) for name, value in item.items())


def _wru(size: int) -> int:
    return max(1, math.ceil(size / 1024))


def _rru(size: int, *, consistent: bool = True) -> float:
    """Read units of `size` bytes: 1 per 4 KB strongly consistent, half that eventually."""
    units = max(1, math.ceil(size / 4096))
    return float(units) if consistent else units / 2


@dataclass
class Op:
    table: str
    kind: str  # get, put, update, delete, query, batch_get
    wru: int = 0
    rru: float = 0
    gsi_wru: int = 0


@dataclass(frozen=True)
class Index:
    """One GSI as template.yaml declares it: its keys and what it projects."""

    name: str
    hash_key: str
    range_key: str | None
    projection: Mapping[str, Any]

    def entry(self, item: Item | None, table_keys: Sequence[str]) -> Item | None:
        """The index entry `item` has (None when it lacks the index's keys: a sparse index)."""
        keys = [self.hash_key, *([self.range_key] if self.range_key else [])]
        if item is None or any(k not in item for k in keys):
            return None
        kind = self.projection.get("ProjectionType", "ALL")
        if kind == "ALL":
            return dict(item)
        kept = {*keys, *table_keys}
        if kind == "INCLUDE":
            kept |= set(self.projection.get("NonKeyAttributes") or ())
        return {k: v for k, v in item.items() if k in kept}

    def write_units(
        self, before: Item | None, after: Item | None, table_keys: Sequence[str]
    ) -> int:
        """What one base-table write costs this index, as DynamoDB bills it: a new entry is one
        write of its size, a removed one a delete, a changed key both, a changed projected
        attribute one write, and nothing when the entry does not change."""
        old, new = self.entry(before, table_keys), self.entry(after, table_keys)
        if old is None and new is None:
            return 0
        if old is None:
            return _wru(item_size(new))  # type: ignore[arg-type]
        if new is None:
            return _wru(item_size(old))
        keys = [self.hash_key, *([self.range_key] if self.range_key else [])]
        if any(old[k] != new[k] for k in keys):
            return _wru(item_size(old)) + _wru(item_size(new))
        return _wru(item_size(new)) if old != new else 0


def template_indexes() -> dict[str, tuple[tuple[str, ...], list[Index]]]:
    """Logical id -> (the table's key attributes, its GSIs), read from template.yaml."""
    from hookline_dev.template import table_specs

    return {
        spec.logical_id: (
            (spec.hash_key, *([spec.range_key] if spec.range_key else [])),
            [
                Index(name, hash_key, range_key, spec.projections.get(name, {}))
                for name, (hash_key, range_key) in spec.indexes.items()
            ],
        )
        for spec in table_specs()
    }


class CountingTable:
    """A MemoryTable that records what each request would cost on DynamoDB, every GSI the
    template declares for the table included."""

    def __init__(
        self,
        inner: MemoryTable,
        log: list[Op],
        *,
        keys: Sequence[str] = ("pk", "sk"),
        gsis: Sequence[Index] = (),
    ):
        self.inner = inner
        self.name = inner.name
        self.indexes = inner.indexes
        self.log = log
        self.keys = tuple(keys)
        self.gsis = tuple(gsis)

    def _gsi_cost(self, before: Item | None, after: Item | None) -> int:
        return sum(index.write_units(before, after, self.keys) for index in self.gsis)

    def get(self, pk: str, sk: str, *, consistent: bool = True) -> Item | None:
        item = self.inner.get(pk, sk)
        units = _rru(item_size(item or {}), consistent=consistent)
        self.log.append(Op(self.name, "get" if consistent else "get (eventual)", rru=units))
        return item

    def put(self, item: Item, *, if_absent: bool = False) -> None:
        before = self.inner.get(item["pk"], item["sk"])
        size = max(item_size(item), item_size(before or {}))
        try:
            self.inner.put(item, if_absent=if_absent)
        except Exception:
            self.log.append(Op(self.name, "put (condition failed)", wru=_wru(size)))
            raise
        self.log.append(Op(self.name, "put", wru=_wru(size), gsi_wru=self._gsi_cost(before, item)))

    def update(self, pk: str, sk: str, **kwargs: Any) -> Item:
        before = self.inner.get(pk, sk)
        try:
            after = self.inner.update(pk, sk, **kwargs)
        except Exception:
            self.log.append(Op(self.name, "update (condition failed)", wru=1))
            raise
        size = max(item_size(after), item_size(before or {}))
        self.log.append(
            Op(self.name, "update", wru=_wru(size), gsi_wru=self._gsi_cost(before, after))
        )
        return after

    def delete(self, pk: str, sk: str, **kwargs: Any) -> None:
        before = self.inner.get(pk, sk)
        self.inner.delete(pk, sk, **kwargs)
        self.log.append(
            Op(
                self.name,
                "delete",
                wru=_wru(item_size(before or {})),
                gsi_wru=self._gsi_cost(before, None),
            )
        )

    def query(self, query: Query) -> Page:
        page = self.inner.query(query)
        read = sum(item_size(i) for i in page.items)
        # Index queries are eventually consistent; the adapter reads the table itself strongly.
        self.log.append(Op(self.name, "query", rru=_rru(read, consistent=query.index is None)))
        return page

    def batch_get(self, keys: Sequence[tuple[str, str]]) -> list[Item]:
        items = self.inner.batch_get(keys)
        units = sum(_rru(item_size(i)) for i in items) or 1
        self.log.append(Op(self.name, "batch_get", rru=units))
        return items


#: The template's logical id of each table role.
TABLE_ROLES = {
    "communities": "CommunitiesTable",
    "webhooks": "WebhooksTable",
    "events": "EventsTable",
    "deliveries": "DeliveryLogTable",
    "directory": "DirectoryTable",
}


@dataclass
class CountingTables:
    log: list[Op] = field(default_factory=list)
    memory: MemoryTables = field(default_factory=MemoryTables)
    communities: CountingTable = field(init=False)
    webhooks: CountingTable = field(init=False)
    events: CountingTable = field(init=False)
    deliveries: CountingTable = field(init=False)
    directory: CountingTable = field(init=False)

    def __post_init__(self) -> None:
        declared = template_indexes()
        for role, logical_id in TABLE_ROLES.items():
            keys, gsis = declared[logical_id]
            table = CountingTable(getattr(self.memory, role), self.log, keys=keys, gsis=gsis)
            setattr(self, role, table)

    def rate_limiter(self) -> Any:
        return self.memory.rate_limiter()

    def take(self) -> list[Op]:
        taken = list(self.log)
        self.log.clear()
        return taken


class PlainTables(MemoryTables):
    """In-memory tables without counting, for the CPU measurements (counting costs CPU)."""

    def take(self) -> list[Op]:
        return []


def uncounted(table: Any) -> Any:
    """The table under a CountingTable (itself for any other)."""
    return getattr(table, "inner", table)


def units(ops: Sequence[Op]) -> dict[str, Any]:
    by_kind: dict[str, int] = {}
    for op in ops:
        key = f"{op.table}.{op.kind}"
        by_kind[key] = by_kind.get(key, 0) + 1
    return {
        "requests": len(ops),
        "wru": sum(op.wru + op.gsi_wru for op in ops),
        "gsi_wru": sum(op.gsi_wru for op in ops),
        "rru": round(sum(op.rru for op in ops), 3),
        "by_request": by_kind,
    }
