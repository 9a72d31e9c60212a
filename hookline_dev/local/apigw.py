"""API Gateway (REST API, Lambda proxy integration, payload format 1.0) in front of the handlers.

Turns an HTTP request into the event API Gateway would send, runs the REQUEST authorizer with its
result cache, invokes the function and turns the proxy response back into HTTP.
"""

from __future__ import annotations

import base64
import collections
import fnmatch
import hashlib
import json
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from hookline_dev.local.blueprint import Blueprint, GatewayResponse, Route
from hookline_dev.local.lambdas import ACCOUNT_ID, REGION, FunctionError, Functions

#: API Gateway's request payload quota.
MAX_PAYLOAD_BYTES = 10 * 1024 * 1024
API_ID = "local"


@dataclass(frozen=True)
class HttpRequest:
    method: str
    path: str
    query: str
    headers: list[tuple[str, str]]
    body: bytes
    client_ip: str
    host: str
    protocol: str = "HTTP/1.1"

    def header(self, name: str) -> str | None:
        """The last value of a header (case-insensitive), as API Gateway's `headers` map holds."""
        lowered = name.lower()
        found = None
        for key, value in self.headers:
            if key.lower() == lowered:
                found = value
        return found


@dataclass
class HttpResponse:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


def error_response(
    status: int, code: str, message: str, *, error_type: str | None = None
) -> HttpResponse:
    """A response in the one error shape {"code", "message", "data": {"status"}}."""
    body = json.dumps({"code": code, "message": message, "data": {"status": status}}).encode()
    headers = [("Content-Type", "application/json")]
    if error_type:
        headers.append(("x-amzn-ErrorType", error_type))
    return HttpResponse(status, headers, body)


#: API Gateway's own errors: response type -> (status, fallback code, message, x-amzn-ErrorType).
GATEWAY_ERRORS: dict[str, tuple[int, str, str, str]] = {
    "MISSING_AUTHENTICATION_TOKEN": (
        403,
        "not_found",
        "Missing Authentication Token",
        "MissingAuthenticationTokenException",
    ),
    "UNAUTHORIZED": (401, "unauthorized", "Unauthorized", "UnauthorizedException"),
    "ACCESS_DENIED": (
        403,
        "rest_forbidden",
        "User is not authorized to access this resource with an explicit deny",
        "AccessDeniedException",
    ),
    "AUTHORIZER_FAILURE": (
        500,
        "internal_error",
        "Internal server error",
        "AuthorizerConfigurationException",
    ),
    "AUTHORIZER_CONFIGURATION_ERROR": (
        500,
        "internal_error",
        "Internal server error",
        "AuthorizerConfigurationException",
    ),
    "REQUEST_TOO_LARGE": (413, "payload_too_large", "Request Too Long", "RequestTooLargeException"),
    # A Lambda proxy function error or malformed answer: API Gateway's 502.
    "INTEGRATION_FAILURE": (
        502,
        "internal_error",
        "Internal server error",
        "InternalServerErrorException",
    ),
}


def gateway_error(
    kind: str, responses: Mapping[str, GatewayResponse] | None = None, message: str | None = None
) -> HttpResponse:
    """API Gateway's error response of a type, rendered from the template's GatewayResponses
    (falling back to DEFAULT_4XX/DEFAULT_5XX, then to the one error shape)."""
    status, code, default_message, error_type = GATEWAY_ERRORS[kind]
    message = message or default_message
    responses = responses or {}
    custom = responses.get(kind) or responses.get("DEFAULT_4XX" if status < 500 else "DEFAULT_5XX")
    if custom is not None and custom.template:
        body = (
            custom.template.replace("$context.error.messageString", json.dumps(message))
            .replace("$context.error.message", message)
            .replace("$context.error.responseType", kind)
        )
        return HttpResponse(
            custom.status or status,
            [("Content-Type", "application/json"), ("x-amzn-ErrorType", error_type)],
            body.encode(),
        )
    if custom is not None and custom.status:
        status = custom.status
    return error_response(status, code, message, error_type=error_type)


# --------------------------------------------------------------------------------------------
# Routing


def _split(path: str) -> list[str]:
    parts = path.split("/")[1:]
    if parts and parts[-1] == "":
        parts.pop()  # API Gateway ignores one trailing slash
    return parts


def _match_resource(resource: str, segments: list[str]) -> tuple[tuple[int, ...], dict] | None:
    """(specificity, path parameters) when the resource template matches the path segments."""
    pattern = _split(resource)
    params: dict[str, str] = {}
    score: list[int] = []
    for i, part in enumerate(pattern):
        if part.startswith("{") and part.endswith("+}"):
            rest = segments[i:]
            if i != len(pattern) - 1 or not rest or any(s == "" for s in rest):
                return None
            params[part[1:-2]] = "/".join(rest)
            score.append(0)
            return tuple(score), params
        if i >= len(segments):
            return None
        if part.startswith("{") and part.endswith("}"):
            if segments[i] == "":
                return None
            params[part[1:-1]] = segments[i]
            score.append(1)
        elif part == segments[i]:
            score.append(2)
        else:
            return None
    if len(pattern) != len(segments):
        return None
    return tuple(score), params


