"""Deliveries: inspect, resend, recover."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Query
from pydantic import BaseModel, ConfigDict, Field, field_validator

from hookline import clock
from hookline.api.context import community_access
from hookline.api.pagination import (
    CursorParam,
    PageParam,
    PerPageParam,
    SinceParam,
    UntilParam,
    listing,
    paginate,
    time_range,
)
from hookline.domain import delivery_actions
from hookline.domain.delivery import DeliveryContext
from hookline.wiring import services

router = Router()

_BASE = "/v1/communities/<community_id>/webhooks/<webhook_id>"

StateParam = Annotated[
    Literal["pending", "delivered", "retrying", "failed", "cancelled"] | None,
    Query(description="Only deliveries in this state."),
]


class RecoverBody(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    since: str = Field(
        max_length=64,
        description="Re-send the failed deliveries created at or after this ISO-8601 time.",
        examples=["2026-01-02T03:04:05Z"],
    )

    @field_validator("since")
    @classmethod
    def _iso_time(cls, value: str) -> str:
        try:
            moment = clock.parse_iso(value)
        except ValueError as exc:
            raise ValueError("must be an ISO-8601 time, e.g. 2026-01-02T03:04:05Z") from exc
        return clock.iso(moment)


def _ctx() -> DeliveryContext:
    return DeliveryContext.from_services(services())


@router.get(_BASE + "/deliveries", summary="List a webhook's deliveries (newest first)")
def list_deliveries(
    community_id: str,
    webhook_id: str,
    state: StateParam = None,
    page: PageParam = 1,
    per_page: PerPageParam = 20,
    cursor: CursorParam = None,
) -> dict[str, Any]:
    community_access(router, community_id)
    ctx = _ctx()
    ctx.webhooks.get(community_id, webhook_id)
    items, next_cursor = paginate(
        lambda limit, position: ctx.deliveries.page_of(
            webhook_id, limit=limit, cursor=position, state=state
        ),
        page=page,
        per_page=per_page,
        cursor=cursor,
    )
    return listing(
        [delivery_actions.delivery_view(d) for d in items],
        page=page,
        per_page=per_page,
        cursor=next_cursor,
    )


WebhookIdParam = Annotated[
    str | None, Query(min_length=1, max_length=100, description="Only this webhook's deliveries.")
]
EventTypeParam = Annotated[
    str | None,
    Query(min_length=1, max_length=100, description="Only deliveries of this event type."),
]


@router.get(
    "/v1/communities/<community_id>/deliveries",
    summary="List the community's deliveries across its webhooks (newest first)",
    tags=["Deliveries"],
)
def list_community_deliveries(
    community_id: str,
    webhook_id: WebhookIdParam = None,
    state: StateParam = None,
    event: EventTypeParam = None,
    since: SinceParam = None,
    until: UntilParam = None,
    page: PageParam = 1,
    per_page: PerPageParam = 20,
    cursor: CursorParam = None,
) -> dict[str, Any]:
    community_access(router, community_id)
    after, before = time_range(since, until)
    where = {name: value for name, value in (("state", state), ("event", event)) if value}
    ctx = _ctx()
    items, next_cursor = paginate(
        lambda limit, position: ctx.deliveries.community_page(
            community_id,
            limit=limit,
            cursor=position,
            webhook_id=webhook_id,
            where=where,
            after=after,
            before=before,
        ),
        page=page,
        per_page=per_page,
        cursor=cursor,
    )
    return listing(
        [delivery_actions.delivery_view(d) for d in items],
        page=page,
        per_page=per_page,
        cursor=next_cursor,
    )


@router.get(_BASE + "/deliveries/<delivery_id>", summary="A delivery with all its attempts")
def get_delivery(community_id: str, webhook_id: str, delivery_id: str) -> dict[str, Any]:
    community_access(router, community_id)
    ctx = _ctx()
    delivery = delivery_actions.find_delivery(ctx, community_id, webhook_id, delivery_id)
    return delivery_actions.delivery_view(delivery, ctx.deliveries.attempts(delivery.id))


@router.post(
    _BASE + "/deliveries/<delivery_id>/resend",
    summary="Send a delivery again now (a new retry cycle starts if it fails)",
)
def resend_delivery(community_id: str, webhook_id: str, delivery_id: str) -> dict[str, Any]:
    community_access(router, community_id)
    return delivery_actions.resend(_ctx(), community_id, webhook_id, delivery_id)


@router.post(
    _BASE + "/recover",
    summary="Re-send every failed delivery since a time, in the background",
)
def recover_deliveries(
    community_id: str, webhook_id: str, body: Annotated[RecoverBody, Body()]
) -> tuple[dict[str, Any], int]:
    community_access(router, community_id)
    return delivery_actions.recover(_ctx(), community_id, webhook_id, body.since), 202
