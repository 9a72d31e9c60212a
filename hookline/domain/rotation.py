"""Secret rotation that breaks no receiver.

Rotating gives a webhook a new secret (generated, or the caller's) and promises that the
replaced one keeps signing for ``overlap_seconds`` (0: switch now). Every promise made is kept:
rotating again during an overlap adds to the secrets in overlap instead of replacing the one
there. ``complete_rotation`` ends every overlap early. Each rotation emits the operational event
``webhook.secret_rotated`` (no secret in it).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hookline import clock, ids
from hookline.domain.models import Community, PreviousSecret, Webhook
from hookline.domain.publishing import publish
from hookline.domain.repositories import EventRepository, WebhookRepository
from hookline.domain.webhooks import mask_secret, validate_secret
from hookline.errors import Conflict, InvalidParam

DEFAULT_OVERLAP_SECONDS = 86_400
MAX_OVERLAP_SECONDS = 7 * 86_400
#: Secrets a webhook may hold in overlap at once; a rotation beyond it is refused (409), since
#: dropping one would break a promise.
MAX_SECRETS_IN_OVERLAP = 10
_LEGACY_FIELDS = ("previous_secret", "previous_secret_expires_at")


def in_overlap(webhook: Webhook) -> list[PreviousSecret]:
    """The replaced secrets whose overlap has not ended, oldest first."""
    now = clock.now()
    return [p for p in webhook.previous_secrets if clock.parse_iso(p.expires_at) > now]


def previous_secrets(webhook: Webhook) -> list[str]:
    """The secrets that sign alongside the current one now, oldest first."""
    return [p.secret for p in in_overlap(webhook)]


def rotate_secret(
    repo: WebhookRepository,
    community_id: str,
    webhook_id: str,
    *,
    secret: str | None = None,
    overlap_seconds: int = DEFAULT_OVERLAP_SECONDS,
) -> tuple[Webhook, str | None]:
    """Give the webhook a new secret: (webhook, when the replaced secret stops signing)."""
    if not 0 <= overlap_seconds <= MAX_OVERLAP_SECONDS:
        raise InvalidParam(
            f"overlap_seconds must be 0 to {MAX_OVERLAP_SECONDS}.", field="overlap_seconds"
        )
    current = repo.get(community_id, webhook_id)
    new_secret = ids.new_webhook_secret() if secret is None else validate_secret(secret)
    kept = in_overlap(current)
    if new_secret == current.secret or any(p.secret == new_secret for p in kept):
        raise InvalidParam("secret must differ from the secrets in use.", field="secret")
    now = clock.now()
    replaced_until: str | None = None
    if current.secret and overlap_seconds > 0:
        replaced_until = clock.iso(now + timedelta(seconds=overlap_seconds))
        kept.append(PreviousSecret(secret=current.secret, expires_at=replaced_until))
    if len(kept) > MAX_SECRETS_IN_OVERLAP:
        raise Conflict(
            f"{MAX_SECRETS_IN_OVERLAP} secrets are already in overlap; complete the rotation "
            "(POST .../rotate-secret/complete) before rotating again."
        )
    changes: dict[str, Any] = {
        "secret": new_secret,
        "previous_secrets": [p.model_dump() for p in kept],
        "updated_at": clock.iso(now),
    }
    webhook = repo.update(
        community_id,
        webhook_id,
        changes,
        remove=_LEGACY_FIELDS,
        expect={"secret": current.secret},
    )
    return webhook, replaced_until


def complete_rotation(repo: WebhookRepository, community_id: str, webhook_id: str) -> Webhook:
    """End every overlap now: only the current secret signs from here on."""
    repo.get(community_id, webhook_id)
    return repo.update(
        community_id,
        webhook_id,
        {"previous_secrets": [], "updated_at": clock.now_iso()},
        remove=_LEGACY_FIELDS,
    )


def overlap_view(webhook: Webhook) -> dict[str, Any]:
    """``previous_secrets`` (masked, with expiry) and ``overlap_ends_at`` for the API."""
    kept = in_overlap(webhook)
    return {
        "previous_secrets": [
            {"secret": mask_secret(p.secret), "expires_at": p.expires_at} for p in kept
        ],
        "overlap_ends_at": max((p.expires_at for p in kept), default=None),
    }


def announce(
    events: EventRepository,
    community: Community,
    webhook: Webhook,
    *,
    replaced_until: str | None,
    retention_days: int,
) -> None:
    """Publish ``webhook.secret_rotated`` (operational; it carries no secret)."""
    kept = in_overlap(webhook)
    publish(
        events,
        community,
        "webhook.secret_rotated",
        {
            "webhook_id": webhook.id,
            "name": webhook.name,
            "rotated_at": webhook.updated_at,
            "previous_secret_expires_at": replaced_until,
            "secrets_in_overlap": len(kept),
            "overlap_ends_at": max((p.expires_at for p in kept), default=None),
        },
        retention_days=retention_days,
        operational=True,
    )
