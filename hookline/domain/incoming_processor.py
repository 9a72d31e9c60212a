"""One call of ``POST /v1/hooks/{token}``: token lookup, protections (source IP ranges, a required
signature, a body cap), body parsing, then the peer behaviour: find or create the user, add to
and remove from the configured spaces and courses, and a welcome email for a new user when
enabled. Every call that names a known webhook is written to its activity log."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from hookline import clock, ids, receiver
from hookline.domain import incoming_signature
from hookline.domain.directory import Directory
from hookline.domain.directory_repository import DirectoryRepository, Group, GroupKind, User
from hookline.domain.incoming import HARD_MAX_BODY_BYTES
from hookline.domain.incoming_forms import InboundFields, parse_form, validate_fields
from hookline.domain.incoming_repository import (
    IncomingLog,
    IncomingRepository,
    IncomingWebhook,
    Outcome,
)
from hookline.domain.models import Community
from hookline.domain.repositories import CommunityRepository, EventRepository
from hookline.errors import (
    HooklineError,
    InvalidParam,
    NotFound,
    UnsupportedMediaType,
)
from hookline.observability import bind
from hookline.ports import Mailer, Tables

if TYPE_CHECKING:
    from hookline.wiring import Services

NOT_FOUND_MESSAGE = "Not found."


@dataclass(frozen=True)
class InboundContext:
    """What `process` needs: the tables, the mailer and the retention settings."""

    tables: Tables
    mailer: Mailer
    event_retention_days: int = 7
    log_retention_days: int = 30

    @classmethod
    def from_services(cls, services: Services) -> InboundContext:
        return cls(
            tables=services.tables,
            mailer=services.mailer,
            event_retention_days=services.settings.event_retention_days,
            log_retention_days=services.settings.delivery_retention_days,
        )


@dataclass
class InboundResult:
    status: int
    message: str
    outcome: Outcome
    reason: str | None = None
    user_id: str | None = None
    incoming_webhook_id: str | None = None
    community_id: str | None = None
    actions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def success(self) -> bool:
        return self.outcome == "processed"

    def body(self) -> dict[str, Any]:
        """The response body: {"success", "message"} and, on success, "user_id"."""
        body: dict[str, Any] = {"success": self.success, "message": self.message}
        if self.success:
            body["user_id"] = self.user_id
        return body


def _rejected(status: int, reason: str, message: str) -> InboundResult:
    return InboundResult(status=status, message=message, outcome="rejected", reason=reason)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return None


def ip_allowed(source_ip: str, allowed: list[str]) -> bool:
    """Is the caller's address inside one of the ranges? An unparsable address is not."""
    try:
        address = ipaddress.ip_address(source_ip.strip())
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for entry in allowed:
        network = ipaddress.ip_network(entry, strict=False)
        if address.version == network.version and address in network:
            return True
    return False


def _email_reason(error: InvalidParam) -> str:
    if error.field != "email":
        return "invalid_field"
    return "missing_email" if error.message.endswith("is required.") else "invalid_email"


def welcome_email(community: Community, user: User) -> tuple[str, str]:
    """Subject and text of the welcome email to a new user (no password in it)."""
    greeting = user.first_name or user.user_login
    subject = f"Welcome to {community.name}"
    text = (
        f"Hi {greeting},\n\n"
        f"An account has been created for you at {community.name}.\n\n"
        f"Username: {user.user_login}\n"
        f"Email: {user.email}\n\n"
        f"Sign in at {community.site_url}. If you did not choose a password, use the "
        f'"forgot password" link there to set one.\n'
    )
    return subject, text


class _Acts:
    """Collects what a call did, for the response message and the activity log."""

    def __init__(self) -> None:
        self.actions: list[dict[str, Any]] = []
        self.phrases: list[str] = []

    def add(self, action: str, phrase: str, **details: Any) -> None:
        self.actions.append({"type": action, **details})
        self.phrases.append(phrase)


_VERBS: dict[tuple[GroupKind, bool], tuple[str, str]] = {
    ("space", True): ("space_joined", "added to space"),
    ("space", False): ("space_left", "removed from space"),
    ("course", True): ("course_enrolled", "enrolled in course"),
    ("course", False): ("course_unenrolled", "removed from course"),
}


