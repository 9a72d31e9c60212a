"""Deleting a community removes everything of it and nothing of another (in memory)."""

from __future__ import annotations

import json
from typing import Any

from hookline import ids, wiring
from hookline.domain import communities, community_removal
from hookline.domain.directory import Directory
from hookline.domain.event_types import CustomEventTypes
from hookline.domain.incoming import create_incoming
from hookline.domain.incoming_repository import IncomingRepository
from hookline.domain.repositories import CommunityRepository
from hookline_dev.memory import MemoryTable
from tests.delivery_helpers import make_community, make_webhook


def _populate(services: wiring.Services) -> tuple[str, str, str]:
    """A community with a key, a webhook, a member in a space and a course, an incoming
    webhook with a log-less token, a custom type and events: (id, admin key, hook token)."""
    community, _ = make_community(services)
    repo = CommunityRepository(services.tables.communities)
    _, plaintext = communities.issue_key(repo, community.id, "admin")
    make_webhook(services, community.id, "https://example.com/h")
    directory = Directory.open(services.tables, community.id)
    space = directory.create_group("space", name="Lounge")
    course = directory.create_group("course", name="Intro")
    user, _ = directory.register(f"{ids.new_id('m')}@example.com")
    directory.join("space", space, user)
    directory.join("course", course, user)
    _, token, _ = create_incoming(
        IncomingRepository(services.tables.communities),
        directory,
        {"name": "signup", "add_spaces": [space.id]},
    )
    CustomEventTypes(services.tables.communities, community.id).create("order.refunded")
    return community.id, plaintext, token


def _rows_of(table: Any, community_id: str) -> list[dict[str, Any]]:
    assert isinstance(table, MemoryTable)
    rows = [item for partition in table._rows.values() for item in partition.values()]
    return [r for r in rows if community_id in json.dumps(r, default=str)]


def test_delete_community_leaves_nothing_of_it(memory_services: wiring.Services) -> None:
    doomed, key, token = _populate(memory_services)
    kept, kept_key, _ = _populate(memory_services)
    tables = memory_services.tables
    before = {name: len(_rows_of(getattr(tables, name), kept)) for name in ("communities",)}

    removed = community_removal.delete_community(tables, doomed)
    assert removed.api_keys == 2 and removed.webhooks == 1 and removed.incoming_webhooks == 1

    for name in ("communities", "webhooks", "events", "directory"):
        assert _rows_of(getattr(tables, name), doomed) == [], name
    repo = CommunityRepository(tables.communities)
    assert repo.key_by_hash(ids.digest(key)) is None
    assert IncomingRepository(tables.communities).by_token_hash(ids.digest(token)) is None
    assert [c.id for c in repo.page(limit=50, cursor=None)[0]] == [kept]

    # The other community is untouched.
    assert repo.key_by_hash(ids.digest(kept_key)) is not None
    assert {n: len(_rows_of(getattr(tables, n), kept)) for n in before} == before
    assert _rows_of(tables.directory, kept)
