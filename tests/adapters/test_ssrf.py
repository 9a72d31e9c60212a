"""SSRF: webhook targets inside the network are refused at create where the URL alone decides it,
and always at delivery, in every spelling; redirects are never followed.

Nothing here connects anywhere but 127.0.0.1: a socket spy records every connect() and refuses
any address other than loopback, so a test that "would have" reached 169.254.169.254 fails
loudly instead of reaching it. Host names are resolved by stub resolvers, never by DNS.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from hookline import wiring
from hookline.adapters import http_attempt, http_pools
from hookline.config import Settings
from hookline.domain import communities
from hookline.domain.delivery import delivery_id_for
from hookline.domain.repositories import CommunityRepository, WebhookRepository
from hookline_dev.memory import MemoryTables
from tests.apigw import api_event, call
from tests.receivers import Receiver, Reply
from tests.reliability_harness import Pipeline

METADATA = "169.254.169.254"

#: Every address class, IPv4 and IPv6 in every spelling a resolver or a URL parser takes.
FORBIDDEN_LITERALS = [
    # loopback, unspecified
    "127.0.0.1",
    "127.1",
    "127.255.255.254",
    "[::1]",
    "0.0.0.0",  # noqa: S104
    "0",
    "[::]",
    # private
    "10.0.0.1",
    "10.1",
    "10.255.255.255",
    "172.16.0.1",
    "172.31.255.254",
    "192.168.0.1",
    "192.168.255.255",
    # carrier-grade NAT
    "100.64.0.1",
    "100.127.255.254",
    # link-local and the metadata service
    METADATA,
    "169.254.0.1",
    "[fe80::1]",
    # unique-local
    "[fd00::1]",
    "[fd12:3456:789a::1]",
    "[fc00::1]",
    # IPv4-mapped, NAT64, 6to4 and IPv4-compatible IPv6 carrying inner addresses
    "[::ffff:127.0.0.1]",
    "[::ffff:7f00:1]",
    "[::ffff:169.254.169.254]",
    "[::ffff:a9fe:a9fe]",
    "[::ffff:10.0.0.1]",
    "[0:0:0:0:0:ffff:c0a8:0101]",
    "[64:ff9b::a9fe:a9fe]",
    "[2002:a9fe:a9fe::1]",
    "[::127.0.0.1]",
    # IPv4-translated (RFC 2765)
    "[::ffff:0:127.0.0.1]",
    "[::ffff:0:7f00:1]",
    "[::ffff:0:a9fe:a9fe]",
    "[::ffff:0:10.0.0.1]",
    # decimal, octal and hex spellings, whole or per part
    "2130706433",
    "2852039166",
    "017700000001",
    "0x7f000001",
    "0x7f.0.0.1",
    "0177.0.0.1",
    "0177.0000.0000.0001",
    "0xa9fea9fe",
    "0xA9.0xFE.0xA9.0xFE",
    "0251.0376.0251.0376",
    "169.254.43518",
    "0x0a.0x00.0x00.0x01",
    "012.0.0.1",
    "167772161",
    "3232235777",
    # multicast, broadcast, reserved
    "224.0.0.1",
    "255.255.255.255",
    "240.0.0.1",
    "[ff02::1]",
]

FORBIDDEN_NAMES = [
    "localhost",
    "LOCALHOST",
    "localhost.",
    "api.localhost",
    "metadata.google.internal",
    "printer.local",
    "intranet",
]

#: What each literal is, as an ipaddress object (for the delivery-time resolver stub).
RESOLVED_PRIVATE = [
    "127.0.0.1",
    "10.0.0.7",
    "172.20.1.1",
    "192.168.1.20",
    "100.100.100.100",
    METADATA,
    "0.0.0.0",  # noqa: S104
    "::1",
    "fd00::5",
    "fe80::1",
    "::ffff:127.0.0.1",
    "::ffff:169.254.169.254",
    "64:ff9b::a00:1",
    "::ffff:0:127.0.0.1",
    "::ffff:0:a9fe:a9fe",
]


class ConnectSpy:
    """Records every socket connect(); anything but loopback is refused before it happens."""

    def __init__(self) -> None:
        self.connects: list[tuple[str, int]] = []

    def check(self, address: Any) -> None:
        host, port = str(address[0]), int(address[1])
        self.connects.append((host, port))
        if not ipaddress.ip_address(host.split("%")[0]).is_loopback:
            raise AssertionError(f"attempted a connection to {host}:{port}")


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Iterator[ConnectSpy]:
    recorder = ConnectSpy()
    original_connect = socket.socket.connect
    original_connect_ex = socket.socket.connect_ex

    def connect(self: socket.socket, address: Any) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            recorder.check(address)
        original_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            recorder.check(address)
        return original_connect_ex(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    http_pools.close_pools()
    yield recorder
    http_pools.close_pools()


def _literal_url(host: str, path: str = "/hook") -> str:
    return f"https://{host}{path}"


# -- at create: the URL alone decides ---------------------------------------------------------


@pytest.fixture
def api() -> tuple[str, str]:
    """A community on in-memory tables, the API as deployed (private targets refused)."""
    tables = MemoryTables()
    wiring.configure(settings=Settings(allow_private_targets=False), tables=tables)
    community, key, _ = communities.create_community(
        CommunityRepository(tables.communities), name="Acme", site_url="https://acme.example"
    )
    return community.id, key.id


def _create(api: tuple[str, str], url: str) -> Any:
    community_id, key_id = api
    return call(
        api_event(
            "api-create-webhook",
            community_id=community_id,
            key_id=key_id,
            body={"url": url, "events": ["post.*"]},
        )
    )


def _stored_urls(community_id: str) -> list[str]:
    repo = WebhookRepository(wiring.services().tables.webhooks)
    return [w.url for w in repo.all(community_id)]


@pytest.mark.parametrize("host", FORBIDDEN_LITERALS + FORBIDDEN_NAMES)
def test_create_refuses_internal_targets(api: tuple[str, str], host: str) -> None:
    response = _create(api, _literal_url(host))
    assert response.status == 400, response.body
    assert response.body["code"] == "invalid_url"
    assert response.body["data"] == {"status": 400, "field": "url"}
    assert _stored_urls(api[0]) == []


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/hook",
        "HTTP://example.com/hook",
        "ftp://example.com/hook",
        "file:///etc/passwd",
        "gopher://127.0.0.1:70/_x",
        "dict://127.0.0.1:11211/stat",
        "https://user:secret@example.com/hook",
        "https://example.com@169.254.169.254/",
        "https://169.254.169.254\\@example.com/",
        "//example.com/hook",
        "https://example.com:0/hook",
        "https:///hook",
        "https://exa mple.com/",
        "https://example.com/\r\nHost: 169.254.169.254",
        "https://[::ffff:169.254.169.254/",
        "javascript:alert(1)",
    ],
)
def test_create_refuses_other_schemes_and_malformed_urls(api: tuple[str, str], url: str) -> None:
    response = _create(api, url)
    assert response.status == 400, response.body
    assert response.body["code"] == "invalid_url" and response.body["data"]["field"] == "url"
    assert _stored_urls(api[0]) == []


def test_an_update_cannot_point_a_webhook_inside(api: tuple[str, str]) -> None:
    community_id, key_id = api
    created = _create(api, "https://hooks.example.com/in")
    assert created.status == 201
    for url in ("https://169.254.169.254/latest/meta-data/", "https://[::ffff:a9fe:a9fe]/"):
        for method in ("PATCH", "PUT"):
            response = call(
                api_event(
                    "api-update-webhook",
                    community_id=community_id,
                    webhook_id=created.body["id"],
                    key_id=key_id,
                    method=method,
                    body={"url": url},
                )
            )
            assert response.status == 400 and response.body["data"]["field"] == "url"
    assert _stored_urls(community_id) == ["https://hooks.example.com/in"]


def test_a_public_name_is_accepted_at_create_and_checked_at_delivery(api: tuple[str, str]) -> None:
    # Whether a name points inside is only known when it is resolved: at delivery (below).
    assert _create(api, "https://internal.example.com/hook").status == 201


# -- at delivery: every address is checked, the connection pinned -----------------------------


def _post(url: str, resolver: Any = None, *, allow_private: bool = False) -> Any:
    return http_attempt.post(
        url,
        b"{}",
        {"Content-Type": "application/json"},
        timeout=2.0,
        allow_private=allow_private,
        resolver=resolver,
    )


@pytest.mark.parametrize("host", FORBIDDEN_LITERALS)
def test_delivery_refuses_internal_literals_without_connecting(spy: ConnectSpy, host: str) -> None:
    looked_up: list[str] = []

    def resolver(name: str, port: int) -> list[str]:
        looked_up.append(name)
        return []

    outcome = _post(_literal_url(host), resolver)
    assert not outcome.success and outcome.status_code is None
    assert outcome.error and outcome.error.startswith("refused: ")
    assert spy.connects == [] and looked_up == []


@pytest.mark.parametrize("address", RESOLVED_PRIVATE)
def test_delivery_refuses_names_resolving_inside(spy: ConnectSpy, address: str) -> None:
    outcome = _post("https://hooks.example.com/x", lambda name, port: [address])
    assert not outcome.success and outcome.status_code is None
    assert outcome.error and outcome.error.startswith("refused: hooks.example.com resolves to ")
    assert spy.connects == []


def test_one_internal_address_among_public_ones_refuses_the_name(spy: ConnectSpy) -> None:
    outcome = _post("https://hooks.example.com/x", lambda n, p: ["93.184.216.34", "10.0.0.1"])
    assert outcome.error == "refused: hooks.example.com resolves to 10.0.0.1 (private address)"
    assert spy.connects == []


@pytest.mark.parametrize("name", FORBIDDEN_NAMES)
def test_delivery_refuses_local_names_that_resolve_to_loopback(spy: ConnectSpy, name: str) -> None:
    outcome = _post(f"https://{name}/x", lambda n, p: ["127.0.0.1", "::1"])
    assert outcome.error and outcome.error.startswith("refused: ")
    assert spy.connects == []


def test_plain_http_is_refused_at_delivery_in_aws(spy: ConnectSpy) -> None:
    outcome = _post("http://hooks.example.com/x", lambda n, p: ["93.184.216.34"])
    assert outcome.error == "refused: plain http targets are not allowed; use https"
    assert spy.connects == []


def test_the_connection_goes_to_the_address_that_was_checked(spy: ConnectSpy) -> None:
    """One lookup per attempt, and the socket connects to that answer: a resolver that changes
    its mind afterwards (DNS rebinding) is never asked again."""
    answers = iter([["127.0.0.1"], [METADATA], [METADATA]])
    lookups: list[str] = []

    def rebinding(name: str, port: int) -> list[str]:
        lookups.append(name)
        return next(answers)

    with Receiver() as rx:
        outcome = _post(f"http://rebind.example:{rx.port}/x", rebinding, allow_private=True)
        [request] = rx.wait_for(1)
    assert outcome.success and lookups == ["rebind.example"]
    assert spy.connects == [("127.0.0.1", rx.port)]
    assert request.header("Host") == f"rebind.example:{rx.port}"


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirects_to_the_metadata_service_are_never_followed(spy: ConnectSpy, status: int) -> None:
    location = f"http://{METADATA}/latest/meta-data/iam/security-credentials/"
    with Receiver(Reply(status, {"Location": location}, b"")) as rx:
        outcome = _post(rx.url_for("/hook"), allow_private=True)
        assert len(rx.wait_for(1)) == 1
    assert not outcome.success and outcome.status_code == status
    assert outcome.error == f"redirect ({status}) to {location} not followed"
    assert {host for host, _ in spy.connects} == {"127.0.0.1"}


def test_a_redirect_to_an_allowed_target_is_not_followed_either(spy: ConnectSpy) -> None:
    with Receiver() as target, Receiver(Reply(302, {"Location": ""})) as redirector:
        redirector.respond(Reply(302, {"Location": target.url_for("/elsewhere")}, b""))
        outcome = _post(redirector.url_for("/hook"), allow_private=True)
        assert len(redirector.wait_for(1)) == 1
    assert outcome.status_code == 302 and not outcome.success
    assert target.requests == []


# -- through the pipeline: the delivery log says why -----------------------------------------


def test_a_webhook_whose_name_now_points_inside_is_refused_and_logged(spy: ConnectSpy) -> None:
    resolver = {"hooks.example.com": [METADATA]}
    sender = functools.partial(http_attempt.post, resolver=lambda name, port: resolver[name])
    pipeline = Pipeline.create(
        Settings(allow_private_targets=False, delivery_timeout_seconds=1.0), sender=sender
    )
    hook = webhooks_create(pipeline, "https://hooks.example.com/in")
    event, _ = pipeline.publish()
    pipeline.stream.deliver([event])
    pipeline.retries.run()

    delivery_id = delivery_id_for(event, hook.id)
    log = pipeline.attempts(delivery_id)
    assert len(log) == 1 + hook.retry_count
    expected = f"refused: hooks.example.com resolves to {METADATA} (link-local address)"
    assert {a.error for a in log} == {expected}
    delivery = pipeline.delivery(delivery_id)
    assert delivery is not None and delivery.state == "failed"
    assert spy.connects == []


def test_a_redirecting_receiver_fails_the_attempt_and_is_retried(spy: ConnectSpy) -> None:
    pipeline = Pipeline.create(Settings(allow_private_targets=True, delivery_timeout_seconds=1.0))
    location = f"http://{METADATA}/latest/meta-data/"
    with Receiver([Reply(302, {"Location": location}, b""), (200,)]) as rx:
        hook = pipeline.webhook(rx.url_for("/hook"), retry_count=2)
        event, _ = pipeline.publish()
        pipeline.stream.deliver([event])
        pipeline.retries.run()
        assert len(rx.requests) == 2

    log = pipeline.attempts(delivery_id_for(event, hook.id))
    assert [(a.status_code, a.success) for a in log] == [(302, False), (200, True)]
    assert log[0].error == f"redirect (302) to {location} not followed"
    assert {host for host, _ in spy.connects} == {"127.0.0.1"}


def webhooks_create(pipeline: Pipeline, url: str) -> Any:
    """A webhook created through the domain with the deployed URL policy."""
    from hookline.domain import webhooks

    return webhooks.create_webhook(
        pipeline.ctx.webhooks,
        pipeline.community.id,
        {"url": url, "events": ["*"], "retry_count": 1},
        allow_private=False,
    )
