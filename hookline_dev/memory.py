"""In-memory Table and rate limiter: the storage ports without DynamoDB, for unit tests and engine
benchmarks."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hookline.adapters import cursor as cursors
from hookline.errors import ConditionFailed
from hookline.ports import Between, Item, Page, Query, Slot


def _copy(value: Any) -> Any:
    """A deep copy of an item's value tree (dicts, lists, sets, tuples of immutable leaves):
    copy.deepcopy's memo and dispatch cost several times more, on every read and write."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    if isinstance(value, set):
        return set(value)
    if isinstance(value, tuple):
        return tuple(_copy(v) for v in value)
    if isinstance(value, bytearray):
        return bytearray(value)
    return value


def _matches(item: Item, expect: Mapping[str, Any]) -> bool:
    return all(_matches_one(item.get(name), value) for name, value in expect.items())


def _matches_one(value: Any, wanted: Any) -> bool:
    if isinstance(wanted, Between):
        try:
            return value is not None and wanted.low <= value <= wanted.high
        except TypeError:
            return False
    return bool(value == wanted)


class MemoryTable:
    """Thread-safe dict-of-dicts with DynamoDB-like semantics for the subset Hookline uses."""

    def __init__(self, name: str = "memory", indexes: Mapping[str, tuple[str, str]] | None = None):
        self.name = name
        self.indexes = dict(indexes or {})
        self._rows: dict[str, dict[str, Item]] = {}
        self._lock = threading.RLock()

    def get(self, pk: str, sk: str, *, consistent: bool = True) -> Item | None:
        with self._lock:
            item = self._rows.get(pk, {}).get(sk)
            return _copy(item) if item is not None else None

    def put(self, item: Item, *, if_absent: bool = False) -> None:
        with self._lock:
            partition = self._rows.setdefault(item["pk"], {})
            old = partition.get(item["sk"])
            if if_absent and old is not None:
                raise ConditionFailed(f"{item['pk']}/{item['sk']} exists")
            partition[item["sk"]] = _copy(item)
            self._changed(item["pk"], item["sk"], old)

    def update(
        self,
        pk: str,
        sk: str,
        *,
        set: Mapping[str, Any] | None = None,
        remove: Sequence[str] = (),
        add: Mapping[str, int] | None = None,
        if_exists: bool = True,
        expect: Mapping[str, Any] | None = None,
    ) -> Item:
        with self._lock:
            current = old = self._rows.get(pk, {}).get(sk)
            if current is None:
                if if_exists or expect:
                    raise ConditionFailed(f"{pk}/{sk} missing")
                current = {"pk": pk, "sk": sk}
            if expect and not _matches(current, expect):
                raise ConditionFailed(f"{pk}/{sk} condition failed")
            updated = _copy(current)
            updated.update(_copy(dict(set or {})))
            for name in remove:
                updated.pop(name, None)
            for name, delta in (add or {}).items():
                updated[name] = updated.get(name, 0) + delta
            self._rows.setdefault(pk, {})[sk] = updated
            self._changed(pk, sk, old)
            return _copy(updated)

    def delete(self, pk: str, sk: str, *, expect: Mapping[str, Any] | None = None) -> None:
        with self._lock:
            partition = self._rows.get(pk, {})
            current = partition.get(sk)
            if expect and (current is None or not _matches(current, expect)):
                raise ConditionFailed(f"{pk}/{sk} condition failed")
            if current is not None:
                del partition[sk]
                self._changed(pk, sk, current)

    def _changed(self, pk: str, sk: str, old: Item | None) -> None:
        """Called after every write that changed `pk`/`sk` (`old`: the item before, None when it
        was new), with the lock held: the local stack's stream and journal hook in here."""

    def query(self, query: Query) -> Page:
        hash_attr, range_attr = self.indexes[query.index] if query.index else ("pk", "sk")
        with self._lock:
            if query.index:
                rows = [
                    item
                    for partition in self._rows.values()
                    for item in partition.values()
                    if item.get(hash_attr) == query.partition and range_attr in item
                ]
            else:
                rows = list(self._rows.get(query.partition, {}).values())
        # Stored items are replaced, never changed in place, so reading them outside the lock is
        # safe; only the items returned are copied.
        rows.sort(
            key=lambda item: (item[range_attr], item["pk"], item["sk"]), reverse=query.descending
        )
        start = None
        if query.cursor:
            start = cursors.decode(
                query.cursor,
                partition_attr=hash_attr,
                partition=query.partition,
                range_attr=range_attr,
                prefix=query.prefix,
                after=query.after,
                before=query.before,
            )
        selected: list[Item] = []
        more = False
        for item in rows:
            position = (item[range_attr], item["pk"], item["sk"])
            if start is not None:
                start_position = (start[range_attr], start["pk"], start["sk"])
                passed = (
                    position < start_position if query.descending else position > start_position
                )
                if not passed:
                    continue
            value = item[range_attr]
            if query.prefix is not None and not value.startswith(query.prefix):
                continue
            if query.after is not None and not value > query.after:
                continue
            if query.before is not None and not value < query.before:
                continue
            if not _matches(item, query.where):
                continue
            if query.limit is not None and len(selected) >= query.limit:
                more = True
                break
            selected.append(_copy(item))
        next_cursor = cursors.after(selected[-1], hash_attr, range_attr) if more else None
        return Page(selected, next_cursor)

    def batch_get(self, keys: Sequence[tuple[str, str]]) -> list[Item]:
        return [item for pk, sk in keys if (item := self.get(pk, sk)) is not None]

    def scan_all(self) -> list[Item]:
        """Every item (tests and benchmarks only)."""
        with self._lock:
            return [_copy(i) for p in self._rows.values() for i in p.values()]


def template_table(name: str, logical_id: str) -> MemoryTable:
    """An empty table with the indexes template.yaml declares for `logical_id`."""
    from hookline_dev.template import table_specs

    spec = next(s for s in table_specs() if s.logical_id == logical_id)
    indexes = {index: (h, r) for index, (h, r) in spec.indexes.items() if r is not None}
    return MemoryTable(name, indexes)


@dataclass
class MemoryTables:
    communities: MemoryTable = field(default_factory=lambda: MemoryTable("communities"))
    webhooks: MemoryTable = field(default_factory=lambda: MemoryTable("webhooks"))
    events: MemoryTable = field(default_factory=lambda: template_table("events", "EventsTable"))
    deliveries: MemoryTable = field(
        default_factory=lambda: template_table("deliveries", "DeliveryLogTable")
    )
    directory: MemoryTable = field(default_factory=lambda: MemoryTable("directory"))

    def rate_limiter(self) -> MemoryRateLimiter:
        return MemoryRateLimiter()


class MemoryRateLimiter:
    """The rate limiter port in one process, for in-memory tables (unit tests, benchmarks); the
    same slots and holds as hookline.adapters.rate_limiter.DynamoRateLimiter."""

    def __init__(self) -> None:
        self._next: dict[str, int] = {}
        self._lock = threading.Lock()

    def reserve(self, key: str, interval_ms: int, *, now_ms: int, horizon_ms: int) -> Slot:
        with self._lock:
            slot = max(self._next.get(key, now_ms), now_ms)
            if slot > now_ms and slot >= now_ms + horizon_ms:
                return Slot(slot, taken=False)
            self._next[key] = slot + interval_ms
            return Slot(slot)

    def hold(self, key: str, until_ms: int) -> None:
        with self._lock:
            self._next[key] = max(self._next.get(key, until_ms), until_ms)
