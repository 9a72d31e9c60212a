"""Webhook subscriptions: create, update, delete, secret rotation, and their public view."""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

from hookline import catalog, clock, ids
from hookline.domain import filters, signing, targets
from hookline.domain.models import DEFAULT_RATE_LIMITS, Webhook
from hookline.domain.repositories import WebhookRepository
from hookline.errors import InvalidParam

MAX_EVENTS = 100
MAX_HEADERS = 20
MIN_SECRET_KEY_BYTES = 24
MIN_PLAIN_SECRET_LENGTH = 16
MAX_SECRET_LENGTH = 512
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$")
#: Visible ASCII, spaces and tabs: what every receiver and proxy reads the same way.
_HEADER_VALUE = re.compile(r"[\t\x20-\x7e]{0,4096}")
#: Headers Hookline sets itself, hop-by-hop and framing headers: a webhook's custom headers may
#: not set them. Every ``X-Hookline-*`` name is reserved as well (see ``is_reserved_header``).
RESERVED_HEADERS = frozenset(
    name.lower()
    for name in (
        "Host",
        "Content-Length",
        "Content-Type",
        "Content-Encoding",
        "Transfer-Encoding",
        "Connection",
        "Keep-Alive",
        "Upgrade",
        "TE",
        "Trailer",
        "Expect",
        "Proxy-Authorization",
        "Proxy-Authenticate",
        "Proxy-Connection",
        "User-Agent",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
    )
)
RESERVED_HEADER_PREFIX = "x-hookline-"
#: What a read shows instead of a custom header value or a secret (they are write-only).
MASK = "*" * 8


def is_reserved_header(name: str) -> bool:
    lowered = name.lower()
    return lowered in RESERVED_HEADERS or lowered.startswith(RESERVED_HEADER_PREFIX)


def validate_events(events: list[str], custom: Collection[str] = ()) -> list[str]:
    """The subscription, deduplicated; ``custom`` names the community's own event types."""
    if not events:
        raise InvalidParam("events must list at least one event type.", field="events")
    if len(events) > MAX_EVENTS:
        raise InvalidParam(f"events may list at most {MAX_EVENTS} entries.", field="events")
    unknown = [e for e in events if not catalog.is_valid_pattern(e, custom)]
    if unknown:
        raise InvalidParam(
            "Unknown event types: "
            + ", ".join(sorted(set(unknown)))
            + ". See GET /v1/event-types.",
            field="events",
            unknown=sorted(set(unknown)),
        )
    return list(dict.fromkeys(events))


def validate_headers(
    headers: dict[str, str], current: dict[str, str] | None = None
) -> dict[str, str]:
    """The custom headers to store. A value sent as the mask a read shows keeps the stored value
    of that header (so a GET-modify-PUT round trip does not overwrite it)."""
    if len(headers) > MAX_HEADERS:
        raise InvalidParam(f"headers may hold at most {MAX_HEADERS} entries.", field="headers")
    kept = {name.lower(): value for name, value in (current or {}).items()}
    out: dict[str, str] = {}
    for name, value in headers.items():
        if not _HEADER_NAME.match(name):
            raise InvalidParam(f"Header name {name!r} is not a valid HTTP token.", field="headers")
        if is_reserved_header(name):
            raise InvalidParam(
                f"Header {name!r} is reserved (set by Hookline, hop-by-hop or framing) and "
                "cannot be set.",
                field="headers",
            )
        if value == MASK:
            if name.lower() not in kept:
                raise InvalidParam(
                    f"Header {name!r} has no stored value to keep; send its value.",
                    field="headers",
                )
            value = kept[name.lower()]
        if not isinstance(value, str) or not _HEADER_VALUE.fullmatch(value):
            raise InvalidParam(
                f"Header {name!r} has an invalid value (visible ASCII, spaces and tabs only; "
                "at most 4096 characters).",
                field="headers",
            )
        out[name] = value
    return out


def validate_secret(secret: str) -> str:
    """A user-chosen signing secret (webhooks and incoming webhooks): long enough to be a key."""
    if len(secret) > MAX_SECRET_LENGTH:
        raise InvalidParam(
            f"secret must be at most {MAX_SECRET_LENGTH} characters.", field="secret"
        )
    try:
        key = signing.signing_key(secret)
    except ValueError as exc:
        raise InvalidParam(f"secret is not usable: {exc}.", field="secret") from exc
    if secret.startswith(signing.SECRET_PREFIX) and len(key) < MIN_SECRET_KEY_BYTES:
        raise InvalidParam(
            f"secret is too weak: a whsec_ secret must carry at least {MIN_SECRET_KEY_BYTES} "
            f"bytes of key after base64 decoding (it carries {len(key)}).",
            field="secret",
        )
    if not secret.startswith(signing.SECRET_PREFIX) and len(secret) < MIN_PLAIN_SECRET_LENGTH:
        raise InvalidParam(
            f"secret is too weak: a plain secret must be at least {MIN_PLAIN_SECRET_LENGTH} "
            "characters (or use a whsec_ secret).",
            field="secret",
        )
    return secret


