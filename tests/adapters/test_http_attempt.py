"""THE HTTP attempt, against real receivers on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import email.utils
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from hookline.adapters import http_attempt, http_pools
from hookline.adapters.http_attempt import post, retry_after_seconds
from tests.receivers import Receiver, Reply

HEADERS = {
    "Content-Type": "application/json",
    "User-Agent": "Hookline-Webhooks/1.0",
    "webhook-id": "msg_1",
    "X-Custom": "yes",
}
BODY = '{"event":"test.ping","data":{"name":"Zoë"}}'.encode()


@pytest.fixture(autouse=True)
def _fresh_pools() -> Iterator[None]:
    http_pools.close_pools()
    yield
    http_pools.close_pools()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _send(url: str, timeout: float = 2.0, **kwargs: object) -> http_attempt.AttemptOutcome:
    kwargs.setdefault("allow_private", True)
    return post(url, BODY, HEADERS, timeout=timeout, **kwargs)  # type: ignore[arg-type]


# -- the happy path ---------------------------------------------------------------------------


def test_200_delivers_exact_bytes_and_only_the_given_headers() -> None:
    with Receiver((200, {"Content-Type": "text/plain"}, "thanks")) as rx:
        outcome = _send(rx.url_for("/hooks/in?x=1"))
        [req] = rx.wait_for(1)
    assert outcome.success and outcome.status_code == 200 and outcome.error is None
    assert outcome.response_body == "thanks"
    assert outcome.retry_after_seconds is None and not outcome.gone
    assert 0 <= outcome.response_time_ms < 2000
    assert req.method == "POST" and req.path == "/hooks/in?x=1"
    assert req.body == BODY
    sent = {k.lower(): v for k, v in req.headers.items()}
    expected = {k.lower(): v for k, v in HEADERS.items()}
    expected |= {"host": f"127.0.0.1:{rx.port}", "content-length": str(len(BODY))}
    assert sent == expected


def test_nothing_is_added_when_the_caller_gives_no_user_agent() -> None:
    with Receiver() as rx:
        post(rx.url_for("/"), b"x", {"X-A": "1"}, timeout=2, allow_private=True)
        [req] = rx.wait_for(1)
    assert {k.lower() for k in req.headers} == {"x-a", "host", "content-length"}


def test_caller_cannot_override_host_or_framing() -> None:
    with Receiver() as rx:
        headers = {"Host": "evil.example", "Content-Length": "1", "X-A": "1"}
        assert post(rx.url_for("/"), b"abc", headers, timeout=2, allow_private=True).success
        [req] = rx.wait_for(1)
    assert req.header("host") == f"127.0.0.1:{rx.port}"
    assert req.header("content-length") == "3" and req.body == b"abc"


def test_keep_alive_connections_are_reused() -> None:
    with Receiver() as rx:
        outcomes = [_send(rx.url_for(f"/{i}")) for i in range(5)]
        assert all(o.success for o in outcomes)
        assert rx.connections == 1
        assert [r.path for r in rx.requests] == [f"/{i}" for i in range(5)]


def test_concurrent_attempts_share_the_pool() -> None:
    with Receiver() as rx, ThreadPoolExecutor(max_workers=32) as pool:
        outcomes = list(pool.map(lambda i: _send(rx.url_for(f"/{i}")), range(200)))
        assert all(o.success for o in outcomes), {o.error for o in outcomes}
        assert len(rx.requests) == 200
        assert rx.connections <= 64


def test_a_reused_connection_reset_by_the_receiver_is_retried_on_a_fresh_one() -> None:
    with Receiver([(200,), Reply(drop=True), (200, {}, b"second")]) as rx:
        first, second = _send(rx.url_for("/a")), _send(rx.url_for("/b"))
        assert rx.connections == 2
        assert [r.path for r in rx.requests] == ["/a", "/b", "/b"]
    assert first.success
    assert second.success and second.response_body == "second"


def test_a_fresh_connection_reset_by_the_receiver_is_a_failure() -> None:
    with Receiver(Reply(drop=True)) as rx:
        outcome = _send(rx.url_for("/"))
        assert len(rx.requests) == 1
    assert not outcome.success and outcome.status_code is None
    assert outcome.error in {
        "connection reset by the receiver",
        "connection closed by the receiver without a response",
    }


def test_non_json_and_empty_bodies_are_fine() -> None:
    with Receiver([(200, {}, b"\xff\xfe not json <html>"), (204, {}, b"")]) as rx:
        first, second = _send(rx.url_for("/")), _send(rx.url_for("/"))
    assert first.success and first.response_body == "\ufffd\ufffd not json <html>"
    assert second.success and second.status_code == 204 and second.response_body == ""


# -- failures reported as outcomes ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "text"), [(500, "HTTP 500"), (404, "HTTP 404"), (400, "HTTP 400")]
)
def test_error_statuses(status: int, text: str) -> None:
    with Receiver((status, {}, '{"error":"nope"}')) as rx:
        outcome = _send(rx.url_for("/"))
    assert not outcome.success and outcome.status_code == status
    assert outcome.error is not None and outcome.error.startswith(text)
    assert outcome.response_body == '{"error":"nope"}'


def test_410_means_gone() -> None:
    with Receiver((410,)) as rx:
        outcome = _send(rx.url_for("/"))
    assert outcome.gone and not outcome.success and outcome.status_code == 410


def test_redirect_is_not_followed() -> None:
    with Receiver((302, {"Location": "https://elsewhere.example/x"}, b"")) as rx:
        outcome = _send(rx.url_for("/"))
        time.sleep(0.05)
        assert len(rx.requests) == 1
    assert not outcome.success and outcome.status_code == 302
    assert outcome.error == "redirect (302) to https://elsewhere.example/x not followed"


def test_timeout_against_a_slow_receiver() -> None:
    with Receiver((200, {}, b"late", 5.0)) as rx:
        started = time.monotonic()
        outcome = _send(rx.url_for("/"), timeout=0.5)
        elapsed = time.monotonic() - started
    assert not outcome.success and outcome.status_code is None
    assert outcome.error == "timeout after 0.5 s"
    assert 0.45 <= elapsed < 0.9
    assert 450 <= outcome.response_time_ms < 900


def test_trickled_headers_are_bounded_by_the_total_timeout() -> None:
    # One byte every 50 ms: each read succeeds, so only a total deadline stops it.
    with Receiver(Reply(200, {}, b"x" * 100, trickle=0.05, trickle_headers=True)) as rx:
        started = time.monotonic()
        outcome = _send(rx.url_for("/"), timeout=0.5)
        elapsed = time.monotonic() - started
    assert not outcome.success and outcome.error == "timeout after 0.5 s"
    assert elapsed < 0.9


def test_trickled_body_is_bounded_by_the_total_timeout() -> None:
    with Receiver(Reply(200, {}, b"y" * 1000, trickle=0.05)) as rx:
        started = time.monotonic()
        outcome = _send(rx.url_for("/"), timeout=0.5)
        elapsed = time.monotonic() - started
        # The cut connection is not reused for the next attempt.
        rx.respond((200, {}, b"next"))
        follow_up = _send(rx.url_for("/"))
    assert elapsed < 0.9
    assert outcome.status_code == 200 and outcome.success  # the receiver did answer 200
    assert set(outcome.response_body) <= {"y"} and len(outcome.response_body) < 1000
    assert follow_up.success and follow_up.response_body == "next"


def test_connection_refused() -> None:
    port = _free_port()
    outcome = _send(f"http://127.0.0.1:{port}/hook")
    assert not outcome.success and outcome.status_code is None
    assert outcome.error == f"connection refused (127.0.0.1:{port})"


def test_huge_response_body_is_capped() -> None:
    with Receiver((200, {}, b"z" * 10_000_000)) as rx:
        started = time.monotonic()
        outcome = _send(rx.url_for("/"))
        elapsed = time.monotonic() - started
        rx.respond((200, {}, b"small"))
        follow_up = _send(rx.url_for("/"))
    assert outcome.success and outcome.response_body == "z" * 500
    assert elapsed < 1.0
    assert follow_up.success and follow_up.response_body == "small"


def test_long_response_body_keeps_500_characters() -> None:
    with Receiver((500, {}, "é" * 3000)) as rx:
        outcome = _send(rx.url_for("/"))
    assert len(outcome.response_body) <= 500 and outcome.response_body.startswith("ééé")


def test_retry_after_seconds_on_429() -> None:
    with Receiver((429, {"Retry-After": "120"}, b"slow down")) as rx:
        outcome = _send(rx.url_for("/"))
    assert not outcome.success and outcome.retry_after_seconds == 120


def test_retry_after_http_date_on_503() -> None:
    when = email.utils.formatdate(time.time() + 90, usegmt=True)
    with Receiver((503, {"Retry-After": when}, b"")) as rx:
        outcome = _send(rx.url_for("/"))
    assert outcome.retry_after_seconds is not None
    assert 85 <= outcome.retry_after_seconds <= 91


def test_retry_after_is_ignored_on_other_statuses() -> None:
    with Receiver((500, {"Retry-After": "30"}, b"")) as rx:
        assert _send(rx.url_for("/")).retry_after_seconds is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", 0),
        (" 42 ", 42),
        ("-5", None),
        ("soon", None),
        ("", None),
        (None, None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0),
    ],
)
def test_retry_after_parsing(value: str | None, expected: int | None) -> None:
    assert retry_after_seconds(value) == expected


def test_retry_after_date_relative_to_now() -> None:
    now = dt.datetime(2030, 1, 1, tzinfo=dt.UTC).timestamp()
    assert retry_after_seconds("Tue, 01 Jan 2030 00:05:00 GMT", now=now) == 300


# -- SSRF guard -------------------------------------------------------------------------------


@pytest.fixture
def no_connect(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Fail loudly if anything tries to open a connection."""
    calls: list[object] = []

    def refuse(address: object, *args: object, **kwargs: object) -> socket.socket:
        calls.append(address)
        raise AssertionError(f"connection attempted to {address}")

    monkeypatch.setattr("urllib3.util.connection.create_connection", refuse)
    return calls


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("10.0.0.5", "private address"),
        ("169.254.169.254", "link-local address"),
        ("::1", "loopback address"),
        ("::ffff:127.0.0.1", "IPv4-mapped loopback address"),
        ("100.64.1.1", "carrier-grade NAT address"),
        ("fd12:3456::1", "unique-local address"),
    ],
)
def test_private_resolution_is_refused_before_connecting(
    no_connect: list[object], address: str, reason: str
) -> None:
    looked_up: list[tuple[str, int]] = []

    def resolver(host: str, port: int) -> list[str]:
        looked_up.append((host, port))
        return [address]

    outcome = post(
        "https://api.example.com/hook",
        BODY,
        HEADERS,
        timeout=2,
        allow_private=False,
        resolver=resolver,
    )
    assert looked_up == [("api.example.com", 443)]
    assert not outcome.success and outcome.status_code is None
    assert outcome.error == f"refused: api.example.com resolves to {address} ({reason})"
    assert no_connect == []


