"""The request inspector: a local webhook.site. POST/PUT/PATCH to /_inspect/<name> records the
request; GET shows them (JSON, or a self-refreshing HTML page for browsers), newest first and
numbered per bin, with both signature schemes checked against the secret of the webhook(s) that
target that URL; DELETE clears the bin.

Pages never show credentials: the values of signature, authorization and secret-named headers,
and of every custom header a targeting webhook sends, are masked.
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
from hookline.observability import REDACTED, is_secret_name
from hookline.receiver import SCHEME_BODY, SCHEME_STANDARD, VerificationError, verify
from hookline_dev.local.apigw import HttpRequest, HttpResponse, error_response

PREFIX = "/_inspect"
KEEP_PER_NAME = 100
MAX_NAMES = 1000
#: Bytes of each body kept for display (verification always sees the whole body).
BODY_KEEP = 256 * 1024
MAX_DELAY_SECONDS = 30.0
_NAME = re.compile(r"^[A-Za-z0-9._~-]{1,100}$")
_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "0.0.0.0"}  # noqa: S104 (a URL host, not a bind)

#: Seconds between refreshes of the HTML page.
REFRESH_SECONDS = 2
#: Headers whose values are credentials whatever the webhook (is_secret_name covers the rest).
_SENSITIVE_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "webhook-signature", "x-hookline-signature"}
)


@dataclass(frozen=True)
class BinTargets:
    """What the webhooks whose URL is one inspector bin tell about it."""

    secrets: list[str]
    #: Lower-cased names of the custom headers those webhooks send (their values are masked).
    header_names: frozenset[str] = frozenset()


#: The webhooks targeting inspector bin `name`; None when no webhook targets it.
TargetLookup = Callable[[str], BinTargets | None]


def is_sensitive_header(name: str, custom: frozenset[str] = frozenset()) -> bool:
    lowered = name.lower()
    return lowered in _SENSITIVE_HEADERS or lowered in custom or is_secret_name(lowered)


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
    masked_headers: frozenset[str] = frozenset()

    def to_json(self, *, mask: bool = True) -> dict[str, Any]:
        """The request as pages show it; `mask=False` (in-process callers only) keeps the
        values of sensitive headers."""
        return {
            "id": self.id,
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": {
                name: REDACTED if mask and is_sensitive_header(name, self.masked_headers) else value
                for name, value in self.headers
            },
            "body": self.body.decode("utf-8", errors="replace"),
            "size": self.size,
            "truncated": self.size > len(self.body),
            "received_at": self.received_at,
            "client": self.client,
            "signature": self.signature,
        }


def signature_schemes(headers: dict[str, str]) -> list[str]:
    """The signature schemes a request carries, Standard Webhooks first."""
    lowered = {k.lower() for k in headers}
    found = []
    if "webhook-signature" in lowered:
        found.append(SCHEME_STANDARD)
    if "x-hookline-signature" in lowered:
        found.append(SCHEME_BODY)
    return found


def _check_scheme(headers: dict[str, str], body: bytes, secrets: list[str], scheme: str) -> dict:
    reason = "signature did not verify"
    for secret in secrets:
        try:
            verify(headers, body, secret, scheme=scheme)
        except VerificationError as exc:
            reason = str(exc) or reason
            continue
        return {"verified": True, "reason": None}
    return {"verified": False, "reason": reason}


def check_signature(
    headers: dict[str, str], body: bytes, secrets: list[str], *, has_webhook: bool
) -> dict[str, Any]:
    """{"verified": True|False|None, "reason", "schemes": {scheme: {"verified", "reason"}}} for
    every scheme the request carries; verified is True only when every one of them verifies, and
    None when there is nothing to check against (no webhook targets the URL, or no secret)."""
    schemes = signature_schemes(headers)
    usable = [s for s in secrets if s]
    if not has_webhook or not usable:
        reason = "no webhook targets this URL" if not has_webhook else "the webhook has no secret"
        return {
            "verified": None,
            "reason": reason,
            "schemes": {name: {"verified": None, "reason": reason} for name in schemes},
        }
    if not schemes:
        return {"verified": False, "reason": "no signature headers", "schemes": {}}
    results = {name: _check_scheme(headers, body, usable, name) for name in schemes}
    failed = [f"{name}: {r['reason']}" for name, r in results.items() if not r["verified"]]
    return {"verified": not failed, "reason": "; ".join(failed) or None, "schemes": results}


class Inspector:
    def __init__(self, targets_of: TargetLookup | None = None) -> None:
        self.targets_of = targets_of
        self._bins: OrderedDict[str, deque[Captured]] = OrderedDict()
        #: The next request number of each bin (kept while the bin is).
        self._numbers: dict[str, itertools.count[int]] = {}
        self._lock = threading.Lock()

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
                self._numbers.clear()
            else:
                self._bins.pop(name, None)
                self._numbers.pop(name, None)

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
        if request.method == "DELETE":
            self.clear(name)
            return _json(200, {"ok": True, "cleared": name})
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
        targets = self._targets(name)
        captured = Captured(
            id=0,
            method=request.method,
            path=request.path,
            query=request.query,
            headers=list(request.headers),
            body=request.body[:BODY_KEEP],
            size=len(request.body),
            received_at=clock.now_iso(),
            client=request.client_ip,
            signature=check_signature(
                headers,
                request.body,
                targets.secrets if targets else [],
                has_webhook=targets is not None,
            ),
            masked_headers=targets.header_names if targets else frozenset(),
        )
        with self._lock:
            captured.id = next(self._numbers.setdefault(name, itertools.count(1)))
            bin_ = self._bins.pop(name, None) or deque(maxlen=KEEP_PER_NAME)
            if fail_first:
                failing = status if not 200 <= status < 300 else 500
                status = failing if len(bin_) < fail_first else 200
            bin_.append(captured)
            self._bins[name] = bin_
            while len(self._bins) > MAX_NAMES:
                dropped, _ = self._bins.popitem(last=False)
                self._numbers.pop(dropped, None)
        if delay:
            time.sleep(delay)
        return _json(status, {"ok": 200 <= status < 300})

    def _targets(self, name: str) -> BinTargets | None:
        """What the webhooks targeting this bin tell; None when no webhook does."""
        if self.targets_of is None:
            return None
        try:
            return self.targets_of(name)
        except Exception as exc:  # the lookup is a convenience: never fail the receipt
            print(f"[inspect] webhook lookup failed: {exc!r}", flush=True)
            return None


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


_LABELS = {True: "verified", False: "NOT verified"}


def render_html(name: str, captured: list[Captured]) -> str:
    """A plain page; every value from a request is escaped."""
    esc = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<meta http-equiv='refresh' content='{REFRESH_SECONDS}'>",
        f"<title>Inspector: {esc(name)}</title>",
        "<style>body{font-family:system-ui,sans-serif;margin:2rem;max-width:70rem}"
        "pre{background:#f4f4f4;padding:.75rem;overflow:auto;white-space:pre-wrap}"
        "table{border-collapse:collapse}td{padding:.1rem .6rem;vertical-align:top;"
        "font-family:monospace}.ok{color:#080}.bad{color:#b00}.na{color:#777}</style>",
        "</head><body>",
        f"<h1>/_inspect/{esc(name)}</h1>",
        f"<p>{len(captured)} request(s), newest first; this page refreshes every "
        f"{REFRESH_SECONDS} s. Credentials in headers are masked. Clear the bin with "
        f"<code>curl -X DELETE</code> on this URL.</p>",
    ]
    for item in captured:
        data = item.to_json()
        sig = data["signature"]
        verified = sig.get("verified")
        css, label = {True: ("ok", "verified"), False: ("bad", "NOT verified")}.get(
            verified, ("na", "not checked")
        )
        detail = "; ".join(
            f"{scheme} {_LABELS.get(result['verified'], 'not checked')}"
            for scheme, result in sig.get("schemes", {}).items()
        )
        if sig.get("reason"):
            detail = f"{detail} ({sig['reason']})" if detail else str(sig["reason"])
        parts.append("<hr>")
        parts.append(
            f"<h2>#{data['id']} {esc(data['method'])} at {esc(data['received_at'])} "
            f"from {esc(data['client'])}</h2>"
        )
        parts.append(f"<p class='{css}'>Signature: {esc(label)}: {esc(detail)}</p>")
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
