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


#: Turns nearer than this are waited for in process; further ones are handed back (NotYet).
MAX_WAIT_IN_PROCESS_SECONDS = 10.0
#: A delivery gives up a slot it reached too late at most this many times, then sends.
MAX_TURNS = 3
#: "No horizon": every turn is taken and waited for.
_UNBOUNDED_MS = 10**13


@dataclass(frozen=True)
class Turn:
    """A send slot: ``taken`` means it is this delivery's, to send at ``slot_ms`` (epoch ms) and
    no sooner; otherwise it is the webhook's next free slot, too far off to claim."""

    slot_ms: int
    reserved_at_ms: int
    taken: bool = True

    @property
    def wait_ms(self) -> int:
        return max(0, self.slot_ms - self.reserved_at_ms)


class NotYet(Exception):
    """The webhook's turn is too far off to wait for here; come back in ``retry_in_seconds``.
    Nothing was claimed, sent or recorded."""

    def __init__(self, turn: Turn, horizon_ms: int) -> None:
        # Come back when the free slot is about half the horizon away.
        ahead_ms = turn.wait_ms - horizon_ms // 2
        self.retry_in_seconds = max(1, -(-ahead_ms // 1000))
        self.turn = turn
        super().__init__(f"next turn in {turn.wait_ms} ms; retry in {self.retry_in_seconds} s")


def take_turn(
    limiter: RateLimiter,
    webhook: Webhook,
    now: datetime | None = None,
    *,
    horizon_seconds: float | None = None,
) -> Turn | None:
    """Claim the webhook's next slot, if it is nearer than ``horizon_seconds`` (None: any);
    None, without asking the limiter, when the webhook is unpaced."""
    moment = now or clock.now()
    if not is_paced(webhook, moment):
        return None
    now_ms = _ms(moment)
    horizon_ms = _UNBOUNDED_MS if horizon_seconds is None else int(horizon_seconds * 1000)
    slot = limiter.reserve(
        webhook.id, interval_ms(webhook.rate_limit), now_ms=now_ms, horizon_ms=horizon_ms
    )
    return Turn(slot_ms=slot.at_ms, reserved_at_ms=now_ms, taken=slot.taken)


def _tolerance_ms(rate_limit: float | None) -> int | None:
    """How late a send may be on its slot and still keep the spacing (None: no spacing)."""
    return None if rate_limit is None else max(50, interval_ms(rate_limit) // 4)


def wait_turn(
    limiter: RateLimiter, webhook: Webhook, *, stage: str, horizon_seconds: float | None = None
) -> int:
    """Take the webhook's turn and sleep until it comes; returns the milliseconds waited (0 for
    an unpaced webhook). Raises NotYet, having claimed nothing, for a turn beyond the horizon.

    A slot this process reaches too late (a slow answer, a late wake-up) is given up for the
    next one, so two sends never bunch closer than most of the interval.
    """
    waited = 0
    for _ in range(MAX_TURNS):
        turn = take_turn(limiter, webhook, horizon_seconds=horizon_seconds)
        if turn is None:
            return 0
        if not turn.taken:
            _log_wait(webhook, turn.wait_ms, handed_back=True)
            raise NotYet(turn, int((horizon_seconds or 0) * 1000))
        remaining = turn.slot_ms - _ms(clock.now())
        if remaining > 0:
            _log_wait(webhook, remaining)
            time.sleep(remaining / 1000)
            waited += remaining
        tolerance = _tolerance_ms(webhook.rate_limit)
        if tolerance is None or _ms(clock.now()) - turn.slot_ms <= tolerance:
            break
    if waited:
        emit(
            {
                "DeliveryRateLimited": (MetricUnit.Count, 1),
                "RateLimitWait": (MetricUnit.Milliseconds, waited),
            },
            stage=stage,
        )
    return waited


def _log_wait(webhook: Webhook, wait_ms: int, *, handed_back: bool = False) -> None:
    extra: dict[str, object] = {
        "webhook_id": webhook.id,
        "rate_limit": webhook.rate_limit,
        "wait_ms": wait_ms,
    }
    if handed_back:
        extra["handed_back"] = True
    logger.info("waiting for the rate limit", extra=extra)


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
