"""The saved Logs Insights queries in template.yaml (AWS::Logs::QueryDefinition) ask for fields
the code really logs: checked statically (the ``extra={...}`` keys of each named log message in
hookline/ and functions/) and on lines the handlers actually write."""

from __future__ import annotations

import ast
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hookline import wiring
from hookline.observability import logger
from tests.delivery_helpers import (
    dispatch_handler,
    make_community,
    make_event,
    make_webhook,
    stream_batch,
)
from tests.incoming_helpers import World, post_form
from tests.receivers import Receiver

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [*sorted((ROOT / "hookline").rglob("*.py")), *sorted((ROOT / "functions").rglob("*.py"))]

#: Keys powertools puts on every line (inject_lambda_context, correlation id, X-Ray).
POWERTOOLS_KEYS = {
    "level",
    "location",
    "message",
    "timestamp",
    "service",
    "cold_start",
    "function_name",
    "function_memory_size",
    "function_arn",
    "function_request_id",
    "correlation_id",
    "xray_trace_id",
    "exception",
    "exception_name",
}
#: Functions whose invocations make delivery attempts (dispatch, retries, test/resend API).
ATTEMPTING_FUNCTIONS = {"DispatchFunction", "AttemptFunction", "ApiFunction"}

_KEYWORDS = {
    "fields",
    "filter",
    "stats",
    "sort",
    "limit",
    "by",
    "as",
    "and",
    "or",
    "not",
    "in",
    "like",
    "desc",
    "asc",
    "display",
    "parse",
    "dedup",
    "unmask",
}


@dataclass(frozen=True)
class SavedQuery:
    logical_id: str
    name: str
    log_groups: tuple[str, ...]
    text: str

    @property
    def message(self) -> str | None:
        """The log message the query is about (its ``message = "..."`` filter)."""
        found = re.search(r'\bmessage\s*=\s*"([^"]+)"', self.text)
        return found.group(1) if found else None

    @property
    def fields(self) -> set[str]:
        """The log fields the query reads (not its own aliases, functions or @-fields)."""
        text = re.sub(r"#[^\n]*", " ", self.text)
        text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|/(?:[^/\\\n]|\\.)+/', " ", text)
        aliases = set(re.findall(r"\bas\s+([A-Za-z_][\w.]*)", text))
        names = set()
        for match in re.finditer(r"`([^`]+)`|([A-Za-z_@][\w.@]*)(\s*\()?", text):
            quoted, name, call = match.groups()
            if quoted:
                names.add(quoted)
            elif name and not call and not name.startswith("@") and name not in _KEYWORDS:
                names.add(name)
        return {n for n in names if not n.isdigit()} - aliases


def saved_queries() -> list[SavedQuery]:
    from hookline_dev.template import load_template

    queries = []
    for logical_id, resource in load_template()["Resources"].items():
        if resource["Type"] != "AWS::Logs::QueryDefinition":
            continue
        props = resource["Properties"]
        groups = tuple(g["Ref"] for g in props.get("LogGroupNames", []) if isinstance(g, dict))
        queries.append(SavedQuery(logical_id, props["Name"], groups, props["QueryString"]))
    return queries


def logged_fields() -> dict[str, set[str]]:
    """Log message -> the keys its ``logger.<level>("message", extra={...})`` calls pass."""
    found: dict[str, set[str]] = {}
    for path in SOURCES:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in {"debug", "info", "warning", "error", "exception"}
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "logger"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                continue
            keys = found.setdefault(node.args[0].value, set())
            for keyword in node.keywords:
                if keyword.arg == "extra" and isinstance(keyword.value, ast.Dict):
                    keys |= {
                        k.value
                        for k in keyword.value.keys
                        if isinstance(k, ast.Constant) and isinstance(k.value, str)
                    }
                elif keyword.arg not in (None, "extra", "exc_info", "stack_info", "stacklevel"):
                    keys.add(keyword.arg)
    return found


QUERIES = saved_queries()


def test_the_template_saves_the_three_queries() -> None:
    names = {q.name for q in QUERIES}
    assert {
        "hookline/failed deliveries of a webhook",
        "hookline/slowest endpoints",
        "hookline/inbound rejections by reason",
    } <= names


def test_the_field_parser() -> None:
    query = SavedQuery(
        "Q",
        "q",
        (),
        '# note WEBHOOK_ID\nfields @timestamp, a, `b.c`\n| filter message = "x y" and d like /e f/'
        "\n| stats count(*) as n, pct(g, 99) as p by h\n| sort p desc | limit 5",
    )
    assert query.message == "x y"
    assert query.fields == {"a", "b.c", "message", "d", "g", "h"}


@pytest.mark.parametrize("query", QUERIES, ids=[q.logical_id for q in QUERIES])
def test_query_fields_are_logged_by_the_code(query: SavedQuery) -> None:
    messages = logged_fields()
    assert query.message, f"{query.name} does not filter on a log message"
    assert query.message in messages, f"no code logs {query.message!r}"
    missing = query.fields - messages[query.message] - POWERTOOLS_KEYS
    assert missing == set(), f"{query.name}: not logged with {query.message!r}: {missing}"


@pytest.mark.parametrize("query", QUERIES, ids=[q.logical_id for q in QUERIES])
def test_query_reads_the_log_groups_of_the_functions_that_log_it(query: SavedQuery) -> None:
    from hookline_dev.template import load_template

    resources = load_template()["Resources"]
    for group in query.log_groups:
        assert resources[group]["Type"] == "AWS::Logs::LogGroup"
    functions = {g.removesuffix("LogGroup") for g in query.log_groups}
    if query.message == "delivery attempt":
        assert functions >= ATTEMPTING_FUNCTIONS
    elif query.message == "inbound call":
        assert functions == {"InboundFunction"}


# -- the same, on lines the handlers write --------------------------------------------------------


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """Everything the service's Logger writes while the test runs (its real JSON lines)."""
    buffer = io.StringIO()
    handler: Any = logger.registered_handler
    previous = handler.setStream(buffer)
    try:
        yield buffer
    finally:
        handler.setStream(previous)


def _lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]


def test_queries_find_their_fields_on_real_lines(
    memory_services: wiring.Services, lambda_context: Any, log_lines: io.StringIO
) -> None:
    community, _ = make_community(memory_services)
    with Receiver((500, {}, b"down")) as rx:
        webhook = make_webhook(memory_services, community.id, rx.url_for("/hook"))
        dispatch_handler()(stream_batch([make_event(community)]), lambda_context)
    status, _ = post_form("no-such-token-0123456789", {"email": "a@example.com"})
    assert status == 404
    hook, token = World.create(memory_services).incoming()
    status, _ = post_form(token, {"email": "not an address"})
    assert status == 400
    lines = _lines(log_lines)
    for query in QUERIES:
        matching = [line for line in lines if line.get("message") == query.message]
        assert matching, f"no line {query.message!r} was written"
        for field in query.fields:
            assert any(field in line for line in matching), f"{query.name}: {field} never logged"
    [attempt] = [line for line in lines if line["message"] == "delivery attempt"]
    assert attempt["webhook_id"] == webhook.id and attempt["success"] is False
    assert attempt["url_host"] == "127.0.0.1" and isinstance(attempt["response_time_ms"], int)
    [unknown, invalid] = [line for line in lines if line["message"] == "inbound call"]
    assert unknown["outcome"] == "rejected" and unknown["reason"] == "unknown_token"
    assert invalid["reason"] == "invalid_email" and invalid["incoming_webhook_id"] == hook.id
