"""What the local stack takes from template.yaml besides the tables: API routes, the authorizer,
binary media types, function sizes and the stream event source (the template is read by
hookline_dev.template). A property the template leaves out takes AWS's default.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hookline_dev import template as template_file
from hookline_dev.local.lambdas import FUNCTIONS, FunctionConfig, default_function_name

DEFAULT_AUTHORIZER_CACHE_TTL = 30
DEFAULT_BINARY_MEDIA_TYPES = ("multipart/form-data", "application/octet-stream")
#: Lambda's event-filter pattern for the dispatcher when the template declares none.
DEFAULT_STREAM_FILTERS: tuple[dict[str, Any], ...] = ({"eventName": ["INSERT"]},)


@dataclass(frozen=True)
class Route:
    """One API Gateway method: HTTP method (or ANY) on a resource template."""

    method: str
    resource: str
    function: str
    authorized: bool


@dataclass(frozen=True)
class StreamSource:
    """The dispatcher's DynamoDB event source mapping."""

    batch_size: int = 100
    max_retries: int = 3
    bisect_on_error: bool = True
    report_item_failures: bool = True
    batching_window_seconds: float = 0.0
    filters: tuple[dict[str, Any], ...] = DEFAULT_STREAM_FILTERS


@dataclass(frozen=True)
class QueueSource:
    """DeliverFunction's SQS event source and the delivery queue's redrive policy."""

    batch_size: int = 10
    max_receives: int = 5
    #: ScalingConfig.MaximumConcurrency: how many invocations the event source runs at once.
    max_concurrency: int = 50


@dataclass(frozen=True)
class GatewayResponse:
    """A customised API Gateway response (GatewayResponses in the template)."""

    status: int
    template: str | None = None


@dataclass(frozen=True)
class Blueprint:
    routes: tuple[Route, ...]
    stage: str = "dev"
    binary_media_types: tuple[str, ...] = DEFAULT_BINARY_MEDIA_TYPES
    identity_headers: tuple[str, ...] = ("Authorization",)
    authorizer_cache_ttl: int = DEFAULT_AUTHORIZER_CACHE_TTL
    functions: dict[str, FunctionConfig] = field(default_factory=dict)
    stream: StreamSource = field(default_factory=StreamSource)
    queue: QueueSource = field(default_factory=QueueSource)
    gateway_responses: dict[str, GatewayResponse] = field(default_factory=dict)


class _Resolver:
    """Resolves what a static reading can: a Ref to a parameter gives its default."""

    def __init__(self, template: dict[str, Any]) -> None:
        self.parameters: dict[str, Any] = template.get("Parameters") or {}

    def value(self, node: Any, default: Any = None) -> Any:
        return template_file.resolve(node, self.parameters, default)


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _functions(template: dict[str, Any], ref: _Resolver) -> dict[str, FunctionConfig]:
    resources = template.get("Resources") or {}
    globals_fn = (template.get("Globals") or {}).get("Function") or {}
    configs = {}
    for name, logical_id in FUNCTIONS.items():
        props = (resources.get(logical_id) or {}).get("Properties") or {}
        memory = ref.value(props.get("MemorySize"), ref.value(globals_fn.get("MemorySize"), 256))
        timeout = ref.value(props.get("Timeout"), ref.value(globals_fn.get("Timeout"), 30))
        configs[name] = FunctionConfig(
            name=name,
            function_name=default_function_name(name),
            memory_mb=_int(memory, 256),
            timeout_seconds=float(_int(timeout, 30)),
        )
    return configs


def _routes(template: dict[str, Any], api: dict[str, Any]) -> tuple[Route, ...]:
    resources = template.get("Resources") or {}
    default_authorizer = ((api.get("Auth") or {}).get("DefaultAuthorizer")) or None
    routes: list[Route] = []
    for name, logical_id in FUNCTIONS.items():
        events = ((resources.get(logical_id) or {}).get("Properties") or {}).get("Events") or {}
        for event in events.values():
            if not isinstance(event, dict) or event.get("Type") != "Api":
                continue
            props = event.get("Properties") or {}
            path, method = props.get("Path"), props.get("Method")
            if not isinstance(path, str) or not isinstance(method, str):
                continue
            authorizer = (props.get("Auth") or {}).get("Authorizer", default_authorizer)
            authorized = bool(authorizer) and authorizer != "NONE"
            routes.append(Route(method.upper(), path, name, authorized))
    return tuple(routes)


