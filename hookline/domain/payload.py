"""The delivery body: what a receiver gets for one event, in its webhook's format."""

from __future__ import annotations

from typing import Any

from hookline.domain import formats
from hookline.domain.models import Event


def payload_of(event: Event) -> dict[str, Any]:
    """``{"id", "event", "timestamp", "site_url", "community_id", "data", "actor"?}``.

    ``id`` is the event id, the same for every webhook and every attempt, so receivers can
    recognise a repeated delivery. ``actor`` appears only when the publisher gave one.
    """
    body: dict[str, Any] = {
        "id": event.id,
        "event": event.event,
        "timestamp": event.timestamp,
        "site_url": event.site_url,
        "community_id": event.community_id,
        "data": event.data,
    }
    if event.actor is not None:
        body["actor"] = event.actor
    return body


def render_body(webhook_format: str, event: Event) -> bytes:
    """The exact bytes sent (and signed): compact JSON, or a Slack / Discord message."""
    return formats.render(webhook_format, payload_of(event))
