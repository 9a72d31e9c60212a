"""The HTTP front door: a threading HTTP/1.1 server handing each request to an app callable."""

from __future__ import annotations

import sys
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import urlsplit

from hookline.observability import redact_text
from hookline_dev.local.apigw import MAX_PAYLOAD_BYTES, HttpRequest, HttpResponse, error_response

ALLOWED_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


class App(Protocol):
    """What the server serves: a request handler plus the answer to an oversized body (sent
    before the body is read, so it cannot go through the handler)."""

    def __call__(self, request: HttpRequest) -> HttpResponse: ...

    def too_large(self) -> HttpResponse: ...


#: Bodies over the limit are read and dropped up to this size so the client sees the 413;
#: anything bigger gets the 413 and a closed connection.
_DRAIN_LIMIT = 64 * 1024 * 1024
_HOP_BY_HOP = {"content-length", "transfer-encoding", "connection", "keep-alive"}


class BodyTooLarge(Exception):
    pass


class LocalHttpServer(ThreadingHTTPServer):
    daemon_threads = True
    # Keep-alive clients on loopback stall behind a shallow backlog (design.md pitfalls).
    request_queue_size = 128
    allow_reuse_address = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], app: App, *, access_log: bool = False) -> None:
        self.app = app
        self.access_log = access_log
        super().__init__(address, _Handler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "hookline-local"
    # TCP_NODELAY on every accepted connection (StreamRequestHandler applies it in setup()).
    disable_nagle_algorithm = True
    server: LocalHttpServer

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        """The access log (with --access-log): one line per request, written at once, with
        incoming-webhook tokens and other credentials in the request line masked."""
        if self.server.access_log:
            line = f"{self.address_string()} - [{self.log_date_time_string()}] {format % args}"
            sys.stderr.write(redact_text(line) + "\n")

    def __getattr__(self, name: str) -> Any:
        # http.server answers a method it has no do_<METHOD> for with an HTML 501.
        if name.startswith("do_"):
            return self._unknown_method
        raise AttributeError(name)

    def _unknown_method(self) -> None:
        self.close_connection = True
        response = error_response(
            405, "method_not_allowed", f"Method {self.command} is not allowed"
        )
        response.headers.append(("Allow", ", ".join(ALLOWED_METHODS)))
        self._send(response, head=False)

    def handle_expect_100(self) -> bool:
        if self._declared_length() > MAX_PAYLOAD_BYTES:
            self.close_connection = True
            self._send(self._too_large(), head=False)
            return False
        return super().handle_expect_100()

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_GET

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def _declared_length(self) -> int:
        try:
            return int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return 0

    def _too_large(self) -> HttpResponse:
        return self.server.app.too_large()

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._read_chunked()
        length = self._declared_length()
        if length > MAX_PAYLOAD_BYTES:
            self._drain(length)
            raise BodyTooLarge
        return self.rfile.read(length) if length > 0 else b""

    def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            size_line = self.rfile.readline(65537)
            size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                break
            total += size
            if total > MAX_PAYLOAD_BYTES:
                self.close_connection = True
                raise BodyTooLarge
            parts.append(self.rfile.read(size))
            self.rfile.readline(65537)
        return b"".join(parts)

    def _drain(self, length: int) -> None:
        if length > _DRAIN_LIMIT:
            self.close_connection = True
            return
        remaining = length
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, 1 << 20))
            if not chunk:
                break
            remaining -= len(chunk)

    def _serve(self, head: bool = False) -> None:
        try:
            body = self._read_body()
        except BodyTooLarge:
            self._send(self._too_large(), head=head)
            return
        except ValueError:
            self.close_connection = True
            self._send(error_response(400, "invalid_param", "malformed request body"), head=head)
            return
        target = urlsplit(self.path)
        host = self.headers.get("Host") or "{}:{}".format(*self.server.server_address[:2])
        request = HttpRequest(
            method=self.command,
            path=target.path or "/",
            query=target.query,
            headers=list(self.headers.items()),
            body=body,
            client_ip=self.client_address[0],
            host=host,
            protocol=self.request_version,
        )
        try:
            response = self.server.app(request)
        except Exception:
            traceback.print_exc()
            response = error_response(500, "internal_error", "local stack error")
        self._send(response, head=head)

    def _send(self, response: HttpResponse, *, head: bool) -> None:
        self.send_response(response.status)
        for name, value in response.headers:
            if name.lower() not in _HOP_BY_HOP:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if not head and response.body:
            self.wfile.write(response.body)


def serve_in_thread(server: LocalHttpServer) -> threading.Thread:
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.1},
        name="hookline-http",
        daemon=True,
    )
    thread.start()
    return thread
