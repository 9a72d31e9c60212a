"""The API's OpenAPI document, generated from the resolver in hookline.api.app.

    python -m hookline_dev.openapi --write docs/openapi.json   # regenerate the committed copy
    python -m hookline_dev.openapi --check                     # exit 1 when the copy is stale

Generating the document costs hundreds of milliseconds, so nothing imports this module at cold
start: the docs routes (hookline.api.routes.docs: /v1/openapi.json, /v1/docs) import it on their
first request, and docs/openapi.json is committed.

Powertools describes each route from its signature; this module then makes the document say
what the API really answers: the success status a route returns (201, 202), our error shape
for every error status (validation failures are 400 ``invalid_param``, never powertools' 422),
request body examples from the models' field examples, tags, security schemes, and the inbound
``POST /v1/hooks/{token}`` route, which InboundFunction serves outside the resolver.
"""

from __future__ import annotations

import argparse
import ast
import copy
import inspect
import json
import sys
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import hookline
from hookline.api.idempotency import HEADER as IDEMPOTENCY_HEADER

TITLE = "Hookline"
DEFAULT_PATH = Path(__file__).resolve().parents[1] / "docs" / "openapi.json"

DESCRIPTION = """\
Signed webhook delivery and incoming webhooks for community platforms.

Authenticate with an API key as `Authorization: Bearer <key>`, or as the password of HTTP Basic
(any user name). The operator key creates communities; a community's admin keys manage that
community only. Every error has one shape: `{"code", "message", "data": {"status", "field"?}}`.
Validation failures answer 400 `invalid_param` naming the field in `data.field`.
"""

#: Route module -> (tag, description), in the order the tags are listed.
TAGS: dict[str, tuple[str, str]] = {
    "communities": ("Communities", "Communities and their API keys (scoped)."),
    "event_types": (
        "Event types",
        "The built-in catalog with data schemas, and each community's custom event types.",
    ),
    "webhooks": ("Webhooks", "Webhook subscriptions: where events go, signed."),
    "events": ("Events", "Publishing events; the events table's stream delivers them."),
    "logs": ("Delivery log", "Every attempt of a webhook's deliveries, and the test endpoint."),
    "deliveries": ("Deliveries", "Inspect, resend and recover deliveries."),
    "directory": ("Directory", "Members, spaces and courses of a community."),
    "incoming": ("Incoming webhooks", "Secret URLs that create members and manage memberships."),
    "portal": ("Portal", "Links that open the browser portal (/portal/) for a community's admin."),
}
INBOUND_TAG = "Incoming webhooks"

#: Operations that may answer 409, and when (route function name -> description).
CONFLICTS: dict[str, str] = {
    "create_event_type": "The community already has an event type of this name, or 100 of them.",
    "rotate_secret": "The webhook changed meanwhile, or 10 secrets are already in overlap.",
    "resend_delivery": "A retry of this delivery is already scheduled, or the webhook is inactive.",
    "recover_deliveries": "The webhook is inactive.",
    "create_space": "The slug is already used by another space.",
    "patch_space": "The slug is already used by another space.",
    "create_course": "The slug is already used by another course.",
    "patch_course": "The slug is already used by another course.",
    "patch_incoming": "The incoming webhook changed meanwhile; try again.",
    "rotate_incoming": "The incoming webhook changed meanwhile; try again.",
}

_BODY_METHODS = {"post", "put", "patch"}
_SUCCESS = {200: "OK", 201: "Created", 202: "Accepted", 204: "No Content"}


def _error(code: str, message: str, status: int, **data: Any) -> dict[str, Any]:
    return {"code": code, "message": message, "data": {"status": status, **data}}


