"""The delivery use cases behind the API: inspect a delivery, resend it, and the test ping.
Retries they start go through the retry policy. Recover and replay (many deliveries at once)
are in hookline.domain.redelivery."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hookline import clock, ids
from hookline.domain import policy
from hookline.domain.delivery import (
    DeliveryContext,
    attempt_and_record,
    attempt_delivery,
    new_delivery,
)
from hookline.domain.delivery_endings import give_up, gone_reason, mark
from hookline.domain.models import Attempt, Delivery, Event, Webhook
from hookline.domain.retry import start_retries
from hookline.errors import ConditionFailed, Conflict, NotFound


def find_delivery(
    ctx: DeliveryContext, community_id: str, webhook_id: str, delivery_id: str
) -> Delivery:
    """A delivery of this community's webhook, or NotFound."""
    delivery = ctx.deliveries.find(community_id, delivery_id)
    if delivery is None or delivery.webhook_id != webhook_id:
        raise NotFound("Delivery not found.")
    return delivery


def delivery_view(delivery: Delivery, attempts: Sequence[Attempt] | None = None) -> dict[str, Any]:
    """A delivery as the API shows it; with `attempts`, all of them in order (1..n)."""
    view = delivery.model_dump()
    if attempts is not None:
        view["attempt_log"] = [a.model_dump() for a in sorted(attempts, key=lambda a: a.attempt)]
    return view


def active_webhook(ctx: DeliveryContext, community_id: str, webhook_id: str) -> Webhook:
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
    """Attempt a delivery again now (the next attempt number).

    A delivery waiting for a retry makes its next scheduled attempt now and keeps its budget
    and the times of its later attempts (resend_early). Any other delivery starts a new retry
    cycle if the attempt fails. Refused (409) when the webhook is inactive."""
    delivery = find_delivery(ctx, community_id, webhook_id, delivery_id)
    webhook = active_webhook(ctx, community_id, webhook_id)
    try:
        event = ctx.events.get(community_id, delivery.event_id)
    except NotFound as exc:
        raise NotFound("The event of this delivery has expired and can no longer be sent.") from exc
    if delivery.state == "retrying":
        return resend_early(ctx, delivery, webhook, event)
    try:
        delivery = ctx.deliveries.update(
            delivery.community_id,
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
        current = ctx.deliveries.find(delivery.community_id, delivery.id) or delivery
        message = f"Attempt {attempt_no} failed ({outcome.error}); "
        try:
            start_retries(ctx, current, webhook, outcome)
        except Exception as exc:
            # Nothing will retry it: leave it failed, so a later resend or recover picks it up.
            reason = f"Retries could not be scheduled: {type(exc).__name__}."
            mark(ctx, delivery.community_id, delivery.id, {"state": "failed", "reason": reason})
            message += "retries could not be scheduled: resend it later."
        else:
            final = ctx.deliveries.find(delivery.community_id, delivery.id) or current
            message += (
                f"retrying from {final.next_attempt_at}."
                if final.state == "retrying"
                else "no retries left: the delivery failed."
            )
    return _resend_answer(ctx, delivery, attempt, outcome.success, message)


#: A retry due sooner than this (workflow seconds) is left to the workflow, which is about to
#: make it.
RESEND_MARGIN_SECONDS = 5


def resend_early(
    ctx: DeliveryContext, delivery: Delivery, webhook: Webhook, event: Event
) -> dict[str, Any]:
    """Make the next scheduled attempt of a `retrying` delivery now.

    The attempt takes the place of the scheduled one (same number, same budget). Its retry
    group still wakes at the old time and passes it by: the member is not due (while the
    attempt is in flight it has no `next_attempt_at`; after a failure it has the time written
    here, the time the following attempt had anyway), and after a 2xx it is no longer
    retrying. A failure of the cycle's last attempt fails the delivery (delivery.failed) at once.
    """
    scale = ctx.settings.retry_time_scale
    due = delivery.next_attempt_at
    if due is None or policy.seconds_until(due, scale) <= RESEND_MARGIN_SECONDS:
        raise Conflict(
            f"The scheduled retry of this delivery is being made now ({due}).",
            field="delivery_id",
        )
    attempt_no = delivery.attempts + 1
    last = delivery.max_attempts or 1 + webhook.retry_count
    # Claim the scheduled attempt: a second resend gets a 409, and the workflow, should it
    # wake meanwhile, counts the attempt as made instead of making it too.
    try:
        claimed = ctx.deliveries.update(
            delivery.community_id,
            delivery.id,
            {"attempts": attempt_no, "updated_at": clock.now_iso()},
            expect={"state": "retrying", "attempts": delivery.attempts, "next_attempt_at": due},
            remove=("next_attempt_at",),
        )
    except ConditionFailed as exc:
        raise Conflict("The delivery changed meanwhile; try again.", field="delivery_id") from exc
    attempt, outcome = attempt_delivery(ctx, claimed, webhook, event, attempt_no, paced=False)
    if outcome.success:
        message = f"Delivered on attempt {attempt_no}; no more retries."
    elif outcome.gone or attempt_no >= last:
        reason = gone_reason() if outcome.gone else None
        give_up(ctx, delivery.community_id, delivery.id, reason, gone=outcome.gone)
        message = f"Attempt {attempt_no} of {last} failed ({outcome.error}): the delivery failed."
    else:
        wait = policy.wait_before_remaining(
            webhook.retry_count, ctx.settings.retry_schedule, last - attempt_no
        )
        next_at = max(
            policy.due_at(wait, scale, start=clock.parse_iso(due)),
            policy.due_at(policy.lengthen(0, outcome.retry_after_seconds), scale),
        )
        ctx.deliveries.update(
            delivery.community_id,
            delivery.id,
            {"state": "retrying", "next_attempt_at": next_at, "updated_at": clock.now_iso()},
        )
        message = (
            f"Attempt {attempt_no} of {last} failed ({outcome.error}); "
            f"the next attempt stays scheduled for {next_at}."
        )
    return _resend_answer(ctx, claimed, attempt, outcome.success, message)


def _resend_answer(
    ctx: DeliveryContext, delivery: Delivery, attempt: Attempt, success: bool, message: str
) -> dict[str, Any]:
    final = ctx.deliveries.find(delivery.community_id, delivery.id) or delivery
    return {
        "success": success,
        "delivery": delivery_view(final),
        "attempt": attempt.model_dump(),
        "message": message,
    }


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
            delivery.community_id,
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
