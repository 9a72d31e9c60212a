"""The event-type catalog and subscription matching."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class EventType:
    name: str
    group: str
    description: str


_CATALOG: tuple[tuple[str, str, str], ...] = (
    ("post.created", "post", "A topic was published."),
    ("post.updated", "post", "A topic was edited."),
    ("post.deleted", "post", "A topic was deleted or trashed."),
    ("reply.created", "reply", "A reply was posted to a topic."),
    ("reply.updated", "reply", "A reply was edited."),
    ("reply.deleted", "reply", "A reply was deleted or trashed."),
    ("vote.cast", "vote", "A member voted on a topic or reply."),
    ("answer.accepted", "answer", "An answer to a question was accepted."),
    ("member.joined", "member", "Someone joined the community."),
    ("member.left", "member", "A member left a space or the community."),
    ("member.banned", "member", "A member was banned."),
    ("user.registered", "user", "A user account was created."),
    ("user.profile_updated", "user", "A user changed their profile."),
    ("user.followed", "user", "A user started following another user."),
    ("user.unfollowed", "user", "A user stopped following another user."),
    ("trust_level.changed", "trust_level", "A member was promoted or demoted."),
    ("flag.created", "flag", "A member flagged content."),
    ("flag.resolved", "flag", "A moderator resolved a flag."),
    ("moderation.action", "moderation", "A moderator approved, marked as spam or trashed content."),
    ("feed.created", "feed", "A feed post was created."),
    ("feed.updated", "feed", "A feed post was updated."),
    ("feed.deleted", "feed", "A feed post was deleted."),
    ("feed.pinned", "feed", "A feed post was pinned."),
    ("feed.unpinned", "feed", "A feed post was unpinned."),
    ("comment.created", "comment", "A comment was added."),
    ("comment.updated", "comment", "A comment was edited."),
    ("comment.deleted", "comment", "A comment was deleted."),
    ("reaction.added", "reaction", "A reaction was added to content."),
    ("reaction.removed", "reaction", "A reaction was removed from content."),
    ("space.created", "space", "A space was created."),
    ("space.updated", "space", "A space was updated."),
    ("space.deleted", "space", "A space was deleted."),
    ("space.member_joined", "space", "A user joined a space."),
    ("space.member_left", "space", "A user left a space."),
    ("course.enrolled", "course", "A user was enrolled in a course."),
    ("course.unenrolled", "course", "A user was removed from a course."),
    ("lesson.completed", "course", "A user completed a lesson."),
    ("report.created", "report", "A moderation report was submitted."),
    ("report.resolved", "report", "A moderation report was resolved."),
    ("payment.completed", "payment", "A payment went through."),
    ("test.ping", "test", "A test delivery sent from the test endpoint."),
    ("webhook.disabled", "operational", "Hookline disabled a webhook whose endpoint kept failing."),
    ("delivery.failed", "operational", "A delivery failed for good after its last retry."),
    (
        "webhook.secret_rotated",
        "operational",
        "A webhook's signing secret was rotated (the event carries no secret).",
    ),
)

EVENT_TYPES: dict[str, EventType] = {
    name: EventType(name, group, description) for name, group, description in _CATALOG
}

#: Operational events describe Hookline itself; failures delivering them never emit more of them.
OPERATIONAL_EVENTS = frozenset({"webhook.disabled", "delivery.failed", "webhook.secret_rotated"})

GROUPS = frozenset(t.group for t in EVENT_TYPES.values())


def is_known(name: str) -> bool:
    return name in EVENT_TYPES


def group_of(name: str) -> str:
    event_type = EVENT_TYPES.get(name)
    return event_type.group if event_type else "other"


def is_valid_pattern(pattern: str, custom: Collection[str] = ()) -> bool:
    """A pattern is a catalog name, '*', or '<prefix>.*' for a prefix in the catalog; names in
    ``custom`` (a community's own event types) count as catalog names."""
    if pattern == "*" or pattern in EVENT_TYPES or pattern in custom:
        return True
    if pattern.endswith(".*"):
        prefix = pattern[:-2] + "."
        return any(name.startswith(prefix) for name in (*EVENT_TYPES, *custom))
    return False


def matches(patterns: Iterable[str], event: str) -> bool:
    """Does a subscription (list of patterns) include this event type?"""
    for pattern in patterns:
        if pattern == "*" or pattern == event:
            return True
        if pattern.endswith(".*") and event.startswith(pattern[:-1]):
            return True
    return False
