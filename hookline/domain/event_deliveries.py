"""What became of an event: its deliveries to the community's webhooks."""

from __future__ import annotations

from hookline.domain.delivery import delivery_id_for
from hookline.domain.delivery_repository import DeliveryRepository
from hookline.domain.models import Delivery, Event
from hookline.domain.repositories import WebhookRepository


def deliveries_of(
    webhooks: WebhookRepository, deliveries: DeliveryRepository, event: Event
) -> list[Delivery]:
    """The deliveries of an event to the community's webhooks, oldest first. Delivery ids are
    derived from (event, webhook), so this is one read of the webhooks and one batch read."""
    candidates = [delivery_id_for(event, w.id) for w in webhooks.all(event.community_id)]
    return deliveries.of_event(event, candidates)
