"""`GET /api/0/projects/{org}/{project}/events/` on both backends, through a real server
socket: a project's events newest first by their own time, across its issues, filtered,
paged, refused as Sentry would; and `sentry-cli events list` reading it."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import Engine

from tests.issues.occurrences import event_payload, later, occurrence, process
from tests.support.sentry_cli import run_with_token
from tests.support.tenants import bearer, make_tenant, make_token
from vigil.tenancy import store

EVENTS = "/api/0/projects/acme/app/events/"


def get(server: str, token: str, path: str = EVENTS, **params: Any) -> httpx.Response:
    return httpx.get(server + path, headers=bearer(token), params=params, timeout=60)


def stored(
    engine: Engine,
    project_id: int,
    fingerprint: str,
    minutes: float,
    *,
    arrived: float,
    **event: Any,
) -> str:
    """An occurrence with its event at T0 + `minutes`, processed at T0 + `arrived`; the
    event's id."""
    payload = occurrence(project_id, fingerprint, at=later(minutes))
    payload["event"] = event_payload(project_id, payload["event_id"], later(minutes), **event)
    process(engine, payload, now=later(arrived))
    return str(payload["event_id"])


def test_a_projects_events_newest_first_across_its_issues(server: str, engine: Engine) -> None:
    tenant = make_tenant(engine, "acme")
    pid = tenant.project.id
    # Arrival order differs from the events' own order; two issues; another project.
    late = stored(engine, pid, "a", 1, arrived=9, environment="staging")
    newest = stored(engine, pid, "b", 5, arrived=6, environment="production", user={"id": "u-1"})
    middle = stored(engine, pid, "a", 3, arrived=7, environment="production")
    with engine.begin() as conn:
        other = store.create_project(conn, tenant.org, "other")
    stored(engine, other.id, "a", 4, arrived=8)

    answer = get(server, tenant.token)
    assert answer.status_code == 200, answer.text
    events = answer.json()
    assert [e["eventID"] for e in events] == [newest, middle, late]
    assert [e["dateCreated"] for e in events] == [
        "2026-03-01T12:05:00Z",
        "2026-03-01T12:03:00Z",
        "2026-03-01T12:01:00Z",
    ]
    first = events[0]
    assert first["user"] == {"id": "u-1"}
    assert first["title"] == "Something broke"
    assert first["projectID"] == str(pid)
    assert {"key": "environment", "value": "production"} in first["tags"]
    assert events[1]["groupID"] == events[2]["groupID"] != first["groupID"]

    production = get(server, tenant.token, environment="production").json()
    assert [e["eventID"] for e in production] == [newest, middle]
    window = get(server, tenant.token, start="2026-03-01T12:02:00Z", end="2026-03-01T12:04:00Z")
    assert [e["eventID"] for e in window.json()] == [middle]
    page = get(server, tenant.token, per_page="2")
    assert [e["eventID"] for e in page.json()] == [newest, middle]
    assert 'rel="next"; results="true"; cursor="0:2:0"' in page.headers["Link"]
    rest = get(server, tenant.token, per_page="2", cursor="0:2:0").json()
    assert [e["eventID"] for e in rest] == [late]
    assert get(server, tenant.token, path="/api/0/projects/acme/other/events/").json()[0][
        "projectID"
    ] == str(other.id)


def test_what_the_events_list_refuses(server: str, engine: Engine) -> None:
    tenant = make_tenant(engine, "acme")
    make_tenant(engine, "globex", "app")
    searched = get(server, tenant.token, query="database")
    assert searched.status_code == 400
    assert searched.json()["query"] == ["searching a project's events is not supported"]
    assert get(server, tenant.token, statsPeriod="forever").status_code == 400
    assert get(server, tenant.token, per_page="0").status_code == 400
    missing = get(server, tenant.token, path="/api/0/projects/acme/nope/events/")
    assert missing.status_code == 404
    foreign = get(server, tenant.token, path="/api/0/projects/globex/app/events/")
    assert foreign.status_code == 403, foreign.text  # a token of acme's
    assert httpx.get(server + EVENTS).status_code == 401
    reader = make_token(engine, tenant.org, ["event:read"])
    assert get(server, reader).json() == []


def test_sentry_cli_events_list(server: str, engine: Engine) -> None:
    tenant = make_tenant(engine, "acme")
    pid = tenant.project.id
    older = stored(engine, pid, "a", 1, arrived=1, tags={"region": "eu"})
    newer = stored(engine, pid, "b", 2, arrived=2, user={"username": "ada"})
    listed = run_with_token(
        server, tenant.token, "acme", "app", "events", "list", "--show-tags", "--show-user"
    )
    assert listed.returncode == 0, listed.stderr
    lines = [line for line in listed.stdout.splitlines() if "2026-03-01" in line]
    # sentry-cli prints event ids as hyphenated UUIDs, in the order served
    assert [line.split("|")[1].strip().replace("-", "") for line in lines] == [newer, older]
    assert "Username: ada" in lines[0]
    assert "region: eu" in listed.stdout  # a tag per line, under its event
