"""The soak: ``python -m bench.soak`` (``make soak``).

Publishes events through the local stack's API at a steady rate (default 100 events/s for 60 s)
to webhooks on loopback receivers (default 10), a third of which fail at random (500, 503 or a
reset connection, half of the time), with retry waits scaled down so retries happen within the
run. Publishing stops at the deadline; the run then drains for a bounded time, stops the stack
and accounts for every (event, webhook) pair:

* ``delivered``: the receiver answered 2xx exactly once, on the last attempt, and got nothing
  for it afterwards;
* ``failed``: 1 + retry_count attempts, none answered 2xx;
* ``retrying``: fewer attempts, none answered 2xx, the next one scheduled;
* ``pending``: the stream had not handed the event to the dispatcher yet (no attempt, nothing
  received) - capacity, not loss.

Anything else - a request for a delivery nobody made, a 2xx followed by another send, a state the
receiver's answers contradict, an attempt count over the budget - is *unaccounted*, and the exit
code is 1. The numbers go to bench/results/soak.md.

    python -m bench.soak                          # the full soak (bounded: ~60 s + drain)
    python -m bench.soak --rate 20 --seconds 10   # smaller
"""

from __future__ import annotations

import argparse
import contextlib
import random
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import harness
from hookline.domain.models import Event

RESULTS = harness.ROOT / "bench" / "results"
#: What a failing receiver answers, chosen at random: a status and body, or None for a reset.
FAILURE_REPLIES: tuple[tuple[int, bytes] | None, ...] = ((500, b"boom"), (503, b"busy"), None)


@dataclass(frozen=True)
class SoakConfig:
    rate: float = 100.0
    seconds: float = 60.0
    webhooks: int = 10
    failing_fraction: float = 1 / 3
    #: Chance that a failing webhook's receiver fails one attempt.
    fail_probability: float = 0.5
    retry_count: int = 3
    #: Multiplies the 300/1800/7200 s retry waits (0.001: 0.3 s, 1.8 s, 7.2 s).
    time_scale: float = 0.001
    #: After publishing stops, wait at most this long for every pair to reach a final state.
    drain_seconds: float = 300.0
    publishers: int = 8
    seed: int = 20240601
    output: Path | None = RESULTS / "soak.md"

    @property
    def failing(self) -> int:
        return round(self.webhooks * self.failing_fraction)


@dataclass
class Pair:
    event: Event
    webhook: int
    published_at: float  # monotonic
    state: str = "pending"
    attempts: int = 0
    problems: list[str] = field(default_factory=list)


@dataclass
class SoakResult:
    config: SoakConfig
    offered: int
    published: int
    rejected: int
    publish_seconds: float
    drain_seconds: float
    publish_latency_ms: list[float]
    refusals: Counter[str]
    first_receipt_ms: list[float]
    pairs: list[Pair]
    attempts: int
    requests: int
    unknown_requests: int
    machine: str

    @property
    def states(self) -> Counter[str]:
        return Counter(p.state for p in self.pairs)

    @property
    def unaccounted(self) -> list[Pair]:
        return [p for p in self.pairs if p.problems]

    @property
    def ok(self) -> bool:
        return not self.unaccounted and self.unknown_requests == 0 and self.rejected == 0


# -- receivers ------------------------------------------------------------------------------------


class Receivers:
    """One loopback receiver per webhook; failing ones answer from a seeded coin per
    (delivery, attempt), so a request sent twice for one attempt gets the same answer. Every
    answer is recorded: (delivery id, attempt) -> status (None for a reset), receipt time."""

    def __init__(self, config: SoakConfig) -> None:
        from tests.receivers import Receiver, Reply

        self.config = config
        self._reply_ok = Reply(200, body=b"ok")
        self._reply_cls = Reply
        self.answers: list[dict[tuple[str, int], tuple[int | None, float]]] = []
        self._lock = threading.Lock()
        self.all = []
        for index in range(config.webhooks):
            self.answers.append({})
            self.all.append(Receiver(self._script(index)))

    def _script(self, index: int) -> Any:
        failing = index < self.config.failing

        def reply(request: Any) -> Any:
            delivery = str(request.header("webhook-id") or "")
            attempt = int(request.header("X-Hookline-Attempt") or 0)
            answer: Any = self._reply_ok
            if failing:
                coin = random.Random(f"{self.config.seed}:{delivery}:{attempt}")
                if coin.random() < self.config.fail_probability:
                    choice = coin.choice(FAILURE_REPLIES)
                    answer = (
                        self._reply_cls(drop=True)
                        if choice is None
                        else self._reply_cls(choice[0], body=choice[1])
                    )
            status = None if answer.drop else answer.status
            with self._lock:
                self.answers[index].setdefault((delivery, attempt), (status, time.monotonic()))
            return answer

        return reply

    def requests(self, index: int) -> list[Any]:
        return self.all[index].requests

    def close(self) -> None:
        for receiver in self.all:
            receiver.close()


