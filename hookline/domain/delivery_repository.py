"""Deliveries and their attempts <-> delivery-log items: the key layout of DeliveryLogTable
(docs/architecture.md, "Fewer writes")."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from hookline import clock, ids
from hookline.domain.models import Attempt, Delivery, Event
from hookline.domain.repositories import drop_partition, record_fields
from hookline.errors import ConditionFailed, NotFound
from hookline.ports import Between, Item, Page, Query, Table

#: Attempt fields kept inline in the delivery item for its first attempt (the rest are the
#: delivery's own fields; `success` and `status_code` sit at the item's top level).
_INLINE_ATTEMPT = (
    "id",
    "response_time_ms",
    "response_body",
    "error",
    "rate_limit_wait_ms",
    "created_at",
)


class DeliveryRepository:
    """Deliveries and their attempts, in their community's partition `CD#<cid>`.

    One item per delivery (`D#<did>`) that also holds its first attempt inline, so a delivery
    that succeeds at once is one write plus its `by_webhook` entry (2 WRU under 1 KB). Delivery
    ids start with their event's time (hookline.domain.delivery.delivery_id_for), so the
    partition's `D#` items are the community's deliveries in time order. Later attempts are
    items `A#<did>#<nnnn>`. Both kinds share one `by_webhook` index partition per webhook
    (`WA#<wid>`, sorted by `<created_at>#<id>`): the delivery log reads it all, the webhook's
    delivery listing reads the delivery items of it.
    """

    def __init__(self, table: Table) -> None:
        self.table = table

    @staticmethod
    def _item(delivery: Delivery, expires_at: int, first: Attempt | None) -> Item:
        item: Item = {
            "pk": _community_deliveries(delivery.community_id),
            "sk": _delivery_sk(delivery.id),
            "gsi1pk": f"WA#{delivery.webhook_id}",
            "gsi1sk": f"{delivery.created_at}#{delivery.id}",
            "expires_at": expires_at,
            # No null attributes: every byte counts towards the 1 KB of one write unit.
            **delivery.model_dump(exclude_none=True),
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

    def find(self, community_id: str, delivery_id: str) -> Delivery | None:
        item = self.table.get(_community_deliveries(community_id), _delivery_sk(delivery_id))
        return Delivery.model_validate(record_fields(item)) if item else None

    def get(self, community_id: str, delivery_id: str) -> Delivery:
        delivery = self.find(community_id, delivery_id)
        if delivery is None:
            raise NotFound("Delivery not found.")
        return delivery

    def update(
        self,
        community_id: str,
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
            _community_deliveries(community_id),
            _delivery_sk(delivery_id),
            set=changes,
            expect=expect,
            remove=remove,
        )
        return Delivery.model_validate(record_fields(item))

    def add_attempt(self, attempt: Attempt, *, expires_at: int) -> None:
        """Record attempt 2, 3, ... (the first is kept in the delivery item)."""
        self.table.put(
            {
                "pk": _community_deliveries(attempt.community_id),
                "sk": _attempt_sk(attempt.delivery_id, attempt.attempt),
                "gsi1pk": f"WA#{attempt.webhook_id}",
                "gsi1sk": f"{attempt.created_at}#{attempt.id}",
                "expires_at": expires_at,
                "attempted": True,
                **attempt.model_dump(exclude_none=True),
            }
        )

    def attempt(self, community_id: str, delivery_id: str, number: int) -> Attempt | None:
        """Attempt `number` of a delivery, if recorded (one read)."""
        partition = _community_deliveries(community_id)
        if number == 1:
            item = self.table.get(partition, _delivery_sk(delivery_id))
        else:
            item = self.table.get(partition, _attempt_sk(delivery_id, number))
        return attempt_of_item(item) if item else None

    def attempts(self, community_id: str, delivery_id: str) -> list[Attempt]:
        """Every attempt of a delivery, in order (none for an unknown delivery)."""
        partition = _community_deliveries(community_id)
        delivery = self.table.get(partition, _delivery_sk(delivery_id))
        first = attempt_of_item(delivery) if delivery else None
        page = self.table.query(Query(partition, prefix=f"{_ATTEMPT}{delivery_id}#"))
        later = [attempt_of_item(i) for i in page.items]
        found = [a for a in (first, *later) if a is not None]
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
        return [Delivery.model_validate(record_fields(i)) for i in page.items], page.cursor

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
        """One page of a community's deliveries, newest first, optionally within (after, before).

        Without `webhook_id` this reads the community's partition, ordered by the events' time
        (the bounds apply to it); with it, that webhook's index (kept to the community), ordered
        by the deliveries' `created_at`. The two differ only for replayed deliveries."""
        conditions = dict(where or {})
        if webhook_id is not None:
            conditions.update(_delivery_filter(None), community_id=community_id)
            query = Query(
                f"WA#{webhook_id}",
                index="by_webhook",
                after=after,
                before=before,
                where=conditions,
                descending=True,
                limit=limit,
                cursor=cursor,
            )
        else:
            query = Query(
                _community_deliveries(community_id),
                after=_delivery_bound(after, _DELIVERY),
                before=_delivery_bound(before, _DELIVERY_END),
                where=conditions,
                descending=True,
                limit=limit,
                cursor=cursor,
            )
        page = self.table.query(query)
        return [Delivery.model_validate(record_fields(i)) for i in page.items], page.cursor

    def of_event(self, event: Event, delivery_ids: list[str]) -> list[Delivery]:
        """The deliveries among `delivery_ids` that exist and belong to `event`."""
        partition = _community_deliveries(event.community_id)
        items = self.table.batch_get([(partition, _delivery_sk(d)) for d in delivery_ids])
        deliveries = [Delivery.model_validate(record_fields(i)) for i in items]
        return sorted(
            (d for d in deliveries if d.event_id == event.id), key=lambda d: (d.created_at, d.id)
        )

    def existing(self, community_id: str, delivery_ids: list[str]) -> set[str]:
        """The ids among `delivery_ids` that are stored."""
        partition = _community_deliveries(community_id)
        items = self.table.batch_get([(partition, _delivery_sk(d)) for d in delivery_ids])
        return {str(i["id"]) for i in items}

    def retry_group(self, webhook_id: str, group: str, since: str, until: str) -> list[Delivery]:
        """The members of a retry group still retrying: the webhook's deliveries created in
        [since, until) that carry ``retry_group == group``, oldest first."""
        return list(
            self.deliveries_of(
                webhook_id, since=since, until=until, state="retrying", retry_group=group
            )
        )

    def delete_pending(self, community_id: str, delivery_id: str) -> None:
        """Remove a delivery that was never attempted (no-op for any other)."""
        with contextlib.suppress(ConditionFailed):
            self.table.delete(
                _community_deliveries(community_id),
                _delivery_sk(delivery_id),
                expect={"state": "pending", "attempts": 0},
            )

    def drop_community(self, community_id: str) -> int:
        """Delete a community's deliveries and attempts; the number deleted."""
        return drop_partition(self.table, _community_deliveries(community_id))

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
                yield Delivery.model_validate(record_fields(item))
                seen += 1
                if limit is not None and seen >= limit:
                    return
            cursor = page.cursor
            if cursor is None:
                return


