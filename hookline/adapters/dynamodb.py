"""Table over DynamoDB (botocore's low-level client). The client is created lazily and cached.

Items cross the wire in DynamoDB's typed JSON: ``serialize`` writes it (as boto3's
TypeSerializer would; boto3 itself stays off the cold start, see hookline.adapters.aws) and
powertools' TypeDeserializer reads it. Conditions are expression strings with placeholders
(``_Expression``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from functools import lru_cache
from typing import Any

from aws_lambda_powertools.shared.dynamodb_deserializer import DYNAMODB_CONTEXT, TypeDeserializer
from botocore.config import Config
from botocore.exceptions import ClientError

from hookline.adapters import aws
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


@lru_cache(maxsize=1)
def client() -> Any:
    """The process's DynamoDB client, created on first use (creating the first client is the
    dearest part of a cold start). The dispatcher's threads share it: clients are thread-safe."""
    return aws.client("dynamodb", _CONFIG)


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


def _number(value: int | Decimal) -> str:
    text = str(DYNAMODB_CONTEXT.create_decimal(value))  # raises past DynamoDB's 38 digits
    if text in ("Infinity", "-Infinity", "NaN", "-NaN", "sNaN"):
        raise TypeError(f"DynamoDB cannot store the number {text}")
    return text


def serialize(value: Any) -> dict[str, Any]:
    """One attribute value in DynamoDB's typed JSON, as boto3's TypeSerializer writes it (floats
    are refused: to_dynamo makes them Decimals first)."""
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | Decimal):
        return {"N": _number(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, bytes | bytearray):
        return {"B": bytes(value)}
    if isinstance(value, set | frozenset):  # boto3's order: an empty set is a number set
        if all(isinstance(v, int | Decimal) for v in value):
            return {"NS": [_number(v) for v in value]}
        if all(isinstance(v, str) for v in value):
            return {"SS": list(value)}
        if all(isinstance(v, bytes | bytearray) for v in value):
            return {"BS": [bytes(v) for v in value]}
    elif isinstance(value, Mapping):
        return {"M": {str(k): serialize(v) for k, v in value.items()}}
    elif isinstance(value, list | tuple):
        return {"L": [serialize(v) for v in value]}
    raise TypeError(f"DynamoDB cannot store {type(value).__name__} value {value!r}")


_deserializer = TypeDeserializer()


def _wire(item: Mapping[str, Any]) -> dict[str, Any]:
    return {name: serialize(to_dynamo(value)) for name, value in item.items()}


def _python(raw: Mapping[str, Any]) -> Item:
    return {name: to_python(_deserializer.deserialize(value)) for name, value in raw.items()}


class _Expression:
    """Placeholders for one request's expressions: ``name("pk")`` is ``#n0``, ``value(3)`` is
    ``:v0``; ``params()`` gives the ExpressionAttributeNames/Values they stand for."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.values: dict[str, Any] = {}

    def name(self, attribute: str) -> str:
        placeholder = f"#n{len(self.names)}"
        self.names[placeholder] = attribute
        return placeholder

    def value(self, value: Any) -> str:
        placeholder = f":v{len(self.values)}"
        self.values[placeholder] = serialize(to_dynamo(value))
        return placeholder

    def equals(self, attribute: str, value: Any) -> str:
        return f"{self.name(attribute)} = {self.value(value)}"

    def exists(self, attribute: str) -> str:
        return f"attribute_exists({self.name(attribute)})"

    def absent(self, attribute: str) -> str:
        return f"attribute_not_exists({self.name(attribute)})"

    def expected(self, expect: Mapping[str, Any]) -> str:
        """Every attribute as expected: None means absent."""
        return _all(
            self.absent(name) if value is None else self.equals(name, value)
            for name, value in expect.items()
        )

    def where(self, attribute: str, value: Any) -> str:
        if isinstance(value, Between):
            low, high = self.value(value.low), self.value(value.high)
            return f"{self.name(attribute)} BETWEEN {low} AND {high}"
        if value is None:
            placeholder = self.name(attribute)
            return (
                f"(attribute_not_exists({placeholder}) OR "
                f"attribute_type({placeholder}, {self.value('NULL')}))"
            )
        return self.equals(attribute, value)

    def params(self) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if self.names:
            params["ExpressionAttributeNames"] = self.names
        if self.values:
            params["ExpressionAttributeValues"] = self.values
        return params


def _all(conditions: Any) -> str:
    parts = list(conditions)
    return parts[0] if len(parts) == 1 else " AND ".join(f"({part})" for part in parts)


def _range_condition(expr: _Expression, query: Query, range_attr: str) -> tuple[str | None, bool]:
    """The key condition on the range key, and whether after/before still need a filter
    (a key condition takes one of begins_with, between, >, <)."""
    if query.prefix is not None:
        condition = f"begins_with({expr.name(range_attr)}, {expr.value(query.prefix)})"
        return condition, query.after is not None or query.before is not None
    if query.after is not None and query.before is not None:
        # between is inclusive: the filter keeps the bounds exclusive.
        low, high = expr.value(query.after), expr.value(query.before)
        return f"{expr.name(range_attr)} BETWEEN {low} AND {high}", True
    if query.after is not None:
        return f"{expr.name(range_attr)} > {expr.value(query.after)}", False
    if query.before is not None:
        return f"{expr.name(range_attr)} < {expr.value(query.before)}", False
    return None, False


def _is_condition_failure(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


class DynamoTable:
    def __init__(self, name: str) -> None:
        self.name = name

    @staticmethod
    def _key(pk: str, sk: str) -> dict[str, Any]:
        return {"pk": {"S": pk}, "sk": {"S": sk}}

    def get(self, pk: str, sk: str, *, consistent: bool = True) -> Item | None:
        response = client().get_item(
            TableName=self.name, Key=self._key(pk, sk), ConsistentRead=consistent
        )
        item = response.get("Item")
        return _python(item) if item is not None else None

    def put(self, item: Item, *, if_absent: bool = False) -> None:
        kwargs: dict[str, Any] = {"TableName": self.name, "Item": _wire(item)}
        if if_absent:
            expr = _Expression()
            kwargs.update(ConditionExpression=expr.absent("pk"), **expr.params())
        try:
            client().put_item(**kwargs)
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
        expr = _Expression()
        clauses: list[str] = []
        sets = [f"{expr.name(name)} = {expr.value(value)}" for name, value in (set or {}).items()]
        if sets:
            clauses.append("SET " + ", ".join(sets))
        if remove:
            clauses.append("REMOVE " + ", ".join(expr.name(name) for name in remove))
        if add:
            adds = [f"{expr.name(name)} {expr.value(delta)}" for name, delta in add.items()]
            clauses.append("ADD " + ", ".join(adds))
        conditions = [expr.exists("pk")] if if_exists else []
        if expect:
            conditions.append(expr.expected(expect))
        kwargs: dict[str, Any] = {
            "TableName": self.name,
            "Key": self._key(pk, sk),
            "UpdateExpression": " ".join(clauses),
            "ReturnValues": "ALL_NEW",
        }
        if conditions:
            kwargs["ConditionExpression"] = _all(conditions)
        try:
            response = client().update_item(**kwargs, **expr.params())
        except ClientError as exc:
            if _is_condition_failure(exc):
                raise ConditionFailed(f"{pk}/{sk} condition failed") from exc
            raise
        return _python(response["Attributes"])

    def delete(self, pk: str, sk: str, *, expect: Mapping[str, Any] | None = None) -> None:
        kwargs: dict[str, Any] = {"TableName": self.name, "Key": self._key(pk, sk)}
        if expect:
            expr = _Expression()
            kwargs.update(ConditionExpression=expr.expected(expect), **expr.params())
        try:
            client().delete_item(**kwargs)
        except ClientError as exc:
            if _is_condition_failure(exc):
                raise ConditionFailed(f"{pk}/{sk} condition failed") from exc
            raise

    def query(self, query: Query) -> Page:
        hash_attr, range_attr = INDEXES[query.index] if query.index else ("pk", "sk")
        if query.after is not None and query.before is not None and query.after >= query.before:
            return Page([])
        expr = _Expression()
        key_conditions = [expr.equals(hash_attr, query.partition)]
        range_condition, filter_bounds = _range_condition(expr, query, range_attr)
        if range_condition is not None:
            key_conditions.append(range_condition)
        kwargs: dict[str, Any] = {
            "TableName": self.name,
            "KeyConditionExpression": _all(key_conditions),
            "ScanIndexForward": not query.descending,
        }
        if query.index:
            kwargs["IndexName"] = query.index
        else:
            kwargs["ConsistentRead"] = True
        filters: list[str] = []
        if filter_bounds and query.after is not None:
            filters.append(f"{expr.name(range_attr)} > {expr.value(query.after)}")
        if filter_bounds and query.before is not None:
            filters.append(f"{expr.name(range_attr)} < {expr.value(query.before)}")
        filters.extend(expr.where(k, v) for k, v in query.where.items())
        if filters:
            kwargs["FilterExpression"] = _all(filters)
        kwargs.update(expr.params())
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
            kwargs["ExclusiveStartKey"] = _wire(start)
        selected: list[Item] = []
        more = False
        while True:
            if query.limit is not None:
                # Ask for one more than needed so we know whether another page exists.
                kwargs["Limit"] = max(query.limit + 1 - len(selected), 1) if not filters else 100
            response = client().query(**kwargs)
            for raw in response.get("Items", []):
                if query.limit is not None and len(selected) >= query.limit:
                    more = True
                    break
                selected.append(_python(raw))
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
                    "Keys": [self._key(pk, sk) for pk, sk in unique[start : start + 100]],
                    "ConsistentRead": True,
                }
            }
            while request:
                response = client().batch_get_item(RequestItems=request)
                items.extend(_python(i) for i in response["Responses"].get(self.name, []))
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
