"""The per-endpoint cap: an endpoint whose first attempt is still running after
SLOW_ATTEMPT_SECONDS is held, so its next deliveries are deferred (back on the queue, delayed;
nothing sent or recorded) instead of each holding a DeliverFunction invocation for the whole
timeout; other endpoints are not held."""

from __future__ import annotations

from typing import Any

import pytest

from hookline import wiring
from hookline.config import Settings
from hookline.domain import dispatch
from hookline.domain.dispatch import DeliveryOrder, deliver_orders
from tests.conftest import OPERATOR_KEY
from tests.delivery_helpers import delivery_context, make_community, make_event, make_webhook
from tests.receivers import Receiver


class DelayedQueue:
    def __init__(self) -> None:
        self.sent: list[tuple[dict[str, Any], int]] = []

    def send(self, messages: Any, *, delay_seconds: int = 0) -> list[int]:
        self.sent.extend((dict(m), delay_seconds) for m in messages)
        return []


def test_a_hanging_endpoint_is_held_and_its_next_orders_wait(
    memory_services: wiring.Services, monkeypatch: pytest.MonkeyPatch, lambda_context: Any
) -> None:
    monkeypatch.setattr(dispatch, "SLOW_ATTEMPT_SECONDS", 0.3)
    queue = DelayedQueue()
    wiring.configure(
        settings=Settings(
            operator_key=OPERATOR_KEY, allow_private_targets=True, delivery_timeout_seconds=1.0
        ),
        queue=queue,
    )
    services = wiring.services()
    community, _ = make_community(services)
    with Receiver() as healthy, Receiver((200, {}, b"", 2.0)) as hung:
        fast = make_webhook(services, community.id, healthy.url_for("/ok"))
        slow = make_webhook(services, community.id, hung.url_for("/hang"))
        ctx = delivery_context(services)
        first = make_event(community)
        results = deliver_orders(
            ctx, [DeliveryOrder(fast.id, first), DeliveryOrder(slow.id, first)]
        )
        assert results == ["delivered", "failed"]  # the hung one timed out after 1 s
        held = ctx.webhooks.get(community.id, slow.id)
        assert held.throttled_until is not None
        assert ctx.webhooks.get(community.id, fast.id).throttled_until is None

        second = make_event(community)
        results = deliver_orders(
            ctx, [DeliveryOrder(fast.id, second), DeliveryOrder(slow.id, second)]
        )
        assert results == ["delivered", "deferred"]
        [(message, delay)] = queue.sent
        assert message["webhook_id"] == slow.id and delay >= 1
        # Held: nothing was sent to it and nothing recorded for the second delivery.
        assert len(hung.requests) == 1
        assert (
            ctx.deliveries.find(second.community_id, DeliveryOrder(slow.id, second).delivery_id)
            is None
        )
