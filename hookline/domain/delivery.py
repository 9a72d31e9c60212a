"""One attempt of one delivery: the request, the HTTP call through the sender port, and its record.

``attempt_delivery`` is the only place an attempt happens; the dispatcher, the test endpoint and
the retry step all go through it, so every attempt is signed, logged, measured and kept in the
delivery log the same way.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aws_lambda_powertools.metrics import MetricUnit

import hookline
from hookline import clock, ids
from hookline.config import Settings
from hookline.domain import pacing, rotation, signing, webhooks
from hookline.domain.attempts import AttemptOutcome, kept_body
from hookline.domain.delivery_repository import DeliveryRepository
from hookline.domain.models import Attempt, Delivery, Event, Webhook
from hookline.domain.payload import render_body
from hookline.domain.repositories import CommunityRepository, EventRepository, WebhookRepository
from hookline.errors import NotFound
from hookline.observability import emit, logger
from hookline.ports import DeliveryQueue, Mailer, RateLimiter, RetryScheduler, Sender

if TYPE_CHECKING:
    from hookline.wiring import Services

USER_AGENT = f"Hookline/{hookline.__version__}"
HEADER_EVENT = "X-Hookline-Event"
HEADER_DELIVERY = "X-Hookline-Delivery"
HEADER_TIMESTAMP = "X-Hookline-Timestamp"
HEADER_ATTEMPT = "X-Hookline-Attempt"


@dataclass(frozen=True)
class DeliveryContext:
    """What delivering needs: repositories, the HTTP sender, the delivery queue, the retry
    scheduler, the rate limiter and settings."""

    settings: Settings
    webhooks: WebhookRepository
    deliveries: DeliveryRepository
    events: EventRepository
    communities: CommunityRepository
    sender: Sender
    scheduler: RetryScheduler
    mailer: Mailer
    queue: DeliveryQueue
    rate_limiter: RateLimiter

    @classmethod
    def from_services(cls, services: Services) -> DeliveryContext:
        tables = services.tables
        return cls(
            settings=services.settings,
            webhooks=WebhookRepository(tables.webhooks),
            deliveries=DeliveryRepository(tables.deliveries),
            events=EventRepository(tables.events),
            communities=CommunityRepository(tables.communities),
            sender=services.sender,
            scheduler=services.scheduler,
            mailer=services.mailer,
            queue=services.queue,
            rate_limiter=services.rate_limiter,
        )

    @property
    def timeout(self) -> float:
        return self.settings.delivery_timeout_seconds

    @property
    def allow_private(self) -> bool:
        return self.settings.allow_private_targets

    @property
    def retention_days(self) -> int:
        return self.settings.delivery_retention_days

    def expires_at(self, moment: datetime | None = None) -> int:
        """The TTL (epoch seconds) of delivery and attempt records written at ``moment``."""
        return clock.epoch_seconds((moment or clock.now()) + timedelta(days=self.retention_days))


@dataclass(frozen=True)
class AttemptResult:
    attempt: Attempt
    outcome: AttemptOutcome
    delivery: Delivery  # the delivery as stored after this attempt


#: What a failed attempt also writes into its record (the retry policy's next state), so the
#: attempt and what follows it are one write.
OnFailure = Callable[[AttemptOutcome], Mapping[str, Any]]


def delivery_id_for(event: Event, webhook_id: str) -> str:
    """Deterministic, so a redelivered stream record maps onto the delivery it already made; it
    starts with the event's time, so a community's deliveries sort by it (the table's key)."""
    millis = clock.epoch_millis(clock.parse_iso(event.timestamp))
    return ids.derived_id("dlv", millis, event.id, webhook_id)


def new_delivery(event: Event, webhook: Webhook, *, now: datetime | None = None) -> Delivery:
    """A pending delivery of ``event`` to ``webhook`` (not stored)."""
    stamp = clock.iso(now or clock.now())
    return Delivery(
        id=delivery_id_for(event, webhook.id),
        community_id=event.community_id,
        webhook_id=webhook.id,
        event_id=event.id,
        event=event.event,
        state="pending",
        operational=event.operational,
        created_at=stamp,
        updated_at=stamp,
    )


def build_request(
    webhook: Webhook, event: Event, *, delivery_id: str, attempt: int, now: datetime
) -> tuple[bytes, dict[str, str]]:
    """The body and headers of one attempt.

    The body is rendered once and those exact bytes are signed. The webhook's custom headers
    come last and never replace a header Hookline sets. Raises ValueError when the body cannot
    be rendered or the stored secret cannot sign.
    """
    body = render_body(webhook.format, event)
    timestamp = int(now.timestamp())
    headers: dict[str, str] = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        HEADER_EVENT: event.event,
        HEADER_DELIVERY: delivery_id,
        HEADER_TIMESTAMP: str(timestamp),
        HEADER_ATTEMPT: str(attempt),
    }
    headers.update(
        signing.sign_headers(
            secret=webhook.secret,
            previous_secrets=rotation.previous_secrets(webhook),
            message_id=delivery_id,
            timestamp=timestamp,
            body=body,
        )
    )
    taken = {name.lower() for name in headers} | webhooks.RESERVED_HEADERS
    for name, value in webhook.headers.items():
        if name.lower() not in taken and not webhooks.is_reserved_header(name):
            headers[name] = value
            taken.add(name.lower())
    return body, headers


