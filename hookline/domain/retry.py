"""The retry workflow's steps: start a cycle, make a retry attempt, record a crashed one, give
up, cancel, and the auto-disable bookkeeping.

The retry workflow (statemachine/retry.asl.json, or the local stack's timer running it) owns
the attempt counter and the waits; each step here makes its attempt and answers what comes next,
as hookline.domain.policy decides.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from aws_lambda_powertools.metrics import MetricUnit

from hookline import catalog, clock, ids
from hookline.domain import pacing, policy
from hookline.domain.attempts import RESPONSE_BODY_LIMIT, AttemptOutcome
from hookline.domain.delivery import DeliveryContext, attempt_delivery, url_host
from hookline.domain.models import Attempt, Delivery, Webhook
from hookline.domain.publishing import publish
from hookline.errors import ConditionFailed, NotFound
from hookline.observability import emit, logger

#: How much of a crash's error text an attempt record keeps.
_CRASH_TEXT_LIMIT = 300

Outcome = Literal["delivered", "retry", "failed", "cancelled", "wait"]
_FINAL_STATES = ("delivered", "failed", "cancelled")
_OUTCOME_OF_STATE: dict[str, Outcome] = {
    "delivered": "delivered",
    "failed": "failed",
    "cancelled": "cancelled",
}


@dataclass(frozen=True)
class Decision:
    """What the retry workflow does after an attempt (the AttemptFunction's answer)."""

    outcome: Outcome
    next_wait_seconds: int = 0
    attempt: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "next_wait_seconds": self.next_wait_seconds,
            "attempt": self.attempt,
        }


def metric(ctx: DeliveryContext, name: str) -> None:
    """One Count metric, written at once (it needs no handler's log_metrics flush)."""
    emit({name: (MetricUnit.Count, 1)}, stage=ctx.settings.stage)


def start_retries(
    ctx: DeliveryContext, delivery: Delivery, webhook: Webhook, outcome: AttemptOutcome
) -> None:
    """After a failed attempt (the dispatcher's first, or a resend): start a retry cycle.

    Sets the delivery `retrying` with `next_attempt_at` and asks the scheduler for
    `webhook.retry_count` more attempts. No retries allowed (retry_count 0) fails the delivery
    at once; a 410 answer fails it and disables the webhook at once. If the scheduler raises,
    the delivery goes back to `pending` with the reason and the error is re-raised: the
    dispatcher reports a batch item failure, and when the stream hands the event over again it
    makes the delivery's next attempt (it retries only `pending` deliveries).
    """
    attempt_no = max(delivery.attempts, 1)
    if outcome.gone:
        give_up(ctx, delivery.community_id, delivery.id, gone_reason(), gone=True)
        return
    waits = policy.waits_for(
        webhook.retry_count, ctx.settings.retry_schedule, outcome.retry_after_seconds
    )
    if not waits:
        give_up(
            ctx,
            delivery.community_id,
            delivery.id,
            "Retries are off for this webhook (retry_count 0).",
        )
        return
    next_at = policy.due_at(waits[0], ctx.settings.retry_time_scale)
    try:
        ctx.deliveries.update(
            delivery.community_id,
            delivery.id,
            {
                "state": "retrying",
                "next_attempt_at": next_at,
                "max_attempts": attempt_no + len(waits),
                "updated_at": clock.now_iso(),
            },
            remove=("reason",),
        )
        ctx.scheduler.schedule(
            delivery_id=delivery.id,
            community_id=delivery.community_id,
            webhook_id=delivery.webhook_id,
            attempt=attempt_no,
            waits=waits,
        )
    except Exception as exc:
        logger.warning(
            "could not start retries",
            extra={"delivery_id": delivery.id, "error": type(exc).__name__},
        )
        mark(
            ctx,
            delivery.community_id,
            delivery.id,
            {
                "state": "pending",
                "reason": f"Retries could not be scheduled: {type(exc).__name__}.",
            },
        )
        raise
    metric(ctx, "RetryScheduled")


def resume_retries(ctx: DeliveryContext, delivery: Delivery, webhook: Webhook) -> bool:
    """Start the retries of a `pending` delivery whose last attempt was made and failed but whose
    retry cycle never started (the scheduler failed, or the invocation died in between), without
    another attempt. False when there is no failed attempt to resume from: the caller attempts.

    For the dispatcher, when the stream hands over an event again, so that a delivery still
    gets exactly 1 + retry_count attempts. A Retry-After of the recorded attempt is not kept.
    """
    if delivery.state != "pending" or delivery.attempts < 1:
        return False
    last = _recorded(ctx, delivery.community_id, delivery.id, delivery.attempts)
    if last is None or last.success:
        return False
    outcome = AttemptOutcome(
        success=False,
        status_code=last.status_code,
        response_time_ms=last.response_time_ms,
        response_body=last.response_body,
        error=last.error,
        gone=last.status_code == 410,
    )
    start_retries(ctx, delivery, webhook, outcome)
    return True


