"""Fixtures of the browser tests: the local stack, headless Debian Chromium driven by Playwright
(its own browser download cannot work here), and pages that fail on any script error."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.support import AXE, PortalPage
from tests.localstack_fixtures import LocalStackHandle, local_stack  # noqa: F401

pytestmark = pytest.mark.browser


def _require_browser() -> str:
    chromium = shutil.which("chromium")
    if chromium is None or not AXE.is_file():
        pytest.fail("browser tests need `make browser-deps` (chromium, playwright, axe-core)")
    return chromium


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    executable = _require_browser()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def portal(browser: Any, local_stack: LocalStackHandle) -> Iterator[PortalPage]:  # noqa: F811
    """A fresh desktop-sized context (no storage shared with other tests). axe is injected
    through Playwright, so this context bypasses the page's CSP; test_csp checks the CSP."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=local_stack.base_url)
    page = context.new_page()
    page.set_default_timeout(10_000)
    wrapped = PortalPage(page, local_stack)
    try:
        yield wrapped
    finally:
        context.close()
    assert wrapped.errors == [], wrapped.errors
