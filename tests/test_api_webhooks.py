"""The webhooks REST API through a real server socket, on both backends: adding one (its
secret shown once), listing them with their deliveries by status, a webhook's
deliveries, a test notification, removing one; the answers to bad bodies, unknown ids
and projects, and tokens without the scope. And `vigil webhook`, the same from the
command line."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import Engine

from tests.conftest import run_vigil
from tests.issues.occurrences import T0, occurrence, process
from tests.support.services import free_port
from tests.support.tenants import Tenant, bearer, make_tenant, make_token
from tests.support.webhook_receiver import webhook_receiver
from vigil.config import Settings
from vigil.webhooks.dispatcher import SETTLE, WebhookDispatcher
from vigil.webhooks.payloads import signature

PATH = "/api/0/organizations/{org}/webhooks/"


def call(
    method: str, server: str, tenant: Tenant, path: str = "", body: Any = None, token: str = ""
) -> httpx.Response:
    return httpx.request(
        method,
        server + PATH.format(org=tenant.org.slug) + path,
        json=body,
        headers=bearer(token or tenant.token),
        timeout=60,
    )


def test_add_list_deliveries_and_remove(stack: Settings, engine: Engine, server: str) -> None:
    tenant = make_tenant(engine, "acme")
    with webhook_receiver() as receiver:
        answer = call(
            "POST", server, tenant, body={"url": receiver.url, "project": "app", "format": "slack"}
        )
        assert answer.status_code == 201, answer.text
        created = answer.json()
        assert len(created["secret"]) == 64
        assert created["url"] == receiver.url
        assert created["project"] == "app"
        assert created["format"] == "slack"
        assert created["actions"] == ["created", "resolved", "unresolved", "archived"]
        assert created["deliveries"] == {"pending": 0, "delivered": 0, "failed": 0}
        assert (created["lastError"], created["lastErrorDate"]) == (None, None)

        process(engine, occurrence(tenant.project.id, "fp-1"))
        receiver.answer_next(500)
        WebhookDispatcher(stack, background=False).run_once(engine, T0 + SETTLE * 2)

        [listed] = call("GET", server, tenant).json()
        assert "secret" not in listed
        assert listed["id"] == created["id"]
        assert listed["deliveries"] == {"pending": 1, "delivered": 0, "failed": 0}
        assert listed["lastError"] == "HTTP 500: no thanks"
        assert listed["lastErrorDate"] is not None
        [pending] = call("GET", server, tenant, f"{created['id']}/deliveries/").json()
        assert pending["action"] == "created"
        assert pending["status"] == "pending"
        assert pending["attempts"] == 1
        assert pending["responseCode"] == 500
        assert pending["nextAttemptAt"] is not None
        assert pending["dateDone"] is None

    assert call("DELETE", server, tenant, f"{created['id']}/").status_code == 204
    assert call("GET", server, tenant).json() == []
    gone = call("GET", server, tenant, f"{created['id']}/deliveries/")
    assert gone.status_code == 404
    assert call("DELETE", server, tenant, f"{created['id']}/").status_code == 404


def test_bad_bodies_unknown_projects_and_scopes(engine: Engine, server: str) -> None:
    tenant = make_tenant(engine, "acme")
    other = make_tenant(engine, "other")
    for body, status, detail in [
        ({}, 400, "url is required"),
        ({"url": 5}, 400, "url must be a string"),
        ({"url": "file:///etc/passwd"}, 400, "url: an http:// or https:// URL with a host"),
        ({"url": "mailto:nobody"}, 400, "url: 'nobody' is not an email address"),
        ({"url": "http://h/", "actions": "created"}, 400, "actions must be a non-empty list"),
        ({"url": "http://h/", "actions": ["deleted"]}, 400, "actions: unknown deleted"),
        ({"url": "http://h/", "format": "teams"}, 400, "format: one of sentry, slack, email"),
        ({"url": "http://h/", "project": "nope"}, 404, "nope"),
        ({"url": "mailto:ops@example.com"}, 400, "email needs an SMTP relay"),
    ]:
        answer = call("POST", server, tenant, body=body)
        assert answer.status_code == status, (body, answer.text)
        assert detail in answer.json()["detail"]
    not_json = httpx.post(
        server + PATH.format(org="acme"), content=b"[1]", headers=bearer(tenant.token)
    )
    assert not_json.status_code == 400

    # A token that may read issues may not read webhooks: their URLs are secrets too.
    reader = make_token(engine, tenant.org, ["org:read", "project:read", "event:read"])
    for method, body in (("GET", None), ("POST", {"url": "http://h/"})):
        refused = call(method, server, tenant, body=body, token=reader)
        assert refused.status_code == 403
        assert "org:write" in refused.json()["detail"]
    # Another organization's token, and another organization's webhook id.
    assert call("GET", server, tenant, token=other.token).status_code == 403
    theirs = call("POST", server, other, body={"url": "http://h/"}).json()
    assert call("DELETE", server, tenant, f"{theirs['id']}/").status_code == 404
    assert call("GET", server, tenant, "99999999999999999999999/deliveries/").status_code == 404


def test_the_webhook_command(stack: Settings, engine: Engine) -> None:
    make_tenant(engine, "acme")
    added = run_vigil(
        stack, "webhook", "add", "https://hooks.example.com/x", "--org", "acme",
        "--project", "app", "--on", "created", "--on", "resolved",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert "webhook 1 for acme/app: https://hooks.example.com/x" in added.stdout
    assert "on created, resolved" in added.stdout
    assert "signing secret (Sentry-Hook-Signature): " in added.stdout

    listed = run_vigil(stack, "webhook", "list", "--org", "acme")
    assert listed.returncode == 0, listed.stderr
    [line] = listed.stdout.splitlines()
    assert line.startswith("1\tapp\tsentry\thttps://hooks.example.com/x\tcreated,resolved\t")
    assert "pending 0 delivered 0 failed 0" in line

    refused = run_vigil(stack, "webhook", "add", "hooks.example.com", "--org", "acme")
    assert refused.returncode == 1
    assert "url: an http:// or https:// URL with a host" in refused.stderr
    missing = run_vigil(stack, "webhook", "remove", "--org", "acme")
    assert (missing.returncode, missing.stderr.strip()) == (
        1,
        "vigil: webhook remove needs the webhook id",
    )
    removed = run_vigil(stack, "webhook", "remove", "1", "--org", "acme")
    assert removed.returncode == 0, removed.stderr
    assert run_vigil(stack, "webhook", "list", "--org", "acme").stdout == ""
    again = run_vigil(stack, "webhook", "remove", "1", "--org", "acme")
    assert again.returncode == 1
    assert "webhook '1' does not exist in acme" in again.stderr


def test_send_a_test_notification(engine: Engine, server: str) -> None:
    tenant = make_tenant(engine, "acme")
    with webhook_receiver() as receiver:
        created = call("POST", server, tenant, body={"url": receiver.url}).json()
        slack = call("POST", server, tenant, body={"url": receiver.url, "format": "slack"}).json()
        answer = call("POST", server, tenant, f"{created['id']}/test/")
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"delivered": True, "responseCode": 200, "error": None}
        [got] = receiver.received
        body = got.json()
        # Signed as every delivery is, with an action a receiver can tell from a change.
        assert got.headers["sentry-hook-signature"] == signature(created["secret"], got.body)
        assert got.headers["sentry-hook-resource"] == "issue"
        assert body["action"] == "test"
        issue = body["data"]["issue"]
        assert issue["title"] == "Test notification from vigil: this webhook works"
        assert (issue["id"], issue["shortId"], issue["count"]) == ("0", "APP-0", "0")
        assert (issue["issueCategory"], issue["status"]) == ("cron", "unresolved")
        assert issue["project"] == {"id": str(tenant.project.id), "slug": "app", "name": "app"}
        assert issue["web_url"].endswith(f"/ui/webhooks/{created['id']}/")

        receiver.answer_next(500)
        failed = call("POST", server, tenant, f"{created['id']}/test/").json()
        assert failed == {"delivered": False, "responseCode": 500, "error": "HTTP 500: no thanks"}
        call("POST", server, tenant, f"{slack['id']}/test/")
        assert receiver.bodies()[-1]["text"].startswith("*Test notification* in acme/app: <http")
    # A test is no delivery: nothing recorded, nothing counted.
    assert call("GET", server, tenant, f"{created['id']}/deliveries/").json() == []
    [listed, _] = call("GET", server, tenant).json()
    assert listed["deliveries"] == {"pending": 0, "delivered": 0, "failed": 0}
    assert listed["lastError"] is None

    nobody = call("POST", server, tenant, body={"url": f"http://127.0.0.1:{free_port()}/"})
    unreachable = call("POST", server, tenant, f"{nobody.json()['id']}/test/").json()
    assert unreachable["delivered"] is False
    assert unreachable["responseCode"] is None
    assert "Connection refused" in unreachable["error"]

    reader = make_token(engine, tenant.org, ["org:read", "project:read", "event:read"])
    refused = call("POST", server, tenant, f"{created['id']}/test/", token=reader)
    assert refused.status_code == 403
    assert call("POST", server, tenant, "999999/test/").status_code == 404


def test_the_webhook_command_sends_a_test(stack: Settings, engine: Engine) -> None:
    make_tenant(engine, "acme")
    with webhook_receiver() as receiver:
        assert run_vigil(stack, "webhook", "add", receiver.url, "--org", "acme").returncode == 0
        sent = run_vigil(stack, "webhook", "test", "1", "--org", "acme")
        assert sent.returncode == 0, sent.stderr
        assert sent.stdout.splitlines() == [
            f"sending a test notification to {receiver.url} …",
            "delivered (HTTP 200)",
        ]
        assert receiver.bodies()[0]["action"] == "test"
        receiver.answer_next(404)
        refused = run_vigil(stack, "webhook", "test", "1", "--org", "acme")
        assert refused.returncode == 1
        assert refused.stderr.strip() == "vigil: not delivered: HTTP 404: no thanks"
    missing = run_vigil(stack, "webhook", "test", "--org", "acme")
    assert missing.stderr.strip() == "vigil: webhook test needs the webhook id"
