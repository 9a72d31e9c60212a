"""The community directory: users, spaces, courses, memberships, and the events they publish.

Changes publish into the delivery pipeline: user.registered, member.joined, space.member_joined,
space.member_left, course.enrolled, course.unenrolled, and space.created/updated/deleted.
Passwords are kept only as a salted scrypt hash; the plaintext is never stored or returned.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import unicodedata
from dataclasses import dataclass
from typing import Any

from hookline import clock, ids
from hookline.domain.directory_repository import (
    KINDS,
    DirectoryRepository,
    Group,
    GroupKind,
    Membership,
    User,
)
from hookline.domain.models import Community
from hookline.domain.publishing import publish
from hookline.domain.repositories import CommunityRepository, EventRepository
from hookline.errors import ConditionFailed, Conflict, InvalidParam, NotFound
from hookline.ports import Tables

MAX_EMAIL = 254
MAX_LOCAL_PART = 64
MAX_PERSON_NAME = 100
MAX_LOGIN = 60
MAX_PASSWORD = 256
MAX_GROUP_NAME = 200
MAX_SLUG = 100
MAX_DESCRIPTION = 1000

#: scrypt cost (N, r, p): OWASP's 16 MiB profile. Stored with each hash, so it can change later.
SCRYPT_PARAMS: tuple[int, int, int] = (2**14, 8, 5)
_SCRYPT_MAXMEM = 64 * 1024 * 1024

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_EMAIL = re.compile(
    rf"(?P<local>{_ATEXT}(?:\.{_ATEXT})*)@"
    r"(?P<domain>(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
    r"(?:[A-Za-z]{2,63}|xn--[A-Za-z0-9-]{1,59}))",
    re.ASCII,
)
_LOGIN = re.compile(r"[A-Za-z0-9._@-]+", re.ASCII)
_SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*", re.ASCII)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_LISTS: tuple[tuple[GroupKind, str], ...] = (("space", "spaces"), ("course", "courses"))

#: Event types per group kind: (joined, left, created, updated, deleted); None = not in catalog.
_EVENTS: dict[GroupKind, tuple[str, str, str | None, str | None, str | None]] = {
    "space": (
        "space.member_joined",
        "space.member_left",
        "space.created",
        "space.updated",
        "space.deleted",
    ),
    "course": ("course.enrolled", "course.unenrolled", None, None, None),
}


# -- validation -------------------------------------------------------------------------------


def normalize_email(value: Any, field: str = "email") -> str:
    """A pragmatic RFC 5321/5322 check (dot-atom local part, DNS domain), at most 254 characters.
    Returns the address with its domain lower-cased; raises InvalidParam naming the field."""
    if value is None or value == "":
        raise InvalidParam(f"{field} is required.", field=field)
    if not isinstance(value, str):
        raise InvalidParam(f"{field} must be a string.", field=field)
    text = value.strip()
    if len(text) > MAX_EMAIL:
        raise InvalidParam(f"{field} is longer than {MAX_EMAIL} characters.", field=field)
    match = _EMAIL.fullmatch(text)
    if match is None or len(match["local"]) > MAX_LOCAL_PART:
        raise InvalidParam(f"{field} is not a valid email address.", field=field)
    return f"{match['local']}@{match['domain'].lower()}"


def _optional_text(value: Any, field: str, max_length: int) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidParam(f"{field} must be a string.", field=field)
    text = value.strip()
    if len(text) > max_length:
        raise InvalidParam(f"{field} is longer than {max_length} characters.", field=field)
    if _CONTROL.search(text):
        raise InvalidParam(f"{field} must not contain control characters.", field=field)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidParam(f"{field} is not valid UTF-8 text.", field=field) from exc
    return text


def validate_person_name(value: Any, field: str) -> str:
    """first_name / last_name: an optional string of at most 100 characters."""
    return _optional_text(value, field, MAX_PERSON_NAME)


def validate_login(value: Any, field: str = "user_login") -> str:
    """An optional login: 1-60 of letters, digits and . _ @ -; "" when not given."""
    text = _optional_text(value, field, MAX_LOGIN)
    if text and not _LOGIN.fullmatch(text):
        raise InvalidParam(f"{field} may contain only letters, digits and . _ @ -.", field=field)
    return text


def validate_password(value: Any, field: str = "user_pass") -> str:
    """An optional password (never echoed back in messages); "" when not given."""
    if value is None or value == "":
        return ""
    if not isinstance(value, str):
        raise InvalidParam(f"{field} must be a string.", field=field)
    if len(value) > MAX_PASSWORD:
        raise InvalidParam(f"{field} is longer than {MAX_PASSWORD} characters.", field=field)
    return value


def validate_group_name(value: Any, field: str = "name") -> str:
    text = _optional_text(value, field, MAX_GROUP_NAME)
    if not text:
        raise InvalidParam(f"{field} is required.", field=field)
    return text


def validate_slug(value: Any, field: str = "slug") -> str:
    if not isinstance(value, str) or not value:
        raise InvalidParam(f"{field} must be a non-empty string.", field=field)
    if len(value) > MAX_SLUG or not _SLUG.fullmatch(value):
        raise InvalidParam(
            f"{field} must be lower-case letters and digits separated by single hyphens "
            f"(at most {MAX_SLUG} characters).",
            field=field,
        )
    return value


def slugify(name: str) -> str:
    """ "Premium Members!" -> "premium-members" ("" when nothing usable is left)."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")
    return slug[:MAX_SLUG].rstrip("-")