#: status -> (description, example body)
ERRORS: dict[int, tuple[str, dict[str, Any]]] = {
    400: (
        "A parameter or the body is invalid (`invalid_param` or `invalid_url`, naming the field "
        "in `data.field`; malformed JSON is `invalid_param` on `body`).",
        _error(
            "invalid_param",
            "Unknown event types: post.nope. See GET /v1/event-types.",
            400,
            field="events",
        ),
    ),
    401: (
        "No API key, an unknown key or a revoked key.",
        _error("unauthorized", "Invalid or revoked API key.", 401),
    ),
    403: (
        "The key belongs to another community, or an admin key called an operator route.",
        _error("rest_forbidden", "Sorry, this key does not belong to that community.", 403),
    ),
    404: (
        "No such resource, or no route for the URL.",
        _error("not_found", "Not found.", 404),
    ),
    405: (
        "The path exists, but not with this method.",
        _error("method_not_allowed", "PUT is not allowed on /v1/communities.", 405),
    ),
    409: (
        "The request conflicts with the resource's current state.",
        _error("conflict", "The resource changed meanwhile; try again.", 409),
    ),
    413: (
        "The request body is larger than 256 KB.",
        _error("payload_too_large", "Request body is larger than 256 KB.", 413),
    ),
    415: (
        "The body is not `application/json`.",
        _error(
            "unsupported_media_type",
            "Content-Type 'text/plain' is not supported; send application/json.",
            415,
        ),
    ),
    500: (
        "An unexpected error (logged with the request id; nothing secret is in the answer).",
        _error("internal_error", "Internal error.", 500),
    ),
}
ERROR_REF = "#/components/schemas/Error"

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Error",
    "description": "The one error shape of every error answer.",
    "required": ["code", "message", "data"],
    "properties": {
        "code": {"type": "string", "description": "Machine-readable error code."},
        "message": {"type": "string", "description": "What went wrong, for people."},
        "data": {
            "type": "object",
            "required": ["status"],
            "properties": {
                "status": {"type": "integer", "description": "The HTTP status."},
                "field": {"type": "string", "description": "The offending field, if any."},
            },
            "additionalProperties": True,
        },
    },
}


def _servers() -> list[Any]:
    from aws_lambda_powertools.event_handler.openapi.models import Server, ServerVariable

    return [
        Server(
            url="https://{api_id}.execute-api.{region}.amazonaws.com/{stage}",
            description="Deployed with AWS SAM (the stack's ApiUrl output, without /v1).",
            variables={
                "api_id": ServerVariable(default="abc123defg", description="REST API id."),
                "region": ServerVariable(default="us-east-1"),
                "stage": ServerVariable(default="dev", enum=["dev", "prod"]),
            },
        ),
        Server(url="http://127.0.0.1:3000", description="The local stack (`hookline local`)."),
    ]


def _security_schemes() -> dict[str, Any]:
    from aws_lambda_powertools.event_handler.openapi.models import HTTPBase, HTTPBearer

    return {
        "bearer": HTTPBearer(description="`Authorization: Bearer hk_...` (an API key)."),
        "basic": HTTPBase(
            scheme="basic",
            description="HTTP Basic with the API key as the password (any user name).",
        ),
    }


def _routes() -> dict[tuple[str, str], Any]:
    """(OpenAPI path, lower-case method) -> route, for every route of the resolver."""
    from hookline.api.app import app

    routes = [*app._dynamic_routes, *app._static_routes]
    return {(route.openapi_path, route.method.lower()): route for route in routes}


def success_statuses(function: Callable[..., Any]) -> list[int]:
    """The statuses a route function returns: the int of each ``return body, status`` and 200
    for any other return."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    except (OSError, TypeError, SyntaxError):
        return [200]
    found: set[int] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Return) or node.value is None:
            continue
        value = node.value
        if (
            isinstance(value, ast.Tuple)
            and len(value.elts) == 2
            and isinstance(value.elts[1], ast.Constant)
            and isinstance(value.elts[1].value, int)
        ):
            found.add(value.elts[1].value)
        else:
            found.add(200)
    return sorted(found) or [200]


def _tag(function: Callable[..., Any]) -> str:
    module = function.__module__.rsplit(".", 1)[-1]
    return TAGS.get(module, (module.replace("_", " ").capitalize(), ""))[0]


def _error_response(status: int, description: str | None = None) -> dict[str, Any]:
    text, example = ERRORS[status]
    return {
        "description": description or text,
        "content": {"application/json": {"schema": {"$ref": ERROR_REF}, "example": example}},
    }


def _schema_example(schema: dict[str, Any], components: dict[str, Any]) -> Any:
    """An example value built from a schema's own examples, its properties' examples or
    defaults; None when the schema offers none."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return _schema_example(components.get(name, {}), components)
    for key in ("anyOf", "oneOf"):
        for option in schema.get(key, []):
            found = _schema_example(option, components)
            if found is not None:
                return found
    if schema.get("examples"):
        return copy.deepcopy(schema["examples"][0])
    if "example" in schema:
        return copy.deepcopy(schema["example"])
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return None
    example: dict[str, Any] = {}
    for name, prop in properties.items():
        if prop.get("examples"):
            example[name] = copy.deepcopy(prop["examples"][0])
        elif prop.get("default") is not None:
            example[name] = copy.deepcopy(prop["default"])
    return example or None


