"""Shared setup for the retry tests: a community, webhooks pointing at loopback receivers, events,
deliveries whose first attempt really went out, and AttemptFunction payloads shaped like the ones
statemachine/retry.asl.json sends (events/attempt-input.json)."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from hookline import clock, ids
from hookline.domain import webhooks
from hookline.domain.attempts import AttemptOutcome
from hookline.domain.delivery import DeliveryContext, attempt_delivery, new_delivery
from hookline.domain.models import Community, Delivery, Event, Webhook
from hookline.domain.publishing import publish
from hookline.wiring import services
from hookline_dev.local.lambdas import load_handler
from tests.api_events import EVENTS_DIR


@dataclass
class World:
    """One community and helpers to set up deliveries in the configured services."""

    ctx: DeliveryContext
    community: Community
    made: list[Delivery] = field(default_factory=list)

    @classmethod
    def create(cls) -> World:
        ctx = DeliveryContext.from_services(services())
        now = clock.now_iso()
        community = Community(
            id=ids.new_id("com"),
            name="Acme Forum",
            site_url="https://forum.example.com",
            created_at=now,
            updated_at=now,
        )
        ctx.communities.create(community)
        return cls(ctx=ctx, community=community)

    def refresh(self) -> World:
        """Rebuild the context after wiring.configure() changed the services."""
        self.ctx = DeliveryContext.from_services(services())
        return self

    def webhook(self, url: str, **fields: Any) -> Webhook:
        return webhooks.create_webhook(
            self.ctx.webhooks,
            self.community.id,
            {"url": url, "events": ["*"], **fields},
            allow_private=True,
        )

    def event(self, event_type: str = "post.created", **fields: Any) -> Event:
        data = {"post_id": 1024, "title": "Hello"}
        event, _ = publish(self.ctx.events, self.community, event_type, data, **fields)
        return event

    def first_attempt(
        self, webhook: Webhook, event: Event | None = None
    ) -> tuple[Delivery, AttemptOutcome]:
        """What the dispatcher does: store the delivery and make attempt 1 (really sent)."""
        event = event or self.event()
        delivery = new_delivery(event, webhook)
        self.ctx.deliveries.create(delivery, expires_at=self.ctx.expires_at())
        _, outcome = attempt_delivery(self.ctx, delivery, webhook, event, 1)
        stored = self.delivery(delivery.id)
        self.made.append(stored)
        return stored, outcome

    def delivery(self, delivery_id: str) -> Delivery:
        found = self.ctx.deliveries.find(self.community.id, delivery_id)
        assert found is not None, delivery_id
        return found

    def get_webhook(self, webhook_id: str) -> Webhook:
        return self.ctx.webhooks.get(self.community.id, webhook_id)

    def events_of_type(self, event_type: str) -> list[Event]:
        """Published events of one type (operational events included)."""
        from hookline.domain.repositories import event_from_item

        table = services().tables.events
        items = table.scan_all() if hasattr(table, "scan_all") else []
        return [event_from_item(i) for i in items if i.get("event") == event_type]


def attempt_payload(delivery: Delivery, *, due_now: bool = True) -> dict[str, Any]:
    """The AttemptFunction payload (shaped like events/attempt-input.json) of a round of the
    delivery's retry group. ``due_now`` moves its next attempt to now: the wait has passed."""
    payload = copy.deepcopy(json.loads((EVENTS_DIR / "attempt-input.json").read_text()))
    ctx = DeliveryContext.from_services(services())
    stored = ctx.deliveries.find(delivery.community_id, delivery.id) or delivery
    assert stored.retry_group, stored
    if due_now and stored.state == "retrying":
        ctx.deliveries.update(stored.community_id, stored.id, {"next_attempt_at": clock.now_iso()})
    created = clock.parse_iso(stored.created_at)
    payload.update(
        community_id=stored.community_id,
        webhook_id=stored.webhook_id,
        group=stored.retry_group,
        since=clock.iso(created - timedelta(milliseconds=1)),
        until=clock.iso(created + timedelta(milliseconds=1)),
    )
    return payload


def invoke_attempt(payload: dict[str, Any], context: Any) -> dict[str, Any]:
    """Call functions/attempt/app.py the way Lambda would."""
    result: dict[str, Any] = load_handler("attempt")(payload, context)
    return result
