"""The one Logger, Tracer and Metrics of the service (powertools), and what goes with them:

* correlation keys: ``bind(community_id=..., delivery_id=...)`` adds keys to every line logged
  inside it, on this thread only (the dispatcher logs from a thread pool), and removes them
  after; ``correlated(extract)`` does the same around a Lambda handler;
* a last line of defence: every line the Logger writes passes through ``redact``, which masks
  values of secret-named fields and anything shaped like a secret, key, token, password or
  signature (``RedactingFilter`` does the same for other loggers' handlers);
* ``traced_sender(send)``: an X-Ray subsegment around each outbound HTTP attempt;
* metrics carry the dimensions ``service`` and ``stage`` (never per webhook).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import re
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

if TYPE_CHECKING:
    from hookline.domain.attempts import AttemptOutcome
    from hookline.ports import Sender

SERVICE = "hookline"
NAMESPACE = "Hookline"
REDACTED = "[REDACTED]"

#: The keys that tie a log line to what it is about (besides powertools' function_request_id
#: and the API's correlation_id, which is API Gateway's request id).
CORRELATION_KEYS = (
    "correlation_id",
    "community_id",
    "webhook_id",
    "event_id",
    "delivery_id",
    "attempt",
    "incoming_webhook_id",
)

# -- redaction ---------------------------------------------------------------------------------

_SECRET_NAMES = frozenset(
    {
        "api_key",
        "apikey",
        "authorization",
        "cookie",
        "key",
        "passwd",
        "password",
        "plaintext",
        "proxy_authorization",
        "pwd",
        "secret",
        "set_cookie",
        "signature",
        "token",
        "user_pass",
        "webhook_signature",
        "x_api_key",
        "x_hookline_signature",
    }
)
_SECRET_SUFFIXES = ("_password", "_secret", "_token", "_api_key", "_signature")

_NAMES = r"user_pass|password|passwd|pwd|secret|signing_secret|token|api_key|apikey|authorization"
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"whsec_[A-Za-z0-9+/=_-]+"), "whsec_" + REDACTED),
    (re.compile(r"\bhk_[A-Za-z0-9_-]{6,}"), "hk_" + REDACTED),
    (re.compile(r"\bhlp_[A-Za-z0-9_-]{6,}"), "hlp_" + REDACTED),
    (re.compile(r"\b(v1a?),[A-Za-z0-9+/=_-]{8,}"), r"\1," + REDACTED),
    (re.compile(r"(?i)\bsha256=[0-9a-f]{8,}"), "sha256=" + REDACTED),
    (re.compile(r"(?i)\b(bearer|basic|digest)(\s+)[A-Za-z0-9._~+/=-]{8,}"), r"\1\2" + REDACTED),
    (re.compile(r"(/v1/hooks/)(?!\{)[^/?#\s\"'\\]+"), r"\1" + REDACTED),
    # "name": "value" / name='value' (JSON text, repr) and name=value / name: value (queries,
    # form bodies, headers)
    (
        re.compile(rf"(?i)(\b(?:{_NAMES})\b[\"']?\s*[:=]\s*)([\"'])(.*?)(?<!\\)\2"),
        r"\1\2" + REDACTED + r"\2",
    ),
    (re.compile(rf"(?i)(\b(?:{_NAMES})\b\s*[:=]\s*)([^\"'&\s,;}}\\]+)"), r"\1" + REDACTED),
    # a multipart/form-data part named like a secret: its value follows the blank line
    (
        re.compile(rf"(?i)(name=\"(?:{_NAMES})\"[^\r\n]*(?:\r?\n[^\r\n]+)*\r?\n\r?\n)([^\r\n]+)"),
        r"\1" + REDACTED,
    ),
)
#: Long runs of URL-safe characters mixing cases and digits: random tokens (an incoming webhook
#: URL carries 43 of them). Found as whole runs, then judged, so the cost stays linear.
_RUN = re.compile(r"[A-Za-z0-9_-]{32,}")
#: Fields powertools fills from the Lambda context and X-Ray (function name, ARN, request and
#: trace ids...): they cannot carry a secret, and a generated function name looks random.
_ENVELOPE_KEYS = frozenset(
    {
        "level",
        "location",
        "timestamp",
        "service",
        "cold_start",
        "function_name",
        "function_memory_size",
        "function_arn",
        "function_request_id",
        "correlation_id",
        "xray_trace_id",
        "sampling_rate",
    }
)


_THREE_LOWER = re.compile(r"(?:[^a-z]*[a-z]){3}")
_THREE_UPPER = re.compile(r"(?:[^A-Z]*[A-Z]){3}")
_THREE_DIGITS = re.compile(r"(?:[^0-9]*[0-9]){3}")


def _judge_run(match: re.Match[str]) -> str:
    run = match.group(0)
    random_looking = (
        _THREE_UPPER.match(run) and _THREE_LOWER.match(run) and _THREE_DIGITS.match(run)
    )
    return REDACTED if random_looking else run


#: Every pattern above needs one of these in the (lower-cased) text: a cheap first check, so
#: the ordinary values of a line (ids, numbers, words) are not run through every pattern.
_TRIGGERS = (
    "whsec_",
    "hk_",
    "hlp_",
    "v1",
    "sha256=",
    "bearer",
    "basic",
    "digest",
    "/hooks/",
    "pass",
    "pwd",
    "secret",
    "token",
    "apikey",
    "api_key",
    "authorization",
)


def _suspicious(text: str) -> bool:
    lowered = text.lower()
    # A plain loop: measurably faster here than any() or a regex alternation.
    for trigger in _TRIGGERS:  # noqa: SIM110
        if trigger in lowered:
            return True
    return False


def redact_text(text: str) -> str:
    """``text`` with everything shaped like a secret masked."""
    if _suspicious(text):
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
    if len(text) >= 32:
        text = _RUN.sub(_judge_run, text)
    return text


@functools.lru_cache(maxsize=4096)
def is_secret_name(name: str) -> bool:
    """Is a field of this name a secret whatever its value (password, token, authorization...)?"""
    normalized = name.strip().lower().replace("-", "_")
    return normalized in _SECRET_NAMES or normalized.endswith(_SECRET_SUFFIXES)


def redact(value: Any) -> Any:
    """A copy of ``value`` (any JSON-like structure) with secret-named fields and secret-shaped
    strings masked. Other values are returned as they are."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        masked = {key: _redact_field(key, item) for key, item in value.items()}
        if value.get("isBase64Encoded") is True and masked.get("body"):
            # An API Gateway event's binary body (multipart forms): no pattern can see inside.
            masked["body"] = REDACTED
        return masked
    if isinstance(value, list | tuple | set | frozenset):
        return [redact(item) for item in value]
    if isinstance(value, bytes | bytearray):
        return redact_text(bytes(value).decode("utf-8", "replace"))
    return value


