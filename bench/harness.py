"""What every benchmark shares: the machine description, statistics, interleaved rounds, quiet
observability, in-memory services and the 1 KB workload."""

from __future__ import annotations

import contextlib
import cProfile
import io
import logging
import os
import platform
import pstats
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parent.parent

# Fake AWS settings before anything imports boto3; the benchmarks never reach AWS.
for _name, _value in {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_NAMESPACE": "Hookline",
    "POWERTOOLS_DEV": "false",
}.items():
    os.environ.setdefault(_name, _value)

from hookline import wiring  # noqa: E402
from hookline.adapters import http_attempt  # noqa: E402
from hookline.config import Settings  # noqa: E402
from hookline.domain import publishing, webhooks  # noqa: E402
from hookline.domain.communities import create_community  # noqa: E402
from hookline.domain.delivery import DeliveryContext  # noqa: E402
from hookline.domain.models import Community, Event, Webhook  # noqa: E402
from hookline.domain.repositories import (  # noqa: E402
    CommunityRepository,
    EventRepository,
    WebhookRepository,
)
from hookline_dev.memory import MemoryTables  # noqa: E402

T = TypeVar("T")

PAYLOAD_BYTES = 1024


def machine() -> dict[str, Any]:
    """Cores, CPU model, Python and OS of this run."""
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = []
    return {
        "cores": os.cpu_count() or 1,
        "load_average": load,
        "cpu": model or platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": f"{platform.system()} {platform.release()} {platform.machine()}",
    }


def machine_line(info: dict[str, Any] | None = None) -> str:
    info = info or machine()
    return (
        f"{info['cores']} cores ({info['cpu']}), {info['implementation']} {info['python']}, "
        f"{info['platform']}"
    )


# --------------------------------------------------------------------------------------------
# Statistics


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    if len(ordered) == 1:
        return float(ordered[0])
    position = (len(ordered) - 1) * q / 100.0
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (position - low))


def summary(values: Sequence[float]) -> dict[str, Any]:
    """Median, min and max over rounds (and the raw values)."""
    if not values:
        return {"median": None, "min": None, "max": None, "n": 0, "values": []}
    return {
        "median": float(statistics.median(values)),
        "min": float(min(values)),
        "max": float(max(values)),
        "n": len(values),
        "values": [float(v) for v in values],
    }


def interleave(
    rounds: int, variants: dict[str, Callable[[], T]], *, log: Callable[[str], None] | None = None
) -> dict[str, list[T]]:
    """Run every variant once per round, alternating their order from round to round (ABBA...),
    so drift of the machine (thermal, caches, background load) spreads over all of them."""
    names = list(variants)
    results: dict[str, list[T]] = {name: [] for name in names}
    for index in range(rounds):
        order = names if index % 2 == 0 else list(reversed(names))
        for name in order:
            results[name].append(variants[name]())
            if log:
                log(f"  round {index + 1}/{rounds} {name}: {results[name][-1]}")
    return results


# --------------------------------------------------------------------------------------------
# Observability: keep its cost, drop its output


