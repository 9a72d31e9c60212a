"""Driving the full local stack (`hookline local`: API Gateway emulation → ApiFunction → local
tables → stream poller → DispatchFunction → delivery queue → DeliverFunction) over real HTTP,
for B1's second run, B2's local-stack variants and B5."""

from __future__ import annotations

import contextlib
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from bench import harness


@dataclass
class StackClient:
    """A started local stack and an admin key of one community with webhooks."""

    stack: Any
    community_id: str
    key: str
    webhook_ids: list[str] = field(default_factory=list)
    _local: threading.local = field(default_factory=threading.local)

    def session(self) -> Any:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = harness.loopback_session()
        return session

    def publish(self, data: dict[str, Any], event: str = "post.created") -> str:
        """POST /v1/communities/<id>/events; returns the event id (raises unless 202)."""
        response = self.session().post(
            f"{self.stack.base_url}/v1/communities/{self.community_id}/events",
            json={"event": event, "data": data},
            headers={"Authorization": f"Bearer {self.key}"},
            timeout=30,
        )
        if response.status_code != 202:
            raise RuntimeError(f"publish answered {response.status_code}: {response.text[:300]}")
        return str(response.json()["id"])


@contextlib.contextmanager
def local_stack(urls: Sequence[str]) -> Iterator[StackClient]:
    """A local stack on a free loopback port with one community and one webhook per URL."""
    from hookline_dev.local import LocalOptions, LocalStack

    with tempfile.TemporaryDirectory(prefix="hookline-bench-") as data_dir:
        stack = LocalStack(
            LocalOptions(
                host="127.0.0.1",
                port=0,
                allow_private_targets=True,
                data_dir=Path(data_dir),
                # As `hookline local` runs: every invocation's writes fsynced to the journal.
                persist=True,
                log_level="WARNING",
            )
        )
        stack.start()
        try:
            yield _community(stack, urls)
        finally:
            stack.stop()
            from hookline import wiring

            wiring.reset()


def other_community(client: StackClient, urls: Sequence[str]) -> StackClient:
    """A second community on the same stack, with one webhook per URL."""
    return _community(client.stack, urls, name="Other Forum")


def delivery_state(client: StackClient, event_id: str, webhook_index: int = 0) -> str:
    """What the stack recorded for one event's delivery to webhook ``webhook_index``: its state
    (``delivered``, ``retrying``...) or ``no delivery`` when the dispatcher never made one."""
    webhook_id = client.webhook_ids[webhook_index]
    response = client.session().get(
        f"{client.stack.base_url}/v1/communities/{client.community_id}/events/{event_id}",
        headers={"Authorization": f"Bearer {client.key}"},
        timeout=30,
    )
    if response.status_code != 200:
        return f"HTTP {response.status_code}"
    for delivery in response.json().get("deliveries", []):
        if delivery.get("webhook_id") == webhook_id:
            return str(delivery.get("state", "unknown"))
    return "no delivery"


def _community(stack: Any, urls: Sequence[str], name: str = "Bench Forum") -> StackClient:
    operator = {"Authorization": f"Bearer {stack.operator_key}"}
    response = requests.post(
        f"{stack.base_url}/v1/communities",
        json={"name": name, "site_url": "https://forum.example.com"},
        headers=operator,
        timeout=30,
    )
    response.raise_for_status()
    body = response.json()
    client = StackClient(stack, body["id"], body["api_key"]["key"])
    for index, url in enumerate(urls):
        created = requests.post(
            f"{stack.base_url}/v1/communities/{client.community_id}/webhooks",
            json={"name": f"bench {index}", "url": url, "events": ["post.*"]},
            headers={"Authorization": f"Bearer {client.key}"},
            timeout=30,
        )
        created.raise_for_status()
        client.webhook_ids.append(created.json()["id"])
    return client


def payload(client: StackClient, index: int, size: int = harness.PAYLOAD_BYTES) -> dict[str, Any]:
    """Event data that makes the delivered JSON body ``size`` bytes, envelope included."""
    from hookline import clock, ids
    from hookline.domain.models import Event
    from hookline.domain.payload import render_body

    def data(padding: int) -> dict[str, Any]:
        return {"post_id": index, "title": "Benchmark topic", "body": "x" * max(0, padding)}

    probe = Event(
        id=ids.new_id("evt"),
        community_id=client.community_id,
        event="post.created",
        data=data(0),
        site_url="https://forum.example.com",
        timestamp=clock.now_iso(),
    )
    return data(size - len(render_body("json", probe)))
