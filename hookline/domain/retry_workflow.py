"""The retry workflow's steps (AttemptFunction): one round of a retry group, and the
bookkeeping of a round that crashed.

A round reads the group's members still retrying, attempts those that are due together (at
most MEMBERS_PER_ROUND, GROUP_CONCURRENCY at a time: one invocation serves one endpoint) and
answers the workflow's next document: the wait until the earliest member's next attempt, or
done when no member is left retrying. Each member keeps its own count, budget and next time
(hookline.domain.policy decides them), written in the same write as its attempt, so a round
that runs again after a crash sends nothing it recorded.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from hookline import clock, ids
from hookline.domain import pacing, policy
from hookline.domain.attempts import RESPONSE_BODY_LIMIT, AttemptOutcome
from hookline.domain.delivery import DeliveryContext, attempt_delivery
from hookline.domain.delivery_endings import cancel, give_up, gone_reason
from hookline.domain.models import Attempt, Delivery, Webhook
from hookline.errors import NotFound
from hookline.observability import carry, logger

#: Attempts of one group made at once (the per-endpoint cap of the retry path).
GROUP_CONCURRENCY = 8
#: Members attempted in one round; the rest stay due and go in the next round, at once.
#: With the 10 s timeout a full round takes at most 13 x 10 s (template: AttemptFunction's Timeout).
MEMBERS_PER_ROUND = 100
#: How soon a group looks again at a member whose early resend is in flight.
IN_FLIGHT_RECHECK_SECONDS = 60
#: How much of a crash's error text an attempt record keeps.
_CRASH_TEXT_LIMIT = 300


def _answer(document: Mapping[str, Any], *, attempted: bool, wait: int | None) -> dict[str, Any]:
    """The next document: ``attempt`` counts the rounds that were not only rate-limit waits."""
    return policy.workflow_document(
        community_id=str(document["community_id"]),
        webhook_id=str(document["webhook_id"]),
        group=str(document["group"]),
        since=str(document["since"]),
        until=str(document["until"]),
        attempt=int(document.get("attempt", 0)) + (1 if attempted else 0),
        wait_seconds=wait or 0,
        done=wait is None,
    )


def _members(ctx: DeliveryContext, document: Mapping[str, Any]) -> list[Delivery]:
    return ctx.deliveries.retry_group(
        str(document["webhook_id"]),
        str(document["group"]),
        str(document["since"]),
        str(document["until"]),
    )


def _next_wait(ctx: DeliveryContext, document: Mapping[str, Any], hint: int | None) -> int | None:
    """The wait until the earliest remaining member is due (``hint`` caps it: a rate-limit
    turn); None when no member is left retrying."""
    remaining = _members(ctx, document)
    if not remaining:
        return None
    scale = ctx.settings.retry_time_scale
    waits = []
    for member in remaining:
        if member.next_attempt_at is None:
            waits.append(IN_FLIGHT_RECHECK_SECONDS)
        elif policy.is_due(member.next_attempt_at, scale) and hint is not None:
            waits.append(hint)  # still due: it waits for the webhook's turn (or the next batch)
        else:
            waits.append(policy.seconds_until(member.next_attempt_at, scale))
    return max(min(waits), 0)


def _webhook_refusal(webhook: Webhook | None) -> str | None:
    if webhook is None:
        return "The webhook was deleted while retries were pending."
    if not webhook.is_active:
        why = f" ({webhook.disabled_reason})" if webhook.disabled_reason else ""
        return f"The webhook was deactivated while retries were pending{why}."
    return None


def _budget(delivery: Delivery, webhook: Webhook) -> int:
    return delivery.max_attempts or policy.budget(1, webhook.retry_count)


def _settle(ctx: DeliveryContext, due: Sequence[Delivery], webhook: Webhook) -> list[Delivery]:
    """Give up the due members whose decision was left unwritten (a crash after their last
    attempt or a 410); the others are returned, to be attempted."""
    left = []
    for member in due:
        if member.last_status_code == 410:
            give_up(ctx, member.community_id, member.id, gone_reason(), gone=True)
        elif member.attempts >= _budget(member, webhook):
            give_up(
                ctx,
                member.community_id,
                member.id,
                f"No attempts left after {member.attempts} attempts.",
            )
        else:
            left.append(member)
    return left


def _end_all(ctx: DeliveryContext, members: Sequence[Delivery], reason: str, *, gone: bool) -> None:
    for member in members:
        if gone:
            give_up(ctx, member.community_id, member.id, reason, gone=True)
        else:
            cancel(ctx, member, reason)


def _open_round(
    ctx: DeliveryContext, document: Mapping[str, Any]
) -> tuple[Webhook, list[Delivery]] | None:
    """The webhook and the due members of a round; None (and every member cancelled) when the
    group is over: no member left, or the webhook deleted or deactivated."""
    members = _members(ctx, document)
    if not members:
        return None
    webhook = ctx.webhooks.find(str(document["community_id"]), str(document["webhook_id"]))
    refusal = _webhook_refusal(webhook)
    if refusal is not None or webhook is None:
        _end_all(ctx, members, refusal or "", gone=False)
        return None
    scale = ctx.settings.retry_time_scale
    due = [m for m in members if policy.is_due(m.next_attempt_at, scale)]
    return webhook, _settle(ctx, due, webhook)


def run_round(ctx: DeliveryContext, document: Mapping[str, Any]) -> dict[str, Any]:
    """One round of a retry group and the workflow's next document."""
    opened = _open_round(ctx, document)
    if opened is None:
        return _answer(document, attempted=False, wait=None)
    webhook, due = opened
    batch, rest = due[:MEMBERS_PER_ROUND], due[MEMBERS_PER_ROUND:]
    workers = max(1, min(GROUP_CONCURRENCY, len(batch)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="hookline-retry") as pool:
        results = list(pool.map(carry(lambda m: _attempt(ctx, m, webhook)), batch))
    if any(r is not None and r.gone for r in results):
        # 410: the endpoint wants nothing more; every member fails, the webhook is disabled.
        _end_all(ctx, _members(ctx, document), gone_reason(), gone=True)
        return _answer(document, attempted=True, wait=None)
    turns = [r.retry_in for r in results if r is not None and r.retry_in is not None]
    hint = 0 if rest else (min(turns) if turns else None)
    # A round whose every attempt waited for the webhook's rate-limit turn made none: it does
    # not count (waits are not attempts).
    waited_only = bool(results) and all(r is not None and r.retry_in is not None for r in results)
    return _answer(document, attempted=not waited_only, wait=_next_wait(ctx, document, hint))


class _Result:
    """One member's attempt in a round: a 410, or a rate-limit turn (no attempt made)."""

    def __init__(self, *, gone: bool = False, retry_in: int | None = None) -> None:
        self.gone = gone
        self.retry_in = retry_in


def _attempt(ctx: DeliveryContext, member: Delivery, webhook: Webhook) -> _Result | None:
    """Attempt one member; its next time (or nothing, when it is given up) is written with the
    attempt's record."""
    try:
        event = ctx.events.get(member.community_id, member.event_id)
    except NotFound:
        cancel(ctx, member, "The event expired before it could be delivered.")
        return None
    attempt_no = member.attempts + 1
    last = _budget(member, webhook)
    settings = ctx.settings

    def next_time(outcome: AttemptOutcome) -> Mapping[str, Any]:
        wait = policy.wait_after(
            settings.retry_schedule,
            webhook.retry_count,
            last,
            attempt_no,
            outcome.retry_after_seconds,
        )
        if outcome.gone or wait is None:
            return {}
        return {"next_attempt_at": policy.due_at(wait, settings.retry_time_scale)}

    try:
        _, outcome = attempt_delivery(
            ctx,
            member,
            webhook,
            event,
            attempt_no,
            wait_at_most=pacing.MAX_WAIT_IN_PROCESS_SECONDS,
            on_failure=next_time,
        )
    except pacing.NotYet as later:
        # The webhook's turn is far off: no attempt was made; the group waits for it.
        return _Result(retry_in=later.retry_in_seconds)
    if outcome.success:
        return None
    if outcome.gone:
        return _Result(gone=True)
    if attempt_no >= last:
        give_up(
            ctx, member.community_id, member.id, f"No attempts left after {attempt_no} attempts."
        )
    return None


def record_crash(ctx: DeliveryContext, document: Mapping[str, Any], error: Any) -> dict[str, Any]:
    """The round's invocation crashed: each due member it left unrecorded counts a failed
    attempt ("attempt crashed: ..."), decided like any failed attempt."""
    opened = _open_round(ctx, document)
    if opened is None:
        return _answer(document, attempted=False, wait=None)
    webhook, due = opened
    text = f"attempt crashed: {_crash_text(error)}"[:RESPONSE_BODY_LIMIT]
    for member in due[:MEMBERS_PER_ROUND]:
        _record_crashed(ctx, member, webhook, text)
    hint = 0 if len(due) > MEMBERS_PER_ROUND else None
    return _answer(document, attempted=True, wait=_next_wait(ctx, document, hint))


def _record_crashed(ctx: DeliveryContext, member: Delivery, webhook: Webhook, text: str) -> None:
    attempt_no = member.attempts + 1
    last = _budget(member, webhook)
    now = clock.now_iso()
    ctx.deliveries.add_attempt(
        Attempt(
            id=ids.new_id("att"),
            delivery_id=member.id,
            community_id=member.community_id,
            webhook_id=member.webhook_id,
            event_id=member.event_id,
            event=member.event,
            attempt=attempt_no,
            error=text,
            success=False,
            created_at=now,
        ),
        expires_at=ctx.expires_at(),
    )
    wait = policy.wait_after(ctx.settings.retry_schedule, webhook.retry_count, last, attempt_no)
    changes: dict[str, Any] = {"attempts": attempt_no, "last_error": text, "updated_at": now}
    if wait is not None:
        changes["next_attempt_at"] = policy.due_at(wait, ctx.settings.retry_time_scale)
    ctx.deliveries.update(member.community_id, member.id, changes)
    logger.warning("attempt crashed", extra={"delivery_id": member.id, "attempt": attempt_no})
    if wait is None:
        give_up(
            ctx, member.community_id, member.id, f"No attempts left after {attempt_no} attempts."
        )


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
