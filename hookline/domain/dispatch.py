"""Fan-out: each published event to every active webhook of its community that subscribes to it.

A batch of events is dispatched together: each community's webhooks are read once per batch, and
the first attempts of the whole batch run at once on a bounded thread pool, so one slow endpoint
holds up no other. Deliveries have deterministic ids and are created only if absent, so a batch
that the stream hands over again delivers nothing that an earlier invocation already handled.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Literal

from hookline import clock
from hookline.domain import filters, retry
from hookline.domain.delivery import (
    DeliveryContext,
    attempt_and_record,
    delivery_id_for,
    new_delivery,
)
from hookline.domain.models import Event, Webhook
from hookline.observability import bind, logger

Result = Literal["delivered", "failed", "resumed", "skipped"]


@dataclass
class DispatchReport:
    """What one dispatch did. ``failed_event_ids`` lists the events whose processing did not
    finish (an exception anywhere, including a retry that could not be scheduled); the stream
    should hand those over again."""

    events: int = 0
    attempted: int = 0
    delivered: int = 0
    failed: int = 0  # attempts that failed and went to the retry policy
    resumed: int = 0  # failed earlier, retries started only now
    skipped: int = 0
    failed_event_ids: set[str] = field(default_factory=set)


def dispatch_events(ctx: DeliveryContext, events: Iterable[Event]) -> DispatchReport:
    """Deliver a batch of events: plan every (event, webhook) pair, then attempt them all at once.

    A delivery that already exists is skipped unless an earlier invocation left it ``pending``:
    never attempted, it gets its first attempt now; attempted without success, only its retries
    are started. A failed first attempt hands the delivery to ``retry.start_retries``.
    """
    unique: dict[str, Event] = {}
    for event in events:
        unique.setdefault(event.id, event)
    report = DispatchReport(events=len(unique))
    by_community: dict[str, list[Event]] = {}
    for event in unique.values():
        by_community.setdefault(event.community_id, []).append(event)

    jobs: list[tuple[Event, Webhook]] = []
    for community_id, community_events in by_community.items():
        try:
            active = [w for w in ctx.webhooks.all(community_id) if w.is_active]
        except Exception:
            logger.exception("could not load webhooks", extra={"community_id": community_id})
            report.failed_event_ids.update(e.id for e in community_events)
            continue
        for event in community_events:
            jobs.extend((event, w) for w in active if filters.accepts(w, event))
    if not jobs:
        return report

    workers = max(1, min(ctx.settings.dispatch_concurrency, len(jobs)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="hookline-dispatch") as pool:
        futures = {
            pool.submit(_deliver, ctx, event, webhook): (event, webhook) for event, webhook in jobs
        }
        for future in as_completed(futures):
            event, webhook = futures[future]
            try:
                result = future.result()
            except Exception as exc:
                logger.exception(
                    "delivery not finished; the event will be dispatched again",
                    extra={
                        "community_id": event.community_id,
                        "event_id": event.id,
                        "webhook_id": webhook.id,
                        "error_type": type(exc).__name__,
                    },
                )
                report.failed_event_ids.add(event.id)
                continue
            if result == "skipped":
                report.skipped += 1
                continue
            if result == "resumed":
                report.resumed += 1
                continue
            report.attempted += 1
            if result == "delivered":
                report.delivered += 1
            else:
                report.failed += 1
    return report


def _deliver(ctx: DeliveryContext, event: Event, webhook: Webhook) -> Result:
    keys = {
        "community_id": event.community_id,
        "event_id": event.id,
        "webhook_id": webhook.id,
        "delivery_id": delivery_id_for(event.id, webhook.id),
    }
    with bind(**keys):
        return _deliver_bound(ctx, event, webhook)


def _deliver_bound(ctx: DeliveryContext, event: Event, webhook: Webhook) -> Result:
    now = clock.now()
    delivery = new_delivery(event, webhook, now=now)
    if not ctx.deliveries.create(delivery, expires_at=ctx.expires_at(now)):
        existing = ctx.deliveries.find(delivery.id)
        if existing is None:
            raise RuntimeError(f"delivery {delivery.id} exists but could not be read")
        if existing.state != "pending":
            return "skipped"
        # Attempted and failed, but its retries never started (the scheduler failed or the
        # invocation died): start them now, so the delivery still gets 1 + retry_count tries.
        if retry.resume_retries(ctx, existing, webhook):
            return "resumed"
        delivery = existing
    result = attempt_and_record(ctx, delivery, webhook, event, 1)
    if result.outcome.success:
        return "delivered"
    retry.start_retries(ctx, result.delivery, webhook, result.outcome)
    return "failed"
