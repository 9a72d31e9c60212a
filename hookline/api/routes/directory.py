"""Community directory: members, spaces, courses."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Query
from pydantic import BaseModel, ConfigDict, Field

from hookline.api.context import community_access
from hookline.api.idempotency import (
    KEY_CONFLICT,
    Answered,
    IdempotencyKeyHeader,
    idempotent,
    responses,
)
from hookline.api.pagination import (
    CursorParam,
    PageParam,
    PerPageParam,
    listing,
    page_listing,
)
from hookline.domain import directory as directory_rules
from hookline.domain.directory import Directory
from hookline.domain.directory_repository import GroupKind
from hookline.wiring import services

router = Router()

EmailParam = Annotated[
    str | None, Query(max_length=320, description="Find the member with this email address.")
]


class GroupCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)
    name: str = Field(min_length=1, max_length=200, examples=["Premium Members"])
    slug: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="Unique in the community; made from the name when not given.",
        examples=["premium-members"],
    )
    description: str | None = Field(default=None, max_length=1000)


class GroupPatch(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)
    name: str | None = Field(default=None, min_length=1, max_length=200, examples=["Premium"])
    slug: str | None = Field(default=None, min_length=1, max_length=100, examples=["premium"])
    description: str | None = Field(
        default=None, max_length=1000, examples=["Members with a paid plan."]
    )


def _directory(community_id: str) -> Directory:
    caller = community_access(router, community_id)
    config = services()
    return Directory.open(
        config.tables,
        community_id,
        actor={
            "type": "portal_session" if caller.role == "portal" else "api_key",
            "id": caller.key_id,
        },
        source="api",
        retention_days=config.settings.event_retention_days,
    )


def _list_groups(
    kind: GroupKind, community_id: str, page: int, per_page: int, cursor: str | None
) -> dict[str, Any]:
    directory = _directory(community_id)
    return page_listing(
        lambda limit, position: directory.group_page(kind, limit=limit, cursor=position),
        directory_rules.group_view,
        page=page,
        per_page=per_page,
        cursor=cursor,
    )


def _create_group(
    kind: GroupKind, community_id: str, body: GroupCreate, idempotency_key: str | None
) -> Answered:
    directory = _directory(community_id)

    def run() -> tuple[dict[str, Any], int]:
        group = directory.create_group(
            kind, name=body.name, slug=body.slug, description=body.description or ""
        )
        return directory_rules.group_view(group), 201

    return idempotent(router, community_id, idempotency_key, run)


def _patch_group(
    kind: GroupKind, community_id: str, group_id: str, body: GroupPatch
) -> dict[str, Any]:
    group = _directory(community_id).update_group(
        kind, group_id, name=body.name, slug=body.slug, description=body.description
    )
    return directory_rules.group_view(group)


def _delete_group(kind: GroupKind, community_id: str, group_id: str) -> dict[str, Any]:
    _directory(community_id).delete_group(kind, group_id)
    return {"id": group_id, "deleted": True, "message": f"{kind.capitalize()} deleted."}


def _members(
    kind: GroupKind,
    community_id: str,
    group_id: str,
    page: int,
    per_page: int,
    cursor: str | None,
) -> dict[str, Any]:
    directory = _directory(community_id)
    directory.get_group(kind, group_id)
    return page_listing(
        lambda limit, position: directory.member_page(kind, group_id, limit=limit, cursor=position),
        lambda member: member,
        page=page,
        per_page=per_page,
        cursor=cursor,
    )


# -- spaces ------------------------------------------------------------------------------------


@router.get("/v1/communities/<community_id>/spaces", summary="List spaces")
def list_spaces(
    community_id: str, page: PageParam = 1, per_page: PerPageParam = 20, cursor: CursorParam = None
) -> dict[str, Any]:
    return _list_groups("space", community_id, page, per_page, cursor)


@router.post(
    "/v1/communities/<community_id>/spaces",
    summary="Create a space",
    responses=responses(
        201, "Created.", f"The slug is already used by another space. {KEY_CONFLICT}"
    ),
)
def create_space(
    community_id: str,
    body: Annotated[GroupCreate, Body()],
    idempotency_key: IdempotencyKeyHeader = None,
) -> Answered:
    return _create_group("space", community_id, body, idempotency_key)


@router.get("/v1/communities/<community_id>/spaces/<space_id>", summary="Get a space")
def get_space(community_id: str, space_id: str) -> dict[str, Any]:
    return directory_rules.group_view(_directory(community_id).get_group("space", space_id))


@router.patch("/v1/communities/<community_id>/spaces/<space_id>", summary="Update a space")
def patch_space(
    community_id: str, space_id: str, body: Annotated[GroupPatch, Body()]
) -> dict[str, Any]:
    return _patch_group("space", community_id, space_id, body)


@router.delete(
    "/v1/communities/<community_id>/spaces/<space_id>",
    summary="Delete a space and its memberships",
)
def delete_space(community_id: str, space_id: str) -> dict[str, Any]:
    return _delete_group("space", community_id, space_id)


@router.get(
    "/v1/communities/<community_id>/spaces/<space_id>/members", summary="List a space's members"
)
def list_space_members(
    community_id: str,
    space_id: str,
    page: PageParam = 1,
    per_page: PerPageParam = 20,
    cursor: CursorParam = None,
) -> dict[str, Any]:
    return _members("space", community_id, space_id, page, per_page, cursor)


# -- courses -----------------------------------------------------------------------------------


@router.get("/v1/communities/<community_id>/courses", summary="List courses")
def list_courses(
    community_id: str, page: PageParam = 1, per_page: PerPageParam = 20, cursor: CursorParam = None
) -> dict[str, Any]:
    return _list_groups("course", community_id, page, per_page, cursor)


@router.post(
    "/v1/communities/<community_id>/courses",
    summary="Create a course",
    responses=responses(
        201, "Created.", f"The slug is already used by another course. {KEY_CONFLICT}"
    ),
)
def create_course(
    community_id: str,
    body: Annotated[GroupCreate, Body()],
    idempotency_key: IdempotencyKeyHeader = None,
) -> Answered:
    return _create_group("course", community_id, body, idempotency_key)


@router.get("/v1/communities/<community_id>/courses/<course_id>", summary="Get a course")
def get_course(community_id: str, course_id: str) -> dict[str, Any]:
    return directory_rules.group_view(_directory(community_id).get_group("course", course_id))


@router.patch("/v1/communities/<community_id>/courses/<course_id>", summary="Update a course")
def patch_course(
    community_id: str, course_id: str, body: Annotated[GroupPatch, Body()]
) -> dict[str, Any]:
    return _patch_group("course", community_id, course_id, body)


@router.delete(
    "/v1/communities/<community_id>/courses/<course_id>",
    summary="Delete a course and its enrollments",
)
def delete_course(community_id: str, course_id: str) -> dict[str, Any]:
    return _delete_group("course", community_id, course_id)


@router.get(
    "/v1/communities/<community_id>/courses/<course_id>/enrollments",
    summary="List a course's enrolled members",
)
def list_course_enrollments(
    community_id: str,
    course_id: str,
    page: PageParam = 1,
    per_page: PerPageParam = 20,
    cursor: CursorParam = None,
) -> dict[str, Any]:
    return _members("course", community_id, course_id, page, per_page, cursor)


# -- members -----------------------------------------------------------------------------------


@router.get(
    "/v1/communities/<community_id>/members",
    summary="List members, or find one by email (?email=)",
)
def list_members(
    community_id: str,
    email: EmailParam = None,
    page: PageParam = 1,
    per_page: PerPageParam = 20,
    cursor: CursorParam = None,
) -> dict[str, Any]:
    directory = _directory(community_id)
    if email is not None:
        user = directory.find_by_email(directory_rules.normalize_email(email))
        found = [directory.member_detail(user)] if user else []
        return listing(found, page=1, per_page=per_page, cursor=None)
    return page_listing(
        lambda limit, position: directory.user_page(limit=limit, cursor=position),
        directory_rules.user_view,
        page=page,
        per_page=per_page,
        cursor=cursor,
    )


@router.get(
    "/v1/communities/<community_id>/members/<user_id>",
    summary="Get a member with their spaces and courses",
)
def get_member(community_id: str, user_id: str) -> dict[str, Any]:
    directory = _directory(community_id)
    return directory.member_detail(directory.get_user(user_id))
