"""Incoming webhooks admin API."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

from hookline.api.context import community_access, public_base_url
from hookline.api.idempotency import Answered, IdempotencyKeyHeader, idempotent, responses
from hookline.api.pagination import (
    CursorParam,
    PageParam,
    PerPageParam,
    page_listing,
)
from hookline.domain import incoming, webhooks
from hookline.domain.directory import Directory
from hookline.domain.incoming_repository import IncomingRepository
from hookline.wiring import services

router = Router()

_Ids = list[Annotated[str, Field(min_length=1, max_length=100)]]


class _IncomingBase(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    add_spaces: _Ids | None = Field(
        default=None, max_length=incoming.MAX_GROUPS, description="Space ids to add the user to."
    )
    remove_spaces: _Ids | None = Field(
        default=None, max_length=incoming.MAX_GROUPS, description="Space ids to remove from."
    )
    add_courses: _Ids | None = Field(
        default=None, max_length=incoming.MAX_GROUPS, description="Course ids to enrol in."
    )
    remove_courses: _Ids | None = Field(
        default=None, max_length=incoming.MAX_GROUPS, description="Course ids to unenrol from."
    )
    send_welcome_email: StrictBool | None = Field(
        default=None, description="Email newly created users (never existing ones)."
    )
    status: Literal["active", "inactive"] | None = None
    allowed_ips: list[Annotated[str, Field(max_length=64)]] | None = Field(
        default=None,
        max_length=incoming.MAX_IP_RANGES,
        description="Source IP addresses or CIDR ranges allowed to call (empty: any).",
        examples=[["203.0.113.0/24"]],
    )
    require_signature: StrictBool | None = Field(
        default=None,
        description="Require a Standard Webhooks or X-Hookline-Signature HMAC signature; a "
        "secret is generated (and shown once) when none is given.",
    )
    signing_secret: str | None = Field(default=None, max_length=512)
    max_body_bytes: StrictInt | None = Field(
        default=None, ge=incoming.MIN_MAX_BODY_BYTES, le=incoming.HARD_MAX_BODY_BYTES
    )

    def changes(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True)


class IncomingCreate(_IncomingBase):
    name: str = Field(min_length=1, max_length=200, examples=["Product purchase"])


class IncomingPatch(_IncomingBase):
    name: str | None = Field(default=None, min_length=1, max_length=200)


def _repo() -> IncomingRepository:
    return IncomingRepository(services().tables.communities)


def _directory(community_id: str) -> Directory:
    community_access(router, community_id)
    config = services()
    return Directory.open(
        config.tables, community_id, retention_days=config.settings.event_retention_days
    )


def hook_url(event: dict[str, Any], token: str) -> str:
    """The public URL of an incoming-webhook token, built from the request that created it."""
    return f"{public_base_url(event)}/v1/hooks/{token}"


def _url(token: str) -> str:
    return hook_url(router.current_event.raw_event, token)


@router.get("/v1/communities/<community_id>/incoming-webhooks", summary="List incoming webhooks")
def list_incoming(
    community_id: str, page: PageParam = 1, per_page: PerPageParam = 20, cursor: CursorParam = None
) -> dict[str, Any]:
    community_access(router, community_id)
    repo = _repo()
    return page_listing(
        lambda limit, position: repo.page(community_id, limit=limit, cursor=position),
        incoming.public_view,
        page=page,
        per_page=per_page,
        cursor=cursor,
    )


@router.post(
    "/v1/communities/<community_id>/incoming-webhooks",
    summary="Create an incoming webhook (its URL is shown once)",
    responses=responses(201, "Created (the URL is shown in this answer only)."),
)
def create_incoming(
    community_id: str,
    body: Annotated[IncomingCreate, Body()],
    idempotency_key: IdempotencyKeyHeader = None,
) -> Answered:
    directory = _directory(community_id)

    def run() -> tuple[dict[str, Any], int]:
        hook, token, reveal = incoming.create_incoming(_repo(), directory, body.changes())
        return incoming.public_view(hook, url=_url(token), reveal_secret=reveal), 201

    return idempotent(router, community_id, idempotency_key, run, redact=_without_secrets)


def _without_secrets(view: dict[str, Any]) -> dict[str, Any]:
    """A created incoming webhook as an Idempotency-Key replay shows it: like a GET (no URL,
    the signing secret masked)."""
    stored = {k: v for k, v in view.items() if k != "url"}
    stored["signing_secret"] = webhooks.mask_secret(view.get("signing_secret"))
    return stored


@router.get(
    "/v1/communities/<community_id>/incoming-webhooks/<incoming_id>",
    summary="Get an incoming webhook (without its URL)",
)
def get_incoming(community_id: str, incoming_id: str) -> dict[str, Any]:
    community_access(router, community_id)
    return incoming.public_view(_repo().get(community_id, incoming_id))


@router.patch(
    "/v1/communities/<community_id>/incoming-webhooks/<incoming_id>",
    summary="Update an incoming webhook",
)
def patch_incoming(
    community_id: str, incoming_id: str, body: Annotated[IncomingPatch, Body()]
) -> dict[str, Any]:
    directory = _directory(community_id)
    hook, reveal = incoming.update_incoming(_repo(), directory, incoming_id, body.changes())
    return incoming.public_view(hook, reveal_secret=reveal)


@router.delete(
    "/v1/communities/<community_id>/incoming-webhooks/<incoming_id>",
    summary="Delete an incoming webhook (its URL stops working)",
)
def delete_incoming(community_id: str, incoming_id: str) -> dict[str, Any]:
    community_access(router, community_id)
    incoming.delete_incoming(_repo(), community_id, incoming_id)
    return {"id": incoming_id, "deleted": True, "message": "Incoming webhook deleted."}


@router.post(
    "/v1/communities/<community_id>/incoming-webhooks/<incoming_id>/rotate",
    summary="Issue a new URL; the old one stops working at once",
)
def rotate_incoming(community_id: str, incoming_id: str) -> dict[str, Any]:
    community_access(router, community_id)
    hook, token = incoming.rotate_token(_repo(), community_id, incoming_id)
    return incoming.public_view(hook, url=_url(token))


@router.get(
    "/v1/communities/<community_id>/incoming-webhooks/<incoming_id>/logs",
    summary="The activity log of an incoming webhook, newest first",
)
def list_incoming_logs(
    community_id: str,
    incoming_id: str,
    page: PageParam = 1,
    per_page: PerPageParam = 20,
    cursor: CursorParam = None,
) -> dict[str, Any]:
    community_access(router, community_id)
    repo = _repo()
    repo.get(community_id, incoming_id)
    return page_listing(
        lambda limit, position: repo.logs(incoming_id, limit=limit, cursor=position),
        incoming.log_view,
        page=page,
        per_page=per_page,
        cursor=cursor,
    )