def _redact_field(key: Any, value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    if not isinstance(key, str):
        return redact(value)
    if is_secret_name(key) and value not in (None, "", [], {}):
        return REDACTED
    if key in _ENVELOPE_KEYS:
        return value
    return redact(value)


def redacting_serializer(log: Mapping[str, Any]) -> str:
    """The Logger's JSON serializer: powertools' compact JSON of the redacted record."""
    return json.dumps(redact(log), default=lambda v: redact_text(str(v)), separators=(",", ":"))


class RedactingFilter(logging.Filter):
    """Redacts a record's message, arguments and extra fields in place (for handlers that do not
    format through the Logger above, e.g. the root logger's)."""

    _RESERVED = frozenset(vars(logging.makeLogRecord({})))

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact_text(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            # Formatters reuse exc_text when it is set: they print the redacted traceback.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        for name, value in list(vars(record).items()):
            if name not in self._RESERVED and name != "message":
                setattr(record, name, _redact_field(name, value))
        return True


# -- the powertools utilities ------------------------------------------------------------------

logger = Logger(service=SERVICE, json_serializer=redacting_serializer)
tracer = Tracer(service=SERVICE, patch_modules=("botocore",))
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
# Read directly (not through hookline.config.settings) so importing this module reads nothing
# else from the environment; the value is the same HOOKLINE_STAGE.
metrics.set_default_dimensions(stage=os.environ.get("HOOKLINE_STAGE") or "dev")


def emit(metrics_now: dict[str, tuple[MetricUnit, float]], *, stage: str) -> None:
    """Write some metrics at once, as one EMF document with the service and stage dimensions
    (the ones the dashboard and alarms read): {name: (unit, value)}. Thread-safe: each call uses
    its own metric set, so it suits the dispatcher's pool and needs no handler flush."""
    document = EphemeralMetrics(namespace=NAMESPACE, service=SERVICE)
    document.add_dimension(name="stage", value=stage)
    for name, (unit, value) in metrics_now.items():
        document.add_metric(name=name, unit=unit, value=value)
    document.flush_metrics()


# -- correlation keys ----------------------------------------------------------------------------


@contextlib.contextmanager
def bind(**keys: Any) -> Iterator[None]:
    """Add ``keys`` to every line logged inside the block on this thread; on leaving, the keys
    are exactly what they were before (nesting works). ``None`` and ``""`` values are skipped.

    Uses powertools' thread-safe keys (a context variable), so threads of a pool never see each
    other's keys. Keys bound on one thread do not follow work handed to another thread: bind
    inside the worker (or wrap the callable with ``carry``).
    """
    fresh = {name: value for name, value in keys.items() if value is not None and value != ""}
    previous = dict(logger.thread_safe_get_current_keys())
    logger.thread_safe_append_keys(**fresh)
    try:
        yield
    finally:
        logger.thread_safe_clear_keys()
        if previous:
            logger.thread_safe_append_keys(**previous)


_F = TypeVar("_F", bound=Callable[..., Any])


def carry(function: _F) -> _F:
    """``function`` bound to the keys bound now, for running on another thread (a pool)."""
    keys = dict(logger.thread_safe_get_current_keys())

    @functools.wraps(function)
    def run(*args: Any, **kwargs: Any) -> Any:
        with bind(**keys):
            return function(*args, **kwargs)

    return run  # type: ignore[return-value]


def current_keys() -> dict[str, Any]:
    """The keys bound on this thread (a copy)."""
    return dict(logger.thread_safe_get_current_keys())


_API_PATH = re.compile(
    r"^/v1/communities/(?P<community_id>[^/]+)"
    r"(?:/webhooks/(?P<webhook_id>[^/]+)(?:/deliveries/(?P<delivery_id>[^/]+))?"
    r"|/incoming-webhooks/(?P<incoming_webhook_id>[^/]+))?"
)


def api_keys(event: Mapping[str, Any]) -> dict[str, str]:
    """Correlation keys of an API Gateway request to the management API, from its path."""
    path = str(event.get("path") or "")
    found = _API_PATH.match(path)
    if found is None:
        return {}
    return {name: value for name, value in found.groupdict().items() if value}


def step_keys(event: Mapping[str, Any]) -> dict[str, Any]:
    """Correlation keys of an AttemptFunction payload (the retry state machine's input)."""
    names = ("delivery_id", "community_id", "webhook_id", "attempt")
    return {name: event[name] for name in names if isinstance(event.get(name), str | int)}


def correlated(
    extract: Callable[[Mapping[str, Any]], Mapping[str, Any]],
) -> Callable[[_F], _F]:
    """Decorate a Lambda handler (below ``logger.inject_lambda_context``) so every line of the
    invocation carries the keys ``extract(event)`` finds. A failing extractor binds nothing."""

    def decorate(handler: _F) -> _F:
        @functools.wraps(handler)
        def run(event: Any, context: Any) -> Any:
            try:
                keys = dict(extract(event)) if isinstance(event, Mapping) else {}
            except Exception:
                keys = {}
            with bind(**keys):
                return handler(event, context)

        return run  # type: ignore[return-value]

    return decorate


# -- tracing -----------------------------------------------------------------------------------


def traced_sender(send: Sender) -> Sender:
    """``send`` (the HTTP attempt port) inside an X-Ray subsegment ``## delivery attempt``
    annotated with the target host, status code and success. Only the host is recorded: a
    webhook URL's path or query can itself be a credential (Slack, Discord). When tracing is
    disabled (tests, the local stack) ``send`` runs as it is."""

    def traced(
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        *,
        timeout: float,
        allow_private: bool,
    ) -> AttemptOutcome:
        if tracer.disabled:
            return send(url, body, headers, timeout=timeout, allow_private=allow_private)
        try:
            parts = urlsplit(url)
            host, scheme = parts.hostname or "", parts.scheme
        except ValueError:
            host, scheme = "", ""
        with tracer.provider.in_subsegment(name="## delivery attempt", namespace="remote") as seg:
            subsegment: Any = seg  # aws_xray_sdk's Subsegment (powertools types it narrower)
            subsegment.put_annotation("url_host", host)
            subsegment.put_http_meta("method", "POST")
            subsegment.put_http_meta("url", f"{scheme}://{host}")
            outcome = send(url, body, headers, timeout=timeout, allow_private=allow_private)
            subsegment.put_annotation("success", outcome.success)
            if outcome.status_code is not None:
                subsegment.put_annotation("status_code", outcome.status_code)
                subsegment.put_http_meta("status", outcome.status_code)
            subsegment.put_metadata("response_time_ms", outcome.response_time_ms, SERVICE)
            if outcome.error:
                subsegment.put_metadata("error", redact_text(outcome.error), SERVICE)
        return outcome

    return traced
