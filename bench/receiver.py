"""Fast loopback receivers for the benchmarks, served from a child process.

The receivers run in their own interpreter so they never compete with the code under test for
the GIL; receipt times are taken with ``time.monotonic()``, which on Linux is the system-wide
CLOCK_MONOTONIC and therefore comparable with the parent's publish times.

Each server is a ThreadingHTTPServer speaking HTTP/1.1 keep-alive, with TCP_NODELAY on every
accepted socket and a listen backlog of 1024: without them a Python server on loopback stalls
on delayed ACKs (~25 keep-alive requests/s) and the benchmark would measure the receiver.

    with ReceiverFarm(5) as farm:                 # five receivers, one port each
        farm.urls                                 # ["http://127.0.0.1:<port>/hook", ...]
        farm.wait_for(5000)
        farm.records()                            # [(monotonic time, receiver index, event id)]

    ReceiverFarm(20, hold={19: 3.0})              # receiver 19 holds every request for 3 s
    ReceiverFarm(1, kind="tests")                 # tests/receivers.py's Receiver instead

``blast()`` is the bare client used to measure a receiver's own capacity: raw keep-alive
sockets sending one pre-built request after another, with as little client work as possible.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

SAMPLES = 5
_OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"

Record = tuple[float, int, str | None]

_ROOT = Path(__file__).resolve().parent.parent


class BenchServer(ThreadingHTTPServer):
    """ThreadingHTTPServer tuned for loopback benchmarks; records (time, path, body)."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = 1024
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], *, hold: float = 0.0) -> None:
        super().__init__(address, _Handler)
        self.hold = hold
        self.records: list[tuple[float, bytes]] = []
        self.samples: list[tuple[dict[str, str], bytes]] = []  # first requests, with headers
        self.stopping = threading.Event()

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock, address

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients cutting connections at their timeout is expected


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: BenchServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        server = self.server
        server.records.append((time.monotonic(), body))  # list.append is atomic under the GIL
        if len(server.samples) < SAMPLES:
            server.samples.append((dict(self.headers.items()), body))
        if server.hold:
            server.stopping.wait(server.hold)
            self.close_connection = True
            return
        try:
            self.wfile.write(_OK)
        except OSError:
            self.close_connection = True


def _event_id(body: bytes) -> str | None:
    try:
        value = json.loads(body).get("id")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


class _TestsReceiverAdapter:
    """tests/receivers.py's Receiver behind the same small interface (for its capacity)."""

    def __init__(self) -> None:
        from tests.receivers import Receiver

        self.rx = Receiver()
        self.port = self.rx.port

    @property
    def samples(self) -> list[tuple[dict[str, str], bytes]]:
        return [(r.headers, r.body) for r in self.rx.requests[:SAMPLES]]

    def records(self) -> list[tuple[float, bytes]]:
        # Recorded.received_at is wall-clock time; only counts are used for this receiver.
        return [(r.received_at, r.body) for r in self.rx.requests]

    def clear(self) -> None:
        self.rx.clear()

    def close(self) -> None:
        self.rx.close()


def _serve(count: int, hold: dict[int, float], kind: str) -> None:
    """The child process: start the receivers, then answer commands on stdin (JSON lines)."""
    servers: list[Any] = []
    if kind == "tests":
        servers = [_TestsReceiverAdapter() for _ in range(count)]
        ports = [s.port for s in servers]
    else:
        for index in range(count):
            server = BenchServer(("127.0.0.1", 0), hold=hold.get(index, 0.0))
            threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            ).start()
            servers.append(server)
        ports = [int(s.server_address[1]) for s in servers]

    def reply(value: Any) -> None:
        sys.stdout.write(json.dumps(value) + "\n")
        sys.stdout.flush()

    def all_records() -> list[list[tuple[float, bytes]]]:
        if kind == "tests":
            return [s.records() for s in servers]
        return [list(s.records) for s in servers]

    reply(ports)
    for line in sys.stdin:
        command, arg = json.loads(line)
        if command == "count":
            reply(sum(len(r) for r in all_records()))
        elif command == "records":
            out: list[Record] = []
            for index, records in enumerate(all_records()):
                out.extend((t, index, _event_id(body) if arg else None) for t, body in records)
            reply(out)
        elif command == "samples":
            reply([[headers, body.decode("latin-1")] for headers, body in servers[arg].samples])
        elif command == "clear":
            for server in servers:
                if kind == "tests":
                    server.clear()
                else:
                    server.records.clear()
                    server.samples.clear()
            reply(True)
        elif command == "stop":
            break
    if kind == "tests":
        for server in servers:
            server.close()
    else:
        for server in servers:
            server.stopping.set()
            # Ask every serve_forever loop to stop first, so they wind down together.
            server._BaseServer__shutdown_request = True  # type: ignore[attr-defined]
        for server in servers:
            server.shutdown()
            server.server_close()
    reply(True)


