"""Communities, their API keys, and who a caller is."""

from __future__ import annotations

import base64
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from hookline import clock, ids
from hookline.domain.models import ApiKey, Community, Scope
from hookline.domain.repositories import CommunityRepository
from hookline.errors import Forbidden, InvalidParam, InvalidUrl, NotFound, Unauthorized

SCOPES: tuple[Scope, ...] = ("admin", "publish", "read")

Role = Literal["operator", "admin", "portal"]
#: last_used_at is written at most once per this interval per key.
LAST_USED_INTERVAL = timedelta(minutes=1)


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: the operator (all communities), one community's admin key, or
    a portal session of one community (hookline.domain.portal)."""

    role: Role
    key_id: str
    community_id: str = ""

    def require_operator(self) -> None:
        if self.role != "operator":
            raise Forbidden("Only the operator key can do this.")

    def require_community(self, community_id: str) -> None:
        if self.role == "operator":
            return
        if not hmac.compare_digest(self.community_id, community_id):
            raise Forbidden("Sorry, this key does not belong to that community.")


def require_scope(key: ApiKey | None, scope: Scope) -> None:
    """403 unless the key (None: the operator) may act in ``scope``; ``admin`` covers all."""
    if key is None or "admin" in key.scopes or scope in key.scopes:
        return
    raise Forbidden(
        f"This API key's scopes ({', '.join(key.scopes)}) do not allow this; it needs {scope}."
    )


def check_scopes(scopes: Sequence[str] | None) -> list[Scope]:
    """The scopes of a new key: ``admin`` when none are given, each at most once."""
    if scopes is None:
        return ["admin"]
    if not scopes:
        raise InvalidParam("scopes must list at least one of admin, publish, read.", field="scopes")
    unknown = sorted({s for s in scopes if s not in SCOPES})
    if unknown:
        raise InvalidParam(
            f"Unknown scopes: {', '.join(unknown)}; use admin, publish or read.", field="scopes"
        )
    return [s for s in SCOPES if s in scopes]


def check_site_url(site_url: str) -> str:
    if not site_url.startswith(("https://", "http://")) or len(site_url) > 2048:
        raise InvalidUrl("site_url must be an absolute http(s) URL.", field="site_url")
    return site_url


def issue_key(
    repo: CommunityRepository,
    community_id: str,
    name: str,
    scopes: Sequence[str] | None = None,
) -> tuple[ApiKey, str]:
    """A new key for the community (admin unless ``scopes`` say otherwise). The plaintext is
    returned once and never stored."""
    checked = check_scopes(scopes)
    plaintext = ids.new_api_key()
    key = ApiKey(
        id=ids.new_id("key"),
        community_id=community_id,
        name=name,
        scopes=checked,
        prefix=plaintext[:7],
        key_hash=ids.digest(plaintext),
        created_at=clock.now_iso(),
    )
    repo.add_key(key)
    return key, plaintext


def create_community(
    repo: CommunityRepository, *, name: str, site_url: str
) -> tuple[Community, ApiKey, str]:
    now = clock.now_iso()
    community = Community(
        id=ids.new_id("com"),
        name=name,
        site_url=check_site_url(site_url),
        created_at=now,
        updated_at=now,
    )
    repo.create(community)
    key, plaintext = issue_key(repo, community.id, "admin")
    return community, key, plaintext


def update_community(
    repo: CommunityRepository, community_id: str, *, name: str | None, site_url: str | None
) -> Community:
    changes: dict[str, str] = {}
    if name is not None:
        changes["name"] = name
    if site_url is not None:
        changes["site_url"] = check_site_url(site_url)
    if not changes:
        return repo.get(community_id)
    changes["updated_at"] = clock.now_iso()
    return repo.update(community_id, changes)


def revoke_key(repo: CommunityRepository, community_id: str, key_id: str) -> ApiKey:
    key = repo.get_key(community_id, key_id)
    if key.revoked_at:
        return key
    return repo.revoke_key(key, clock.now_iso())


def authenticate(repo: CommunityRepository, presented: str, operator_key: str) -> Principal:
    """Who holds this key? Raises Unauthorized for anything unknown or revoked."""
    if not presented:
        raise Unauthorized("Missing API key.")
    if operator_key and hmac.compare_digest(presented.encode(), operator_key.encode()):
        return Principal(role="operator", key_id="operator")
    key = repo.key_by_hash(ids.digest(presented))
    if key is None or key.revoked_at:
        raise Unauthorized("Invalid or revoked API key.")
    return Principal(role="admin", key_id=key.id, community_id=key.community_id)


def ensure_key_active(repo: CommunityRepository, principal: Principal) -> ApiKey | None:
    """Re-check a community key per request: revocation (or the community's deletion) is
    immediate despite authorizer caching. The key as stored, or None for the operator."""
    if principal.role == "operator":
        return None
    try:
        key = repo.get_key(principal.community_id, principal.key_id)
    except NotFound as exc:
        raise Unauthorized("Invalid or revoked API key.") from exc
    if key.revoked_at:
        raise Unauthorized("Invalid or revoked API key.")
    return key


def record_use(repo: CommunityRepository, key: ApiKey) -> None:
    """Set ``last_used_at``, at most one write per LAST_USED_INTERVAL. The write is conditional
    on the value read, so concurrent requests of the same minute write once."""
    now = clock.now()
    if key.last_used_at and now - clock.parse_iso(key.last_used_at) < LAST_USED_INTERVAL:
        return
    repo.touch_key(key, clock.iso(now))


def key_from_authorization(header: str | None) -> str:
    """The API key in an Authorization header: `Bearer <key>`, or HTTP Basic with the key as the
    password (`curl -u admin:<key>`, as WordPress-style clients send it)."""
    if not header:
        return ""
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer":
        return value
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return ""
        _, _, password = decoded.partition(":")
        return password
    return ""
