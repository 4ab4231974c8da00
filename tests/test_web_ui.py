"""The web UI (`/ui/`) through a real server on both backends, as a browser uses it:
sign in with an API token (a cookie), read monitors with their check-in timelines and
issues with their events, change a monitor or an issue with the pages' own forms. The
data is made by vigil's own processing (check-ins, occurrences)."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape

import httpx
import pytest
from sqlalchemy import Engine

from tests.issues.occurrences import T0, event_payload, occurrence, process
from tests.support.checkins import Sender
from tests.support.tenants import Tenant, make_tenant, make_token, revoke
from vigil.config import Settings
from vigil.monitors.checkin_processing import CheckinProcessing

DAILY = {"schedule": {"type": "crontab", "value": "0 3 * * *"}, "timezone": "Europe/Paris"}


@pytest.fixture
def tenant(engine: Engine) -> Tenant:
    return make_tenant(engine, "org-a", "web")


def browser(server: str, tenant: Tenant | None = None) -> httpx.Client:
    """A client that keeps cookies and sends the Origin a browser sends with a form;
    signed in as the tenant's token when given."""
    client = httpx.Client(base_url=server, timeout=60, headers={"Origin": server})
    if tenant is not None:
        signed = client.post("/ui/login", data={"token": tenant.token, "next": "/ui/issues/"})
        assert signed.status_code == 303, signed.text
    return client


def text(response: httpx.Response) -> str:
    """The page's visible text, tags removed, white space collapsed."""
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", response.text, flags=re.S)
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", body)).split())


def ticks(response: httpx.Response) -> list[str]:
    return re.findall(r'class="tick (\w+)" title="', response.text)


# --- signing in -------------------------------------------------------------------------


def test_pages_ask_to_sign_in_and_come_back(server: str, tenant: Tenant) -> None:
    client = browser(server)
    assert client.get("/").headers["location"] == "/ui/monitors/"
    asked = client.get("/ui/issues/", params={"query": "is:resolved"})
    assert asked.status_code == 303
    assert asked.headers["location"] == "/ui/login?next=%2Fui%2Fissues%2F%3Fquery%3Dis%253Aresolved"
    form = client.get(asked.headers["location"])
    assert form.status_code == 200
    assert 'name="next" value="/ui/issues/?query=is%3Aresolved"' in form.text
    signed = client.post("/ui/login", data={"token": tenant.token, "next": "/ui/issues/"})
    assert signed.status_code == 303 and signed.headers["location"] == "/ui/issues/"
    cookie = signed.headers["set-cookie"]
    # Lax: another site's forms never carry it; a link followed from elsewhere does
    for attribute in ("HttpOnly", "Path=/ui", "SameSite=lax", "Max-Age=604800"):
        assert attribute.lower() in cookie.lower()
    assert "secure" not in cookie.lower()  # plain HTTP here: a Secure cookie would be lost
    page = client.get("/ui/issues/")
    assert page.status_code == 200
    # a signed-in page: not cached, not framed, nothing loaded or posted elsewhere
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert "form-action 'self'" in page.headers["content-security-policy"]
    # signing out forgets the cookie
    out = client.post("/ui/logout")
    assert out.status_code == 303
    assert client.get("/ui/issues/").status_code == 303


@pytest.mark.parametrize("where", ["https://evil.example/", "//evil.example/x", "/api/0/"])
def test_sign_in_goes_on_only_to_a_page_of_the_ui(server: str, tenant: Tenant, where: str) -> None:
    client = browser(server)
    signed = client.post("/ui/login", data={"token": tenant.token, "next": where})
    assert signed.headers["location"] == "/ui/monitors/"


def test_a_visitor_without_a_cookie_is_sent_to_sign_in_without_one_set(
    server: str, tenant: Tenant
) -> None:
    # (Deleting a cookie the request did not carry would also delete the one a browser
    # keeps but did not send, as for a cross-site link under a strict policy.)
    asked = browser(server).get("/ui/monitors/")
    assert asked.status_code == 303 and "set-cookie" not in asked.headers


