"""The retry policy: the one place that decides when a delivery is attempted next.

Everything that schedules attempts asks it: the dispatcher's and resend's ``start_retries``, the
retry workflow's steps (statemachine/retry.asl.json runs the waits it answers), ``recover``, and
the local stack's timer (it runs the same workflow). It knows the schedule (``RETRY_SCHEDULE``,
repeated past its end for a larger ``retry_count``), the Retry-After clamp, and when to give up.

Attempt numbers are absolute (1 is the first attempt). The workflow's ``schedule`` lists the wait
before attempts 2..max_attempts, so the wait after attempt n is schedule[n - 1].
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from hookline import clock

#: Retry-After may lengthen a wait up to this, never further.
MAX_WAIT_SECONDS = 24 * 60 * 60


def waits_for(
    retry_count: int, schedule: Sequence[int], retry_after: int | None = None
) -> list[int]:
    """The waits (seconds) before each of `retry_count` retries.

    A retry_count above the schedule's length repeats its last delay. A Retry-After (from a 429
    or 503) lengthens the first wait, capped at MAX_WAIT_SECONDS; it never shortens it.
    """
    if retry_count <= 0:
        return []
    base = [int(s) for s in schedule] or [0]
    waits = [base[min(i, len(base) - 1)] for i in range(retry_count)]
    waits[0] = lengthen(waits[0], retry_after)
    return waits


def lengthen(wait: int, retry_after: int | None) -> int:
    if retry_after is None or retry_after <= wait:
        return wait
    return max(wait, min(int(retry_after), MAX_WAIT_SECONDS))


def next_wait(schedule: Sequence[int], attempt_no: int, retry_after: int | None) -> int:
    """The wait after attempt `attempt_no` (schedule[n - 1]; past its end, its last entry)."""
    base = int(schedule[min(attempt_no - 1, len(schedule) - 1)]) if schedule else 0
    return lengthen(max(base, 0), retry_after)


def max_attempts(schedule: Sequence[int], limit: int | None = None) -> int:
    """The attempt budget of a workflow: 1 + len(schedule) unless it says otherwise."""
    return limit if limit is not None else 1 + len(schedule)


def wait_before_remaining(
    retry_count: int, schedule: Sequence[int], remaining: int, retry_after: int | None = None
) -> int:
    """The scheduled wait before the attempt that leaves `remaining` attempts (itself included)
    in a cycle of `retry_count` retries: what an attempt made early (a resend while retrying)
    leaves in place, so the cycle's later attempts keep their times."""
    waits = waits_for(retry_count, schedule) or [0]
    index = min(max(len(waits) - remaining, 0), len(waits) - 1)
    return lengthen(waits[index], retry_after)


def due_at(wait_seconds: float, time_scale: float, *, start: datetime | None = None) -> str:
    """When a wait of `wait_seconds` (workflow time) ends, as the clock on the wall shows it: the
    local stack's timer runs waits `time_scale` times as long (Settings.retry_time_scale)."""
    return clock.iso((start or clock.now()) + timedelta(seconds=wait_seconds * time_scale))


def seconds_until(moment: str, time_scale: float) -> int:
    """The workflow wait (seconds, >= 0) that ends at `moment` (an ISO time from due_at)."""
    remaining = (clock.parse_iso(moment) - clock.now()).total_seconds()
    if remaining <= 0 or time_scale <= 0:
        return 0
    return math.ceil(remaining / time_scale)


def recovery_waits(retry_count: int, schedule: Sequence[int]) -> list[int]:
    """The waits of a recovered delivery's cycle: its first attempt at once, then the schedule."""
    return [0, *waits_for(retry_count, schedule)]


def workflow_input(
    *, delivery_id: str, community_id: str, webhook_id: str, attempt: int, waits: Sequence[int]
) -> dict[str, Any]:
    """The retry workflow's input for a cycle after attempt `attempt`, waiting `waits` before
    each further attempt.

    The workflow indexes its schedule by absolute attempt number (the wait after attempt n is
    schedule[n - 1], and max_attempts = 1 + len(schedule)), so a cycle starting after attempt
    n > 1 (resend, recover) pads the schedule with n - 1 unused entries.
    """
    first = max(int(attempt), 1)
    return {
        "delivery_id": delivery_id,
        "community_id": community_id,
        "webhook_id": webhook_id,
        "attempt": first,
        "schedule": [0] * (first - 1) + [int(w) for w in waits],
    }
