"""Table over DynamoDB (boto3 resource API). Clients are created lazily and cached."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from decimal import Decimal
from functools import cached_property, lru_cache
from typing import Any

import boto3
from boto3.dynamodb.conditions import Attr, ConditionBase, Key
from botocore.config import Config
from botocore.exceptions import ClientError

from hookline.adapters import cursor as cursors
from hookline.config import Settings
from hookline.errors import ConditionFailed
from hookline.ports import Between, Item, Page, Query, RateLimiter

#: Index name -> (hash attribute, range attribute), as declared in template.yaml.
INDEXES: dict[str, tuple[str, str]] = {
    "by_webhook": ("gsi1pk", "gsi1sk"),
    "by_time": ("pk", "gsi1sk"),
}

_CONFIG = Config(retries={"mode": "standard", "max_attempts": 8}, max_pool_connections=64)


_creating = threading.Lock()


@lru_cache(maxsize=1)
def resource() -> Any:
    """The process's DynamoDB resource, created on first use (creating the first client is the
    dearest part of a cold start). The dispatcher's threads share it safely: they only call
    Table actions, which go straight to the thread-safe client, never lazy-loaded attributes.
    The lock keeps two threads from using boto3's default session at once."""
    with _creating:
        return boto3.resource("dynamodb", config=_CONFIG)


