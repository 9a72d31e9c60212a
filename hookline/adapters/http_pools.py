"""Keep-alive connections that honour one attempt's whole time budget (hookline.adapters.
http_attempt is their one user).

A ``Deadline`` is armed on the calling thread; every connection the thread then opens or reuses
registers with it, and one watchdog thread shuts those sockets down when it runs out, so a
receiver trickling bytes cannot hold an attempt past its timeout. urllib3 pools, one per
(scheme, address, port, host name), bounded in number and shared by all threads, keep
connections alive between deliveries to the same receiver.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import socket
import ssl
import threading
import time
from collections import OrderedDict
from typing import Any

from urllib3 import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.connection import HTTPConnection, HTTPSConnection

#: Idle keep-alive connections kept per pool (the dispatcher runs ~32 attempts at once).
POOL_CONNECTIONS = 32
#: Distinct pools kept; the least recently used is closed beyond this.
MAX_POOLS = 256


class Deadline:
    """The total time budget of one attempt; cuts its sockets when it runs out."""

    def __init__(self, at: float) -> None:
        self.at = at
        self.expired = False
        self.reused = False
        self._finished = False
        self._conns: list[HTTPConnection] = []
        self._lock = threading.Lock()

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def watch(self, conn: HTTPConnection) -> None:
        with self._lock:
            if self._finished:
                return
            if conn not in self._conns:
                self._conns.append(conn)
            if self.expired:
                _cut(conn)

    def expire(self) -> None:
        with self._lock:
            if self._finished:
                return
            self.expired = True
            for conn in self._conns:
                _cut(conn)

    def finish(self) -> None:
        """Stop watching: after this the connections may go back to the pool safely."""
        with self._lock:
            self._finished = True
            self._conns.clear()


def _cut(conn: HTTPConnection) -> None:
    sock = conn.sock
    if sock is None:
        return
    # The plain socket's shutdown, also for an SSLSocket: it wakes a blocked reader or writer
    # without touching TLS state that the owning thread is using.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _Watchdog:
    """One daemon thread expiring deadlines in time order."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Deadline]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def add(self, deadline: Deadline) -> None:
        with self._cond:
            heapq.heappush(self._heap, (deadline.at, next(self._seq), deadline))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="hookline-http-deadline", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    now = time.monotonic()
                    if self._heap and self._heap[0][0] <= now:
                        _, _, deadline = heapq.heappop(self._heap)
                        break
                    wait = self._heap[0][0] - now if self._heap else None
                    self._cond.wait(wait)
            deadline.expire()


_WATCHDOG = _Watchdog()
_local = threading.local()


def _active() -> Deadline | None:
    return getattr(_local, "deadline", None)


def arm(deadline: Deadline) -> None:
    """Watch `deadline` for the connections the calling thread uses from now on."""
    _WATCHDOG.add(deadline)
    _local.deadline = deadline


def disarm(deadline: Deadline) -> None:
    """Stop watching; only then may the thread's connections go back to their pool."""
    _local.deadline = None
    deadline.finish()


class _WatchedHTTPConnection(HTTPConnection):
    """An HTTPConnection that registers with the calling thread's deadline."""

    _hl_requests = 0

    def connect(self) -> None:
        deadline = _active()
        if deadline is not None:
            deadline.watch(self)
        self._hl_requests = 0
        super().connect()

    def request(self, *args: Any, **kwargs: Any) -> None:
        deadline = _active()
        if deadline is not None:
            deadline.watch(self)
            deadline.reused = self.sock is not None and self._hl_requests > 0
        super().request(*args, **kwargs)  # connects first when needed, resetting the count
        self._hl_requests += 1


class _WatchedHTTPSConnection(_WatchedHTTPConnection, HTTPSConnection):
    """The same for https (HTTPSConnection's connect and request run under the watch)."""


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


# --------------------------------------------------------------------------------------------
# Pools and TLS

_TLS_CONTEXT: ssl.SSLContext | None = None
_pools: OrderedDict[tuple[str, str, int, str], HTTPConnectionPool] = OrderedDict()
_pools_lock = threading.Lock()


def _tls_context() -> ssl.SSLContext:
    global _TLS_CONTEXT
    if _TLS_CONTEXT is None:
        try:
            import certifi

            context = ssl.create_default_context(cafile=certifi.where())
        except ImportError:  # pragma: no cover - certifi ships with requests
            context = ssl.create_default_context()
        context.set_alpn_protocols(["http/1.1"])
        _TLS_CONTEXT = context
    return _TLS_CONTEXT


def pool(scheme: str, ip: str, port: int, server_name: str) -> HTTPConnectionPool:
    key = (scheme, ip, port, server_name)
    evicted: list[HTTPConnectionPool] = []
    with _pools_lock:
        pool = _pools.get(key)
        if pool is not None:
            _pools.move_to_end(key)
            return pool
        options: dict[str, Any] = {
            "port": port,
            "maxsize": POOL_CONNECTIONS,
            "block": False,
            "retries": False,
        }
        if scheme == "https":
            pool = _HTTPSPool(
                ip, ssl_context=_tls_context(), server_hostname=server_name, **options
            )
        else:
            pool = _HTTPPool(ip, **options)
        _pools[key] = pool
        while len(_pools) > MAX_POOLS:
            evicted.append(_pools.popitem(last=False)[1])
    for old in evicted:
        old.close()
    return pool


def forget_pool(scheme: str, ip: str, port: int, server_name: str) -> None:
    with _pools_lock:
        _pools.pop((scheme, ip, port, server_name), None)


def close_pools() -> None:
    """Close every pooled connection (tests, or after changing TLS settings)."""
    global _TLS_CONTEXT
    with _pools_lock:
        pools = list(_pools.values())
        _pools.clear()
    for pool in pools:
        pool.close()
    _TLS_CONTEXT = None
