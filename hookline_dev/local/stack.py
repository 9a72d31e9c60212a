"""`hookline local`: the whole system in one process, composed from the pieces in this package.

    HTTP server ──► inspector (/_inspect/...) | OpenAPI + Swagger UI | API Gateway emulation
                     └─► authorizer (+ result cache) ─► ApiFunction / InboundFunction
    in-memory tables + streams (storage.py), journaled to the state directory (state.py)
    moto as the safety net for any AWS call left (none on the delivery path)
    events stream ──► EventSourceMapping ──► DispatchFunction ──► delivery queue (LocalQueue)
    delivery queue ──► QueueMapping ──► DeliverFunction
    retry timer (statemachine/retry.asl.json, interpreted) ──► AttemptFunction
    deliveries table stream ──► delivery log lines / on_attempt callbacks

moto and the process environment are process-wide, so one LocalStack runs at a time.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO, TypeVar

from hookline_dev import template
from hookline_dev.local import aws, console, lambdas, state
from hookline_dev.local.apigw import ApiGateway, HttpRequest, HttpResponse
from hookline_dev.local.asl import Execution
from hookline_dev.local.blueprint import Blueprint, load_blueprint
from hookline_dev.local.inspector import BinTargets, Inspector, targets_bin
from hookline_dev.local.poller import EventSourceMapping, Record, StreamTail
from hookline_dev.local.queue import LocalQueue, QueueMapping
from hookline_dev.local.scheduler import LocalRetryScheduler
from hookline_dev.local.server import LocalHttpServer, serve_in_thread
from hookline_dev.local.storage import LocalTables, item_of
from hookline_dev.memory_idempotency import MemoryIdempotencyStore

T = TypeVar("T")

STATE_MACHINE_ARN = (
    f"arn:aws:states:{lambdas.REGION}:{lambdas.ACCOUNT_ID}:stateMachine:hookline-local-retry"
)
LOCAL_MAIL_SENDER = "no-reply@hookline.local"

_running_lock = threading.Lock()
_running: LocalStack | None = None


@dataclass(frozen=True)
class LocalOptions:
    host: str = "127.0.0.1"
    #: 0 picks a free port.
    port: int = 3000
    allow_private_targets: bool = False
    #: Multiplies every retry wait (0.01 turns 300 s into 3 s).
    time_scale: float = 1.0
    #: Keep state in data_dir across restarts (hookline_dev.local.state); reset forgets it first.
    persist: bool = False
    reset: bool = False
    #: Multiplies the auto-disable window, AutoDisableAfterHours (0.001 turns 120 h into 7 min).
    auto_disable_scale: float = 1.0
    data_dir: Path = Path(".hookline")
    #: Generated when None.
    operator_key: str | None = None
    #: The functions' POWERTOOLS_LOG_LEVEL (the template says INFO; the console stays readable
    #: at WARNING). None keeps whatever the environment says.
    log_level: str | None = "WARNING"
    access_log: bool = False
    retry_workers: int = 8
    poll_interval: float = 0.05


#: How many attempt ids the delivery log printer remembers (to print each attempt once).
REPORTED_KEPT = 100_000


@dataclass(frozen=True)
class AttemptRecord:
    """One delivery attempt as the deliveries table recorded it."""

    delivery_id: str
    webhook_id: str
    event: str
    attempt: int
    success: bool
    status_code: int | None
    response_time_ms: int
    error: str | None
    created_at: str
    item: dict[str, Any] = field(repr=False, default_factory=dict)

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> AttemptRecord:
        status = item.get("status_code")
        return cls(
            delivery_id=str(item.get("delivery_id") or str(item.get("pk", ""))[2:]),
            webhook_id=str(item.get("webhook_id", "")),
            event=str(item.get("event", "")),
            attempt=int(item.get("attempt") or 0),
            success=bool(item.get("success")),
            status_code=int(status) if status is not None else None,
            response_time_ms=int(item.get("response_time_ms") or 0),
            error=item.get("error"),
            created_at=str(item.get("created_at", "")),
            item=item,
        )


def _image(record: Record) -> dict[str, Any] | None:
    image = (record.get("dynamodb") or {}).get("NewImage")
    return item_of(image) if image else None


class LocalStack:
    """Start with start() (or `with LocalStack(...) as stack:`), stop with stop()."""

    def __init__(self, options: LocalOptions | None = None, *, out: TextIO | None = None) -> None:
        self.options = options or LocalOptions()
        self.out = out
        self._persistence = state.Persistence(
            self.options.data_dir if self.options.persist else None, reset_state=self.options.reset
        )
        self.state_dir = self._persistence.state_dir
        self.operator_key, self.operator_key_origin = state.operator_key(
            self.state_dir, self.options.operator_key
        )
        self.resumed_retries: list[tuple[str, int]] = []
        self.attempts: deque[AttemptRecord] = deque(maxlen=10_000)
        self._attempt_listeners: list[Callable[[AttemptRecord], None]] = []
        self._session = aws.MotoSession()
        self._server: LocalHttpServer | None = None
        self._server_thread: threading.Thread | None = None
        self._threads: list[Any] = []
        self._log_levels: dict[str, int] = {}
        self._wiring_lock = threading.Lock()
        self.storage: LocalTables | None = None
        self.queue: LocalQueue | None = None
        self._idempotency: MemoryIdempotencyStore | None = None
        self._started = False
        self.blueprint: Blueprint | None = None
        self.gateway: ApiGateway | None = None
        self.scheduler: LocalRetryScheduler | None = None
        self.dispatcher: EventSourceMapping | None = None
        self.deliverer: QueueMapping | None = None
        self._reported: set[str] = set()
        self._reported_order: deque[str] = deque()
        self.inspector = Inspector(self._bin_targets)
        self.console = console.Console(out, self._webhook_name, time_scale=self.options.time_scale)
        self._webhook_names: dict[str, str] = {}
        self.tables: dict[str, str] = {}
        self.port = 0
        self.base_url = ""

    # -- lifecycle --------------------------------------------------------------------------

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> LocalStack:
        global _running
        with _running_lock:
            if _running is not None:
                raise RuntimeError("a LocalStack is already running in this process")
            _running = self
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        options = self.options
        # Bind first: a port in use fails at once, before seconds of setup.
        server = self._server = LocalHttpServer(
            (options.host, options.port), _Router(self), access_log=options.access_log
        )
        self.port = server.port
        host = f"[{options.host}]" if ":" in options.host else options.host
        self.base_url = f"http://{host}:{self.port}"
        self._started = True
        self._session.start()
        blueprint = self.blueprint = load_blueprint()
        storage = self.storage = LocalTables()
        self.tables = storage.names()
        queue = self.queue = LocalQueue(max_receives=blueprint.queue.max_receives)
        env = self._session.env
        defaults = template.function_environment()
        disable_hours = float(defaults.get("AUTO_DISABLE_AFTER_HOURS", 120))
        env.set(defaults)
        env.set(self.tables)
        env.set({"DELIVERY_QUEUE_URL": queue.url})
        env.set(
            {
                "HOOKLINE_STAGE": blueprint.stage,
                "HOOKLINE_OPERATOR_KEY": self.operator_key,
                "OPERATOR_KEY_PARAMETER": "",
                "ALLOW_PRIVATE_TARGETS": "true" if options.allow_private_targets else "false",
                "MAIL_OUTBOX_DIR": str((options.data_dir / "outbox").resolve()),
                "MAIL_SENDER": LOCAL_MAIL_SENDER,
                "RETRY_STATE_MACHINE_ARN": STATE_MACHINE_ARN,
                "RETRY_TIME_SCALE": f"{options.time_scale:g}",
                "POWERTOOLS_TRACE_DISABLED": "true",
                "POWERTOOLS_METRICS_DISABLED": "true",
                "AUTO_DISABLE_AFTER_HOURS": f"{disable_hours * options.auto_disable_scale:g}",
            }
        )
        if options.log_level:
            env.set({"POWERTOOLS_LOG_LEVEL": options.log_level.upper()})
            self._set_log_level(options.log_level.upper())
        options.data_dir.mkdir(parents=True, exist_ok=True)
        self._persistence.restore(storage)
        self._idempotency = MemoryIdempotencyStore(storage.idempotency)

        functions = state.JournaledFunctions(blueprint.functions, before_invoke=self._ensure_wiring)
        self.scheduler = LocalRetryScheduler(
            functions,
            time_scale=options.time_scale,
            workers=options.retry_workers,
            definition=self._retry_definition(functions),
            listener=self._on_execution,
        )
        from hookline import wiring

        wiring.reset()
        self._ensure_wiring()
        lambdas.forget_handlers()
        for name in lambdas.FUNCTIONS:
            lambdas.load_handler(name)

        self.scheduler.start()
        self._threads.append(self.scheduler)
        self.dispatcher = EventSourceMapping(
            storage.events.subscribe(),
            functions,
            "dispatch",
            blueprint.stream,
            interval=options.poll_interval,
            # The template's 1 s batching window only adds latency; locally a batch is whatever
            # the stream holds when polled (still capped at the batch size).
            batching_window=0.0,
        )
        tail = StreamTail(
            storage.deliveries.subscribe("NEW_IMAGE"),
            self._on_delivery_record,
            interval=options.poll_interval,
        )
        self.deliverer = QueueMapping(
            queue,
            functions,
            "deliver",
            batch_size=blueprint.queue.batch_size,
            pollers=blueprint.queue.max_concurrency,
            after_batch=self._persistence.sync,
        )
        self.resumed_retries = self._persistence.resume(storage, queue, functions, self.scheduler)
        self.console.attempts_printed_before(self.resumed_retries)
        for thread in (self.deliverer, self.dispatcher, tail):
            thread.start()
            self._threads.append(thread)

        self.gateway = ApiGateway(blueprint, functions)
        self._server_thread = serve_in_thread(server)

    def stop(self) -> None:
        """Stop the server, pollers and timer, then moto; restores the environment. Idempotent."""
        global _running
        if self._server_thread is not None:
            assert self._server is not None
            self._server.shutdown()
            self._server_thread.join(5)
            self._server_thread = None
        if self._server is not None:
            self._server.server_close()
            self._server = None
        for thread in reversed(self._threads):
            thread.stop()
        self._threads = []
        self._persistence.close(self.storage)
        if self._started:
            from hookline import wiring

            wiring.reset()
            lambdas.forget_handlers()
            self._restore_log_level()
            self._session.stop()
            self._started = False
        with _running_lock:
            if _running is self:
                _running = None

    @property
    def running(self) -> bool:
        return self._server_thread is not None

    # -- environment ------------------------------------------------------------------------

    def _retry_definition(self, functions: lambdas.Functions) -> dict[str, Any]:
        """statemachine/retry.asl.json with the template's DefinitionSubstitutions applied."""
        attempt_arn = lambdas.function_arn(functions.config("attempt").function_name)
        definition: dict[str, Any] = json.loads(
            template.retry_state_machine_definition(attempt_arn)
        )
        return definition

    def _ensure_wiring(self) -> None:
        """Make hookline's composition root use the local tables, queue and retry timer.
        Checked before every invocation because anything may call wiring.reset() meanwhile
        (tests do, per test)."""
        from hookline import wiring

        if self._wired(wiring.services()):
            return
        with self._wiring_lock:
            if not self._wired(wiring.services()):
                wiring.configure(
                    tables=self.storage,
                    queue=self.queue,
                    scheduler=self.scheduler,
                    idempotency=self._idempotency,
                )

    def _wired(self, services: Any) -> bool:
        return bool(
            services.tables is self.storage
            and services.scheduler is self.scheduler
            and services.queue is self.queue
        )

    def _set_log_level(self, level: str) -> None:
        for name in ("hookline",):
            logger = logging.getLogger(name)
            self._log_levels[name] = logger.level
            logger.setLevel(level)

    def _restore_log_level(self) -> None:
        for name, level in self._log_levels.items():
            logging.getLogger(name).setLevel(level)
        self._log_levels.clear()

    # -- observation ------------------------------------------------------------------------

    def on_attempt(self, callback: Callable[[AttemptRecord], None]) -> None:
        """Call `callback` for every delivery attempt recorded from now on (any thread)."""
        self._attempt_listeners.append(callback)

    def _on_delivery_record(self, record: Record) -> None:
        from hookline.domain.delivery_repository import attempt_of_item

        item = _image(record)
        if item is None or record.get("eventName") not in ("INSERT", "MODIFY"):
            return
        try:
            found = attempt_of_item(item)
        except ValueError:
            return
        # A delivery item is written again as its state moves on: report each attempt once.
        if found is None or found.id in self._reported:
            return
        self._reported.add(found.id)
        self._reported_order.append(found.id)
        if len(self._reported_order) > REPORTED_KEPT:
            self._reported.discard(self._reported_order.popleft())
        recorded = found.model_dump()
        if item.get("retry_group"):
            recorded["retry_group"] = item["retry_group"]  # the group a first attempt joined
        attempt = AttemptRecord.from_item(recorded)
        self.attempts.append(attempt)
        self.console.attempt(attempt)
        for listener in list(self._attempt_listeners):
            try:
                listener(attempt)
            except Exception as exc:  # a subscriber's bug must not stop the log
                self.console.say(f"[local] attempt listener failed: {exc!r}")

    def _on_execution(self, execution: Execution, what: str, seconds: float) -> None:
        if what == "wait":
            doc = execution.document if isinstance(execution.document, dict) else {}
            self.console.retry({"delivery_id": execution.name, **doc}, seconds)

    def wait_for(
        self, predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.02
    ) -> T:
        """Poll `predicate` until it returns something truthy (returned); TimeoutError after
        `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise TimeoutError(f"condition not met within {timeout:g} s")
            time.sleep(interval)

    @property
    def dead_letters(self) -> list[dict[str, Any]]:
        return self.dispatcher.dead_letters if self.dispatcher else []

    # -- inspector --------------------------------------------------------------------------

    def inspector_url(self, name: str) -> str:
        return f"{self.base_url}/_inspect/{name}"

    def _bin_targets(self, name: str) -> BinTargets | None:
        """Secrets and custom header names of the webhooks whose URL is inspector bin `name`
        (a scan: fine locally); None when no webhook targets it."""
        if self.storage is None:
            return None
        secrets: list[str] = []
        headers: set[str] = set()
        for item in self.storage.webhooks.scan_all():
            url = item.get("url") or ""
            if isinstance(url, str) and url and targets_bin(url, name, self.port):
                secrets.append(str(item.get("secret") or ""))
                headers.update(h.lower() for h in item.get("headers") or {})
        return BinTargets(secrets, frozenset(headers)) if secrets else None

    def _webhook_name(self, community_id: str, webhook_id: str) -> str | None:
        """A webhook's name for the console (cached: a rename shows after a restart)."""
        name = self._webhook_names.get(webhook_id)
        if name is None and self.storage is not None:
            item = self.storage.webhooks.get(f"C#{community_id}", f"W#{webhook_id}")
            name = (item or {}).get("name")
            if name:
                self._webhook_names[webhook_id] = name
        return name

    # -- console ----------------------------------------------------------------------------

    def banner(self) -> str:
        return console.banner(self)


class _Router:
    """Inspector, then API Gateway: the local server's app."""

    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack

    def too_large(self) -> HttpResponse:
        assert self.stack.gateway is not None
        return self.stack.gateway.error("REQUEST_TOO_LARGE")

    def __call__(self, request: HttpRequest) -> HttpResponse:
        gateway = self.stack.gateway
        assert gateway is not None
        if Inspector.owns(request.path):
            return self.stack.inspector.handle(request)
        response = gateway.handle(request)
        self.stack.console.failed_call(request, response)
        return response


def run_until_signalled(stack: LocalStack, out: TextIO | None = None) -> int:
    """Start the stack, print the banner, serve until SIGINT/SIGTERM, stop cleanly: exit code."""
    import signal

    out = out or sys.stdout

    stop = threading.Event()

    def _handler(signum: int, frame: object) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, _handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        stack.start()
        print(stack.banner(), file=out, flush=True)
        while not stop.wait(0.5):
            pass
        print("\nStopping...", file=out, flush=True)
    finally:
        stack.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
