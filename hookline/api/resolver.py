"""The API's resolver and its exception handlers: every error leaves in the one error shape."""

from __future__ import annotations

import json
import weakref
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)

from hookline.errors import (
    HooklineError,
    InvalidParam,
    MethodNotAllowed,
    NotFound,
    UnsupportedMediaType,
)
from hookline.observability import logger

MAX_BODY_BYTES = 256 * 1024


def error_response(error: HooklineError, headers: dict[str, str] | None = None) -> Response:
    return Response(
        status_code=error.status,
        content_type="application/json",
        body=json.dumps(error.to_body()),
        headers=headers,
    )


def _field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def validation_error(errors: list[dict[str, Any]]) -> InvalidParam:
    """Turn pydantic/powertools validation errors into one invalid_param naming the field(s)."""
    if any(e.get("type") == "json_invalid" for e in errors):
        return InvalidParam("Request body is not valid JSON.", field="body")
    fields = []
    messages = []
    for error in errors:
        loc = tuple(error.get("loc", ()))
        field = _field_name(loc)
        if error.get("type") == "missing":
            messages.append(f"{field} is required")
        elif error.get("type") == "extra_forbidden":
            messages.append(f"{field} is not a known field")
        else:
            messages.append(f"{field}: {error.get('msg', 'invalid value')}")
        fields.append(field)
    unique = list(dict.fromkeys(fields))
    return InvalidParam(
        "Invalid " + ", ".join(unique) + ": " + "; ".join(messages) + ".",
        field=unique[0] if len(unique) == 1 else ",".join(unique),
    )


def refuse_unknown_query(app: APIGatewayRestResolver, next_middleware: NextMiddleware) -> Response:
    """A query parameter the route does not declare is a 400 naming it, never ignored."""
    route = app.context.get("_route")
    # An unmatched request runs the middlewares through powertools' stand-in route (no query
    # parameters of its own): its answer is the 404 or 405, whatever the query says.
    if route is not None and id(route) in _shadows(app):
        event = app.current_event
        given = {
            *(event.multi_value_query_string_parameters or {}),
            *(event.query_string_parameters or {}),
        }
        known = {param.alias for param in route.dependant.query_params}
        unknown = sorted(given - known)
        if unknown:
            allowed = ", ".join(sorted(known)) or "none"
            return error_response(
                InvalidParam(
                    f"Unknown query parameter {unknown[0][:100]!r} (this route takes: {allowed}).",
                    field=unknown[0][:100],
                )
            )
    return next_middleware(app)


def refuse_shadowed_method(
    app: APIGatewayRestResolver, next_middleware: NextMiddleware
) -> Response:
    """``GET /events/batch`` matches ``/events/<event_id>``, but the path is the batch resource,
    which takes POST only: a method the most literal routes of a path do not take is a 405."""
    event = app.current_event
    route = app.context.get("_route")
    shadows = _shadows(app).get(id(route)) if route is not None else None
    # The route powertools matched stands unless a more literal route of the same shape also
    # matches the path (a few routes have one); an unmatched request gets the full search.
    if shadows is not None and not any(s.rule.match(event.path) for s in shadows):
        return next_middleware(app)
    allowed = _methods_of(app, event.path)
    if allowed and event.http_method.upper() not in allowed:
        return _method_not_allowed(event.http_method.upper(), event.path, allowed)
    return next_middleware(app)


def _method_not_allowed(method: str, path: str, allowed: set[str]) -> Response:
    # RFC 9110: a 405 names the methods the resource does support.
    return error_response(
        MethodNotAllowed(f"{method} is not allowed on {path}."),
        headers={"Allow": ", ".join(sorted(allowed))},
    )


