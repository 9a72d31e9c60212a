"""Rate limits per webhook: the turn a delivery waits for, and slowing a webhook down when its
receiver answers 429 (or 503) with Retry-After.

A webhook's ``rate_limit`` is deliveries per second; its sends are spaced 1/rate_limit apart
across every process, with the slots kept by the RateLimiter port (DynamoDB in AWS). A
Retry-After holds the webhook's next slots, limited or not. Waiting for a turn is not an
attempt: nothing fails, no retry is used, and it is logged at INFO ("waiting for the rate
limit"); the attempt that follows records the wait as ``rate_limit_wait_ms``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from aws_lambda_powertools.metrics import MetricUnit

from hookline import clock
from hookline.domain.attempts import AttemptOutcome
from hookline.domain.models import Webhook
from hookline.observability import emit, logger
from hookline.ports import RateLimiter

#: A Retry-After holds a webhook's new deliveries for at most this long.
MAX_HOLD_SECONDS = 3600
#: The statuses whose Retry-After slows the webhook down.
SLOW_DOWN_STATUSES = frozenset({429, 503})


def interval_ms(rate_limit: float | None) -> int:
    """Milliseconds between two sends at ``rate_limit`` per second (0: no spacing)."""
    return 0 if rate_limit is None else max(1, round(1000 / rate_limit))


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def is_paced(webhook: Webhook, now: datetime) -> bool:
    """Does a send to this webhook take a turn? (A rate limit, or a Retry-After still on.)"""
    if webhook.rate_limit is not None:
        return True
    return webhook.throttled_until is not None and clock.parse_iso(webhook.throttled_until) > now


@dataclass(frozen=True)
class Turn:
    """A reserved send slot: send at ``slot_ms`` (epoch ms), and no sooner."""

    slot_ms: int
    reserved_at_ms: int

    @property
    def wait_ms(self) -> int:
        return max(0, self.slot_ms - self.reserved_at_ms)


def take_turn(limiter: RateLimiter, webhook: Webhook, now: datetime | None = None) -> Turn | None:
    """Reserve the webhook's next slot; None, without asking the limiter, when it is unpaced."""
    moment = now or clock.now()
    if not is_paced(webhook, moment):
        return None
    now_ms = _ms(moment)
    slot = limiter.reserve(webhook.id, interval_ms(webhook.rate_limit), now_ms=now_ms)
    return Turn(slot_ms=slot, reserved_at_ms=now_ms)


def wait_for(turn: Turn | None, webhook: Webhook, *, stage: str) -> int:
    """Sleep until the turn's slot; returns the milliseconds waited (0 for no turn)."""
    if turn is None:
        return 0
    remaining = turn.slot_ms - _ms(clock.now())
    if remaining > 0:
        logger.info(
            "waiting for the rate limit",
            extra={
                "webhook_id": webhook.id,
                "rate_limit": webhook.rate_limit,
                "wait_ms": remaining,
            },
        )
        emit(
            {
                "DeliveryRateLimited": (MetricUnit.Count, 1),
                "RateLimitWait": (MetricUnit.Milliseconds, remaining),
            },
            stage=stage,
        )
        time.sleep(remaining / 1000)
    return turn.wait_ms


def slow_down(
    limiter: RateLimiter, webhook: Webhook, outcome: AttemptOutcome, now: datetime | None = None
) -> str | None:
    """After a 429/503 with Retry-After, hold the webhook's next sends until then. Returns the
    hold's end (ISO time) to keep on the webhook, or None when the answer asked for nothing."""
    seconds = outcome.retry_after_seconds
    if outcome.status_code not in SLOW_DOWN_STATUSES or not seconds or seconds <= 0:
        return None
    until = (now or clock.now()) + timedelta(seconds=min(seconds, MAX_HOLD_SECONDS))
    limiter.hold(webhook.id, _ms(until))
    logger.info(
        "receiver asked to slow down",
        extra={"webhook_id": webhook.id, "retry_after_seconds": seconds, "until": clock.iso(until)},
    )
    return clock.iso(until)
