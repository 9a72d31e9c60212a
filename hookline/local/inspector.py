"""The request inspector: a local webhook.site. POST/PUT/PATCH/DELETE to /_inspect/<name> records
the request; GET shows them (JSON, or HTML for browsers), newest first, with the signature checked
against the secret of the webhook(s) that target that URL.
"""

from __future__ import annotations

import contextlib
import html
import itertools
import json
import re
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from hookline import clock
from hookline.local.apigw import HttpRequest, HttpResponse, error_response
from hookline.receiver import VerificationError, verify

PREFIX = "/_inspect"
KEEP_PER_NAME = 100
MAX_NAMES = 1000
#: Bytes of each body kept for display (verification always sees the whole body).
BODY_KEEP = 256 * 1024
MAX_DELAY_SECONDS = 30.0
_NAME = re.compile(r"^[A-Za-z0-9._~-]{1,100}$")
_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "0.0.0.0"}  # noqa: S104 (a URL host, not a bind)

#: The secrets of the webhooks whose URL is inspector bin `name`; None when no webhook targets it.
SecretLookup = Callable[[str], list[str] | None]


@dataclass
class Captured:
    id: int
    method: str
    path: str
    query: str
    headers: list[tuple[str, str]]
    body: bytes
    size: int
    received_at: str
    client: str
    signature: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": {name: value for name, value in self.headers},
            "body": self.body.decode("utf-8", errors="replace"),
            "size": self.size,
            "truncated": self.size > len(self.body),
            "received_at": self.received_at,
            "client": self.client,
            "signature": self.signature,
        }


def signature_scheme(headers: dict[str, str]) -> str | None:
    lowered = {k.lower() for k in headers}
    if "webhook-signature" in lowered:
        return "standard-webhooks"
    if "x-hookline-signature" in lowered:
        return "x-hookline-signature"
    return None


def check_signature(
    headers: dict[str, str], body: bytes, secrets: list[str], *, has_webhook: bool
) -> dict[str, Any]:
    """{"verified": True|False|None, "scheme", "reason"}: None when there is nothing to check
    against (no webhook targets the URL, or it has no secret)."""
    scheme = signature_scheme(headers)
    if not has_webhook:
        return {"verified": None, "scheme": scheme, "reason": "no webhook targets this URL"}
    usable = [s for s in secrets if s]
    if not usable:
        return {"verified": None, "scheme": scheme, "reason": "the webhook has no secret"}
    reason = "signature did not verify"
    for secret in usable:
        try:
            verify(headers, body, secret)
        except VerificationError as exc:
            reason = str(exc) or reason
            continue
        return {"verified": True, "scheme": scheme, "reason": None}
    return {"verified": False, "scheme": scheme, "reason": reason}


