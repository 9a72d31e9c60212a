"""The rate limiter adapters: slots spaced by the interval, holds, idle keys, and concurrent
reservations that never share a slot (DynamoDB through moto, built from template.yaml)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest

from hookline.adapters import template
from hookline.adapters.memory import MemoryRateLimiter
from hookline.adapters.rate_limiter import DynamoRateLimiter
from hookline.local.aws import MotoSession
from hookline.ports import RateLimiter

NOW = 1_800_000_000_000


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


def test_slots_are_spaced_by_the_interval(limiter: RateLimiter) -> None:
    slots = [limiter.reserve("wh_1", 500, now_ms=NOW) for _ in range(5)]
    assert slots == [NOW, NOW + 500, NOW + 1000, NOW + 1500, NOW + 2000]


def test_keys_are_paced_separately(limiter: RateLimiter) -> None:
    assert limiter.reserve("wh_1", 1000, now_ms=NOW) == NOW
    assert limiter.reserve("wh_2", 1000, now_ms=NOW) == NOW
    assert limiter.reserve("wh_1", 1000, now_ms=NOW) == NOW + 1000


def test_an_idle_key_sends_at_once(limiter: RateLimiter) -> None:
    limiter.reserve("wh_1", 1000, now_ms=NOW)
    later = NOW + 60_000
    assert limiter.reserve("wh_1", 1000, now_ms=later) == later
    assert limiter.reserve("wh_1", 1000, now_ms=later) == later + 1000


def test_a_reservation_never_lies_in_the_past(limiter: RateLimiter) -> None:
    assert limiter.reserve("wh_1", 1000, now_ms=NOW) == NOW
    # Half-way through the interval: the next slot is still one interval after the last.
    assert limiter.reserve("wh_1", 1000, now_ms=NOW + 400) == NOW + 1000


def test_a_hold_delays_the_next_slots_and_never_shortens(limiter: RateLimiter) -> None:
    limiter.hold("wh_1", NOW + 30_000)
    limiter.hold("wh_1", NOW + 10_000)  # an earlier hold does not undo the later one
    assert limiter.reserve("wh_1", 1000, now_ms=NOW) == NOW + 30_000
    assert limiter.reserve("wh_1", 1000, now_ms=NOW) == NOW + 31_000


def test_a_hold_applies_to_unpaced_keys_too(limiter: RateLimiter) -> None:
    limiter.hold("wh_1", NOW + 5000)
    assert limiter.reserve("wh_1", 0, now_ms=NOW) == NOW + 5000
    assert limiter.reserve("wh_1", 0, now_ms=NOW) == NOW + 5000
    assert limiter.reserve("wh_1", 0, now_ms=NOW + 6000) == NOW + 6000


def test_concurrent_reservations_get_distinct_slots(limiter: RateLimiter) -> None:
    def reserve(_: Any) -> int:
        return limiter.reserve("wh_busy", 100, now_ms=NOW)

    with ThreadPoolExecutor(max_workers=8) as pool:
        slots = sorted(pool.map(reserve, range(40)))
    assert slots == [NOW + 100 * i for i in range(40)]


def test_dynamodb_state_is_shared_between_limiter_instances(moto_webhooks_table: str) -> None:
    """Two processes (two adapters) see one pace: the state is in the table."""
    first, second = DynamoRateLimiter(moto_webhooks_table), DynamoRateLimiter(moto_webhooks_table)
    assert first.reserve("wh_1", 1000, now_ms=NOW) == NOW
    assert second.reserve("wh_1", 1000, now_ms=NOW) == NOW + 1000
    second.hold("wh_1", NOW + 9000)
    assert first.reserve("wh_1", 1000, now_ms=NOW) == NOW + 9000
    item = boto3.resource("dynamodb", region_name="us-east-1").Table(moto_webhooks_table)
    stored = item.get_item(Key={"pk": "RATE#wh_1", "sk": "RATE"})["Item"]
    assert int(stored["next_ms"]) == NOW + 10_000
    assert int(stored["expires_at"]) > NOW // 1000
