"""Removing a community and everything of it (the operator's DELETE /v1/communities/{id}).

The order matters: the credentials go first, so the community's API keys and incoming-webhook
URLs stop at once (the API re-checks keys on every request, and the authorizer finds no key
hash); then its webhooks, whose deletion cancels their pending retries (a retry step that finds
its webhook gone cancels the delivery without an attempt); then its data.

What remains: log lines in CloudWatch Logs.
"""

from __future__ import annotations

from dataclasses import dataclass

from hookline import clock
from hookline.domain.delivery_repository import DeliveryRepository
from hookline.domain.directory_repository import DirectoryRepository
from hookline.domain.incoming_repository import IncomingRepository
from hookline.domain.repositories import (
    CommunityRepository,
    WebhookRepository,
    community_pk,
    drop_partition,
)
from hookline.observability import logger
from hookline.ports import Tables


@dataclass(frozen=True)
class Removed:
    api_keys: int
    incoming_webhooks: int
    webhooks: int
    records: int


def delete_community(tables: Tables, community_id: str) -> Removed:
    """Delete the community (NotFound when there is none) and what belongs to it."""
    communities = CommunityRepository(tables.communities)
    communities.get(community_id)

    keys = communities.list_keys(community_id)
    now = clock.now_iso()
    for key in keys:
        communities.revoke_key(key, now)
    incoming = IncomingRepository(tables.communities)
    hooks = []
    cursor: str | None = None
    while True:
        batch, cursor = incoming.page(community_id, limit=200, cursor=cursor)
        hooks.extend(batch)
        if cursor is None:
            break
    records = 0
    for hook in hooks:
        incoming.delete(hook)
        records += drop_partition(tables.communities, f"INLOG#{hook.id}")

    webhooks = WebhookRepository(tables.webhooks)
    subscribed = webhooks.all(community_id)
    for webhook in subscribed:
        webhooks.delete(community_id, webhook.id)
    # What is left of the partition: its subscription version (no webhook remains to version).
    records += drop_partition(tables.webhooks, community_pk(community_id))

    records += drop_partition(tables.events, community_pk(community_id))
    records += DeliveryRepository(tables.deliveries).drop_community(community_id)
    records += DirectoryRepository(tables.directory).purge(community_id)
    records += drop_partition(tables.communities, community_pk(community_id))
    communities.delete(community_id)
    removed = Removed(len(keys), len(hooks), len(subscribed), records)
    logger.info("community deleted", extra={"community_id": community_id, **removed.__dict__})
    return removed
