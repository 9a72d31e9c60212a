"""The dispatcher's subscription index: the same answers as catalog.matches, cached per community
and rebuilt exactly when a webhook's subscription changed."""

from __future__ import annotations

import itertools

from hookline import catalog, clock
from hookline.domain.models import Webhook
from hookline.domain.repositories import WebhookRepository
from hookline.domain.subscriptions import SubscriptionCache, SubscriptionIndex
from hookline_dev.memory import MemoryTables
from tests.delivery_helpers import CountingTable

PATTERNS = ["*", "post.*", "post.created", "post.comment.*", "member.joined", "space.*"]
EVENTS = ["post.created", "post.updated", "post.comment.created", "member.joined", "course.done"]


def _webhook(n: int, events: list[str], status: str = "active") -> Webhook:
    now = clock.now_iso()
    return Webhook(
        id=f"wh_{n:03d}",
        community_id="com_1",
        url="https://127.0.0.1/h",
        events=events,
        status=status,  # type: ignore[arg-type]
        created_at=now,
        updated_at=now,
    )


def test_the_index_answers_as_catalog_matches_does() -> None:
    hooks = [
        _webhook(i, list(combo), status="inactive" if i % 7 == 3 else "active")
        for i, combo in enumerate(c for r in (1, 2) for c in itertools.combinations(PATTERNS, r))
    ]
    index = SubscriptionIndex.of(hooks)
    for event in EVENTS:
        expected = [w.id for w in hooks if w.is_active and catalog.matches(w.events, event)]
        assert [w.id for w in index.matching(event)] == sorted(expected), event


def test_the_cache_rebuilds_only_when_a_subscription_changed() -> None:
    table = CountingTable(MemoryTables().webhooks)
    repo = WebhookRepository(table)  # type: ignore[arg-type]
    cache = SubscriptionCache()
    hook = _webhook(1, ["post.*"])
    repo.put(hook, new=True)

    def queries() -> int:
        return sum(table.queries.values())

    assert [w.id for w in cache.index(repo, "com_1").matching("post.created")] == [hook.id]
    before = queries()
    for _ in range(5):
        cache.index(repo, "com_1")
    assert queries() == before  # five batches: one version read each, no webhook query

    # Health fields written by deliveries do not touch the subscription.
    repo.update("com_1", hook.id, {"last_triggered_at": clock.now_iso()})
    cache.index(repo, "com_1")
    assert queries() == before

    repo.update("com_1", hook.id, {"events": ["member.*"]})
    assert cache.index(repo, "com_1").matching("post.created") == []
    assert [w.id for w in cache.index(repo, "com_1").matching("member.joined")] == [hook.id]
    repo.update("com_1", hook.id, {"status": "inactive"})
    assert cache.index(repo, "com_1").matching("member.joined") == []
    repo.put(_webhook(2, ["*"]), new=True)
    assert [w.id for w in cache.index(repo, "com_1").matching("x.y")] == ["wh_002"]
    repo.delete("com_1", "wh_002")
    assert cache.index(repo, "com_1").matching("x.y") == []