def gone_reason() -> str:
    return "The endpoint answered 410 Gone: it wants no more deliveries."


def mark(
    ctx: DeliveryContext, community_id: str, delivery_id: str, changes: dict[str, Any]
) -> Delivery | None:
    """Set fields of a delivery and drop its next_attempt_at (None if it changed meanwhile)."""
    try:
        return ctx.deliveries.update(
            community_id,
            delivery_id,
            {**changes, "updated_at": clock.now_iso()},
            remove=("next_attempt_at",),
        )
    except ConditionFailed:
        return None


def cancel(ctx: DeliveryContext, delivery: Delivery, reason: str) -> Decision:
    """End a delivery whose retries can no longer go anywhere (webhook deleted, deactivated...)."""
    try:
        ctx.deliveries.update(
            delivery.community_id,
            delivery.id,
            {"state": "cancelled", "reason": reason, "updated_at": clock.now_iso()},
            expect={"state": delivery.state},
            remove=("next_attempt_at",),
        )
    except ConditionFailed:
        current = ctx.deliveries.find(delivery.community_id, delivery.id)
        state = current.state if current else "cancelled"
        return Decision(_OUTCOME_OF_STATE.get(state, "cancelled"), 0, delivery.attempts)
    logger.info("delivery cancelled", extra={"delivery_id": delivery.id, "reason": reason})
    return Decision("cancelled", 0, delivery.attempts)


def _recorded(
    ctx: DeliveryContext, community_id: str, delivery_id: str, attempt_no: int
) -> Attempt | None:
    return ctx.deliveries.attempt(community_id, delivery_id, attempt_no)


def _replay(
    delivery: Delivery,
    recorded: Attempt,
    schedule: Sequence[int],
    max_attempts: int,
    time_scale: float,
) -> Decision:
    """The decision for an attempt that was already made (a repeated invocation)."""
    n = recorded.attempt
    if recorded.success:
        return Decision("delivered", 0, n)
    if recorded.status_code == 410 or n >= max_attempts:
        return Decision("failed", 0, n)
    wait = policy.next_wait(schedule, n, None)
    if delivery.next_attempt_at and delivery.attempts == n:
        # The attempt was made early (a resend while retrying) or by an earlier invocation:
        # wait for the next attempt the delivery shows, so the cycle keeps its times.
        wait = policy.seconds_until(delivery.next_attempt_at, time_scale)
    return Decision("retry", wait, n)


def _after_failure(
    ctx: DeliveryContext,
    delivery: Delivery,
    attempt_no: int,
    schedule: Sequence[int],
    max_attempts: int,
    retry_after: int | None,
) -> Decision:
    if attempt_no >= max_attempts:
        # The workflow marks the delivery failed (give_up) when it sees this.
        return Decision("failed", 0, attempt_no)
    wait = policy.next_wait(schedule, attempt_no, retry_after)
    next_at = policy.due_at(wait, ctx.settings.retry_time_scale)
    _set_retrying(ctx, delivery, next_at)
    return Decision("retry", wait, attempt_no)


def _set_retrying(ctx: DeliveryContext, delivery: Delivery, next_at: str) -> None:
    for state in ("pending", "retrying"):
        try:
            ctx.deliveries.update(
                delivery.community_id,
                delivery.id,
                {"state": "retrying", "next_attempt_at": next_at, "updated_at": clock.now_iso()},
                expect={"state": state},
            )
            return
        except ConditionFailed:
            continue


def _prior_decision(
    ctx: DeliveryContext,
    community_id: str,
    delivery_id: str,
    attempt_no: int,
    waits: Sequence[int],
    limit: int,
) -> tuple[Delivery | None, Decision | None]:
    """What a retry step decides without attempting: a vanished delivery is cancelled, a final
    one keeps its state, and an attempt already recorded is replayed (steps are retried by Step
    Functions, so they must be idempotent). Otherwise (delivery, None): the step goes ahead."""
    delivery = ctx.deliveries.find(community_id, delivery_id)
    if delivery is None:
        return None, Decision("cancelled", 0, attempt_no)
    if delivery.state in _FINAL_STATES:
        return delivery, Decision(_OUTCOME_OF_STATE[delivery.state], 0, delivery.attempts)
    recorded = _recorded(ctx, community_id, delivery_id, attempt_no)
    if recorded is not None:
        return delivery, _replay(delivery, recorded, waits, limit, ctx.settings.retry_time_scale)
    if delivery.attempts >= attempt_no:
        # An early resend claimed this attempt and is making it: it counts as made here.
        if attempt_no >= limit:
            return delivery, Decision("failed", 0, attempt_no)
        return delivery, Decision("retry", policy.next_wait(waits, attempt_no, None), attempt_no)
    return delivery, None


