"""Shared fixtures. AWS credentials are fake and set before any handler module is imported."""

from __future__ import annotations

import os

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("AWS_REGION", "us-east-1")
os.environ["AWS_ACCESS_KEY_ID"] = "testing"
os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
os.environ["AWS_SESSION_TOKEN"] = "testing"
os.environ["AWS_ACCOUNT_ID_ENDPOINT_MODE"] = "disabled"
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "Hookline")
os.environ.setdefault("POWERTOOLS_DEV", "false")

import ipaddress
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from hookline import wiring
from hookline.config import Settings
from hookline_dev.memory import MemoryTables
from hookline_dev.memory_idempotency import MemoryIdempotencyStore

OPERATOR_KEY = "hk_operator_test_key_0123456789abcdef"


@dataclass
class LambdaContext:
    function_name: str = "test-function"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:test-function"
    aws_request_id: str = "52fdfc07-2182-154f-163f-5f0f9a621d72"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


@pytest.fixture
def lambda_context() -> LambdaContext:
    return LambdaContext()


@dataclass
class RecordingScheduler:
    """A RetryScheduler that records what it was asked to start."""

    started: list[dict[str, Any]] = field(default_factory=list)
    fail: bool = False

    def schedule(self, **kwargs: Any) -> None:
        if self.fail:
            raise RuntimeError("scheduler unavailable")
        self.started.append(kwargs)


@dataclass
class RecordingMailer:
    sent: list[dict[str, str]] = field(default_factory=list)

    def send(self, *, to: str, subject: str, text: str) -> None:
        self.sent.append({"to": to, "subject": subject, "text": text})


#: The only name a test may resolve; everything else must be an IP literal or a stubbed resolver.
RESOLVABLE_NAMES = frozenset({"localhost"})


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]").split("%")[0])
    except ValueError:
        return False
    return True


@pytest.fixture(autouse=True)
def _no_public_name_lookups(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Fail a test that resolves a name other than localhost (this machine's resolver is off the
    host). The lookup is refused, and the failure is reported even when it happened in another
    thread (the HTTP attempt resolves on a pool; the local stack serves from its own threads)."""
    real = socket.getaddrinfo
    refused: list[str] = []
    lock = threading.Lock()

    def guarded(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name is None or _is_ip_literal(str(name)) or str(name).lower() in RESOLVABLE_NAMES:
            return real(host, *args, **kwargs)
        with lock:
            refused.append(str(name))
        raise socket.gaierror(socket.EAI_NONAME, f"tests may not resolve {name!r}")

    monkeypatch.setattr(socket, "getaddrinfo", guarded)
    yield refused
    if refused:
        pytest.fail(
            f"the test resolved {sorted(set(refused))}: use IP literals, localhost or a stub "
            "resolver",
            pytrace=False,
        )


@pytest.fixture(autouse=True)
def _reset_wiring() -> Iterator[None]:
    """Fresh wiring per test; the delivery queue runs DeliverFunction inline (InlineQueue), as
    Lambda's SQS event source would, unless a test wires another."""
    from hookline_dev.local.queue import InlineQueue

    wiring.reset()
    wiring.configure(queue=InlineQueue())
    yield
    wiring.reset()


@pytest.fixture
def memory_services() -> wiring.Services:
    """Services over in-memory tables, a recording scheduler and mailer, the real HTTP sender,
    and loopback targets allowed (receivers in tests listen on 127.0.0.1)."""
    from hookline.adapters import http_attempt

    wiring.configure(
        settings=Settings(
            operator_key=OPERATOR_KEY, allow_private_targets=True, delivery_timeout_seconds=2.0
        ),
        tables=MemoryTables(),
        scheduler=RecordingScheduler(),
        mailer=RecordingMailer(),
        sender=http_attempt.post,
        idempotency=MemoryIdempotencyStore(),
    )
    return wiring.services()