# -- the run ------------------------------------------------------------------------------------


@contextlib.contextmanager
def _stack(config: SoakConfig) -> Iterator[Any]:
    from hookline_dev.local import LocalOptions, LocalStack

    with tempfile.TemporaryDirectory(prefix="hookline-soak-") as data_dir:
        stack = LocalStack(
            LocalOptions(
                host="127.0.0.1",
                port=0,
                allow_private_targets=True,
                time_scale=config.time_scale,
                data_dir=Path(data_dir),
                log_level="ERROR",
            )
        )
        stack.start()
        try:
            yield stack
        finally:
            stack.stop()
            from hookline import wiring

            wiring.reset()


class Publisher:
    """Offers `rate` events/s for `seconds` from a few threads; stops at the deadline whatever
    the backlog (events it could not offer in time are counted, never sent late)."""

    def __init__(self, base_url: str, community_id: str, key: str, config: SoakConfig) -> None:
        self.url = f"{base_url}/v1/communities/{community_id}/events"
        self.headers = {"Authorization": f"Bearer {key}"}
        self.config = config
        self.published: list[tuple[Event, float]] = []  # (event, monotonic publish time)
        self.latency_ms: list[float] = []
        self.rejected = 0
        self.refusals: Counter[str] = Counter()
        self.offered = 0
        self._lock = threading.Lock()
        self._local = threading.local()

    def _session(self) -> Any:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = harness.loopback_session()
        return session

    def _publish(self, index: int) -> None:
        started = time.monotonic()
        body = {"event": "post.created", "data": {"post_id": index, "title": f"soak {index}"}}
        event: Event | None = None
        try:
            response = self._session().post(self.url, json=body, headers=self.headers, timeout=60)
            if response.status_code == 202:
                answer = response.json()
                fields = {k: answer[k] for k in ("id", "community_id", "event", "timestamp")}
                event = Event(**fields, data=body["data"])
            else:
                refusal = f"HTTP {response.status_code}: {response.text[:120]}"
        except Exception as exc:
            refusal = f"{type(exc).__name__}: {str(exc)[:120]}"
        with self._lock:
            self.latency_ms.append((time.monotonic() - started) * 1000)
            if event:
                self.published.append((event, started))
            else:
                self.rejected += 1
                self.refusals[refusal] += 1

    def run(self) -> float:
        config = self.config
        total = int(config.rate * config.seconds)
        in_flight = threading.Semaphore(config.publishers * 2)
        start = time.monotonic()
        deadline = start + config.seconds
        with ThreadPoolExecutor(config.publishers, thread_name_prefix="soak-publish") as pool:
            for index in range(total):
                due = start + index / config.rate
                now = time.monotonic()
                if now >= deadline:
                    break
                if due > now:
                    time.sleep(due - now)
                if not in_flight.acquire(timeout=max(deadline - time.monotonic(), 0)):
                    break
                self.offered += 1

                def task(i: int = index) -> None:
                    try:
                        self._publish(i)
                    finally:
                        in_flight.release()

                pool.submit(task)
        return time.monotonic() - start


def _progress(stack: Any) -> dict[str, tuple[int, bool]]:
    """Latest (attempt, success) per delivery id, from the stack's attempt log as it happens."""
    seen: dict[str, tuple[int, bool]] = {}
    lock = threading.Lock()

    def on_attempt(record: Any) -> None:
        with lock:
            attempt, success = seen.get(record.delivery_id, (0, False))
            seen[record.delivery_id] = (
                max(attempt, record.attempt),
                success or bool(record.success),
            )

    stack.on_attempt(on_attempt)
    return seen


def _final(progress: dict[str, tuple[int, bool]], delivery_id: str, budget: int) -> bool:
    attempt, success = progress.get(delivery_id, (0, False))
    return success or attempt >= budget