def run_attempt(
    ctx: DeliveryContext,
    community_id: str,
    delivery_id: str,
    attempt_no: int,
    waits: Sequence[int],
    *,
    max_attempts: int | None = None,
) -> Decision:
    """One retry attempt (number `attempt_no`) and what the workflow does next.

    `waits` is the workflow's schedule (the wait before attempts 2..max_attempts; max_attempts
    defaults to 1 + len(waits)). A webhook deleted or deactivated meanwhile cancels the delivery;
    a delivery already delivered stays delivered; an attempt already made is not made again.
    Otherwise the attempt is sent with the webhook's current secrets and the answer decides:
    delivered, retry after the scheduled wait (longer for a Retry-After), or failed (no attempts
    left, or a 410 which also disables the webhook).
    """
    limit = policy.max_attempts(waits, max_attempts)
    delivery, decided = _prior_decision(ctx, community_id, delivery_id, attempt_no, waits, limit)
    if decided is not None:
        return decided
    assert delivery is not None

    webhook = ctx.webhooks.find(delivery.community_id, delivery.webhook_id)
    if webhook is None:
        return cancel(ctx, delivery, "The webhook was deleted while retries were pending.")
    if not webhook.is_active:
        why = f" ({webhook.disabled_reason})" if webhook.disabled_reason else ""
        return cancel(
            ctx, delivery, f"The webhook was deactivated while retries were pending{why}."
        )
    try:
        event = ctx.events.get(delivery.community_id, delivery.event_id)
    except NotFound:
        return cancel(ctx, delivery, "The event expired before it could be delivered.")

    try:
        _, outcome = attempt_delivery(
            ctx,
            delivery,
            webhook,
            event,
            attempt_no,
            wait_at_most=pacing.MAX_WAIT_IN_PROCESS_SECONDS,
        )
    except pacing.NotYet as later:
        # The webhook's turn is far off: the workflow waits and makes this same attempt then.
        return Decision("wait", later.retry_in_seconds, attempt_no - 1)
    if outcome.success:
        return Decision("delivered", 0, attempt_no)
    if outcome.gone:
        give_up(ctx, community_id, delivery_id, gone_reason(), gone=True)
        return Decision("failed", 0, attempt_no)
    return _after_failure(ctx, delivery, attempt_no, waits, limit, outcome.retry_after_seconds)


def record_crash(
    ctx: DeliveryContext,
    community_id: str,
    delivery_id: str,
    attempt_no: int,
    waits: Sequence[int],
    error: Any = None,
    *,
    max_attempts: int | None = None,
) -> Decision:
    """The invocation making attempt `attempt_no` crashed: it counts as a failed attempt.

    Records an Attempt with error "attempt crashed: ..." (unless that attempt was recorded before
    the crash) and decides like any failed attempt.
    """
    limit = policy.max_attempts(waits, max_attempts)
    delivery, decided = _prior_decision(ctx, community_id, delivery_id, attempt_no, waits, limit)
    if decided is not None:
        return decided
    assert delivery is not None

    text = f"attempt crashed: {_crash_text(error)}"[:RESPONSE_BODY_LIMIT]
    now = clock.now_iso()
    ctx.deliveries.add_attempt(
        Attempt(
            id=ids.new_id("att"),
            delivery_id=delivery.id,
            community_id=delivery.community_id,
            webhook_id=delivery.webhook_id,
            event_id=delivery.event_id,
            event=delivery.event,
            attempt=attempt_no,
            error=text,
            success=False,
            created_at=now,
        ),
        expires_at=ctx.expires_at(),
    )
    delivery = ctx.deliveries.update(
        delivery.community_id,
        delivery.id,
        {"attempts": max(delivery.attempts, attempt_no), "last_error": text, "updated_at": now},
    )
    logger.warning("attempt crashed", extra={"delivery_id": delivery_id, "attempt": attempt_no})
    return _after_failure(ctx, delivery, attempt_no, waits, limit, None)


def _crash_text(error: Any) -> str:
    """A short description of a Step Functions error object ({"Error", "Cause"}) or exception."""
    if isinstance(error, dict):
        name = str(error.get("Error") or "error")
        cause = error.get("Cause")
        if isinstance(cause, str) and cause:
            detail = cause
            try:
                parsed = json.loads(cause)
                if isinstance(parsed, dict):
                    detail = str(parsed.get("errorMessage") or parsed.get("errorType") or cause)
            except ValueError:
                pass
            return f"{name}: {detail}"[:_CRASH_TEXT_LIMIT]
        return name[:_CRASH_TEXT_LIMIT]
    if isinstance(error, BaseException):
        return f"{type(error).__name__}: {error}"[:_CRASH_TEXT_LIMIT]
    return str(error or "unknown error")[:_CRASH_TEXT_LIMIT]


