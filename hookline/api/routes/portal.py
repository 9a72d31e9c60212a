"""Portal sessions: links that open the browser portal (served under /portal/) for one community."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

from hookline.api.context import community_access, principal, public_base_url
from hookline.domain import portal
from hookline.domain.repositories import CommunityRepository
from hookline.errors import Forbidden
from hookline.wiring import services

router = Router()


class PortalSessionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    expires_in: StrictInt = Field(
        default=portal.DEFAULT_EXPIRES_IN,
        ge=1,
        le=portal.MAX_EXPIRES_IN,
        description="Seconds until the link stops working.",
        examples=[3600],
    )
    read_only: StrictBool = Field(
        default=False, description="The portal shows everything and changes nothing."
    )


def _repo() -> portal.PortalSessionRepository:
    return portal.PortalSessionRepository(services().tables.communities)


@router.post(
    "/v1/communities/<community_id>/portal-sessions",
    summary="Open the portal for this community's admin: a link that expires (admin key)",
)
def create_portal_session(
    community_id: str, body: Annotated[PortalSessionCreate | None, Body()] = None
) -> tuple[dict[str, Any], int]:
    caller = community_access(router, community_id)
    CommunityRepository(services().tables.communities).get(community_id)
    fields = body or PortalSessionCreate()
    session, token = portal.create_session(
        _repo(),
        community_id,
        expires_in=fields.expires_in,
        read_only=fields.read_only,
        created_by=caller.key_id,
    )
    # The token travels in the fragment, which browsers never send: it reaches no access log.
    base = public_base_url(router.current_event.raw_event)
    url = f"{base}/portal/#community={community_id}&token={token}"
    return {
        "url": url,
        "expires_at": session.expires_at,
        "id": session.id,
        "read_only": session.read_only,
    }, 201


@router.get(
    "/v1/communities/<community_id>/portal-sessions/current",
    summary="The portal session making the request (portal token only)",
)
def current_portal_session(community_id: str) -> dict[str, Any]:
    caller = principal(router)
    if caller.role != "portal":
        community_access(router, community_id)  # a revoked key is a 401 here too
        raise Forbidden("Only a portal session can read itself.")
    caller.require_community(community_id)
    return portal.session_view(portal.active_session(_repo(), caller))
