"""Event types: the built-in catalog and each community's custom types.

A community registers its own types (``order.refunded``) with a description, an optional JSON
Schema for ``data`` and an example. Publishing a custom type validates ``data`` against its
schema. Custom types live in the CommunitiesTable as ``C#<cid>``/``ET#<name>``.

jsonschema is imported only when a schema is checked, so paths that never meet one (the
authorizer, the dispatcher, built-in publishing) do not load it.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from hookline import catalog, catalog_schemas, clock
from hookline.domain.models import Record
from hookline.domain.repositories import community_pk
from hookline.errors import ConditionFailed, Conflict, InvalidParam, NotFound
from hookline.ports import Query, Table

if TYPE_CHECKING:
    from jsonschema.protocols import Validator

#: The syntax of every event type name, built-in or custom: ``<group>.<action>``.
NAME_PATTERN = r"^[a-z][a-z0-9_]{0,39}\.[a-z][a-z0-9_]{0,59}$"
_NAME = re.compile(NAME_PATTERN)
MAX_CUSTOM_TYPES = 100
MAX_DOCUMENT_BYTES = 16 * 1024
_PREFIX = "ET#"


class CustomEventType(Record):
    community_id: str
    name: str
    description: str = ""
    data_schema: dict[str, Any] | None = None
    example: dict[str, Any] | None = None
    created_at: str
    updated_at: str


def builtin_view(name: str) -> dict[str, Any]:
    """A built-in type with its schema and example (NotFound for any other name)."""
    event_type = catalog.EVENT_TYPES.get(name)
    if event_type is None:
        raise NotFound(f"No built-in event type {name!r}. See GET /v1/event-types.")
    return {
        "name": event_type.name,
        "group": event_type.group,
        "description": event_type.description,
        "custom": False,
        "schema": catalog_schemas.schema_of(event_type.name, event_type.group),
        "example": catalog_schemas.example_of(event_type.name, event_type.group),
    }


def custom_view(event_type: CustomEventType) -> dict[str, Any]:
    return {
        "name": event_type.name,
        "group": event_type.name.split(".", 1)[0],
        "description": event_type.description,
        "custom": True,
        "schema": event_type.data_schema,
        "example": event_type.example,
        "created_at": event_type.created_at,
        "updated_at": event_type.updated_at,
    }


# -- checks ------------------------------------------------------------------------------------


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise InvalidParam(
            "name must look like the built-in names: <group>.<action>, lower-case letters, "
            "digits and underscores (e.g. order.refunded).",
            field="name",
        )
    if catalog.is_known(name):
        raise InvalidParam(
            f"{name} is a built-in event type; a community cannot redefine it.", field="name"
        )
    return name


def _size_checked(value: dict[str, Any], field: str) -> None:
    if len(json.dumps(value, separators=(",", ":"))) > MAX_DOCUMENT_BYTES:
        raise InvalidParam(f"{field} is larger than {MAX_DOCUMENT_BYTES} bytes.", field=field)


def _remote_refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and not ref.startswith("#"):
            yield ref
        for value in node.values():
            yield from _remote_refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _remote_refs(value)


@functools.lru_cache(maxsize=256)
def _validator(schema_text: str) -> Validator:
    from jsonschema.validators import validator_for

    schema = json.loads(schema_text)
    cls = validator_for(schema)
    return cls(schema)


def check_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A valid JSON Schema (its own ``$schema`` draft, 2020-12 by default) with local refs only."""
    from jsonschema.exceptions import SchemaError
    from jsonschema.validators import validator_for

    _size_checked(schema, "schema")
    remote = next(_remote_refs(schema), None)
    if remote is not None:
        raise InvalidParam(
            f"schema may refer only within itself ($ref {remote!r} is not '#...').", field="schema"
        )
    try:
        validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path)
        raise InvalidParam(
            f"schema is not a valid JSON Schema{f' at {where}' if where else ''}: "
            f"{_short(exc.message)}",
            field="schema",
        ) from exc
    return schema


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def validate_data(schema: dict[str, Any], data: Any, field: str = "data") -> None:
    """400 ``invalid_param`` with ``field`` pointing into ``data`` (``data.items.0.price``)."""
    from jsonschema.exceptions import best_match
    from referencing.exceptions import Unresolvable

    try:
        error = best_match(_validator(json.dumps(schema, sort_keys=True)).iter_errors(data))
    except Unresolvable as exc:
        raise InvalidParam(
            f"The event type's schema cannot be resolved: {exc}.", field=field
        ) from exc
    if error is None:
        return
    path = ".".join([field, *(str(p) for p in error.absolute_path)])
    raise InvalidParam(f"{path}: {_short(error.message)}", field=path)