class Inspector:
    def __init__(self, secrets_for: SecretLookup | None = None) -> None:
        self.secrets_for = secrets_for
        self._bins: OrderedDict[str, deque[Captured]] = OrderedDict()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

    @staticmethod
    def owns(path: str) -> bool:
        return path == PREFIX or path.startswith(PREFIX + "/")

    def requests(self, name: str) -> list[Captured]:
        """The recorded requests of one bin, newest first."""
        with self._lock:
            return list(reversed(self._bins.get(name, ())))

    def clear(self, name: str | None = None) -> None:
        with self._lock:
            if name is None:
                self._bins.clear()
            else:
                self._bins.pop(name, None)

    def handle(self, request: HttpRequest) -> HttpResponse:
        name = request.path[len(PREFIX) :].strip("/")
        params = parse_qs(request.query)
        if not name:
            if request.method in ("GET", "HEAD"):
                with self._lock:
                    names = list(self._bins)
                return _json(200, {"names": names})
            return error_response(404, "not_found", "POST to /_inspect/<name>")
        if not _NAME.match(name):
            return error_response(
                400, "invalid_param", "inspector names use letters, digits, . _ ~ -"
            )
        if request.method in ("GET", "HEAD"):
            wants_html = params.get("format", [""])[-1] == "html" or (
                "text/html" in (request.header("Accept") or "")
                and params.get("format", [""])[-1] != "json"
            )
            captured = self.requests(name)
            if wants_html:
                return HttpResponse(
                    200,
                    [("Content-Type", "text/html; charset=utf-8")],
                    render_html(name, captured).encode(),
                )
            return _json(200, {"name": name, "requests": [c.to_json() for c in captured]})
        return self._record(name, request, params)

    def _record(
        self, name: str, request: HttpRequest, params: dict[str, list[str]]
    ) -> HttpResponse:
        status = 200
        delay = 0.0
        fail_first = 0
        try:
            if "fail_first" in params:
                # Demo of retries: answer 500 (or ?status=) to the first N requests, then 200.
                fail_first = int(params["fail_first"][-1])
                if not 0 <= fail_first <= 100:
                    raise ValueError
            if "status" in params:
                status = int(params["status"][-1])
                if not 200 <= status <= 599:
                    raise ValueError
            if "delay" in params:
                delay = float(params["delay"][-1])
                if not 0 <= delay <= MAX_DELAY_SECONDS:
                    raise ValueError
        except ValueError:
            return error_response(
                400,
                "invalid_param",
                f"status must be 200-599, delay 0-{MAX_DELAY_SECONDS:g} seconds "
                "and fail_first 0-100",
            )
        headers = dict(request.headers)
        secrets = self._secrets(name)
        captured = Captured(
            id=next(self._ids),
            method=request.method,
            path=request.path,
            query=request.query,
            headers=list(request.headers),
            body=request.body[:BODY_KEEP],
            size=len(request.body),
            received_at=clock.now_iso(),
            client=request.client_ip,
            signature=check_signature(
                headers, request.body, secrets or [], has_webhook=secrets is not None
            ),
        )
        with self._lock:
            bin_ = self._bins.pop(name, None) or deque(maxlen=KEEP_PER_NAME)
            if fail_first:
                failing = status if not 200 <= status < 300 else 500
                status = failing if len(bin_) < fail_first else 200
            bin_.append(captured)
            self._bins[name] = bin_
            while len(self._bins) > MAX_NAMES:
                self._bins.popitem(last=False)
        if delay:
            time.sleep(delay)
        return _json(status, {"ok": 200 <= status < 300})

    def _secrets(self, name: str) -> list[str] | None:
        """The secrets of webhooks targeting this bin; None when no webhook does."""
        if self.secrets_for is None:
            return None
        try:
            secrets = self.secrets_for(name)
        except Exception as exc:  # the lookup is a convenience: never fail the receipt
            print(f"[inspect] webhook lookup failed: {exc!r}", flush=True)
            return None
        return secrets


def targets_bin(url: str, name: str, port: int) -> bool:
    """Whether a webhook URL points at inspector bin `name` of this server."""
    try:
        parts = urlsplit(url)
        url_port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return False
    host = (parts.hostname or "").lower()
    return (
        host in _LOOPBACK_HOSTS
        and url_port == port
        and parts.path.rstrip("/") == f"{PREFIX}/{name}"
    )


def _json(status: int, body: dict[str, Any]) -> HttpResponse:
    return HttpResponse(status, [("Content-Type", "application/json")], json.dumps(body).encode())


def render_html(name: str, captured: list[Captured]) -> str:
    """A plain page; every value from a request is escaped."""
    esc = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>Inspector: {esc(name)}</title>",
        "<style>body{font-family:system-ui,sans-serif;margin:2rem;max-width:70rem}"
        "pre{background:#f4f4f4;padding:.75rem;overflow:auto;white-space:pre-wrap}"
        "table{border-collapse:collapse}td{padding:.1rem .6rem;vertical-align:top;"
        "font-family:monospace}.ok{color:#080}.bad{color:#b00}.na{color:#777}</style>",
        "</head><body>",
        f"<h1>/_inspect/{esc(name)}</h1>",
        f"<p>{len(captured)} request(s), newest first. Reload to refresh.</p>",
    ]
    for item in captured:
        data = item.to_json()
        sig = data["signature"]
        verified = sig.get("verified")
        css, label = {True: ("ok", "verified"), False: ("bad", "NOT verified")}.get(
            verified, ("na", "not checked")
        )
        detail = " - ".join(str(x) for x in (sig.get("scheme"), sig.get("reason")) if x)
        parts.append("<hr>")
        parts.append(
            f"<h2>#{data['id']} {esc(data['method'])} at {esc(data['received_at'])} "
            f"from {esc(data['client'])}</h2>"
        )
        parts.append(f"<p class='{css}'>Signature: {esc(label)} {esc(detail)}</p>")
        rows = "".join(
            f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in data["headers"].items()
        )
        parts.append(f"<table>{rows}</table>")
        body = data["body"]
        with contextlib.suppress(ValueError):
            body = json.dumps(json.loads(body), indent=2, ensure_ascii=False)
        suffix = " (truncated)" if data["truncated"] else ""
        parts.append(f"<p>Body, {data['size']} bytes{suffix}:</p><pre>{esc(body)}</pre>")
    parts.append("</body></html>")
    return "".join(parts)