#: Sort-key prefixes in a community's delivery partition: deliveries, then attempts 2...
_DELIVERY = "D#"
_DELIVERY_END = "D$"  # the first key after every "D#..."
_ATTEMPT = "A#"


def _community_deliveries(community_id: str) -> str:
    return f"CD#{community_id}"


def _delivery_sk(delivery_id: str) -> str:
    return f"{_DELIVERY}{delivery_id}"


def _attempt_sk(delivery_id: str, number: int) -> str:
    return f"{_ATTEMPT}{delivery_id}#{number:04d}"


def _delivery_bound(moment: str | None, default: str) -> str:
    """An exclusive sort-key bound for deliveries of events at `moment` (an ISO time): below
    every delivery id of that millisecond, so `after` includes them and `before` excludes them.
    """
    if moment is None:
        return default
    millis = clock.epoch_millis(clock.parse_iso(moment))
    return _delivery_sk(ids.first_id_at("dlv", millis))


def _delivery_filter(state: str | None) -> dict[str, Any]:
    """Keeps the delivery items of an index partition (attempt items hold `A#` keys)."""
    return {"sk": Between(_DELIVERY, _DELIVERY_END), **({"state": state} if state else {})}


def _inline(attempt: Attempt) -> Item:
    """The first attempt as attributes of its delivery item. `attempted`, `success` and
    `status_code` sit at the top level so the log's filters read delivery items and attempt
    items alike."""
    inline: Item = {
        "first_attempt": attempt.model_dump(include=set(_INLINE_ATTEMPT), exclude_none=True),
        "attempted": True,
        "success": attempt.success,
    }
    if attempt.status_code is not None:
        inline["status_code"] = attempt.status_code
    return inline


def attempt_of_item(item: Item) -> Attempt | None:
    """The attempt an item records: an attempt item, or a delivery item's first attempt."""
    if not str(item.get("sk", "")).startswith(_DELIVERY):
        return Attempt.model_validate(record_fields(item))
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
            "attempt": 1,
            "success": item["success"],
            "status_code": item.get("status_code"),
            **first,
        }
    )
