"""The composition root: which adapter backs each port. Lambda uses the AWS adapters; the local
stack, tests and benchmarks swap in their own with configure()."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from hookline.config import Settings, settings
from hookline.ports import DeliveryQueue, Mailer, RateLimiter, RetryScheduler, Sender, Tables


def _memory_rate_limiter() -> RateLimiter:
    # Development-only (not in the Lambda layer): reached only when configure() replaced the
    # tables, which Lambda never does.
    from hookline.adapters.memory import MemoryRateLimiter

    return MemoryRateLimiter()


@dataclass(frozen=True)
class Services:
    settings: Settings
    tables: Tables
    scheduler: RetryScheduler
    mailer: Mailer
    sender: Sender
    queue: DeliveryQueue
    #: With in-memory tables the pace is kept in memory too (one process).
    rate_limiter: RateLimiter = field(default_factory=_memory_rate_limiter)


_lock = threading.Lock()
_current: Services | None = None
_overrides: dict[str, Any] = {}


def _build() -> Services:
    """The AWS adapters, except where configure() supplied a replacement (never built then)."""
    from hookline import observability
    from hookline.adapters import http_attempt
    from hookline.adapters.dynamodb import DynamoTables
    from hookline.adapters.rate_limiter import DynamoRateLimiter
    from hookline.adapters.ses import SesMailer
    from hookline.adapters.sqs import SqsDeliveryQueue
    from hookline.adapters.stepfunctions import StepFunctionsScheduler

    config: Settings = _overrides.get("settings") or settings()
    factories: dict[str, Any] = {
        "tables": lambda: DynamoTables(config),
        "scheduler": lambda: StepFunctionsScheduler(config.retry_state_machine_arn),
        "mailer": lambda: SesMailer(config.mail_sender, outbox_dir=config.mail_outbox_dir),
        "sender": lambda: observability.traced_sender(http_attempt.post),
        "queue": lambda: SqsDeliveryQueue(config.delivery_queue_url),
    }
    parts = {name: _overrides.get(name) or make() for name, make in factories.items()}
    limiter = _overrides.get("rate_limiter")
    if limiter is None and isinstance(parts["tables"], DynamoTables):
        limiter = DynamoRateLimiter(config.webhooks_table)
    return Services(settings=config, **parts, rate_limiter=limiter or _memory_rate_limiter())


def services() -> Services:
    """The process-wide services, built on first use (never at import time)."""
    global _current
    if _current is None:
        with _lock:
            if _current is None:
                _current = _build()
    return _current


def configure(**overrides: Any) -> None:
    """Replace some services (settings=, tables=, scheduler=, mailer=, sender=, queue=,
    rate_limiter=) in this process."""
    global _current
    with _lock:
        _overrides.update(overrides)
        _current = None


def reset() -> None:
    """Forget overrides and cached services (tests)."""
    global _current
    with _lock:
        _overrides.clear()
        _current = None
    settings.cache_clear()
