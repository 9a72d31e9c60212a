"""JSON Schemas and examples of the built-in event types' ``data`` (GET /v1/event-types/{name}).

They describe what a publisher usually sends and what the chat formats read: every property is
optional and more are allowed, because publishers of built-in types differ. The data of a
community's custom types is validated against the schema the community registered
(hookline.domain.event_types); these built-in ones document and are not enforced.
"""

from __future__ import annotations

import copy
from typing import Any

_ID = {"type": ["integer", "string"], "description": "The id in the publishing platform."}
_TEXT = {"type": "string"}
_URL = {"type": "string", "format": "uri"}
_LEVEL = {"type": "integer", "minimum": 0}
_PERSON = {
    "type": "object",
    "properties": {"id": _ID, "display_name": _TEXT, "email": {"type": "string"}},
}
_GROUP = {"type": "object", "properties": {"id": _TEXT, "name": _TEXT, "slug": _TEXT}}


def _object(**properties: Any) -> dict[str, Any]:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": properties,
        "additionalProperties": True,
    }


_CONTENT = _object(
    post_id=_ID, title=_TEXT, author=_PERSON, space_name=_TEXT, url=_URL, status=_TEXT
)
_PRIYA = {"id": 45, "display_name": "Priya Sharma"}
_POST = {
    "post_id": 1024,
    "title": "How do I reset my password?",
    "author": _PRIYA,
    "space_name": "support",
    "url": "https://forum.example.com/t/how-do-i-reset-my-password/1024",
}
_USER = {
    "user": {
        "id": "usr_01a2338c6ee40000e2d69056d78b",
        "email": "priya@example.com",
        "user_login": "priya",
        "first_name": "Priya",
        "last_name": "Sharma",
    },
    "source": "incoming_webhook",
}
_SPACE = {"id": "spc_01a2338c6ee40000e2d69056d78b", "name": "Premium Members", "slug": "premium"}
_COURSE = {"id": "crs_01a2338c6ee40000e2d69056d78b", "name": "Onboarding", "slug": "onboarding"}

#: group -> schema of its types' data
_GROUP_SCHEMAS: dict[str, dict[str, Any]] = {
    "post": _CONTENT,
    "reply": _object(reply_id=_ID, post_id=_ID, title=_TEXT, author=_PERSON, url=_URL),
    "vote": _object(post_id=_ID, reply_id=_ID, value={"type": "integer"}, user=_PERSON),
    "answer": _object(post_id=_ID, reply_id=_ID, title=_TEXT, author=_PERSON, url=_URL),
    "member": _object(user=_PERSON, space=_GROUP, reason=_TEXT, source=_TEXT),
    "user": _object(user=_PERSON, target_name=_TEXT, source=_TEXT),
    "trust_level": _object(user=_PERSON, old_level=_LEVEL, new_level=_LEVEL),
    "flag": _object(flag_id=_ID, post_id=_ID, title=_TEXT, reason=_TEXT, user=_PERSON),
    "moderation": _object(action=_TEXT, post_id=_ID, title=_TEXT, moderator=_PERSON),
    "feed": _object(feed_id=_ID, title=_TEXT, author=_PERSON, url=_URL),
    "comment": _object(comment_id=_ID, post_id=_ID, title=_TEXT, author=_PERSON, url=_URL),
    "reaction": _object(reaction=_TEXT, post_id=_ID, title=_TEXT, user=_PERSON),
    "space": _object(space=_GROUP, user=_PERSON, source=_TEXT),
    "course": _object(course=_GROUP, lesson_title=_TEXT, user=_PERSON, source=_TEXT),
    "report": _object(report_id=_ID, post_id=_ID, title=_TEXT, reason=_TEXT, user=_PERSON),
    "payment": _object(
        payment_id=_ID, amount={"type": "number"}, currency=_TEXT, user=_PERSON, product=_TEXT
    ),
    "test": _object(message=_TEXT, webhook_id=_TEXT),
    "operational": _object(webhook_id=_TEXT, delivery_id=_TEXT, event_id=_TEXT, reason=_TEXT),
}

_MEMBER = {"user": {"id": 45, "display_name": "Priya Sharma"}, "source": "incoming_webhook"}

