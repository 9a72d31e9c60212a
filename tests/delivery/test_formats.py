"""Body formats: compact JSON, Slack and Discord one-liners."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import pytest

from hookline.catalog import EVENT_TYPES
from hookline.domain.formats import DISCORD_LIMIT, FORMATS, render, summary

SITE = "https://community.example"
POST_DATA = {
    "post_id": 1024,
    "title": "How do I reset my password?",
    "author_name": "Priya Sharma",
    "space_id": 3,
    "space_slug": "support",
    "url": "https://community.example/s/support/t/how-do-i-reset-my-password/",
}
PAYLOAD = {
    "event": "post.created",
    "timestamp": "2026-03-26T08:14:32.000Z",
    "site_url": SITE,
    "data": POST_DATA,
}


def test_formats_tuple() -> None:
    assert FORMATS == ("json", "slack", "discord")


def test_json_is_compact_utf8_and_round_trips() -> None:
    payload = {"event": "x", "data": {"name": "Zoë 東京", "path": "a/b", "n": 1.5}}
    body = render("json", payload)
    assert body == '{"event":"x","data":{"name":"Zoë 東京","path":"a/b","n":1.5}}'.encode()
    assert json.loads(body) == payload


def test_json_handles_dynamodb_and_python_values() -> None:
    body = render(
        "json",
        {
            "n": Decimal("3"),
            "f": Decimal("2.5"),
            "when": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
            "tags": {"b", "a"},
        },
    )
    assert json.loads(body) == {
        "n": 3,
        "f": 2.5,
        "when": "2026-01-02T03:04:05+00:00",
        "tags": ["a", "b"],
    }


def test_post_created_summary() -> None:
    line = summary("post.created", POST_DATA, None, SITE)
    assert line == (
        'New topic "How do I reset my password?" by Priya Sharma in support'
        " — https://community.example/s/support/t/how-do-i-reset-my-password/"
    )


def test_actor_wins_over_data_names_and_site_url_is_the_fallback_link() -> None:
    line = summary("member.joined", {"space_name": "Makers"}, {"display_name": "Ann"}, SITE)
    assert line == f"Ann joined Makers — {SITE}"


@pytest.mark.parametrize(
    ("event", "data", "expected"),
    [
        ("reply.created", {"topic_title": "Hi", "author_name": "Bo"}, 'New reply by Bo to "Hi"'),
        (
            "course.enrolled",
            {"course_title": "Python 101", "user": {"name": "Cy"}},
            'Cy enrolled in course "Python 101"',
        ),
        (
            "lesson.completed",
            {"lesson_title": "Loops", "course": {"title": "Py"}},
            'Someone completed lesson "Loops" in "Py"',
        ),
        (
            "trust_level.changed",
            {"user_name": "Di", "old_level": 1, "new_level": 2},
            "Di moved from trust level 1 to 2",
        ),
        (
            "payment.completed",
            {"amount": Decimal("19.99"), "currency": "EUR", "member_name": "Ed"},
            "Payment of 19.99 EUR by Ed completed",
        ),
        ("user.followed", {"user_name": "Fa", "target_name": "Gus"}, "Fa followed Gus"),
        (
            "space.member_joined",
            {"space": {"name": "Ops"}, "user": {"username": "hal"}},
            "hal joined space Ops",
        ),
        ("test.ping", {}, "Test delivery from Hookline: your endpoint is reachable"),
        ("feed.created", {"title": {"rendered": "WordPress title"}}, 'New post "WordPress title"'),
    ],
)
def test_event_summaries(event: str, data: dict[str, Any], expected: str) -> None:
    assert summary(event, data, None, "") == expected


def test_generic_fallback_for_unknown_types() -> None:
    assert summary("invoice.paid", {"title": "INV-1", "user_name": "Ivy"}, None, "") == (
        'Event invoice.paid "INV-1" by Ivy'
    )
    assert summary("invoice.paid", {}, None, "") == "Event invoice.paid"


@pytest.mark.parametrize("event", sorted(EVENT_TYPES))
@pytest.mark.parametrize(
    "data",
    [
        {},
        None,
        {"title": None, "author_name": 42, "space": "not-a-dict", "course": ["x"], "user": 7},
        {"title": {"nested": True}, "url": 12, "amount": {"x": 1}, "old_level": []},
        {"title": "line1\nline2\t\tend " + "x" * 500, "author_name": "A" * 300},
    ],
)
def test_every_catalog_event_summarises_any_data(event: str, data: Any) -> None:
    line = summary(event, data, {"display_name": None}, SITE)
    assert line and "\n" not in line and "\t" not in line
    assert len(line) < 800
    assert "None" not in line and "{" not in line


def test_summary_survives_non_string_arguments() -> None:
    assert summary(None, "x", 5, None) == "Event (unnamed)"  # type: ignore[arg-type]


def test_slack_body() -> None:
    body = json.loads(render("slack", PAYLOAD))
    assert body == {"text": summary("post.created", POST_DATA, None, SITE)}


def test_slack_escapes_control_sequences_in_user_content() -> None:
    payload = {"event": "post.created", "data": {"title": "<!channel> & <@U123>"}}
    text = json.loads(render("slack", payload))["text"]
    assert "<" not in text and ">" not in text
    assert "&lt;!channel&gt; &amp; &lt;@U123&gt;" in text


def test_discord_body_is_capped_and_pings_nobody() -> None:
    payload = {"event": "invoice.paid", "data": {"title": "@everyone " + "x" * 90}}
    body = json.loads(render("discord", payload))
    assert body["content"].startswith('Event invoice.paid "@everyone')
    assert body["allowed_mentions"] == {"parse": []}
    long_site = {"event": "test.ping", "data": {"url": "https://x.example/" + "a" * 5000}}
    assert len(json.loads(render("discord", long_site))["content"]) <= DISCORD_LIMIT


def test_actor_from_xprofile_as_peers_send_it() -> None:
    payload = {
        "event": "feed.created",
        "data": {"title": "Hello"},
        "xprofile": {"display_name": "Kim"},
    }
    assert json.loads(render("slack", payload))["text"] == 'New post "Hello" by Kim'


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown format"):
        render("xml", PAYLOAD)
