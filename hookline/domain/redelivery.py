"""Many deliveries at once, for a webhook: recover (send its failed deliveries again, through a
new retry cycle) and replay (deliver the stored events it never got, through the delivery
queue). Both are capped per call and answer a count; calling again continues."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hookline import catalog, clock, ids
from hookline.domain import filters, policy, retry
from hookline.domain.delivery import DeliveryContext, delivery_id_for, new_delivery
from hookline.domain.delivery_actions import active_webhook
from hookline.domain.dispatch import DeliveryOrder
from hookline.domain.models import Delivery, Webhook
from hookline.observability import logger

#: At most this many deliveries are queued by one recover call.
RECOVER_LIMIT = 1000
#: The states recover takes deliveries from: they ended without a 2xx.
RECOVERABLE_STATES = ("failed", "cancelled")
#: At most this many deliveries are queued by one replay call.
REPLAY_LIMIT = 1000
#: Stored events read per page by replay.
_REPLAY_PAGE = 100


def _more(limit: int, what: str) -> str:
    return f" The cap of {limit} per call was hit: call again with the same range to {what}."


def recover(
    ctx: DeliveryContext,
    community_id: str,
    webhook_id: str,
    since: str,
    until: str | None = None,
    states: Sequence[str] = ("failed",),
) -> dict[str, Any]:
    """Queue every delivery of a webhook in one of `states`, created in [since, until), for a
    new retry cycle whose first attempt is due at once, as one retry group; at most
    RECOVER_LIMIT per call."""
    webhook = active_webhook(ctx, community_id, webhook_id)
    wanted = list(dict.fromkeys(states))  # each once, in the order given
    candidates: list[Delivery] = []
    for state in wanted:
        candidates += ctx.deliveries.deliveries_of(
            webhook_id, since=since, until=until, state=state, limit=RECOVER_LIMIT + 1
        )
    candidates.sort(key=lambda d: (d.created_at, d.id))
    truncated = len(candidates) > RECOVER_LIMIT
    queued = _queue_recovery(ctx, webhook, candidates[:RECOVER_LIMIT], since, until)
    message = f"Queued {queued} deliveries ({', '.join(wanted)}) for re-sending."
    if truncated:
        message += _more(RECOVER_LIMIT, "queue the rest")
    return {
        "queued": queued,
        "since": since,
        "until": until,
        "state": wanted,
        "limit": RECOVER_LIMIT,
        "truncated": truncated,
        "message": message,
    }


def _queue_recovery(
    ctx: DeliveryContext,
    webhook: Webhook,
    deliveries: Sequence[Delivery],
    since: str,
    until: str | None,
) -> int:
    """One retry group of the recovered deliveries: each gets 1 + retry_count new attempts, the
    first at once (wait 0)."""
    if not deliveries:
        return 0
    now = clock.now_iso()
    name = policy.group_name(
        webhook.id, f"r{int(clock.now().timestamp() * 1000)}-{ids.new_id('g')}"
    )
    group = retry.Group(
        name,
        policy.workflow_document(
            community_id=webhook.community_id,
            webhook_id=webhook.id,
            group=name,
            since=since,
            until=until or now,
            attempt=0,
            wait_seconds=0,
        ),
        now,
    )
    extra = 1 + webhook.retry_count
    try:
        marked = retry.enlist(ctx, deliveries, group, lambda d: policy.budget(d.attempts, extra))
    except Exception:
        logger.warning("could not queue a recovery", extra={"webhook_id": webhook.id})
        return 0
    return len(marked)


def replay(
    ctx: DeliveryContext,
    community_id: str,
    webhook_id: str,
    since: str,
    until: str | None = None,
) -> dict[str, Any]:
    """Deliver the stored events published in [since, until) that the webhook subscribes to
    (types and content filter) and never got: no delivery exists for the (event, webhook) pair.

    Each is written as a `pending` delivery (so a second replay finds it and sends nothing
    more) and handed to the delivery queue, whose consumer makes its first attempt as for any
    published event. Oldest first, at most REPLAY_LIMIT per call.
    """
    webhook = active_webhook(ctx, community_id, webhook_id)
    queued = skipped = 0
    truncated = False
    cursor: str | None = None
    while True:
        events, cursor = ctx.events.page(
            community_id,
            limit=_REPLAY_PAGE,
            cursor=cursor,
            after=since,
            before=until,
            oldest_first=True,
        )
        wanted = [
            e
            for e in events
            if catalog.matches(webhook.events, e.event) and filters.passes(webhook, e)
        ]
        known = ctx.deliveries.existing(
            community_id, [delivery_id_for(e, webhook.id) for e in wanted]
        )
        orders = [
            DeliveryOrder(webhook.id, e, replayed=True)
            for e in wanted
            if delivery_id_for(e, webhook.id) not in known
        ]
        skipped += len(wanted) - len(orders)
        room = REPLAY_LIMIT - queued
        if len(orders) > room:
            orders, truncated = orders[:room], True
        queued += _queue_replay(ctx, webhook, orders)
        if truncated or cursor is None:
            break
    message = f"Replay queued {queued} events this webhook never got; it had {skipped} already."
    if truncated:
        message += _more(REPLAY_LIMIT, "replay the rest")
    return {
        "queued": queued,
        "skipped": skipped,
        "since": since,
        "until": until,
        "limit": REPLAY_LIMIT,
        "truncated": truncated,
        "message": message,
    }


def _queue_replay(ctx: DeliveryContext, webhook: Webhook, orders: list[DeliveryOrder]) -> int:
    """Record each order's delivery as pending, then queue it; a delivery that could not be
    queued is removed again, so a later replay tries it again."""
    claimed = [
        order
        for order in orders
        if ctx.deliveries.create(
            new_delivery(order.event, webhook).model_copy(update={"replayed": True}),
            expires_at=ctx.expires_at(),
        )
    ]
    if not claimed:
        return 0
    try:
        unsent = set(ctx.queue.send([order.to_message() for order in claimed]))
    except Exception:
        logger.exception("could not queue replayed deliveries")
        unsent = set(range(len(claimed)))
    for index in unsent:
        ctx.deliveries.delete_pending(webhook.community_id, claimed[index].delivery_id)
    return len(claimed) - len(unsent)
