"""The local stack's tables: in-memory (hookline_dev.memory.MemoryTable) with a DynamoDB stream
emulation and a write hook for the journal (hookline_dev.local.state).

Every write (put, update, delete) appends one stream record, in Lambda's DynamoDB record shape
and the table's StreamViewType, to each reader of the table's stream; the item is turned into
DynamoDB's typed attributes in Lambda's JSON form once per write (`image`: what boto3's
TypeSerializer makes of it, checked against moto's stream in tests/stack/test_local_storage.py), for
the stream record and the journal alike. Conditional writes, indexes and query paging are
MemoryTable's.
"""

from __future__ import annotations

import base64
import itertools
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from hookline.adapters.dynamodb import serialize, to_dynamo, to_python
from hookline.ports import Item
from hookline_dev import template
from hookline_dev.local.lambdas import ACCOUNT_ID, REGION
from hookline_dev.local.poller import Record, stream_record
from hookline_dev.memory import MemoryRateLimiter, MemoryTable

#: Told (table's environment variable, typed key, typed new image or None for a delete) of
#: every write, with the table's lock held (so in the order the writes happened).
WriteHook = Callable[[str, dict[str, Any], dict[str, Any] | None], None]

#: DynamoDB's stream sequence numbers are 21 digits and grow across the whole stream.
_sequence = itertools.count(100_000_000_000_000_000_000)


def _number(value: Any) -> str:
    if isinstance(value, int):
        return str(value)
    # floats as the DynamoDB adapter writes them (Decimal(str(f)), then its serializer)
    number: str = serialize(to_dynamo(value))["N"]
    return number


def _attribute(value: Any) -> dict[str, Any]:
    """One value as a typed attribute in Lambda's JSON form (binary as base64 text): what the
    DynamoDB adapter's serializer makes of what it writes, without its generic type probing
    (this runs on every write)."""
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | float | Decimal):
        return {"N": _number(value)}
    if value is None:
        return {"NULL": True}
    if isinstance(value, dict):
        return {"M": {str(k): _attribute(v) for k, v in value.items()}}
    if isinstance(value, list | tuple):
        return {"L": [_attribute(v) for v in value]}
    if isinstance(value, bytes | bytearray):
        return {"B": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, set | frozenset) and value:
        members = [_attribute(v) for v in value]
        kinds = {next(iter(member)) for member in members}
        if len(kinds) == 1 and (kind := kinds.pop()) in ("S", "N", "B"):
            return {kind + "S": [member[kind] for member in members]}
    raise TypeError(f"Unsupported type {type(value)!r} for a DynamoDB attribute")


def image(item: Mapping[str, Any]) -> dict[str, Any]:
    """A Python item as DynamoDB typed attributes in Lambda's JSON form (the stream records'
    images, the journal's lines)."""
    return {str(name): _attribute(value) for name, value in item.items()}


def _python(attribute: Mapping[str, Any]) -> Any:
    ((kind, value),) = attribute.items()
    if kind == "S" or kind == "BOOL":
        return value
    if kind == "N":
        return _from_number(value)
    if kind == "NULL":
        return None
    if kind == "M":
        return {k: _python(v) for k, v in value.items()}
    if kind == "L":
        return [_python(v) for v in value]
    if kind == "B":
        return base64.b64decode(value)
    if kind == "SS":
        return set(value)
    if kind == "NS":
        return {_from_number(v) for v in value}
    if kind == "BS":
        return {base64.b64decode(v) for v in value}
    raise ValueError(f"unknown attribute type {kind!r}")


def _from_number(text: str) -> int | float:
    """As the DynamoDB adapter reads numbers (hookline.adapters.dynamodb.to_python)."""
    number: int | float = to_python(Decimal(text))
    return number


def item_of(attributes: Mapping[str, Any]) -> Item:
    """Typed attributes in JSON form back to the Python item the domain sees."""
    return {name: _python(attribute) for name, attribute in attributes.items()}


def stream_arn(table_name: str) -> str:
    return (
        f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/{table_name}/stream/2026-01-01T00:00:00.000"
    )


class StreamSubscription:
    """One reader of a table's stream from the moment it subscribed (Lambda's LATEST): what the
    event source mapping and the delivery log polls, as StreamReader polls a moto stream."""

    def __init__(self) -> None:
        self._records: deque[Record] = deque()
        self._lock = threading.Lock()

    def append(self, record: Record) -> None:
        with self._lock:
            self._records.append(record)

    def read(self, limit: int = 1000) -> list[Record]:
        with self._lock:
            count = min(limit, len(self._records))
            return [self._records.popleft() for _ in range(count)]