def test_forms_must_come_from_this_site_or_its_public_url(
    server: str, tenant: Tenant, stack: Settings
) -> None:
    stranger = httpx.Client(base_url=server, timeout=60, headers={"Origin": "https://evil.example"})
    # signing a visitor in with someone else's token (login CSRF)
    forged = stranger.post("/ui/login", data={"token": tenant.token})
    assert forged.status_code == 403 and "set-cookie" not in forged.headers
    assert (
        stranger.post(
            "/ui/login", data={"token": tenant.token}, headers={"Origin": "null"}
        ).status_code
        == 403
    )
    # behind a proxy that passes on its own Host: the public URL's origin, or the
    # forwarded host, is this site's
    proxied = httpx.Client(base_url=server, timeout=60, headers={"Origin": stack.base_url})
    assert proxied.post("/ui/login", data={"token": tenant.token}).status_code == 303
    forwarded = httpx.Client(
        base_url=server,
        timeout=60,
        headers={"Origin": "https://vigil.example.com", "X-Forwarded-Host": "vigil.example.com"},
    )
    assert forwarded.post("/ui/login", data={"token": tenant.token}).status_code == 303


def test_a_form_posted_after_the_session_ended_comes_back_to_its_page(
    server: str, tenant: Tenant, engine: Engine
) -> None:
    Sender(engine, tenant.project, CheckinProcessing())(T0, monitor_config=DAILY)
    client = browser(server)
    gone = client.post("/ui/monitors/web/nightly/mute", data={"muted": "true"})
    assert gone.headers["location"] == "/ui/login?next=%2Fui%2Fmonitors%2Fweb%2Fnightly%2F"


def test_a_notice_is_one_of_the_uis_own(server: str, tenant: Tenant) -> None:
    client = browser(server, tenant)
    page = client.get("/ui/monitors/", params={"notice": "Your token leaked: paste it at evil"})
    assert "leaked" not in page.text and 'role="status"' not in page.text
    assert "Ignored." in text(client.get("/ui/monitors/", params={"notice": "ignored"}))


def test_an_oversized_form_is_refused(server: str, tenant: Tenant, engine: Engine) -> None:
    Sender(engine, tenant.project, CheckinProcessing())(T0, monitor_config=DAILY)
    client = browser(server, tenant)
    huge = client.post("/ui/monitors/web/nightly/mute", data={"muted": "true", "x": "a" * 10_000})
    assert huge.status_code == 413


def test_tokens_that_cannot_sign_in_are_told_why(
    server: str, tenant: Tenant, engine: Engine
) -> None:
    client = browser(server)
    revoked = make_token(engine, tenant.org, ["org:read"])
    revoke(engine, tenant.org, revoked)
    for token, reason in [
        ("", "Paste an API token."),
        ("vgl_" + "0" * 64, "this is not a vigil API token"),
        ("x" * 5000, "That is no token."),
        (revoked, "this token has been revoked"),
    ]:
        refused = client.post("/ui/login", data={"token": token})
        assert refused.status_code in (401, 413)
        assert reason in text(refused)
        assert "set-cookie" not in refused.headers
    assert client.get("/ui/monitors/").status_code == 303


def test_a_token_revoked_after_signing_in_signs_its_holder_out(
    server: str, tenant: Tenant, engine: Engine
) -> None:
    token = make_token(engine, tenant.org, ["org:read"])
    client = browser(server)
    client.post("/ui/login", data={"token": token})
    assert client.get("/ui/monitors/").status_code == 200
    revoke(engine, tenant.org, token)
    assert client.get("/ui/monitors/").headers["location"].startswith("/ui/login")


# --- monitors ---------------------------------------------------------------------------


def test_monitors_show_their_state_schedule_and_timeline(
    server: str, tenant: Tenant, engine: Engine
) -> None:
    send = Sender(engine, tenant.project, CheckinProcessing())
    for minute, status in enumerate(["ok", "error", "in_progress", "ok"]):
        send(T0 + timedelta(minutes=minute), status=status, monitor_config=DAILY, duration=1.5)
    send(
        T0,
        monitor_slug="hourly",
        monitor_config={"schedule": {"type": "interval", "value": 2, "unit": "hour"}},
    )
    client = browser(server, tenant)
    page = client.get("/ui/monitors/")
    assert page.status_code == 200
    shown = text(page)
    assert "hourly web / hourly" in shown and "every 2 hours" in shown
    assert "nightly web / nightly" in shown and "0 3 * * * (Europe/Paris)" in shown
    # oldest first, after "hourly" (names in order)
    assert ticks(page) == ["ok", "ok", "error", "in_progress", "ok"]
    # started when it was received less its duration, as the API says
    assert 'title="error · 2026-03-01 12:00:58 UTC · production · 1.5 s"' in page.text
    found = client.get("/ui/monitors/", params={"query": "NIGHT"})
    assert "nightly" in text(found) and "hourly" not in text(found)
    assert "No monitor matches “cron”" in text(
        client.get("/ui/monitors/", params={"query": "cron"})
    )


