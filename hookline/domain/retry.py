"""Retry cycles: start them. A failed first attempt joins its webhook's retry group; a resend, a
recover or a resumed delivery enlists in a group of its own. Ending a delivery (give up,
cancel, auto-disable) is hookline.domain.delivery_endings.

The retry workflow (statemachine/retry.asl.json, or the local stack's timer running it) runs one
execution per group; its steps are in hookline.domain.retry_workflow, and every wait and budget
comes from hookline.domain.policy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from hookline import clock
from hookline.domain import policy
from hookline.domain.attempts import AttemptOutcome
from hookline.domain.delivery import DeliveryContext, OnFailure
from hookline.domain.delivery_endings import give_up, gone_reason, metric
from hookline.domain.models import Delivery, Webhook
from hookline.errors import ConditionFailed
from hookline.observability import carry, logger

#: Members marked concurrently when many deliveries enlist at once (recover).
_ENLIST_CONCURRENCY = 16


@dataclass(frozen=True)
class Group:
    """A retry group: its execution name, the workflow's input, and its members' first retry."""

    name: str
    document: dict[str, Any]
    first_retry_at: str
    #: The schedule's first wait and the time scale its times were computed with.
    first_wait: int = 0
    time_scale: float = 1.0


def window_group(ctx: DeliveryContext, delivery: Delivery, generation: int = 0) -> Group:
    """A generation of the group a delivery joins when its first attempt fails: its webhook's
    window (hookline.domain.policy.window_group)."""
    settings = ctx.settings
    name, document, first_at = policy.window_group(
        community_id=delivery.community_id,
        webhook_id=delivery.webhook_id,
        created_at=delivery.created_at,
        window_seconds=settings.retry_group_window_seconds,
        schedule=settings.retry_schedule,
        time_scale=settings.retry_time_scale,
        generation=generation,
    )
    first_wait = policy.retry_wait(settings.retry_schedule, 0)
    return Group(name, document, first_at, first_wait, settings.retry_time_scale)


def _group_now(ctx: DeliveryContext, delivery: Delivery) -> Group:
    """The generation of its window's group a member written now joins."""
    settings = ctx.settings
    generation = policy.generation(
        created_at=delivery.created_at,
        written_at=clock.now(),
        window_seconds=settings.retry_group_window_seconds,
        schedule=settings.retry_schedule,
        time_scale=settings.retry_time_scale,
    )
    return window_group(ctx, delivery, generation)


def joining(ctx: DeliveryContext, delivery: Delivery, webhook: Webhook) -> OnFailure:
    """What a failed first attempt writes with its record: `retrying` in a generation of its
    window's group chosen at the write (nothing when it gets no retries: a 410, or retry_count
    0; the caller gives up)."""

    def fields(outcome: AttemptOutcome) -> Mapping[str, Any]:
        if outcome.gone or webhook.retry_count <= 0:
            return {}
        group = _group_now(ctx, delivery)
        next_at = group.first_retry_at
        if outcome.retry_after_seconds:
            # A Retry-After longer than the first wait lengthens this member's (the group wakes
            # for it later).
            later = policy.due_at(
                policy.lengthen(group.first_wait, outcome.retry_after_seconds),
                group.time_scale,
            )
            next_at = max(next_at, later)
        return {
            "state": "retrying",
            "retry_group": group.name,
            "next_attempt_at": next_at,
            "max_attempts": policy.budget(1, webhook.retry_count),
        }

    return fields


def after_first_failure(
    ctx: DeliveryContext, delivery: Delivery, webhook: Webhook, outcome: AttemptOutcome
) -> None:
    """After the record of a failed first attempt (``delivery`` as stored): give up, or start
    (join) the group it was written into. A failed start raises: the order comes back and
    ``rejoin`` starts it again."""
    if outcome.gone:
        give_up(ctx, delivery.community_id, delivery.id, gone_reason(), gone=True)
    elif delivery.state != "retrying":
        give_up(
            ctx,
            delivery.community_id,
            delivery.id,
            "Retries are off for this webhook (retry_count 0).",
        )
    elif not rejoin(ctx, delivery):
        raise RuntimeError(f"delivery {delivery.id} is not in a window group")


def rejoin(ctx: DeliveryContext, delivery: Delivery) -> bool:
    """Start (again) the window group a `retrying` delivery was written into (the invocation
    may have died between the write and the start); False when it is not in a window group."""
    if delivery.state != "retrying" or delivery.attempts != 1:
        return False
    settings = ctx.settings
    generation = policy.window_generation(
        delivery.retry_group,
        webhook_id=delivery.webhook_id,
        created_at=delivery.created_at,
        window_seconds=settings.retry_group_window_seconds,
        time_scale=settings.retry_time_scale,
    )
    if generation is None:
        return False
    join(ctx, window_group(ctx, delivery, generation))
    return True