#: event type -> example data (types without one use their group's first example)
_EXAMPLES: dict[str, dict[str, Any]] = {
    "post.created": _POST,
    "post.updated": {**_POST, "title": "How do I reset my password? (solved)"},
    "post.deleted": {"post_id": 1024, "title": "How do I reset my password?", "status": "trash"},
    "reply.created": {
        "reply_id": 2048,
        "post_id": 1024,
        "title": "How do I reset my password?",
        "author": {"id": 7, "display_name": "Sam Lee"},
        "url": "https://forum.example.com/t/how-do-i-reset-my-password/1024#reply-2048",
    },
    "vote.cast": {"post_id": 1024, "value": 1, "user": _PRIYA},
    "answer.accepted": {"post_id": 1024, "reply_id": 2048, "title": "How do I reset my password?"},
    "member.joined": _MEMBER,
    "member.left": {**_MEMBER, "reason": "left"},
    "member.banned": {**_MEMBER, "reason": "spam"},
    "user.registered": _USER,
    "user.profile_updated": _USER,
    "user.followed": {"user": _PRIYA, "target_name": "Sam Lee"},
    "user.unfollowed": {"user": _PRIYA, "target_name": "Sam Lee"},
    "trust_level.changed": {"user": _PRIYA, "old_level": 1, "new_level": 2},
    "flag.created": {"flag_id": 9, "post_id": 1024, "title": "Buy now!!!", "reason": "spam"},
    "moderation.action": {"action": "spam", "post_id": 1024, "title": "Buy now!!!"},
    "feed.created": {"feed_id": 77, "title": "Welcome, new members!", "author": _PRIYA},
    "comment.created": {"comment_id": 5, "post_id": 1024, "title": "Nice tip", "author": _PRIYA},
    "reaction.added": {"reaction": "heart", "post_id": 1024, "title": "Nice tip", "user": _PRIYA},
    "space.created": {"space": _SPACE, "source": "api"},
    "space.member_joined": {"space": _SPACE, "user": _USER["user"], "source": "incoming_webhook"},
    "course.enrolled": {"course": _COURSE, "user": _USER["user"], "source": "incoming_webhook"},
    "lesson.completed": {"course": _COURSE, "lesson_title": "Your first post", "user": _PRIYA},
    "report.created": {"report_id": 3, "post_id": 1024, "title": "Buy now!!!", "reason": "spam"},
    "payment.completed": {
        "payment_id": "pay_123",
        "amount": 49.0,
        "currency": "EUR",
        "product": "Premium membership",
        "user": _PRIYA,
    },
    "test.ping": {"message": "Test delivery from Hookline", "webhook_id": "wh_01a2338c6ee5"},
    "webhook.disabled": {
        "webhook_id": "wh_01a2338c6ee50000aa211d881f4b",
        "name": "CRM",
        "reason": "The endpoint answered 410 Gone.",
        "failed_deliveries": 1,
    },
    "delivery.failed": {
        "delivery_id": "dlv_f250484130d55ecb63b0a28f",
        "webhook_id": "wh_01a2338c6ee50000aa211d881f4b",
        "event_id": "evt_01a2338c6ee50001bef0816591b0",
        "event": "post.created",
        "attempts": 4,
        "last_status_code": 503,
        "error": "HTTP 503 Service Unavailable",
    },
    "webhook.secret_rotated": {
        "webhook_id": "wh_01a2338c6ee50000aa211d881f4b",
        "name": "CRM",
        "rotated_at": "2026-12-01T12:00:00.000Z",
        "previous_secret_expires_at": "2026-12-02T12:00:00.000Z",
        "secrets_in_overlap": 1,
        "overlap_ends_at": "2026-12-02T12:00:00.000Z",
    },
}


def schema_of(name: str, group: str) -> dict[str, Any]:
    """The JSON Schema of a built-in type's data."""
    return copy.deepcopy(_GROUP_SCHEMAS.get(group, _object()))


def example_of(name: str, group: str) -> dict[str, Any]:
    """Example data of a built-in type (its own, or the first of its group's)."""
    if name in _EXAMPLES:
        return copy.deepcopy(_EXAMPLES[name])
    for other, example in _EXAMPLES.items():
        if other.split(".", 1)[0] == name.split(".", 1)[0]:
            return copy.deepcopy(example)
    return {}