def attempt_delivery(
    ctx: DeliveryContext,
    delivery: Delivery,
    webhook: Webhook,
    event: Event,
    attempt: int,
    *,
    paced: bool = True,
    wait_at_most: float | None = None,
    on_failure: OnFailure | None = None,
) -> tuple[Attempt, AttemptOutcome]:
    """Make attempt number ``attempt`` of ``delivery`` now and record it.

    Sends through ``ctx.sender`` (never raises for HTTP trouble: a refused target, a timeout or a
    non-2xx answer is a failed outcome), stores the Attempt with its TTL, updates the delivery
    (``delivered`` on success; on failure only the counters and last error, the retry policy
    decides the state), and sets the webhook's ``last_triggered_at`` or ``last_error``.
    Storage errors propagate.
    """
    result = attempt_and_record(
        ctx,
        delivery,
        webhook,
        event,
        attempt,
        paced=paced,
        wait_at_most=wait_at_most,
        on_failure=on_failure,
    )
    return result.attempt, result.outcome


def attempt_and_record(
    ctx: DeliveryContext,
    delivery: Delivery,
    webhook: Webhook,
    event: Event,
    attempt: int,
    *,
    stored: bool = True,
    paced: bool = True,
    wait_at_most: float | None = None,
    on_failure: OnFailure | None = None,
) -> AttemptResult:
    """``attempt_delivery``, also returning the delivery as stored after the attempt.

    ``stored=False`` for a delivery not written yet: its first attempt then creates it, with the
    attempt inline, in one write.

    A paced attempt first waits for the webhook's turn (its rate limit, or a Retry-After it was
    given), and records that wait; a turn more than ``wait_at_most`` seconds off raises
    pacing.NotYet before anything is sent or written. ``paced=False`` sends at once.
    ``on_failure(outcome)`` gives the fields a failed attempt also writes into the delivery.
    """
    waited_ms = (
        pacing.wait_turn(
            ctx.rate_limiter, webhook, stage=ctx.settings.stage, horizon_seconds=wait_at_most
        )
        if paced
        else 0
    )
    started = clock.now()
    try:
        body, headers = build_request(
            webhook, event, delivery_id=delivery.id, attempt=attempt, now=started
        )
    except ValueError as exc:
        outcome = AttemptOutcome.failure(f"could not build the request: {exc}")
    else:
        outcome = _send(ctx, webhook.url, body, headers)

    record = Attempt(
        id=ids.new_id("att"),
        delivery_id=delivery.id,
        community_id=delivery.community_id,
        webhook_id=webhook.id,
        event_id=event.id,
        event=event.event,
        attempt=attempt,
        status_code=outcome.status_code,
        response_time_ms=outcome.response_time_ms,
        response_body=kept_body(outcome.response_body, success=outcome.success),
        error=outcome.error,
        success=outcome.success,
        rate_limit_wait_ms=waited_ms,
        # A first attempt that creates its delivery shares the delivery's time (its by_webhook
        # key, on which the log's since/until bounds act; its retry group's window): it began
        # then, any rate-limit wait included (rate_limit_wait_ms).
        created_at=delivery.created_at if attempt == 1 and not stored else clock.iso(started),
    )
    extra = dict(on_failure(outcome)) if on_failure is not None and not outcome.success else {}
    saved = _record(ctx, delivery, record, outcome, stored=stored, moment=started, extra=extra)
    _update_webhook(ctx, webhook, outcome)
    _observe(ctx, record, outcome, webhook)
    return AttemptResult(record, outcome, saved)