def test_any_forbidden_address_refuses_the_name(no_connect: list[object]) -> None:
    outcome = post(
        "https://mixed.example.com/",
        BODY,
        HEADERS,
        timeout=2,
        allow_private=False,
        resolver=lambda host, port: ["93.184.216.34", "10.1.2.3"],
    )
    assert outcome.error == "refused: mixed.example.com resolves to 10.1.2.3 (private address)"
    assert no_connect == []


def test_public_looking_name_pointing_at_a_live_loopback_receiver_is_refused() -> None:
    with Receiver() as rx:
        outcome = post(
            f"https://hooks.example.com:{rx.port}/in",
            BODY,
            HEADERS,
            timeout=2,
            allow_private=False,
            resolver=lambda host, port: ["127.0.0.1"],
        )
        time.sleep(0.05)
        assert rx.requests == [] and rx.connections == 0
    assert outcome.error == "refused: hooks.example.com resolves to 127.0.0.1 (loopback address)"


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/",
        "https://2130706433/",
        "https://0x7f.1/",
        "https://[::1]/",
        "https://[::ffff:127.0.0.1]/",
        "https://169.254.169.254/latest/meta-data/",
    ],
)
def test_literal_private_addresses_are_refused(no_connect: list[object], url: str) -> None:
    outcome = post(url, BODY, HEADERS, timeout=2, allow_private=False)
    assert outcome.error is not None and outcome.error.startswith("refused: ")
    assert "is not a public address" in outcome.error
    assert no_connect == []