class ReceiverFarm:
    """``count`` loopback receivers in a child process (see the module docstring)."""

    def __init__(
        self, count: int, *, hold: dict[int, float] | None = None, kind: str = "bench"
    ) -> None:
        holds = ",".join(f"{index}:{seconds}" for index, seconds in (hold or {}).items())
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_ROOT), env.get("PYTHONPATH")]))
        self._lock = threading.Lock()
        self._process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "bench.receiver", str(count), holds or "-", kind],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=str(_ROOT),
            env=env,
            text=True,
        )
        self.ports: list[int] = self._read()

    def _read(self) -> Any:
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError("the receiver process exited")
        return json.loads(line)

    def url(self, index: int, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.ports[index]}{path}"

    @property
    def urls(self) -> list[str]:
        return [self.url(i) for i in range(len(self.ports))]

    def _call(self, command: str, arg: Any = None) -> Any:
        assert self._process.stdin is not None
        with self._lock:
            self._process.stdin.write(json.dumps([command, arg]) + "\n")
            self._process.stdin.flush()
            return self._read()

    def count(self) -> int:
        return int(self._call("count"))

    def records(self, *, event_ids: bool = True) -> list[Record]:
        """Every request so far as (monotonic receipt time, receiver index, event id or None)."""
        return [(float(t), int(i), e) for t, i, e in self._call("records", event_ids)]

    def samples(self, index: int) -> list[tuple[dict[str, str], bytes]]:
        """The first requests (headers, body) receiver ``index`` got since the last clear()."""
        return [(headers, text.encode("latin-1")) for headers, text in self._call("samples", index)]

    def clear(self) -> None:
        self._call("clear")

    def wait_for(self, count: int, timeout: float = 30.0, poll: float = 0.01) -> int:
        """Poll until at least ``count`` requests arrived; returns the count seen at the end."""
        end = time.monotonic() + timeout
        seen = self.count()
        while seen < count and time.monotonic() < end:
            time.sleep(poll)
            seen = self.count()
        return seen

    def close(self) -> None:
        if self._process.poll() is None:
            with contextlib.suppress(OSError, RuntimeError, ValueError):
                self._call("stop")
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        for stream in (self._process.stdin, self._process.stdout):
            if stream is not None:
                stream.close()

    def __enter__(self) -> ReceiverFarm:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------------------------
# The bare client


@dataclass(frozen=True)
class BlastResult:
    requests: int
    seconds: float
    errors: int

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def _read_response(sock: socket.socket, buffer: bytearray) -> bool:
    """Consume one response from the socket (buffer keeps leftover bytes). False on EOF."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            return False
        buffer += chunk
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            return False
        rest += chunk
    buffer[:] = rest[length:]
    return True


def blast(
    ports: Sequence[int], total: int, *, connections: int = 32, body_size: int = 1024
) -> BlastResult:
    """Send ``total`` 1 KB POSTs over ``connections`` keep-alive sockets spread over ``ports``."""
    body = b"{" + b'"x":"' + b"a" * max(0, body_size - 8) + b'"}'
    per_connection = [
        total // connections + (1 if i < total % connections else 0) for i in range(connections)
    ]
    errors = [0] * connections
    barrier = threading.Barrier(connections + 1)

    def run(index: int) -> None:
        port = ports[index % len(ports)]
        request = (
            f"POST /capacity HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buffer = bytearray()
        barrier.wait()
        try:
            for _ in range(per_connection[index]):
                sock.sendall(request)
                if not _read_response(sock, buffer):
                    errors[index] += 1
                    sock.close()
                    sock = socket.create_connection(("127.0.0.1", port))
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    buffer.clear()
        finally:
            sock.close()

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(connections)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    return BlastResult(total, time.perf_counter() - started, sum(errors))


def main(argv: Sequence[str]) -> None:
    count, holds, kind = int(argv[0]), argv[1], argv[2]
    hold = {}
    if holds != "-":
        for part in holds.split(","):
            index, _, seconds = part.partition(":")
            hold[int(index)] = float(seconds)
    _serve(count, hold, kind)


if __name__ == "__main__":
    main(sys.argv[1:])
