"""The retry policy: the one place that decides when a delivery is attempted next.

Everything that schedules attempts asks it: the first attempt's record (the dispatcher), resend,
recover, the retry workflow's steps (statemachine/retry.asl.json waits what they answer) and the
local stack's timer (it runs the same workflow). It knows the schedule (``RETRY_SCHEDULE``,
repeated past its end for a larger ``retry_count``), the attempt budget, the Retry-After clamp,
the retry groups' windows, and when to give up.

Attempt numbers are absolute (1 is the first attempt). A retry cycle starts after attempt
``first`` and allows ``retry_count`` more: its budget (last attempt) is ``first + retry_count``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from hookline import clock

#: Retry-After may lengthen a wait up to this, never further.
MAX_WAIT_SECONDS = 24 * 60 * 60


def lengthen(wait: int, retry_after: int | None) -> int:
    """A wait lengthened by a Retry-After (clamped to MAX_WAIT_SECONDS); never shortened."""
    if retry_after is None or retry_after <= wait:
        return wait
    return max(wait, min(int(retry_after), MAX_WAIT_SECONDS))


def retry_wait(schedule: Sequence[int], retries_made: int) -> int:
    """The wait before retry number ``retries_made + 1`` of a cycle (past the schedule's end,
    its last entry)."""
    if not schedule:
        return 0
    return max(int(schedule[min(max(retries_made, 0), len(schedule) - 1)]), 0)


def budget(first_attempt: int, retry_count: int) -> int:
    """The number of the last attempt of a cycle starting after ``first_attempt``."""
    return max(first_attempt, 0) + max(retry_count, 0)


def wait_after(
    schedule: Sequence[int],
    retry_count: int,
    last: int,
    attempt_no: int,
    retry_after: int | None = None,
) -> int | None:
    """The wait after a failed attempt ``attempt_no`` of a cycle whose last attempt is ``last``;
    None when the cycle is over (give up)."""
    if attempt_no >= last:
        return None
    retries_made = attempt_no - (last - retry_count)
    return lengthen(retry_wait(schedule, retries_made), retry_after)


def wait_before_remaining(
    retry_count: int, schedule: Sequence[int], remaining: int, retry_after: int | None = None
) -> int:
    """The scheduled wait before the attempt that leaves `remaining` attempts (itself included)
    in a cycle of `retry_count` retries: what an attempt made early (a resend while retrying)
    leaves in place, so the cycle's later attempts keep their times."""
    if retry_count <= 0:
        return lengthen(0, retry_after)
    return lengthen(retry_wait(schedule, retry_count - remaining), retry_after)


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


def is_due(next_attempt_at: str | None, time_scale: float) -> bool:
    """A member whose next attempt time has come (a second of slack for rounding)."""
    return next_attempt_at is not None and seconds_until(next_attempt_at, time_scale) <= 1


# -- retry groups ------------------------------------------------------------------------------


#: A member joins a window's group only if it is written at least this long (workflow seconds,
#: at most half the window) before the group's first round, so that round sees it (the write
#: lands and the index shows it well within this): the group's last round can never end it
#: before a member joins. A member written later goes to a later generation of the window.
JOIN_MARGIN_SECONDS = 30


def window(created_at: str, window_seconds: int, time_scale: float) -> tuple[datetime, datetime]:
    """The retry group window [start, end) a delivery created at ``created_at`` falls in (on
    the wall clock: the local stack's time scale shortens it as it shortens waits)."""
    length = max(window_seconds * time_scale, 0.001)
    epoch = clock.parse_iso(created_at).timestamp()
    start = math.floor(epoch / length) * length
    begin = datetime.fromtimestamp(start, tz=UTC)
    return begin, begin + timedelta(seconds=length)


def join_margin(window_seconds: int) -> float:
    """JOIN_MARGIN_SECONDS, at most half the window; a window group's first wait is at least
    this (a schedule starting with 0 still leaves its members the margin)."""
    return min(JOIN_MARGIN_SECONDS, max(window_seconds, 0) / 2)