# -- passwords --------------------------------------------------------------------------------


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def hash_password(password: str) -> str:
    """``scrypt$N$r$p$<salt>$<hash>`` with a random 16-byte salt."""
    n, r, p = SCRYPT_PARAMS
    salt = secrets.token_bytes(16)
    derived = hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=_SCRYPT_MAXMEM, dklen=32
    )
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(derived)}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, expected = stored.split("$")
        if scheme != "scrypt":
            return False
        derived = hashlib.scrypt(
            password.encode("utf-8"),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=_SCRYPT_MAXMEM,
            dklen=32,
        )
    except ValueError:
        return False
    return hmac.compare_digest(derived, base64.b64decode(expected))


def random_password() -> str:
    return secrets.token_urlsafe(24)


# -- views ------------------------------------------------------------------------------------


def user_view(user: User) -> dict[str, Any]:
    """A user as the API and event payloads show it (never the password hash)."""
    return user.model_dump(exclude={"password_hash", "community_id"})


def group_view(group: Group) -> dict[str, Any]:
    return group.model_dump(exclude={"community_id"})


def group_ref(group: Group) -> dict[str, str]:
    return {"id": group.id, "name": group.name, "slug": group.slug}


def _login_base(email: str) -> str:
    local = email.split("@", 1)[0].lower()
    base = re.sub(r"[^a-z0-9._-]+", "", local).strip("._-")
    return base[: MAX_LOGIN - 8] or "user"


# -- the service ------------------------------------------------------------------------------