def match_route(
    routes: tuple[Route, ...], method: str, path: str
) -> tuple[Route, dict[str, str]] | None:
    """The most specific route for the request, as API Gateway chooses: literal segments beat
    {param}, which beats {proxy+}; an explicit method beats ANY."""
    segments = _split(path)
    best: tuple[tuple[Any, ...], Route, dict[str, str]] | None = None
    for route in routes:
        if route.method not in (method, "ANY"):
            continue
        matched = _match_resource(route.resource, segments)
        if matched is None:
            continue
        score, params = matched
        rank = (score, route.method != "ANY")
        if best is None or rank > best[0]:
            best = (rank, route, params)
    return (best[1], best[2]) if best else None


# --------------------------------------------------------------------------------------------
# Authorizer policy evaluation


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def policy_allows(policy: Mapping[str, Any], method_arn: str) -> bool:
    """IAM evaluation of an authorizer policy for one method ARN: an explicit Deny wins, then
    an Allow is needed. Resource patterns use IAM wildcards (* and ?)."""
    allowed = False
    for statement in _as_list(policy.get("Statement")):
        if not isinstance(statement, dict):
            continue
        actions = [str(a).lower() for a in _as_list(statement.get("Action"))]
        if not any(a in ("*", "execute-api:*", "execute-api:invoke") for a in actions):
            continue
        resources = [str(r) for r in _as_list(statement.get("Resource"))]
        if not any(fnmatch.fnmatchcase(method_arn, r) for r in resources):
            continue
        effect = str(statement.get("Effect", "")).lower()
        if effect == "deny":
            return False
        if effect == "allow":
            allowed = True
    return allowed


def _context_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    raise ValueError("authorizer context values must be strings, numbers or booleans")


class AuthorizerFailure(Exception):
    """The authorizer answered something API Gateway cannot use (500 in AWS)."""


@dataclass
class _CachedPolicy:
    expires_at: float
    principal_id: str
    policy: dict[str, Any]
    context: dict[str, str]


# --------------------------------------------------------------------------------------------
# The gateway


