"""A real HTTP receiver on 127.0.0.1 for tests and benchmarks.

Usage::

    from tests.receivers import Receiver, Reply

    with Receiver() as rx:                        # answers 200 "ok" to everything
        post(rx.url_for("/hook"), ...)
        [req] = rx.wait_for(1)                    # Recorded(method, path, headers, body, ...)
        assert req.header("webhook-id") == "msg_1"

    Receiver(reply)                               # what to answer; any of:
        (500, {"X-A": "1"}, b"boom", 0.0)         #   (status, headers, body, delay_seconds),
        (204,)  /  (200, {}, "text")              #   shorter tuples fill in the defaults,
        Reply(503, {"Retry-After": "7"})          #   a Reply (adds trickle options),
        [(500,), (200,)]                          #   a list: one per request, the last repeats,
        lambda req: (200 if req.body else 400,)   #   a callable of the Recorded request.

    rx.respond(new_reply)   # change the script; rx.clear() forgets recorded requests
    rx.requests             # snapshot list of Recorded, in arrival order
    rx.connections          # TCP connections accepted so far (to check keep-alive reuse)

The server is a ThreadingHTTPServer speaking HTTP/1.1 keep-alive, with TCP_NODELAY on every
accepted socket and a listen backlog of 128 (without them keep-alive requests stall on delayed
ACKs). ``delay_seconds`` waits before answering; ``Reply.trickle`` sends the answer one byte at a
time (headers too with ``trickle_headers=True``); ``Reply(drop=True)`` resets the connection
without answering. Delays end early when the receiver closes.
Pass ``ssl_context`` (a server-side SSLContext) to serve https; ``url`` then starts with https.
"""

from __future__ import annotations

import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Recorded:
    """One request as the receiver saw it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    received_at: float  # time.time() when the body had arrived
    connection: int  # index of the TCP connection it came on (0, 1, ...)

    def header(self, name: str, default: str | None = None) -> str | None:
        """Case-insensitive header lookup."""
        lowered = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lowered:
                return value
        return default


@dataclass(frozen=True)
class Reply:
    """What to answer to one request."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | str = b"ok"
    delay: float = 0.0
    trickle: float = 0.0  # seconds between bytes of the answer; 0 sends it at once
    trickle_headers: bool = False  # trickle the status line and headers as well as the body
    drop: bool = False  # reset the connection instead of answering (a crashed receiver)


ReplySpec = Reply | tuple[Any, ...]
Script = ReplySpec | Sequence[ReplySpec] | Callable[[Recorded], ReplySpec]


def _as_reply(spec: ReplySpec) -> Reply:
    if isinstance(spec, Reply):
        return spec
    status, headers, body, delay = (tuple(spec) + (200, {}, b"ok", 0.0)[len(spec) :])[:4]
    return Reply(int(status), dict(headers or {}), body, float(delay))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128
    allow_reuse_address = True

    receiver: Receiver

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock, address

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients cutting connections (timeouts, capped reads) is expected here


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.conn_index = self.server.receiver._new_connection()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            parts: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        receiver = self.server.receiver
        body = self._read_body()
        recorded = Recorded(
            method=self.command,
            path=self.path,
            headers={k: v for k, v in self.headers.items()},
            body=body,
            received_at=time.time(),
            connection=self.conn_index,
        )
        reply = receiver._record(recorded)
        if reply.delay and receiver._stopping.wait(reply.delay):
            self.close_connection = True
            return
        if reply.drop:
            self.close_connection = True
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            return
        payload = reply.body.encode() if isinstance(reply.body, str) else reply.body
        head = [f"HTTP/1.1 {reply.status} {self.responses.get(reply.status, ('',))[0]}"]
        lowered = {k.lower() for k in reply.headers}
        head += [f"{k}: {v}" for k, v in reply.headers.items()]
        if "content-length" not in lowered:
            head.append(f"Content-Length: {len(payload)}")
        raw_head = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        try:
            if reply.trickle and reply.trickle_headers:
                self._trickle(raw_head + payload, reply.trickle)
            else:
                self.wfile.write(raw_head)
                self.wfile.flush()
                if reply.trickle:
                    self._trickle(payload, reply.trickle)
                else:
                    self.wfile.write(payload)
                    self.wfile.flush()
        except OSError:
            self.close_connection = True

    def _trickle(self, data: bytes, interval: float) -> None:
        stopping = self.server.receiver._stopping
        for index in range(len(data)):
            self.wfile.write(data[index : index + 1])
            self.wfile.flush()
            if stopping.wait(interval):
                self.close_connection = True
                return

    do_POST = _handle
    do_GET = _handle
    do_PUT = _handle
    do_PATCH = _handle
    do_DELETE = _handle


class Receiver:
    """A loopback HTTP(S) receiver that records requests and answers from a script."""

    def __init__(self, script: Script = (200,), *, ssl_context: ssl.SSLContext | None = None):
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._requests: list[Recorded] = []
        self._script: Script = script
        self._calls = 0
        self._connections = 0
        self._stopping = threading.Event()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.receiver = self
        self._scheme = "http"
        if ssl_context is not None:
            self._server.socket = ssl_context.wrap_socket(
                self._server.socket, server_side=True, do_handshake_on_connect=False
            )
            self._scheme = "https"
        self.host, self.port = "127.0.0.1", int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    # -- public API -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"{self._scheme}://{self.host}:{self.port}"

    def url_for(self, path: str = "/") -> str:
        return self.url + (path if path.startswith("/") else "/" + path)

    @property
    def requests(self) -> list[Recorded]:
        with self._lock:
            return list(self._requests)

    @property
    def connections(self) -> int:
        with self._lock:
            return self._connections

    def respond(self, script: Script) -> None:
        """Answer further requests from this script (the list position restarts at 0)."""
        with self._lock:
            self._script = script
            self._calls = 0

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Recorded]:
        """Block until at least ``count`` requests arrived; AssertionError on timeout."""
        end = time.monotonic() + timeout
        with self._arrived:
            while len(self._requests) < count:
                left = end - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"expected {count} requests, got {len(self._requests)} in {timeout} s"
                    )
                self._arrived.wait(left)
            return list(self._requests)

    def close(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- server side ------------------------------------------------------------------------

    def _new_connection(self) -> int:
        with self._lock:
            self._connections += 1
            return self._connections - 1

    def _record(self, recorded: Recorded) -> Reply:
        with self._arrived:
            self._requests.append(recorded)
            index = self._calls
            self._calls += 1
            script = self._script
            self._arrived.notify_all()
        if callable(script):
            return _as_reply(script(recorded))
        if isinstance(script, Reply) or (
            isinstance(script, tuple) and (not script or not isinstance(script[0], Reply | tuple))
        ):
            return _as_reply(script)  # type: ignore[arg-type]
        replies = list(script)
        return _as_reply(replies[min(index, len(replies) - 1)])
