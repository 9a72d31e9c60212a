"""Communities, their API keys, and who a caller is."""

from __future__ import annotations

import base64
import hmac
from dataclasses import dataclass
from typing import Literal

from hookline import clock, ids
from hookline.domain.models import ApiKey, Community
from hookline.domain.repositories import CommunityRepository
from hookline.errors import Forbidden, InvalidUrl, NotFound, Unauthorized

Role = Literal["operator", "admin", "portal"]


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


def check_site_url(site_url: str) -> str:
    if not site_url.startswith(("https://", "http://")) or len(site_url) > 2048:
        raise InvalidUrl("site_url must be an absolute http(s) URL.", field="site_url")
    return site_url


def issue_key(repo: CommunityRepository, community_id: str, name: str) -> tuple[ApiKey, str]:
    """A new admin key for the community. The plaintext is returned once and never stored."""
    plaintext = ids.new_api_key()
    key = ApiKey(
        id=ids.new_id("key"),
        community_id=community_id,
        name=name,
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


def ensure_key_active(repo: CommunityRepository, principal: Principal) -> None:
    """Re-check an admin key per request: revocation is immediate despite authorizer caching."""
    if principal.role == "operator":
        return
    try:
        key = repo.get_key(principal.community_id, principal.key_id)
    except NotFound as exc:
        raise Unauthorized("Invalid or revoked API key.") from exc
    if key.revoked_at:
        raise Unauthorized("Invalid or revoked API key.")


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
