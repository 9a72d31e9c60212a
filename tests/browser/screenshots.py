"""Screenshots of every portal screen for docs/portal/ (`make screenshots`): the local stack
with a sample community, driven in headless Chromium exactly as the browser tests do."""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

import requests

from tests.browser.support import ROOT
from tests.localstack_fixtures import start_local_stack
from tests.portal_helpers import admin_post, inspector_webhook, new_community, portal_session

OUT = ROOT / "docs" / "portal"


def main() -> int:
    from playwright.sync_api import sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    stack = start_local_stack(data_dir=Path(tempfile.mkdtemp(prefix="hookline-shots-")))
    try:
        tenant = new_community(stack, "Acme Forum")
        inspector_webhook(stack, tenant, "Slack #community", "slack", ["post.created", "reply.*"])
        inspector_webhook(stack, tenant, "Data pipeline", "pipeline?status=503", ["*"])
        for title in ("Welcome to the forum", "How do I reset my password?"):
            body = {"event": "post.created", "data": {"post_id": 7, "title": title}}
            admin_post(stack, tenant, "/events", body)
        admin_post(stack, tenant, "/spaces", {"name": "Premium Members"})
        admin_post(stack, tenant, "/spaces", {"name": "Announcements"})
        admin_post(stack, tenant, "/courses", {"name": "Onboarding 101"})
        time.sleep(2)
        url = portal_session(stack, tenant)["url"]
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=shutil.which("chromium"), args=["--no-sandbox"]
            )
            page = browser.new_page(viewport={"width": 1100, "height": 820})
            heading = page.get_by_role("heading", level=1)

            def shot(name: str, *, full: bool = False) -> None:
                page.wait_for_load_state("networkidle")
                page.evaluate("document.getElementById('status').textContent = ''")
                page.screenshot(path=str(OUT / f"{name}.png"), full_page=full)

            page.goto(url)
            heading.filter(has_text="Webhooks").wait_for()
            shot("webhooks")
            page.get_by_role("button", name="Add webhook").click()
            heading.filter(has_text="Add webhook").wait_for()
            page.get_by_label("Name", exact=True).fill("CRM")
            page.get_by_label("URL", exact=True).fill(stack.inspector_url("crm"))
            page.get_by_role("checkbox", name="post.created", exact=True).check()
            page.get_by_role("checkbox", name="member.*", exact=True).check()
            shot("webhook-form")
            page.get_by_role("button", name="Save webhook").click()
            heading.filter(has_text="CRM").wait_for()
            page.get_by_role("button", name="Send test").click()
            page.locator("#test-status").wait_for()
            shot("webhook-secret-and-test", full=True)
            admin_post(
                stack, tenant, "/events", {"event": "post.created", "data": {"title": "Hello"}}
            )
            time.sleep(1.5)
            page.get_by_role("link", name="Delivery log").click()
            heading.filter(has_text="Delivery log").wait_for()
            page.get_by_role("button", name="Show response body").first.click()
            shot("delivery-log", full=True)
            page.get_by_role("link", name="CRM").click()
            heading.filter(has_text="CRM").wait_for()
            page.get_by_role("button", name="Delete").click()
            page.get_by_role("dialog").wait_for()
            shot("delete-confirmation")
            page.get_by_role("dialog").get_by_role("button", name="Cancel").click()

            nav = page.get_by_role("navigation", name="Portal")
            nav.get_by_role("link", name="Spaces and courses").click()
            heading.filter(has_text="Spaces and courses").wait_for()
            shot("spaces-and-courses")
            nav.get_by_role("link", name="Incoming webhooks").click()
            page.get_by_role("button", name="Add incoming webhook").click()
            heading.filter(has_text="Add incoming webhook").wait_for()
            page.get_by_label("Name", exact=True).fill("Shop purchases")
            spaces = page.get_by_role("group", name="Add to spaces")
            spaces.get_by_role("checkbox", name="Premium Members").check()
            courses = page.get_by_role("group", name="Add to courses")
            courses.get_by_role("checkbox", name="Onboarding 101").check()
            page.get_by_label("Send welcome email").check()
            shot("incoming-form", full=True)
            page.get_by_role("button", name="Save incoming webhook").click()
            heading.filter(has_text="Shop purchases").wait_for()
            hook_url = page.locator("#shown-url").inner_text()
            requests.post(hook_url, files={"email": (None, "sam@example.com")}, timeout=10)
            shot("incoming-url", full=True)
            page.get_by_role("button", name="Refresh activity").click()
            page.get_by_role("region", name="Activity").get_by_role("row").nth(1).wait_for()
            nav.get_by_role("link", name="Incoming webhooks").click()
            heading.filter(has_text="Incoming webhooks").wait_for()
            shot("incoming-webhooks")
            page.get_by_role("link", name="Shop purchases").click()
            page.get_by_role("region", name="Activity").wait_for()
            shot("incoming-activity", full=True)

            phone = browser.new_page(viewport={"width": 375, "height": 740}, is_mobile=True)
            phone.goto(portal_session(stack, tenant, read_only=True)["url"])
            phone.get_by_role("heading", level=1, name="Webhooks").wait_for()
            phone.wait_for_load_state("networkidle")
            phone.screenshot(path=str(OUT / "webhooks-375px-read-only.png"), full_page=True)
            browser.close()
    finally:
        stack.stop()
    print(f"screenshots written to {OUT.relative_to(ROOT)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
