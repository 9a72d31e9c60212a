"""THE HTTP attempt: one POST of one delivery, used by the dispatcher, the retry step and the
test endpoint.

What it guarantees:

* SSRF guard: the host is resolved once; if any address is not globally routable the attempt is
  refused (unless ``allow_private``), and the connection goes to the very address that was
  checked - no second lookup. For https, SNI and certificate checks still use the host name and
  the Host header is the URL's host[:port].
* One time budget: ``timeout`` covers DNS, connect, send and read together. A watchdog cuts the
  socket at the deadline, so a receiver trickling bytes cannot hold us past it. (The TLS
  handshake itself is bounded per socket operation by the time left when it started.)
* Redirects are never followed; the response body is read no further than 4 KiB.
* Nothing raises: every failure becomes an ``AttemptOutcome`` with an ``error`` text.
* Keep-alive: connections come from hookline.adapters.http_pools, which also enforces the
  deadline, so repeated deliveries to a receiver reuse their connections.

The caller passes complete headers; this adds only Host and Content-Length.
"""

from __future__ import annotations

import contextlib
import email.utils
import http.client
import ipaddress
import math
import socket
import ssl
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import UTC
from urllib.parse import urlsplit

from urllib3.exceptions import (
    ClosedPoolError,
    ConnectTimeoutError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)
from urllib3.response import BaseHTTPResponse
from urllib3.util import SKIP_HEADER
from urllib3.util.timeout import Timeout

from hookline.adapters import http_pools
from hookline.adapters.http_pools import Deadline
from hookline.domain.attempts import RESPONSE_BODY_LIMIT, AttemptOutcome
from hookline.domain.targets import is_forbidden_address, parse_host_ip

