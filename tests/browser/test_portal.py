"""The portal in headless Chromium against the local stack, as a community admin uses it:
the issue's flows end to end, axe-core on every screen, 375 px, keyboard, CSP, refused links."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.browser.support import PortalPage, eventually
from tests.localstack_fixtures import LocalStackHandle
from tests.portal_helpers import (
    Tenant,
    admin_post,
    inspector_webhook,
    link_parts,
    new_community,
    portal_session,
)

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def tenant(local_stack: LocalStackHandle) -> Tenant:
    return new_community(local_stack, "Acme Forum")


def _publish(stack: LocalStackHandle, tenant: Tenant, title: str) -> str:
    body = {"event": "post.created", "data": {"post_id": 1, "title": title}}
    return str(admin_post(stack, tenant, "/events", body)["id"])


def _received(stack: LocalStackHandle, bin_name: str, event: str) -> list[dict[str, Any]]:
    return [c for c in stack.inspected(bin_name) if event in c.get("body", "")]


def _filter(page: Any) -> dict[str, list[str]]:
    """Click the delivery log's Filter and wait for the screen drawn from the answer: the query
    sent."""
    with page.expect_response(lambda answer: "/logs?" in answer.url) as answer:
        page.get_by_role("button", name="Filter").click()
    page.wait_for_function(
        "document.activeElement.tagName === 'H1' || "
        "document.activeElement.getAttribute('aria-invalid') === 'true'"
    )
    return parse_qs(urlsplit(answer.value.url).query)


def test_opening_the_link_moves_the_token_out_of_the_url(
    portal: PortalPage, local_stack: LocalStackHandle, tenant: Tenant
) -> None:
    link = portal_session(local_stack, tenant)["url"]
    token = link_parts(link)["token"]
    portal.open(link)
    portal.heading("Webhooks").wait_for()
    page = portal.page
    assert token not in page.url and "token" not in page.url
    assert page.evaluate("window.history.length") >= 1
    stored = page.evaluate("JSON.stringify(window.sessionStorage)")
    assert token in stored
    assert page.evaluate("document.cookie") == ""
    # A reload keeps the session (the token now comes from storage).
    page.reload()
    portal.heading("Webhooks").wait_for()
    assert page.get_by_text("Acme Forum").count() >= 1


def test_webhook_flow(portal: PortalPage, local_stack: LocalStackHandle, tenant: Tenant) -> None:
    page = portal.page
    portal.open(portal_session(local_stack, tenant)["url"])
    portal.heading("Webhooks").wait_for()
    portal.axe("webhooks list (empty)")

    page.get_by_role("button", name="Add webhook").click()
    portal.heading("Add webhook").wait_for()
    portal.axe("webhook form")
    page.get_by_label("Name", exact=True).fill("CRM")
    page.get_by_label("URL", exact=True).fill("ftp://nowhere.example/hook")
    page.get_by_role("checkbox", name="post.created", exact=True).check()
    page.get_by_label("Retry count").fill("2")
    page.get_by_label("Format").select_option("json")
    page.get_by_role("button", name="Save webhook").click()
    # The API's error sits next to the field it names.
    url_error = page.locator(
        "#" + page.get_by_label("URL", exact=True).get_attribute("id") + "-error"
    )
    url_error.wait_for()
    assert url_error.inner_text().strip()
    assert page.get_by_label("URL", exact=True).get_attribute("aria-invalid") == "true"
    portal.axe("webhook form with an error")

    page.get_by_label("URL", exact=True).fill(local_stack.inspector_url("portal-crm"))
    page.get_by_role("button", name="Add header").click()
    page.get_by_label("Header name").fill("X-Api-Key")
    page.get_by_label("Header value").fill("crm-header-value-1234")
    page.get_by_role("button", name="Save webhook").click()
    portal.heading("CRM").wait_for()
    secret = page.locator("#shown-secret").inner_text()
    assert re.fullmatch(r"whsec_[A-Za-z0-9+/=]{40,}", secret)
    page.get_by_role("button", name="Copy").click()
    assert page.evaluate("navigator.clipboard.readText()") == secret
    portal.axe("webhook page with its secret")
    # Shown once: a reload shows it masked, and the header value is never in the page.
    page.reload()
    portal.heading("CRM").wait_for()
    content = page.content()
    assert secret not in content and "whsec_********" in content
    assert "crm-header-value-1234" not in content

    page.get_by_role("button", name="Send test").click()
    status = page.locator("#test-status")
    status.wait_for()
    assert status.inner_text() == "200"
    assert page.get_by_text(re.compile(r"\d+ ms")).count() >= 1
    assert page.locator("pre.body").inner_text().strip()
    portal.axe("send test result")
    received = local_stack.inspected("portal-crm")
    assert received and received[0]["headers"].get("X-Api-Key") == "crm-header-value-1234"

    event_id = _publish(local_stack, tenant, "Hello from the portal test")
    eventually(lambda: _received(local_stack, "portal-crm", event_id))
    page.get_by_role("link", name="Delivery log").click()
    portal.heading(re.compile("Delivery log")).wait_for()

    def logged() -> bool:
        page.reload()
        portal.heading(re.compile("Delivery log")).wait_for()
        rows = page.get_by_role("row").filter(has_text="post.created")
        return rows.count() >= 1 and "200" in rows.first.inner_text()

    eventually(logged)
    row = page.get_by_role("row").filter(has_text="post.created").first
    assert "Success" in row.inner_text()
    row.get_by_role("button", name="Show response body").click()
    assert row.locator("pre.body").is_visible()
    portal.axe("delivery log")
    page.get_by_label("Status", exact=True).select_option("failed")
    assert _filter(page)["status"] == ["failed"]
    page.get_by_text("No attempts match.").wait_for()
    page.get_by_label("Status", exact=True).select_option("")
    # Status code class, since and until reach the API: 5xx and an early until match nothing.
    page.get_by_label("Status code", exact=True).select_option("5xx")
    assert _filter(page)["status_code"] == ["5xx"]
    assert page.get_by_text("No attempts match.").is_visible()
    page.get_by_label("Status code", exact=True).select_option("2xx")
    page.get_by_label("Until", exact=True).fill("2020-01-01T00:00:00")
    sent = _filter(page)
    assert sent["status_code"] == ["2xx"] and sent["until"][0].endswith("Z")
    assert page.get_by_text("No attempts match.").is_visible()
    page.get_by_label("Since", exact=True).fill("2021-01-01T00:00:00")
    _filter(page)
    # The screen is drawn anew (new ids): the error sits next to the Until field it names.
    until = page.get_by_label("Until", exact=True)
    assert until.get_attribute("aria-invalid") == "true"
    assert "since" in page.locator(f"#{until.get_attribute('id')}-error").inner_text()
    portal.axe("delivery log with a refused filter")
    page.get_by_label("Since", exact=True).fill("2020-01-01T00:00:00")
    until.fill("")
    sent = _filter(page)
    assert "until" not in sent and sent["since"][0].startswith("20")
    assert page.get_by_role("row").filter(has_text="post.created").count() >= 1
    assert page.get_by_label("Status code", exact=True).input_value() == "2xx"
    page.get_by_label("Status code", exact=True).select_option("")
    page.get_by_label("Since", exact=True).fill("")
    _filter(page)
    row = page.get_by_role("row").filter(has_text="post.created").first
    row.get_by_role("button", name="Resend").click()
    page.locator("#status").filter(has_text=re.compile("Delivered|failed")).wait_for()
    page.get_by_label("Replay since").fill("2020-01-01T00:00:00")
    page.get_by_role("button", name="Replay").click()
    # Replay may not exist on this server yet: then a clear message, not a broken page.
    outcome = page.locator("form").filter(has_text="Replay since").locator(".outcome")
    eventually(lambda: outcome.inner_text().strip())
    assert re.search(r"Replay is not available|[Rr]eplay", outcome.inner_text())
    page.get_by_label("Recover since").fill("2020-01-01T00:00:00")
    page.get_by_role("button", name="Recover", exact=True).click()
    recovered = page.locator("form").filter(has_text="Recover since").locator(".outcome")
    eventually(lambda: recovered.inner_text().strip())
    assert "Recover failed" not in recovered.inner_text()

    # Active off: nothing is delivered to it (a second webhook shows the event went out).
    inspector_webhook(local_stack, tenant, "Sentinel", "portal-sentinel", ["post.created"])
    page.get_by_role("link", name="Webhooks").first.click()
    portal.heading("Webhooks").wait_for()
    crm_row = page.get_by_role("row").filter(has_text="CRM")
    crm_row.get_by_text(re.compile("Success \\(200\\)")).wait_for()
    toggle = crm_row.get_by_role("switch", name="Active")
    assert toggle.is_checked()
    toggle.uncheck()
    page.locator("#status").filter(has_text="inactive").wait_for()
    portal.axe("webhooks list")
    before = len(local_stack.inspected("portal-crm"))
    quiet = _publish(local_stack, tenant, "Nobody at CRM hears this")
    eventually(lambda: _received(local_stack, "portal-sentinel", quiet))
    assert len(local_stack.inspected("portal-crm")) == before

    # Rotate secret (shown once), then Delete after a confirmation.
    crm_row.get_by_role("link", name="CRM").click()
    portal.heading("CRM").wait_for()
    overlap = page.get_by_label("Old secret keeps signing for (seconds)")
    assert overlap.input_value() == "86400"
    assert page.get_by_role("button", name="End overlap now").count() == 0
    overlap.fill("-1")
    page.get_by_role("button", name="Rotate secret").click()
    page.locator(f"#{overlap.get_attribute('id')}-error").filter(has_text="overlap").wait_for()
    assert overlap.get_attribute("aria-invalid") == "true"
    overlap.fill("3600")
    page.get_by_role("button", name="Rotate secret").click()
    page.get_by_role("heading", name="New signing secret").wait_for()
    rotated = page.locator("#shown-secret").inner_text()
    assert rotated.startswith("whsec_") and rotated != secret
    # While the overlap runs the page says so, and it can be ended now after a confirmation.
    crm = page.url.rsplit("/", 1)[-1]
    hook_url = local_stack.url(f"/v1/communities/{tenant.id}/webhooks/{crm}")

    def read() -> requests.Response:
        return requests.get(hook_url, headers=local_stack.headers(tenant.key), timeout=10)

    assert read().json()["overlap_ends_at"]
    page.reload()
    portal.heading("CRM").wait_for()
    page.get_by_text("Overlap running until").wait_for()
    portal.axe("webhook page during an overlap")
    page.get_by_role("button", name="End overlap now").click()
    page.get_by_role("dialog").get_by_role("button", name="Cancel").click()
    assert read().json()["overlap_ends_at"]
    page.get_by_role("button", name="End overlap now").click()
    portal.axe("end overlap confirmation")
    page.get_by_role("dialog").get_by_role("button", name="End overlap").click()
    page.get_by_text("No overlap running").wait_for()
    assert page.get_by_role("button", name="End overlap now").count() == 0
    assert read().json()["overlap_ends_at"] is None
    overlap.fill("0")
    page.get_by_role("button", name="Rotate secret").click()
    page.get_by_role("heading", name="New signing secret").wait_for()
    assert page.locator("#shown-secret").inner_text() not in (secret, rotated)
    assert page.get_by_role("button", name="End overlap now").count() == 0
    page.get_by_role("button", name="Delete").click()
    dialog = page.get_by_role("dialog")
    dialog.wait_for()
    portal.axe("delete confirmation")
    dialog.get_by_role("button", name="Cancel").click()
    assert dialog.count() == 0
    page.get_by_role("button", name="Delete").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    portal.heading("Webhooks").wait_for()
    assert page.get_by_role("row").filter(has_text="CRM").count() == 0


def test_incoming_webhook_flow(
    portal: PortalPage, local_stack: LocalStackHandle, tenant: Tenant
) -> None:
    page = portal.page
    portal.open(portal_session(local_stack, tenant)["url"])
    page.get_by_role("link", name="Spaces and courses").click()
    portal.heading("Spaces and courses").wait_for()
    page.get_by_label("Space name").fill("Premium Members")
    page.get_by_role("button", name="Create space").click()
    page.get_by_role("listitem").filter(has_text="Premium Members").wait_for()
    page.get_by_label("Course name").fill("Onboarding 101")
    page.get_by_role("button", name="Create course").click()
    page.get_by_role("listitem").filter(has_text="Onboarding 101").wait_for()
    portal.axe("spaces and courses")

    page.get_by_role("link", name="Incoming webhooks").click()
    portal.heading("Incoming webhooks").wait_for()
    portal.axe("incoming webhooks list")
    page.get_by_role("button", name="Add incoming webhook").click()
    portal.heading("Add incoming webhook").wait_for()
    page.get_by_label("Name", exact=True).fill("Shop purchases")
    page.get_by_role("group", name="Add to spaces").get_by_role(
        "checkbox", name="Premium Members"
    ).check()
    page.get_by_role("group", name="Add to courses").get_by_role(
        "checkbox", name="Onboarding 101"
    ).check()
    assert (
        page.get_by_role("group", name="Remove from spaces")
        .get_by_role("checkbox", name="Premium Members")
        .count()
        == 1
    )
    assert page.get_by_role("group", name="Remove from courses").count() == 1
    page.get_by_label("Send welcome email").check()
    page.get_by_label("IP allowlist").fill("not-an-ip")
    portal.axe("incoming webhook form")
    page.get_by_role("button", name="Save incoming webhook").click()
    ips = page.get_by_label("IP allowlist")
    eventually(lambda: ips.get_attribute("aria-invalid") == "true")
    ips.fill("127.0.0.1")
    page.get_by_role("button", name="Save incoming webhook").click()
    portal.heading("Shop purchases").wait_for()
    url = page.locator("#shown-url").inner_text()
    assert "/v1/hooks/" in url
    page.get_by_role("button", name="Copy", exact=True).click()
    assert page.evaluate("navigator.clipboard.readText()") == url
    assert page.get_by_text("curl --form email=").count() == 1
    portal.axe("incoming webhook with its URL")

    answer = requests.post(
        url, files={"email": (None, "sam@example.com"), "first_name": (None, "Sam")}, timeout=10
    )
    assert answer.status_code == 200, answer.text
    page.get_by_role("button", name="Refresh activity").click()
    activity = page.get_by_role("region", name="Activity")
    activity.get_by_role("row").filter(has_text="127.0.0.1").first.wait_for()
    assert page.locator("#shown-url").count() == 0  # shown once: gone after a refresh
    assert url not in page.content()
    portal.axe("incoming webhook activity")

    page.get_by_role("button", name="Rotate URL").click()
    page.get_by_role("dialog").get_by_role("button", name="Rotate URL").click()
    page.get_by_role("heading", name="New incoming webhook URL").wait_for()
    rotated = page.locator("#shown-url").inner_text()
    # Requiring a signature later shows the generated signing secret once.
    page.get_by_role("link", name="Edit").click()
    portal.heading("Edit Shop purchases").wait_for()
    page.get_by_label("Require signature").check()
    page.get_by_role("button", name="Save incoming webhook").click()
    page.get_by_role("heading", name="Signing secret").wait_for()
    signing = page.locator(".once code").inner_text()
    assert len(signing) > 20
    page.reload()
    portal.heading("Shop purchases").wait_for()
    assert signing not in page.content()
    assert (
        rotated != url
        and requests.post(url, data={"email": "x@example.com"}, timeout=10).status_code == 404
    )


def test_every_screen_fits_375_px_and_passes_axe(
    browser: Any, local_stack: LocalStackHandle, tenant: Tenant
) -> None:
    hook = inspector_webhook(local_stack, tenant, "Narrow", "narrow-with-a-long-name", ["post.*"])
    rotated = requests.post(
        local_stack.url(f"/v1/communities/{tenant.id}/webhooks/{hook}/rotate-secret"),
        headers=local_stack.headers(tenant.key),
        json={"overlap_seconds": 600},
        timeout=10,
    )
    assert rotated.json()["overlap_ends_at"], rotated.text  # the webhook page shows the overlap
    incoming = admin_post(local_stack, tenant, "/incoming-webhooks", {"name": "Narrow form"})["id"]
    _publish(
        local_stack, tenant, "A title long enough to wrap on a narrow phone screen, twice over"
    )
    context = browser.new_context(
        viewport={"width": 375, "height": 740}, bypass_csp=True, is_mobile=True
    )
    portal = PortalPage(context.new_page(), local_stack)
    try:
        portal.open(portal_session(local_stack, tenant)["url"])
        screens = {
            "#/webhooks": "Webhooks",
            "#/webhooks/new": "Add webhook",
            f"#/webhooks/{hook}": "Narrow",
            f"#/webhooks/{hook}/edit": "Edit Narrow",
            f"#/webhooks/{hook}/log": "Delivery log: Narrow",
            "#/incoming": "Incoming webhooks",
            "#/incoming/new": "Add incoming webhook",
            f"#/incoming/{incoming}": "Narrow form",
            f"#/incoming/{incoming}/edit": "Edit Narrow form",
            "#/directory": "Spaces and courses",
        }
        for fragment, title in screens.items():
            portal.page.evaluate(f"window.location.hash = {fragment!r}")
            portal.heading(title).wait_for()
            portal.page.wait_for_load_state("networkidle")
            portal.fits(fragment)
            portal.axe(f"{fragment} at 375 px")
        assert portal.errors == []
    finally:
        context.close()


def test_keyboard_only(portal: PortalPage, local_stack: LocalStackHandle, tenant: Tenant) -> None:
    body = {"name": "order.refunded", "description": "An order was refunded."}
    admin_post(local_stack, tenant, "/event-types", body)
    page = portal.page
    portal.open(portal_session(local_stack, tenant)["url"])
    portal.heading("Webhooks").wait_for()
    # Each screen moves focus to its heading, so Tab continues from there.
    assert page.evaluate("document.activeElement.textContent") == "Webhooks"
    for _ in range(20):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent") == "Add webhook":
            break
    else:
        pytest.fail("Add webhook is not reachable with Tab")
    page.keyboard.press("Enter")
    portal.heading("Add webhook").wait_for()
    assert page.evaluate("document.activeElement.tagName") == "H1"
    page.keyboard.press("Tab")
    page.keyboard.type("Keyboard")
    assert page.get_by_label("Name", exact=True).input_value() == "Keyboard"
    # The community's own event types are offered beside the built-in ones.
    own = page.get_by_role("group", name="order events")
    assert own.get_by_role("checkbox", name="order.refunded", exact=True).count() == 1
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"


def test_read_only_session_shows_and_changes_nothing(
    portal: PortalPage, local_stack: LocalStackHandle, tenant: Tenant
) -> None:
    watched = inspector_webhook(local_stack, tenant, "Watched", "watched", ["*"])
    page = portal.page
    portal.open(portal_session(local_stack, tenant, read_only=True)["url"])
    portal.heading("Webhooks").wait_for()
    assert page.get_by_text("Read-only session").count() == 1
    assert page.get_by_role("button", name="Add webhook").count() == 0
    toggle = page.get_by_role("row").filter(has_text="Watched").get_by_role("switch", name="Active")
    assert toggle.is_disabled()
    page.get_by_role("link", name="Watched").click()
    portal.heading("Watched").wait_for()
    for name in ("Send test", "Rotate secret", "Delete"):
        assert page.get_by_role("button", name=name).count() == 0
    portal.axe("read-only webhook page")
    # The server refuses what the page does not offer.
    token = page.evaluate("JSON.parse(sessionStorage.getItem('hookline.portal.session')).token")
    refused = requests.patch(
        local_stack.url(f"/v1/communities/{tenant.id}/webhooks/{watched}"),
        headers={"Authorization": f"Bearer {token}"},
        json={"is_active": False},
        timeout=10,
    )
    assert refused.status_code == 403


def test_strict_csp_holds_and_the_portal_works_under_it(
    browser: Any, local_stack: LocalStackHandle, tenant: Tenant
) -> None:
    context = browser.new_context()
    page = context.new_page()
    violations: list[str] = []
    page.on(
        "console",
        lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None,
    )
    try:
        page.goto(portal_session(local_stack, tenant)["url"])
        page.get_by_role("heading", level=1, name="Webhooks").wait_for()
        page.get_by_role("button", name="Add webhook").click()
        page.get_by_role("heading", level=1, name="Add webhook").wait_for()
        assert violations == []
        with pytest.raises(Exception, match=r"(?i)content security policy|refused"):
            page.add_script_tag(content="window.injected = true")
        assert page.evaluate("window.injected === undefined")
    finally:
        context.close()


def test_expired_link_is_refused(
    portal: PortalPage, local_stack: LocalStackHandle, tenant: Tenant
) -> None:
    link = portal_session(local_stack, tenant, expires_in=1)["url"]
    portal.page.wait_for_timeout(1200)
    portal.open(link)
    portal.heading("This portal link has expired").wait_for()
    assert portal.page.evaluate("sessionStorage.length") == 0
    portal.axe("expired link")


def test_link_used_on_another_community_is_refused(
    portal: PortalPage, local_stack: LocalStackHandle, tenant: Tenant
) -> None:
    other = new_community(local_stack, "Globex")
    link = portal_session(local_stack, tenant)["url"]
    forged = link.replace(f"community={tenant.id}", f"community={other.id}")
    portal.open(forged)
    portal.heading("This link is not valid here").wait_for()
    assert portal.page.get_by_text("Globex").count() == 0
    portal.axe("link of another community")
