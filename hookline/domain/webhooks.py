"""Webhook subscriptions: create, update, delete, secret rotation, and their public view."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from hookline import catalog, clock, ids
from hookline.domain import signing, targets
from hookline.domain.models import Webhook
from hookline.domain.repositories import WebhookRepository
from hookline.errors import InvalidParam

MAX_EVENTS = 100
MAX_HEADERS = 20
ROTATION_OVERLAP = timedelta(hours=24)
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$")
#: RFC 9110 field-value characters (tab, visible ASCII, obs-text), which is also what can be sent:
#: other control characters would reach receivers raw, non-Latin-1 ones could never be sent.
_HEADER_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]{0,4096}")
#: Headers Hookline sets itself; a webhook's custom headers may not replace them.
RESERVED_HEADERS = frozenset(
    name.lower()
    for name in (
        "Host",
        "Content-Length",
        "Content-Type",
        "Transfer-Encoding",
        "Connection",
        "User-Agent",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "X-Hookline-Signature",
        "X-Hookline-Event",
        "X-Hookline-Delivery",
        "X-Hookline-Timestamp",
    )
)


def validate_events(events: list[str]) -> list[str]:
    if not events:
        raise InvalidParam("events must list at least one event type.", field="events")
    if len(events) > MAX_EVENTS:
        raise InvalidParam(f"events may list at most {MAX_EVENTS} entries.", field="events")
    unknown = [e for e in events if not catalog.is_valid_pattern(e)]
    if unknown:
        raise InvalidParam(
            "Unknown event types: "
            + ", ".join(sorted(set(unknown)))
            + ". See GET /v1/event-types.",
            field="events",
            unknown=sorted(set(unknown)),
        )
    return list(dict.fromkeys(events))


def validate_headers(headers: dict[str, str]) -> dict[str, str]:
    if len(headers) > MAX_HEADERS:
        raise InvalidParam(f"headers may hold at most {MAX_HEADERS} entries.", field="headers")
    for name, value in headers.items():
        if not _HEADER_NAME.match(name):
            raise InvalidParam(f"Header name {name!r} is not a valid HTTP token.", field="headers")
        if name.lower() in RESERVED_HEADERS:
            raise InvalidParam(
                f"Header {name!r} is set by Hookline and cannot be overridden.", field="headers"
            )
        if not isinstance(value, str) or not _HEADER_VALUE.fullmatch(value):
            raise InvalidParam(
                f"Header {name!r} has an invalid value (printable Latin-1 text and tabs, no CR, "
                "LF or other control characters; at most 4096 characters).",
                field="headers",
            )
    return dict(headers)


def validate_secret(secret: str) -> str:
    if len(secret) < 8 or len(secret) > 512:
        raise InvalidParam("secret must be 8 to 512 characters.", field="secret")
    try:
        signing.validate_secret(secret)
    except ValueError as exc:
        raise InvalidParam(f"secret is not usable: {exc}.", field="secret") from exc
    return secret


def _normalise(changes: dict[str, Any], *, allow_private: bool) -> dict[str, Any]:
    """Validate the fields being set; returns the stored form. `is_active` is folded into status."""
    out: dict[str, Any] = {}
    if "is_active" in changes and changes["is_active"] is not None:
        out["status"] = "active" if changes["is_active"] else "inactive"
    if changes.get("status") is not None:
        if out.get("status", changes["status"]) != changes["status"]:
            raise InvalidParam(
                "is_active and status disagree; send one of them.", field="is_active,status"
            )
        out["status"] = changes["status"]
    if changes.get("url") is not None:
        # Checked before splitting: split_secret_query raises ValueError on a malformed URL.
        checked = targets.check_webhook_url(changes["url"], allow_private=allow_private)
        out["url"], secret_from_url = targets.split_secret_query(checked)
        if secret_from_url and changes.get("secret") is None:
            out["secret"] = validate_secret(secret_from_url)
    if changes.get("secret") is not None:
        out["secret"] = validate_secret(changes["secret"])
    if changes.get("events") is not None:
        out["events"] = validate_events(changes["events"])
    if changes.get("headers") is not None:
        out["headers"] = validate_headers(changes["headers"])
    for name in ("name", "description", "retry_count", "format"):
        if changes.get(name) is not None:
            out[name] = changes[name]
    return out


def create_webhook(
    repo: WebhookRepository, community_id: str, fields: dict[str, Any], *, allow_private: bool
) -> Webhook:
    if not fields.get("url"):
        raise InvalidParam("url is required.", field="url")
    if fields.get("events") is None:
        raise InvalidParam("events is required.", field="events")
    values = _normalise(fields, allow_private=allow_private)
    now = clock.now_iso()
    webhook = Webhook(
        id=ids.new_id("wh"),
        community_id=community_id,
        secret=values.pop("secret", None) or ids.new_webhook_secret(),
        created_at=now,
        updated_at=now,
        **values,
    )
    repo.put(webhook, new=True)
    return webhook


def update_webhook(
    repo: WebhookRepository,
    community_id: str,
    webhook_id: str,
    fields: dict[str, Any],
    *,
    allow_private: bool,
) -> Webhook:
    current = repo.get(community_id, webhook_id)
    changes = _normalise(fields, allow_private=allow_private)
    remove: tuple[str, ...] = ()
    if changes.get("status") == "active" and current.status != "active":
        # Re-activation clears the auto-disable state so the endpoint starts afresh.
        changes.update(permanent_failures=0)
        remove = ("disabled_reason", "failing_since")
    changes["updated_at"] = clock.now_iso()
    return repo.update(community_id, webhook_id, changes, remove=remove)


def rotate_secret(repo: WebhookRepository, community_id: str, webhook_id: str) -> Webhook:
    """A new secret; the old one keeps signing alongside it for ROTATION_OVERLAP."""
    current = repo.get(community_id, webhook_id)
    now = clock.now()
    changes: dict[str, Any] = {"secret": ids.new_webhook_secret(), "updated_at": clock.iso(now)}
    if current.secret:
        changes["previous_secret"] = current.secret
        changes["previous_secret_expires_at"] = clock.iso(now + ROTATION_OVERLAP)
    return repo.update(community_id, webhook_id, changes)


def active_previous_secret(webhook: Webhook) -> str | None:
    """The previous secret while its overlap window lasts."""
    if not webhook.previous_secret or not webhook.previous_secret_expires_at:
        return None
    if clock.parse_iso(webhook.previous_secret_expires_at) <= clock.now():
        return None
    return webhook.previous_secret


def mask_secret(secret: str | None) -> str | None:
    if not secret:
        return None
    prefix = "whsec_" if secret.startswith("whsec_") else ""
    return f"{prefix}{'*' * 8}{secret[-4:]}"


def public_view(webhook: Webhook, *, reveal_secret: bool = False) -> dict[str, Any]:
    """The webhook as the API shows it. The secret is shown in full only on create/rotate."""
    view = webhook.model_dump(
        exclude={
            "previous_secret",
            "previous_secret_expires_at",
            "community_id",
            "failing_since",
            "permanent_failures",
        }
    )
    view["community_id"] = webhook.community_id
    view["is_active"] = webhook.is_active
    view["secret"] = webhook.secret if reveal_secret else mask_secret(webhook.secret)
    return view
