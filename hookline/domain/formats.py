"""Per-webhook body formats: our JSON, or a one-line message for Slack / Discord webhooks."""

from __future__ import annotations

import datetime as _dt
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

FORMATS = ("json", "slack", "discord")

DISCORD_LIMIT = 2000
SLACK_LIMIT = 3000
_TITLE_LIMIT = 100
_NAME_LIMIT = 60


def _default(value: Any) -> Any:
    """JSON for values DynamoDB and Python hand us that json does not know."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, _dt.datetime | _dt.date):
        return value.isoformat()
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def to_json(value: Any) -> bytes:
    """Compact UTF-8 JSON (no spaces, non-ASCII kept as is) - the bytes we sign and send."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=_default).encode(
        "utf-8"
    )


# --------------------------------------------------------------------------------------------
# One-line summaries

_SPACES = re.compile(r"\s+")


def _text(value: Any, limit: int = _TITLE_LIMIT) -> str:
    """A short single-line string from a scalar; '' for anything else."""
    if isinstance(value, Mapping):  # WordPress-style {"rendered": "..."} / {"raw": "..."}
        value = value.get("rendered", value.get("raw"))
    if value is None or isinstance(value, bool | Mapping | list | tuple | set):
        return ""
    if isinstance(value, Decimal):
        value = _default(value)
    text = _SPACES.sub(" ", str(value)).strip()
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


def _first(sources: tuple[Mapping[str, Any], ...], *keys: str, limit: int = _TITLE_LIMIT) -> str:
    for source in sources:
        for key in keys:
            text = _text(source.get(key), limit)
            if text:
                return text
    return ""


def _nested(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key)
    return value if isinstance(value, Mapping) else {}


@dataclass(frozen=True)
class _Fields:
    actor: str
    title: str
    space: str
    course: str
    lesson: str
    target: str
    url: str
    data: Mapping[str, Any]


def _fields(data: Mapping[str, Any], actor: Mapping[str, Any], site_url: str) -> _Fields:
    user = _nested(data, "user") or _nested(data, "member") or _nested(data, "author")
    space = _nested(data, "space")
    course = _nested(data, "course")
    names = ("display_name", "name", "author_name", "user_name", "member_name", "username")
    return _Fields(
        actor=_first((actor, user, data), *names, limit=_NAME_LIMIT),
        title=_first((data,), "title", "topic_title", "post_title", "subject", "name"),
        space=_first((data,), "space_name", "space_title", "space_slug")
        or _first((space,), "name", "title", "slug"),
        course=_first((data,), "course_title", "course_name") or _first((course,), "title", "name"),
        lesson=_first((data,), "lesson_title", "lesson_name"),
        target=_first(
            (data,),
            "target_name",
            "followed_name",
            "following_name",
            "target_user_name",
            limit=_NAME_LIMIT,
        ),
        url=_first((data,), "url", "permalink", "link", limit=500) or _text(site_url, 500),
        data=data,
    )


def _join(*parts: str) -> str:
    return " ".join(part for part in parts if part)


def _q(text: str) -> str:
    return f'"{text}"' if text else ""


def _by(actor: str) -> str:
    return f"by {actor}" if actor else ""


def _in(space: str) -> str:
    return f"in {space}" if space else ""


def _who(f: _Fields) -> str:
    return f.actor or "Someone"


def _levels(f: _Fields) -> str:
    old = _first((f.data,), "old_level", "from_level", "previous_level", "from")
    new = _first((f.data,), "new_level", "to_level", "level", "to")
    if old and new:
        return f"from trust level {old} to {new}"
    return f"to trust level {new}" if new else ""


def _payment(f: _Fields) -> str:
    amount = _first((f.data,), "amount", "total", "price")
    currency = _first((f.data,), "currency")
    return _join("Payment of", amount, currency) if amount else "Payment"


_Template = Callable[[_Fields], str]


def _on(preposition: str, text: str) -> str:
    """'on "Title"' when there is a title, else nothing."""
    return f'{preposition} "{text}"' if text else ""


def _space(f: _Fields) -> str:
    return f"space {f.space}" if f.space else "a space"


def _named(kind: str, text: str, fallback: str) -> str:
    return f'{kind} "{text}"' if text else fallback


