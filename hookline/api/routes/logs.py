"""Delivery log and the test endpoint."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query

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
from hookline.domain import delivery_actions
from hookline.domain.delivery import DeliveryContext
from hookline.domain.models import Attempt
from hookline.ports import Between
from hookline.wiring import services

router = Router()

StatusParam = Annotated[
    Literal["success", "failed"] | None,
    Query(description="Only successful or only failed attempts."),
]
StatusCodeParam = Annotated[
    Literal["2xx", "3xx", "4xx", "5xx", "none"] | None,
    Query(description="Only attempts answered with this status class; none: no answer at all."),
]
#: status_code class -> what the attempt's status_code must match.
STATUS_CLASSES: dict[str, Between | None] = {
    "2xx": Between(200, 299),
    "3xx": Between(300, 399),
    "4xx": Between(400, 499),
    "5xx": Between(500, 599),
    "none": None,
}
EventParam = Annotated[
    str | None, Query(min_length=1, max_length=100, description="Only attempts of this event type.")
]


def _entry(attempt: Attempt) -> dict[str, Any]:
    return attempt.model_dump(exclude={"community_id"})


@router.get(
    "/v1/communities/<community_id>/webhooks/<webhook_id>/logs",
    summary="Delivery log of a webhook: every attempt, newest first",
)
def webhook_logs(
    community_id: str,
    webhook_id: str,
    page: PageParam = 1,
    per_page: PerPageParam = 20,
    cursor: CursorParam = None,
    status: StatusParam = None,
    event: EventParam = None,
    status_code: StatusCodeParam = None,
    since: SinceParam = None,
    until: UntilParam = None,
) -> dict[str, Any]:
    community_access(router, community_id)
    after, before = time_range(since, until)
    ctx = DeliveryContext.from_services(services())
    ctx.webhooks.get(community_id, webhook_id)
    where: dict[str, Any] = {}
    if status is not None:
        where["success"] = status == "success"
    if event is not None:
        where["event"] = event
    if status_code is not None:
        where["status_code"] = STATUS_CLASSES[status_code]
    return page_listing(
        lambda limit, position: ctx.deliveries.log(
            webhook_id, limit=limit, cursor=position, where=where, after=after, before=before
        ),
        _entry,
        page=page,
        per_page=per_page,
        cursor=cursor,
    )


@router.post(
    "/v1/communities/<community_id>/webhooks/<webhook_id>/test",
    summary="Send a test.ping now (also to an inactive webhook) and report the endpoint's answer",
)
def test_webhook(community_id: str, webhook_id: str) -> dict[str, Any]:
    community_access(router, community_id)
    return delivery_actions.test_ping(
        DeliveryContext.from_services(services()), community_id, webhook_id
    )