def give_up(
    ctx: DeliveryContext,
    community_id: str,
    delivery_id: str,
    reason: str | None = None,
    *,
    gone: bool = False,
) -> Delivery | None:
    """Fail a delivery for good. Idempotent: a delivery already final is left as it is.

    Sets `failed` with the final error, drops `next_attempt_at`, emits `delivery.failed` (never
    for deliveries of operational events), bumps the webhook's permanent-failure count and
    applies auto-disable; `gone` (a 410) disables the webhook at once.
    """
    delivery = ctx.deliveries.find(community_id, delivery_id)
    if delivery is None or delivery.state in _FINAL_STATES:
        return delivery
    reason = reason or f"Gave up after {delivery.attempts} attempts."
    final_error = delivery.last_error or reason
    operational = delivery.operational or delivery.event in catalog.OPERATIONAL_EVENTS
    if not operational:
        _emit_delivery_failed(ctx, delivery, final_error)
    try:
        failed = ctx.deliveries.update(
            community_id,
            delivery.id,
            {
                "state": "failed",
                "last_error": final_error,
                "reason": reason,
                "updated_at": clock.now_iso(),
            },
            expect={"state": delivery.state},
            remove=("next_attempt_at",),
        )
    except ConditionFailed:
        return ctx.deliveries.find(community_id, delivery_id)
    logger.info("delivery failed for good", extra={"delivery_id": delivery.id, "reason": reason})
    metric(ctx, "DeliveryPermanentlyFailed")
    _count_permanent_failure(ctx, delivery, gone=gone)
    return failed


def _emit_delivery_failed(ctx: DeliveryContext, delivery: Delivery, error: str) -> None:
    try:
        community = ctx.communities.get(delivery.community_id)
    except NotFound:
        return
    publish(
        ctx.events,
        community,
        "delivery.failed",
        {
            "delivery_id": delivery.id,
            "webhook_id": delivery.webhook_id,
            "event_id": delivery.event_id,
            "event": delivery.event,
            "attempts": delivery.attempts,
            "last_status_code": delivery.last_status_code,
            "error": error,
        },
        # One event per failed delivery even if give_up runs twice.
        event_id=f"evt_failed_{delivery.id}",
        retention_days=ctx.settings.event_retention_days,
        operational=True,
    )


def _count_permanent_failure(ctx: DeliveryContext, delivery: Delivery, *, gone: bool) -> None:
    webhook = ctx.webhooks.find(delivery.community_id, delivery.webhook_id)
    if webhook is None:
        return
    now = clock.now()
    changes: dict[str, Any] = {}
    if not webhook.failing_since:
        changes["failing_since"] = clock.iso(now)
    webhook = ctx.webhooks.update(
        webhook.community_id, webhook.id, changes, add={"permanent_failures": 1}
    )
    if not webhook.is_active:
        return
    if gone:
        disable_webhook(ctx, webhook, gone_reason())
        return
    settings = ctx.settings
    since = clock.parse_iso(webhook.failing_since) if webhook.failing_since else now
    if webhook.permanent_failures >= settings.auto_disable_min_failures and now - since > timedelta(
        hours=settings.auto_disable_after_hours
    ):
        disable_webhook(
            ctx,
            webhook,
            f"Disabled automatically: every delivery failed for good for more than "
            f"{settings.auto_disable_after_hours:g} hours ({webhook.permanent_failures} "
            "failed deliveries).",
        )


def disable_webhook(ctx: DeliveryContext, webhook: Webhook, reason: str) -> Webhook:
    """Set a webhook inactive with a reason and emit `webhook.disabled` (once per disabling)."""
    try:
        disabled = ctx.webhooks.update(
            webhook.community_id,
            webhook.id,
            {"status": "inactive", "disabled_reason": reason, "updated_at": clock.now_iso()},
        )
    except NotFound:
        return webhook
    logger.info("webhook disabled", extra={"webhook_id": webhook.id, "reason": reason})
    metric(ctx, "WebhookAutoDisabled")
    try:
        community = ctx.communities.get(webhook.community_id)
    except NotFound:
        return disabled
    publish(
        ctx.events,
        community,
        "webhook.disabled",
        {
            "webhook_id": webhook.id,
            "name": webhook.name,
            # The host only: the path of a Slack or Discord URL is a credential.
            "url_host": url_host(webhook.url),
            "reason": reason,
            "failed_deliveries": disabled.permanent_failures,
            "failing_since": disabled.failing_since,
        },
        retention_days=ctx.settings.event_retention_days,
        operational=True,
    )
    return disabled
