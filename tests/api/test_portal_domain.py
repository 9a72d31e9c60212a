"""hookline.domain.portal over an in-memory table: tokens, expiry, and what a session may do."""

from __future__ import annotations

from datetime import timedelta

import pytest

from hookline import clock, ids
from hookline.domain import portal
from hookline.errors import Forbidden, Unauthorized
from hookline_dev.memory import MemoryTable

BASE = "/v1/communities/com_a"


@pytest.fixture
def repo() -> portal.PortalSessionRepository:
    return portal.PortalSessionRepository(MemoryTable("communities"))


def test_a_token_is_stored_only_as_its_digest(repo: portal.PortalSessionRepository) -> None:
    session, token = portal.create_session(
        repo, "com_a", expires_in=60, read_only=False, created_by="key_1"
    )
    assert portal.is_portal_token(token) and not portal.is_portal_token("hk_" + token[4:])
    lookup = repo.table.get(f"PSHASH#{ids.digest(token)}", "PS")
    record = repo.table.get("C#com_a", f"PS#{session.id}")
    assert lookup is not None and record is not None
    assert token not in repr(lookup) + repr(record)
    assert isinstance(record["expires_at"], int)  # the table's TTL attribute, epoch seconds
    caller = portal.authenticate(repo, token)
    assert (caller.role, caller.community_id, caller.key_id) == ("portal", "com_a", session.id)
    assert portal.active_session(repo, caller) == session
    assert "token_hash" not in portal.session_view(session)


def test_unknown_and_expired_tokens_are_refused(
    repo: portal.PortalSessionRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(Unauthorized):
        portal.authenticate(repo, "hlp_" + ids.new_token())
    _, token = portal.create_session(repo, "com_a", expires_in=60, read_only=False, created_by="")
    caller = portal.authenticate(repo, token)
    later = clock.now() + timedelta(seconds=61)
    monkeypatch.setattr(clock, "now", lambda: later)
    with pytest.raises(Unauthorized):
        portal.authenticate(repo, token)
    with pytest.raises(Unauthorized):
        portal.active_session(repo, caller)


def _session(read_only: bool) -> portal.PortalSession:
    now = clock.now_iso()
    return portal.PortalSession(
        id="ps_1",
        community_id="com_a",
        read_only=read_only,
        created_at=now,
        expires_at=now,
        token_hash="x",
    )


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", BASE),
        ("GET", f"{BASE}/webhooks"),
        ("PATCH", f"{BASE}/webhooks/wh_1"),
        ("POST", f"{BASE}/webhooks/wh_1/test"),
        ("POST", f"{BASE}/webhooks/wh_1/deliveries/d_1/resend"),
        ("POST", f"{BASE}/spaces"),
        ("POST", f"{BASE}/incoming-webhooks/in_1/rotate"),
        ("GET", f"{BASE}/events"),
        ("GET", f"{BASE}/members"),
        ("GET", f"{BASE}/event-types"),
        ("GET", "/v1/event-types"),
        ("GET", "/v1/event-types/post.created"),
    ],
)
def test_what_a_session_may_do(method: str, path: str) -> None:
    portal.check_request(_session(read_only=False), method, path)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PATCH", BASE),
        ("DELETE", BASE),
        ("GET", f"{BASE}/api-keys"),
        ("POST", f"{BASE}/api-keys"),
        ("POST", f"{BASE}/portal-sessions"),
        ("POST", f"{BASE}/events"),
        ("POST", f"{BASE}/event-types"),
        ("GET", "/v1/communities"),
        ("DELETE", "/v1/communities/com_a"),
        ("POST", "/v1/event-types"),
        ("GET", "/v1/other"),
        ("GET", f"{BASE}/something-new"),
    ],
)
def test_what_a_session_may_never_do(method: str, path: str) -> None:
    with pytest.raises(Forbidden):
        portal.check_request(_session(read_only=False), method, path)


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_a_read_only_session_only_reads(method: str) -> None:
    session = _session(read_only=True)
    portal.check_request(session, "GET", f"{BASE}/webhooks/wh_1/logs")
    with pytest.raises(Forbidden, match="read-only"):
        portal.check_request(session, method, f"{BASE}/webhooks/wh_1")