def _stream(template: dict[str, Any], ref: _Resolver) -> StreamSource:
    resources = template.get("Resources") or {}
    events = ((resources.get("DispatchFunction") or {}).get("Properties") or {}).get("Events") or {}
    for event in events.values():
        if not isinstance(event, dict) or event.get("Type") != "DynamoDB":
            continue
        props = event.get("Properties") or {}
        filters: list[dict[str, Any]] = []
        for item in (props.get("FilterCriteria") or {}).get("Filters") or []:
            pattern = ref.value(item.get("Pattern"))
            if isinstance(pattern, str):
                filters.append(json.loads(pattern))
            elif isinstance(pattern, dict):
                filters.append(pattern)
        window = ref.value(props.get("MaximumBatchingWindowInSeconds"), 0)
        return StreamSource(
            batch_size=_int(ref.value(props.get("BatchSize"), 100), 100),
            max_retries=_int(ref.value(props.get("MaximumRetryAttempts"), 3), 3),
            bisect_on_error=bool(ref.value(props.get("BisectBatchOnFunctionError"), True)),
            report_item_failures="ReportBatchItemFailures"
            in (props.get("FunctionResponseTypes") or []),
            batching_window_seconds=float(_int(window, 0)),
            # No FilterCriteria means every record (Lambda's behaviour), not INSERT only.
            filters=tuple(filters) if "FilterCriteria" in props else (),
        )
    return StreamSource()


def _queue(template: dict[str, Any], ref: _Resolver) -> QueueSource:
    resources = template.get("Resources") or {}
    events = ((resources.get("DeliverFunction") or {}).get("Properties") or {}).get("Events") or {}
    sqs = next(
        (
            e.get("Properties") or {}
            for e in events.values()
            if isinstance(e, dict) and e.get("Type") == "SQS"
        ),
        {},
    )
    batch = sqs.get("BatchSize")
    concurrency = (sqs.get("ScalingConfig") or {}).get("MaximumConcurrency")
    queue = ((resources.get("DeliveryQueue") or {}).get("Properties") or {}).get(
        "RedrivePolicy"
    ) or {}
    return QueueSource(
        batch_size=_int(ref.value(batch, 10), 10),
        max_receives=_int(ref.value(queue.get("maxReceiveCount"), 5), 5),
        max_concurrency=_int(ref.value(concurrency, 50), 50),
    )


def _gateway_responses(api: dict[str, Any], ref: _Resolver) -> dict[str, GatewayResponse]:
    found: dict[str, GatewayResponse] = {}
    for kind, spec in (api.get("GatewayResponses") or {}).items():
        if not isinstance(spec, dict):
            continue
        status = _int(ref.value(spec.get("StatusCode")), 0)
        templates = spec.get("ResponseTemplates") or {}
        template = templates.get("application/json")
        found[str(kind)] = GatewayResponse(status, template if isinstance(template, str) else None)
    return found


def load_blueprint(path: Path | None = None) -> Blueprint:
    template = template_file.load_template(path)
    ref = _Resolver(template)
    resources = template.get("Resources") or {}
    api = next(
        (
            r.get("Properties") or {}
            for r in resources.values()
            if isinstance(r, dict) and r.get("Type") == "AWS::Serverless::Api"
        ),
        {},
    )
    auth = api.get("Auth") or {}
    authorizers = auth.get("Authorizers") or {}
    authorizer: dict[str, Any] = authorizers.get(auth.get("DefaultAuthorizer")) or next(
        iter(authorizers.values()), {}
    )
    identity = authorizer.get("Identity") or {}
    ttl = ref.value(
        identity.get("ReauthorizeEvery"),
        template_file.parameter_default("AuthorizerCacheTtlSeconds", path),
    )
    headers = identity.get("Headers") or ["Authorization"]
    binary = ref.value(api.get("BinaryMediaTypes"), None)
    stage = ref.value(api.get("StageName"), "dev")
    return Blueprint(
        routes=_routes(template, api),
        stage=str(stage or "dev"),
        # SAM writes "~1" for "/" in binary media types (JSON-pointer escaping).
        binary_media_types=tuple(str(t).replace("~1", "/") for t in binary)
        if isinstance(binary, list)
        else DEFAULT_BINARY_MEDIA_TYPES,
        identity_headers=tuple(str(h) for h in headers),
        authorizer_cache_ttl=_int(ttl, DEFAULT_AUTHORIZER_CACHE_TTL),
        functions=_functions(template, ref),
        stream=_stream(template, ref),
        queue=_queue(template, ref),
        gateway_responses=_gateway_responses(api, ref),
    )