def _fix_operation(
    path: str,
    method: str,
    operation: dict[str, Any],
    route: Any,
    components: dict[str, Any],
) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    responses.pop("422", None)
    function: Callable[..., Any] | None = route.func if route is not None else None
    declared = {str(s): r for s, r in (route.responses or {}).items()} if route else {}
    if function is not None:
        operation["tags"] = [_tag(function)]
    if function is not None and not declared:
        success = responses.pop("200", None) or {"description": "OK"}
        for status in success_statuses(function):
            answer = copy.deepcopy(success)
            answer["description"] = _SUCCESS.get(status, answer.get("description", "OK"))
            responses[str(status)] = answer
    for code, declared_answer in declared.items():
        # Error statuses a route declares get the error shape with the route's description.
        if int(code) in ERRORS:
            responses[code] = _error_response(int(code), declared_answer.get("description"))
    for status in (400, 401, 403, 404, 405, 500):
        responses[str(status)] = _error_response(status)
    for parameter in operation.get("parameters", []):
        # powertools lower-cases header names; show the header as clients write it.
        if parameter.get("in") == "header" and parameter.get("name") == IDEMPOTENCY_HEADER.lower():
            parameter["name"] = IDEMPOTENCY_HEADER
    if method in _BODY_METHODS:
        responses["413"] = _error_response(413)
        responses["415"] = _error_response(415)
    if function is not None and function.__name__ in CONFLICTS and "409" not in declared:
        responses["409"] = _error_response(409, CONFLICTS[function.__name__])
    body = operation.get("requestBody")
    if body:
        for media in body.get("content", {}).values():
            if "example" not in media:
                example = _schema_example(media.get("schema", {}), components)
                if example is not None:
                    media["example"] = example


def _inbound_operation() -> dict[str, Any]:
    """``POST /v1/hooks/{token}``, described by hand: InboundFunction serves it, not the
    resolver, and its answers are ``{"success", "message", "user_id"?}``."""
    form_schema = {"$ref": "#/components/schemas/InboundForm"}
    form_example = {
        "email": "priya@example.com",
        "first_name": "Priya",
        "last_name": "Sharma",
        "user_login": "priya",
    }

    def answer(description: str, success: bool, message: str, **extra: Any) -> dict[str, Any]:
        return {
            "description": description,
            "content": {
                "application/json": {
                    "schema": {"$ref": "#/components/schemas/InboundAnswer"},
                    "example": {"success": success, "message": message, **extra},
                }
            },
        }

    return {
        "tags": [INBOUND_TAG],
        "summary": "Call an incoming webhook: create or find a member and apply its memberships",
        "description": (
            "The public URL of an incoming webhook; the token in the path is the credential, so "
            "no API key is sent. The body is a form post (urlencoded or multipart) or JSON. "
            "`email` is required; the other fields are used only when a new member is created. "
            "When the webhook requires a signature, send the Standard Webhooks headers "
            "(`webhook-id`, `webhook-timestamp`, `webhook-signature`) or `X-Hookline-Signature: "
            "sha256=<hex HMAC-SHA256 of the raw body>`. Served by InboundFunction, throttled "
            "by API Gateway (InboundThrottleRate / InboundThrottleBurst)."
        ),
        "operationId": "call_incoming_webhook_v1_hooks__token__post",
        "security": [],
        "parameters": [
            {
                "name": "token",
                "in": "path",
                "required": True,
                "description": "The secret token of the incoming webhook's URL.",
                "schema": {"type": "string"},
            },
            {
                "name": "webhook-signature",
                "in": "header",
                "required": False,
                "description": "Standard Webhooks signature (with webhook-id, webhook-timestamp).",
                "schema": {"type": "string"},
            },
            {
                "name": "X-Hookline-Signature",
                "in": "header",
                "required": False,
                "description": "`sha256=<hex HMAC-SHA256 of the raw body>`.",
                "schema": {"type": "string"},
            },
        ],
        "requestBody": {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": form_schema,
                    "example": form_example,
                },
                "multipart/form-data": {"schema": form_schema, "example": form_example},
                "application/json": {"schema": form_schema, "example": form_example},
            },
        },
        "responses": {
            "200": answer(
                "Processed: the member exists now and the memberships were applied.",
                True,
                "User created; added to space Premium Members; enrolled in course Onboarding",
                user_id="usr_0192ab34cd56ef7890abcdef",
            ),
            "400": answer(
                "A field is missing or invalid (`email` is required).", False, "email is required."
            ),
            "401": answer(
                "A signature is required and did not verify.",
                False,
                "Signature verification failed: no matching signature.",
            ),
            "403": answer(
                "The source IP address is not in the webhook's allowed ranges.",
                False,
                "Forbidden: this source IP address is not allowed.",
            ),
            "404": answer("No active incoming webhook has this token.", False, "Not found."),
            "413": answer(
                "The body is larger than the webhook's limit.",
                False,
                "Request body is larger than 65536 bytes.",
            ),
            "415": answer(
                "The body is neither a form post nor JSON.",
                False,
                "Content-Type 'text/plain' is not supported.",
            ),
            "429": {
                "description": "Throttled by API Gateway (the error shape of the gateway).",
                "content": {
                    "application/json": {
                        "schema": {"$ref": ERROR_REF},
                        "example": _error("rate_limited", "Too Many Requests", 429),
                    }
                },
            },
            "500": answer("An unexpected error.", False, "Internal error."),
        },
    }