def _record(
    ctx: DeliveryContext,
    delivery: Delivery,
    record: Attempt,
    outcome: AttemptOutcome,
    *,
    stored: bool,
    moment: datetime,
    extra: Mapping[str, Any],
) -> Delivery:
    """Store the attempt and the delivery's new state (``delivered`` on success; on failure the
    counters, the last error and ``extra``: what the retry policy decided)."""
    changes: dict[str, object] = {
        **extra,
        "attempts": record.attempt,
        "updated_at": clock.now_iso(),
    }
    remove: list[str] = []
    if outcome.status_code is None:
        remove.append("last_status_code")
    else:
        changes["last_status_code"] = outcome.status_code
    if outcome.success:
        changes["state"] = "delivered"
        remove += ["next_attempt_at", "last_error"]
    else:
        changes["last_error"] = outcome.error or "delivery failed"
    expires_at = ctx.expires_at(moment)
    if record.attempt == 1 and not stored:
        fresh = delivery.model_copy(update=changes)
        for name in remove:
            setattr(fresh, name, None)
        if ctx.deliveries.create(fresh, expires_at=expires_at, first_attempt=record):
            return fresh
        # Another invocation made and recorded this first attempt meanwhile: keep its record.
        logger.warning("first attempt recorded twice", extra={"delivery_id": delivery.id})
        return ctx.deliveries.find(delivery.community_id, delivery.id) or fresh
    if record.attempt == 1:
        return ctx.deliveries.update(
            delivery.community_id, delivery.id, changes, remove=tuple(remove), first_attempt=record
        )
    ctx.deliveries.add_attempt(record, expires_at=expires_at)
    return ctx.deliveries.update(delivery.community_id, delivery.id, changes, remove=tuple(remove))


def _send(ctx: DeliveryContext, url: str, body: bytes, headers: dict[str, str]) -> AttemptOutcome:
    try:
        return ctx.sender(url, body, headers, timeout=ctx.timeout, allow_private=ctx.allow_private)
    except Exception as exc:  # the port never raises, but a broken one must not lose the record
        logger.exception("sender raised", extra={"error_type": type(exc).__name__})
        return AttemptOutcome.failure(f"internal error while sending: {type(exc).__name__}")


#: ``last_triggered_at`` is written at most this often per webhook (seconds).
LAST_TRIGGERED_RESOLUTION = 60


def _update_webhook(ctx: DeliveryContext, webhook: Webhook, outcome: AttemptOutcome) -> None:
    """Keep the webhook's health fields current with as few writes as possible: a success
    writes only when ``last_triggered_at`` is a minute old or a failing streak ends."""
    changes: dict[str, object] = {}
    remove: tuple[str, ...] = ()
    now = clock.now()
    if outcome.success:
        last = webhook.last_triggered_at
        if last is None or (now - clock.parse_iso(last)).total_seconds() >= (
            LAST_TRIGGERED_RESOLUTION
        ):
            changes["last_triggered_at"] = clock.iso(now)
        # A success ends a failing streak: the auto-disable bookkeeping starts afresh.
        if webhook.failing_since:
            remove = ("failing_since",)
        if webhook.permanent_failures:
            changes["permanent_failures"] = 0
    else:
        changes = {"last_error": outcome.error or "delivery failed"}
        throttled_until = pacing.slow_down(ctx.rate_limiter, webhook, outcome)
        if throttled_until is not None:
            changes["throttled_until"] = throttled_until
    if not changes and not remove:
        return
    # A webhook deleted while the attempt was in flight: nothing to update, the record stays.
    with contextlib.suppress(NotFound):
        ctx.webhooks.update(webhook.community_id, webhook.id, changes, remove=remove)


def _observe(
    ctx: DeliveryContext, record: Attempt, outcome: AttemptOutcome, webhook: Webhook
) -> None:
    logger.info(
        "delivery attempt",
        extra={
            "community_id": record.community_id,
            "webhook_id": record.webhook_id,
            "event_id": record.event_id,
            "delivery_id": record.delivery_id,
            "attempt": record.attempt,
            "event": record.event,
            "success": outcome.success,
            "status_code": outcome.status_code,
            "response_time_ms": outcome.response_time_ms,
            "error": outcome.error,
            "rate_limit_wait_ms": record.rate_limit_wait_ms,
            "url_host": url_host(webhook.url),
        },
    )
    emit(
        {
            "DeliverySucceeded" if outcome.success else "DeliveryFailed": (MetricUnit.Count, 1),
            "DeliveryLatency": (MetricUnit.Milliseconds, outcome.response_time_ms),
        },
        stage=ctx.settings.stage,
    )


def url_host(url: str) -> str:
    """The host of a webhook URL: what logs and operational events may show of it."""
    try:
        return urlsplit(url).hostname or ""
    except ValueError:
        return ""