def join(ctx: DeliveryContext, group: Group) -> None:
    """Start the group's workflow; an existing execution of that name is joined."""
    ctx.scheduler.schedule(name=group.name, document=group.document)
    metric(ctx, "RetryScheduled")


def enlist(
    ctx: DeliveryContext,
    deliveries: Sequence[Delivery],
    group: Group,
    budget: Callable[[Delivery], int],
) -> list[Delivery]:
    """Mark deliveries `retrying` in ``group`` (each only if its state has not changed
    meanwhile), then start the group's workflow; if the start fails, every mark is undone and
    the error raised. The marked deliveries are returned."""

    def mark_one(delivery: Delivery) -> Delivery | None:
        try:
            ctx.deliveries.update(
                delivery.community_id,
                delivery.id,
                {
                    "state": "retrying",
                    "retry_group": group.name,
                    "next_attempt_at": group.first_retry_at,
                    "max_attempts": budget(delivery),
                    "updated_at": clock.now_iso(),
                },
                expect={"state": delivery.state},
                remove=("reason",),
            )
        except ConditionFailed:
            return None
        return delivery

    with ThreadPoolExecutor(max_workers=_ENLIST_CONCURRENCY) as pool:
        marked = [d for d in pool.map(carry(mark_one), deliveries) if d is not None]
    if not marked:
        return []
    try:
        join(ctx, group)
    except Exception as exc:
        logger.warning(
            "could not start retries", extra={"group": group.name, "error": type(exc).__name__}
        )
        for delivery in marked:
            _undo(ctx, delivery, f"Retries could not be scheduled: {type(exc).__name__}.")
        raise
    return marked


def _undo(ctx: DeliveryContext, delivery: Delivery, reason: str) -> None:
    try:
        ctx.deliveries.update(
            delivery.community_id,
            delivery.id,
            {"state": delivery.state, "reason": reason, "updated_at": clock.now_iso()},
            expect={"state": "retrying"},
            remove=("next_attempt_at", "retry_group"),
        )
    except ConditionFailed:
        return


def single_group(ctx: DeliveryContext, delivery: Delivery, wait_seconds: int, tag: str) -> Group:
    """A group of one delivery (a resend's new cycle, a resumed one)."""
    scale = ctx.settings.retry_time_scale
    created = clock.parse_iso(delivery.created_at)
    name = policy.group_name(delivery.webhook_id, f"{tag}-{delivery.id}-a{delivery.attempts}")
    return Group(
        name,
        policy.workflow_document(
            community_id=delivery.community_id,
            webhook_id=delivery.webhook_id,
            group=name,
            since=delivery.created_at,
            until=clock.iso(created + timedelta(milliseconds=1)),
            attempt=1,
            wait_seconds=wait_seconds,
        ),
        policy.due_at(wait_seconds, scale),
    )


def start_retries(
    ctx: DeliveryContext, delivery: Delivery, webhook: Webhook, outcome: AttemptOutcome
) -> None:
    """After a failed attempt outside the workflow (a resend, or a first attempt whose retries
    never started): a new cycle of `webhook.retry_count` retries in a group of its own.

    No retries allowed (retry_count 0) fails the delivery at once; a 410 answer fails it and
    disables the webhook. If the start fails the delivery keeps its state (with the reason) and
    the error is raised.
    """
    if outcome.gone:
        give_up(ctx, delivery.community_id, delivery.id, gone_reason(), gone=True)
        return
    if webhook.retry_count <= 0:
        give_up(
            ctx,
            delivery.community_id,
            delivery.id,
            "Retries are off for this webhook (retry_count 0).",
        )
        return
    wait = policy.lengthen(
        policy.retry_wait(ctx.settings.retry_schedule, 0), outcome.retry_after_seconds
    )
    group = single_group(ctx, delivery, wait, "s")
    made = delivery.attempts
    enlist(ctx, [delivery], group, lambda _: policy.budget(made, webhook.retry_count))


def resume_retries(ctx: DeliveryContext, delivery: Delivery, webhook: Webhook) -> bool:
    """Start the retries of a `pending` delivery whose last attempt was made and failed but whose
    retry cycle never started (the invocation died in between), without another attempt. False
    when there is no failed attempt to resume from: the caller attempts.

    For the dispatcher, when an order comes back, so that a delivery still gets exactly
    1 + retry_count attempts. A Retry-After of the recorded attempt is not kept.
    """
    if delivery.state != "pending" or delivery.attempts < 1:
        return False
    last = ctx.deliveries.attempt(delivery.community_id, delivery.id, delivery.attempts)
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
