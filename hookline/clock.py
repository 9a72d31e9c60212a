"""UTC time helpers. Every timestamp Hookline stores or sends is ISO-8601 UTC with a 'Z'."""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """ISO-8601 UTC with millisecond precision and a trailing Z, e.g. 2026-01-02T03:04:05.678Z."""
    return (
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    )


def now_iso() -> str:
    return iso(now())


def parse_iso(text: str) -> datetime:
    """Parse an ISO-8601 time; a naive time is taken as UTC. Raises ValueError."""
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def epoch_seconds(moment: datetime | None = None) -> int:
    return int((moment or now()).timestamp())


def epoch_millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)
