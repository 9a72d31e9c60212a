"""Communities, API keys and the event-type catalog."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body
from pydantic import BaseModel, ConfigDict, Field

from hookline import catalog
from hookline.api.context import caller, community_access, principal
from hookline.api.idempotency import Answered, IdempotencyKeyHeader, idempotent, responses
from hookline.domain import communities
from hookline.domain.models import ApiKey, Community
from hookline.domain.repositories import CommunityRepository
from hookline.wiring import services

router = Router()


class CommunityCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)
    name: str = Field(min_length=1, max_length=200, examples=["Acme Forum"])
    site_url: str = Field(min_length=1, max_length=2048, examples=["https://forum.example.com"])


class CommunityPatch(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)
    name: str | None = Field(default=None, min_length=1, max_length=200, examples=["Acme Forum"])
    site_url: str | None = Field(
        default=None, min_length=1, max_length=2048, examples=["https://forum.example.com"]
    )


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)
    name: str = Field(default="admin", min_length=1, max_length=100)
    scopes: list[Literal["admin", "publish", "read"]] | None = Field(
        default=None,
        min_length=1,
        max_length=3,
        description="What the key may do: `admin` (everything, the default), `publish` "
        "(POST events only) and/or `read` (GET only). Other calls answer 403 rest_forbidden.",
        examples=[["publish"]],
    )


def _repo() -> CommunityRepository:
    return CommunityRepository(services().tables.communities)


def _key_view(key: ApiKey, plaintext: str | None = None) -> dict[str, Any]:
    view = key.model_dump(exclude={"key_hash"})
    if plaintext:
        view["key"] = plaintext
    return view


def _community_view(community: Community) -> dict[str, Any]:
    return community.model_dump()


@router.post(
    "/v1/communities",
    summary="Create a community (operator key only)",
    responses=responses(201, "Created, with its first admin API key (shown in this answer only)."),
)
def create_community(
    body: Annotated[CommunityCreate, Body()], idempotency_key: IdempotencyKeyHeader = None
) -> Answered:
    principal(router).require_operator()

    def run() -> tuple[dict[str, Any], int]:
        community, key, plaintext = communities.create_community(
            _repo(), name=body.name, site_url=body.site_url
        )
        return {**_community_view(community), "api_key": _key_view(key, plaintext)}, 201

    return idempotent(
        router,
        "",
        idempotency_key,
        run,
        redact=lambda view: {**view, "api_key": _without_key(view["api_key"])},
    )


def _without_key(view: dict[str, Any]) -> dict[str, Any]:
    """An issued key as an Idempotency-Key replay shows it: without the key itself."""
    return {k: v for k, v in view.items() if k != "key"}


@router.get("/v1/communities/<community_id>", summary="Get a community")
def get_community(community_id: str) -> dict[str, Any]:
    community_access(router, community_id)
    return _community_view(_repo().get(community_id))


@router.patch("/v1/communities/<community_id>", summary="Update a community")
def patch_community(community_id: str, body: Annotated[CommunityPatch, Body()]) -> dict[str, Any]:
    community_access(router, community_id)
    updated = communities.update_community(
        _repo(), community_id, name=body.name, site_url=body.site_url
    )
    return _community_view(updated)


@router.post(
    "/v1/communities/<community_id>/api-keys",
    summary="Issue an API key (shown once)",
    responses=responses(201, "Created (the key is shown in this answer only)."),
)
def create_api_key(
    community_id: str,
    body: Annotated[ApiKeyCreate | None, Body()] = None,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Answered:
    community_access(router, community_id)

    def run() -> tuple[dict[str, Any], int]:
        _repo().get(community_id)
        fields = body or ApiKeyCreate()
        key, plaintext = communities.issue_key(_repo(), community_id, fields.name, fields.scopes)
        return _key_view(key, plaintext), 201

    return idempotent(router, community_id, idempotency_key, run, redact=_without_key)


@router.get("/v1/communities/<community_id>/api-keys", summary="List API keys")
def list_api_keys(community_id: str) -> dict[str, Any]:
    community_access(router, community_id)
    return {"data": [_key_view(k) for k in _repo().list_keys(community_id)]}


@router.delete("/v1/communities/<community_id>/api-keys/<key_id>", summary="Revoke an API key")
def revoke_api_key(community_id: str, key_id: str) -> dict[str, Any]:
    community_access(router, community_id)
    key = communities.revoke_key(_repo(), community_id, key_id)
    return {**_key_view(key), "message": "API key revoked."}


@router.get("/v1/event-types", summary="List the event types webhooks can subscribe to")
def list_event_types() -> dict[str, Any]:
    caller(router)
    return {
        "data": [
            {"name": t.name, "group": t.group, "description": t.description}
            for t in catalog.EVENT_TYPES.values()
        ]
    }