def test_failing_monitors_are_listed_first_unless_sorted_otherwise(
    server: str, tenant: Tenant, engine: Engine
) -> None:
    send = Sender(engine, tenant.project, CheckinProcessing())
    send(T0, monitor_slug="a-fine", monitor_config=DAILY)
    send(T0, monitor_slug="z-failing", monitor_config=DAILY, status="error")
    client = browser(server, tenant)

    def listed(**params: str) -> list[str]:
        page = client.get("/ui/monitors/", params=params)
        assert page.status_code == 200
        return re.findall(r'<div class="muted">web / ([\w-]+)</div>', page.text)

    assert listed() == ["z-failing", "a-fine"]
    assert listed(sort="name") == ["a-fine", "z-failing"]
    page = client.get("/ui/monitors/")
    assert '<option value="status" selected>Failing first</option>' in page.text
    refused = client.get("/ui/monitors/", params={"sort": "bogus"})
    assert refused.status_code == 400 and "Unknown sort" in text(refused)


def test_a_monitor_page_pages_its_checkins_and_filters_by_environment(
    server: str, tenant: Tenant, engine: Engine
) -> None:
    send = Sender(engine, tenant.project, CheckinProcessing())
    for minute in range(52):
        send(T0 + timedelta(minutes=minute), monitor_config=DAILY, environment="production")
    send(T0 + timedelta(minutes=60), status="error", environment="staging")
    client = browser(server, tenant)
    page = client.get("/ui/monitors/web/nightly/")
    assert page.status_code == 200
    shown = text(page)
    assert "Margin 1 min" in shown and "Max runtime 30 min" in shown
    assert "production" in shown and "staging" in shown
    rows = re.findall(r'<tr>\s*<td><span class="tick (\w+)"></span>', page.text)
    assert len(rows) == 50 and rows[0] == "error"  # newest first
    older = re.search(r'href="([^"]+)" rel="next"', page.text)
    assert older is not None
    second = client.get(unescape(older.group(1)))
    assert len(re.findall(r'<tr>\s*<td><span class="tick', second.text)) == 3
    assert 'rel="prev"' in second.text
    staging = client.get("/ui/monitors/web/nightly/", params={"environment": "staging"})
    assert re.findall(r'<tr>\s*<td><span class="tick (\w+)"></span>', staging.text) == ["error"]
    missing = client.get("/ui/monitors/web/weekly/")
    assert missing.status_code == 404 and "monitor 'weekly' does not exist" in text(missing)


def test_muting_a_monitor_through_its_form(server: str, tenant: Tenant, engine: Engine) -> None:
    Sender(engine, tenant.project, CheckinProcessing())(T0, monitor_config=DAILY)
    client = browser(server, tenant)
    api = httpx.Client(base_url=server, headers={"Authorization": f"Bearer {tenant.token}"})
    monitor_api = "/api/0/organizations/org-a/monitors/nightly/"
    # a form posted by another site changes nothing
    forged = client.post(
        "/ui/monitors/web/nightly/mute",
        data={"muted": "true"},
        headers={"Origin": "https://evil.example"},
    )
    assert forged.status_code == 403
    assert api.get(monitor_api).json()["isMuted"] is False
    muted = client.post("/ui/monitors/web/nightly/mute", data={"muted": "true"})
    assert muted.status_code == 303
    assert api.get(monitor_api).json()["isMuted"] is True
    page = client.get(muted.headers["location"])
    assert "Muted: no issues are opened for its failures." in text(page)
    assert '<span class="state muted">muted</span>' in page.text
    assert 'value="false"><button type="submit">Unmute' in page.text
    client.post("/ui/monitors/web/nightly/mute", data={"muted": "false"})
    assert api.get(monitor_api).json()["isMuted"] is False


def test_muting_one_environment_through_its_form(
    server: str, tenant: Tenant, engine: Engine
) -> None:
    send = Sender(engine, tenant.project, CheckinProcessing())
    send(T0, monitor_config=DAILY, environment="production")
    send(T0, monitor_config=DAILY, environment="staging")
    client = browser(server, tenant)
    api = httpx.Client(base_url=server, headers={"Authorization": f"Bearer {tenant.token}"})
    monitor_api = "/api/0/organizations/org-a/monitors/nightly/"
    page = client.get("/ui/monitors/web/nightly/")
    assert page.text.count('name="environment"') == 2
    muted = client.post(
        "/ui/monitors/web/nightly/mute", data={"muted": "true", "environment": "staging"}
    )
    assert muted.status_code == 303
    monitor = api.get(monitor_api).json()
    assert monitor["isMuted"] is False
    assert {e["name"]: e["isMuted"] for e in monitor["environments"]} == {
        "production": False,
        "staging": True,
    }
    page = client.get(muted.headers["location"])
    staging_row = page.text.split('value="staging">')[1].split("</tr>")[0]
    assert "Unmute" in staging_row
    unknown = client.post(
        "/ui/monitors/web/nightly/mute", data={"muted": "true", "environment": "dev"}
    )
    assert unknown.status_code == 404 and "no environment 'dev'" in text(unknown)