INBOUND_SCHEMAS: dict[str, Any] = {
    "InboundForm": {
        "type": "object",
        "title": "InboundForm",
        "required": ["email"],
        "properties": {
            "email": {"type": "string", "format": "email", "examples": ["priya@example.com"]},
            "first_name": {"type": "string", "examples": ["Priya"]},
            "last_name": {"type": "string", "examples": ["Sharma"]},
            "user_login": {"type": "string", "examples": ["priya"]},
            "user_pass": {
                "type": "string",
                "format": "password",
                "writeOnly": True,
                "description": "Password of a new member (never stored in clear, never logged).",
            },
        },
    },
    "InboundAnswer": {
        "type": "object",
        "title": "InboundAnswer",
        "required": ["success", "message"],
        "properties": {
            "success": {"type": "boolean"},
            "message": {"type": "string"},
            "user_id": {"type": "string", "description": "The member's id (on success)."},
        },
    },
}


def _refs(node: Any) -> set[str]:
    """Names of the component schemas ``node`` refers to directly."""
    found: set[str] = set()
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            found.add(ref.rsplit("/", 1)[-1])
        for value in node.values():
            found |= _refs(value)
    elif isinstance(node, list):
        for value in node:
            found |= _refs(value)
    return found


def _drop_unused_schemas(document: dict[str, Any]) -> None:
    """Remove the component schemas no operation reaches (powertools' 422 models)."""
    schemas: dict[str, Any] = document.get("components", {}).get("schemas", {})
    queue = list(_refs({k: v for k, v in document.items() if k != "components"}))
    reached: set[str] = set()
    while queue:
        name = queue.pop()
        if name in reached or name not in schemas:
            continue
        reached.add(name)
        queue.extend(_refs(schemas[name]))
    for name in [n for n in schemas if n not in reached]:
        schemas.pop(name)


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the whole HTTP API (resolver routes and the inbound route)."""
    from aws_lambda_powertools.event_handler.openapi.models import Tag

    from hookline.api.app import app

    tags = [Tag(name=name, description=text) for name, text in TAGS.values()]
    document: dict[str, Any] = json.loads(
        app.get_openapi_json_schema(
            title=TITLE,
            version=hookline.__version__,
            description=DESCRIPTION,
            servers=_servers(),
            security_schemes=_security_schemes(),
            security=[{"bearer": []}, {"basic": []}],
            tags=[*tags],
        )
    )
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas["Error"] = ERROR_SCHEMA
    schemas.update(INBOUND_SCHEMAS)
    routes = _routes()
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            _fix_operation(path, method, operation, routes.get((path, method)), schemas)
    document["paths"]["/v1/hooks/{token}"] = {"post": _inbound_operation()}
    _drop_unused_schemas(document)
    return document


def render(document: dict[str, Any]) -> str:
    """The document as committed: sorted keys, indent 2, a final newline."""
    return json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hookline_dev.openapi", description="Write or check docs/openapi.json."
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", metavar="PATH", type=Path, help="write the document to PATH")
    group.add_argument(
        "--check",
        metavar="PATH",
        type=Path,
        nargs="?",
        const=DEFAULT_PATH,
        help=f"exit 1 if PATH (default {DEFAULT_PATH.name}) differs from the generated document",
    )
    args = parser.parse_args(argv)
    text = render(openapi_document())
    if args.write:
        args.write.parent.mkdir(parents=True, exist_ok=True)
        args.write.write_text(text, encoding="utf-8")
        print(f"wrote {args.write}")
        return 0
    if args.check:
        try:
            committed = args.check.read_text(encoding="utf-8")
        except FileNotFoundError:
            print(f"{args.check} is missing; run: make openapi", file=sys.stderr)
            return 1
        if committed != text:
            print(f"{args.check} is stale; run: make openapi", file=sys.stderr)
            return 1
        print(f"{args.check} is up to date")
        return 0
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
