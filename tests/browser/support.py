"""What the browser tests share: axe-core checks, and a page that records script errors."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.localstack_fixtures import LocalStackHandle

ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"


@dataclass
class PortalPage:
    page: Any
    stack: LocalStackHandle
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.page.on("pageerror", lambda error: self.errors.append(f"pageerror: {error}"))
        self.page.on(
            "console",
            lambda message: (
                self.errors.append(f"console: {message.text}")
                # 4xx answers are expected (errors next to fields, refused links, missing routes)
                if message.type == "error" and "Failed to load resource" not in message.text
                else None
            ),
        )

    def open(self, url: str) -> None:
        self.page.goto(url)
        self.page.get_by_role("heading", level=1).wait_for()

    def heading(self, name: str) -> Any:
        return self.page.get_by_role("heading", level=1, name=name)

    def axe(self, screen: str) -> None:
        """No serious or critical axe-core violation on the page as it is now."""
        self.page.add_script_tag(path=str(AXE))
        result = self.page.evaluate("axe.run(document, {resultTypes: ['violations']})")
        bad = [
            f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:3]}"
            for v in result["violations"]
            if v["impact"] in ("serious", "critical")
        ]
        assert bad == [], f"{screen}: {bad}"

    def fits(self, screen: str) -> None:
        """No horizontal scrolling."""
        widths = self.page.evaluate(
            "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        )
        assert widths[0] <= widths[1], f"{screen} scrolls sideways: {widths}"


def eventually(check: Callable[[], Any], *, timeout: float = 10.0, every: float = 0.2) -> Any:
    """check()'s first truthy answer within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            assert value, "condition not met in time"
            return value
        time.sleep(every)
