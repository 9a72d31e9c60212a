"""Per-request access to the caller and the services, for route functions."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler.api_gateway import Router

from hookline.domain import portal
from hookline.domain.communities import Principal, ensure_key_active
from hookline.domain.repositories import CommunityRepository
from hookline.errors import Unauthorized
from hookline.wiring import services


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


def community_access(router: Router, community_id: str) -> Principal:
    """The caller, checked against the community in the path (403 for another community's key)."""
    caller = principal(router)
    caller.require_community(community_id)
    table = services().tables.communities
    if caller.role == "portal":
        session = portal.active_session(portal.PortalSessionRepository(table), caller)
        event = router.current_event
        portal.check_request(session, event.http_method, event.path)
    else:
        ensure_key_active(CommunityRepository(table), caller)
    return caller


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
