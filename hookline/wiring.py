"""The composition root: which adapter backs each port. Lambda uses the AWS adapters; the local
stack, tests and benchmarks swap in their own with configure()."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from hookline.config import Settings, settings
from hookline.ports import DeliveryQueue, Mailer, RateLimiter, RetryScheduler, Sender, Tables

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency.persistence.base import BasePersistenceLayer


@dataclass(frozen=True)
class _Deferred:
    """An adapter that Services makes on first use."""

    make: Callable[[], Any]


class Services:
    """The adapter behind each port. Each part is a ready adapter or made on first use, so a
    function's first request creates (and imports) only the adapters it touches: the
    authorizer never loads the delivery code behind the scheduler and the sender."""

    def __init__(
        self,
        settings: Settings,
        tables: Any,
        scheduler: Any,
        mailer: Any,
        sender: Any,
        queue: Any,
        rate_limiter: Any = None,
    ) -> None:
        self.settings = settings
        self._parts: dict[str, Any] = {
            "tables": tables,
            "scheduler": scheduler,
            "mailer": mailer,
            "sender": sender,
            "queue": queue,
            # The pace is kept beside the tables (DynamoDB, or memory for in-memory tables).
            "rate_limiter": rate_limiter or _Deferred(tables.rate_limiter),
        }
        self._making = threading.Lock()

    def _part(self, name: str) -> Any:
        part = self._parts[name]
        if isinstance(part, _Deferred):
            with self._making:
                part = self._parts[name]
                if isinstance(part, _Deferred):
                    part = self._parts[name] = part.make()
        return part

    @property
    def tables(self) -> Tables:
        return cast(Tables, self._part("tables"))

    @property
    def scheduler(self) -> RetryScheduler:
        return cast(RetryScheduler, self._part("scheduler"))

    @property
    def mailer(self) -> Mailer:
        return cast(Mailer, self._part("mailer"))

    @property
    def sender(self) -> Sender:
        return cast(Sender, self._part("sender"))

    @property
    def queue(self) -> DeliveryQueue:
        return cast(DeliveryQueue, self._part("queue"))

    @property
    def rate_limiter(self) -> RateLimiter:
        return cast(RateLimiter, self._part("rate_limiter"))


_lock = threading.Lock()
_current: Services | None = None
_overrides: dict[str, Any] = {}
_idempotency: BasePersistenceLayer | None = None


def _tables(config: Settings) -> Tables:
    from hookline.adapters.dynamodb import DynamoTables

    return DynamoTables(config)


def _scheduler(config: Settings) -> RetryScheduler:
    from hookline.adapters.stepfunctions import StepFunctionsScheduler

    return StepFunctionsScheduler(config.retry_state_machine_arn)


def _mailer(config: Settings) -> Mailer:
    from hookline.adapters.ses import SesMailer

    return SesMailer(config.mail_sender, outbox_dir=config.mail_outbox_dir)


def _sender(config: Settings) -> Sender:
    from hookline import observability
    from hookline.adapters import http_attempt

    return observability.traced_sender(http_attempt.post)


def _queue(config: Settings) -> DeliveryQueue:
    from hookline.adapters.sqs import SqsDeliveryQueue

    return SqsDeliveryQueue(config.delivery_queue_url)


def _build() -> Services:
    """The AWS adapters, except where configure() supplied a replacement (never built then).
    Every function's first request reads a table, so the tables adapter (botocore) is made now;
    its DynamoDB client still waits for the first call. The rest waits for first use."""
    config: Settings = _overrides.get("settings") or settings()
    deferred = {"scheduler": _scheduler, "mailer": _mailer, "sender": _sender, "queue": _queue}
    parts = {
        name: _overrides.get(name) or _Deferred(functools.partial(make, config))
        for name, make in deferred.items()
    }
    return Services(
        settings=config,
        tables=_overrides.get("tables") or _tables(config),
        rate_limiter=_overrides.get("rate_limiter"),
        **parts,
    )


def services() -> Services:
    """The process-wide services, built on first use (never at import time)."""
    global _current
    if _current is None:
        with _lock:
            if _current is None:
                _current = _build()
    return _current


def idempotency_store() -> BasePersistenceLayer:
    """powertools' idempotency store for Idempotency-Key requests: the IdempotencyTable,
    built on first use (only ApiFunction needs it), unless configure(idempotency=...) set one."""
    global _idempotency
    with _lock:
        if _idempotency is None:
            _idempotency = _overrides.get("idempotency")
        if _idempotency is None:
            from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

            config: Settings = _overrides.get("settings") or settings()
            _idempotency = DynamoDBPersistenceLayer(table_name=config.idempotency_table)
        return _idempotency


def configure(**overrides: Any) -> None:
    """Replace some services (settings=, tables=, scheduler=, mailer=, sender=, queue=,
    rate_limiter=, idempotency=) in this process."""
    global _current, _idempotency
    with _lock:
        _overrides.update(overrides)
        _current = None
        _idempotency = None


def reset() -> None:
    """Forget overrides and cached services (tests)."""
    global _current, _idempotency
    with _lock:
        _overrides.clear()
        _current = None
        _idempotency = None
    settings.cache_clear()
