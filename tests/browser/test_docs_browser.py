"""Swagger UI at /v1/docs in headless Chromium (Debian's, driven by Playwright): the page
renders, lists every operation of the OpenAPI document, raises no script error, and loads
nothing from outside the local stack. `make browser-deps` installs Chromium and Playwright."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from playwright.sync_api import sync_playwright

from tests.localstack_fixtures import LocalStackHandle, local_stack  # noqa: F401

_METHODS = ("get", "put", "post", "delete", "patch")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    chromium = shutil.which("chromium")
    assert chromium, "Chromium is missing: run `make browser-deps`"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


def test_swagger_ui_lists_every_operation(
    local_stack: LocalStackHandle,  # noqa: F811
    browser: Any,
) -> None:
    document = requests.get(local_stack.url("/v1/openapi.json"), timeout=60).json()
    expected = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
        if method in _METHODS
    }
    assert len(expected) >= 45

    page = browser.new_page()
    errors: list[str] = []
    foreign: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on(
        "console", lambda message: errors.append(message.text) if message.type == "error" else None
    )

    def guard(route: Any) -> None:
        if urlsplit(route.request.url).hostname not in ("127.0.0.1", "localhost"):
            foreign.append(route.request.url)
            route.abort()
        else:
            route.continue_()

    page.route("**/*", guard)
    page.goto(local_stack.url("/v1/docs"), wait_until="load", timeout=60_000)
    page.wait_for_selector(".opblock", timeout=60_000)
    listed = page.eval_on_selector_all(
        ".opblock",
        """blocks => blocks.map(b => [
            b.querySelector('.opblock-summary-method').textContent.trim(),
            b.querySelector('.opblock-summary-path').getAttribute('data-path'),
        ])""",
    )
    shown = {(method, path) for method, path in listed}
    assert shown == expected
    assert page.locator(".info .title").first.inner_text().startswith("Hookline")
    assert not errors, errors
    assert not foreign, foreign
    page.close()