class _NullWriter(io.TextIOBase):
    def write(self, text: str) -> int:
        return len(text)

    def writable(self) -> bool:
        return True


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Let the engine log and emit metrics as in Lambda (the formatting cost stays in the
    measurement) but send the lines nowhere instead of flooding the terminal."""
    from hookline.observability import logger

    sink = _NullWriter()
    handlers = [h for h in logger.handlers if isinstance(h, logging.StreamHandler)]
    previous = [h.stream for h in handlers]
    for handler in handlers:
        handler.setStream(sink)
    try:
        with contextlib.redirect_stdout(sink):
            yield
    finally:
        for handler, stream in zip(handlers, previous, strict=True):
            handler.setStream(stream)


# --------------------------------------------------------------------------------------------
# Services and workload


@dataclass
class NullScheduler:
    """A RetryScheduler that records what it was asked to start (no Step Functions here)."""

    started: list[dict[str, Any]] = field(default_factory=list)

    def schedule(self, **kwargs: Any) -> None:
        self.started.append(kwargs)


@dataclass
class NullMailer:
    sent: int = 0

    def send(self, *, to: str, subject: str, text: str) -> None:
        self.sent += 1


@dataclass
class Engine:
    """In-memory services wired the way the dispatcher sees them."""

    ctx: DeliveryContext
    tables: MemoryTables
    scheduler: NullScheduler
    community: Community
    settings: Settings


def engine(
    *, concurrency: int = 32, timeout: float = 10.0, tables: Any = None, queue: Any = None
) -> Engine:
    """Configure hookline.wiring with in-memory tables, the real HTTP sender and loopback targets
    allowed (the receivers listen on 127.0.0.1), and create one community. The delivery queue
    runs DeliverFunction inline unless ``queue`` replaces it."""
    from hookline_dev.local.queue import InlineQueue

    settings = Settings(
        allow_private_targets=True,
        dispatch_concurrency=concurrency,
        delivery_timeout_seconds=timeout,
    )
    memory = tables if tables is not None else MemoryTables()
    scheduler = NullScheduler()
    parts: dict[str, Any] = {
        "settings": settings,
        "tables": memory,
        "scheduler": scheduler,
        "mailer": NullMailer(),
        "sender": http_attempt.post,
        "queue": queue if queue is not None else InlineQueue(),
    }
    # Handlers called in-process (B6) find the same services through wiring; the context is
    # built directly because wiring.services() also constructs the DynamoDB adapter it replaces.
    wiring.reset()
    wiring.configure(**parts)
    ctx = DeliveryContext.from_services(wiring.Services(**parts))
    community, _, _ = create_community(
        CommunityRepository(memory.communities),
        name="Bench Forum",
        site_url="https://forum.example.com",
    )
    return Engine(ctx, memory, scheduler, community, settings)


def add_webhooks(
    eng: Engine, urls: Sequence[str], events: Sequence[str] = ("post.*",)
) -> list[Webhook]:
    """One active webhook per URL, subscribed to ``events``, created through the domain."""
    repo = WebhookRepository(eng.tables.webhooks)
    return [
        webhooks.create_webhook(
            repo,
            eng.community.id,
            {"name": f"bench {index}", "url": url, "events": list(events)},
            allow_private=True,
        )
        for index, url in enumerate(urls)
    ]


def _data(padding: int, index: int) -> dict[str, Any]:
    return {"post_id": index, "title": "Benchmark topic", "body": "x" * max(0, padding)}


def publish_events(
    eng: Engine, count: int, *, event_type: str = "post.created", size: int = PAYLOAD_BYTES
) -> list[Event]:
    """``count`` events published through the domain, each rendering to ``size`` bytes of JSON."""
    from hookline.domain.payload import render_body

    repo = EventRepository(eng.tables.events)
    probe, _ = publishing.publish(repo, eng.community, event_type, _data(0, 0))
    padding = size - len(render_body("json", probe))
    out = []
    for index in range(count):
        event, _ = publishing.publish(repo, eng.community, event_type, _data(padding, index))
        out.append(event)
    return out


def loopback_session() -> Any:
    """A requests session for a benchmark's client of the local stack on loopback. It does not
    read proxy settings from the environment: requests would do that on every call (~3 ms of
    the GIL the stack under test shares with its in-process client), and loopback never goes
    through a proxy."""
    import requests

    session = requests.Session()
    session.trust_env = False
    return session


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# --------------------------------------------------------------------------------------------
# Profiling across threads (cProfile only sees the thread that enabled it)


@contextlib.contextmanager
def profile_threads(collected: list[cProfile.Profile]) -> Iterator[None]:
    """Profile the calling thread and every thread started inside the block."""
    lock = threading.Lock()

    def start(*_: Any) -> None:
        profiler = cProfile.Profile(time.thread_time)
        with lock:
            collected.append(profiler)
        sys.setprofile(None)
        profiler.enable()

    main = cProfile.Profile(time.thread_time)
    collected.append(main)
    threading.setprofile(start)
    main.enable()
    try:
        yield
    finally:
        main.disable()
        threading.setprofile(None)  # type: ignore[arg-type]


#: C calls that wait (locks, sockets, sleeps): kept apart, never booked to their callers.
BLOCKING_CALLS = ("acquire", "recv_into", "recv", "select", "poll", "sleep", "accept", "wait")


def is_blocking(label: str) -> bool:
    return label.startswith("~:0(") and any(
        f"'{call}'" in label or f" {call}>" in label for call in BLOCKING_CALLS
    )


def _merged(profiles: Sequence[cProfile.Profile]) -> dict[Any, Any]:
    stats = pstats.Stats(profiles[0], stream=io.StringIO())
    for extra in profiles[1:]:
        with contextlib.suppress(TypeError, ValueError):
            stats.add(extra)
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    return raw


def _label(key: tuple[str, int, str]) -> str:
    filename, line, name = key
    return f"{_short(filename)}:{line}({name})"


def top_functions(profiles: Sequence[cProfile.Profile], limit: int = 15) -> list[dict[str, Any]]:
    """The functions with the most own time across the profiles (seconds, calls).

    ``attributed_s`` also counts the time of the C builtins a function calls (dict.get,
    deepcopy's id(), re.sub...), which cProfile books separately, so grouping by module shows
    whose work it was.
    """
    raw = _merged(profiles)
    attributed: dict[Any, float] = {key: float(entry[2]) for key, entry in raw.items()}
    for key, (_, _, own, _, callers) in raw.items():
        if key[0] != "~" or not callers or is_blocking(_label(key)):
            continue
        edges = {caller: float(edge[2]) for caller, edge in callers.items() if caller[0] != "~"}
        total = sum(edges.values())
        if total <= 0:
            continue
        attributed[key] -= float(own)
        for caller, edge_own in edges.items():
            attributed[caller] = attributed.get(caller, 0.0) + float(own) * edge_own / total
    rows: list[dict[str, Any]] = []
    for key, (_, calls, own, cumulative, _) in raw.items():
        rows.append(
            {
                "function": _label(key),
                "calls": int(calls),
                "own_s": float(own),
                "attributed_s": max(0.0, attributed.get(key, 0.0)),
                "cumulative_s": float(cumulative),
            }
        )
    rows.sort(key=lambda row: row["own_s"], reverse=True)
    return rows[:limit]


def _short(filename: str) -> str:
    if filename.startswith(sys.prefix) or "/lib/python3." in filename:
        if "site-packages/" in filename:
            return filename.split("site-packages/", 1)[1]
        return "stdlib/" + filename.split("/lib/python3.", 1)[-1].split("/", 1)[-1]
    if filename.startswith(f"{ROOT}/"):
        return filename[len(f"{ROOT}/") :]
    return filename
