"""The delivery use cases behind the API: inspect a delivery, resend it, recover a webhook's
failed deliveries, and the test ping. Retries they start go through the retry policy."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from hookline import clock, ids
from hookline.domain import policy
from hookline.domain.delivery import (
    DeliveryContext,
    attempt_and_record,
    attempt_delivery,
    new_delivery,
)
from hookline.domain.models import Attempt, Delivery, Event, Webhook
from hookline.domain.retry import mark, metric, start_retries
from hookline.errors import ConditionFailed, Conflict, NotFound
from hookline.observability import carry, logger

#: At most this many failed deliveries are queued by one recover call.
RECOVER_LIMIT = 1000
#: Retry cycles started concurrently by one recover call (each start is one network call).
_RECOVER_CONCURRENCY = 16


def find_delivery(
    ctx: DeliveryContext, community_id: str, webhook_id: str, delivery_id: str
) -> Delivery:
    """A delivery of this community's webhook, or NotFound."""
    delivery = ctx.deliveries.find(delivery_id)
    if (
        delivery is None
        or delivery.community_id != community_id
        or delivery.webhook_id != webhook_id
    ):
        raise NotFound("Delivery not found.")
    return delivery


def delivery_view(delivery: Delivery, attempts: Sequence[Attempt] | None = None) -> dict[str, Any]:
    """A delivery as the API shows it; with `attempts`, all of them in order (1..n)."""
    view = delivery.model_dump()
    if attempts is not None:
        view["attempt_log"] = [a.model_dump() for a in sorted(attempts, key=lambda a: a.attempt)]
    return view


def _active_webhook(ctx: DeliveryContext, community_id: str, webhook_id: str) -> Webhook:
    webhook = ctx.webhooks.get(community_id, webhook_id)
    if not webhook.is_active:
        raise Conflict(
            "The webhook is inactive; activate it (is_active: true) before re-sending.",
            field="is_active",
        )
    return webhook


def resend(
    ctx: DeliveryContext, community_id: str, webhook_id: str, delivery_id: str
) -> dict[str, Any]:
    """Attempt a delivery again now (the next attempt number); if that fails, start a new retry
    cycle. Refused (409) while a retry is already scheduled or when the webhook is inactive."""
    delivery = find_delivery(ctx, community_id, webhook_id, delivery_id)
    webhook = _active_webhook(ctx, community_id, webhook_id)
    if delivery.state == "retrying":
        raise Conflict(
            f"A retry of this delivery is already scheduled for {delivery.next_attempt_at}.",
            field="delivery_id",
        )
    try:
        event = ctx.events.get(community_id, delivery.event_id)
    except NotFound as exc:
        raise NotFound("The event of this delivery has expired and can no longer be sent.") from exc
    try:
        delivery = ctx.deliveries.update(
            delivery.id,
            {"state": "pending", "updated_at": clock.now_iso()},
            expect={"state": delivery.state},
            remove=("next_attempt_at", "reason"),
        )
    except ConditionFailed as exc:
        raise Conflict("The delivery changed meanwhile; try again.", field="delivery_id") from exc

    attempt_no = delivery.attempts + 1
    # A resend is asked for by a person through the API: it is sent at once.
    attempt, outcome = attempt_delivery(ctx, delivery, webhook, event, attempt_no, paced=False)
    if outcome.success:
        message = f"Delivered on attempt {attempt_no}."
    else:
        current = ctx.deliveries.find(delivery.id) or delivery
        message = f"Attempt {attempt_no} failed ({outcome.error}); "
        try:
            start_retries(ctx, current, webhook, outcome)
        except Exception as exc:
            # Nothing will retry it: leave it failed, so a later resend or recover picks it up.
            reason = f"Retries could not be scheduled: {type(exc).__name__}."
            mark(ctx, delivery.id, {"state": "failed", "reason": reason})
            message += "retries could not be scheduled: resend it later."
        else:
            final = ctx.deliveries.find(delivery.id) or current
            message += (
                f"retrying from {final.next_attempt_at}."
                if final.state == "retrying"
                else "no retries left: the delivery failed."
            )
    final_delivery = ctx.deliveries.find(delivery.id) or delivery
    return {
        "success": outcome.success,
        "delivery": delivery_view(final_delivery),
        "attempt": attempt.model_dump(),
        "message": message,
    }


