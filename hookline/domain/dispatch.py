"""Fan-out and the first attempt, in two steps that never wait on each other.

* ``queue_events`` (DispatchFunction, the events stream): each event to every active webhook of
  its community that subscribes to it, as one delivery order per pair on the delivery queue.
  Nothing here touches the network, so a slow endpoint cannot hold up the stream.
* ``deliver_orders`` (DeliverFunction, the delivery queue): the first attempt of each order,
  concurrently, each in its webhook's turn (hookline.domain.pacing). A failed first attempt
  goes to the retry policy; an order whose turn is more than a few seconds off goes back on the
  queue, delayed, rather than holding the invocation.

Delivery ids are deterministic per (event, webhook) and a delivery is written only with its
first attempt, so an order handed over twice (a redelivered stream record or queue message)
attempts nothing that is already recorded.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from hookline import clock
from hookline.domain import delivery_endings, filters, pacing, retry, subscriptions
from hookline.domain.delivery import (
    DeliveryContext,
    attempt_and_record,
    delivery_id_for,
    new_delivery,
)
from hookline.domain.models import Event
from hookline.observability import bind, carry, logger

#: SQS delays a message by at most this.
MAX_QUEUE_DELAY_SECONDS = 900

Result = Literal["delivered", "failed", "resumed", "skipped", "deferred"]

#: A first attempt still running after this long marks its endpoint slow: the webhook's next
#: deliveries are deferred (back on the queue, delayed) for ``SLOW_ENDPOINT_HOLD_SECONDS``,
#: longer than pacing's in-process horizon so that they do not wait in an invocation.
SLOW_ATTEMPT_SECONDS = 2.0
SLOW_ENDPOINT_HOLD_SECONDS = 30


@dataclass(frozen=True)
class DeliveryOrder:
    """One delivery to make: the message between the dispatcher and the delivery consumer. It
    carries the event, so the consumer needs no read of it."""

    webhook_id: str
    event: Event
    #: Queued by a replay, which wrote the delivery as pending first: only this order makes it.
    replayed: bool = False

    @property
    def community_id(self) -> str:
        return self.event.community_id

    @property
    def delivery_id(self) -> str:
        return delivery_id_for(self.event, self.webhook_id)

    def to_message(self) -> dict[str, Any]:
        message = {"webhook_id": self.webhook_id, "event": self.event.model_dump()}
        return {**message, "replayed": True} if self.replayed else message

    @classmethod
    def from_message(cls, message: Mapping[str, Any]) -> DeliveryOrder:
        """Raises ValueError (pydantic's ValidationError included) for a malformed message."""
        webhook_id = message.get("webhook_id")
        if not isinstance(webhook_id, str) or not webhook_id:
            raise ValueError("a delivery order needs a webhook_id")
        return cls(
            webhook_id,
            Event.model_validate(message.get("event")),
            replayed=message.get("replayed") is True,
        )


@dataclass
class FanOut:
    """The orders for a batch of events, and the events whose webhooks could not be read."""

    events: int = 0
    orders: list[DeliveryOrder] = field(default_factory=list)
    failed_event_ids: set[str] = field(default_factory=set)


@dataclass
class DispatchReport:
    """What one dispatch did. ``failed_event_ids`` lists the events whose processing did not
    finish; the stream should hand those over again."""

    events: int = 0
    queued: int = 0
    attempted: int = 0
    delivered: int = 0
    failed: int = 0  # first attempts that failed and went to the retry policy
    resumed: int = 0  # failed earlier, retries started only now
    skipped: int = 0
    deferred: int = 0  # queued again to wait for the webhook's rate limit
    failed_event_ids: set[str] = field(default_factory=set)


def fan_out(ctx: DeliveryContext, events: Iterable[Event]) -> FanOut:
    """Every (event, subscribed active webhook) pair of a batch: per community one read of its
    subscription version, and the webhooks only when they changed."""
    unique: dict[str, Event] = {}
    for event in events:
        unique.setdefault(event.id, event)
    result = FanOut(events=len(unique))
    by_community: dict[str, list[Event]] = {}
    for event in unique.values():
        by_community.setdefault(event.community_id, []).append(event)
    for community_id, community_events in by_community.items():
        try:
            index = subscriptions.cache.index(ctx.webhooks, community_id)
        except Exception:
            logger.exception("could not load webhooks", extra={"community_id": community_id})
            result.failed_event_ids.update(e.id for e in community_events)
            continue
        for event in community_events:
            result.orders.extend(
                DeliveryOrder(w.id, event)
                for w in index.matching(event.event)
                if filters.passes(w, event)
            )
    return result


def queue_events(ctx: DeliveryContext, events: Iterable[Event]) -> DispatchReport:
    """The dispatcher: fan a batch out onto the delivery queue."""
    planned = fan_out(ctx, events)
    report = DispatchReport(events=planned.events, failed_event_ids=planned.failed_event_ids)
    if not planned.orders:
        return report
    try:
        unsent = set(ctx.queue.send([order.to_message() for order in planned.orders]))
    except Exception:
        logger.exception("could not queue deliveries; the batch will be dispatched again")
        unsent = set(range(len(planned.orders)))
    for index, order in enumerate(planned.orders):
        if index in unsent:
            report.failed_event_ids.add(order.event.id)
        else:
            report.queued += 1
    return report


def deliver_orders(
    ctx: DeliveryContext, orders: Sequence[DeliveryOrder]
) -> list[Result | BaseException]:
    """The delivery consumer: the first attempt of every order at once, each on its own
    thread; an order whose processing raised gets its exception back (hand it over again).

    The per-endpoint cap: an endpoint whose attempt is still running after
    SLOW_ATTEMPT_SECONDS is held (pacing's hold, the seam rate limits use), so its next orders
    are deferred (back on the queue, delayed) instead of each holding an invocation for the
    whole timeout.
    """
    if not orders:
        return []

    def run(order: DeliveryOrder) -> Result | BaseException:
        try:
            return deliver_order(ctx, order)
        except Exception as exc:
            logger.exception(
                "delivery not finished; it will be handed over again",
                extra={"delivery_id": order.delivery_id, "error_type": type(exc).__name__},
            )
            return exc

    workers = max(1, min(ctx.settings.dispatch_concurrency, len(orders)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="hookline-deliver") as pool:
        futures = [pool.submit(carry(run), order) for order in orders]
        _, running = wait(futures, timeout=SLOW_ATTEMPT_SECONDS)
        pairs = zip(orders, futures, strict=True)
        slow = {(o.community_id, o.webhook_id) for o, f in pairs if f in running}
        for community_id, webhook_id in slow:
            _hold_slow_endpoint(ctx, community_id, webhook_id)
        return [future.result() for future in futures]


def _hold_slow_endpoint(ctx: DeliveryContext, community_id: str, webhook_id: str) -> None:
    now = clock.now()
    until = now + timedelta(seconds=SLOW_ENDPOINT_HOLD_SECONDS)
    try:
        webhook = ctx.webhooks.find(community_id, webhook_id)
        if webhook is None or pacing.is_paced(webhook, now):
            return  # gone, or paced already: its attempts may be waiting for their turn
        ctx.rate_limiter.hold(webhook_id, int(until.timestamp() * 1000))
        ctx.webhooks.update(community_id, webhook_id, {"throttled_until": clock.iso(until)})
    except Exception:  # a webhook deleted meanwhile, or storage trouble: the attempt goes on
        logger.exception("could not hold a slow endpoint", extra={"webhook_id": webhook_id})
        return
    logger.info("slow endpoint held", extra={"webhook_id": webhook_id, "until": clock.iso(until)})


def deliver_order(ctx: DeliveryContext, order: DeliveryOrder) -> Result:
    """One order's first attempt, unless it was made already.

    A delivery already recorded is skipped unless an earlier invocation left it ``pending``:
    then only its retries are started (it was attempted and failed) or it is attempted now.
    A webhook deleted or deactivated since the fan-out ends the order.
    """
    event = order.event
    keys = {
        "community_id": order.community_id,
        "event_id": event.id,
        "webhook_id": order.webhook_id,
        "delivery_id": order.delivery_id,
    }
    with bind(**keys):
        existing = ctx.deliveries.find(order.community_id, order.delivery_id)
        if existing is not None and existing.state == "retrying":
            # Written into its retry group, but the invocation may have died before starting
            # the group's workflow: the idempotent start runs again.
            return "resumed" if retry.rejoin(ctx, existing) else "skipped"
        if existing is not None and existing.state != "pending":
            return "skipped"
        # A replay queued this delivery: only the replay's own order makes its first attempt,
        # not the stream's order for the same event arriving meanwhile.
        replay_pending = existing is not None and existing.replayed and not existing.attempts
        if replay_pending and not order.replayed:
            return "skipped"
        webhook = ctx.webhooks.find(order.community_id, order.webhook_id)
        if webhook is None or not webhook.is_active:
            if existing is not None:
                delivery_endings.cancel(ctx, existing, "The webhook was deleted or deactivated.")
            return "skipped"
        if existing is not None:
            # Attempted and failed, but its retries never started (the invocation died): start
            # them now, so the delivery still gets 1 + retry_count tries.
            if retry.resume_retries(ctx, existing, webhook):
                return "resumed"
            delivery, stored = existing, True
        else:
            delivery, stored = new_delivery(event, webhook), False
        try:
            result = attempt_and_record(
                ctx,
                delivery,
                webhook,
                event,
                1,
                stored=stored,
                wait_at_most=pacing.MAX_WAIT_IN_PROCESS_SECONDS,
                on_failure=retry.joining(ctx, delivery, webhook),
            )
        except pacing.NotYet as later:
            return _defer(ctx, order, later.retry_in_seconds)
        if result.outcome.success:
            return "delivered"
        retry.after_first_failure(ctx, result.delivery, webhook, result.outcome)
        return "failed"


def _defer(ctx: DeliveryContext, order: DeliveryOrder, seconds: int) -> Result:
    """The webhook's turn is too far off to wait for here: queue the order again, delayed, so
    the wait costs no invocation time. Nothing was attempted or recorded."""
    if ctx.queue.send([order.to_message()], delay_seconds=min(seconds, MAX_QUEUE_DELAY_SECONDS)):
        raise RuntimeError(f"could not queue delivery {order.delivery_id} again")
    return "deferred"


def dispatch_events(ctx: DeliveryContext, events: Iterable[Event]) -> DispatchReport:
    """Both steps in one call, in process (tests, benchmarks): fan out, then deliver every
    order before returning."""
    planned = fan_out(ctx, events)
    report = DispatchReport(events=planned.events, failed_event_ids=planned.failed_event_ids)
    results = deliver_orders(ctx, planned.orders)
    for order, result in zip(planned.orders, results, strict=True):
        if isinstance(result, BaseException):
            report.failed_event_ids.add(order.event.id)
        elif result == "skipped":
            report.skipped += 1
        elif result == "resumed":
            report.resumed += 1
        elif result == "deferred":
            report.deferred += 1
        else:
            report.attempted += 1
            report.delivered += result == "delivered"
            report.failed += result == "failed"
    return report
