"""Publishing an event: validate it and store it. The events table's stream does the rest."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hookline import catalog, clock, ids
from hookline.domain.models import Community, Event
from hookline.domain.repositories import EventRepository
from hookline.errors import InvalidParam


def publish(
    events: EventRepository,
    community: Community,
    event_type: str,
    data: dict[str, Any],
    *,
    actor: dict[str, Any] | None = None,
    event_id: str | None = None,
    retention_days: int = 7,
    operational: bool = False,
) -> tuple[Event, bool]:
    """Store an event for delivery and return (event, created).

    With a client-supplied id the call is idempotent: the same id again returns the stored event
    and created=False, and nothing is delivered twice.
    """
    if not catalog.is_known(event_type):
        raise InvalidParam(
            f"Unknown event type {event_type!r}. See GET /v1/event-types.", field="event"
        )
    if not isinstance(data, dict):
        raise InvalidParam("data must be a JSON object.", field="data")
    if actor is not None and not isinstance(actor, dict):
        raise InvalidParam("actor must be a JSON object.", field="actor")
    now = clock.now()
    event = Event(
        id=event_id or ids.new_id("evt"),
        community_id=community.id,
        event=event_type,
        data=data,
        actor=actor,
        site_url=community.site_url,
        timestamp=clock.iso(now),
        operational=operational,
    )
    expires_at = clock.epoch_seconds(now + timedelta(days=retention_days))
    if events.add(event, expires_at=expires_at):
        return event, True
    return events.get(community.id, event.id), False