@dataclass(frozen=True)
class _Generations:
    """A window's group generations on the wall clock: generation 0 takes the members written
    before ``closes``; generation k >= 1 those written in the k-th window-long span after."""

    begin: datetime
    end: datetime
    first_wait: timedelta
    margin: timedelta

    @classmethod
    def of(
        cls, created_at: str, window_seconds: int, schedule: Sequence[int], time_scale: float
    ) -> _Generations:
        begin, end = window(created_at, window_seconds, time_scale)
        margin = join_margin(window_seconds)
        first_wait = max(retry_wait(schedule, 0), margin)
        return cls(
            begin,
            end,
            timedelta(seconds=first_wait * time_scale),
            timedelta(seconds=margin * time_scale),
        )

    @property
    def closes(self) -> datetime:
        return self.end + self.first_wait - self.margin

    def of_write(self, written_at: datetime) -> int:
        if written_at < self.closes:
            return 0
        return int((written_at - self.closes) / (self.end - self.begin)) + 1

    def first_retry(self, generation: int) -> datetime:
        """The end of the generation's span of writes plus the first wait: at least the margin
        after its last member's write, and no earlier than the schedule for any member."""
        if generation <= 0:
            return self.end + self.first_wait
        return self.closes + generation * (self.end - self.begin) + self.first_wait


def generation(
    *,
    created_at: str,
    written_at: datetime,
    window_seconds: int,
    schedule: Sequence[int],
    time_scale: float,
) -> int:
    """The generation of its window's group a member written at ``written_at`` joins: 0 (the
    window's own group) until the join margin before that group's first round; then k >= 1
    for the k-th window-long span of writes after it (a redelivered or long-delayed order, a
    paced replay), so no member joins a group whose rounds may have ended."""
    return _Generations.of(created_at, window_seconds, schedule, time_scale).of_write(written_at)


def generation_of(name: str | None) -> int | None:
    """The generation a window group's name carries (see window_group); None for a name that
    is not a window group's."""
    found = re.search(r"-w\d+(?:-g(\d+))?$", name or "")
    return None if found is None else int(found.group(1) or 0)


def window_generation(
    name: str | None,
    *,
    webhook_id: str,
    created_at: str,
    window_seconds: int,
    time_scale: float,
) -> int | None:
    """The generation of ``name`` if it is a window group of the webhook's delivery created at
    ``created_at`` (one it was written into); None for any other name."""
    generation = generation_of(name)
    if generation is None:
        return None
    begin, _ = window(created_at, window_seconds, time_scale)
    return generation if name == _window_name(webhook_id, begin, generation) else None


def _window_name(webhook_id: str, begin: datetime, generation: int) -> str:
    tag = f"w{int(begin.timestamp() * 1000)}" + (f"-g{generation}" if generation > 0 else "")
    return group_name(webhook_id, tag)


def group_name(webhook_id: str, tag: str) -> str:
    """An execution name (unique per state machine for 90 days): the same group always gets
    the same name, so every member's start of it is idempotent."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", f"{webhook_id}-{tag}")[:80]


def window_group(
    *,
    community_id: str,
    webhook_id: str,
    created_at: str,
    window_seconds: int,
    schedule: Sequence[int],
    time_scale: float,
    generation: int = 0,
) -> tuple[str, dict[str, Any], str]:
    """A generation of the group of a delivery whose first attempt failed: (name, workflow
    document, the members' first retry time). Generation 0's first wait counts from the
    window's end, so no member is retried earlier than the schedule, and later by at most the
    window; generation k's counts from the end of its span of writes. Every generation has the
    window's members: the same [since, until)."""
    generations = _Generations.of(created_at, window_seconds, schedule, time_scale)
    first_retry = clock.iso(generations.first_retry(generation))
    begin, end = generations.begin, generations.end
    name = _window_name(webhook_id, begin, generation)
    document = workflow_document(
        community_id=community_id,
        webhook_id=webhook_id,
        group=name,
        since=clock.iso(begin),
        until=clock.iso(end),
        attempt=1,
        wait_seconds=seconds_until(first_retry, time_scale),
    )
    return name, document, first_retry


def workflow_document(
    *,
    community_id: str,
    webhook_id: str,
    group: str,
    since: str,
    until: str,
    attempt: int,
    wait_seconds: int,
    done: bool = False,
) -> dict[str, Any]:
    """The retry workflow's input and every step's answer. The members are the deliveries of
    the webhook created in [since, until) that carry ``retry_group == group``; ``attempt``
    counts the group's rounds (informational: each member keeps its own count and budget)."""
    return {
        "community_id": community_id,
        "webhook_id": webhook_id,
        "group": group,
        "since": since,
        "until": until,
        "attempt": int(attempt),
        "wait_seconds": max(int(wait_seconds), 0),
        "done": done,
    }
