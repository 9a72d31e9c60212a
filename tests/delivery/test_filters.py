"""The content-filter matcher (hookline.domain.filters): pattern forms, validation, explanations,
and a property test against moto's EventBridge pattern matcher."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto.events.models import EventPattern

from hookline import wiring
from hookline.domain import filters
from hookline.domain.dispatch import dispatch_events
from hookline.domain.filters import FilterError
from tests.delivery_helpers import delivery_context, make_community, make_event, make_webhook
from tests.receivers import Receiver

PAYLOAD = {
    "id": "evt_1",
    "event": "post.created",
    "community_id": "cmt_1",
    "data": {
        "space_slug": "support",
        "title": "Login broken",
        "score": 7,
        "tags": ["bug", "urgent"],
        "author": {"trust_level": 2, "email": "Ann@Example.com"},
        "pinned": False,
        "parent_id": None,
        "attachments": [{"kind": "image"}, {"kind": "pdf"}],
    },
    "actor": {"id": 5, "login": "ann"},
}


@pytest.mark.parametrize(
    "pattern",
    [
        {"data": {"space_slug": ["support"]}},
        {"data": {"space_slug": ["general", "support"]}},
        {"event": [{"prefix": "post."}]},
        {"data": {"title": [{"suffix": "broken"}]}},
        {"data": {"title": [{"prefix": {"equals-ignore-case": "LOGIN"}}]}},
        {"data": {"title": [{"suffix": {"equals-ignore-case": "BROKEN"}}]}},
        {"data": {"space_slug": [{"equals-ignore-case": "SUPPORT"}]}},
        {"data": {"space_slug": [{"anything-but": "general"}]}},
        {"data": {"space_slug": [{"anything-but": ["general", "sales"]}]}},
        {"data": {"space_slug": [{"anything-but": {"prefix": "gen"}}]}},
        {"data": {"space_slug": [{"anything-but": {"suffix": "ral"}}]}},
        {"data": {"space_slug": [{"anything-but": {"equals-ignore-case": ["GENERAL"]}}]}},
        {"data": {"score": [{"numeric": [">", 5]}]}},
        {"data": {"score": [{"numeric": [">=", 7, "<", 8]}]}},
        {"data": {"score": [{"numeric": ["=", 7]}]}},
        {"data": {"score": [7]}},
        {"data": {"tags": ["urgent"]}},
        {"data": {"author": {"trust_level": [{"numeric": [">=", 2]}]}}},
        {"data": {"pinned": [False]}},
        {"data": {"parent_id": [None]}},
        {"data": {"parent_id": [{"exists": True}]}},
        {"data": {"missing": [{"exists": False}]}},
        {"data": {"attachments": {"kind": ["pdf"]}}},
        {"$or": [{"data": {"space_slug": ["sales"]}}, {"actor": {"login": ["ann"]}}]},
        {"data": {"$or": [{"score": [{"numeric": ["<", 0]}]}, {"tags": ["bug"]}]}},
    ],
)
def test_patterns_that_match(pattern: dict[str, Any]) -> None:
    assert filters.validate(pattern) == pattern
    assert filters.matches(pattern, PAYLOAD)
    assert filters.explain(pattern, PAYLOAD) == []


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ({"data": {"space_slug": ["general"]}}, 'data.space_slug: "support" does not match'),
        ({"data": {"nope": ["x"]}}, "data.nope: missing"),
        ({"data": {"score": ["7"]}}, "data.score: 7 does not match"),
        ({"data": {"pinned": [0]}}, "data.pinned: false does not match"),
        ({"data": {"score": [True]}}, "data.score"),
        ({"data": {"score": [{"numeric": [">", 7]}]}}, "data.score"),
        ({"data": {"score": [{"prefix": "7"}]}}, "data.score"),
        ({"data": {"space_slug": [{"anything-but": ["support"]}]}}, "data.space_slug"),
        ({"data": {"space_slug": [{"anything-but": {"prefix": "sup"}}]}}, "data.space_slug"),
        ({"data": {"author": [{"exists": True}]}}, "data.author: missing"),
        ({"data": {"parent_id": [{"exists": False}]}}, "data.parent_id: null does not match"),
        ({"data": {"space_slug": [{"equals-ignore-case": "supp"}]}}, "data.space_slug"),
        ({"$or": [{"event": ["a.b"]}, {"actor": {"id": [6]}}]}, "payload: no $or branch matches"),
    ],
)
def test_patterns_that_do_not_match_say_why(pattern: dict[str, Any], reason: str) -> None:
    filters.validate(pattern)
    assert not filters.matches(pattern, PAYLOAD)
    reasons = filters.explain(pattern, PAYLOAD)
    assert len(reasons) == 1
    assert reasons[0].startswith(reason)


def test_every_failing_field_is_explained() -> None:
    pattern = {"event": ["member.joined"], "data": {"space_slug": ["x"], "score": [7]}}
    assert filters.explain(pattern, PAYLOAD) == [
        'event: "post.created" does not match ["member.joined"]',
        'data.space_slug: "support" does not match ["x"]',
    ]


def test_or_explains_each_branch() -> None:
    pattern = {"$or": [{"event": ["a.b"]}, {"actor": {"id": [6]}}]}
    (reason,) = filters.explain(pattern, PAYLOAD)
    assert 'event: "post.created" does not match ["a.b"]' in reason
    assert "actor.id: 5 does not match [6]" in reason


def test_no_filter_matches_everything() -> None:
    assert filters.matches(None, PAYLOAD)
    assert filters.explain(None, PAYLOAD) == []


@pytest.mark.parametrize(
    ("pattern", "where"),
    [
        ([], ""),
        ({}, ""),
        ({"data": "support"}, "data"),
        ({"data": {"space_slug": "support"}}, "data.space_slug"),
        ({"data": {"space_slug": []}}, "data.space_slug"),
        ({"data": {}}, "data"),
        ({"data": {"space_slug": [["support"]]}}, "data.space_slug[0]"),
        ({"data": {"x": ["a", {"regex": ".*"}]}}, "data.x[1].regex"),
        ({"data": {"x": [{"prefix": "a", "suffix": "b"}]}}, "data.x[0]"),
        ({"data": {"x": [{"prefix": 5}]}}, "data.x[0].prefix"),
        ({"data": {"x": [{"prefix": {"nope": "a"}}]}}, "data.x[0].prefix"),
        ({"data": {"x": [{"equals-ignore-case": 1}]}}, "data.x[0].equals-ignore-case"),
        ({"data": {"x": [{"exists": "yes"}]}}, "data.x[0].exists"),
        ({"data": {"x": [{"numeric": [">"]}]}}, "data.x[0].numeric"),
        ({"data": {"x": [{"numeric": ["~", 1]}]}}, "data.x[0].numeric[0]"),
        ({"data": {"x": [{"numeric": [">", "1"]}]}}, "data.x[0].numeric[1]"),
        ({"data": {"x": [{"numeric": ["<", 1, ">", 0]}]}}, "data.x[0].numeric"),
        ({"data": {"x": [{"numeric": [">", 5, "<", 1]}]}}, "data.x[0].numeric"),
        ({"data": {"x": [{"numeric": [">", 1e12]}]}}, "data.x[0].numeric[1]"),
        ({"data": {"x": [{"anything-but": []}]}}, "data.x[0].anything-but"),
        ({"data": {"x": [{"anything-but": ["a", 1]}]}}, "data.x[0].anything-but"),
        ({"data": {"x": [{"anything-but": [None]}]}}, "data.x[0].anything-but[0]"),
        ({"data": {"x": [{"anything-but": {"numeric": [">", 1]}}]}}, "data.x[0].anything-but"),
        ({"$or": [{"a": ["b"]}]}, "$or"),
        ({"$or": {"a": ["b"]}}, "$or"),
        ({"$or": [{"a": ["b"]}, {}]}, "$or[1]"),
        ({"$and": [{"a": ["b"]}]}, "$and"),
        ({"": ["b"]}, ""),
        ({"a": {"b": {"c": {"d": {"e": {"f": {"g": ["x"]}}}}}}}, "a.b.c.d.e.f"),
        ({"data": {"x": [float("nan")]}}, ""),
        ({"data": {"x": ["y" * 5000]}}, ""),
    ],
)
def test_invalid_filters_name_the_bad_part(pattern: Any, where: str) -> None:
    with pytest.raises(FilterError) as caught:
        filters.validate(pattern)
    assert caught.value.where == where
    assert str(caught.value).startswith(f"{where}: " if where else caught.value.problem)


def test_depth_and_size_caps_allow_what_fits() -> None:
    deep = {"a": {"b": {"c": {"d": {"e": {"f": ["x"]}}}}}}
    assert filters.validate(deep) == deep
    big = {"data": {"x": ["y" * (filters.MAX_FILTER_BYTES - 50)]}}
    assert filters.validate(big) == big


# --- agreement with moto's EventBridge matcher ------------------------------------------------
#
# moto 5.2 answers the TestEventPattern API without a result, but matches rules with
# EventPattern, the implementation its TestEventPattern used; the oracle calls that directly.
# The generated payloads stay where moto follows EventBridge: no booleans (Python counts True
# as 1, so moto's numeric and exact matches take them for numbers), no integral floats, no empty
# objects or arrays, and no arrays of objects or of arrays (moto does not flatten those). Those
# cases are covered by the examples above, with EventBridge's behaviour.

KEYS = ("a", "b", "c")
STRINGS = ("support", "Support", "SUPPORT", "sup", "port", "general", "", "a.b")
NUMBERS = (-7, 2, 3, 42, 1000, 2.5, -0.5, 3.25)
SCALARS = st.sampled_from((*STRINGS, *NUMBERS, None))
AFFIXES = st.sampled_from(("sup", "Sup", "port", "PORT", "gen", "x"))


def payloads() -> st.SearchStrategy[dict[str, Any]]:
    leaf = st.one_of(SCALARS, st.lists(SCALARS, min_size=1, max_size=3))
    return st.recursive(
        st.dictionaries(st.sampled_from(KEYS), leaf, min_size=1),
        lambda inner: st.dictionaries(st.sampled_from(KEYS), st.one_of(leaf, inner), min_size=1),
        max_leaves=8,
    )


def _numeric() -> st.SearchStrategy[list[Any]]:
    number = st.sampled_from(NUMBERS)
    single = st.tuples(st.sampled_from(("<", "<=", "=", ">=", ">")), number).map(list)
    bounds = st.tuples(st.sampled_from((">", ">=")), number, st.sampled_from(("<", "<=")), number)
    ranged = bounds.filter(lambda b: b[1] < b[3]).map(list)
    return st.one_of(single, ranged)


def matchers() -> st.SearchStrategy[Any]:
    ignore_case = AFFIXES.map(lambda s: {"equals-ignore-case": s})
    string = st.sampled_from(STRINGS)
    anything_but = st.one_of(
        string,
        st.sampled_from(NUMBERS),
        st.lists(string, min_size=1, max_size=3),
        st.lists(st.sampled_from(NUMBERS), min_size=1, max_size=3),
        AFFIXES.map(lambda s: {"prefix": s}),
        AFFIXES.map(lambda s: {"suffix": s}),
        st.one_of(string, st.lists(string, min_size=1, max_size=2)).map(
            lambda s: {"equals-ignore-case": s}
        ),
    )
    return st.one_of(
        st.sampled_from((*STRINGS, *NUMBERS, None, True, False)),
        st.one_of(AFFIXES, ignore_case).map(lambda s: {"prefix": s}),
        st.one_of(AFFIXES, ignore_case).map(lambda s: {"suffix": s}),
        string.map(lambda s: {"equals-ignore-case": s}),
        anything_but.map(lambda v: {"anything-but": v}),
        _numeric().map(lambda v: {"numeric": v}),
        st.booleans().map(lambda b: {"exists": b}),
    )


def patterns() -> st.SearchStrategy[dict[str, Any]]:
    field_filters = st.lists(matchers(), min_size=1, max_size=3)
    base = st.dictionaries(st.sampled_from(KEYS), field_filters, min_size=1, max_size=2)

    def extend(inner: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
        nested = st.dictionaries(
            st.sampled_from(KEYS), st.one_of(field_filters, inner), min_size=1, max_size=2
        )
        with_or = st.tuples(nested, st.lists(inner, min_size=2, max_size=3)).map(
            lambda pair: {**pair[0], "$or": pair[1]}
        )
        return st.one_of(nested, with_or)

    return st.recursive(base, extend, max_leaves=6)


def moto_matches(pattern: dict[str, Any], payload: dict[str, Any]) -> bool:
    return EventPattern.load(json.dumps(pattern)).matches_event(payload)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pattern=patterns(), payload=payloads())
def test_matcher_agrees_with_moto(pattern: dict[str, Any], payload: dict[str, Any]) -> None:
    filters.validate(pattern)
    expected = moto_matches(pattern, payload)
    assert filters.matches(pattern, payload) is expected
    assert (filters.explain(pattern, payload) == []) is expected


def test_the_random_run_sees_both_outcomes() -> None:
    outcomes: set[bool] = set()

    @settings(max_examples=300, deadline=None, database=None)
    @given(pattern=patterns(), payload=payloads())
    def run(pattern: dict[str, Any], payload: dict[str, Any]) -> None:
        outcomes.add(filters.matches(pattern, payload))

    run()
    assert outcomes == {True, False}


def test_dispatch_applies_the_filter_after_the_type_and_writes_nothing_for_the_rest(
    memory_services: wiring.Services,
) -> None:
    community, _ = make_community(memory_services)
    with Receiver() as rx:
        hook = make_webhook(
            memory_services,
            community.id,
            rx.url_for("/support"),
            events=["post.created"],
            filter={"data": {"space_slug": ["support"]}},
        )
        before = memory_services.tables.webhooks.get(f"C#{community.id}", f"W#{hook.id}")
        skipped = [
            make_event(community, "post.created", {"space_slug": "general"}),
            make_event(community, "post.created", {"title": "no space"}),
            make_event(community, "member.joined", {"space_slug": "support"}),
        ]
        report = dispatch_events(delivery_context(memory_services), skipped)
        assert report.attempted == 0 and report.skipped == 0
        assert memory_services.tables.deliveries.scan_all() == []
        after = memory_services.tables.webhooks.get(f"C#{community.id}", f"W#{hook.id}")
        assert after == before

        kept = make_event(community, "post.created", {"space_slug": "support"})
        report = dispatch_events(delivery_context(memory_services), [kept])
        [request] = rx.wait_for(1)
        assert json.loads(request.body)["id"] == kept.id
        assert report.delivered == 1
