"""Communities and their API keys."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body
from pydantic import BaseModel, ConfigDict, Field

from hookline.api.context import community_access, operator
from hookline.api.idempotency import Answered, IdempotencyKeyHeader, idempotent, responses
from hookline.api.pagination import CursorParam, PerPageParam, paginate, sign_cursor
from hookline.domain import communities, community_removal
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
    operator(router)

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


@router.get("/v1/communities", summary="List communities, newest first (operator key only)")
def list_communities(per_page: PerPageParam = 20, cursor: CursorParam = None) -> dict[str, Any]:
    operator(router)
    repo = _repo()
    found, next_cursor = paginate(
        lambda limit, position: repo.page(limit=limit, cursor=position),
        page=1,
        per_page=per_page,
        cursor=cursor,
    )
    return {
        "data": [_community_view(c) for c in found],
        "per_page": per_page,
        "next_cursor": sign_cursor(next_cursor),
    }


@router.delete(
    "/v1/communities/<community_id>",
    summary="Delete a community and everything of it (operator key only)",
)
def delete_community(community_id: str) -> dict[str, Any]:
    operator(router)
    removed = community_removal.delete_community(services().tables, community_id)
    return {
        "id": community_id,
        "deleted": True,
        "removed": asdict(removed),
        "message": "Community deleted: its keys, incoming webhooks, webhooks (pending retries "
        "are cancelled), events, members, spaces, courses and event types are gone.",
    }


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