def validate_filter(pattern: Any) -> dict[str, Any]:
    try:
        return filters.validate(pattern)
    except filters.FilterError as exc:
        raise InvalidParam(f"Invalid filter: {exc}.", field="filter", path=exc.where) from exc


def _routing(changes: dict[str, Any]) -> dict[str, Any]:
    """The routing fields being set. An explicit null clears the filter, or lifts the rate limit;
    a new format without a rate_limit brings that format's default limit."""
    out: dict[str, Any] = {}
    if "filter" in changes:
        out["filter"] = None if changes["filter"] is None else validate_filter(changes["filter"])
    if "rate_limit" in changes:
        out["rate_limit"] = changes["rate_limit"]
    elif changes.get("format") is not None:
        out["rate_limit"] = DEFAULT_RATE_LIMITS.get(changes["format"])
    return out


def filter_test(webhook: Webhook, payload: dict[str, Any]) -> dict[str, Any]:
    """Would ``payload`` (a delivered body) pass this webhook's routing, and if not, why not?
    The event type is checked too when the payload names one."""
    reasons: list[str] = []
    event = payload.get("event")
    if isinstance(event, str) and not catalog.matches(webhook.events, event):
        reasons.append(f"event: {event!r} is not among this webhook's events {webhook.events}")
    reasons += filters.explain(webhook.filter, payload)
    return {"matches": not reasons, "reasons": reasons, "filter": webhook.filter}


def _normalise(
    changes: dict[str, Any],
    *,
    allow_private: bool,
    current: Webhook | None = None,
    custom_events: Collection[str] = (),
) -> dict[str, Any]:
    """Validate the fields being set; returns the stored form. `is_active` is folded into status.
    A secret sent back as its mask means "unchanged"."""
    out: dict[str, Any] = {}
    if is_masked_secret(changes.get("secret")):
        changes = {k: v for k, v in changes.items() if k != "secret"}
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
        out["events"] = validate_events(changes["events"], custom_events)
    if changes.get("headers") is not None:
        out["headers"] = validate_headers(changes["headers"], current.headers if current else None)
    out.update(_routing(changes))
    for name in ("name", "description", "retry_count", "format"):
        if changes.get(name) is not None:
            out[name] = changes[name]
    return out


def create_webhook(
    repo: WebhookRepository,
    community_id: str,
    fields: dict[str, Any],
    *,
    allow_private: bool,
    custom_events: Collection[str] = (),
) -> Webhook:
    if not fields.get("url"):
        raise InvalidParam("url is required.", field="url")
    if fields.get("events") is None:
        raise InvalidParam("events is required.", field="events")
    values = _normalise(fields, allow_private=allow_private, custom_events=custom_events)
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
    custom_events: Collection[str] = (),
) -> Webhook:
    current = repo.get(community_id, webhook_id)
    changes = _normalise(
        fields, allow_private=allow_private, current=current, custom_events=custom_events
    )
    remove: tuple[str, ...] = ()
    if changes.get("status") == "active" and current.status != "active":
        # Re-activation clears the auto-disable state so the endpoint starts afresh.
        changes.update(permanent_failures=0)
        remove = ("disabled_reason", "failing_since")
    changes["updated_at"] = clock.now_iso()
    return repo.update(community_id, webhook_id, changes, remove=remove)


def mask_secret(secret: str | None) -> str | None:
    """What a read shows of a secret: its kind, nothing of its value."""
    if not secret:
        return None
    prefix = signing.SECRET_PREFIX if secret.startswith(signing.SECRET_PREFIX) else ""
    return prefix + MASK


def is_masked_secret(value: Any) -> bool:
    """Is this what a read shows of a secret? Sent back, it means "unchanged"."""
    return value in (MASK, signing.SECRET_PREFIX + MASK)


def mask_headers(headers: dict[str, str]) -> dict[str, str]:
    """Custom header names as stored, their values masked: they are often third-party keys."""
    return dict.fromkeys(headers, MASK)


def public_view(webhook: Webhook, *, reveal_secret: bool = False) -> dict[str, Any]:
    """The webhook as the API shows it. The secret is shown in full only on create/rotate."""
    view = webhook.model_dump(
        exclude={
            "previous_secrets",
            "community_id",
            "failing_since",
            "permanent_failures",
            "throttled_until",
        }
    )
    view["community_id"] = webhook.community_id
    view["is_active"] = webhook.is_active
    view["secret"] = webhook.secret if reveal_secret else mask_secret(webhook.secret)
    view["headers"] = mask_headers(webhook.headers)
    return view
