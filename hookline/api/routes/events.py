"""Publishing events. The request only stores the event; the events table's stream delivers it."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Query
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hookline import catalog
from hookline.api.context import community_access
from hookline.api.idempotency import Answered, IdempotencyKeyHeader, idempotent, responses
from hookline.api.pagination import (
    CursorParam,
    PageParam,
    PerPageParam,
    SinceParam,
    UntilParam,
    page_listing,
    time_range,
)
from hookline.api.resolver import validation_error
from hookline.domain import delivery_actions, event_deliveries, publishing
from hookline.domain.delivery_repository import DeliveryRepository
from hookline.domain.event_types import CustomEventTypes
from hookline.domain.models import Community, Event
from hookline.domain.repositories import CommunityRepository, EventRepository, WebhookRepository
from hookline.errors import HooklineError, InvalidParam
from hookline.wiring import services

router = Router()

EVENT_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,100}$"
#: Event types only Hookline itself sends.
RESERVED_EVENTS = catalog.OPERATIONAL_EVENTS | {"test.ping"}
MAX_BATCH = 100


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


class EventBatch(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    events: list[Any] = Field(
        min_length=1,
        max_length=MAX_BATCH,
        description=f"Up to {MAX_BATCH} events, each as for POST .../events; each is checked "
        "on its own.",
        examples=[
            [
                {"event": "post.created", "id": "post-1024-created", "data": {"post_id": 1024}},
                {"event": "member.joined", "data": {"user_id": 45}},
            ]
        ],
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


def event_view(event: Event) -> dict[str, Any]:
    """A stored event as GET .../events shows it."""
    return event.model_dump(exclude={"site_url"})


def _publish(community: Community, body: EventPublish) -> tuple[dict[str, Any], int]:
    if body.event in RESERVED_EVENTS:
        raise InvalidParam(
            f"Event type {body.event!r} is sent by Hookline itself and cannot be published.",
            field="event",
        )
    config = services()
    event, created = publishing.publish(
        EventRepository(config.tables.events),
        community,
        body.event,
        body.data,
        actor=body.actor,
        event_id=body.id,
        retention_days=config.settings.event_retention_days,
        custom_types=CustomEventTypes(config.tables.communities, community.id),
    )
    if created:
        return _view(event, duplicate=False), 202
    return _view(event, duplicate=True), 200


def _community(community_id: str) -> Community:
    # An eventually consistent read: the key was checked strongly just before (a removed
    # community's keys are revoked first), and a second-old site_url is as good.
    return CommunityRepository(services().tables.communities).get(community_id, consistent=False)


@router.post(
    "/v1/communities/<community_id>/events",
    summary="Publish an event (202; 200 with the original event when its id was seen before)",
    description="Send `Idempotency-Key` to make a retried request safe: the same key with the "
    "same body answers the first result again for 24 h; with another body it is a 409.",
    tags=["Events"],
    responses={
        **responses(
            202,
            "Accepted: the event is stored and will be delivered.",
            "The Idempotency-Key or the event's id was used before with another body, or the "
            "first request with this key is still running.",
        ),
        200: {"description": "An event with this id was published before (same body)."},
    },
)
def publish_event(
    community_id: str,
    body: Annotated[EventPublish, Body()],
    idempotency_key: IdempotencyKeyHeader = None,
) -> Answered:
    community_access(router, community_id, scope="publish")
    return idempotent(
        router, community_id, idempotency_key, lambda: _publish(_community(community_id), body)
    )


def _publish_item(community: Community, index: int, item: Any) -> dict[str, Any]:
    """One entry of a batch answer: published (202/200) or why not (the error body)."""
    if not isinstance(item, dict):
        error = InvalidParam(f"events[{index}] must be a JSON object.", field=f"events[{index}]")
        return {"index": index, "status": error.status, "error": error.to_body()}
    try:
        body = EventPublish.model_validate(item)
        answer, status = _publish(community, body)
    except ValidationError as exc:
        error = validation_error([dict(e) for e in exc.errors()])
        return {"index": index, "status": error.status, "error": error.to_body()}
    except HooklineError as error:
        return {"index": index, "status": error.status, "error": error.to_body()}
    return {"index": index, "status": status, "id": answer["id"]}


@router.post(
    "/v1/communities/<community_id>/events/batch",
    summary=f"Publish up to {MAX_BATCH} events in one request (207, one result per event)",
    description="Each event is checked and published on its own, so an invalid event never "
    "drops a valid one. `data` lists one result per event in request order: `status` 202 "
    "(published), 200 (its id was published before) or the error's status with `error` in the "
    "error shape. `Idempotency-Key` works as on POST .../events.",
    tags=["Events"],
    responses=responses(207, "Multi-Status: one result per event, in request order."),
)
def publish_batch(
    community_id: str,
    body: Annotated[EventBatch, Body()],
    idempotency_key: IdempotencyKeyHeader = None,
) -> Answered:
    community_access(router, community_id, scope="publish")

    def run() -> tuple[dict[str, Any], int]:
        community = _community(community_id)
        results = [_publish_item(community, i, item) for i, item in enumerate(body.events)]
        return {"data": results}, 207

    return idempotent(router, community_id, idempotency_key, run)


EventTypeParam = Annotated[
    str | None, Query(min_length=1, max_length=100, description="Only events of this type.")
]


@router.get(
    "/v1/communities/<community_id>/events",
    summary="List published events, newest first",
    tags=["Events"],
)
def list_events(
    community_id: str,
    event: EventTypeParam = None,
    since: SinceParam = None,
    until: UntilParam = None,
    page: PageParam = 1,
    per_page: PerPageParam = 20,
    cursor: CursorParam = None,
) -> dict[str, Any]:
    community_access(router, community_id)
    after, before = time_range(since, until)
    repo = EventRepository(services().tables.events)
    return page_listing(
        lambda limit, position: repo.page(
            community_id, limit=limit, cursor=position, event=event, after=after, before=before
        ),
        event_view,
        page=page,
        per_page=per_page,
        cursor=cursor,
    )


@router.get(
    "/v1/communities/<community_id>/events/<event_id>",
    summary="An event and its deliveries (webhook, state, attempts, next_attempt_at)",
    tags=["Events"],
)
def get_event(community_id: str, event_id: str) -> dict[str, Any]:
    community_access(router, community_id)
    tables = services().tables
    event = EventRepository(tables.events).get(community_id, event_id)
    deliveries = event_deliveries.deliveries_of(
        WebhookRepository(tables.webhooks), DeliveryRepository(tables.deliveries), event
    )
    return {
        **event_view(event),
        "deliveries": [delivery_actions.delivery_view(d) for d in deliveries],
    }