Resolver = Callable[[str, int], list[str]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Bytes of a response body we read at most; the rest is never downloaded.
BODY_READ_LIMIT = 4096
#: Retries of a request whose reused keep-alive connection turned out to be closed.
_STALE_RETRIES = 2

_DEFAULT_PORTS = {"http": 80, "https": 443}


class _Refused(Exception):
    """No request can or may be sent; the message is the outcome's error."""


# --------------------------------------------------------------------------------------------
# Resolution

_DNS_POOL = ThreadPoolExecutor(max_workers=32, thread_name_prefix="hookline-dns")


def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to, in the system's preferred order."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    seen: list[str] = []
    for info in infos:
        address = str(info[4][0])
        if address not in seen:
            seen.append(address)
    return seen


def _resolve(host: str, port: int, resolver: Resolver, deadline: Deadline) -> list[IPAddress]:
    remaining = deadline.remaining()
    if remaining <= 0:
        raise _Refused(f"DNS lookup for {host} timed out")
    future = _DNS_POOL.submit(resolver, host, port)
    try:
        names = future.result(timeout=remaining)
    except FutureTimeout:
        future.cancel()
        raise _Refused(f"DNS lookup for {host} timed out") from None
    except socket.gaierror as exc:
        raise _Refused(f"DNS lookup failed for {host}: {exc.strerror or exc}") from None
    except Exception as exc:
        raise _Refused(f"DNS lookup failed for {host}: {exc}") from None
    addresses: list[IPAddress] = []
    for name in names:
        try:
            addresses.append(ipaddress.ip_address(name))
        except ValueError:
            raise _Refused(f"DNS lookup for {host} returned an invalid address {name!r}") from None
    if not addresses:
        raise _Refused(f"DNS lookup failed for {host}: no addresses")
    return addresses


# --------------------------------------------------------------------------------------------
# The attempt


@dataclass(frozen=True)
class _Target:
    scheme: str
    host: str  # ASCII host name or IP literal, no brackets
    port: int
    target: str  # path and query
    host_header: str
    literal: IPAddress | None


def _parse(url: str, allow_private: bool) -> _Target:
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise _Refused(f"invalid URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise _Refused(f"invalid URL: scheme must be https, not {scheme or 'missing'!r}")
    if scheme == "http" and not allow_private:
        raise _Refused("refused: plain http targets are not allowed; use https")
    if "@" in parts.netloc:
        raise _Refused("refused: URL must not contain a user name or password")
    host = parts.hostname or ""
    if not host:
        raise _Refused("invalid URL: missing host")
    literal = parse_host_ip(host)
    if literal is None:
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise _Refused(f"invalid URL: bad host name {host!r}") from None
    port = port or _DEFAULT_PORTS[scheme]
    if not 0 < port < 65536:
        raise _Refused(f"invalid URL: bad port {port}")
    shown = f"[{host}]" if ":" in host else host
    host_header = shown if port == _DEFAULT_PORTS[scheme] else f"{shown}:{port}"
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return _Target(scheme, host, port, target, host_header, literal)


def _show(address: IPAddress) -> str:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return f"::ffff:{address.ipv4_mapped}"  # Python 3.11 would print ::ffff:7f00:1
    return str(address)


def _check(target: _Target, addresses: list[IPAddress]) -> None:
    for address in addresses:
        reason = is_forbidden_address(address)
        if reason is None:
            continue
        if target.literal is not None:
            raise _Refused(f"refused: {target.host} is not a public address ({reason})")
        raise _Refused(f"refused: {target.host} resolves to {_show(address)} ({reason})")


def _request_headers(headers: Mapping[str, str], host_header: str) -> dict[str, str]:
    framing = {"host", "content-length", "transfer-encoding"}
    out = {k: v for k, v in headers.items() if k.lower() not in framing}
    lowered = {k.lower() for k in out}
    # urllib3 and http.client would add these; we send only what the caller gave us.
    if "user-agent" not in lowered:
        out["User-Agent"] = SKIP_HEADER
    if "accept-encoding" not in lowered:
        out["Accept-Encoding"] = SKIP_HEADER
    out["Host"] = host_header
    return out


def retry_after_seconds(value: str | None, *, now: float | None = None) -> int | None:
    """Seconds a Retry-After header asks for (delta-seconds or an HTTP-date), or None."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.isdigit():
        return int(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = time.time() if now is None else now
    return max(0, math.ceil(when.timestamp() - current))


def _timeout_text(timeout: float) -> str:
    return f"timeout after {timeout:g} s"


def _describe(exc: BaseException, target: _Target, ip: str, timeout: float) -> str:
    where = f"{ip}:{target.port}" if ":" not in ip else f"[{ip}]:{target.port}"
    if isinstance(exc, NewConnectionError):
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, ConnectionRefusedError):
            return f"connection refused ({where})"
        if isinstance(cause, OSError) and cause.strerror:
            return f"connection failed ({where}): {cause.strerror.lower()}"
        return f"connection failed ({where})"
    if isinstance(exc, ConnectTimeoutError):
        return f"connect {_timeout_text(timeout)} ({where})"
    if isinstance(exc, ReadTimeoutError | TimeoutError):
        return _timeout_text(timeout)
    if isinstance(exc, SSLError | ssl.SSLError | ssl.CertificateError):
        inner = exc.args[0] if isinstance(exc, SSLError) and exc.args else exc
        reason = getattr(inner, "verify_message", None) or getattr(inner, "reason", None)
        return f"TLS error: {reason or inner}"
    if isinstance(exc, ProtocolError):
        inner = exc.args[1] if len(exc.args) > 1 else None
        if isinstance(inner, http.client.RemoteDisconnected):
            return "connection closed by the receiver without a response"
        if isinstance(inner, ConnectionResetError):
            return "connection reset by the receiver"
        if isinstance(inner, BrokenPipeError):
            return "connection closed by the receiver while sending"
        return f"connection error: {inner or exc}"
    if isinstance(exc, http.client.HTTPException):
        return f"invalid response: {type(exc).__name__} {exc}".strip()
    if isinstance(exc, ValueError):
        return f"invalid request: {exc}"
    return f"{type(exc).__name__}: {exc}"


def _is_stale_reuse(exc: BaseException, deadline: Deadline) -> bool:
    if deadline.expired or not deadline.reused or not isinstance(exc, ProtocolError):
        return False
    inner = exc.args[1] if len(exc.args) > 1 else None
    return isinstance(inner, ConnectionResetError | BrokenPipeError)


def _read_capped(response: BaseHTTPResponse) -> bytes:
    """Up to BODY_READ_LIMIT bytes of the body; what arrived so far if the read fails."""
    chunks: list[bytes] = []
    total = 0
    # Cut by the deadline or the receiver: keep the status and what we have.
    with contextlib.suppress(Exception):
        while total < BODY_READ_LIMIT:
            data = response.read1(BODY_READ_LIMIT - total)
            if not data:
                break
            chunks.append(data)
            total += len(data)
    return b"".join(chunks)


def _outcome(response: BaseHTTPResponse, body: bytes, elapsed_ms: int) -> AttemptOutcome:
    status = response.status
    text = body.decode("utf-8", errors="replace")[:RESPONSE_BODY_LIMIT]
    success = 200 <= status < 300
    error: str | None = None
    if 300 <= status < 400:
        location = (response.headers.get("Location") or "").strip()
        error = (
            f"redirect ({status}) to {location[:300]} not followed"
            if location
            else f"redirect ({status}) not followed"
        )
    elif not success:
        reason = (response.reason or "").strip()[:100]
        error = f"HTTP {status} {reason}".strip()
    retry_after = None
    if status in (429, 503):
        retry_after = retry_after_seconds(response.headers.get("Retry-After"))
    return AttemptOutcome(
        success=success,
        status_code=status,
        response_time_ms=elapsed_ms,
        response_body=text,
        error=error,
        retry_after_seconds=retry_after,
        gone=status == 410,
    )


class _ConnectFailed(Exception):
    """Nothing was sent: another address of the host may be tried."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _attempt_once(
    target: _Target,
    ip: str,
    body: bytes,
    headers: dict[str, str],
    timeout: float,
    started: float,
) -> AttemptOutcome:
    server_name = target.host if target.literal is None else ip
    stale_left = _STALE_RETRIES
    closed_pool_retry = True
    while True:
        deadline = Deadline(started + timeout)
        remaining = deadline.remaining()
        if remaining <= 0:
            return AttemptOutcome.failure(_timeout_text(timeout), _ms(started))
        pool = http_pools.pool(target.scheme, ip, target.port, server_name)
        http_pools.arm(deadline)
        response: BaseHTTPResponse | None = None
        try:
            response = pool.urlopen(
                "POST",
                target.target,
                body=body,
                headers=headers,
                retries=False,
                redirect=False,
                assert_same_host=False,
                timeout=Timeout(connect=remaining, read=remaining),
                release_conn=False,
                preload_content=False,
                decode_content=True,
            )
            data = _read_capped(response)
            elapsed = _ms(started)
            outcome = _outcome(response, data, elapsed)
        except ClosedPoolError:
            # Evicted by another thread between lookup and use: take a fresh pool once.
            http_pools.forget_pool(target.scheme, ip, target.port, server_name)
            if closed_pool_retry:
                closed_pool_retry = False
                continue
            return AttemptOutcome.failure("connection pool closed", _ms(started))
        except Exception as exc:
            if _is_stale_reuse(exc, deadline) and stale_left > 0:
                stale_left -= 1
                continue
            if deadline.expired:
                return AttemptOutcome.failure(_timeout_text(timeout), _ms(started))
            message = _describe(exc, target, ip, timeout)
            if isinstance(exc, NewConnectionError):
                raise _ConnectFailed(message) from None  # nothing sent: try the next address
            return AttemptOutcome.failure(message, _ms(started))
        finally:
            http_pools.disarm(deadline)
            if response is not None:
                # A connection that was cut, or still holds unread body, must not be reused.
                if deadline.expired or not _fully_read(response):
                    response.close()
                response.release_conn()
        return outcome


def _fully_read(response: BaseHTTPResponse) -> bool:
    try:
        return bool(response.closed) or getattr(response, "length_remaining", None) == 0
    except Exception:
        return False


def _ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


def post(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    timeout: float,
    allow_private: bool,
    resolver: Resolver | None = None,
) -> AttemptOutcome:
    """POST ``body`` to ``url`` once and report what happened; never raises.

    ``timeout`` bounds the whole attempt. ``allow_private`` (local stack only) permits http://
    and private/loopback targets. ``resolver(host, port)`` returns the host's addresses; it
    defaults to the system resolver and exists so tests can pin names to addresses.
    """
    started = time.monotonic()
    try:
        target = _parse(url, allow_private)
        if target.literal is not None:
            addresses: list[IPAddress] = [target.literal]
        else:
            budget = Deadline(started + timeout)
            addresses = _resolve(target.host, target.port, resolver or system_resolver, budget)
        if not allow_private:
            _check(target, addresses)
        elif target.scheme == "http" and not all(a.is_loopback for a in addresses):
            raise _Refused("refused: plain http is allowed for loopback targets only; use https")
    except _Refused as exc:
        return AttemptOutcome.failure(str(exc), _ms(started))

    send_headers = _request_headers(headers, target.host_header)
    last = "connection failed"
    for address in addresses:
        try:
            return _attempt_once(target, str(address), body, send_headers, timeout, started)
        except _ConnectFailed as exc:
            last = exc.message
        except Exception as exc:  # never raise to the caller
            return AttemptOutcome.failure(f"{type(exc).__name__}: {exc}", _ms(started))
    return AttemptOutcome.failure(last, _ms(started))
