"""Records <-> table items: communities, API keys, webhooks and events (deliveries are
hookline.domain.delivery_repository). Only these modules know the key layout
(docs/architecture.md)."""

from __future__ import annotations

from typing import Any

from hookline.domain.models import ApiKey, Community, Event, Webhook
from hookline.errors import ConditionFailed, Conflict, NotFound
from hookline.ports import Item, Query, Table

_KEYS = ("pk", "sk", "gsi1pk", "gsi1sk", "expires_at")


def record_fields(item: Item) -> dict[str, Any]:
    """A stored item's record fields: the item without its key and TTL attributes."""
    return {k: v for k, v in item.items() if k not in _KEYS}


def community_pk(community_id: str) -> str:
    return f"C#{community_id}"


#: The partition listing every community (sk = community id, so newest last: ids are monotonic).
COMMUNITY_INDEX = "COMMUNITIES"


def drop_partition(table: Table, partition: str) -> int:
    """Delete every item of one partition; the number deleted."""
    deleted = 0
    while True:
        page = table.query(Query(partition, limit=200))
        for item in page.items:
            table.delete(item["pk"], item["sk"])
            deleted += 1
        if not page.items:
            return deleted


class CommunityRepository:
    def __init__(self, table: Table) -> None:
        self.table = table

    def create(self, community: Community) -> None:
        self.table.put(
            {"pk": community_pk(community.id), "sk": "META", **community.model_dump()},
            if_absent=True,
        )
        self.table.put(
            {"pk": COMMUNITY_INDEX, "sk": community.id, "created_at": community.created_at}
        )

    def page(self, *, limit: int, cursor: str | None) -> tuple[list[Community], str | None]:
        """Communities, newest first."""
        result = self.table.query(
            Query(COMMUNITY_INDEX, descending=True, limit=limit, cursor=cursor)
        )
        items = self.table.batch_get([(community_pk(i["sk"]), "META") for i in result.items])
        by_id = {i["id"]: Community.model_validate(record_fields(i)) for i in items}
        found = [by_id[i["sk"]] for i in result.items if i["sk"] in by_id]
        return found, result.cursor

    def delete(self, community_id: str) -> None:
        """The community item and its index entry (its other items go first: see
        hookline.domain.community_removal)."""
        self.table.delete(community_pk(community_id), "META")
        self.table.delete(COMMUNITY_INDEX, community_id)

    def get(self, community_id: str, *, consistent: bool = True) -> Community:
        """`consistent=False` where a second-old copy is as good (half the read units)."""
        item = self.table.get(community_pk(community_id), "META", consistent=consistent)
        if item is None:
            raise NotFound("Community not found.")
        return Community.model_validate(record_fields(item))

    def update(self, community_id: str, changes: dict[str, Any]) -> Community:
        try:
            item = self.table.update(community_pk(community_id), "META", set=changes)
        except ConditionFailed as exc:
            raise NotFound("Community not found.") from exc
        return Community.model_validate(record_fields(item))

    def add_key(self, key: ApiKey) -> None:
        record = key.model_dump()
        self.table.put({"pk": community_pk(key.community_id), "sk": f"KEY#{key.id}", **record})
        self.table.put({"pk": f"KEYHASH#{key.key_hash}", "sk": "KEY", **record}, if_absent=True)

    def key_by_hash(self, key_hash: str) -> ApiKey | None:
        item = self.table.get(f"KEYHASH#{key_hash}", "KEY")
        return ApiKey.model_validate(record_fields(item)) if item else None

    def get_key(self, community_id: str, key_id: str) -> ApiKey:
        item = self.table.get(community_pk(community_id), f"KEY#{key_id}")
        if item is None:
            raise NotFound("API key not found.")
        return ApiKey.model_validate(record_fields(item))

    def list_keys(self, community_id: str) -> list[ApiKey]:
        page = self.table.query(Query(community_pk(community_id), prefix="KEY#"))
        return [ApiKey.model_validate(record_fields(i)) for i in page.items]

    def touch_key(self, key: ApiKey, used_at: str) -> None:
        """Record a use of ``key`` unless another request already changed last_used_at."""
        expect = {"last_used_at": key.last_used_at} if key.last_used_at else None
        try:
            self.table.update(
                community_pk(key.community_id),
                f"KEY#{key.id}",
                set={"last_used_at": used_at},
                expect=expect,
            )
        except ConditionFailed:
            return

    def revoke_key(self, key: ApiKey, revoked_at: str) -> ApiKey:
        self.table.delete(f"KEYHASH#{key.key_hash}", "KEY")
        item = self.table.update(
            community_pk(key.community_id), f"KEY#{key.id}", set={"revoked_at": revoked_at}
        )
        return ApiKey.model_validate(record_fields(item))


#: Webhook fields that decide which events a webhook gets: changing one bumps the community's
#: subscription version (hookline.domain.subscriptions).
SUBSCRIPTION_FIELDS = frozenset({"events", "status", "filter"})


