"""The web UI in a real browser (Debian's Chromium, driven by Playwright; no browser is
ever downloaded): signing in through the form, the cookie the browser keeps and sends,
the Origin it sends with the pages' own forms, and signing out. Skipped locally without
Chromium (`apt-get install chromium`); in CI it must be there."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine

from tests.issues.occurrences import T0, occurrence, process
from tests.support.checkins import Sender
from tests.support.services import unavailable
from tests.support.tenants import Tenant, make_tenant
from vigil.monitors.checkin_processing import CheckinProcessing

CHROMIUM = "/usr/bin/chromium"
DAILY = {"schedule": {"type": "crontab", "value": "0 3 * * *"}}


@pytest.fixture
def browser_page() -> Iterator[Any]:
    if shutil.which(CHROMIUM) is None:
        unavailable("Chromium", "install Debian's package: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield browser.new_page()
        finally:
            browser.close()


@pytest.fixture
def tenant(engine: Engine) -> Tenant:
    return make_tenant(engine, "org-a", "web")


def test_a_person_signs_in_reads_and_changes_things_and_signs_out(
    browser_page: Any, server: str, tenant: Tenant, engine: Engine
) -> None:
    page = browser_page
    send = Sender(engine, tenant.project, CheckinProcessing())
    for minute, status in enumerate(["ok", "error", "ok"]):
        send(T0 + timedelta(minutes=minute), status=status, monitor_config=DAILY)
    process(engine, occurrence(tenant.project.id, "disk", issue_title="Disk full"))

    page.goto(f"{server}/")
    assert page.url == f"{server}/ui/login?next=%2Fui%2Fmonitors%2F"
    page.fill("#token", "not-a-token")
    page.click("button[type=submit]")
    assert "this is not a vigil API token" in page.locator("[role=alert]").inner_text()
    page.fill("#token", tenant.token)
    page.click("button[type=submit]")
    assert page.url == f"{server}/ui/monitors/"
    # the style sheet loads under the pages' Content-Security-Policy
    background = page.eval_on_selector("header", "e => getComputedStyle(e).backgroundColor")
    assert background == "rgb(29, 35, 48)"
    [cookie] = page.context.cookies()
    assert (cookie["httpOnly"], cookie["sameSite"], cookie["path"]) == (True, "Lax", "/ui")

    # the timeline, oldest first, one tick a check-in
    ticks = page.locator(".timeline .tick")
    assert [ticks.nth(i).get_attribute("class") for i in range(ticks.count())] == [
        "tick ok",
        "tick error",
        "tick ok",
    ]
    page.click("text=nightly")
    assert page.url == f"{server}/ui/monitors/web/nightly/"
    page.click("button:has-text('Mute')")  # the form's POST carries the browser's Origin
    assert page.locator("[role=status]").inner_text().startswith("Muted")
    assert page.locator("h1 .state").inner_text() == "muted"

    page.click("nav >> text=Issues")
    page.click("text=Disk full")
    page.click("button:has-text('Resolve')")
    assert page.locator("[role=status]").inner_text() == "Resolved."
    assert "resolved" in page.locator(".facts").inner_text()

    page.click("button:has-text('Sign out')")
    assert page.url == f"{server}/ui/login"
    assert page.context.cookies() == []
    page.goto(f"{server}/ui/issues/")
    assert page.url.startswith(f"{server}/ui/login")
