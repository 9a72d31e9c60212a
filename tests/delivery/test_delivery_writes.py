"""What a delivery costs in DynamoDB writes, as DynamoDB bills them (the counting tables of
bench/dynamodb_units.py: item sizes, and every index template.yaml declares with its
projection)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench.dynamodb_units import CountingTables, Index, Op
from hookline import wiring
from hookline.adapters import http_attempt
from hookline.config import Settings
from hookline.domain.attempts import RESPONSE_BODY_LIMIT, SUCCESS_BODY_LIMIT_BYTES, kept_body
from hookline.domain.dispatch import dispatch_events
from hookline.domain.repositories import EventRepository
from tests.conftest import OPERATOR_KEY, RecordingMailer, RecordingScheduler
from tests.delivery_helpers import delivery_context, make_community, make_event, make_webhook
from tests.receivers import Receiver


@pytest.fixture
def counted() -> Iterator[CountingTables]:
    tables = CountingTables()
    wiring.configure(
        settings=Settings(
            operator_key=OPERATOR_KEY, allow_private_targets=True, delivery_timeout_seconds=2.0
        ),
        tables=tables,
        scheduler=RecordingScheduler(),
        mailer=RecordingMailer(),
        sender=http_attempt.post,
    )
    yield tables
    wiring.reset()


def _write_units(ops: list[Op]) -> int:
    return sum(op.wru + op.gsi_wru for op in ops)


def test_a_delivery_that_succeeds_at_once_costs_at_most_two_write_units(
    counted: CountingTables,
) -> None:
    services = wiring.services()
    community, _ = make_community(services)
    # The longest answer the log keeps, the longest event id and type an API client may give,
    # and a 1 KB event (the event itself is not copied in).
    with Receiver((200, {}, ("é" * RESPONSE_BODY_LIMIT).encode())) as rx:
        make_webhook(services, community.id, rx.url_for("/hook"))
        ctx = delivery_context(services)
        events = [
            make_event(community, "t" * 100, {"text": "x" * 1000}, event_id=f"{n}" * 100)
            for n in range(2)
        ]
        for event in events:
            EventRepository(counted.events).add(event, expires_at=2_000_000_000)
        # The first delivery of a webhook also records its last_triggered_at (once a minute).
        assert dispatch_events(ctx, events[:1]).delivered == 1
        counted.take()
        assert dispatch_events(ctx, events[1:]).delivered == 1
        rx.wait_for(2)
    writes = [op for op in counted.take() if op.wru or op.gsi_wru]
    assert [(op.table, op.kind, op.wru, op.gsi_wru) for op in writes] == [
        ("deliveries", "put", 1, 1)
    ]
    assert _write_units(writes) <= 2


def test_index_writes_follow_the_projection() -> None:
    keys = ("pk", "sk")
    everything = Index("all", "gsi1pk", "gsi1sk", {"ProjectionType": "ALL"})
    only_type = Index(
        "type", "pk", "gsi1sk", {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["event"]}
    )
    item = {"pk": "C#1", "sk": "E#1", "gsi1pk": "W", "gsi1sk": "t#1", "body": "b" * 2000}
    assert everything.write_units(None, item, keys) == 2
    assert only_type.write_units(None, item, keys) == 1
    # A change outside the projection leaves that index alone; a key change is two writes.
    assert only_type.write_units(item, {**item, "body": "c"}, keys) == 0
    assert everything.write_units(item, {**item, "gsi1sk": "t#2"}, keys) == 4
    # A sparse index: an item without its keys has no entry.
    assert everything.write_units(None, {"pk": "C#1", "sk": "E#2"}, keys) == 0


def test_a_2xx_answer_keeps_a_short_body_and_a_failure_a_long_one() -> None:
    body = "é" * 600
    kept = kept_body(body, success=True)
    assert body.startswith(kept) and len(kept.encode()) <= SUCCESS_BODY_LIMIT_BYTES
    assert len(kept.encode()) >= SUCCESS_BODY_LIMIT_BYTES - 1  # cut at a character boundary
    assert kept_body(body, success=False) == body[:RESPONSE_BODY_LIMIT]