def _apply_groups(directory: Directory, hook: IncomingWebhook, user: User, acts: _Acts) -> None:
    for kind, adds, removes in (
        ("space", hook.add_spaces, hook.remove_spaces),
        ("course", hook.add_courses, hook.remove_courses),
    ):
        kind_: GroupKind = "space" if kind == "space" else "course"
        groups: dict[str, Group] = directory.groups(kind_, [*adds, *removes])
        for joining, wanted in ((True, adds), (False, removes)):
            for group_id in wanted:
                group = groups.get(group_id)
                if group is None:
                    acts.add(
                        f"{kind_}_missing",
                        f"skipped {kind_} {group_id} (it no longer exists)",
                        id=group_id,
                    )
                    continue
                changed = (
                    directory.join(kind_, group, user)
                    if joining
                    else directory.leave(kind_, group, user)
                )
                if changed:
                    action, phrase = _VERBS[(kind_, joining)]
                    acts.add(action, f"{phrase} {group.name}", id=group.id, name=group.name)


def _nothing_message(hook: IncomingWebhook) -> str:
    parts = []
    if hook.add_spaces or hook.add_courses:
        parts.append("user already a member of every configured space and course")
    if hook.remove_spaces or hook.remove_courses:
        parts.append("user not in any space or course to remove")
    return "Nothing to change: " + (" and ".join(parts) or "user already exists")


def _act(
    ctx: InboundContext, hook: IncomingWebhook, community: Community, fields: InboundFields
) -> InboundResult:
    directory = Directory(
        DirectoryRepository(ctx.tables.directory),
        EventRepository(ctx.tables.events),
        community,
        actor={"type": "incoming_webhook", "id": hook.id, "name": hook.name},
        source="incoming_webhook",
        retention_days=ctx.event_retention_days,
    )
    user, created = directory.register(
        fields.email,
        user_login=fields.user_login,
        first_name=fields.first_name,
        last_name=fields.last_name,
        password=fields.user_pass,
    )
    acts = _Acts()
    if created:
        acts.add("user_created", "User created", id=user.id, user_login=user.user_login)
    _apply_groups(directory, hook, user, acts)
    if created and hook.send_welcome_email:
        subject, text = welcome_email(community, user)
        try:
            ctx.mailer.send(to=user.email, subject=subject, text=text)
            acts.add("welcome_email_sent", "welcome email sent")
        except Exception as exc:  # the user exists now; a mail outage must not fail the call
            acts.add(
                "welcome_email_failed", "welcome email could not be sent", error=type(exc).__name__
            )
    changed = [
        p
        for a, p in zip(acts.actions, acts.phrases, strict=True)
        if not a["type"].endswith("_missing")
    ]
    if created:
        message = "; ".join(acts.phrases)
    elif changed:
        message = "; ".join(["Existing user", *acts.phrases])
    else:
        message = "; ".join([_nothing_message(hook), *acts.phrases])
    return InboundResult(
        status=200,
        message=message,
        outcome="processed",
        user_id=user.id,
        actions=acts.actions,
    )


def _record(
    ctx: InboundContext, hook: IncomingWebhook, result: InboundResult, source_ip: str
) -> None:
    now = clock.now()
    entry = IncomingLog(
        id=ids.new_id("inl"),
        incoming_webhook_id=hook.id,
        community_id=hook.community_id,
        created_at=clock.iso(now),
        source_ip=source_ip,
        outcome=result.outcome,
        status_code=result.status,
        reason=result.reason,
        user_id=result.user_id,
        actions=result.actions,
        message=result.message,
        error=None if result.success else result.message,
    )
    expires_at = clock.epoch_seconds(now + timedelta(days=ctx.log_retention_days))
    IncomingRepository(ctx.tables.communities).add_log(entry, expires_at=expires_at)


@dataclass(frozen=True)
class _Checked:
    fields: InboundFields
    signed: receiver.SignedMessage | None


