"""Publishing events. The request only stores the event; the events table's stream delivers it."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body
from pydantic import BaseModel, ConfigDict, Field

from hookline import catalog
from hookline.api.context import community_access
from hookline.domain import publishing
from hookline.domain.event_types import CustomEventTypes
from hookline.domain.models import Event
from hookline.domain.repositories import CommunityRepository, EventRepository
from hookline.errors import InvalidParam
from hookline.wiring import services

router = Router()

EVENT_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,100}$"
#: Event types only Hookline itself sends.
RESERVED_EVENTS = catalog.OPERATIONAL_EVENTS | {"test.ping"}


class EventPublish(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    event: str = Field(min_length=1, max_length=100, examples=["post.created"])
    data: dict[str, Any] = Field(
        default_factory=dict, examples=[{"post_id": 1024, "title": "How do I reset my password?"}]
    )
    id: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        pattern=EVENT_ID_PATTERN,
        description="Your own id for the event; sending it again publishes nothing new.",
        examples=["post-1024-created"],
    )
    actor: dict[str, Any] | None = Field(
        default=None, examples=[{"user_id": 45, "display_name": "Priya Sharma"}]
    )


def _view(event: Event, *, duplicate: bool) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": event.id,
        "event": event.event,
        "status": "accepted",
        "duplicate": duplicate,
        "community_id": event.community_id,
        "timestamp": event.timestamp,
    }
    if duplicate:
        view["data"] = event.data
        if event.actor is not None:
            view["actor"] = event.actor
    return view


@router.post(
    "/v1/communities/<community_id>/events",
    summary="Publish an event (202; 200 with the original event when its id was seen before)",
)
def publish_event(
    community_id: str, body: Annotated[EventPublish, Body()]
) -> tuple[dict[str, Any], int]:
    community_access(router, community_id, scope="publish")
    if body.event in RESERVED_EVENTS:
        raise InvalidParam(
            f"Event type {body.event!r} is sent by Hookline itself and cannot be published.",
            field="event",
        )
    config = services()
    community = CommunityRepository(config.tables.communities).get(community_id)
    event, created = publishing.publish(
        EventRepository(config.tables.events),
        community,
        body.event,
        body.data,
        actor=body.actor,
        event_id=body.id,
        retention_days=config.settings.event_retention_days,
        custom_types=CustomEventTypes(config.tables.communities, community_id),
    )
    if created:
        return _view(event, duplicate=False), 202
    return _view(event, duplicate=True), 200
