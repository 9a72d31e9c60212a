"""API Gateway proxy events for tests, built from the sample events in events/ (the files
`sam local invoke -e` takes).

    event = api_event("api-publish-event", community_id=cid, key_id=kid, body={...})
    response = call(event)                      # hookline.api.app.handle; body parsed as JSON

Placeholders in the samples: ``com_REPLACE`` (community), ``wh_REPLACE`` (webhook),
``key_REPLACE`` (API key id). ``method``/``path``/``query``/``body`` override the sample's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EVENTS_DIR = Path(__file__).resolve().parent.parent / "events"


def sample(name: str) -> dict[str, Any]:
    """The sample event events/<name>.json, as loaded by `sam local invoke -e`."""
    path = EVENTS_DIR / (name if name.endswith(".json") else f"{name}.json")
    return json.loads(path.read_text())


def api_event(
    name: str,
    *,
    community_id: str = "com_REPLACE",
    webhook_id: str = "wh_REPLACE",
    key_id: str = "key_REPLACE",
    role: str = "admin",
    method: str | None = None,
    path: str | None = None,
    query: dict[str, str] | None = None,
    body: Any = ...,
    raw_body: str | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A sample with its placeholders filled in and the given parts replaced.

    ``body`` is JSON-encoded (``None`` sends no body; leave it out to keep the sample's).
    ``raw_body`` is sent as is. ``headers`` are added. ``role="operator"`` makes the operator
    the caller.
    """
    text = json.dumps(sample(name))
    for placeholder, value in (
        ("com_REPLACE", community_id),
        ("wh_REPLACE", webhook_id),
        ("key_REPLACE", key_id),
    ):
        text = text.replace(placeholder, value)
    event: dict[str, Any] = json.loads(text)
    if method is not None:
        event["httpMethod"] = method
        event["requestContext"]["httpMethod"] = method
    if path is not None:
        event["path"] = path
        event["requestContext"]["path"] = f"/{event['requestContext']['stage']}{path}"
        event["pathParameters"] = {"proxy": path.removeprefix("/v1/communities/")}
    if query is None and (path is not None or method is not None):
        # The sample's query string belongs to the sample's route; the API refuses parameters
        # a route does not take.
        query = {}
    if query is not None:
        event["queryStringParameters"] = dict(query) or None
        event["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()} or None
    if raw_body is not None:
        event["body"] = raw_body
    elif body is not ...:
        event["body"] = None if body is None else json.dumps(body)
    for name, value in (headers or {}).items():
        event.setdefault("headers", {})[name] = value
        event.setdefault("multiValueHeaders", {})[name] = [value]
    authorizer = event["requestContext"]["authorizer"]
    authorizer["role"] = role
    if role == "operator":
        authorizer.update(principalId="operator", key_id="operator", community_id="")
    return event


@dataclass
class ApiResponse:
    status: int
    body: Any
    headers: dict[str, str]


class _Context:
    function_name = "ApiFunction"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:ApiFunction"
    aws_request_id = "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"

    def get_remaining_time_in_millis(self) -> int:
        return 29_000


def call(event: dict[str, Any]) -> ApiResponse:
    """Run an API Gateway event through the API (hookline.api.app.handle)."""
    from hookline.api.app import handle

    raw = handle(event, _Context())  # type: ignore[arg-type]
    text = raw.get("body") or ""
    return ApiResponse(
        status=raw["statusCode"],
        body=json.loads(text) if text else None,
        headers={
            **dict(raw.get("headers") or {}),
            **{k: v[-1] for k, v in (raw.get("multiValueHeaders") or {}).items() if v},
        },
    )
