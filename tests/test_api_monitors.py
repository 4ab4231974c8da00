"""The monitors API (`/api/0/organizations/{org}/monitors/...` and the project-scoped
paths) through a real server on both backends: create, list, get, update, mute,
disable, delete, the 400s with their fields, auth, and pagination."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, func, select, update

from tests.support.checkins import Sender
from tests.support.live_server import live_server
from tests.support.tenants import Tenant, bearer, make_tenant, make_token
from vigil.api.app import create_app
from vigil.config import Settings
from vigil.db.tables import monitor as monitor_table
from vigil.db.tables import monitor_environment as me_table
from vigil.monitors import store as monitor_store
from vigil.monitors.checkin_processing import CheckinProcessing
from vigil.monitors.enums import MonitorStatus
from vigil.tenancy import store

MONITORS = "/api/0/organizations/org-a/monitors/"
CRONTAB = {"schedule_type": "crontab", "schedule": "0 * * * *"}


@pytest.fixture
def tenant(engine: Engine) -> Tenant:
    return make_tenant(engine, "org-a", "web")


def call(method: str, server: str, path: str, token: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(method, server + path, headers=bearer(token), timeout=60, **kwargs)


def create(server: str, tenant: Tenant, **body: Any) -> httpx.Response:
    payload = {"project": tenant.project.slug, "name": "Nightly job", "config": CRONTAB, **body}
    return call("POST", server, MONITORS, tenant.token, json=payload)


def add_environment(engine: Engine, tenant: Tenant, slug: str, name: str) -> None:
    with engine.begin() as conn:
        monitor = monitor_store.get_monitor(conn, tenant.project.id, slug)
        assert monitor is not None
        monitor_store.ensure_environment(conn, tenant.project, monitor, name, 10)


def test_post_creates_a_monitor_in_sentrys_shape(
    server: str, tenant: Tenant, engine: Engine
) -> None:
    before = datetime.now(UTC)
    response = create(server, tenant, config={**CRONTAB, "checkin_margin": 5})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body == {
        "id": body["id"],
        "slug": "nightly-job",
        "name": "Nightly job",
        "status": "active",
        "isMuted": False,
        "config": {
            "schedule_type": "crontab",
            "schedule": "0 * * * *",
            "checkin_margin": 5,
            "max_runtime": None,
            "failure_issue_threshold": None,
            "recovery_threshold": None,
            "timezone": "UTC",
        },
        "project": {"id": str(tenant.project.id), "slug": "web"},
        "owner": None,
        "dateCreated": body["dateCreated"],
        "environments": [],
    }
    created = datetime.fromisoformat(body["dateCreated"].replace("Z", "+00:00"))
    assert before <= created <= datetime.now(UTC)
    with engine.connect() as conn:
        row = conn.execute(select(monitor_table)).one()
    assert str(row.guid) == body["id"]
    assert row.config["schedule_type"] == 1


def test_post_takes_a_project_id_slug_and_interval(server: str, tenant: Tenant) -> None:
    response = create(
        server,
        tenant,
        project=tenant.project.id,
        slug="my-slug",
        config={
            "schedule_type": "interval",
            "schedule": [10, "minute"],
            "timezone": "Europe/Paris",
        },
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["slug"] == "my-slug"
    assert body["config"]["schedule_type"] == "interval"
    assert body["config"]["schedule"] == [10, "minute"]
    assert body["config"]["timezone"] == "Europe/Paris"


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        (
            {"config": {"schedule_type": "crontab"}},
            {"config": {"schedule": ["This field is required."]}},
        ),
        (
            {"config": {"schedule_type": "weekly", "schedule": "@daily"}},
            {"config": {"schedule_type": ['"weekly" is not a valid choice.']}},
        ),
        ({"name": ""}, {"name": ["This field may not be blank."]}),
        (
            {"slug": "Not A Slug"},
            {
                "slug": [
                    "Invalid monitor slug. It must contain only lowercase letters, numbers, "
                    "underscores or hyphens."
                ]
            },
        ),
        ({"project": "nope"}, {"project": ["Invalid project"]}),
        ({"project": None}, {"project": ["This field is required."]}),
        # Past 64 bits the JSON integer arrives as a float: not a project, but given.
        ({"project": 10**23}, {"project": ["Invalid project"]}),
    ],
)
def test_post_answers_400_naming_the_field(
    server: str, tenant: Tenant, engine: Engine, body: dict[str, Any], errors: dict[str, Any]
) -> None:
    response = create(server, tenant, **body)
    assert response.status_code == 400
    answer = response.json()
    assert isinstance(answer.pop("detail"), str)
    assert answer == errors
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(monitor_table)).scalar_one() == 0


def test_post_refuses_a_slug_in_use(server: str, tenant: Tenant) -> None:
    assert create(server, tenant).status_code == 201
    response = create(server, tenant)
    assert response.status_code == 400
    assert response.json()["slug"] == ['The slug "nightly-job" is already in use.']


def test_post_refuses_past_the_organization_monitor_limit(stack: Settings, tenant: Tenant) -> None:
    limited = replace(stack, max_monitors_per_org=1)
    with live_server(create_app(limited)) as server:
        assert create(server, tenant, slug="one").status_code == 201
        response = create(server, tenant, slug="two")
    assert response.status_code == 400
    assert response.json()["nonFieldErrors"] == ["You may not exceed 1 monitors per organization"]
    assert response.json()["detail"] == "You may not exceed 1 monitors per organization"


def test_get_shows_environments(server: str, tenant: Tenant, engine: Engine) -> None:
    create(server, tenant, slug="job")
    add_environment(engine, tenant, "job", "production")
    add_environment(engine, tenant, "job", "dev")
    for path in (MONITORS + "job/", "/api/0/projects/org-a/web/monitors/job/"):
        response = call("GET", server, path, tenant.token)
        assert response.status_code == 200
        environments = response.json()["environments"]
        assert [e["name"] for e in environments] == ["dev", "production"]
        assert environments[0] == {
            "name": "dev",
            "status": MonitorStatus.ACTIVE.label,
            "isMuted": False,
            "lastCheckIn": None,
            "nextCheckIn": None,
            "nextCheckInLatest": None,
            "dateCreated": environments[0]["dateCreated"],
        }


def test_get_of_an_unknown_monitor_is_404(server: str, tenant: Tenant) -> None:
    assert call("GET", server, MONITORS + "nope/", tenant.token).status_code == 404
    create(server, tenant, slug="job")
    other = "/api/0/projects/org-a/other/monitors/job/"
    assert call("GET", server, other, tenant.token).status_code == 404


def test_put_updates_name_slug_and_merges_config(server: str, tenant: Tenant) -> None:
    create(server, tenant, slug="job", config={**CRONTAB, "max_runtime": 30})
    response = call(
        "PUT",
        server,
        MONITORS + "job/",
        tenant.token,
        json={"name": "Renamed", "slug": "renamed", "config": {"checkin_margin": 3}},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["name"], body["slug"]) == ("Renamed", "renamed")
    assert body["config"]["schedule"] == "0 * * * *"
    assert body["config"]["max_runtime"] == 30
    assert body["config"]["checkin_margin"] == 3
    assert call("GET", server, MONITORS + "renamed/", tenant.token).json() == body


def test_put_with_an_invalid_config_is_400_and_changes_nothing(server: str, tenant: Tenant) -> None:
    before = create(server, tenant, slug="job").json()
    response = call(
        "PUT",
        server,
        MONITORS + "job/",
        tenant.token,
        json={"name": "x", "config": {"schedule": "* * * * * *"}},
    )
    assert response.status_code == 400
    assert response.json()["config"] == {"schedule": ["Only 5 field crontab syntax is supported"]}
    assert call("GET", server, MONITORS + "job/", tenant.token).json() == before


def test_put_refuses_what_it_cannot_change(server: str, tenant: Tenant, engine: Engine) -> None:
    with engine.begin() as conn:
        store.create_project(conn, tenant.org, "api")
    assert create(server, tenant, name="Nightly", slug="nightly").status_code == 201
    path = MONITORS + "nightly/"
    moved = call("PUT", server, path, tenant.token, json={"project": "api"})
    assert moved.status_code == 400
    assert moved.json()["project"] == ["moving a monitor to another project is not supported"]
    owned = call("PUT", server, path, tenant.token, json={"owner": "user:1"})
    assert owned.status_code == 400
    assert owned.json()["owner"] == ["vigil has no users or teams: a monitor has no owner"]
    # Naming its own project, or no owner, changes nothing and is fine.
    same = call("PUT", server, path, tenant.token, json={"project": "web", "owner": None})
    assert same.status_code == 200, same.text
    assert same.json()["project"]["slug"] == "web"


def test_put_mutes_the_monitor_and_its_environments(
    server: str, tenant: Tenant, engine: Engine
) -> None:
    create(server, tenant, slug="job")
    add_environment(engine, tenant, "job", "production")
    path = "/api/0/projects/org-a/web/monitors/job/"
    body = call("PUT", server, path, tenant.token, json={"isMuted": True}).json()
    assert body["isMuted"] is True
    assert [e["isMuted"] for e in body["environments"]] == [True]
    # An environment made while the monitor is muted (by a check-in) is muted too.
    add_environment(engine, tenant, "job", "staging")
    body = call("GET", server, path, tenant.token).json()
    assert body["isMuted"] is True
    assert [e["isMuted"] for e in body["environments"]] == [True, True]
    body = call("PUT", server, path, tenant.token, json={"isMuted": False}).json()
    assert body["isMuted"] is False
    assert [e["isMuted"] for e in body["environments"]] == [False, False]


def test_put_disables_and_enables(server: str, tenant: Tenant) -> None:
    create(server, tenant, slug="job")
    path = MONITORS + "job/"
    assert (
        call("PUT", server, path, tenant.token, json={"status": "disabled"}).json()["status"]
        == "disabled"
    )
    assert (
        call("PUT", server, path, tenant.token, json={"status": "active"}).json()["status"]
        == "active"
    )
    response = call("PUT", server, path, tenant.token, json={"status": "paused"})
    assert response.status_code == 400
    assert response.json()["status"] == ['"paused" is not a valid choice.']


def test_delete_removes_the_monitor_and_answers_202(
    server: str, tenant: Tenant, engine: Engine
) -> None:
    create(server, tenant, slug="job")
    add_environment(engine, tenant, "job", "production")
    response = call("DELETE", server, MONITORS + "job/", tenant.token)
    assert response.status_code == 202
    assert call("GET", server, MONITORS + "job/", tenant.token).status_code == 404
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(monitor_table)).scalar_one() == 0


def test_list_filters_by_project_and_paginates_with_a_link_header(
    server: str, tenant: Tenant, engine: Engine
) -> None:
    with engine.begin() as conn:
        store.create_project(conn, tenant.org, "api")
    for i in range(5):
        assert create(server, tenant, name=f"job {i}").status_code == 201
    assert create(server, tenant, project="api", name="api job").status_code == 201

    everything = call("GET", server, MONITORS, tenant.token).json()
    assert [m["name"] for m in everything] == ["api job"] + [f"job {i}" for i in range(5)]
    only_web = call("GET", server, MONITORS, tenant.token, params={"project": "web"}).json()
    assert [m["name"] for m in only_web] == [f"job {i}" for i in range(5)]

    seen: list[str] = []
    params: dict[str, str] = {"project": "web", "per_page": "2"}
    pages = 0
    while True:
        response = call("GET", server, MONITORS, tenant.token, params=params)
        assert response.status_code == 200
        seen += [m["name"] for m in response.json()]
        pages += 1
        links = httpx.Response(200, headers={"Link": response.headers["link"]}).links
        assert links["previous"]["results"] == ("true" if pages > 1 else "false")
        if links["next"]["results"] == "false":
            break
        params = {"project": "web", "per_page": "2", "cursor": links["next"]["cursor"]}
        assert "project=web" in links["next"]["url"]
    assert seen == [f"job {i}" for i in range(5)]
    assert pages == 3


def test_list_takes_every_project_and_a_query(server: str, tenant: Tenant, engine: Engine) -> None:
    with engine.begin() as conn:
        store.create_project(conn, tenant.org, "api")
    assert create(server, tenant, name="Nightly Backup").status_code == 201
    assert create(server, tenant, name="Hourly sync", slug="sync-backups").status_code == 201
    assert create(server, tenant, project="api", name="Cleanup").status_code == 201

    def names(**params: str) -> list[str]:
        response = call("GET", server, MONITORS, tenant.token, params=params)
        assert response.status_code == 200, response.text
        return sorted(m["name"] for m in response.json())

    assert names(project="-1") == ["Cleanup", "Hourly sync", "Nightly Backup"]
    # each word in the name or the slug, in any case
    assert names(query="BACKUP") == ["Hourly sync", "Nightly Backup"]
    assert names(query="backup nightly") == ["Nightly Backup"]
    assert names(query="backup", project="api") == []
    assert names(query="nothing-like-it") == []


def test_list_shows_failing_monitors_first_as_sentry_sorts(
    server: str, tenant: Tenant, engine: Engine
) -> None:
    for slug in ("a-ok", "b-new", "c-failing"):
        assert create(server, tenant, slug=slug, name=slug).status_code == 201
    for slug, status in (("a-ok", MonitorStatus.OK), ("c-failing", MonitorStatus.ERROR)):
        add_environment(engine, tenant, slug, "production")
        with engine.begin() as conn:
            monitor = monitor_store.get_monitor(conn, tenant.project.id, slug)
            assert monitor is not None
            changed = update(me_table).where(me_table.c.monitor_id == monitor.id)
            conn.execute(changed.values(status=int(status)))

    def slugs(**params: str) -> list[str]:
        response = call("GET", server, MONITORS, tenant.token, params=params)
        assert response.status_code == 200, response.text
        return [m["slug"] for m in response.json()]

    assert slugs() == ["c-failing", "a-ok", "b-new"]  # sort=status, the default
    assert slugs(sort="status", asc="0") == ["b-new", "a-ok", "c-failing"]
    assert slugs(sort="name") == ["a-ok", "b-new", "c-failing"]
    assert slugs(sort="name", per_page="1", query="new") == ["b-new"]
    refused = call("GET", server, MONITORS, tenant.token, params={"sort": "date"})
    assert refused.status_code == 400
    assert refused.json()["sort"] == ["Unknown sort 'date': one of status, name, muted"]


def test_list_and_detail_show_only_the_environments_asked_for(
    server: str, tenant: Tenant, engine: Engine
) -> None:
    for slug in ("both", "prod-only", "none"):
        assert create(server, tenant, slug=slug, name=slug).status_code == 201
    with engine.begin() as conn:
        for slug, names in (("both", ["production", "staging"]), ("prod-only", ["production"])):
            monitor = monitor_store.get_organization_monitor(conn, tenant.org.id, slug)
            assert monitor is not None
            for name in names:
                monitor_store.ensure_environment(conn, tenant.project, monitor, name, 10)

    def listed(*environments: str) -> dict[str, list[str]]:
        params = [("environment", e) for e in environments]
        response = call("GET", server, MONITORS, tenant.token, params=params)
        assert response.status_code == 200, response.text
        return {m["slug"]: [e["name"] for e in m["environments"]] for m in response.json()}

    assert listed() == {"both": ["production", "staging"], "none": [], "prod-only": ["production"]}
    assert listed("staging") == {"both": ["staging"]}
    assert listed("staging", "production") == {
        "both": ["production", "staging"],
        "prod-only": ["production"],
    }
    assert listed("qa") == {}
    detail = call(
        "GET", server, f"{MONITORS}both/", tenant.token, params={"environment": "staging"}
    ).json()
    assert [e["name"] for e in detail["environments"]] == ["staging"]


def test_another_organizations_token_is_403(server: str, tenant: Tenant, engine: Engine) -> None:
    create(server, tenant, slug="job")
    other = make_tenant(engine, "org-b")
    for method, path in [
        ("GET", MONITORS),
        ("POST", MONITORS),
        ("GET", MONITORS + "job/"),
        ("PUT", MONITORS + "job/"),
        ("DELETE", MONITORS + "job/"),
        ("GET", MONITORS + "job/checkins/"),
        ("GET", MONITORS + "job/processing-errors/"),
    ]:
        response = call(method, server, path, other.token, json={})
        assert response.status_code == 403, (method, path)
        assert response.json() == {"detail": "this token has no access to organization 'org-a'"}


def test_a_read_token_cannot_write(server: str, tenant: Tenant, engine: Engine) -> None:
    create(server, tenant, slug="job")
    reader = make_token(engine, tenant.org, ["org:read"])
    assert call("GET", server, MONITORS + "job/", reader).status_code == 200
    response = call("PUT", server, MONITORS + "job/", reader, json={"name": "x"})
    assert response.status_code == 403
    assert response.json() == {"detail": "this token lacks the org:write or project:write scope"}
    assert call("DELETE", server, MONITORS + "job/", reader).status_code == 403
    nothing = make_token(engine, tenant.org, ["event:read"])
    assert call("GET", server, MONITORS, nothing).status_code == 403


def test_no_token_is_401(server: str, tenant: Tenant) -> None:
    assert httpx.get(server + MONITORS, timeout=60).status_code == 401


def test_put_mutes_one_environment_and_the_monitor_when_all_are(
    server: str, tenant: Tenant, engine: Engine
) -> None:
    create(server, tenant, slug="job")
    add_environment(engine, tenant, "job", "production")
    add_environment(engine, tenant, "job", "staging")
    path = MONITORS + "job/environments/"

    def muted(body: dict[str, Any]) -> tuple[bool, dict[str, bool]]:
        return body["isMuted"], {e["name"]: e["isMuted"] for e in body["environments"]}

    answer = call("PUT", server, path + "staging/", tenant.token, json={"isMuted": True})
    assert answer.status_code == 200, answer.text
    assert muted(answer.json()) == (False, {"production": False, "staging": True})
    project_path = "/api/0/projects/org-a/web/monitors/job/environments/production/"
    answer = call("PUT", server, project_path, tenant.token, json={"isMuted": True})
    assert muted(answer.json()) == (True, {"production": True, "staging": True})
    answer = call("PUT", server, path + "staging/", tenant.token, json={"isMuted": False})
    assert muted(answer.json()) == (False, {"production": True, "staging": False})
    # as stored, for the consumer and the clock
    with engine.connect() as conn:
        monitor = monitor_store.get_monitor(conn, tenant.project.id, "job")
        assert monitor is not None and not monitor.is_muted
        envs = monitor_store.list_monitor_environments(conn, [monitor.id])
    assert {e.environment: e.is_muted for e in envs} == {"production": True, "staging": False}


def test_environment_refusals(server: str, tenant: Tenant, engine: Engine) -> None:
    create(server, tenant, slug="job")
    add_environment(engine, tenant, "job", "production")
    path = MONITORS + "job/environments/production/"
    bad = call("PUT", server, path, tenant.token, json={"isMuted": "yes"})
    assert (bad.status_code, bad.json()["isMuted"]) == (400, ["Must be a valid boolean."])
    missing = call("PUT", server, MONITORS + "job/environments/dev/", tenant.token, json={})
    assert missing.status_code == 404
    assert "no environment 'dev'" in missing.json()["detail"]
    assert call("DELETE", server, MONITORS + "job/environments/dev/", tenant.token).status_code == (
        404
    )
    unknown = call("PUT", server, MONITORS + "nope/environments/production/", tenant.token)
    assert unknown.status_code == 404
    reader = make_token(engine, tenant.org, ["org:read"])
    assert call("PUT", server, path, reader, json={"isMuted": True}).status_code == 403
    assert call("DELETE", server, path, reader).status_code == 403


def test_delete_removes_one_environment_with_its_check_ins(
    server: str, tenant: Tenant, engine: Engine
) -> None:
    send = Sender(engine, tenant.project, CheckinProcessing())
    daily = {"schedule": {"type": "crontab", "value": "0 3 * * *"}}
    send(monitor_slug="job", environment="production", monitor_config=daily)
    send(monitor_slug="job", environment="staging", monitor_config=daily)
    answer = call("DELETE", server, MONITORS + "job/environments/staging/", tenant.token)
    assert answer.status_code == 202
    monitor = call("GET", server, MONITORS + "job/", tenant.token).json()
    assert [e["name"] for e in monitor["environments"]] == ["production"]
    checkins = call("GET", server, MONITORS + "job/checkins/", tenant.token).json()
    assert [c["environment"] for c in checkins] == ["production"]
