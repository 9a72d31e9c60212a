"""The rate limiter adapters: slots spaced by the interval, holds, idle keys, and concurrent
reservations that never share a slot (DynamoDB through moto, built from template.yaml)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest

from hookline.adapters.rate_limiter import DynamoRateLimiter
from hookline.ports import RateLimiter, Slot
from hookline_dev import template
from hookline_dev.local.aws import MotoSession
from hookline_dev.memory import MemoryRateLimiter

NOW = 1_800_000_000_000
ANY_TIME = 10**12


@pytest.fixture
def moto_webhooks_table() -> Iterator[str]:
    """The template's webhooks table in moto, each call atomic as it is against DynamoDB (the
    local stack's moto session; bare moto is not thread-safe)."""
    session = MotoSession()
    session.start()
    try:
        names = template.create_tables(session.client("dynamodb"), "rl")
        yield names["WebhooksTable"]
    finally:
        session.stop()


@pytest.fixture(params=["memory", "dynamodb"])
def limiter(request: pytest.FixtureRequest) -> RateLimiter:
    if request.param == "memory":
        return MemoryRateLimiter()
    table: str = request.getfixturevalue("moto_webhooks_table")
    return DynamoRateLimiter(table)


def _take(limiter: RateLimiter, key: str, interval_ms: int, now_ms: int) -> int:
    slot = limiter.reserve(key, interval_ms, now_ms=now_ms, horizon_ms=ANY_TIME)
    assert slot.taken
    return slot.at_ms


def test_slots_are_spaced_by_the_interval(limiter: RateLimiter) -> None:
    slots = [_take(limiter, "wh_1", 500, NOW) for _ in range(5)]
    assert slots == [NOW, NOW + 500, NOW + 1000, NOW + 1500, NOW + 2000]


def test_keys_are_paced_separately(limiter: RateLimiter) -> None:
    assert _take(limiter, "wh_1", 1000, NOW) == NOW
    assert _take(limiter, "wh_2", 1000, NOW) == NOW
    assert _take(limiter, "wh_1", 1000, NOW) == NOW + 1000


def test_an_idle_key_sends_at_once(limiter: RateLimiter) -> None:
    _take(limiter, "wh_1", 1000, NOW)
    later = NOW + 60_000
    assert _take(limiter, "wh_1", 1000, later) == later
    assert _take(limiter, "wh_1", 1000, later) == later + 1000


def test_a_reservation_never_lies_in_the_past(limiter: RateLimiter) -> None:
    assert _take(limiter, "wh_1", 1000, NOW) == NOW
    # Half-way through the interval: the next slot is still one interval after the last.
    assert _take(limiter, "wh_1", 1000, NOW + 400) == NOW + 1000


def test_a_hold_delays_the_next_slots_and_never_shortens(limiter: RateLimiter) -> None:
    limiter.hold("wh_1", NOW + 30_000)
    limiter.hold("wh_1", NOW + 10_000)  # an earlier hold does not undo the later one
    assert _take(limiter, "wh_1", 1000, NOW) == NOW + 30_000
    assert _take(limiter, "wh_1", 1000, NOW) == NOW + 31_000


def test_a_hold_applies_to_unpaced_keys_too(limiter: RateLimiter) -> None:
    limiter.hold("wh_1", NOW + 5000)
    assert _take(limiter, "wh_1", 0, NOW) == NOW + 5000
    assert _take(limiter, "wh_1", 0, NOW) == NOW + 5000
    assert _take(limiter, "wh_1", 0, NOW + 6000) == NOW + 6000


def test_concurrent_reservations_get_distinct_slots(limiter: RateLimiter) -> None:
    def reserve(_: Any) -> int:
        return _take(limiter, "wh_busy", 100, NOW)

    with ThreadPoolExecutor(max_workers=8) as pool:
        slots = sorted(pool.map(reserve, range(40)))
    assert slots == [NOW + 100 * i for i in range(40)]


def test_dynamodb_state_is_shared_between_limiter_instances(moto_webhooks_table: str) -> None:
    """Two processes (two adapters) see one pace: the state is in the table."""
    first, second = DynamoRateLimiter(moto_webhooks_table), DynamoRateLimiter(moto_webhooks_table)
    assert _take(first, "wh_1", 1000, NOW) == NOW
    assert _take(second, "wh_1", 1000, NOW) == NOW + 1000
    second.hold("wh_1", NOW + 9000)
    assert _take(first, "wh_1", 1000, NOW) == NOW + 9000
    item = boto3.resource("dynamodb", region_name="us-east-1").Table(moto_webhooks_table)
    stored = item.get_item(Key={"pk": "RATE#wh_1", "sk": "RATE"})["Item"]
    assert int(stored["next_ms"]) == NOW + 10_000
    assert int(stored["expires_at"]) > NOW // 1000


def test_a_slot_beyond_the_horizon_is_not_claimed(limiter: RateLimiter) -> None:
    for _ in range(3):
        _take(limiter, "wh_1", 1000, NOW)  # slots NOW, +1 s, +2 s; the next free one is +3 s
    refused = limiter.reserve("wh_1", 1000, now_ms=NOW, horizon_ms=3000)
    assert refused == Slot(NOW + 3000, taken=False)
    # Refusing claimed nothing: with a longer horizon the same slot is taken.
    assert limiter.reserve("wh_1", 1000, now_ms=NOW, horizon_ms=3001) == Slot(NOW + 3000)
    # An idle key is always served at once, whatever the horizon.
    assert limiter.reserve("wh_2", 1000, now_ms=NOW, horizon_ms=0) == Slot(NOW)


def test_a_hold_beyond_the_horizon_is_reported(limiter: RateLimiter) -> None:
    limiter.hold("wh_1", NOW + 60_000)
    assert limiter.reserve("wh_1", 0, now_ms=NOW, horizon_ms=10_000) == Slot(NOW + 60_000, False)
