"""Incoming webhooks: secret URLs that create members and manage their spaces and courses.

This module is their administration: validating settings, create, update, rotate the token,
delete, and the views the API shows. The token is shown once, in the URL, on create and rotate.
Records: hookline.domain.incoming_repository; request bodies: incoming_forms; a call of
``POST /v1/hooks/{token}``: incoming_processor."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from hookline import clock, ids
from hookline.domain import webhooks
from hookline.domain.directory import (
    Directory,
    validate_group_name,
)
from hookline.domain.directory_repository import GroupKind
from hookline.domain.incoming_repository import IncomingLog, IncomingRepository, IncomingWebhook
from hookline.errors import (
    ConditionFailed,
    InvalidParam,
    NotFound,
)

if TYPE_CHECKING:
    pass

#: Largest body read at all, whatever a webhook's own cap says.
HARD_MAX_BODY_BYTES = 1024 * 1024
MIN_MAX_BODY_BYTES = 1024
MAX_GROUPS = 50
MAX_IP_RANGES = 50


_GROUP_FIELDS: tuple[tuple[str, GroupKind], ...] = (
    ("add_spaces", "space"),
    ("remove_spaces", "space"),
    ("add_courses", "course"),
    ("remove_courses", "course"),
)


def _group_ids(value: Any, name: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise InvalidParam(f"{name} must be a list of ids.", field=name)
    if len(value) > MAX_GROUPS:
        raise InvalidParam(f"{name} may list at most {MAX_GROUPS} ids.", field=name)
    return list(dict.fromkeys(value))


def _ip_ranges(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise InvalidParam(
            "allowed_ips must be a list of IP addresses or CIDR ranges.", field="allowed_ips"
        )
    if len(value) > MAX_IP_RANGES:
        raise InvalidParam(
            f"allowed_ips may list at most {MAX_IP_RANGES} ranges.", field="allowed_ips"
        )
    ranges: list[str] = []
    for entry in value:
        try:
            network = ipaddress.ip_network(str(entry).strip(), strict=False)
        except ValueError as exc:
            raise InvalidParam(
                f"allowed_ips: {str(entry)[:60]!r} is not an IP address or CIDR range.",
                field="allowed_ips",
            ) from exc
        ranges.append(str(network))
    return list(dict.fromkeys(ranges))


def _max_body(value: Any) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not MIN_MAX_BODY_BYTES <= value <= HARD_MAX_BODY_BYTES
    ):
        raise InvalidParam(
            f"max_body_bytes must be an integer from {MIN_MAX_BODY_BYTES} "
            f"to {HARD_MAX_BODY_BYTES}.",
            field="max_body_bytes",
        )
    return value


def _normalise(
    directory: Directory, fields: Mapping[str, Any], current: IncomingWebhook | None
) -> tuple[dict[str, Any], bool]:
    """Validate the given fields into stored changes; also says whether a new signing secret was
    set (it is then shown once). Referenced spaces and courses must exist."""
    out: dict[str, Any] = {}
    new_secret = False
    if webhooks.is_masked_secret(fields.get("signing_secret")):
        fields = {k: v for k, v in fields.items() if k != "signing_secret"}
    if fields.get("name") is not None:
        out["name"] = validate_group_name(fields["name"])
    for name, kind in _GROUP_FIELDS:
        if fields.get(name) is None:
            continue
        group_ids = _group_ids(fields[name], name)
        missing = directory.missing(kind, group_ids)
        if missing:
            raise InvalidParam(
                f"{name}: no {kind} with id {', '.join(missing)}.", field=name, missing=missing
            )
        out[name] = group_ids
    for kind_plural in ("spaces", "courses"):
        adds = out.get(f"add_{kind_plural}", current and getattr(current, f"add_{kind_plural}"))
        removes = out.get(
            f"remove_{kind_plural}", current and getattr(current, f"remove_{kind_plural}")
        )
        both = sorted(set(adds or []) & set(removes or []))
        if both:
            raise InvalidParam(
                f"add_{kind_plural} and remove_{kind_plural} both list {', '.join(both)}.",
                field=f"remove_{kind_plural}",
            )
    if fields.get("send_welcome_email") is not None:
        out["send_welcome_email"] = bool(fields["send_welcome_email"])
    if fields.get("status") is not None:
        if fields["status"] not in ("active", "inactive"):
            raise InvalidParam("status must be active or inactive.", field="status")
        out["status"] = fields["status"]
    if fields.get("allowed_ips") is not None:
        out["allowed_ips"] = _ip_ranges(fields["allowed_ips"])
    if fields.get("max_body_bytes") is not None:
        out["max_body_bytes"] = _max_body(fields["max_body_bytes"])
    if fields.get("signing_secret") is not None:
        if fields.get("require_signature") is False:
            raise InvalidParam(
                "signing_secret cannot be set with require_signature false.",
                field="signing_secret",
            )
        out["signing_secret"] = _signing_secret(fields["signing_secret"])
        new_secret = True
    elif fields.get("require_signature") is True and not (current and current.signing_secret):
        out["signing_secret"] = ids.new_webhook_secret()
        new_secret = True
    elif fields.get("require_signature") is False:
        out["signing_secret"] = None
    return out, new_secret


def _signing_secret(value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidParam("signing_secret must be a string.", field="signing_secret")
    try:
        return webhooks.validate_secret(value)
    except InvalidParam as exc:
        raise InvalidParam(
            exc.message.replace("secret", "signing_secret", 1), field="signing_secret"
        ) from exc


def create_incoming(
    repo: IncomingRepository, directory: Directory, fields: Mapping[str, Any]
) -> tuple[IncomingWebhook, str, bool]:
    """A new incoming webhook: (record, token, secret_revealed). The token is returned once."""
    if not fields.get("name"):
        raise InvalidParam("name is required.", field="name")
    values, new_secret = _normalise(directory, fields, None)
    token = ids.new_token()
    now = clock.now_iso()
    hook = IncomingWebhook(
        id=ids.new_id("in"),
        community_id=directory.community_id,
        token_hash=ids.digest(token),
        created_at=now,
        updated_at=now,
        **values,
    )
    repo.create(hook)
    return hook, token, new_secret


def update_incoming(
    repo: IncomingRepository, directory: Directory, incoming_id: str, fields: Mapping[str, Any]
) -> tuple[IncomingWebhook, bool]:
    """Apply a PATCH: (record, secret_revealed)."""
    current = repo.get(directory.community_id, incoming_id)
    values, new_secret = _normalise(directory, fields, current)
    if not values:
        return current, False
    remove: tuple[str, ...] = ()
    if "signing_secret" in values and values["signing_secret"] is None:
        del values["signing_secret"]
        remove = ("signing_secret",)
    values["updated_at"] = clock.now_iso()
    try:
        hook = repo.update(directory.community_id, incoming_id, values, remove=remove)
    except ConditionFailed as exc:
        raise NotFound("Incoming webhook not found.") from exc
    return hook, new_secret


def rotate_token(
    repo: IncomingRepository, community_id: str, incoming_id: str
) -> tuple[IncomingWebhook, str]:
    """A new token (returned once); the old URL answers 404 from now on."""
    current = repo.get(community_id, incoming_id)
    token = ids.new_token()
    return repo.rotate(current, ids.digest(token), clock.now_iso()), token


def delete_incoming(repo: IncomingRepository, community_id: str, incoming_id: str) -> None:
    repo.delete(repo.get(community_id, incoming_id))


def public_view(
    hook: IncomingWebhook, *, url: str | None = None, reveal_secret: bool = False
) -> dict[str, Any]:
    """The webhook as the API shows it: never the token or its hash; the URL only when given."""
    view = hook.model_dump(exclude={"token_hash", "signing_secret"})
    view["require_signature"] = bool(hook.signing_secret)
    view["signing_secret"] = (
        hook.signing_secret if reveal_secret else webhooks.mask_secret(hook.signing_secret)
    )
    if url is not None:
        view["url"] = url
    return view


def log_view(entry: IncomingLog) -> dict[str, Any]:
    return entry.model_dump()
