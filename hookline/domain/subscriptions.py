"""Which active webhooks subscribe to an event type, without reading every webhook per batch.

Each community's active webhooks are indexed by their patterns (exact type, ``prefix.*``, ``*``)
and the index is kept in process. Every change to a webhook's subscription bumps the community's
subscription version (WebhookRepository does it); the dispatcher reads that one small item per
community per batch and rebuilds the index only when it moved. The cost of a batch then grows
with the webhooks an event reaches, not with those it does not.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass, field

from hookline.domain.models import Webhook
from hookline.domain.repositories import WebhookRepository
from hookline.ports import Table


@dataclass(frozen=True)
class SubscriptionIndex:
    exact: dict[str, list[Webhook]] = field(default_factory=dict)
    prefixes: dict[str, list[Webhook]] = field(default_factory=dict)  # "post." for "post.*"
    everything: list[Webhook] = field(default_factory=list)

    @classmethod
    def of(cls, webhooks: list[Webhook]) -> SubscriptionIndex:
        index = cls()
        for webhook in webhooks:
            if not webhook.is_active:
                continue
            for pattern in dict.fromkeys(webhook.events):  # a pattern listed twice counts once
                if pattern == "*":
                    index.everything.append(webhook)
                elif pattern.endswith(".*"):
                    index.prefixes.setdefault(pattern[:-1], []).append(webhook)
                else:
                    index.exact.setdefault(pattern, []).append(webhook)
        return index

    def matching(self, event: str) -> list[Webhook]:
        """The subscribed webhooks, each once, in a stable order (catalog.matches' semantics)."""
        found: dict[str, Webhook] = {w.id: w for w in self.everything}
        found.update((w.id, w) for w in self.exact.get(event, []))
        parts = event.split(".")
        for depth in range(1, len(parts)):
            prefix = ".".join(parts[:depth]) + "."
            found.update((w.id, w) for w in self.prefixes.get(prefix, []))
        return sorted(found.values(), key=lambda w: w.id)


class SubscriptionCache:
    """Per table and community: the subscription index and the version it was built at."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_table: weakref.WeakKeyDictionary[Table, dict[str, tuple[int, SubscriptionIndex]]]
        self._by_table = weakref.WeakKeyDictionary()

    def index(self, webhooks: WebhookRepository, community_id: str) -> SubscriptionIndex:
        version = webhooks.subscription_version(community_id)
        with self._lock:
            cached = self._by_table.setdefault(webhooks.table, {}).get(community_id)
        if cached is not None and cached[0] == version:
            return cached[1]
        built = SubscriptionIndex.of(webhooks.all(community_id))
        with self._lock:
            self._by_table.setdefault(webhooks.table, {})[community_id] = (version, built)
        return built


#: The process-wide cache (a Lambda instance keeps it between invocations).
cache = SubscriptionCache()