def _scan_deliveries(stack: Any) -> tuple[dict[str, dict[str, Any]], dict[str, list[Any]]]:
    """Every delivery (D#) and attempt (A#) item of the local stack's deliveries table."""
    deliveries: dict[str, dict[str, Any]] = {}
    attempts: dict[str, list[Any]] = defaultdict(list)
    for item in stack.storage.deliveries.scan_all():
        sk = item["sk"]
        delivery_id = item["delivery_id" if sk.startswith("A#") else "id"]
        if sk.startswith("D#"):
            deliveries[delivery_id] = {
                "state": item["state"],
                "attempts": int(item.get("attempts") or 0),
                "next_attempt_at": item.get("next_attempt_at"),
            }
            # The first attempt is kept inline in the delivery item.
            first = item.get("first_attempt")
            if first:
                status = first.get("status_code")
                attempts[delivery_id].append(
                    (1, bool(first.get("success")), int(status) if status is not None else None)
                )
        elif sk.startswith("A#"):
            status = item.get("status_code")
            attempts[delivery_id].append(
                (
                    int(item["attempt"]),
                    bool(item.get("success")),
                    int(status) if status is not None else None,
                )
            )
    return deliveries, {key: sorted(value) for key, value in attempts.items()}


def _quiesce(stack: Any) -> tuple[dict[str, dict[str, Any]], dict[str, list[Any]]]:
    """Stop the stream poller (after the batch it is dispatching) and the retry timer (after the
    attempts it is making; waits still due are dropped, so those deliveries stay `retrying`),
    then read the table: twice, until two reads agree."""
    if stack.dispatcher is not None:
        stack.dispatcher.stop(timeout=600)
    if stack.scheduler is not None:
        stack.scheduler.stop(timeout=120)
    previous = _scan_deliveries(stack)
    for _ in range(30):
        time.sleep(1.0)
        current = _scan_deliveries(stack)
        if current == previous:
            return current
        previous = current
    return previous


def run(config: SoakConfig) -> SoakResult:
    import requests

    from hookline.domain.delivery import delivery_id_for

    receivers = Receivers(config)
    try:
        with _stack(config) as stack:
            operator = {"Authorization": f"Bearer {stack.operator_key}"}
            created = requests.post(
                f"{stack.base_url}/v1/communities",
                json={"name": "Soak Forum", "site_url": "https://soak.example"},
                headers=operator,
                timeout=30,
            )
            created.raise_for_status()
            community_id = created.json()["id"]
            key = created.json()["api_key"]["key"]
            webhook_ids: list[str] = []
            for index, receiver in enumerate(receivers.all):
                made = requests.post(
                    f"{stack.base_url}/v1/communities/{community_id}/webhooks",
                    json={
                        "name": f"soak {index} ({'failing' if index < config.failing else 'ok'})",
                        "url": receiver.url_for(f"/w{index}"),
                        "events": ["post.*"],
                        "retry_count": config.retry_count,
                    },
                    headers={"Authorization": f"Bearer {key}"},
                    timeout=30,
                )
                made.raise_for_status()
                webhook_ids.append(made.json()["id"])

            progress = _progress(stack)
            publisher = Publisher(stack.base_url, community_id, key, config)
            publish_seconds = publisher.run()
            pairs = [
                Pair(event, index, at)
                for event, at in publisher.published
                for index in range(config.webhooks)
            ]
            by_id = {delivery_id_for(p.event, webhook_ids[p.webhook]): p for p in pairs}

            drain_started = time.monotonic()
            budget = 1 + config.retry_count
            while time.monotonic() - drain_started < config.drain_seconds:
                if all(_final(progress, d, budget) for d in by_id):
                    break
                time.sleep(0.5)
            drain_seconds = time.monotonic() - drain_started
            stored, stored_attempts = _quiesce(stack)
        first_receipt = _account(config, receivers, by_id, stored, stored_attempts)
        unknown = sum(
            1
            for index in range(config.webhooks)
            for request in receivers.requests(index)
            if str(request.header("webhook-id")) not in by_id
        )
        return SoakResult(
            config=config,
            offered=publisher.offered,
            published=len(publisher.published),
            rejected=publisher.rejected,
            publish_seconds=publish_seconds,
            drain_seconds=drain_seconds,
            publish_latency_ms=publisher.latency_ms,
            refusals=publisher.refusals,
            first_receipt_ms=first_receipt,
            pairs=pairs,
            attempts=sum(len(a) for d, a in stored_attempts.items() if d in by_id),
            requests=sum(len(receivers.requests(i)) for i in range(config.webhooks)),
            unknown_requests=unknown,
            machine=harness.machine_line(),
        )
    finally:
        receivers.close()