def test_plain_http_needs_allow_private(no_connect: list[object]) -> None:
    outcome = post(
        "http://api.example.com/",
        BODY,
        HEADERS,
        timeout=2,
        allow_private=False,
        resolver=lambda host, port: ["93.184.216.34"],
    )
    assert outcome.error == "refused: plain http targets are not allowed; use https"


def test_credentials_in_url_are_refused(no_connect: list[object]) -> None:
    outcome = _send("http://user:pw@127.0.0.1:1/")
    assert outcome.error == "refused: URL must not contain a user name or password"


def test_dns_failure_is_reported() -> None:
    def resolver(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    outcome = post(
        "https://nx.example.com/", BODY, HEADERS, timeout=2, allow_private=False, resolver=resolver
    )
    assert outcome.error == "DNS lookup failed for nx.example.com: Name or service not known"


def test_slow_dns_counts_against_the_timeout() -> None:
    release = threading.Event()

    def resolver(host: str, port: int) -> list[str]:
        release.wait(5)
        return ["93.184.216.34"]

    started = time.monotonic()
    outcome = post(
        "https://slow.example.com/",
        BODY,
        HEADERS,
        timeout=0.3,
        allow_private=False,
        resolver=resolver,
    )
    release.set()
    assert outcome.error == "DNS lookup for slow.example.com timed out"
    assert time.monotonic() - started < 0.7


# -- pinning --------------------------------------------------------------------------------


def test_resolved_address_is_pinned_and_host_header_kept() -> None:
    lookups: list[str] = []

    def resolver(host: str, port: int) -> list[str]:
        lookups.append(host)
        return ["127.0.0.1"]

    with Receiver() as rx:
        outcome = post(
            f"http://receiver.test:{rx.port}/hook",
            BODY,
            HEADERS,
            timeout=2,
            allow_private=True,
            resolver=resolver,
        )
        [req] = rx.wait_for(1)
    assert outcome.success, outcome.error
    assert lookups == ["receiver.test"]
    assert req.header("Host") == f"receiver.test:{rx.port}"
    assert req.body == BODY


def test_next_address_is_tried_when_one_refuses() -> None:
    with Receiver() as rx:
        outcome = post(
            f"http://receiver.test:{rx.port}/",
            BODY,
            HEADERS,
            timeout=2,
            allow_private=True,
            resolver=lambda host, port: ["::1", "127.0.0.1"],
        )
        assert outcome.success, outcome.error
        assert len(rx.requests) == 1


def test_plain_http_reaches_only_loopback_even_on_the_local_stack() -> None:
    outcome = post(
        "http://receiver.test:8080/",
        BODY,
        HEADERS,
        timeout=2,
        allow_private=True,
        resolver=lambda host, port: ["10.0.0.5"],
    )
    assert not outcome.success and outcome.status_code is None
    assert outcome.error is not None and "loopback targets only" in outcome.error


# -- TLS: SNI and certificate checks use the host name while the socket goes to the pinned IP -----


def _tls_material(tmp: Path, name: str) -> tuple[Path, Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)

    def build(
        subject: str,
        key: ec.EllipticCurvePrivateKey,
        issuer: x509.Name,
        signer: ec.EllipticCurvePrivateKey,
        ca: bool,
    ) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if ca:
            builder = builder.add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                critical=True,
            )
        else:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False
            )
        return builder.sign(signer, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Hookline Test CA")])
    ca_cert = build("Hookline Test CA", ca_key, ca_name, ca_key, True)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = build(name, leaf_key, ca_name, ca_key, False)
    pem = serialization.Encoding.PEM
    ca_path, cert_path, key_path = tmp / "ca.pem", tmp / "cert.pem", tmp / "key.pem"
    ca_path.write_bytes(ca_cert.public_bytes(pem))
    cert_path.write_bytes(leaf.public_bytes(pem))
    key_path.write_bytes(
        leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return ca_path, cert_path, key_path


@pytest.fixture
def tls_receiver(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Receiver, list[str]]]:
    ca, cert, key = _tls_material(tmp_path, "receiver.test")
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    sni_seen: list[str] = []
    server_ctx.sni_callback = lambda sock, name, ctx: sni_seen.append(name or "")  # type: ignore[assignment,func-returns-value]
    client_ctx = ssl.create_default_context(cafile=str(ca))
    monkeypatch.setattr(http_pools, "_TLS_CONTEXT", client_ctx)
    with Receiver(ssl_context=server_ctx) as rx:
        yield rx, sni_seen


def test_https_to_pinned_address_checks_the_certificate_for_the_host_name(
    tls_receiver: tuple[Receiver, list[str]],
) -> None:
    rx, sni_seen = tls_receiver
    outcome = post(
        f"https://receiver.test:{rx.port}/secure",
        BODY,
        HEADERS,
        timeout=2,
        allow_private=True,
        resolver=lambda host, port: ["127.0.0.1"],
    )
    assert outcome.success, outcome.error
    [req] = rx.wait_for(1)
    assert req.header("Host") == f"receiver.test:{rx.port}" and req.body == BODY
    assert sni_seen == ["receiver.test"]


def test_https_certificate_for_another_name_fails(
    tls_receiver: tuple[Receiver, list[str]],
) -> None:
    rx, _ = tls_receiver
    outcome = post(
        f"https://other.test:{rx.port}/",
        BODY,
        HEADERS,
        timeout=2,
        allow_private=True,
        resolver=lambda host, port: ["127.0.0.1"],
    )
    assert not outcome.success and outcome.status_code is None
    assert outcome.error is not None and outcome.error.startswith("TLS error: ")
    assert "other.test" in outcome.error or "mismatch" in outcome.error
    assert rx.requests == []
