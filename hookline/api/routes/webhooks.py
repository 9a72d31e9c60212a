"""Webhook subscriptions of a community."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Query
from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

from hookline.api.context import community_access
from hookline.api.idempotency import Answered, IdempotencyKeyHeader, idempotent, responses
from hookline.api.pagination import CursorParam, PageParam, PerPageParam, listing, paginate
from hookline.domain import webhooks
from hookline.domain.repositories import CommunityRepository, WebhookRepository
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

    model_config = ConfigDict(extra="forbid")

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

    @model_validator(mode="before")
    @classmethod
    def _drop_read_only(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if k not in READ_ONLY}
        return data


def _repo() -> WebhookRepository:
    return WebhookRepository(services().tables.webhooks)


def _allow_private() -> bool:
    return services().settings.allow_private_targets


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
    items, next_cursor = paginate(
        lambda limit, position: repo.page(
            community_id, limit=limit, cursor=position, status=status
        ),
        page=page,
        per_page=per_page,
        cursor=cursor,
    )
    return listing(
        [webhooks.public_view(w) for w in items], page=page, per_page=per_page, cursor=next_cursor
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
        webhook = webhooks.create_webhook(
            _repo(),
            community_id,
            body.model_dump(exclude_unset=True),
            allow_private=_allow_private(),
        )
        return webhooks.public_view(webhook, reveal_secret=True), 201

    return idempotent(router, community_id, idempotency_key, run, redact=_masked)


def _masked(view: dict[str, Any]) -> dict[str, Any]:
    """A created webhook as an Idempotency-Key replay shows it: the secret masked."""
    return {**view, "secret": webhooks.mask_secret(view.get("secret"))}


@router.get("/v1/communities/<community_id>/webhooks/<webhook_id>", summary="Get a webhook")
def get_webhook(community_id: str, webhook_id: str) -> dict[str, Any]:
    community_access(router, community_id)
    return webhooks.public_view(_repo().get(community_id, webhook_id))


def _update(community_id: str, webhook_id: str, body: WebhookFields) -> dict[str, Any]:
    community_access(router, community_id)
    webhook = webhooks.update_webhook(
        _repo(),
        community_id,
        webhook_id,
        body.model_dump(exclude_unset=True),
        allow_private=_allow_private(),
    )
    return webhooks.public_view(webhook)


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


@router.post(
    "/v1/communities/<community_id>/webhooks/<webhook_id>/rotate-secret",
    summary="Rotate the signing secret (the old one keeps signing for 24 h)",
)
def rotate_secret(community_id: str, webhook_id: str) -> dict[str, Any]:
    community_access(router, community_id)
    webhook = webhooks.rotate_secret(_repo(), community_id, webhook_id)
    view = webhooks.public_view(webhook, reveal_secret=True)
    view["previous_secret_expires_at"] = webhook.previous_secret_expires_at
    return view