def _account(
    config: SoakConfig,
    receivers: Receivers,
    by_id: dict[str, Pair],
    stored: dict[str, dict[str, Any]],
    stored_attempts: dict[str, list[Any]],
) -> list[float]:
    """Set each pair's state and problems from the table and the receivers; returns the
    publish-to-first-receipt times (ms)."""
    budget = 1 + config.retry_count
    received: dict[str, list[int]] = defaultdict(list)
    for index in range(config.webhooks):
        for request in receivers.requests(index):
            received[str(request.header("webhook-id"))].append(
                int(request.header("X-Hookline-Attempt") or 0)
            )
    first_receipt: list[float] = []
    for delivery_id, pair in by_id.items():
        answers = receivers.answers[pair.webhook]
        sent = sorted(set(received.get(delivery_id, [])))
        ok = [n for n in sent if (answers.get((delivery_id, n)) or (None,))[0] in range(200, 300)]
        if sent:
            receipt = answers.get((delivery_id, sent[0]))
            if receipt is not None:
                first_receipt.append((receipt[1] - pair.published_at) * 1000)
        record = stored.get(delivery_id)
        log = sorted(stored_attempts.get(delivery_id, []))
        numbers = [n for n, _, _ in log]
        pair.attempts = len(log)
        if record is None:
            pair.state = "pending"
            if sent or log:
                pair.problems.append("attempts without a delivery record")
            continue
        pair.state = record["state"]
        if numbers != list(range(1, len(numbers) + 1)):
            pair.problems.append(f"attempt numbers {numbers}")
        crashed = {n for n, success, status in log if not success and status is None} - set(sent)
        if set(sent) - set(numbers):
            pair.problems.append(f"received attempts {sent} not all in the log {numbers}")
        if set(numbers) - set(sent) - crashed:
            pair.problems.append("logged attempts that never arrived")
        if pair.state == "delivered":
            if ok != [numbers[-1]] or max(sent) != numbers[-1]:
                pair.problems.append(f"delivered, but 2xx answers {ok} of {sent}")
        elif pair.state == "failed":
            if ok or len(log) != budget:
                pair.problems.append(f"failed after {len(log)} attempts, 2xx answers {ok}")
        elif pair.state in ("retrying", "pending"):
            if ok or len(log) >= budget:
                pair.problems.append(f"{pair.state} with {len(log)} attempts, 2xx answers {ok}")
        else:
            pair.problems.append(f"unexpected state {pair.state}")
    return first_receipt


# -- the report ---------------------------------------------------------------------------------


def _ms(values: Sequence[float], q: float) -> str:
    value = harness.percentile(values, q)
    return "—" if value != value else f"{value:,.0f}"