class ApiGateway:
    """One REST API stage. Thread-safe; one instance serves every request of the local server."""

    def __init__(self, blueprint: Blueprint, functions: Functions, *, api_id: str = API_ID) -> None:
        self.blueprint = blueprint
        self.functions = functions
        self.api_id = api_id
        self._cache: dict[tuple[str, ...], _CachedPolicy] = {}
        #: How many times the authorizer function ran (cache hits do not count).
        self.authorizer_invocations = 0
        self._cache_lock = threading.Lock()
        #: The last events sent to functions (function name, event), newest last: for debugging.
        self.recent_events: collections.deque[tuple[str, dict[str, Any]]] = collections.deque(
            maxlen=50
        )

    def error(self, kind: str) -> HttpResponse:
        """API Gateway's own error response of a type (e.g. "UNAUTHORIZED")."""
        return gateway_error(kind, self.blueprint.gateway_responses)

    @property
    def stage(self) -> str:
        return self.blueprint.stage

    def strip_stage(self, path: str) -> str:
        """Accept the deployed URL form /<stage>/v1/... as well as /v1/..."""
        prefix = f"/{self.stage}/"
        return path[len(prefix) - 1 :] if path.startswith(prefix) else path

    def route(self, request: HttpRequest) -> tuple[Route, dict[str, str]] | None:
        return match_route(self.blueprint.routes, request.method, self.strip_stage(request.path))

    def handle(self, request: HttpRequest) -> HttpResponse:
        """Answer one request as the API stage would; the response carries x-amzn-RequestId,
        the event's requestContext.requestId."""
        request_id = str(uuid.uuid4())
        response = self._handle(request, request_id)
        response.headers.append(("x-amzn-RequestId", request_id))
        return response

    def _handle(self, request: HttpRequest, request_id: str) -> HttpResponse:
        if len(request.body) > MAX_PAYLOAD_BYTES:
            return self.error("REQUEST_TOO_LARGE")
        path = self.strip_stage(request.path)
        matched = match_route(self.blueprint.routes, request.method, path)
        if matched is None:
            return self.error("MISSING_AUTHENTICATION_TOKEN")
        route, params = matched
        authorizer: dict[str, Any] | None = None
        if route.authorized:
            outcome = self._authorize(request, route, params, path)
            if isinstance(outcome, HttpResponse):
                return outcome
            authorizer = outcome
        event = self.build_event(
            request, route, params, path=path, authorizer=authorizer, request_id=request_id
        )
        self.recent_events.append((route.function, event))
        try:
            result = self.functions.invoke(route.function, event)
        except FunctionError as exc:
            print(f"[{route.function}] {exc.error_type}: {exc.message}", flush=True)
            print("".join(exc.trace), end="", flush=True)
            return self.error("INTEGRATION_FAILURE")
        return self.to_http(result, request)

    # -- events ---------------------------------------------------------------------------

    def _headers(self, request: HttpRequest) -> tuple[dict[str, str], dict[str, list[str]]]:
        single: dict[str, str] = {}
        multi: dict[str, list[str]] = {}
        for name, value in request.headers:
            single[name] = value
            multi.setdefault(name, []).append(value)
        present = {name.lower() for name in single}
        port = request.host.rsplit(":", 1)[1] if ":" in request.host else "80"
        added = {
            "X-Forwarded-For": request.client_ip,
            "X-Forwarded-Port": port,
            "X-Forwarded-Proto": "http",
            "X-Amzn-Trace-Id": f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]}",
        }
        for name, value in added.items():
            if name.lower() not in present:
                single[name] = value
                multi[name] = [value]
        return single, multi

    def _query(self, request: HttpRequest) -> tuple[dict | None, dict | None]:
        pairs = parse_qsl(request.query, keep_blank_values=True)
        if not pairs:
            return None, None
        single: dict[str, str] = {}
        multi: dict[str, list[str]] = {}
        for name, value in pairs:
            single[name] = value
            multi.setdefault(name, []).append(value)
        return single, multi

    def is_binary(self, content_type: str | None) -> bool:
        if not content_type:
            return False
        media = content_type.split(";", 1)[0].strip().lower()
        return any(fnmatch.fnmatchcase(media, t.lower()) for t in self.blueprint.binary_media_types)

    def _request_context(
        self, request: HttpRequest, route: Route, path: str, request_id: str
    ) -> dict[str, Any]:
        now = time.time()
        domain = request.host or "127.0.0.1"
        return {
            "resourceId": hashlib.sha1(route.resource.encode(), usedforsecurity=False).hexdigest()[
                :6
            ],
            "resourcePath": route.resource,
            "httpMethod": request.method,
            "extendedRequestId": base64.b64encode(uuid.uuid4().bytes[:12]).decode().rstrip("="),
            "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            # The path as requested: /<stage>/v1/... on the stage URL, /v1/... otherwise (as
            # through a custom domain), so URLs built from it work as printed.
            "path": request.path,
            "accountId": ACCOUNT_ID,
            "protocol": request.protocol,
            "stage": self.stage,
            "domainPrefix": domain.split(".", 1)[0].split(":", 1)[0],
            "requestTimeEpoch": int(now * 1000),
            "requestId": request_id,
            "identity": {
                "cognitoIdentityPoolId": None,
                "accountId": None,
                "cognitoIdentityId": None,
                "caller": None,
                "sourceIp": request.client_ip,
                "principalOrgId": None,
                "accessKey": None,
                "cognitoAuthenticationType": None,
                "cognitoAuthenticationProvider": None,
                "userArn": None,
                "userAgent": request.header("User-Agent"),
                "user": None,
            },
            "domainName": domain,
            "apiId": self.api_id,
        }

    def method_arn(self, method: str, path: str) -> str:
        return (
            f"arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{self.api_id}/{self.stage}/{method}{path}"
        )

    def build_event(
        self,
        request: HttpRequest,
        route: Route,
        params: dict[str, str],
        *,
        path: str | None = None,
        authorizer: dict[str, Any] | None = None,
        request_id: str | None = None,
    ) -> dict[str, Any]:
        """The Lambda proxy event (REST API, payload format 1.0) for this request."""
        path = path if path is not None else self.strip_stage(request.path)
        headers, multi_headers = self._headers(request)
        query, multi_query = self._query(request)
        context = self._request_context(request, route, path, request_id or str(uuid.uuid4()))
        if authorizer is not None:
            context["authorizer"] = authorizer
        body: str | None
        if not request.body:
            body, encoded = None, False
        elif self.is_binary(request.header("Content-Type")):
            body, encoded = base64.b64encode(request.body).decode("ascii"), True
        else:
            body, encoded = request.body.decode("utf-8", errors="replace"), False
        return {
            "resource": route.resource,
            "path": path,
            "httpMethod": request.method,
            "headers": headers or None,
            "multiValueHeaders": multi_headers or None,
            "queryStringParameters": query,
            "multiValueQueryStringParameters": multi_query,
            "pathParameters": params or None,
            "stageVariables": None,
            "requestContext": context,
            "body": body,
            "isBase64Encoded": encoded,
        }

    def authorizer_event(
        self, request: HttpRequest, route: Route, params: dict[str, str], path: str
    ) -> dict[str, Any]:
        """The REQUEST authorizer event (empty maps are {} here, not null as in proxy events)."""
        headers, multi_headers = self._headers(request)
        query, multi_query = self._query(request)
        return {
            "type": "REQUEST",
            "methodArn": self.method_arn(request.method, path),
            "resource": route.resource,
            "path": path,
            "httpMethod": request.method,
            "headers": headers,
            "multiValueHeaders": multi_headers,
            "queryStringParameters": query or {},
            "multiValueQueryStringParameters": multi_query or {},
            "pathParameters": params or {},
            "stageVariables": {},
            "requestContext": self._request_context(request, route, path, str(uuid.uuid4())),
        }

    # -- responses ------------------------------------------------------------------------

    def to_http(self, result: Any, request: HttpRequest) -> HttpResponse:
        """API Gateway's reading of a Lambda proxy response; a malformed one is a 502."""
        if not isinstance(result, dict) or "statusCode" not in result:
            return self.error("INTEGRATION_FAILURE")
        try:
            status = int(result["statusCode"])
        except (TypeError, ValueError):
            return self.error("INTEGRATION_FAILURE")
        merged: dict[str, list[str]] = {}
        for name, value in (result.get("headers") or {}).items():
            merged[str(name)] = [str(value)]
        # A header in both maps takes the multiValueHeaders values only.
        for name, values in (result.get("multiValueHeaders") or {}).items():
            merged[str(name)] = [str(v) for v in _as_list(values)]
        body = result.get("body")
        raw = b"" if body is None else str(body).encode("utf-8")
        if result.get("isBase64Encoded") and body:
            accept = (request.header("Accept") or "").split(",", 1)[0]
            # API Gateway returns binary only when the first Accept type is a binary media type.
            if self.is_binary(accept):
                try:
                    raw = base64.b64decode(str(body))
                except ValueError:
                    return self.error("INTEGRATION_FAILURE")
        headers = [(name, value) for name, values in merged.items() for value in values]
        return HttpResponse(status, headers, raw)

    # -- authorizer -----------------------------------------------------------------------

    def clear_authorizer_cache(self) -> None:
        with self._cache_lock:
            self._cache.clear()

    def _authorize(
        self, request: HttpRequest, route: Route, params: dict[str, str], path: str
    ) -> dict[str, Any] | HttpResponse:
        """requestContext.authorizer for an allowed request, or the gateway's error response."""
        identity = tuple(request.header(h) or "" for h in self.blueprint.identity_headers)
        if not all(identity):
            # A missing identity source is refused without calling the authorizer.
            return self.error("UNAUTHORIZED")
        ttl = self.blueprint.authorizer_cache_ttl
        now = time.monotonic()
        with self._cache_lock:
            cached = self._cache.get(identity)
            if cached is not None and cached.expires_at <= now:
                del self._cache[identity]
                cached = None
        started = time.perf_counter()
        if cached is None:
            event = self.authorizer_event(request, route, params, path)
            self.authorizer_invocations += 1
            try:
                answer = self.functions.invoke("authorizer", event)
            except FunctionError as exc:
                if exc.message == "Unauthorized":
                    return self.error("UNAUTHORIZED")
                print(f"[authorizer] {exc.error_type}: {exc.message}", flush=True)
                return self.error("AUTHORIZER_FAILURE")
            try:
                cached = _parse_authorizer_answer(answer, now + ttl)
            except AuthorizerFailure as exc:
                print(f"[authorizer] unusable answer: {exc}", flush=True)
                return self.error("AUTHORIZER_CONFIGURATION_ERROR")
            if ttl > 0:
                with self._cache_lock:
                    self._cache[identity] = cached
        if not policy_allows(cached.policy, self.method_arn(request.method, path)):
            return self.error("ACCESS_DENIED")
        latency = int((time.perf_counter() - started) * 1000)
        return {"principalId": cached.principal_id, "integrationLatency": latency, **cached.context}


def _parse_authorizer_answer(answer: Any, expires_at: float) -> _CachedPolicy:
    if not isinstance(answer, dict):
        raise AuthorizerFailure("not an object")
    principal = answer.get("principalId")
    policy = answer.get("policyDocument")
    if not isinstance(principal, str | int) or not isinstance(policy, dict):
        raise AuthorizerFailure("principalId and policyDocument are required")
    raw_context = answer.get("context") or {}
    if not isinstance(raw_context, dict):
        raise AuthorizerFailure("context must be an object")
    try:
        context = {str(k): _context_value(v) for k, v in raw_context.items()}
    except ValueError as exc:
        raise AuthorizerFailure(str(exc)) from exc
    return _CachedPolicy(expires_at, str(principal), policy, context)
