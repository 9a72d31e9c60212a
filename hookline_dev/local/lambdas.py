"""Loading the Lambda handlers by file path and invoking them the way the Lambda runtime would.

The handlers in functions/<name>/app.py are imported from the repository itself (never copied),
each under its own module name so that five files called app.py can live in one process.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hookline
from hookline.observability import metrics

Handler = Callable[[dict[str, Any], Any], Any]

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"

#: Short function name -> the template's logical id.
FUNCTIONS: dict[str, str] = {
    "api": "ApiFunction",
    "authorizer": "AuthorizerFunction",
    "dispatch": "DispatchFunction",
    "deliver": "DeliverFunction",
    "attempt": "AttemptFunction",
    "inbound": "InboundFunction",
}


class HandlerMissing(FileNotFoundError):
    """functions/<name>/app.py does not exist (or has no lambda_handler)."""


class FunctionError(Exception):
    """A handler raised: carries the Lambda-style error type and message."""

    def __init__(self, function: str, error_type: str, message: str, trace: list[str]) -> None:
        super().__init__(message)
        self.function = function
        self.error_type = error_type
        self.message = message
        self.trace = trace

    def payload(self) -> dict[str, Any]:
        """The error payload Lambda returns for an unhandled exception."""
        return {
            "errorMessage": self.message,
            "errorType": self.error_type,
            "stackTrace": self.trace,
        }


def function_arn(function_name: str) -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{function_name}"


def default_function_name(name: str) -> str:
    return f"hookline-local-{FUNCTIONS.get(name, name)}"


def repo_root() -> Path:
    """The repository root: hookline/ sits at the top of the repo (editable install)."""
    return Path(hookline.__file__).resolve().parent.parent


def handler_path(name: str) -> Path:
    return repo_root() / "functions" / name / "app.py"


_loaded: dict[str, Handler] = {}
_load_lock = threading.Lock()


def load_handler(name: str) -> Handler:
    """Import functions/<name>/app.py as module `hookline_function_<name>` and return its
    lambda_handler. Loaded once per process; raises HandlerMissing when the file is absent."""
    handler = _loaded.get(name)
    if handler is not None:
        return handler
    with _load_lock:
        handler = _loaded.get(name)
        if handler is not None:
            return handler
        path = handler_path(name)
        if not path.is_file():
            raise HandlerMissing(f"{path} does not exist")
        module_name = f"hookline_function_{name}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise HandlerMissing(f"cannot import {path}")
        module = importlib.util.module_from_spec(spec)
        # Registered before executing so dataclasses/pydantic can resolve the module by name.
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(module_name, None)
            raise
        handler = getattr(module, "lambda_handler", None)
        if not callable(handler):
            raise HandlerMissing(f"{path} has no lambda_handler")
        _loaded[name] = handler
        return handler


def forget_handlers() -> None:
    """Drop the loaded handler modules (the next load imports them afresh)."""
    with _load_lock:
        for name in list(_loaded):
            sys.modules.pop(f"hookline_function_{name}", None)
        _loaded.clear()


@dataclass
class LambdaContext:
    """The context object the Lambda runtime passes to a handler (the fields powertools reads)."""

    function_name: str
    memory_limit_in_mb: int = 256
    timeout_seconds: float = 30.0
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    invoked_function_arn: str = ""
    log_group_name: str = ""
    log_stream_name: str = ""
    _deadline: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        if not self.invoked_function_arn:
            self.invoked_function_arn = function_arn(self.function_name)
        if not self.log_group_name:
            self.log_group_name = f"/aws/lambda/{self.function_name}"
        if not self.log_stream_name:
            day = time.strftime("%Y/%m/%d", time.gmtime())
            self.log_stream_name = f"{day}/[$LATEST]{uuid.uuid4().hex}"
        if not self._deadline:
            self._deadline = time.monotonic() + self.timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(int((self._deadline - time.monotonic()) * 1000), 0)


@dataclass(frozen=True)
class FunctionConfig:
    name: str
    function_name: str
    memory_mb: int = 256
    timeout_seconds: float = 30.0


#: Functions whose handler keeps per-request state on shared objects (powertools' resolver keeps
#: the current event on its class): one invocation at a time, as one Lambda container runs them.
#: Without this, concurrent API requests could read each other's path and caller.
ONE_AT_A_TIME = frozenset({"api"})


class Functions:
    """Invokes the handlers synchronously, like `lambda:Invoke` with RequestResponse.

    Events and results go through JSON as they do in Lambda, so a handler returning something
    that is not JSON-serialisable fails here as it would there (Runtime.MarshalError).
    """

    def __init__(
        self,
        configs: dict[str, FunctionConfig],
        *,
        before_invoke: Callable[[], None] | None = None,
    ) -> None:
        """`before_invoke` runs before every invocation (the local stack re-asserts its wiring
        there, as a Lambda cold start would run the composition root)."""
        self.configs = configs
        self.before_invoke = before_invoke
        self._serial = {name: threading.Lock() for name in ONE_AT_A_TIME}

    def config(self, name: str) -> FunctionConfig:
        return self.configs.get(name) or FunctionConfig(name, default_function_name(name))

    def context(self, name: str) -> LambdaContext:
        cfg = self.config(name)
        return LambdaContext(
            function_name=cfg.function_name,
            memory_limit_in_mb=cfg.memory_mb,
            timeout_seconds=cfg.timeout_seconds,
        )

    def invoke(self, name: str, event: dict[str, Any]) -> Any:
        """Run the handler; raises HandlerMissing, or FunctionError when it raises."""
        handler = load_handler(name)
        if self.before_invoke is not None:
            self.before_invoke()
        payload = json.loads(json.dumps(event))
        try:
            serial = self._serial.get(name)
            if serial is None:
                result = handler(payload, self.context(name))
            else:
                with serial:
                    result = handler(payload, self.context(name))
        except Exception as exc:
            raise FunctionError(
                name,
                type(exc).__name__,
                str(exc),
                traceback.format_exception(type(exc), exc, exc.__traceback__),
            ) from exc
        finally:
            # Metrics are disabled locally, and powertools then keeps (never flushes) them.
            metrics.clear_metrics()
        try:
            return json.loads(json.dumps(result))
        except (TypeError, ValueError) as exc:
            raise FunctionError(
                name, "Runtime.MarshalError", f"Unable to marshal response: {exc}", []
            ) from exc
