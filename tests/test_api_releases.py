"""The releases list (`GET /api/0/organizations/{org}/releases/` and the project's), on
both backends through a real server: the releases events named, newest first, with the
issues each first brought and its first and last event, per project; and the real
sentry-cli's `releases list` reading it."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from tests.issues.occurrences import event_payload, later, occurrence, process
from tests.support.sentry_cli import run_with_token
from tests.support.tenants import Tenant, make_tenant, make_token
from vigil.tenancy import store as tenancy


@pytest.fixture
def tenant(engine: Engine) -> Tenant:
    return make_tenant(engine, "org-a", "web")


def seen(engine: Engine, project_id: int, fingerprint: str, release: str, minutes: float) -> None:
    """An occurrence whose event names `release`, at T0 + `minutes`."""
    event_id = uuid.uuid4().hex
    at = later(minutes)
    event = event_payload(project_id, event_id, at, release=release, environment="prod")
    process(engine, occurrence(project_id, fingerprint, at=at, event=event, event_id=event_id))


def releases(server: str, token: str, path: str, **params: Any) -> list[dict[str, Any]]:
    answer = httpx.get(
        server + path, params=params, headers={"Authorization": f"Bearer {token}"}, timeout=60
    )
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()
    return found


def test_releases_newest_first_with_their_issues_and_events(
    server: str, tenant: Tenant, engine: Engine
) -> None:
    with engine.begin() as conn:
        api = tenancy.create_project(conn, tenant.org, "api")
    seen(engine, tenant.project.id, "a", "1.0", minutes=1)
    seen(engine, tenant.project.id, "b", "1.0", minutes=2)
    seen(engine, tenant.project.id, "a", "1.1", minutes=5)  # an issue 1.0 brought
    seen(engine, api.id, "c", "1.1", minutes=7)
    listed = releases(server, tenant.token, "/api/0/organizations/org-a/releases/")
    assert [r["version"] for r in listed] == ["1.1", "1.0"]
    newer, older = listed
    assert (older["newGroups"], newer["newGroups"]) == (2, 1)
    assert older["firstEvent"] == "2026-03-01T12:01:00Z"
    assert older["lastEvent"] == "2026-03-01T12:02:00Z"
    assert newer["lastEvent"] == "2026-03-01T12:07:00Z"
    assert older["dateReleased"] is None and older["shortVersion"] == "1.0"
    assert [(p["slug"], p["newGroups"]) for p in newer["projects"]] == [("api", 1), ("web", 0)]
    # one project's: its own issues and events only
    web = releases(server, tenant.token, "/api/0/projects/org-a/web/releases/")
    assert [(r["version"], r["newGroups"], r["lastEvent"]) for r in web] == [
        ("1.1", 0, "2026-03-01T12:05:00Z"),
        ("1.0", 2, "2026-03-01T12:02:00Z"),
    ]
    only_api = releases(server, tenant.token, "/api/0/organizations/org-a/releases/", project="api")
    assert [r["version"] for r in only_api] == ["1.1"]
    assert [
        r["version"]
        for r in releases(server, tenant.token, "/api/0/organizations/org-a/releases/", query="1.0")
    ] == ["1.0"]


def test_releases_pages_and_refusals(server: str, tenant: Tenant, engine: Engine) -> None:
    for i in range(3):
        seen(engine, tenant.project.id, f"fp-{i}", f"2.{i}", minutes=i)
    path = "/api/0/organizations/org-a/releases/"
    headers = {"Authorization": f"Bearer {tenant.token}"}
    first = httpx.get(server + path, params={"per_page": 2}, headers=headers)
    assert [r["version"] for r in first.json()] == ["2.2", "2.1"]
    assert 'rel="next"; results="true"' in first.headers["Link"]
    other = make_tenant(engine, "org-b", "web")
    assert (
        httpx.get(server + path, headers={"Authorization": f"Bearer {other.token}"}).status_code
        == 403
    )
    assert httpx.get(server + path).status_code == 401
    events_only = make_token(engine, tenant.org, ["event:read"])
    assert (
        httpx.get(server + path, headers={"Authorization": f"Bearer {events_only}"}).status_code
        == 403
    )
    missing = httpx.get(server + "/api/0/projects/org-a/nope/releases/", headers=headers)
    assert missing.status_code == 404
    assert releases(server, other.token, "/api/0/organizations/org-b/releases/") == []


def test_sentry_cli_lists_the_projects_releases(
    server: str, tenant: Tenant, engine: Engine
) -> None:
    seen(engine, tenant.project.id, "a", "backend@3.1.0", minutes=1)
    done = run_with_token(server, tenant.token, "org-a", "web", "releases", "list")
    assert done.returncode == 0, done.stderr
    [row] = [line for line in done.stdout.splitlines() if "backend@3.1.0" in line]
    assert "(unreleased)" in row and "| 1 " in row  # one new issue
