"""Build API Gateway events from the sample files in events/ and call the real handlers."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from hookline_dev.local.lambdas import load_handler

EVENTS_DIR = Path(__file__).resolve().parent.parent / "events"
OPERATOR = {"principalId": "operator", "role": "operator", "community_id": "", "key_id": "operator"}


def load(name: str) -> dict[str, Any]:
    return json.loads((EVENTS_DIR / name).read_text())


def admin(community_id: str, key_id: str) -> dict[str, Any]:
    return {"principalId": key_id, "role": "admin", "community_id": community_id, "key_id": key_id}


def request(
    template: str,
    *,
    method: str | None = None,
    path: str | None = None,
    body: Any = ...,
    authorizer: dict[str, Any] | None = ...,  # type: ignore[assignment]
    headers: dict[str, str] | None = None,
    raw_body: str | None = None,
) -> dict[str, Any]:
    """The sample event `template` with the given changes (`...` keeps the file's value)."""
    event = copy.deepcopy(load(template))
    if method:
        event["httpMethod"] = method
        event["requestContext"]["httpMethod"] = method
    if path:
        parts = urlsplit(path)
        event["path"] = parts.path
        event["requestContext"]["path"] = "/dev" + parts.path
        query = dict(parse_qsl(parts.query))
        event["queryStringParameters"] = query or None
        event["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()} or None
        if event["resource"].endswith("{proxy+}"):
            prefix = event["resource"].split("{proxy+}")[0]
            event["pathParameters"] = {"proxy": parts.path[len(prefix) :]}
    if body is not ...:
        event["body"] = None if body is None else json.dumps(body)
    if raw_body is not None:
        event["body"] = raw_body
    if authorizer is not ...:
        event["requestContext"]["authorizer"] = authorizer
    if headers:
        event["headers"].update(headers)
        event["multiValueHeaders"].update({k: [v] for k, v in headers.items()})
    return event


def call_api(event: dict[str, Any], context: Any) -> tuple[int, Any]:
    """Invoke functions/api/app.py and return (status, decoded JSON body)."""
    response = load_handler("api")(event, context)
    body = response.get("body")
    return response["statusCode"], json.loads(body) if body else None
