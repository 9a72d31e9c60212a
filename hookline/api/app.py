"""The API resolver with every route module included. functions/api/app.py resolves with it."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from hookline.api import portal_assets
from hookline.api.resolver import MAX_BODY_BYTES, build_resolver
from hookline.api.routes import (
    communities,
    deliveries,
    directory,
    docs,
    event_types,
    events,
    incoming,
    logs,
    portal,
    webhooks,
)
from hookline.errors import HooklineError, InvalidParam, PayloadTooLarge, UnsupportedMediaType

app = build_resolver()
app.include_router(communities.router)
app.include_router(webhooks.router)
app.include_router(events.router)
app.include_router(logs.router)
app.include_router(deliveries.router)
app.include_router(directory.router)
app.include_router(incoming.router)
app.include_router(portal.router)
app.include_router(event_types.router)
app.include_router(docs.router)

_BODY_METHODS = {"POST", "PUT", "PATCH"}


def _precheck(event: dict[str, Any]) -> None:
    """Checks that must happen before powertools parses the body (size, type, nesting, UTF-8)."""
    body = event.get("body")
    if not body or (event.get("httpMethod") or "").upper() not in _BODY_METHODS:
        return
    if event.get("isBase64Encoded"):
        raise UnsupportedMediaType("Send the request body as application/json text.")
    if len(body.encode("utf-8", "surrogatepass")) > MAX_BODY_BYTES:
        raise PayloadTooLarge("Request body is larger than 256 KB.")
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    content_type = headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if content_type != "application/json" and not content_type.endswith("+json"):
        raise UnsupportedMediaType(
            f"Content-Type {content_type!r} is not supported; send application/json."
        )
    # Media types are case-insensitive and +json types are JSON; powertools matches the exact
    # lower-case "application/json" prefix, so hand it that.
    for name in list(event.get("headers") or {}):
        if name.lower() == "content-type":
            event["headers"][name] = "application/json"
    for name in list(event.get("multiValueHeaders") or {}):
        if name.lower() == "content-type":
            event["multiValueHeaders"][name] = ["application/json"]
    try:
        parsed = json.loads(body)
    except RecursionError as exc:
        raise InvalidParam("Request body is nested too deeply.", field="body") from exc
    except ValueError as exc:
        raise InvalidParam(f"Request body is not valid JSON: {exc}.", field="body") from exc
    # Every route takes an object (powertools would unwrap a one-object array by itself).
    if not isinstance(parsed, dict):
        raise InvalidParam("Request body must be a JSON object.", field="body")


def handle(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if portal_assets.owns(str(event.get("path") or "")):
        return portal_assets.serve(event)
    try:
        _precheck(event)
    except HooklineError as error:
        return {
            "statusCode": error.status,
            "headers": {"Content-Type": "application/json"},
            "body": json.dumps(error.to_body()),
            "isBase64Encoded": False,
        }
    return app.resolve(event, context)
