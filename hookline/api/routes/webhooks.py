"""Webhook subscriptions of a community."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Query
from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

from hookline.api.context import community_access
from hookline.api.idempotency import Answered, IdempotencyKeyHeader, idempotent, responses
from hookline.api.pagination import (
    CursorParam,
    PageParam,
    PerPageParam,
    page_listing,
)
from hookline.domain import rotation, webhooks
from hookline.domain.event_types import CustomEventTypes
from hookline.domain.models import Webhook
from hookline.domain.repositories import CommunityRepository, EventRepository, WebhookRepository
from hookline.wiring import services

router = Router()

#: Fields a GET returns that a client may send back unchanged in a PUT; they are ignored.
READ_ONLY = frozenset(
    {
        "id",
        "community_id",
        "created_at",
        "updated_at",
        "last_triggered_at",
        "last_error",
        "disabled_reason",
        "message",
    }
)


class WebhookFields(BaseModel):
    """Any subset of a webhook's writable fields."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    name: str | None = Field(default=None, max_length=200, examples=["Slack #community"])
    url: str | None = Field(default=None, max_length=2048, examples=["https://example.com/hooks"])
    events: list[Annotated[str, Field(max_length=100)]] | None = Field(
        default=None, max_length=webhooks.MAX_EVENTS, examples=[["post.*", "member.joined"]]
    )
    status: Literal["active", "inactive"] | None = None
    is_active: StrictBool | None = None
    secret: str | None = Field(default=None, max_length=512)
    headers: dict[str, str] | None = None
    retry_count: int | None = Field(default=None, ge=0, le=10)
    description: str | None = Field(default=None, max_length=1000)
    format: Literal["json", "slack", "discord"] | None = None
    filter: dict[str, Any] | None = Field(
        default=None,
        description="An EventBridge event pattern over the delivered payload; null: every event.",
        examples=[{"data": {"space_slug": ["support"]}}],
    )
    rate_limit: Annotated[float, Field(strict=True, gt=0, le=1000)] | None = Field(
        default=None,
        description="Deliveries per second; null: unlimited. Default: 1 for slack, 0.5 for "
        "discord, unlimited for json.",
        examples=[2],
    )

    @model_validator(mode="before")
    @classmethod
    def _drop_read_only(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if k not in READ_ONLY}
        return data


class FilterTest(BaseModel):
    """A sample payload, and optionally a draft filter to try instead of the stored one."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    payload: dict[str, Any] = Field(
        examples=[{"event": "post.created", "data": {"space_slug": "support"}}]
    )
    filter: dict[str, Any] | None = None


def _repo() -> WebhookRepository:
    return WebhookRepository(services().tables.webhooks)


def _view(webhook: Webhook, *, reveal_secret: bool = False) -> dict[str, Any]:
    return {
        **webhooks.public_view(webhook, reveal_secret=reveal_secret),
        **rotation.overlap_view(webhook),
    }


def _allow_private() -> bool:
    return services().settings.allow_private_targets


def _custom_events(community_id: str, fields: dict[str, Any]) -> set[str]:
    """The community's own event types, read only when the subscription changes."""
    if fields.get("events") is None:
        return set()
    return CustomEventTypes(services().tables.communities, community_id).names()


StatusFilter = Annotated[
    Literal["active", "inactive"] | None,
    Query(description="Only active or only inactive webhooks."),
]


@router.get("/v1/communities/<community_id>/webhooks", summary="List webhooks")
def list_webhooks(
    community_id: str,
    page: PageParam = 1,
    per_page: PerPageParam = 20,
    cursor: CursorParam = None,
    status: StatusFilter = None,
) -> dict[str, Any]:
    community_access(router, community_id)
    repo = _repo()
    return page_listing(
        lambda limit, position: repo.page(
            community_id, limit=limit, cursor=position, status=status
        ),
        _view,
        page=page,
        per_page=per_page,
        cursor=cursor,
    )


@router.post(
    "/v1/communities/<community_id>/webhooks",
    summary="Create a webhook",
    responses=responses(201, "Created (the secret is shown in full in this answer only)."),
)
def create_webhook(
    community_id: str,
    body: Annotated[WebhookFields, Body()],
    idempotency_key: IdempotencyKeyHeader = None,
) -> Answered:
    community_access(router, community_id)

    def run() -> tuple[dict[str, Any], int]:
        CommunityRepository(services().tables.communities).get(community_id)
        fields = body.model_dump(exclude_unset=True)
        webhook = webhooks.create_webhook(
            _repo(),
            community_id,
            fields,
            allow_private=_allow_private(),
            custom_events=_custom_events(community_id, fields),
        )
        return _view(webhook, reveal_secret=True), 201

    return idempotent(router, community_id, idempotency_key, run, redact=_masked)


