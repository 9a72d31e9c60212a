"""The retry timer: the RetryScheduler port, standing in for the RetryStateMachine.

It runs statemachine/retry.asl.json itself through hookline_dev.local.asl, calling the same attempt
handler, so the local control flow is the deployed one. Only the clock differs: every Wait and
Retry interval is multiplied by `time_scale` (0.01 turns a 300 s wait into 3 s).

One timer thread owns a heap of due executions; a few daemon workers run them until their next
Wait. Starting a name twice is a no-op (joined), like a Step Functions execution name.
"""

from __future__ import annotations

import heapq
import itertools
import json
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from hookline_dev.local.asl import Execution, StateMachine, TaskError
from hookline_dev.local.lambdas import (
    FUNCTIONS,
    FunctionError,
    Functions,
    HandlerMissing,
    function_arn,
    repo_root,
)

#: How many finished executions are kept for inspection.
KEEP_FINISHED = 10_000

Listener = Callable[[Execution, str, float], None]


def definition_path() -> Path:
    return repo_root() / "statemachine" / "retry.asl.json"


class LocalRetryScheduler:
    """RetryScheduler (hookline.ports) over an in-process run of the retry state machine.

    `listener(execution, what, seconds)` is told "wait" (with the unscaled seconds), "retry"
    (a task retry interval), "succeeded" or "failed" as executions move.
    """

    def __init__(
        self,
        functions: Functions,
        *,
        time_scale: float = 1.0,
        workers: int = 8,
        definition: dict[str, Any] | None = None,
        listener: Listener | None = None,
    ) -> None:
        if time_scale < 0:
            raise ValueError("time_scale must not be negative")
        self.functions = functions
        self.time_scale = time_scale
        self.listener = listener
        # Whatever names a function in the definition (a substitution, an ARN, a function name)
        # maps to the local handler.
        substitutions: dict[str, str] = {}
        for name, logical in FUNCTIONS.items():
            function_name = functions.config(name).function_name
            substitutions.update(
                {
                    f"{logical}Arn": name,
                    logical: name,
                    function_name: name,
                    function_arn(function_name): name,
                }
            )
        self.machine = StateMachine(
            definition if definition is not None else json.loads(definition_path().read_text()),
            self._invoke,
            substitutions=substitutions,
        )
        self._workers = workers
        self._heap: list[tuple[float, int, str]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._ready: queue.Queue[str | None] = queue.Queue()
        self._executions: OrderedDict[str, Execution] = OrderedDict()
        self._threads: list[threading.Thread] = []
        self._stopping = False

    # -- the port ---------------------------------------------------------------------------

    def schedule(self, *, name: str, document: Mapping[str, Any]) -> None:
        # The same name and input StepFunctionsScheduler sends; an existing name is joined.
        self.start_execution(name, dict(document))

    # -- executions -------------------------------------------------------------------------

    def start_execution(self, name: str, input_document: dict[str, Any]) -> bool:
        """Start an execution now; False when one with this name already exists."""
        with self._cond:
            if self._stopping:
                raise RuntimeError("the local retry scheduler is stopped")
            if name in self._executions:
                return False
            self._executions[name] = self.machine.start(name, input_document)
            self._trim()
            self._push(name, 0.0)
        return True

    def execution(self, name: str) -> Execution | None:
        with self._cond:
            return self._executions.get(name)

    def executions(self) -> list[Execution]:
        with self._cond:
            return list(self._executions.values())

    def running(self) -> int:
        with self._cond:
            return sum(1 for e in self._executions.values() if e.status == "RUNNING")

    def wait_idle(self, timeout: float) -> bool:
        """Block until no execution is running (True) or the timeout passes (False)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.running() == 0:
                return True
            time.sleep(0.01)
        return self.running() == 0

    def _trim(self) -> None:
        finished = [n for n, e in self._executions.items() if e.status != "RUNNING"]
        for name in finished[: max(len(finished) - KEEP_FINISHED, 0)]:
            del self._executions[name]

    def _push(self, name: str, delay: float) -> None:
        heapq.heappush(self._heap, (time.monotonic() + delay, next(self._seq), name))
        self._cond.notify_all()

    def _invoke(self, function: str, payload: Any) -> Any:
        try:
            return self.functions.invoke(function, payload)
        except HandlerMissing as exc:
            raise TaskError("Lambda.ResourceNotFoundException", str(exc)) from exc
        except FunctionError as exc:
            print(f"[{function}] {exc.error_type}: {exc.message}", flush=True)
            raise TaskError(exc.error_type, json.dumps(exc.payload())) from exc

    # -- threads ----------------------------------------------------------------------------

    def start(self) -> None:
        timer = threading.Thread(target=self._timer, name="hookline-retry-timer", daemon=True)
        self._threads = [timer]
        for i in range(self._workers):
            self._threads.append(
                threading.Thread(target=self._work, name=f"hookline-retry-{i}", daemon=True)
            )
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the timer and workers. Pending waits are dropped; a running attempt is given
        until `timeout` to finish (the threads are daemons, so a stuck one cannot block exit)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for _ in range(self._workers):
            self._ready.put(None)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(deadline - time.monotonic(), 0.0))
        self._threads = []

    def _timer(self) -> None:
        with self._cond:
            while not self._stopping:
                if not self._heap:
                    self._cond.wait()
                    continue
                due, _, name = self._heap[0]
                wait = due - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._heap)
                self._ready.put(name)

    def _work(self) -> None:
        while True:
            name = self._ready.get()
            if name is None:
                return
            with self._cond:
                execution = self._executions.get(name)
                if self._stopping or execution is None:
                    continue
            self._run(execution)

    def _run(self, execution: Execution) -> None:
        try:
            pause = self.machine.step(execution)
        except Exception as exc:  # an interpreter fault must not kill the worker
            execution.status = "FAILED"
            execution.error, execution.cause = "States.Runtime", repr(exc)
            pause = None
        if pause is not None:
            what = "wait" if execution.resume == "wait" else "retry"
            self._notify(execution, what, pause.seconds)
            with self._cond:
                if not self._stopping:
                    self._push(execution.name, pause.seconds * self.time_scale)
            return
        if execution.status == "FAILED":
            print(
                f"[retry] execution {execution.name} FAILED: {execution.error} {execution.cause}",
                flush=True,
            )
        self._notify(execution, execution.status.lower(), 0.0)
        with self._cond:
            self._trim()

    def _notify(self, execution: Execution, what: str, seconds: float) -> None:
        if self.listener is None:
            return
        try:
            self.listener(execution, what, seconds)
        except Exception as exc:  # a printing hook must not break the workflow
            print(f"[retry] listener failed: {exc!r}", flush=True)