class StreamedTable(MemoryTable):
    """A MemoryTable whose writes feed its stream readers and the write hook."""

    def __init__(
        self,
        name: str,
        env_var: str,
        indexes: Mapping[str, tuple[str, str]],
        *,
        view_type: str | None,
    ) -> None:
        super().__init__(name, indexes)
        self.env_var = env_var
        self.view_type = view_type
        self.arn = stream_arn(name)
        self.hook: WriteHook | None = None
        self._readers: list[StreamSubscription] = []

    def subscribe(self, view_type: str = "NEW_IMAGE") -> StreamSubscription:
        """A new reader of the stream; a table without one gets `view_type` (as the old moto
        path enabled a stream on the deliveries table for the delivery log)."""
        with self._lock:
            self.view_type = self.view_type or view_type
            reader = StreamSubscription()
            self._readers.append(reader)
            return reader

    def load(self, attributes: Mapping[str, Any]) -> Item:
        """Put a typed item back as it was (journal replay): no stream record, no hook."""
        item = item_of(attributes)
        with self._lock:
            self._rows.setdefault(item["pk"], {})[item["sk"]] = item
        return item

    def unload(self, pk: str, sk: str) -> None:
        with self._lock:
            self._rows.get(pk, {}).pop(sk, None)

    def announce(self, item: Item) -> None:
        """Hand stream readers an INSERT of `item` as it is stored now (events journaled but not
        yet dispatched when the stack stopped)."""
        with self._lock:
            self._changed(item["pk"], item["sk"], None, journal=False)

    def _changed(self, pk: str, sk: str, old: Item | None, *, journal: bool = True) -> None:
        new = self._rows.get(pk, {}).get(sk)
        new_image = image(new) if new is not None else None
        keys = {"pk": {"S": pk}, "sk": {"S": sk}}
        if journal and self.hook is not None:
            self.hook(self.env_var, keys, new_image)
        if self._readers and self.view_type:
            record = self._record(keys, old, new, new_image)
            for reader in self._readers:
                reader.append(record)

    def _record(
        self,
        keys: dict[str, Any],
        old: Item | None,
        new: Item | None,
        new_image: dict[str, Any] | None,
    ) -> Record:
        view = self.view_type or "KEYS_ONLY"
        data: dict[str, Any] = {
            "ApproximateCreationDateTime": int(time.time()),
            "Keys": keys,
            "SequenceNumber": str(next(_sequence)),
            "StreamViewType": view,
        }
        if new_image is not None and view in ("NEW_IMAGE", "NEW_AND_OLD_IMAGES"):
            data["NewImage"] = new_image
        if old is not None and view in ("OLD_IMAGE", "NEW_AND_OLD_IMAGES"):
            data["OldImage"] = image(old)
        data["SizeBytes"] = _size(old, new)
        name = "REMOVE" if new_image is None else "INSERT" if old is None else "MODIFY"
        return stream_record(uuid.uuid4().hex, name, data, self.arn)


def _size(old: Item | None, new: Item | None) -> int:
    """Roughly DynamoDB's SizeBytes (names and string values at the top level), cheaply."""
    total = 0
    for part in (old, new):
        for name, value in (part or {}).items():
            total += len(name) + (len(value) if isinstance(value, str) else 8)
    return total


class LocalTables:
    """The template's tables (keys, indexes, stream view type) as StreamedTables, by role, with
    the rate limiter that belongs beside them. The Tables port, plus the idempotency table."""

    def __init__(self, prefix: str = "hookline-local") -> None:
        self.by_env: dict[str, StreamedTable] = {}
        for spec in template.table_specs():
            indexes = {
                name: (hash_key, range_key or hash_key)
                for name, (hash_key, range_key) in spec.indexes.items()
            }
            self.by_env[spec.env_var] = StreamedTable(
                f"{prefix}-{spec.short_name}",
                spec.env_var,
                indexes,
                view_type=spec.stream_view_type,
            )
        self.ttl = {s.env_var: s.ttl_attribute for s in template.table_specs() if s.ttl_attribute}
        self._rate_limiter = MemoryRateLimiter()

    def _role(self, env_var: str) -> StreamedTable:
        return self.by_env[env_var]

    @property
    def communities(self) -> StreamedTable:
        return self._role("COMMUNITIES_TABLE")

    @property
    def webhooks(self) -> StreamedTable:
        return self._role("WEBHOOKS_TABLE")

    @property
    def events(self) -> StreamedTable:
        return self._role("EVENTS_TABLE")

    @property
    def deliveries(self) -> StreamedTable:
        return self._role("DELIVERIES_TABLE")

    @property
    def directory(self) -> StreamedTable:
        return self._role("DIRECTORY_TABLE")

    @property
    def idempotency(self) -> StreamedTable:
        return self._role("IDEMPOTENCY_TABLE")

    def rate_limiter(self) -> MemoryRateLimiter:
        return self._rate_limiter

    def names(self) -> dict[str, str]:
        """Environment variable -> table name (what the functions' settings read)."""
        return {env: table.name for env, table in self.by_env.items()}

    def hook(self, hook: WriteHook | None) -> None:
        for table in self.by_env.values():
            table.hook = hook