def build_resolver() -> APIGatewayRestResolver:
    app = APIGatewayRestResolver(enable_validation=True)
    app.use(middlewares=[refuse_shadowed_method, refuse_unknown_query])

    @app.exception_handler(HooklineError)
    def _domain_error(error: HooklineError) -> Response:
        return error_response(error)

    @app.exception_handler(RequestValidationError)
    def _invalid(error: RequestValidationError) -> Response:
        return error_response(validation_error(list(error.errors())))

    @app.exception_handler(RequestUnsupportedContentType)
    def _unsupported(error: RequestUnsupportedContentType) -> Response:
        return error_response(UnsupportedMediaType("Send the request body as application/json."))

    @app.not_found
    def _not_found(error: NotFoundError) -> Response:
        # A known path with another method never gets here: the middlewares run first, and
        # refuse_shadowed_method answers it with 405.
        event = app.current_event
        return error_response(NotFound(f"No route for {event.http_method.upper()} {event.path}."))

    @app.exception_handler(Exception)
    def _unexpected(error: Exception) -> Response:
        if _is_throttling(error):
            # Storage is shedding load: nothing was accepted, and the client may simply retry.
            logger.warning("storage throttled the request", extra={"error": type(error).__name__})
            body = {
                "code": "service_unavailable",
                "message": "Hookline is busy; retry the request shortly.",
                "data": {"status": 503},
            }
            return Response(
                status_code=503,
                content_type="application/json",
                body=json.dumps(body),
                headers={"Retry-After": "1"},
            )
        logger.exception("unhandled error")
        body = {"code": "internal_error", "message": "Internal error.", "data": {"status": 500}}
        return Response(status_code=500, content_type="application/json", body=json.dumps(body))

    return app


_THROTTLING_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
    }
)


def _is_throttling(error: Exception) -> bool:
    """A botocore ClientError whose code says the service is throttling (duck-typed, so this
    module needs no botocore import)."""
    response = getattr(error, "response", None)
    if not isinstance(response, dict):
        return False
    return response.get("Error", {}).get("Code") in _THROTTLING_CODES


def _routes(app: APIGatewayRestResolver) -> list[Any]:
    return [*getattr(app, "_static_routes", []), *getattr(app, "_dynamic_routes", [])]


def _literal_segments(route: Any) -> int:
    return sum(1 for part in str(route.path).split("/") if part and not part.startswith("<"))


def _segments(route: Any) -> list[str | None]:
    """A route's path segments, None for a parameter."""
    return [None if p.startswith("<") else p for p in str(route.path).split("/") if p]


def _may_shadow(literal: Any, route: Any) -> bool:
    """Whether `literal`, with more literal segments, can match a path `route` matches."""
    mine, theirs = _segments(literal), _segments(route)
    return (
        _literal_segments(literal) > _literal_segments(route)
        and len(mine) == len(theirs)
        and all(a is None or b is None or a == b for a, b in zip(mine, theirs, strict=True))
    )


_SHADOWS: weakref.WeakKeyDictionary[APIGatewayRestResolver, dict[int, list[Any]]] = (
    weakref.WeakKeyDictionary()
)


def _shadows(app: APIGatewayRestResolver) -> dict[int, list[Any]]:
    """Per registered route (by id, so also the test of whether a route is one of them): the
    more literal routes that may shadow it, worked out once per resolver (its routes are all
    registered before its first request)."""
    found = _SHADOWS.get(app)
    if found is None:
        routes = _routes(app)
        found = {id(r): [s for s in routes if _may_shadow(s, r)] for r in routes}
        _SHADOWS[app] = found
    return found


def _methods_of(app: APIGatewayRestResolver, path: str) -> set[str]:
    """The methods routed for this path (another method gets 405, an unknown path 404). The
    most literal routes win: ``/events/batch`` shadows ``/events/<event_id>``."""
    matching = [r for r in _routes(app) if r.rule.match(path)]
    if not matching:
        return set()
    best = max(_literal_segments(r) for r in matching)
    return {r.method.upper() for r in matching if _literal_segments(r) == best}
