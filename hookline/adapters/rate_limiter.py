"""The rate limiter port (hookline.ports.RateLimiter) over DynamoDB (in memory: memory.py).

It keeps one number per key, the next free send slot (epoch ms). A reservation takes the slot
and moves it on by the interval (unless the slot lies beyond the caller's horizon); a hold
moves it to a later time. The number lives in the
webhooks table (``RATE#<key>``/``RATE``, with a TTL), and every step is one atomic UpdateItem,
so dispatchers and attempt functions running at once share the pace.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from hookline.adapters.dynamodb import _is_condition_failure, client, serialize
from hookline.ports import Slot

#: A pacing item outlives its last slot by this long (then the TTL removes it).
KEEP_SECONDS = 7 * 24 * 3600


class DynamoRateLimiter:
    """Shared by every process: the slot is an attribute updated only by conditional or atomic
    writes (no read-modify-write), so concurrent reservations never get the same slot."""

    def __init__(self, table_name: str) -> None:
        self._table_name = table_name

    def _key(self, key: str) -> dict[str, Any]:
        return {
            "TableName": self._table_name,
            "Key": {"pk": {"S": f"RATE#{key}"}, "sk": {"S": "RATE"}},
        }

    def reserve(self, key: str, interval_ms: int, *, now_ms: int, horizon_ms: int) -> Slot:
        expires_at = now_ms // 1000 + KEEP_SECONDS
        # Idle (or never used): the slot is now.
        if self._update(
            key,
            "SET next_ms = :next, expires_at = :ttl",
            {":next": now_ms + interval_ms, ":now": now_ms, ":ttl": expires_at},
            condition="attribute_not_exists(next_ms) OR next_ms <= :now",
        ):
            return Slot(now_ms)
        # Busy: take the next slot in line, atomically, unless it lies beyond the horizon.
        try:
            attributes = client().update_item(
                **self._key(key),
                UpdateExpression="ADD next_ms :interval SET expires_at = :ttl",
                ConditionExpression="next_ms < :ceiling",
                ExpressionAttributeValues=_values(
                    {":interval": interval_ms, ":ttl": expires_at, ":ceiling": now_ms + horizon_ms}
                ),
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )["Attributes"]
        except ClientError as exc:
            if not _is_condition_failure(exc):
                raise
            old: dict[str, Any] = dict(exc.response.get("Item") or {})  # type: ignore[call-overload]
            current = old.get("next_ms", {}).get("N")
            return Slot(int(current) if current else now_ms, taken=False)
        return Slot(max(int(attributes["next_ms"]["N"]) - interval_ms, now_ms))

    def hold(self, key: str, until_ms: int) -> None:
        self._update(
            key,
            "SET next_ms = :until, expires_at = :ttl",
            {":until": until_ms, ":ttl": until_ms // 1000 + KEEP_SECONDS},
            condition="attribute_not_exists(next_ms) OR next_ms < :until",
        )

    def _update(self, key: str, expression: str, values: dict[str, Any], *, condition: str) -> bool:
        """One conditional update; False when its condition did not hold."""
        try:
            client().update_item(
                **self._key(key),
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeValues=_values(values),
            )
        except ClientError as exc:
            if _is_condition_failure(exc):
                return False
            raise
        return True


def _values(values: dict[str, int]) -> dict[str, Any]:
    return {name: serialize(value) for name, value in values.items()}
