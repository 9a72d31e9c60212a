"""The portal's static files (hookline/portal/), served by ApiFunction under /portal/ with no
authorizer: they hold no data. The portal's API calls carry the portal token and go through the
authorizer like any other call."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

ASSETS = Path(__file__).resolve().parent.parent / "portal"
PREFIX = "/portal"
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
#: No inline script or style, nothing from another origin, no framing, no form posts.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cache-Control": "no-cache",
}


def owns(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


@cache
def _files() -> dict[str, tuple[str, str]]:
    """name -> (content type, text) of every servable file: a fixed set, so no path from the
    request ever reaches the file system."""
    return {
        p.name: (_TYPES[p.suffix], p.read_text(encoding="utf-8"))
        for p in sorted(ASSETS.iterdir())
        if p.is_file() and p.suffix in _TYPES
    }


def _answer(status: int, content_type: str, body: str, **headers: str) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": content_type, **SECURITY_HEADERS, **headers},
        "body": body,
        "isBase64Encoded": False,
    }


def _error(status: int, code: str, message: str, **headers: str) -> dict[str, Any]:
    body = json.dumps({"code": code, "message": message, "data": {"status": status}})
    return _answer(status, "application/json", body, **headers)


def serve(event: dict[str, Any]) -> dict[str, Any]:
    """The proxy response for a GET of /portal, /portal/ or /portal/<file>."""
    path = str(event.get("path") or "")
    method = str(event.get("httpMethod") or "GET").upper()
    if method not in ("GET", "HEAD"):
        return _error(
            405, "method_not_allowed", f"{method} is not allowed on {path}.", Allow="GET, HEAD"
        )
    # The path as the browser sent it (API Gateway may hand /portal/ over as /portal).
    sent = str((event.get("requestContext") or {}).get("path") or path)
    if path.rstrip("/") == PREFIX and not sent.endswith("/"):
        # Relative asset URLs need the trailing slash; "portal/" keeps the stage prefix.
        return _answer(301, "text/plain; charset=utf-8", "", Location="portal/")
    name = path[len(PREFIX) + 1 :] or "index.html"
    found = _files().get(name)
    if found is None:
        return _error(404, "not_found", f"No portal file {name!r}.")
    content_type, text = found
    return _answer(200, content_type, "" if method == "HEAD" else text)
