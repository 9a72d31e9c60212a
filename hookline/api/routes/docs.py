"""The public API docs: Swagger UI at /v1/docs and the OpenAPI document at /v1/openapi.json.

Served by ApiFunction without an API key (template.yaml routes them with no authorizer), in the
deployed API and in the local stack alike. The page is powertools' Swagger UI page; its bundle
and stylesheet are the files powertools ships, served as they are from /v1/docs/<asset> (never
rewritten: the bundle holds regex literals such as ``/</``), so no CDN is needed at run time.
The document is read on the first docs request of a container: the layer ships the committed
docs/openapi.json as hookline/api/openapi.json; a checkout reads docs/openapi.json itself
(hookline_dev.openapi generates it; a test keeps it current).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from hookline.api.context import public_base_url
from hookline.errors import NotFound

router = Router()

#: asset name -> content type; the only files served from the Swagger UI directory.
ASSETS = {
    "swagger-ui-bundle.min.js": "text/javascript; charset=utf-8",
    "swagger-ui.min.css": "text/css; charset=utf-8",
}
_CACHE = "public, max-age=3600"
_document: dict[str, Any] | None = None


def _assets_dir() -> Path:
    from aws_lambda_powertools.event_handler.openapi import swagger_ui

    return Path(swagger_ui.__file__).parent


def _load() -> dict[str, Any]:
    """The committed document: shipped in the layer as hookline/api/openapi.json, read from
    docs/openapi.json in a checkout (tests, the local stack; a test keeps it current)."""
    here = Path(__file__).resolve()
    for path in (here.parents[1] / "openapi.json", here.parents[3] / "docs" / "openapi.json"):
        if path.is_file():
            loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            return loaded
    raise FileNotFoundError("openapi.json is not beside the API package nor in docs/")


def document() -> dict[str, Any]:
    """The OpenAPI document, with this API's own URL as its first server."""
    global _document
    if _document is None:
        _document = _load()
    base = public_base_url(router.current_event.raw_event)
    servers = [s for s in _document.get("servers", []) if s.get("url") != base]
    return {**_document, "servers": [{"url": base, "description": "This API"}, *servers]}


def _json(document: dict[str, Any]) -> Response[str]:
    return Response(
        status_code=200,
        content_type="application/json",
        body=json.dumps(document),
        headers={"Cache-Control": "no-cache"},
    )


@router.get("/v1/openapi.json", include_in_schema=False)
def openapi_json() -> Response[str]:
    return _json(document())


@router.get("/v1/docs", include_in_schema=False)
def swagger_ui() -> Response[str]:
    from aws_lambda_powertools.event_handler.openapi.swagger_ui import generate_swagger_html

    query = router.current_event.query_string_parameters or {}
    if query.get("format") == "json":
        return _json(document())
    # The spec sits inside a <script>: "</" must not end it early (valid JSON either way).
    spec = json.dumps(document()).replace("</", "<\\/")
    html = generate_swagger_html(
        spec,
        "docs/swagger-ui-bundle.min.js",
        "docs/swagger-ui.min.css",
        "docs",
        None,
    )
    return Response(status_code=200, content_type="text/html; charset=utf-8", body=html)


@router.get("/v1/docs/<asset>", include_in_schema=False)
def swagger_ui_asset(asset: str) -> Response[str]:
    content_type = ASSETS.get(asset)
    if content_type is None:
        raise NotFound(f"No docs asset {asset!r}.")
    body = (_assets_dir() / asset).read_text(encoding="utf-8")
    return Response(
        status_code=200, content_type=content_type, body=body, headers={"Cache-Control": _CACHE}
    )