_TEMPLATES: dict[str, _Template] = {
    "post.created": lambda f: _join("New topic", _q(f.title), _by(f.actor), _in(f.space)),
    "post.updated": lambda f: _join("Topic", _q(f.title), "edited", _by(f.actor)),
    "post.deleted": lambda f: _join("Topic", _q(f.title), "deleted", _by(f.actor)),
    "reply.created": lambda f: _join("New reply", _by(f.actor), _on("to", f.title)),
    "reply.updated": lambda f: _join("Reply", _on("to", f.title), "edited", _by(f.actor)),
    "reply.deleted": lambda f: _join("Reply", _on("to", f.title), "deleted", _by(f.actor)),
    "vote.cast": lambda f: _join(_who(f), "voted", _on("on", f.title)),
    "answer.accepted": lambda f: _join("Answer accepted", _on("on", f.title), _by(f.actor)),
    "member.joined": lambda f: _join(_who(f), "joined", f.space or "the community"),
    "member.left": lambda f: _join(_who(f), "left", f.space or "the community"),
    "member.banned": lambda f: _join(_who(f), "was banned", f"from {f.space}" if f.space else ""),
    "user.registered": lambda f: _join("New user", f.actor, "registered"),
    "user.profile_updated": lambda f: _join(_who(f), "updated their profile"),
    "user.followed": lambda f: _join(_who(f), "followed", f.target or "a user"),
    "user.unfollowed": lambda f: _join(_who(f), "unfollowed", f.target or "a user"),
    "trust_level.changed": lambda f: _join(_who(f), "moved", _levels(f) or "to a new trust level"),
    "flag.created": lambda f: _join(_who(f), "flagged", _q(f.title) or "content"),
    "flag.resolved": lambda f: _join("Flag", _on("on", f.title), "resolved", _by(f.actor)),
    "moderation.action": lambda f: _join(
        "Moderator", f.actor, _first((f.data,), "action") or "acted on", _q(f.title) or "content"
    ),
    "feed.created": lambda f: _join("New post", _q(f.title), _by(f.actor), _in(f.space)),
    "feed.updated": lambda f: _join("Post", _q(f.title), "updated", _by(f.actor)),
    "feed.deleted": lambda f: _join("Post", _q(f.title), "deleted", _by(f.actor)),
    "feed.pinned": lambda f: _join("Post", _q(f.title), "pinned", _in(f.space)),
    "feed.unpinned": lambda f: _join("Post", _q(f.title), "unpinned", _in(f.space)),
    "comment.created": lambda f: _join("New comment", _by(f.actor), _on("on", f.title)),
    "comment.updated": lambda f: _join("Comment", _on("on", f.title), "edited", _by(f.actor)),
    "comment.deleted": lambda f: _join("Comment", _on("on", f.title), "deleted"),
    "reaction.added": lambda f: _join(
        _who(f), "reacted", _first((f.data,), "reaction", "emoji"), "to", _q(f.title) or "content"
    ),
    "reaction.removed": lambda f: _join(
        _who(f), "removed a reaction from", _q(f.title) or "content"
    ),
    "space.created": lambda f: _join("Space", _q(f.space or f.title), "created", _by(f.actor)),
    "space.updated": lambda f: _join("Space", _q(f.space or f.title), "updated", _by(f.actor)),
    "space.deleted": lambda f: _join("Space", _q(f.space or f.title), "deleted", _by(f.actor)),
    "space.member_joined": lambda f: _join(_who(f), "joined", _space(f)),
    "space.member_left": lambda f: _join(_who(f), "left", _space(f)),
    "course.enrolled": lambda f: _join(
        _who(f), "enrolled in", _named("course", f.course, "a course")
    ),
    "course.unenrolled": lambda f: _join(
        _who(f), "was removed from", _named("course", f.course, "a course")
    ),
    "lesson.completed": lambda f: _join(
        _who(f), "completed", _named("lesson", f.lesson, "a lesson"), _on("in", f.course)
    ),
    "report.created": lambda f: _join("New report", _by(f.actor), _on("on", f.title)),
    "report.resolved": lambda f: _join("Report", _on("on", f.title), "resolved", _by(f.actor)),
    "payment.completed": lambda f: _join(_payment(f), _by(f.actor), "completed"),
    "test.ping": lambda f: "Test delivery from Hookline: your endpoint is reachable",
    "webhook.disabled": lambda f: _join(
        "Webhook",
        _first((f.data,), "webhook_id", "id"),
        "was disabled after repeated delivery failures",
    ),
    "webhook.secret_rotated": lambda f: _join(
        "The signing secret of webhook", _first((f.data,), "webhook_id", "id"), "was rotated"
    ),
    "delivery.failed": lambda f: _join(
        "Delivery",
        _first((f.data,), "delivery_id", "id"),
        "of",
        _first((f.data,), "event") or "an event",
        "failed after its last retry",
    ),
}


def _generic(event: str, f: _Fields) -> str:
    return _join(f"Event {event}", _q(f.title), _by(f.actor))


def summary(event: str, data: Any, actor: Any, site_url: str) -> str:
    """A readable one-line description of an event, e.g.
    ``New topic "How do I reset my password?" by Priya Sharma in support — https://...``.

    Works for every event type (unknown ones get a generic line) and tolerates missing fields
    and values of any type.
    """
    event_name = _text(event, 80) or "(unnamed)"
    fields = _fields(
        data if isinstance(data, Mapping) else {},
        actor if isinstance(actor, Mapping) else {},
        site_url if isinstance(site_url, str) else "",
    )
    template = _TEMPLATES.get(event_name)
    try:
        line = template(fields) if template else _generic(event_name, fields)
    except Exception:  # a template must never break a delivery
        line = _generic(event_name, fields)
    line = _SPACES.sub(" ", line).strip()
    if fields.url:
        line = f"{line} — {fields.url}"
    return line


def _slack_escape(text: str) -> str:
    # Slack reads <...> as links/mentions and &...; as entities; user text must not trigger them.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cap(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render(format: str, payload: Mapping[str, Any]) -> bytes:
    """The request body for a webhook's format.

    ``payload`` is the delivery payload (``event``, ``data``, optional ``actor`` and
    ``site_url``). ``json`` sends it as compact JSON; ``slack`` and ``discord`` send a one-line
    summary in the shape their incoming webhooks expect. Raises ValueError for another format.
    """
    if format == "json":
        return to_json(payload)
    if format not in FORMATS:
        raise ValueError(f"unknown format {format!r}; expected one of {', '.join(FORMATS)}")
    event = payload.get("event") or payload.get("type") or ""
    actor = payload.get("actor") or payload.get("xprofile")
    line = summary(event, payload.get("data"), actor, payload.get("site_url") or "")
    if format == "slack":
        return to_json({"text": _slack_escape(_cap(line, SLACK_LIMIT))})
    # Discord: never let community content ping @everyone, roles or users.
    return to_json({"content": _cap(line, DISCORD_LIMIT), "allowed_mentions": {"parse": []}})