def _check(
    hook: IncomingWebhook,
    form: Mapping[str, Any] | None,
    source_ip: str,
    raw_body: bytes,
    headers: Mapping[str, str],
) -> InboundResult | _Checked:
    """The protections and the body, in order; a rejection or the validated fields (with the
    signed message, whose replay the caller still has to rule out)."""
    if hook.status != "active":
        return _rejected(404, "inactive", NOT_FOUND_MESSAGE)
    if hook.allowed_ips and not ip_allowed(source_ip, hook.allowed_ips):
        return _rejected(403, "ip_not_allowed", "Forbidden: this source IP address is not allowed.")
    if len(raw_body) > hook.max_body_bytes:
        return _rejected(
            413, "too_large", f"Request body is larger than {hook.max_body_bytes} bytes."
        )
    signed = None
    if hook.signing_secret:
        try:
            signed = incoming_signature.verify_call(headers, raw_body, hook.signing_secret)
        except incoming_signature.SignatureRefused as exc:
            return _rejected(401, "bad_signature", f"Signature verification failed: {exc.reason}.")
    try:
        parsed = (
            form if form is not None else parse_form(_header(headers, "Content-Type"), raw_body)
        )
    except UnsupportedMediaType as exc:
        return _rejected(415, "unsupported_media_type", exc.message)
    except InvalidParam as exc:
        return _rejected(400, "invalid_body", exc.message)
    try:
        return _Checked(validate_fields(parsed), signed)
    except InvalidParam as exc:
        return _rejected(400, _email_reason(exc), exc.message)


def process(
    ctx: InboundContext,
    token: str,
    form: Mapping[str, Any] | None,
    source_ip: str,
    raw_body: bytes,
    headers: Mapping[str, str],
) -> InboundResult:
    """Handle one call of ``POST /v1/hooks/{token}``.

    ``form`` is the parsed body, or None to parse ``raw_body`` by its Content-Type here (so that
    a bad body is answered after the token and protections, and lands in the activity log).
    ``raw_body`` is the exact bytes received: the size cap and the signature apply to it.
    Unknown, rotated and inactive tokens all get 404 "Not found.". Never raises for bad input;
    an unexpected failure is logged to the activity log and re-raised.
    """
    if len(raw_body) > HARD_MAX_BODY_BYTES:
        return _rejected(
            413, "too_large", f"Request body is larger than {HARD_MAX_BODY_BYTES} bytes."
        )
    if not ids.is_token_shaped(token):  # refused without a read
        return _rejected(404, "unknown_token", NOT_FOUND_MESSAGE)
    hook = IncomingRepository(ctx.tables.communities).by_token_hash(ids.digest(token))
    if hook is None:
        return _rejected(404, "unknown_token", NOT_FOUND_MESSAGE)
    with bind(community_id=hook.community_id, incoming_webhook_id=hook.id):
        return _process_known(ctx, hook, form, source_ip, raw_body, headers)


def _process_known(
    ctx: InboundContext,
    hook: IncomingWebhook,
    form: Mapping[str, Any] | None,
    source_ip: str,
    raw_body: bytes,
    headers: Mapping[str, str],
) -> InboundResult:
    checked = _check(hook, form, source_ip, raw_body, headers)
    replays = incoming_signature.ReplayGuard(ctx.tables.communities)
    if isinstance(checked, InboundResult):
        result = checked
    elif checked.signed and not replays.claim(hook.id, checked.signed, now=clock.epoch_seconds()):
        result = _rejected(
            409,
            "replayed",
            "This webhook-id was already received: a signed call is accepted once "
            f"(ids are remembered for {incoming_signature.TOLERANCE_SECONDS // 60} minutes).",
        )
    else:
        try:
            community = CommunityRepository(ctx.tables.communities).get(hook.community_id)
            result = _act(ctx, hook, community, checked.fields)
        except NotFound:
            result = _rejected(404, "unknown_token", NOT_FOUND_MESSAGE)
        except InvalidParam as exc:
            result = _rejected(400, _email_reason(exc), exc.message)
        except HooklineError as exc:
            result = _rejected(exc.status, "invalid_field", exc.message)
        except Exception:
            if checked.signed:
                replays.release(hook.id, checked.signed.message_id)
            failed = InboundResult(
                status=500, message="Internal error.", outcome="error", reason="internal_error"
            )
            failed.incoming_webhook_id, failed.community_id = hook.id, hook.community_id
            _record(ctx, hook, failed, source_ip)
            raise
    result.incoming_webhook_id = hook.id
    result.community_id = hook.community_id
    _record(ctx, hook, result, source_ip)
    return result