class WebhookRepository:
    """Webhooks `C#<cid>`/`W#<wid>`, and the community's subscription version `C#<cid>`/`WVER`."""

    def __init__(self, table: Table) -> None:
        self.table = table

    def put(self, webhook: Webhook, *, new: bool = False) -> None:
        item = {"pk": community_pk(webhook.community_id), "sk": f"W#{webhook.id}"}
        self.table.put({**item, **webhook.model_dump()}, if_absent=new)
        self._subscriptions_changed(webhook.community_id)

    def subscription_version(self, community_id: str) -> int:
        item = self.table.get(community_pk(community_id), "WVER")
        return int(item["version"]) if item else 0

    def _subscriptions_changed(self, community_id: str) -> None:
        """Written after the webhook itself, so a dispatcher that sees the new version also
        reads the new webhook."""
        self.table.update(community_pk(community_id), "WVER", add={"version": 1}, if_exists=False)

    def get(self, community_id: str, webhook_id: str) -> Webhook:
        item = self.table.get(community_pk(community_id), f"W#{webhook_id}")
        if item is None:
            raise NotFound("Webhook not found.")
        return Webhook.model_validate(record_fields(item))

    def find(self, community_id: str, webhook_id: str) -> Webhook | None:
        item = self.table.get(community_pk(community_id), f"W#{webhook_id}")
        return Webhook.model_validate(record_fields(item)) if item else None

    def page(
        self, community_id: str, *, limit: int, cursor: str | None, status: str | None = None
    ) -> tuple[list[Webhook], str | None]:
        result = self.table.query(
            Query(
                community_pk(community_id),
                prefix="W#",
                limit=limit,
                cursor=cursor,
                where={"status": status} if status else {},
            )
        )
        return [Webhook.model_validate(record_fields(i)) for i in result.items], result.cursor

    def all(self, community_id: str) -> list[Webhook]:
        webhooks: list[Webhook] = []
        cursor: str | None = None
        while True:
            batch, cursor = self.page(community_id, limit=500, cursor=cursor)
            webhooks.extend(batch)
            if cursor is None:
                return webhooks

    def update(
        self,
        community_id: str,
        webhook_id: str,
        changes: dict[str, Any],
        *,
        remove: tuple[str, ...] = (),
        add: dict[str, int] | None = None,
        expect: dict[str, Any] | None = None,
    ) -> Webhook:
        """Apply ``changes``; with ``expect``, only if those fields still hold those values
        (409 when another request changed them first)."""
        try:
            item = self.table.update(
                community_pk(community_id),
                f"W#{webhook_id}",
                set=changes,
                remove=remove,
                add=add,
                expect=expect,
            )
        except ConditionFailed as exc:
            if expect and self.find(community_id, webhook_id) is not None:
                raise Conflict("The webhook changed meanwhile; try again.") from exc
            raise NotFound("Webhook not found.") from exc
        if SUBSCRIPTION_FIELDS & {*changes, *remove}:
            self._subscriptions_changed(community_id)
        return Webhook.model_validate(record_fields(item))

    def delete(self, community_id: str, webhook_id: str) -> None:
        self.get(community_id, webhook_id)
        self.table.delete(community_pk(community_id), f"W#{webhook_id}")
        self._subscriptions_changed(community_id)


class EventRepository:
    def __init__(self, table: Table) -> None:
        self.table = table

    def add(self, event: Event, *, expires_at: int) -> bool:
        """Store a new event; False when an event with this id already exists (idempotent)."""
        item = {"pk": community_pk(event.community_id), "sk": f"E#{event.id}", **event.model_dump()}
        item["gsi1sk"] = f"{event.timestamp}#{event.id}"
        item["expires_at"] = expires_at
        try:
            self.table.put(item, if_absent=True)
        except ConditionFailed:
            return False
        return True

    def get(self, community_id: str, event_id: str) -> Event:
        item = self.table.get(community_pk(community_id), f"E#{event_id}")
        if item is None:
            raise NotFound("Event not found.")
        return Event.model_validate(record_fields(item))

    def page(
        self,
        community_id: str,
        *,
        limit: int,
        cursor: str | None,
        event: str | None = None,
        after: str | None = None,
        before: str | None = None,
        oldest_first: bool = False,
    ) -> tuple[list[Event], str | None]:
        """One page of a community's events, newest first unless `oldest_first` (the index holds
        keys and the type; the page's events are then read from the table)."""
        page = self.table.query(
            Query(
                community_pk(community_id),
                index="by_time",
                descending=not oldest_first,
                limit=limit,
                cursor=cursor,
                where={"event": event} if event else {},
                after=after,
                before=before,
            )
        )
        found = {
            item["sk"]: item
            for item in self.table.batch_get([(i["pk"], i["sk"]) for i in page.items])
        }
        events = [event_from_item(found[i["sk"]]) for i in page.items if i["sk"] in found]
        return events, page.cursor


def event_from_item(item: Item) -> Event:
    """An event from a stream image or table item."""
    return Event.model_validate(record_fields(item))