def _masked(view: dict[str, Any]) -> dict[str, Any]:
    """A created webhook as an Idempotency-Key replay shows it: the secret masked."""
    return {**view, "secret": webhooks.mask_secret(view.get("secret"))}


@router.get("/v1/communities/<community_id>/webhooks/<webhook_id>", summary="Get a webhook")
def get_webhook(community_id: str, webhook_id: str) -> dict[str, Any]:
    community_access(router, community_id)
    return _view(_repo().get(community_id, webhook_id))


def _update(community_id: str, webhook_id: str, body: WebhookFields) -> dict[str, Any]:
    community_access(router, community_id)
    fields = body.model_dump(exclude_unset=True)
    webhook = webhooks.update_webhook(
        _repo(),
        community_id,
        webhook_id,
        fields,
        allow_private=_allow_private(),
        custom_events=_custom_events(community_id, fields),
    )
    return _view(webhook)


@router.patch("/v1/communities/<community_id>/webhooks/<webhook_id>", summary="Update a webhook")
def patch_webhook(
    community_id: str, webhook_id: str, body: Annotated[WebhookFields, Body()]
) -> dict[str, Any]:
    return _update(community_id, webhook_id, body)


@router.put(
    "/v1/communities/<community_id>/webhooks/<webhook_id>",
    summary="Update a webhook (same as PATCH: any subset of fields)",
)
def put_webhook(
    community_id: str, webhook_id: str, body: Annotated[WebhookFields, Body()]
) -> dict[str, Any]:
    return _update(community_id, webhook_id, body)


@router.delete("/v1/communities/<community_id>/webhooks/<webhook_id>", summary="Delete a webhook")
def delete_webhook(community_id: str, webhook_id: str) -> dict[str, Any]:
    community_access(router, community_id)
    _repo().delete(community_id, webhook_id)
    return {"id": webhook_id, "deleted": True, "message": "Webhook deleted."}


class SecretRotation(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    secret: str | None = Field(
        default=None,
        max_length=512,
        description="The new secret (generated when left out): `whsec_` + base64, or plain text.",
    )
    overlap_seconds: int = Field(
        default=rotation.DEFAULT_OVERLAP_SECONDS,
        ge=0,
        le=rotation.MAX_OVERLAP_SECONDS,
        description="How long the replaced secret keeps signing alongside the new one "
        "(0: switch now).",
        examples=[86_400],
    )


@router.post(
    "/v1/communities/<community_id>/webhooks/<webhook_id>/rotate-secret",
    summary="Rotate the signing secret (the replaced one keeps signing during the overlap)",
)
def rotate_secret(
    community_id: str,
    webhook_id: str,
    body: Annotated[SecretRotation | None, Body()] = None,
) -> dict[str, Any]:
    community_access(router, community_id)
    config = services()
    community = CommunityRepository(config.tables.communities).get(community_id)
    fields = body or SecretRotation()
    webhook, replaced_until = rotation.rotate_secret(
        _repo(),
        community_id,
        webhook_id,
        secret=fields.secret,
        overlap_seconds=fields.overlap_seconds,
    )
    rotation.announce(
        EventRepository(config.tables.events),
        community,
        webhook,
        replaced_until=replaced_until,
        retention_days=config.settings.event_retention_days,
    )
    return {**_view(webhook, reveal_secret=True), "previous_secret_expires_at": replaced_until}


@router.post(
    "/v1/communities/<community_id>/webhooks/<webhook_id>/rotate-secret/complete",
    summary="End the rotation's overlap now: only the current secret signs from here on",
)
def complete_secret_rotation(community_id: str, webhook_id: str) -> dict[str, Any]:
    community_access(router, community_id)
    return _view(rotation.complete_rotation(_repo(), community_id, webhook_id))


@router.post(
    "/v1/communities/<community_id>/webhooks/<webhook_id>/filter-test",
    summary="Would this payload be delivered to the webhook, and if not, why not?",
)
def filter_test(
    community_id: str, webhook_id: str, body: Annotated[FilterTest, Body()]
) -> dict[str, Any]:
    community_access(router, community_id)
    webhook = _repo().get(community_id, webhook_id)
    if "filter" in body.model_fields_set:
        draft = None if body.filter is None else webhooks.validate_filter(body.filter)
        webhook = webhook.model_copy(update={"filter": draft})
    return webhooks.filter_test(webhook, body.payload)
