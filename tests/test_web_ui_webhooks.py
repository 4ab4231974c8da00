"""The web UI's webhooks pages through a real server on both backends: add one with the
page's form (its secret shown once, a mistake shown above the form with what was typed
kept), see its deliveries, send it a test, remove it; forms of other sites and tokens
without the scope are refused."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import Engine

from tests.issues.occurrences import T0, occurrence, process
from tests.support.tenants import Tenant, bearer, make_tenant, make_token
from tests.support.webhook_receiver import webhook_receiver
from tests.test_web_ui import browser, text
from vigil.config import Settings
from vigil.webhooks.dispatcher import SETTLE, WebhookDispatcher


@pytest.fixture
def tenant(engine: Engine) -> Tenant:
    return make_tenant(engine, "org-a", "web")


def api_webhooks(server: str, tenant: Tenant) -> list[dict[str, object]]:
    found: list[dict[str, object]] = httpx.get(
        f"{server}/api/0/organizations/org-a/webhooks/", headers=bearer(tenant.token)
    ).json()
    return found


def test_add_see_deliveries_and_remove_a_webhook(
    stack: Settings, server: str, tenant: Tenant, engine: Engine
) -> None:
    client = browser(server, tenant)
    page = client.get("/ui/webhooks/")
    assert page.status_code == 200
    assert "No webhook yet." in text(page)
    assert '<option value="web">web</option>' in page.text

    mistake = client.post(
        "/ui/webhooks/add", data={"url": "hooks.example.com", "project": "web", "on_created": "1"}
    )
    assert mistake.status_code == 400
    assert "url: an http:// or https:// URL with a host" in text(mistake)
    assert 'value="hooks.example.com"' in mistake.text  # what was typed is kept
    assert '<option value="web" selected>' in mistake.text
    assert api_webhooks(server, tenant) == []

    with webhook_receiver() as receiver:
        added = client.post(
            "/ui/webhooks/add",
            data={"url": receiver.url, "project": "web", "format": "slack", "on_created": "1"},
        )
        assert added.status_code == 201, added.text
        [hook] = api_webhooks(server, tenant)
        assert (hook["project"], hook["format"], hook["actions"]) == ("web", "slack", ["created"])
        secret = added.text.split('<code class="secret">')[1].split("</code>")[0]
        assert len(secret) == 64
        assert f"Webhook added for {receiver.url}" in text(added)
        # Shown once: the list does not show it again.
        assert secret not in client.get("/ui/webhooks/").text

        process(engine, occurrence(tenant.project.id, "fp-1"))
        WebhookDispatcher(stack, background=False).run_once(engine, T0 + SETTLE * 2)
        assert [b["text"].split(":")[0] for b in receiver.bodies()] == ["*New issue* in org-a/web"]
        tested = client.post(f"/ui/webhooks/{hook['id']}/test")
        assert tested.status_code == 200
        assert "Test notification delivered (HTTP 200)." in text(tested)
        assert receiver.bodies()[-1]["text"].startswith("*Test notification* in org-a/web")

    listing = client.get("/ui/webhooks/")
    assert "1 delivered · 0 pending · 0 failed" in text(listing)
    deliveries = client.get(f"/ui/webhooks/{hook['id']}/")
    assert deliveries.status_code == 200
    row = text(deliveries)
    assert "created delivered 1 HTTP 200" in row
    # The receiver is gone: a test says so on the page, and records nothing.
    assert "Send a test notification" in row
    tested = client.post(f"/ui/webhooks/{hook['id']}/test")
    assert tested.status_code == 200
    assert "Test notification not delivered: URLError:" in text(tested)
    assert "Connection refused" in text(tested)
    assert text(tested).count("delivered 1 HTTP 200") == 1  # the one real delivery only

    forged = client.post(
        f"/ui/webhooks/{hook['id']}/remove", headers={"Origin": "https://evil.example"}
    )
    assert forged.status_code == 403
    assert len(api_webhooks(server, tenant)) == 1
    removed = client.post(f"/ui/webhooks/{hook['id']}/remove")
    assert removed.status_code == 303
    after = client.get(removed.headers["location"])
    assert "Webhook removed: it is sent nothing more." in text(after)
    assert api_webhooks(server, tenant) == []
    assert client.get(f"/ui/webhooks/{hook['id']}/").status_code == 404


def test_a_token_that_may_not_see_webhooks_is_shown_why(
    server: str, tenant: Tenant, engine: Engine
) -> None:
    client = browser(server)
    client.post("/ui/login", data={"token": make_token(engine, tenant.org, ["org:read"])})
    for refused in (
        client.get("/ui/webhooks/"),
        client.post("/ui/webhooks/add", data={"url": "https://hooks.example.com/"}),
    ):
        assert refused.status_code == 403
        assert "this token lacks the org:write or org:admin scope" in text(refused)
