"""Per-request access to the caller and the services, for route functions.

The one place a route checks who is calling: ``community_access`` for community routes,
``operator`` for operator routes and ``caller`` for the others. All of them re-check the key on
every request (revocation and community deletion take effect at once, whatever the authorizer
cached), enforce the key's scopes and record its use.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler.api_gateway import Router

from hookline.domain import portal
from hookline.domain.communities import Principal, ensure_key_active, record_use, require_scope
from hookline.domain.models import Scope
from hookline.domain.repositories import CommunityRepository
from hookline.errors import Unauthorized
from hookline.wiring import services

_READ_METHODS = frozenset({"GET", "HEAD"})


def principal(router: Router) -> Principal:
    """The caller, from the authorizer's context (API Gateway passes it in requestContext)."""
    context: dict[str, Any] = (
        router.current_event.raw_event.get("requestContext", {}).get("authorizer") or {}
    )
    role = context.get("role")
    if role not in ("operator", "admin", "portal"):
        raise Unauthorized("Missing or invalid API key.")
    return Principal(
        role=role,
        key_id=str(context.get("principalId") or context.get("key_id")),
        community_id=str(context.get("community_id") or ""),
    )


def _required_scope(router: Router, scope: Scope | None) -> Scope:
    if scope is not None:
        return scope
    return "read" if router.current_event.http_method.upper() in _READ_METHODS else "admin"


def _checked(router: Router, caller: Principal, scope: Scope | None) -> Principal:
    table = services().tables.communities
    if caller.role == "portal":
        # A portal session is checked against its own record (expiry, read-only), not as a key.
        session = portal.active_session(portal.PortalSessionRepository(table), caller)
        event = router.current_event
        portal.check_request(session, event.http_method, event.path)
        return caller
    repo = CommunityRepository(table)
    key = ensure_key_active(repo, caller)
    require_scope(key, _required_scope(router, scope))
    if key is not None:
        record_use(repo, key)
    return caller


def caller(router: Router, scope: Scope | None = None) -> Principal:
    """Any valid key, re-checked, for routes outside a community (``/v1/event-types``).
    ``scope`` defaults to ``read`` for GET and ``admin`` otherwise."""
    return _checked(router, principal(router), scope)


def operator(router: Router) -> Principal:
    """The operator (403 for any community key; 401 for a revoked one, as on every route)."""
    found = caller(router)
    found.require_operator()
    return found


def community_access(router: Router, community_id: str, scope: Scope | None = None) -> Principal:
    """The caller, checked against the community in the path (403 for another community's key)
    and against ``scope`` (default: ``read`` for GET, ``admin`` otherwise)."""
    found = principal(router)
    found.require_community(community_id)
    return _checked(router, found, scope)


def public_base_url(event: dict[str, Any]) -> str:
    """The public base URL of the API a request came through: API Gateway's domain and stage
    (``https://<api>.execute-api.<region>.amazonaws.com/<stage>``), or the local stack's host
    (which also sets requestContext.domainName, and X-Forwarded-Proto)."""
    context = event.get("requestContext") or {}
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    host = context.get("domainName") or headers.get("host") or "localhost"
    proto = headers.get("x-forwarded-proto", "https").split(",")[0].strip().lower()
    if proto not in ("http", "https"):
        proto = "https"
    full_path = str(context.get("path") or "")
    path = str(event.get("path") or "")
    if path and full_path.endswith(path):
        prefix = full_path[: len(full_path) - len(path)]
    else:
        prefix = f"/{context['stage']}" if context.get("stage") else ""
    return f"{proto}://{host}{prefix.rstrip('/')}"
