"""Portal sessions: the short-lived, single-community credential of the browser portal.

A community platform asks for one with an admin key and sends its admin to the session's URL.
The token is not an API key: it works only on its own community's portal routes (never on an
operator route, never on API keys or other portal sessions), only until it expires, and a
read-only session may only read.
"""

from __future__ import annotations

import hmac
from datetime import timedelta

from hookline import clock, ids
from hookline.domain.communities import Principal
from hookline.domain.models import Record
from hookline.domain.repositories import community_pk
from hookline.errors import Forbidden, NotFound, Unauthorized
from hookline.ports import Table

TOKEN_PREFIX = "hlp_"
DEFAULT_EXPIRES_IN = 3600
MAX_EXPIRES_IN = 86400

#: Community resources (the path segment after /v1/communities/{id}/) the portal may use, and
#: whether it may change them. Anything else, API keys and portal sessions included, is refused.
_RESOURCES: dict[str, bool] = {
    "webhooks": True,
    "deliveries": True,
    "spaces": True,
    "courses": True,
    "incoming-webhooks": True,
    "events": False,
    "event-types": False,
    "members": False,
}
_READ_METHODS = frozenset({"GET", "HEAD"})


class PortalSession(Record):
    id: str
    community_id: str
    read_only: bool = False
    created_at: str
    expires_at: str
    created_by: str = ""
    token_hash: str


class PortalSessionRepository:
    """Sessions live beside the community's keys (`C#<cid>`/`PS#<sid>`, removed with the
    community) with a token lookup item (`PSHASH#<sha256>`/`PS`); both expire by TTL."""

    def __init__(self, table: Table) -> None:
        self.table = table

    def add(self, session: PortalSession) -> None:
        record = session.model_dump()
        ttl = clock.epoch_seconds(clock.parse_iso(session.expires_at))
        pk = community_pk(session.community_id)
        self.table.put({"pk": pk, "sk": f"PS#{session.id}", "expires_at": ttl, **_rename(record)})
        self.table.put(
            {
                "pk": f"PSHASH#{session.token_hash}",
                "sk": "PS",
                "expires_at": ttl,
                **_rename(record),
            },
            if_absent=True,
        )

    def by_token_hash(self, token_hash: str) -> PortalSession | None:
        item = self.table.get(f"PSHASH#{token_hash}", "PS")
        return _session(item) if item else None

    def get(self, community_id: str, session_id: str) -> PortalSession:
        item = self.table.get(community_pk(community_id), f"PS#{session_id}")
        if item is None:
            raise NotFound("Portal session not found.")
        return _session(item)


def _rename(record: dict[str, object]) -> dict[str, object]:
    # `expires_at` is the table's TTL attribute (epoch seconds); the ISO time is stored beside it.
    renamed = dict(record)
    renamed["session_expires_at"] = renamed.pop("expires_at")
    return renamed


def _session(item: dict[str, object]) -> PortalSession:
    fields = {k: v for k, v in item.items() if k not in ("pk", "sk", "expires_at")}
    fields["expires_at"] = fields.pop("session_expires_at")
    return PortalSession.model_validate(fields)


def is_portal_token(presented: str) -> bool:
    return presented.startswith(TOKEN_PREFIX)


def create_session(
    repo: PortalSessionRepository,
    community_id: str,
    *,
    expires_in: int,
    read_only: bool,
    created_by: str,
) -> tuple[PortalSession, str]:
    """A new session; its token is returned once (only its digest is stored)."""
    token = TOKEN_PREFIX + ids.new_token()
    now = clock.now()
    session = PortalSession(
        id=ids.new_id("ps"),
        community_id=community_id,
        read_only=read_only,
        created_at=clock.iso(now),
        expires_at=clock.iso(now + timedelta(seconds=expires_in)),
        created_by=created_by,
        token_hash=ids.digest(token),
    )
    repo.add(session)
    return session, token


def _expired(session: PortalSession) -> bool:
    return clock.parse_iso(session.expires_at) <= clock.now()


def authenticate(repo: PortalSessionRepository, token: str) -> Principal:
    """The caller a portal token stands for (the authorizer's answer)."""
    session = repo.by_token_hash(ids.digest(token))
    if session is None or _expired(session):
        raise Unauthorized("This portal link has expired or is not valid.")
    return Principal(role="portal", key_id=session.id, community_id=session.community_id)


def active_session(repo: PortalSessionRepository, caller: Principal) -> PortalSession:
    """The caller's session, re-read per request: expiry is exact despite authorizer caching."""
    try:
        session = repo.get(caller.community_id, caller.key_id)
    except NotFound as exc:
        raise Unauthorized("This portal link has expired or is not valid.") from exc
    if _expired(session) or not hmac.compare_digest(session.community_id, caller.community_id):
        raise Unauthorized("This portal link has expired or is not valid.")
    return session


def check_request(session: PortalSession, method: str, path: str) -> None:
    """Refuse what a portal session may not do: routes outside the portal, and any change
    through a read-only session."""
    parts = path.strip("/").split("/")
    reading = method.upper() in _READ_METHODS
    if parts[:2] == ["v1", "event-types"] and reading:
        return  # the event-type catalog
    if parts[:2] != ["v1", "communities"] or len(parts) < 3:
        raise Forbidden("A portal session cannot use this route.")
    if len(parts) == 3:
        if reading:
            return  # the community itself, read only
        raise Forbidden("A portal session cannot use this route.")
    resource = parts[3]
    if resource not in _RESOURCES:
        raise Forbidden("A portal session cannot use this route.")
    if not reading and (session.read_only or not _RESOURCES[resource]):
        raise Forbidden("This portal session is read-only.")


def session_view(session: PortalSession) -> dict[str, object]:
    return session.model_dump(exclude={"token_hash"})