def report(result: SoakResult) -> str:
    config = result.config
    states = result.states
    healthy = [p for p in result.pairs if p.webhook >= config.failing]
    failing = [p for p in result.pairs if p.webhook < config.failing]
    budget = 1 + config.retry_count
    expected_failed = config.fail_probability**budget
    failing_final = [p for p in failing if p.state in ("delivered", "failed")]
    observed_failed = (
        sum(p.state == "failed" for p in failing_final) / len(failing_final)
        if failing_final
        else float("nan")
    )
    delivered = states.get("delivered", 0)
    elapsed = result.publish_seconds + result.drain_seconds
    verdict = (
        "**Every delivery accounted for.**"
        if result.ok
        else f"**{len(result.unaccounted)} pairs unaccounted for, "
        f"{result.unknown_requests} unknown requests, {result.rejected} publishes refused.**"
    )
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lines = [
        "# Hookline soak",
        "",
        f"`python -m bench.soak` (`make soak`), {stamp}. **Machine:** {result.machine}.",
        "",
        f"Offered {config.rate:g} events/s for {config.seconds:g} s through the local stack's API "
        f"(API Gateway emulation → ApiFunction → local tables → stream poller → "
        f"DispatchFunction → delivery queue → DeliverFunction → retry timer running "
        f"statemachine/retry.asl.json) to "
        f"{config.webhooks} webhooks on loopback receivers; {config.failing} of them fail "
        f"{config.fail_probability:.0%} of attempts at random (500, 503 or a reset connection). "
        f"retry_count {config.retry_count}, waits scaled by {config.time_scale:g}; then up to "
        f"{config.drain_seconds:g} s for everything to settle.",
        "",
        verdict,
        "",
        "| | |",
        "|---|---:|",
        f"| events offered / accepted (202) | {result.offered:,} / {result.published:,} |",
        f"| accepted rate | {result.published / max(result.publish_seconds, 1e-9):,.1f}/s "
        f"(target {config.rate:g}/s) |",
        f"| publish latency p50 / p99 | {_ms(result.publish_latency_ms, 50)} / "
        f"{_ms(result.publish_latency_ms, 99)} ms |",
        f"| (event, webhook) pairs | {len(result.pairs):,} |",
        f"| delivered | {delivered:,} |",
        f"| failed (after {budget} attempts) | {states.get('failed', 0):,} |",
        f"| retrying when the soak stopped | {states.get('retrying', 0):,} |",
        f"| pending (not dispatched yet) when the soak stopped | {states.get('pending', 0):,} |",
        f"| unaccounted | {len(result.unaccounted):,} |",
        f"| attempts logged / requests received | {result.attempts:,} / {result.requests:,} |",
        f"| requests for deliveries nobody made | {result.unknown_requests:,} |",
        f"| requests resent within an attempt (a reset on a reused connection) | "
        f"{max(result.requests - result.attempts, 0):,} |",
        f"| delivery rate over the run | {delivered / max(elapsed, 1e-9):,.1f}/s |",
        f"| publish → first receipt p50 / p99 | {_ms(result.first_receipt_ms, 50)} / "
        f"{_ms(result.first_receipt_ms, 99)} ms |",
        f"| drain | {result.drain_seconds:,.1f} s |",
        "",
        "| webhooks | pairs | delivered | failed | retrying | pending |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, group in (("healthy", healthy), ("failing at random", failing)):
        counts = Counter(p.state for p in group)
        lines.append(
            f"| {label} | {len(group):,} | {counts.get('delivered', 0):,} | "
            f"{counts.get('failed', 0):,} | {counts.get('retrying', 0):,} | "
            f"{counts.get('pending', 0):,} |"
        )
    lines += [
        "",
        f"Failing webhooks: a settled pair fails for good with probability "
        f"{config.fail_probability:g}^{budget} = {expected_failed:.2%}; observed "
        f"{observed_failed:.2%} of {len(failing_final):,} settled pairs"
        + (
            " (biased low: the pairs still retrying are the likeliest to fail)."
            if any(p.state == "retrying" for p in failing)
            else "."
        ),
    ]
    if states.get("pending", 0) or states.get("retrying", 0):
        lines += [
            "",
            "Pairs still pending or retrying are not lost: each is in the events stream or has "
            "its next attempt scheduled, and nothing about them contradicts the receivers. They "
            "show the local stack's capacity (API, tables, streams, queue and attempts share "
            "one process on these cores) falling short of the offered rate, not the delivery "
            "guarantees.",
        ]
    if result.refusals:
        lines += ["", "Publishes refused:", ""]
        lines += [f"- {count}: {reason}" for reason, count in result.refusals.most_common(10)]
    if result.unaccounted:
        lines += ["", "Unaccounted pairs (first 20):", ""]
        for pair in result.unaccounted[:20]:
            lines.append(f"- {pair.event.id} → webhook {pair.webhook}: {'; '.join(pair.problems)}")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description=__doc__.split("\n")[0]
    )
    defaults = SoakConfig()
    parser.add_argument("--rate", type=float, default=defaults.rate, help="events/s offered")
    parser.add_argument("--seconds", type=float, default=defaults.seconds)
    parser.add_argument("--webhooks", type=int, default=defaults.webhooks)
    parser.add_argument("--time-scale", type=float, default=defaults.time_scale)
    parser.add_argument("--drain-seconds", type=float, default=defaults.drain_seconds)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--out", type=Path, default=defaults.output)
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.seconds <= 0 or args.webhooks < 1:
        parser.error("--rate and --seconds must be positive, --webhooks at least 1")
    config = SoakConfig(
        rate=args.rate,
        seconds=args.seconds,
        webhooks=args.webhooks,
        time_scale=args.time_scale,
        drain_seconds=args.drain_seconds,
        seed=args.seed,
        output=args.out,
    )
    result = run(config)
    text = report(result)
    if config.output is not None:
        config.output.parent.mkdir(parents=True, exist_ok=True)
        config.output.write_text(text, encoding="utf-8")
    print(text)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
