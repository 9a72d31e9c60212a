"""Helpers for the delivery tests: records, a counting table, stream records, the dispatch handler.

ctx = delivery_context(services)                  # DeliveryContext over wiring.Services
community, key = make_community(services)        # stored, with an admin key
hook = make_webhook(services, community.id, url, events=["post.*"], secret=SECRET)
event = make_event(community, "post.created", {"title": "Hi"})
batch = stream_batch([event, ...])                 # Lambda DynamoDB stream event
handler = dispatch_handler()                       # functions/dispatch/app.py lambda_handler
"""

from __future__ import annotations

import base64
import copy
import importlib.util
import json
import socket
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from boto3.dynamodb.types import TypeSerializer

from hookline import clock, ids, wiring
from hookline.adapters.dynamodb import to_dynamo
from hookline.domain import communities
from hookline.domain.delivery import DeliveryContext
from hookline.domain.models import ApiKey, Community, Event, Webhook
from hookline.domain.repositories import CommunityRepository, WebhookRepository
from hookline.ports import Item, Page, Query
from hookline_dev.memory import MemoryTable
from tests.apigw import sample

ROOT = Path(__file__).resolve().parent.parent
SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
OLD_SECRET = "whsec_" + base64.b64encode(b"fedcba9876543210fedcba9876543210").decode()


def delivery_context(services: wiring.Services | None = None) -> DeliveryContext:
    return DeliveryContext.from_services(services or wiring.services())


def make_community(
    services: wiring.Services, *, site_url: str = "https://forum.example.com"
) -> tuple[Community, ApiKey]:
    repo = CommunityRepository(services.tables.communities)
    community, key, _plaintext = communities.create_community(
        repo, name="Acme Forum", site_url=site_url
    )
    return community, key


def make_webhook(
    services: wiring.Services,
    community_id: str,
    url: str,
    *,
    events: Sequence[str] = ("*",),
    secret: str | None = SECRET,
    **fields: Any,
) -> Webhook:
    """A webhook stored as is (no URL policy: tests point them at 127.0.0.1)."""
    now = clock.now_iso()
    webhook = Webhook(
        id=ids.new_id("wh"),
        community_id=community_id,
        url=url,
        events=list(events),
        secret=secret,
        created_at=now,
        updated_at=now,
        **fields,
    )
    WebhookRepository(services.tables.webhooks).put(webhook, new=True)
    return webhook


def make_event(
    community: Community,
    event_type: str = "post.created",
    data: dict[str, Any] | None = None,
    *,
    actor: dict[str, Any] | None = None,
    event_id: str | None = None,
    operational: bool = False,
) -> Event:
    return Event(
        id=event_id or ids.new_id("evt"),
        community_id=community.id,
        event=event_type,
        data=data if data is not None else {"post_id": 1024, "title": "How do I reset it?"},
        actor=actor,
        site_url=community.site_url,
        timestamp=clock.now_iso(),
        operational=operational,
    )


def closed_port() -> int:
    """A loopback port nothing listens on (connections to it are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class CountingTable:
    """Wraps a Table and counts queries per partition (to check one lookup per community)."""

    def __init__(self, inner: MemoryTable, *, fail_partitions: frozenset[str] = frozenset()):
        self.inner = inner
        self.queries: Counter[str] = Counter()
        self.fail_partitions = fail_partitions
        self._lock = threading.Lock()

    def query(self, query: Query) -> Page:
        with self._lock:
            self.queries[query.partition] += 1
        if query.partition in self.fail_partitions:
            raise RuntimeError(f"table unavailable for {query.partition}")
        return self.inner.query(query)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


# --------------------------------------------------------------------------------------------
# DynamoDB stream records in the Lambda event shape

_serializer = TypeSerializer()


def event_item(event: Event, *, expires_at: int | None = None) -> Item:
    """The events-table item of an event (as EventRepository.add stores it)."""
    item = {"pk": f"C#{event.community_id}", "sk": f"E#{event.id}", **event.model_dump()}
    item["expires_at"] = expires_at or clock.epoch_seconds() + 7 * 86400
    return item


def to_attribute_values(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _serializer.serialize(to_dynamo(v)) for k, v in item.items()}


def stream_record(
    image: Mapping[str, Any], sequence_number: str, *, event_name: str = "INSERT"
) -> dict[str, Any]:
    """One Lambda DynamoDB stream record (shape of events/dispatch-stream-batch.json)."""
    record: dict[str, Any] = copy.deepcopy(sample("dispatch-stream-batch")["Records"][0])
    record["eventName"] = event_name
    record["eventID"] = f"evt{sequence_number}"
    new_image = to_attribute_values(image)
    record["dynamodb"].update(
        Keys={"pk": new_image["pk"], "sk": new_image["sk"]},
        NewImage=new_image,
        SequenceNumber=sequence_number,
        SizeBytes=len(json.dumps(new_image)),
    )
    return record


def stream_batch(events: Sequence[Event], *, first_sequence: int = 1000) -> dict[str, Any]:
    records = [stream_record(event_item(e), str(first_sequence + i)) for i, e in enumerate(events)]
    return {"Records": records}


def load_function(name: str) -> Callable[[dict[str, Any], Any], Any]:
    """functions/<name>/app.py's lambda_handler, imported by path as Lambda would run it."""
    path = ROOT / "functions" / name / "app.py"
    spec = importlib.util.spec_from_file_location(f"test_function_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.lambda_handler  # type: ignore[no-any-return]


def dispatch_handler() -> Callable[[dict[str, Any], Any], Any]:
    return load_function("dispatch")