def check_publishable(event_type: str, data: Any, custom_types: CustomEventTypes | None) -> None:
    """A built-in type, or a registered custom type whose schema ``data`` satisfies."""
    if catalog.is_known(event_type):
        return
    custom = custom_types.find(event_type) if custom_types and _NAME.match(event_type) else None
    if custom is None:
        raise InvalidParam(
            f"Unknown event type {event_type!r}. See GET /v1/event-types, or register it with "
            "POST /v1/communities/{community_id}/event-types.",
            field="event",
        )
    if custom.data_schema is not None:
        validate_data(custom.data_schema, data)


# -- storage and CRUD --------------------------------------------------------------------------


class CustomEventTypes:
    """One community's custom event types, over the CommunitiesTable."""

    def __init__(self, table: Table, community_id: str) -> None:
        self.table = table
        self.community_id = community_id

    def find(self, name: str) -> CustomEventType | None:
        item = self.table.get(community_pk(self.community_id), _PREFIX + name)
        return CustomEventType.model_validate(item) if item else None

    def get(self, name: str) -> CustomEventType:
        found = self.find(name)
        if found is None:
            raise NotFound(f"No custom event type {name!r} in this community.")
        return found

    def all(self) -> list[CustomEventType]:
        found: list[CustomEventType] = []
        cursor: str | None = None
        while True:
            page = self.table.query(
                Query(community_pk(self.community_id), prefix=_PREFIX, limit=200, cursor=cursor)
            )
            found.extend(CustomEventType.model_validate(i) for i in page.items)
            cursor = page.cursor
            if cursor is None:
                return found

    def names(self) -> set[str]:
        return {t.name for t in self.all()}

    def create(
        self,
        name: str,
        *,
        description: str = "",
        data_schema: dict[str, Any] | None = None,
        example: dict[str, Any] | None = None,
    ) -> CustomEventType:
        check_name(name)
        _check_document(data_schema, example)
        if len(self.all()) >= MAX_CUSTOM_TYPES:
            raise Conflict(f"A community may register at most {MAX_CUSTOM_TYPES} event types.")
        now = clock.now_iso()
        event_type = CustomEventType(
            community_id=self.community_id,
            name=name,
            description=description,
            data_schema=data_schema,
            example=example,
            created_at=now,
            updated_at=now,
        )
        item = {
            "pk": community_pk(self.community_id),
            "sk": _PREFIX + name,
            **event_type.model_dump(exclude_none=True),
        }
        try:
            self.table.put(item, if_absent=True)
        except ConditionFailed as exc:
            raise Conflict(f"The event type {name} is already registered.") from exc
        return event_type

    def update(self, name: str, changes: dict[str, Any]) -> CustomEventType:
        """Apply a PATCH: ``description``, ``schema`` and ``example`` (null clears the last two)."""
        current = self.get(name)
        merged = current.model_copy(update=changes)
        _check_document(merged.data_schema, merged.example)
        sets = {k: v for k, v in changes.items() if v is not None}
        remove = tuple(k for k, v in changes.items() if v is None)
        sets["updated_at"] = clock.now_iso()
        item = self.table.update(
            community_pk(self.community_id), _PREFIX + name, set=sets, remove=remove
        )
        return CustomEventType.model_validate(item)

    def delete(self, name: str) -> None:
        self.get(name)
        self.table.delete(community_pk(self.community_id), _PREFIX + name)


def _check_document(data_schema: dict[str, Any] | None, example: dict[str, Any] | None) -> None:
    from hookline.domain.publishing import check_storable  # publishing imports this module

    if data_schema is not None:
        check_storable(data_schema, "schema")
        check_schema(data_schema)
    if example is not None:
        check_storable(example, "example")
        _size_checked(example, "example")
        if data_schema is not None:
            validate_data(data_schema, example, field="example")
