"""Records <-> table items. The only module that knows the key layout (docs/architecture.md)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from hookline.domain.models import ApiKey, Attempt, Community, Delivery, Event, Webhook
from hookline.errors import ConditionFailed, Conflict, NotFound
from hookline.ports import Item, Page, Query, Table

_KEYS = ("pk", "sk", "gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk", "expires_at")


def _record_fields(item: Item) -> dict[str, Any]:
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
        by_id = {i["id"]: Community.model_validate(_record_fields(i)) for i in items}
        found = [by_id[i["sk"]] for i in result.items if i["sk"] in by_id]
        return found, result.cursor

    def delete(self, community_id: str) -> None:
        """The community item and its index entry (its other items go first: see
        hookline.domain.community_removal)."""
        self.table.delete(community_pk(community_id), "META")
        self.table.delete(COMMUNITY_INDEX, community_id)

    def get(self, community_id: str) -> Community:
        item = self.table.get(community_pk(community_id), "META")
        if item is None:
            raise NotFound("Community not found.")
        return Community.model_validate(_record_fields(item))

    def update(self, community_id: str, changes: dict[str, Any]) -> Community:
        try:
            item = self.table.update(community_pk(community_id), "META", set=changes)
        except ConditionFailed as exc:
            raise NotFound("Community not found.") from exc
        return Community.model_validate(_record_fields(item))

    def add_key(self, key: ApiKey) -> None:
        record = key.model_dump()
        self.table.put({"pk": community_pk(key.community_id), "sk": f"KEY#{key.id}", **record})
        self.table.put({"pk": f"KEYHASH#{key.key_hash}", "sk": "KEY", **record}, if_absent=True)

    def key_by_hash(self, key_hash: str) -> ApiKey | None:
        item = self.table.get(f"KEYHASH#{key_hash}", "KEY")
        return ApiKey.model_validate(_record_fields(item)) if item else None

    def get_key(self, community_id: str, key_id: str) -> ApiKey:
        item = self.table.get(community_pk(community_id), f"KEY#{key_id}")
        if item is None:
            raise NotFound("API key not found.")
        return ApiKey.model_validate(_record_fields(item))

    def list_keys(self, community_id: str) -> list[ApiKey]:
        page = self.table.query(Query(community_pk(community_id), prefix="KEY#"))
        return [ApiKey.model_validate(_record_fields(i)) for i in page.items]

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
        return ApiKey.model_validate(_record_fields(item))


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
        return Webhook.model_validate(_record_fields(item))

    def find(self, community_id: str, webhook_id: str) -> Webhook | None:
        item = self.table.get(community_pk(community_id), f"W#{webhook_id}")
        return Webhook.model_validate(_record_fields(item)) if item else None

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
        return [Webhook.model_validate(_record_fields(i)) for i in result.items], result.cursor

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
        return Webhook.model_validate(_record_fields(item))

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
        return Event.model_validate(_record_fields(item))

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
    return Event.model_validate(_record_fields(item))


#: Attempt fields kept inline in the delivery item for its first attempt (the rest are the
#: delivery's own fields).
_INLINE_ATTEMPT = (
    "id",
    "attempt",
    "status_code",
    "response_time_ms",
    "response_body",
    "error",
    "success",
    "rate_limit_wait_ms",
    "created_at",
)


class DeliveryRepository:
    """Deliveries and their attempts.

    One item per delivery (`D#<did>`/`META`) that also holds its first attempt inline, so a
    delivery that succeeds at once is one write (plus its index entry). Later attempts are items
    `D#<did>`/`A#<nnnn>`. Both kinds share one `by_webhook` index partition per webhook
    (`WA#<wid>`, sorted by time): the delivery log reads it all, the delivery listing reads the
    `META` items of it.
    """

    def __init__(self, table: Table) -> None:
        self.table = table

    @staticmethod
    def _item(delivery: Delivery, expires_at: int, first: Attempt | None) -> Item:
        item: Item = {
            "pk": f"D#{delivery.id}",
            "sk": "META",
            "gsi1pk": f"WA#{delivery.webhook_id}",
            "gsi1sk": f"{delivery.created_at}#{delivery.id}",
            "gsi2pk": f"CD#{delivery.community_id}",
            "gsi2sk": f"{delivery.created_at}#{delivery.id}",
            "expires_at": expires_at,
            **delivery.model_dump(),
        }
        if first is not None:
            item.update(_inline(first))
        return item

    def create(
        self, delivery: Delivery, *, expires_at: int, first_attempt: Attempt | None = None
    ) -> bool:
        """Store a new delivery (with its first attempt, if made); False if it exists already."""
        try:
            self.table.put(self._item(delivery, expires_at, first_attempt), if_absent=True)
        except ConditionFailed:
            return False
        return True

    def find(self, delivery_id: str) -> Delivery | None:
        item = self.table.get(f"D#{delivery_id}", "META")
        return Delivery.model_validate(_record_fields(item)) if item else None

    def get(self, community_id: str, delivery_id: str) -> Delivery:
        delivery = self.find(delivery_id)
        if delivery is None or delivery.community_id != community_id:
            raise NotFound("Delivery not found.")
        return delivery

    def update(
        self,
        delivery_id: str,
        changes: dict[str, Any],
        *,
        expect: dict[str, Any] | None = None,
        remove: tuple[str, ...] = (),
        first_attempt: Attempt | None = None,
    ) -> Delivery:
        """Change a stored delivery; `first_attempt` records its first attempt inline."""
        if first_attempt is not None:
            changes = {**changes, **_inline(first_attempt)}
        item = self.table.update(
            f"D#{delivery_id}", "META", set=changes, expect=expect, remove=remove
        )
        return Delivery.model_validate(_record_fields(item))

    def add_attempt(self, attempt: Attempt, *, expires_at: int) -> None:
        """Record attempt 2, 3, ... (the first is kept in the delivery item)."""
        self.table.put(
            {
                "pk": f"D#{attempt.delivery_id}",
                "sk": f"A#{attempt.attempt:04d}",
                "gsi1pk": f"WA#{attempt.webhook_id}",
                "gsi1sk": f"{attempt.created_at}#{attempt.id}",
                "expires_at": expires_at,
                "attempted": True,
                **attempt.model_dump(),
            }
        )

    def attempts(self, delivery_id: str) -> list[Attempt]:
        page = self.table.query(Query(f"D#{delivery_id}"))
        found = [a for a in (attempt_of_item(i) for i in page.items) if a is not None]
        return sorted(found, key=lambda a: a.attempt)

    def log(
        self,
        webhook_id: str,
        *,
        limit: int,
        cursor: str | None = None,
        where: dict[str, Any] | None = None,
        after: str | None = None,
        before: str | None = None,
    ) -> tuple[list[Attempt], str | None]:
        """Attempts of one webhook, newest first, optionally created within (after, before)."""
        page: Page = self.table.query(
            Query(
                f"WA#{webhook_id}",
                index="by_webhook",
                descending=True,
                limit=limit,
                cursor=cursor,
                where={**(where or {}), "attempted": True},
                after=after,
                before=before,
            )
        )
        found = [a for a in (attempt_of_item(i) for i in page.items) if a is not None]
        return found, page.cursor

    def page_of(
        self, webhook_id: str, *, limit: int, cursor: str | None, state: str | None = None
    ) -> tuple[list[Delivery], str | None]:
        """One page of a webhook's deliveries, newest first, optionally in one state."""
        page = self.table.query(
            Query(
                f"WA#{webhook_id}",
                index="by_webhook",
                descending=True,
                limit=limit,
                cursor=cursor,
                where=_delivery_filter(state),
            )
        )
        return [Delivery.model_validate(_record_fields(i)) for i in page.items], page.cursor

    def community_page(
        self,
        community_id: str,
        *,
        limit: int,
        cursor: str | None,
        webhook_id: str | None = None,
        where: dict[str, Any] | None = None,
        after: str | None = None,
        before: str | None = None,
    ) -> tuple[list[Delivery], str | None]:
        """One page of a community's deliveries, newest first; with `webhook_id` through that
        webhook's index (kept to the community), otherwise through the community's."""
        conditions = dict(where or {})
        if webhook_id is not None:
            partition, index = f"WA#{webhook_id}", "by_webhook"
            conditions.update(_delivery_filter(None), community_id=community_id)
        else:
            partition, index = f"CD#{community_id}", "by_community"
        page = self.table.query(
            Query(
                partition,
                index=index,
                descending=True,
                limit=limit,
                cursor=cursor,
                where=conditions,
                after=after,
                before=before,
            )
        )
        return [Delivery.model_validate(_record_fields(i)) for i in page.items], page.cursor

    def of_event(self, event_id: str, delivery_ids: list[str]) -> list[Delivery]:
        """The deliveries among `delivery_ids` that exist and belong to `event_id`."""
        items = self.table.batch_get([(f"D#{d}", "META") for d in delivery_ids])
        deliveries = [Delivery.model_validate(_record_fields(i)) for i in items]
        return sorted(
            (d for d in deliveries if d.event_id == event_id), key=lambda d: (d.created_at, d.id)
        )

    def existing(self, delivery_ids: list[str]) -> set[str]:
        """The ids among `delivery_ids` that are stored."""
        items = self.table.batch_get([(f"D#{d}", "META") for d in delivery_ids])
        return {str(i["id"]) for i in items}

    def retry_group(self, webhook_id: str, group: str, since: str, until: str) -> list[Delivery]:
        """The members of a retry group still retrying: the webhook's deliveries created in
        [since, until) that carry ``retry_group == group``, oldest first."""
        return list(
            self.deliveries_of(
                webhook_id, since=since, until=until, state="retrying", retry_group=group
            )
        )

    def delete_pending(self, delivery_id: str) -> None:
        """Remove a delivery that was never attempted (no-op for any other)."""
        with contextlib.suppress(ConditionFailed):
            self.table.delete(
                f"D#{delivery_id}", "META", expect={"state": "pending", "attempts": 0}
            )

    def deliveries_of(
        self,
        webhook_id: str,
        *,
        since: str | None = None,
        until: str | None = None,
        state: str | None = None,
        limit: int | None = None,
        retry_group: str | None = None,
    ) -> Iterator[Delivery]:
        """Deliveries of one webhook, oldest first, optionally created in [since, until), in
        a state and in a retry group."""
        where = _delivery_filter(state)
        if retry_group is not None:
            where["retry_group"] = retry_group
        cursor: str | None = None
        seen = 0
        while True:
            page = self.table.query(
                Query(
                    f"WA#{webhook_id}",
                    index="by_webhook",
                    after=since,
                    before=until,
                    limit=200,
                    cursor=cursor,
                    where=where,
                )
            )
            for item in page.items:
                yield Delivery.model_validate(_record_fields(item))
                seen += 1
                if limit is not None and seen >= limit:
                    return
            cursor = page.cursor
            if cursor is None:
                return


def _delivery_filter(state: str | None) -> dict[str, Any]:
    return {"sk": "META", **({"state": state} if state else {})}


def _inline(attempt: Attempt) -> Item:
    """The first attempt as attributes of its delivery item. `attempted`, `success` and
    `status_code` sit at the top level so the log's filters read delivery items and attempt
    items alike."""
    fields = attempt.model_dump(include=set(_INLINE_ATTEMPT))
    return {
        "first_attempt": fields,
        "attempted": True,
        "success": attempt.success,
        "status_code": attempt.status_code,
    }


def attempt_of_item(item: Item) -> Attempt | None:
    """The attempt an item records: an attempt item, or a delivery item's first attempt."""
    if item.get("sk") != "META":
        return Attempt.model_validate(_record_fields(item))
    first = item.get("first_attempt")
    if not first:
        return None
    return Attempt.model_validate(
        {
            "delivery_id": item["id"],
            "community_id": item["community_id"],
            "webhook_id": item["webhook_id"],
            "event_id": item["event_id"],
            "event": item["event"],
            **first,
        }
    )
