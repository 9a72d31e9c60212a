"""Per-request access to the caller and the services, for route functions."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler.api_gateway import Router

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
    if role not in ("operator", "admin"):
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
    ensure_key_active(CommunityRepository(services().tables.communities), caller)
    return caller