def recover(ctx: DeliveryContext, community_id: str, webhook_id: str, since: str) -> dict[str, Any]:
    """Queue every `failed` delivery of a webhook created since `since` (ISO-8601 UTC) for a new
    retry cycle whose first attempt is due at once; at most RECOVER_LIMIT per call."""
    webhook = _active_webhook(ctx, community_id, webhook_id)
    candidates = list(
        ctx.deliveries.deliveries_of(
            webhook_id, since=since, state="failed", limit=RECOVER_LIMIT + 1
        )
    )
    truncated = len(candidates) > RECOVER_LIMIT
    waits = policy.recovery_waits(webhook.retry_count, ctx.settings.retry_schedule)

    def queue(delivery: Delivery) -> bool:
        return _queue_recovery(ctx, delivery, waits)

    with ThreadPoolExecutor(max_workers=_RECOVER_CONCURRENCY) as pool:
        queued = sum(pool.map(carry(queue), candidates[:RECOVER_LIMIT]))
    message = f"Queued {queued} failed deliveries for re-sending."
    if truncated:
        message += (
            f" More than {RECOVER_LIMIT} matched: call again with the same since to queue the rest."
        )
    return {"queued": queued, "since": since, "truncated": truncated, "message": message}


def _queue_recovery(ctx: DeliveryContext, delivery: Delivery, waits: Sequence[int]) -> bool:
    try:
        ctx.deliveries.update(
            delivery.id,
            {
                "state": "retrying",
                "next_attempt_at": clock.now_iso(),
                "updated_at": clock.now_iso(),
            },
            expect={"state": "failed"},
            remove=("reason",),
        )
    except ConditionFailed:
        return False
    try:
        ctx.scheduler.schedule(
            delivery_id=delivery.id,
            community_id=delivery.community_id,
            webhook_id=delivery.webhook_id,
            attempt=max(delivery.attempts, 1),
            waits=waits,
        )
    except Exception as exc:
        logger.warning(
            "could not queue a recovery",
            extra={"delivery_id": delivery.id, "error": type(exc).__name__},
        )
        mark(ctx, delivery.id, {"state": "failed", "reason": delivery.reason or ""})
        return False
    metric(ctx, "RetryScheduled")
    return True


def test_ping(ctx: DeliveryContext, community_id: str, webhook_id: str) -> dict[str, Any]:
    """Send a ``test.ping`` now (also to an inactive webhook) and report the answer. It is
    recorded in the delivery log and never retried."""
    community = ctx.communities.get(community_id)
    webhook = ctx.webhooks.get(community_id, webhook_id)
    now = clock.now()
    # Built in memory, never stored: a stored event would be fanned out to every subscriber.
    event = Event(
        id=ids.new_id("evt"),
        community_id=community_id,
        event="test.ping",
        data={
            "message": "This is a test delivery from Hookline.",
            "webhook_id": webhook.id,
            "webhook_name": webhook.name,
        },
        site_url=community.site_url,
        timestamp=clock.iso(now),
    )
    delivery = new_delivery(event, webhook, now=now)
    result = attempt_and_record(ctx, delivery, webhook, event, 1, stored=False, paced=False)
    outcome = result.outcome
    if not outcome.success:
        ctx.deliveries.update(
            delivery.id,
            {"state": "failed", "reason": "Test deliveries are not retried."},
        )
    message = (
        "Webhook test successful."
        if outcome.success
        else f"Webhook test failed: {outcome.error or 'no 2xx answer'}."
    )
    return {
        "success": outcome.success,
        "status_code": outcome.status_code,
        "response_time": outcome.response_time_ms,
        "response_body": outcome.response_body,
        "message": message,
        "error": outcome.error,
        "delivery_id": delivery.id,
        "attempt_id": result.attempt.id,
    }
