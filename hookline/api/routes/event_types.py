"""Event types: the built-in catalog, and each community's custom types (CRUD)."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body
from pydantic import BaseModel, ConfigDict, Field

from hookline import catalog
from hookline.api.context import caller, community_access
from hookline.api.idempotency import (
    KEY_CONFLICT,
    Answered,
    IdempotencyKeyHeader,
    idempotent,
    responses,
)
from hookline.domain.event_types import (
    NAME_PATTERN,
    CustomEventTypes,
    builtin_view,
    custom_view,
)
from hookline.domain.repositories import CommunityRepository
from hookline.wiring import services

router = Router()

_ORDER_SCHEMA = {
    "type": "object",
    "required": ["order_id", "amount"],
    "properties": {
        "order_id": {"type": "integer"},
        "amount": {"type": "number", "minimum": 0},
        "currency": {"type": "string", "minLength": 3, "maxLength": 3},
    },
}


class EventTypeCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=False, defer_build=True)

    name: str = Field(
        min_length=3,
        max_length=100,
        pattern=NAME_PATTERN,
        description="`<group>.<action>` like the built-in names, and never one of them.",
        examples=["order.refunded"],
    )
    description: str = Field(default="", max_length=1000, examples=["An order was refunded."])
    data_schema: dict[str, Any] | None = Field(
        default=None,
        alias="schema",
        description="A JSON Schema (2020-12 unless `$schema` says otherwise) that the `data` of "
        "every published event of this type must satisfy. `$ref` may point only inside it.",
        examples=[_ORDER_SCHEMA],
    )
    example: dict[str, Any] | None = Field(
        default=None,
        description="Example `data` (checked against the schema).",
        examples=[{"order_id": 5521, "amount": 49.0, "currency": "EUR"}],
    )


class EventTypePatch(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=False, defer_build=True)

    description: str | None = Field(
        default=None, max_length=1000, examples=["An order was refunded, fully or in part."]
    )
    data_schema: dict[str, Any] | None = Field(
        default=None, alias="schema", description="A new schema; null removes it."
    )
    example: dict[str, Any] | None = Field(default=None, description="null removes it.")


def _types(community_id: str) -> CustomEventTypes:
    return CustomEventTypes(services().tables.communities, community_id)


@router.get("/v1/event-types", summary="List the built-in event types")
def list_event_types() -> dict[str, Any]:
    caller(router)
    return {
        "data": [
            {"name": t.name, "group": t.group, "description": t.description}
            for t in catalog.EVENT_TYPES.values()
        ]
    }


@router.get(
    "/v1/event-types/<name>", summary="Get a built-in event type with its data schema and example"
)
def get_event_type(name: str) -> dict[str, Any]:
    caller(router)
    return builtin_view(name)


@router.post(
    "/v1/communities/<community_id>/event-types",
    summary="Register a custom event type (publishing validates its data against the schema)",
    responses=responses(
        201,
        "Created.",
        f"The community already has an event type of this name, or 100 of them. {KEY_CONFLICT}",
    ),
)
def create_event_type(
    community_id: str,
    body: Annotated[EventTypeCreate, Body()],
    idempotency_key: IdempotencyKeyHeader = None,
) -> Answered:
    community_access(router, community_id)

    def run() -> tuple[dict[str, Any], int]:
        CommunityRepository(services().tables.communities).get(community_id)
        created = _types(community_id).create(
            body.name,
            description=body.description,
            data_schema=body.data_schema,
            example=body.example,
        )
        return custom_view(created), 201

    return idempotent(router, community_id, idempotency_key, run)


@router.get("/v1/communities/<community_id>/event-types", summary="List custom event types")
def list_custom_event_types(community_id: str) -> dict[str, Any]:
    community_access(router, community_id)
    return {"data": [custom_view(t) for t in _types(community_id).all()]}


@router.get("/v1/communities/<community_id>/event-types/<name>", summary="Get a custom event type")
def get_custom_event_type(community_id: str, name: str) -> dict[str, Any]:
    community_access(router, community_id)
    return custom_view(_types(community_id).get(name))


@router.patch(
    "/v1/communities/<community_id>/event-types/<name>", summary="Update a custom event type"
)
def patch_custom_event_type(
    community_id: str, name: str, body: Annotated[EventTypePatch, Body()]
) -> dict[str, Any]:
    community_access(router, community_id)
    changes = body.model_dump(exclude_unset=True)
    return custom_view(_types(community_id).update(name, changes))


@router.delete(
    "/v1/communities/<community_id>/event-types/<name>",
    summary="Delete a custom event type (webhooks subscribed to it simply stop matching)",
)
def delete_custom_event_type(community_id: str, name: str) -> dict[str, Any]:
    community_access(router, community_id)
    _types(community_id).delete(name)
    return {"name": name, "deleted": True, "message": "Event type deleted."}
