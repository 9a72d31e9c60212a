"""Publishing an event: validate it and store it. The events table's stream does the rest."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from hookline import clock, ids
from hookline.domain.event_types import CustomEventTypes, check_publishable
from hookline.domain.models import Community, Event
from hookline.domain.repositories import EventRepository
from hookline.errors import Conflict, InvalidParam

#: DynamoDB nests at most 32 levels; the event item itself takes one.
MAX_DEPTH = 30
_MAX_NUMBER = 10**126
_MIN_NUMBER = 1e-130


def check_storable(value: Any, field: str, depth: int = 0) -> None:
    """Refuse JSON that parses but that the events table cannot hold (too deep, NaN/Infinity,
    numbers outside DynamoDB's range, lone surrogates, empty keys), naming the field."""
    if depth > MAX_DEPTH:
        raise InvalidParam(f"{field} is nested more than {MAX_DEPTH} levels deep.", field=field)
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or not key:
                raise InvalidParam(f"{field} has an empty key.", field=field)
            check_storable(key, field, depth)
            check_storable(item, field, depth + 1)
    elif isinstance(value, list):
        for item in value:
            check_storable(item, field, depth + 1)
    elif isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidParam(f"{field} holds text that is not valid UTF-8.", field=field) from exc
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int):
        if abs(value) >= _MAX_NUMBER or len(str(abs(value)).rstrip("0")) > 38:
            raise InvalidParam(f"{field} holds a number with more than 38 digits.", field=field)
    elif isinstance(value, float) and (
        not math.isfinite(value) or (value != 0 and not _MIN_NUMBER <= abs(value) < _MAX_NUMBER)
    ):
        raise InvalidParam(f"{field} holds a number out of range (NaN, Infinity).", field=field)


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
    custom_types: CustomEventTypes | None = None,
) -> tuple[Event, bool]:
    """Store an event for delivery and return (event, created).

    With a client-supplied id the call is idempotent: the same id with the same event returns
    the stored event and created=False, and nothing is delivered twice. The same id with another
    type, data or actor is a Conflict on `id`. ``custom_types`` (the community's) lets a
    registered custom type through, its ``data`` validated against the type's schema.
    """
    check_publishable(event_type, data, custom_types)
    if not isinstance(data, dict):
        raise InvalidParam("data must be a JSON object.", field="data")
    if actor is not None and not isinstance(actor, dict):
        raise InvalidParam("actor must be a JSON object.", field="actor")
    check_storable(data, "data")
    if actor is not None:
        check_storable(actor, "actor")
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
    stored = events.get(community.id, event.id)
    if (stored.event, stored.data, stored.actor) != (event_type, data, actor):
        raise Conflict(
            f"An event with id {event.id!r} was already published with a different body; "
            "use a new id for a new event.",
            field="id",
        )
    return stored, False
