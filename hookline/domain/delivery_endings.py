"""Ending a delivery: give up (`failed`, with its `delivery.failed` event), cancel, and the
webhook's failure bookkeeping behind auto-disable (a 410 disables at once)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from hookline import catalog, clock
from hookline.domain.delivery import DeliveryContext, url_host
from hookline.domain.models import Delivery, Webhook
from hookline.domain.publishing import publish
from hookline.errors import ConditionFailed, NotFound
from hookline.observability import emit, logger

_FINAL_STATES = ("delivered", "failed", "cancelled")


def metric(ctx: DeliveryContext, name: str) -> None:
    """One Count metric, written at once (it needs no handler's log_metrics flush)."""
    emit({name: (MetricUnit.Count, 1)}, stage=ctx.settings.stage)


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


def cancel(ctx: DeliveryContext, delivery: Delivery, reason: str) -> None:
    """End a delivery whose retries can no longer go anywhere (webhook deleted, deactivated...);
    a delivery that changed state meanwhile is left alone."""
    try:
        ctx.deliveries.update(
            delivery.community_id,
            delivery.id,
            {"state": "cancelled", "reason": reason, "updated_at": clock.now_iso()},
            expect={"state": delivery.state},
            remove=("next_attempt_at",),
        )
    except ConditionFailed:
        return
    logger.info("delivery cancelled", extra={"delivery_id": delivery.id, "reason": reason})


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
