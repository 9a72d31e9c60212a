"""Custom event types (hookline.domain.event_types) and the built-in schemas, in memory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from hookline import catalog, catalog_schemas, wiring
from hookline.domain import publishing, webhooks
from hookline.domain.event_types import CustomEventTypes, builtin_view
from hookline.domain.repositories import EventRepository, WebhookRepository
from hookline.errors import Conflict, InvalidParam, NotFound
from tests.delivery_helpers import make_community

ROOT = Path(__file__).resolve().parents[2]
ORDER = {
    "type": "object",
    "required": ["order_id", "amount"],
    "properties": {
        "order_id": {"type": "integer"},
        "amount": {"type": "number", "minimum": 0},
        "items": {"type": "array", "items": {"type": "object", "required": ["sku"]}},
    },
}


@pytest.fixture
def world(memory_services: wiring.Services) -> tuple[Any, CustomEventTypes]:
    community, _ = make_community(memory_services)
    return community, CustomEventTypes(memory_services.tables.communities, community.id)


def _field(caught: pytest.ExceptionInfo[InvalidParam]) -> str:
    return caught.value.to_body()["data"]["field"]


@pytest.mark.parametrize("name", sorted(catalog.EVENT_TYPES))
def test_every_builtin_type_has_a_valid_schema_its_example_satisfies(name: str) -> None:
    view = builtin_view(name)
    Draft202012Validator.check_schema(view["schema"])
    assert view["example"], name
    Draft202012Validator(view["schema"]).validate(view["example"])
    assert view["schema"] == catalog_schemas.schema_of(name, catalog.group_of(name))


def test_unknown_builtin_is_not_found() -> None:
    with pytest.raises(NotFound):
        builtin_view("order.refunded")


@pytest.mark.parametrize("name", ["post.created", "Order.Refunded", "order", "order.", "a.b.c"])
def test_names_are_refused_when_builtin_or_malformed(
    world: tuple[Any, CustomEventTypes], name: str
) -> None:
    _, types = world
    with pytest.raises(InvalidParam) as caught:
        types.create(name)
    assert _field(caught) == "name"


def test_a_registered_type_is_published_with_its_data_validated(
    world: tuple[Any, CustomEventTypes], memory_services: wiring.Services
) -> None:
    community, types = world
    events = EventRepository(memory_services.tables.events)
    with pytest.raises(InvalidParam) as caught:
        publishing.publish(events, community, "order.refunded", {}, custom_types=types)
    assert _field(caught) == "event"

    types.create("order.refunded", description="Refunded", data_schema=ORDER)
    event, created = publishing.publish(
        events, community, "order.refunded", {"order_id": 7, "amount": 12.5}, custom_types=types
    )
    assert created and event.event == "order.refunded"

    for data, field in [
        ({"order_id": 7}, "data"),
        ({"order_id": "seven", "amount": 1}, "data.order_id"),
        ({"order_id": 7, "amount": -1}, "data.amount"),
        ({"order_id": 7, "amount": 1, "items": [{"sku": "a"}, {}]}, "data.items.1"),
    ]:
        with pytest.raises(InvalidParam) as caught:
            publishing.publish(events, community, "order.refunded", data, custom_types=types)
        assert _field(caught) == field, data
    # Another community's publish does not see this community's type.
    other, _ = make_community(memory_services)
    with pytest.raises(InvalidParam):
        publishing.publish(
            events,
            other,
            "order.refunded",
            {"order_id": 7, "amount": 1},
            custom_types=CustomEventTypes(memory_services.tables.communities, other.id),
        )


def test_a_type_without_schema_takes_any_object(world: tuple[Any, CustomEventTypes]) -> None:
    community, types = world
    types.create("badge.awarded")
    repo = EventRepository(wiring.services().tables.events)
    event, _ = publishing.publish(
        repo, community, "badge.awarded", {"anything": [1, {"x": None}]}, custom_types=types
    )
    assert event.data == {"anything": [1, {"x": None}]}


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"data_schema": {"type": "no-such-type"}}, "schema"),
        ({"data_schema": {"$ref": "https://example.com/schema.json"}}, "schema"),
        ({"data_schema": {"properties": {"a": {"$ref": "other.json#/x"}}}}, "schema"),
        ({"data_schema": ORDER, "example": {"order_id": 1}}, "example"),
        ({"example": {"x": float("nan")}}, "example"),
    ],
)
def test_bad_schemas_and_examples_name_the_field(
    world: tuple[Any, CustomEventTypes], fields: dict[str, Any], field: str
) -> None:
    _, types = world
    with pytest.raises(InvalidParam) as caught:
        types.create("order.paid", **fields)
    assert _field(caught) == field


def test_crud(world: tuple[Any, CustomEventTypes]) -> None:
    _, types = world
    types.create("order.paid", data_schema=ORDER, example={"order_id": 1, "amount": 2})
    with pytest.raises(Conflict):
        types.create("order.paid")
    with pytest.raises(InvalidParam) as caught:  # the stored example no longer fits
        types.update("order.paid", {"data_schema": {**ORDER, "required": ["currency"]}})
    assert _field(caught) == "example"
    updated = types.update("order.paid", {"description": "Paid", "example": None})
    assert updated.description == "Paid" and updated.example is None
    assert [t.name for t in types.all()] == ["order.paid"]
    types.delete("order.paid")
    assert types.all() == []
    with pytest.raises(NotFound):
        types.delete("order.paid")


def test_webhooks_subscribe_to_custom_types(
    world: tuple[Any, CustomEventTypes], memory_services: wiring.Services
) -> None:
    community, types = world
    repo = WebhookRepository(memory_services.tables.webhooks)
    fields = {"url": "https://example.com/h", "events": ["order.refunded"]}
    with pytest.raises(InvalidParam):
        webhooks.create_webhook(repo, community.id, fields, allow_private=False)
    types.create("order.refunded")
    names = types.names()
    hook = webhooks.create_webhook(
        repo, community.id, fields, allow_private=False, custom_events=names
    )
    assert hook.events == ["order.refunded"]
    widened = webhooks.update_webhook(
        repo,
        community.id,
        hook.id,
        {"events": ["order.*", "post.*"]},
        allow_private=False,
        custom_events=names,
    )
    assert catalog.matches(widened.events, "order.refunded")


def test_jsonschema_stays_off_the_api_cold_start_path() -> None:
    code = (
        "import os, sys, runpy; os.environ.setdefault('AWS_DEFAULT_REGION', 'us-east-1');"
        "runpy.run_path('functions/api/app.py');"
        "import hookline.domain.event_types;"
        "print(any(m.split('.')[0] in ('jsonschema', 'referencing') for m in sys.modules))"
    )
    out = subprocess.run(  # noqa: S603 (our own interpreter and code)
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "False", out.stderr
