"""Deliveries: inspect, resend, recover, replay."""

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
    page_listing,
    time_range,
)
from hookline.domain import delivery_actions, redelivery
from hookline.domain.delivery import DeliveryContext
from hookline.wiring import services

router = Router()

_BASE = "/v1/communities/<community_id>/webhooks/<webhook_id>"

StateParam = Annotated[
    Literal["pending", "delivered", "retrying", "failed", "cancelled"] | None,
    Query(description="Only deliveries in this state."),
]


def _iso_time(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        moment = clock.parse_iso(value)
    except ValueError as exc:
        raise ValueError("must be an ISO-8601 time, e.g. 2026-01-02T03:04:05Z") from exc
    return clock.iso(moment)


class _TimeRange(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    since: str = Field(
        max_length=64,
        description="From this ISO-8601 time (inclusive).",
        examples=["2026-01-02T03:04:05Z"],
    )
    until: str | None = Field(
        default=None,
        max_length=64,
        description="Up to this ISO-8601 time (exclusive); open-ended when absent.",
        examples=["2026-01-03T00:00:00Z"],
    )

    _times = field_validator("since", "until")(_iso_time)


class RecoverBody(_TimeRange):
    """Re-send the webhook's deliveries in these states created in [since, until)."""

    state: list[str] = Field(
        default_factory=lambda: ["failed"],
        min_length=1,
        max_length=len(redelivery.RECOVERABLE_STATES),
        description="The states to re-send from: "
        + ", ".join(redelivery.RECOVERABLE_STATES)
        + " (default failed).",
        examples=[["failed"]],
    )

    @field_validator("state")
    @classmethod
    def _recoverable(cls, value: list[str]) -> list[str]:
        unknown = [v for v in value if v not in redelivery.RECOVERABLE_STATES]
        if unknown:
            raise ValueError(
                f"{', '.join(map(repr, unknown))} cannot be recovered; use "
                + " or ".join(redelivery.RECOVERABLE_STATES)
            )
        return list(dict.fromkeys(value))


class ReplayBody(_TimeRange):
    """Deliver the stored events published in [since, until) that the webhook never got."""


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
    return page_listing(
        lambda limit, position: ctx.deliveries.page_of(
            webhook_id, limit=limit, cursor=position, state=state
        ),
        delivery_actions.delivery_view,
        page=page,
        per_page=per_page,
        cursor=cursor,
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
    description="Ordered by their events' time, which `since` and `until` bound; with "
    "`webhook_id`, by the deliveries' `created_at` (the two differ only for replayed "
    "deliveries of older events).",
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
    return page_listing(
        lambda limit, position: ctx.deliveries.community_page(
            community_id,
            limit=limit,
            cursor=position,
            webhook_id=webhook_id,
            where=where,
            after=after,
            before=before,
        ),
        delivery_actions.delivery_view,
        page=page,
        per_page=per_page,
        cursor=cursor,
    )


@router.get(_BASE + "/deliveries/<delivery_id>", summary="A delivery with all its attempts")
def get_delivery(community_id: str, webhook_id: str, delivery_id: str) -> dict[str, Any]:
    community_access(router, community_id)
    ctx = _ctx()
    delivery = delivery_actions.find_delivery(ctx, community_id, webhook_id, delivery_id)
    return delivery_actions.delivery_view(
        delivery, ctx.deliveries.attempts(community_id, delivery.id)
    )


@router.post(
    _BASE + "/deliveries/<delivery_id>/resend",
    summary=(
        "Send a delivery now: a scheduled retry is made early (same count and schedule); "
        "otherwise a new retry cycle starts if it fails"
    ),
)
def resend_delivery(community_id: str, webhook_id: str, delivery_id: str) -> dict[str, Any]:
    community_access(router, community_id)
    return delivery_actions.resend(_ctx(), community_id, webhook_id, delivery_id)


@router.post(
    _BASE + "/recover",
    summary="Re-send the failed deliveries of a time range, in the background (capped, counted)",
)
def recover_deliveries(
    community_id: str, webhook_id: str, body: Annotated[RecoverBody, Body()]
) -> tuple[dict[str, Any], int]:
    community_access(router, community_id)
    time_range(body.since, body.until)
    answer = redelivery.recover(
        _ctx(), community_id, webhook_id, body.since, body.until, body.state
    )
    return answer, 202


@router.post(
    _BASE + "/replay",
    summary="Deliver the stored events of a time range this webhook never got (capped, counted)",
)
def replay_events(
    community_id: str, webhook_id: str, body: Annotated[ReplayBody, Body()]
) -> tuple[dict[str, Any], int]:
    community_access(router, community_id)
    time_range(body.since, body.until)
    return redelivery.replay(_ctx(), community_id, webhook_id, body.since, body.until), 202