def test_a_read_only_token_is_shown_the_apis_refusal(
    server: str, tenant: Tenant, engine: Engine
) -> None:
    Sender(engine, tenant.project, CheckinProcessing())(T0, monitor_config=DAILY)
    client = browser(server)
    client.post("/ui/login", data={"token": make_token(engine, tenant.org, ["project:read"])})
    refused = client.post("/ui/monitors/web/nightly/mute", data={"muted": "true"})
    assert refused.status_code == 403
    assert "this token lacks the org:write or project:write scope" in text(refused)


def test_names_are_shown_as_text_never_as_markup(
    server: str, tenant: Tenant, engine: Engine
) -> None:
    api = httpx.Client(base_url=server, headers={"Authorization": f"Bearer {tenant.token}"})
    created = api.post(
        "/api/0/organizations/org-a/monitors/",
        json={
            "project": "web",
            "name": "<script>alert(1)</script>",
            "slug": "xss",
            "config": {"schedule_type": "crontab", "schedule": "0 * * * *"},
        },
    )
    assert created.status_code == 201, created.text
    page = browser(server, tenant).get("/ui/monitors/")
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text


# --- issues -----------------------------------------------------------------------------


def test_issues_list_searches_and_sorts_as_the_api(
    server: str, tenant: Tenant, engine: Engine
) -> None:
    process(engine, occurrence(tenant.project.id, "a", issue_title="Disk full"))
    for _ in range(3):
        process(engine, occurrence(tenant.project.id, "b", issue_title="Backup failed"))
    client = browser(server, tenant)
    page = client.get("/ui/issues/", params={"query": "", "sort": "freq"})
    shown = text(page)
    assert "Issues 2" in shown
    assert shown.index("Backup failed") < shown.index("Disk full")
    assert "WEB-2" in shown and "cron" in shown
    only = text(client.get("/ui/issues/", params={"query": "disk"}))
    assert "Disk full" in only and "Backup failed" not in only
    bad = client.get("/ui/issues/", params={"query": "is:sleeping"})
    assert bad.status_code == 400 and "Invalid value 'sleeping' for is:" in text(bad)


def test_an_issue_shows_its_events_and_changes_status_through_its_form(
    server: str, tenant: Tenant, engine: Engine
) -> None:
    payload = occurrence(
        tenant.project.id,
        "fp",
        evidence_display=[{"name": "Failure reason", "value": "exit 3", "important": True}],
    )
    payload["event"] = event_payload(
        tenant.project.id, payload["event_id"], T0, environment="production", release="1.2.3"
    )
    process(engine, payload)
    client = browser(server, tenant)
    api = httpx.Client(base_url=server, headers={"Authorization": f"Bearer {tenant.token}"})
    [issue] = api.get("/api/0/organizations/org-a/issues/").json()
    page = client.get(f"/ui/issues/{issue['id']}/")
    shown = text(page)
    assert "Something broke" in shown and "api/123" in shown
    assert "Failure reason exit 3" in shown
    assert "server web-1" in shown and "environment production" in shown
    assert "First release 1.2.3" in shown
    assert "first seen" in shown
    resolved = client.post(f"/ui/issues/{issue['id']}/status", data={"status": "resolved"})
    assert resolved.status_code == 303
    assert (
        api.get(f"/api/0/organizations/org-a/issues/{issue['id']}/").json()["status"] == "resolved"
    )
    after = text(client.get(resolved.headers["location"]))
    assert "Resolved." in after and "set resolved" in after and "Unresolve" in after
    odd = client.post(f"/ui/issues/{issue['id']}/status", data={"status": "deleted"})
    assert odd.status_code == 400


def test_an_issue_of_another_organization_is_not_found(
    server: str, tenant: Tenant, engine: Engine
) -> None:
    other = make_tenant(engine, "org-b", "api")
    process(engine, occurrence(other.project.id, "theirs", issue_title="Their secret"))
    page = browser(server, tenant).get("/ui/issues/1/")
    assert page.status_code == 404
    assert "Their secret" not in page.text