@dataclass
class Directory:
    """One community's directory. `actor` and `source` go into every event it publishes."""

    repo: DirectoryRepository
    events: EventRepository
    community: Community
    actor: dict[str, Any] | None = None
    source: str = "api"
    retention_days: int = 7

    @classmethod
    def open(
        cls,
        tables: Tables,
        community_id: str,
        *,
        actor: dict[str, Any] | None = None,
        source: str = "api",
        retention_days: int = 7,
    ) -> Directory:
        """The directory of an existing community (NotFound otherwise)."""
        community = CommunityRepository(tables.communities).get(community_id)
        return cls(
            DirectoryRepository(tables.directory),
            EventRepository(tables.events),
            community,
            actor=actor,
            source=source,
            retention_days=retention_days,
        )

    @property
    def community_id(self) -> str:
        return self.community.id

    def _publish(self, event_type: str, data: dict[str, Any]) -> None:
        publish(
            self.events,
            self.community,
            event_type,
            {**data, "source": self.source},
            actor=self.actor,
            retention_days=self.retention_days,
        )

    # -- users ----------------------------------------------------------------------------

    def find_by_email(self, email: str) -> User | None:
        user_id = self.repo.user_id_by_email(self.community_id, email)
        if user_id is None:
            return None
        user = self.repo.get_user(self.community_id, user_id)
        if user is None:
            # A lookup left behind by an interrupted registration: free the address.
            self.repo.release_email(self.community_id, email, user_id)
        return user

    def get_user(self, user_id: str) -> User:
        user = self.repo.get_user(self.community_id, user_id)
        if user is None:
            raise NotFound("Member not found.")
        return user

    def user_page(self, *, limit: int, cursor: str | None) -> tuple[list[User], str | None]:
        return self.repo.user_page(self.community_id, limit=limit, cursor=cursor)

    def _claim_login(self, requested: str, email: str, user_id: str) -> str:
        if requested:
            if self.repo.reserve_login(self.community_id, requested, user_id):
                return requested
            raise InvalidParam(f"user_login {requested!r} is already taken.", field="user_login")
        base = _login_base(email)
        candidates = [base, *(f"{base}{n}" for n in range(1, 20))]
        for candidate in candidates:
            if self.repo.reserve_login(self.community_id, candidate, user_id):
                return candidate
        while True:
            candidate = f"{base}{secrets.token_hex(3)}"
            if self.repo.reserve_login(self.community_id, candidate, user_id):
                return candidate

    def register(
        self,
        email: str,
        *,
        user_login: str = "",
        first_name: str = "",
        last_name: str = "",
        password: str = "",
    ) -> tuple[User, bool]:
        """The user with this (validated) email, created when missing: (user, created).

        A missing login is made from the email's local part (unique within the community), a
        missing password is random. Publishes user.registered and member.joined for a new user
        (the account, and its joining the community: the names peers and subscribers use).
        """
        existing = self.find_by_email(email)
        if existing is not None:
            return existing, False
        now = clock.now_iso()
        user_id = ids.new_id("usr")
        try:
            login = self._claim_login(user_login, email, user_id)
        except InvalidParam:
            # The same request running concurrently may have just created this very user.
            existing = self.find_by_email(email)
            if existing is not None:
                return existing, False
            raise
        user = User(
            id=user_id,
            community_id=self.community_id,
            email=email,
            user_login=login,
            first_name=first_name,
            last_name=last_name,
            password_hash=hash_password(password or random_password()),
            created_at=now,
            updated_at=now,
        )
        self.repo.put_user(user)
        if not self.repo.reserve_email(self.community_id, email, user_id):
            # Lost the race for this address: undo ours and use the winner's user.
            self.repo.delete_user(self.community_id, user_id)
            self.repo.release_login(self.community_id, login, user_id)
            existing = self.find_by_email(email)
            if existing is None:
                raise Conflict("The user is being changed by another request; try again.")
            return existing, False
        self._publish("user.registered", {"user": user_view(user)})
        self._publish("member.joined", {"user": user_view(user)})
        return user, True

    def member_detail(self, user: User) -> dict[str, Any]:
        """A user with the spaces and courses they belong to."""
        view = user_view(user)
        for kind, key in _LISTS:
            memberships = self.repo.memberships_of(kind, self.community_id, user.id)
            groups = self.repo.groups(kind, self.community_id, [m.group_id for m in memberships])
            view[key] = [
                {**group_ref(groups[m.group_id]), "joined_at": m.joined_at}
                for m in memberships
                if m.group_id in groups
            ]
        return view

    # -- spaces and courses ---------------------------------------------------------------

    def get_group(self, kind: GroupKind, group_id: str) -> Group:
        group = self.repo.get_group(kind, self.community_id, group_id)
        if group is None:
            raise NotFound(f"{kind.capitalize()} not found.")
        return group

    def group_page(
        self, kind: GroupKind, *, limit: int, cursor: str | None
    ) -> tuple[list[Group], str | None]:
        return self.repo.group_page(kind, self.community_id, limit=limit, cursor=cursor)

    def groups(self, kind: GroupKind, group_ids: list[str]) -> dict[str, Group]:
        return self.repo.groups(kind, self.community_id, group_ids) if group_ids else {}

    def missing(self, kind: GroupKind, group_ids: list[str]) -> list[str]:
        """The ids among group_ids that name no existing space (or course)."""
        found = self.groups(kind, group_ids)
        return [gid for gid in dict.fromkeys(group_ids) if gid not in found]

    def _claim_slug(self, kind: GroupKind, requested: str | None, name: str, group_id: str) -> str:
        if requested is not None:
            slug = validate_slug(requested)
            if not self.repo.reserve_slug(kind, self.community_id, slug, group_id):
                raise Conflict(f"slug {slug!r} is already used by another {kind}.", field="slug")
            return slug
        base = slugify(name) or kind
        for n in range(1, 50):
            slug = base if n == 1 else f"{base[: MAX_SLUG - 4]}-{n}"
            if self.repo.reserve_slug(kind, self.community_id, slug, group_id):
                return slug
        slug = f"{base[: MAX_SLUG - 7]}-{secrets.token_hex(3)}"
        if not self.repo.reserve_slug(kind, self.community_id, slug, group_id):
            raise Conflict(f"Could not find a free slug for this {kind}.", field="slug")
        return slug

    def create_group(
        self, kind: GroupKind, *, name: Any, slug: str | None = None, description: Any = ""
    ) -> Group:
        clean_name = validate_group_name(name)
        clean_description = _optional_text(description, "description", MAX_DESCRIPTION)
        group_id = ids.new_id("sp" if kind == "space" else "crs")
        claimed = self._claim_slug(kind, slug, clean_name, group_id)
        now = clock.now_iso()
        group = KINDS[kind].model(
            id=group_id,
            community_id=self.community_id,
            name=clean_name,
            slug=claimed,
            description=clean_description,
            created_at=now,
            updated_at=now,
        )
        self.repo.put_group(kind, group, new=True)
        created_event = _EVENTS[kind][2]
        if created_event:
            self._publish(created_event, {kind: group_view(group)})
        return group

    def update_group(
        self,
        kind: GroupKind,
        group_id: str,
        *,
        name: Any = None,
        slug: str | None = None,
        description: Any = None,
    ) -> Group:
        current = self.get_group(kind, group_id)
        changes: dict[str, Any] = {}
        if name is not None:
            changes["name"] = validate_group_name(name)
        if description is not None:
            changes["description"] = _optional_text(description, "description", MAX_DESCRIPTION)
        new_slug = validate_slug(slug) if slug is not None else None
        if new_slug is not None and new_slug != current.slug:
            if not self.repo.reserve_slug(kind, self.community_id, new_slug, group_id):
                raise Conflict(
                    f"slug {new_slug!r} is already used by another {kind}.", field="slug"
                )
            changes["slug"] = new_slug
        if not changes:
            return current
        changes["updated_at"] = clock.now_iso()
        try:
            updated = self.repo.update_group(kind, self.community_id, group_id, changes)
        except ConditionFailed as exc:
            if "slug" in changes:
                self.repo.release_slug(kind, self.community_id, changes["slug"], group_id)
            raise NotFound(f"{kind.capitalize()} not found.") from exc
        if "slug" in changes:
            self.repo.release_slug(kind, self.community_id, current.slug, group_id)
        updated_event = _EVENTS[kind][3]
        if updated_event:
            self._publish(updated_event, {kind: group_view(updated)})
        return updated

    def delete_group(self, kind: GroupKind, group_id: str) -> Group:
        """Delete a space (or course) and every membership in it."""
        group = self.get_group(kind, group_id)
        cursor: str | None = None
        while True:
            memberships, cursor = self.repo.member_page(
                kind, self.community_id, group_id, limit=100, cursor=cursor
            )
            for membership in memberships:
                self.repo.remove_member(kind, self.community_id, group_id, membership.user_id)
            if cursor is None:
                break
        self.repo.delete_group(kind, self.community_id, group_id)
        self.repo.release_slug(kind, self.community_id, group.slug, group_id)
        deleted_event = _EVENTS[kind][4]
        if deleted_event:
            self._publish(deleted_event, {kind: group_view(group)})
        return group

    def member_page(
        self, kind: GroupKind, group_id: str, *, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Members of a space (or course): each user's view with its joined_at."""
        memberships, next_cursor = self.repo.member_page(
            kind, self.community_id, group_id, limit=limit, cursor=cursor
        )
        users = self.repo.users(self.community_id, [m.user_id for m in memberships])
        rows = [
            {**user_view(users[m.user_id]), "joined_at": m.joined_at}
            for m in memberships
            if m.user_id in users
        ]
        return rows, next_cursor

    # -- memberships ----------------------------------------------------------------------

    def join(self, kind: GroupKind, group: Group, user: User) -> bool:
        """Add the user to the group; False (and no event) when already a member."""
        membership = Membership(
            community_id=self.community_id,
            user_id=user.id,
            group_id=group.id,
            kind=kind,
            joined_at=clock.now_iso(),
        )
        if not self.repo.add_member(membership):
            return False
        self._publish(_EVENTS[kind][0], {kind: group_ref(group), "user": user_view(user)})
        return True

    def leave(self, kind: GroupKind, group: Group, user: User) -> bool:
        """Remove the user from the group; False (and no event) when not a member."""
        if not self.repo.remove_member(kind, self.community_id, group.id, user.id):
            return False
        self._publish(_EVENTS[kind][1], {kind: group_ref(group), "user": user_view(user)})
        return True