def to_python(value: Any) -> Any:
    """DynamoDB numbers come back as Decimal; give the domain ints and floats."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: to_python(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_python(v) for v in value]
    if isinstance(value, set):
        return {to_python(v) for v in value}
    return value


def to_dynamo(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {k: to_dynamo(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_dynamo(v) for v in value]
    return value


def _condition(expect: Mapping[str, Any]) -> ConditionBase:
    parts: list[ConditionBase] = [
        Attr(name).not_exists() if value is None else Attr(name).eq(to_dynamo(value))
        for name, value in expect.items()
    ]
    condition = parts[0]
    for part in parts[1:]:
        condition = condition & part
    return condition


def _where(name: str, value: Any) -> ConditionBase:
    if isinstance(value, Between):
        return Attr(name).between(to_dynamo(value.low), to_dynamo(value.high))
    if value is None:
        return Attr(name).not_exists() | Attr(name).attribute_type("NULL")
    return Attr(name).eq(to_dynamo(value))


def _range_condition(query: Query, range_attr: str) -> tuple[ConditionBase | None, bool]:
    """The key condition on the range key, and whether after/before still need a filter
    (a key condition takes one of begins_with, between, >, <)."""
    key = Key(range_attr)
    if query.prefix is not None:
        return key.begins_with(query.prefix), query.after is not None or query.before is not None
    if query.after is not None and query.before is not None:
        # between is inclusive: the filter keeps the bounds exclusive.
        return key.between(query.after, query.before), True
    if query.after is not None:
        return key.gt(query.after), False
    if query.before is not None:
        return key.lt(query.before), False
    return None, False


def _is_condition_failure(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


class DynamoTable:
    def __init__(self, name: str) -> None:
        self.name = name

    @cached_property
    def _table(self) -> Any:
        return resource().Table(self.name)

    def get(self, pk: str, sk: str, *, consistent: bool = True) -> Item | None:
        response = self._table.get_item(Key={"pk": pk, "sk": sk}, ConsistentRead=consistent)
        item = response.get("Item")
        return to_python(item) if item is not None else None

    def put(self, item: Item, *, if_absent: bool = False) -> None:
        kwargs: dict[str, Any] = {"Item": to_dynamo(item)}
        if if_absent:
            kwargs["ConditionExpression"] = Attr("pk").not_exists()
        try:
            self._table.put_item(**kwargs)
        except ClientError as exc:
            if _is_condition_failure(exc):
                raise ConditionFailed(f"{item['pk']}/{item['sk']} exists") from exc
            raise

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
        names: dict[str, str] = {}
        values: dict[str, Any] = {}
        clauses: list[str] = []
        sets = []
        for i, (name, value) in enumerate((set or {}).items()):
            names[f"#s{i}"] = name
            values[f":s{i}"] = to_dynamo(value)
            sets.append(f"#s{i} = :s{i}")
        if sets:
            clauses.append("SET " + ", ".join(sets))
        if remove:
            for i, name in enumerate(remove):
                names[f"#r{i}"] = name
            clauses.append("REMOVE " + ", ".join(f"#r{i}" for i in range(len(remove))))
        if add:
            adds = []
            for i, (name, delta) in enumerate(add.items()):
                names[f"#a{i}"] = name
                values[f":a{i}"] = delta
                adds.append(f"#a{i} :a{i}")
            clauses.append("ADD " + ", ".join(adds))
        kwargs: dict[str, Any] = {
            "Key": {"pk": pk, "sk": sk},
            "UpdateExpression": " ".join(clauses),
            "ReturnValues": "ALL_NEW",
        }
        if names:
            kwargs["ExpressionAttributeNames"] = names
        if values:
            kwargs["ExpressionAttributeValues"] = values
        condition: ConditionBase | None = Attr("pk").exists() if if_exists else None
        if expect:
            condition = _condition(expect) if condition is None else condition & _condition(expect)
        if condition is not None:
            kwargs["ConditionExpression"] = condition
        try:
            response = self._table.update_item(**kwargs)
        except ClientError as exc:
            if _is_condition_failure(exc):
                raise ConditionFailed(f"{pk}/{sk} condition failed") from exc
            raise
        return to_python(response["Attributes"])

    def delete(self, pk: str, sk: str, *, expect: Mapping[str, Any] | None = None) -> None:
        kwargs: dict[str, Any] = {"Key": {"pk": pk, "sk": sk}}
        if expect:
            kwargs["ConditionExpression"] = _condition(expect)
        try:
            self._table.delete_item(**kwargs)
        except ClientError as exc:
            if _is_condition_failure(exc):
                raise ConditionFailed(f"{pk}/{sk} condition failed") from exc
            raise

    def query(self, query: Query) -> Page:
        hash_attr, range_attr = INDEXES[query.index] if query.index else ("pk", "sk")
        if query.after is not None and query.before is not None and query.after >= query.before:
            return Page([])
        condition: ConditionBase = Key(hash_attr).eq(query.partition)
        range_condition, filter_bounds = _range_condition(query, range_attr)
        if range_condition is not None:
            condition = condition & range_condition
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": condition,
            "ScanIndexForward": not query.descending,
        }
        if query.index:
            kwargs["IndexName"] = query.index
        else:
            kwargs["ConsistentRead"] = True
        filters: list[ConditionBase] = []
        if filter_bounds and query.after is not None:
            filters.append(Attr(range_attr).gt(query.after))
        if filter_bounds and query.before is not None:
            filters.append(Attr(range_attr).lt(query.before))
        filters.extend(_where(k, v) for k, v in query.where.items())
        if filters:
            combined: ConditionBase = filters[0]
            for f in filters[1:]:
                combined = combined & f
            kwargs["FilterExpression"] = combined
        if query.cursor:
            kwargs["ExclusiveStartKey"] = cursors.decode(
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
        while True:
            if query.limit is not None:
                # Ask for one more than needed so we know whether another page exists.
                kwargs["Limit"] = max(query.limit + 1 - len(selected), 1) if not filters else 100
            response = self._table.query(**kwargs)
            for raw in response.get("Items", []):
                if query.limit is not None and len(selected) >= query.limit:
                    more = True
                    break
                selected.append(to_python(raw))
            if more or "LastEvaluatedKey" not in response:
                break
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        next_cursor = cursors.after(selected[-1], hash_attr, range_attr) if more else None
        return Page(selected, next_cursor)

    def batch_get(self, keys: Sequence[tuple[str, str]]) -> list[Item]:
        items: list[Item] = []
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), 100):
            request: dict[str, Any] = {
                self.name: {
                    "Keys": [{"pk": pk, "sk": sk} for pk, sk in unique[start : start + 100]],
                    "ConsistentRead": True,
                }
            }
            while request:
                response = resource().batch_get_item(RequestItems=request)
                items.extend(to_python(i) for i in response["Responses"].get(self.name, []))
                request = response.get("UnprocessedKeys") or {}
        return items


class DynamoTables:
    """The tables by role, named from Settings."""

    def __init__(self, settings: Settings) -> None:
        self.communities = DynamoTable(settings.communities_table)
        self.webhooks = DynamoTable(settings.webhooks_table)
        self.events = DynamoTable(settings.events_table)
        self.deliveries = DynamoTable(settings.deliveries_table)
        self.directory = DynamoTable(settings.directory_table)

    def rate_limiter(self) -> RateLimiter:
        """The pace items live in the webhooks table (hookline.adapters.rate_limiter)."""
        from hookline.adapters.rate_limiter import DynamoRateLimiter

        return DynamoRateLimiter(self.webhooks.name)
