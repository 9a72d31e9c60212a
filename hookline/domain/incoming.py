"""Incoming webhooks: secret URLs that create members and manage their spaces and courses.

Records live in the CommunitiesTable: the webhook ``C#<cid>``/``IN#<iid>``, its token lookup
``TOKEN#<sha256(token)>``/``TOKEN`` and its activity log ``INLOG#<iid>``/``<created_at>#<id>``
(expiring). The token itself is never stored: it is shown once, in the URL, on create and rotate.

``process`` handles one call of ``POST /v1/hooks/{token}``: token lookup, protections (source IP
ranges, a required signature, a body cap), body parsing, then the peer behaviour: find or create
the user, add to and remove from the configured spaces and courses, and a welcome email for a
new user when enabled. Every call that names a known webhook is written to its activity log.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from email.utils import collapse_rfc2231_value
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qsl

from pydantic import Field

from hookline import clock, ids, receiver
from hookline.domain import incoming_signature, webhooks
from hookline.domain.directory import (
    Directory,
    normalize_email,
    validate_group_name,
    validate_login,
    validate_password,
    validate_person_name,
)
from hookline.domain.directory_repository import DirectoryRepository, Group, GroupKind, User
from hookline.domain.models import Community, Record
from hookline.domain.repositories import CommunityRepository, EventRepository
from hookline.errors import (
    ConditionFailed,
    Conflict,
    HooklineError,
    InvalidParam,
    NotFound,
    UnsupportedMediaType,
)
from hookline.observability import bind
from hookline.ports import Item, Mailer, Query, Table, Tables

if TYPE_CHECKING:
    from hookline.wiring import Services

IncomingStatus = Literal["active", "inactive"]
Outcome = Literal["processed", "rejected", "error"]

#: Largest body read at all, whatever a webhook's own cap says.
HARD_MAX_BODY_BYTES = 1024 * 1024
DEFAULT_MAX_BODY_BYTES = 64 * 1024
MIN_MAX_BODY_BYTES = 1024
MAX_GROUPS = 50
MAX_IP_RANGES = 50
MAX_FIELDS = 100
NOT_FOUND_MESSAGE = "Not found."
SUPPORTED_TYPES = "multipart/form-data, application/x-www-form-urlencoded or application/json"

#: Low-cardinality reasons a call did not succeed (logs, metrics dimension, activity log).
REASONS = frozenset(
    {
        "unknown_token",
        "inactive",
        "ip_not_allowed",
        "too_large",
        "bad_signature",
        "replayed",
        "unsupported_media_type",
        "invalid_body",
        "missing_email",
        "invalid_email",
        "invalid_field",
        "internal_error",
    }
)

_KEYS = ("pk", "sk", "expires_at")


def _fields(item: Item) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k not in _KEYS}


class IncomingWebhook(Record):
    id: str
    community_id: str
    name: str
    add_spaces: list[str] = Field(default_factory=list)
    remove_spaces: list[str] = Field(default_factory=list)
    add_courses: list[str] = Field(default_factory=list)
    remove_courses: list[str] = Field(default_factory=list)
    send_welcome_email: bool = False
    status: IncomingStatus = "active"
    token_hash: str
    allowed_ips: list[str] = Field(default_factory=list)
    signing_secret: str | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    token_rotated_at: str | None = None
    created_at: str
    updated_at: str


class IncomingLog(Record):
    """One call of an incoming webhook, as its activity log shows it (never the password)."""

    id: str
    incoming_webhook_id: str
    community_id: str
    created_at: str
    source_ip: str
    outcome: Outcome
    status_code: int
    reason: str | None = None
    user_id: str | None = None
    actions: list[dict[str, Any]] = Field(default_factory=list)
    message: str
    error: str | None = None


# -- storage ----------------------------------------------------------------------------------


def _token_key(token_hash: str) -> tuple[str, str]:
    return f"TOKEN#{token_hash}", "TOKEN"


class IncomingRepository:
    def __init__(self, table: Table) -> None:
        self.table = table

    def create(self, hook: IncomingWebhook) -> None:
        pk, sk = _token_key(hook.token_hash)
        self.table.put(
            {
                "pk": pk,
                "sk": sk,
                "community_id": hook.community_id,
                "incoming_webhook_id": hook.id,
            },
            if_absent=True,
        )
        self.table.put(
            {"pk": f"C#{hook.community_id}", "sk": f"IN#{hook.id}", **hook.model_dump()},
            if_absent=True,
        )

    def find(self, community_id: str, incoming_id: str) -> IncomingWebhook | None:
        item = self.table.get(f"C#{community_id}", f"IN#{incoming_id}")
        return IncomingWebhook.model_validate(_fields(item)) if item else None

    def get(self, community_id: str, incoming_id: str) -> IncomingWebhook:
        hook = self.find(community_id, incoming_id)
        if hook is None:
            raise NotFound("Incoming webhook not found.")
        return hook

    def by_token_hash(self, token_hash: str) -> IncomingWebhook | None:
        item = self.table.get(*_token_key(token_hash))
        if item is None:
            return None
        hook = self.find(str(item["community_id"]), str(item["incoming_webhook_id"]))
        # The record is the authority: a lookup that outlived a rotation opens nothing.
        if hook is None or not hmac.compare_digest(hook.token_hash, token_hash):
            return None
        return hook

    def page(
        self, community_id: str, *, limit: int, cursor: str | None
    ) -> tuple[list[IncomingWebhook], str | None]:
        result = self.table.query(
            Query(f"C#{community_id}", prefix="IN#", limit=limit, cursor=cursor)
        )
        hooks = [IncomingWebhook.model_validate(_fields(i)) for i in result.items]
        return hooks, result.cursor

    def update(
        self,
        community_id: str,
        incoming_id: str,
        changes: dict[str, Any],
        *,
        remove: tuple[str, ...] = (),
        expect: dict[str, Any] | None = None,
    ) -> IncomingWebhook:
        item = self.table.update(
            f"C#{community_id}", f"IN#{incoming_id}", set=changes, remove=remove, expect=expect
        )
        return IncomingWebhook.model_validate(_fields(item))

    def rotate(self, hook: IncomingWebhook, new_hash: str, now: str) -> IncomingWebhook:
        """Point the webhook at a new token hash; the old token stops working at once."""
        new_pk, new_sk = _token_key(new_hash)
        self.table.put(
            {
                "pk": new_pk,
                "sk": new_sk,
                "community_id": hook.community_id,
                "incoming_webhook_id": hook.id,
            },
            if_absent=True,
        )
        try:
            updated = self.update(
                hook.community_id,
                hook.id,
                {"token_hash": new_hash, "token_rotated_at": now, "updated_at": now},
                expect={"token_hash": hook.token_hash},
            )
        except ConditionFailed as exc:
            self.table.delete(new_pk, new_sk)
            raise Conflict("The incoming webhook changed meanwhile; try again.") from exc
        self.table.delete(*_token_key(hook.token_hash))
        return updated

    def delete(self, hook: IncomingWebhook) -> None:
        self.table.delete(f"C#{hook.community_id}", f"IN#{hook.id}")
        self.table.delete(*_token_key(hook.token_hash))

    def add_log(self, entry: IncomingLog, *, expires_at: int) -> None:
        self.table.put(
            {
                "pk": f"INLOG#{entry.incoming_webhook_id}",
                "sk": f"{entry.created_at}#{entry.id}",
                "expires_at": expires_at,
                **entry.model_dump(),
            }
        )

    def logs(
        self, incoming_id: str, *, limit: int, cursor: str | None = None
    ) -> tuple[list[IncomingLog], str | None]:
        """The activity log, newest first."""
        page = self.table.query(
            Query(f"INLOG#{incoming_id}", descending=True, limit=limit, cursor=cursor)
        )
        return [IncomingLog.model_validate(_fields(i)) for i in page.items], page.cursor


# -- administration ---------------------------------------------------------------------------

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


# -- request bodies ---------------------------------------------------------------------------


_PART_HEAD_END = re.compile(rb"\r?\n\r?\n")
_MULTIPART_PART = re.compile(rb"(?im)^content-type:\s*multipart/")


def _refuse_nested_parts(boundary: str, body: bytes) -> None:
    """Refuse parts that are multipart themselves, and more parts than fields, before the email
    parser recurses into them (deep nesting costs seconds of CPU, then a RecursionError)."""
    chunks = body.split(b"--" + boundary.encode("latin-1", "replace"))[1:]
    if len(chunks) > MAX_FIELDS + 1:  # the closing delimiter makes one more chunk
        raise InvalidParam(f"Request body has more than {MAX_FIELDS} fields.", field="body")
    for chunk in chunks:
        part_head = _PART_HEAD_END.split(chunk, maxsplit=1)[0]
        if _MULTIPART_PART.search(part_head):
            raise InvalidParam(
                "Nested multipart parts are not supported; send flat form fields.", field="body"
            )


def _parse_multipart(content_type: str, body: bytes) -> dict[str, Any]:
    if "\r" in content_type or "\n" in content_type:
        raise InvalidParam("Content-Type header is malformed.", field="Content-Type")
    # Imported here: the email package's header machinery is a good share of a cold start, and
    # only multipart bodies need it.
    from email import policy
    from email.parser import BytesParser

    head = b"Content-Type: " + content_type.encode("latin-1", "replace") + b"\r\n\r\n"
    boundary = (
        BytesParser(policy=policy.HTTP).parsebytes(head, headersonly=True).get_param("boundary")
    )
    if not boundary or not isinstance(boundary, str):
        raise InvalidParam("multipart/form-data needs a boundary parameter.", field="Content-Type")
    _refuse_nested_parts(boundary, body)
    try:
        message = BytesParser(policy=policy.HTTP).parsebytes(head + body)
    except RecursionError as exc:  # a belt: nesting is refused above without parsing
        raise InvalidParam("Nested multipart parts are not supported.", field="body") from exc
    if not message.is_multipart():
        if body.strip() in (b"", f"--{message.get_param('boundary')}--".encode()):
            return {}  # a form with no fields
        raise InvalidParam("Request body is not valid multipart/form-data.", field="body")
    form: dict[str, Any] = {}
    for count, part in enumerate(message.iter_parts()):
        if count >= MAX_FIELDS:
            raise InvalidParam(f"Request body has more than {MAX_FIELDS} fields.", field="body")
        raw_name = part.get_param("name", header="content-disposition")
        if not raw_name or part.get_filename() is not None:
            continue  # files and unnamed parts carry nothing we use
        name = collapse_rfc2231_value(raw_name)
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        try:
            form[name] = data.decode(part.get_content_charset() or "utf-8")
        except (LookupError, UnicodeDecodeError) as exc:
            raise InvalidParam(f"Field {name[:60]!r} is not valid text.", field=name) from exc
    return form


def parse_form(content_type: str | None, body: bytes) -> dict[str, Any]:
    """The fields of a request body by its Content-Type (multipart/form-data,
    application/x-www-form-urlencoded or application/json). Later duplicates of a form field win.
    Raises UnsupportedMediaType or InvalidParam."""
    full = content_type or ""
    media = full.split(";", 1)[0].strip().lower()
    if media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    ):
        try:
            data = json.loads(body.decode("utf-8")) if body.strip() else {}
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise InvalidParam("Request body is not valid JSON.", field="body") from exc
        if not isinstance(data, dict):
            raise InvalidParam("The JSON body must be an object.", field="body")
        return data
    if media == "application/x-www-form-urlencoded":
        try:
            text = body.decode("utf-8")
            return dict(
                parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FIELDS, errors="strict")
            )
        except UnicodeDecodeError as exc:
            raise InvalidParam("Request body is not valid UTF-8.", field="body") from exc
        except ValueError as exc:
            raise InvalidParam(
                f"Request body has more than {MAX_FIELDS} fields.", field="body"
            ) from exc
    if media == "multipart/form-data":
        return _parse_multipart(full, body)
    if not media:
        raise UnsupportedMediaType(f"Content-Type is required: send {SUPPORTED_TYPES}.")
    raise UnsupportedMediaType(
        f"Content-Type {media[:100]!r} is not supported; send {SUPPORTED_TYPES}."
    )


@dataclass(frozen=True)
class InboundFields:
    """The validated fields of a call. `__repr__` leaves the password out."""

    email: str
    first_name: str = ""
    last_name: str = ""
    user_login: str = ""
    user_pass: str = field(default="", repr=False)


def validate_fields(form: Mapping[str, Any]) -> InboundFields:
    """Check email (required) and the optional new-user fields; blank optional fields count as
    absent. Raises InvalidParam naming the field."""
    return InboundFields(
        email=normalize_email(form.get("email")),
        first_name=validate_person_name(form.get("first_name") or None, "first_name"),
        last_name=validate_person_name(form.get("last_name") or None, "last_name"),
        user_login=validate_login(form.get("user_login") or None),
        user_pass=validate_password(form.get("user_pass")),
    )


# -- the processor ----------------------------------------------------------------------------


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
