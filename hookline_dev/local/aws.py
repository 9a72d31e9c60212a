"""The in-process AWS: moto started (not as a decorator) and fake credentials, so nothing the
local stack runs can reach real AWS. The hot path (tables, streams, the delivery queue) does not
go through moto (hookline_dev.local.storage, .queue); anything left that calls AWS does.

Only hookline_dev.local imports moto; no Lambda handler imports this module.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from hookline_dev.local.lambdas import REGION

MOTO_CONFIG: dict[str, Any] = {
    "stepfunctions": {"execute_state_machine": False},
    "lambda": {"use_docker": False},
}

#: Environment every boto3 client in the process sees while the stack runs.
AWS_ENV: dict[str, str] = {
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    # moto 5.2 does not route DynamoDB Streams' account-ID endpoints (see design.md pitfalls).
    "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
}

#: Variables that could send a boto3 call somewhere other than moto: removed while running.
_UNSAFE_ENV_PREFIXES = ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_CONFIG_FILE", "AWS_CA_BUNDLE")

TABLE_PREFIX = "hookline-local"


class EnvironmentPatch:
    """Sets and removes environment variables, and puts every one back on restore()."""

    def __init__(self) -> None:
        self._saved: dict[str, str | None] = {}

    def set(self, values: Mapping[str, str]) -> None:
        for name, value in values.items():
            self._saved.setdefault(name, os.environ.get(name))
            os.environ[name] = value

    def setdefault(self, values: Mapping[str, str]) -> None:
        self.set({k: v for k, v in values.items() if k not in os.environ})

    def remove(self, names: list[str]) -> None:
        for name in names:
            if name in os.environ:
                self._saved.setdefault(name, os.environ[name])
                del os.environ[name]

    def restore(self) -> None:
        for name, value in self._saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved.clear()


def clear_client_caches() -> None:
    """Forget cached boto3 clients/resources and settings in hookline's modules, so nothing made
    before moto started (which would talk to real AWS) is reused, and nothing made under moto
    outlives it."""
    from hookline.config import settings

    settings.cache_clear()
    for name, module in list(sys.modules.items()):
        if not name.startswith("hookline.adapters.") or module is None:
            continue
        for value in list(vars(module).values()):
            clear = getattr(value, "cache_clear", None)
            if callable(clear) and getattr(value, "__module__", None) == name:
                clear()


_moto_lock = threading.RLock()


@contextmanager
def _serialised_moto() -> Iterator[None]:
    """moto's backends are not thread-safe (under load: "dictionary changed size during
    iteration"), and the local stack calls AWS from many threads: the API server, the stream
    poller, the dispatcher's pool and the retry timer. While the stack runs, one lock around
    moto's request handling makes each emulated AWS call atomic, as it is against AWS."""
    from moto.core.botocore_stubber import BotocoreStubber

    unlocked = BotocoreStubber.__call__

    def locked(self: Any, event_name: str, request: Any, **kwargs: Any) -> Any:
        with _moto_lock:
            return unlocked(self, event_name, request, **kwargs)

    BotocoreStubber.__call__ = locked  # type: ignore[method-assign]
    try:
        yield
    finally:
        BotocoreStubber.__call__ = unlocked  # type: ignore[method-assign]


class MotoSession:
    """moto's mock_aws for the whole process, plus the fake AWS environment."""

    def __init__(self) -> None:
        self._mock: Any = None
        self._serialised: Any = None
        self.env = EnvironmentPatch()

    def start(self) -> None:
        self.env.remove([k for k in os.environ if k.startswith(_UNSAFE_ENV_PREFIXES)])
        self.env.set(AWS_ENV)
        from moto import mock_aws

        self._serialised = _serialised_moto()
        self._serialised.__enter__()
        self._mock = mock_aws(config=MOTO_CONFIG)  # type: ignore[call-overload]
        self._mock.start()
        clear_client_caches()

    def stop(self) -> None:
        if self._mock is not None:
            self._mock.stop()
            self._mock = None
        if self._serialised is not None:
            self._serialised.__exit__(None, None, None)
            self._serialised = None
        clear_client_caches()
        self.env.restore()

    def client(self, service: str, **kwargs: Any) -> Any:
        import boto3

        make: Any = boto3.client
        return make(service, region_name=REGION, **kwargs)


@contextmanager
def moto_session() -> Iterator[MotoSession]:
    session = MotoSession()
    session.start()
    try:
        yield session
    finally:
        session.stop()
