"""`GET .../monitors/{slug}/checkins/` through a real server on both backends: rows
written straight into `monitor_checkin` come back newest first, filtered by environment
and time range, paginated with a Link header, in Sentry's shape."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import Engine

from tests.support.tenants import Tenant, make_tenant
from vigil.db.tables import monitor_checkin as checkin_table
from vigil.monitors import store as monitor_store
from vigil.monitors.enums import CheckInStatus
from vigil.monitors.models import Monitor, MonitorEnvironment

CHECKINS = "/api/0/organizations/org-a/monitors/job/checkins/"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CONFIG = {"schedule_type": "crontab", "schedule": "0 * * * *"}


@pytest.fixture
def tenant(engine: Engine) -> Tenant:
    return make_tenant(engine, "org-a", "web")


@pytest.fixture
def monitor(engine: Engine, tenant: Tenant) -> Monitor:
    with engine.begin() as conn:
        ensured = monitor_store.ensure_monitor_with_config(
            conn, tenant.project, "job", CONFIG, monitor_store.no_owners, 10
        )
    assert ensured.monitor is not None
    return ensured.monitor


def environment(engine: Engine, tenant: Tenant, monitor: Monitor, name: str) -> MonitorEnvironment:
    with engine.begin() as conn:
        return monitor_store.ensure_environment(conn, tenant.project, monitor, name, 10)


def insert_checkin(
    engine: Engine,
    monitor: Monitor,
    env: MonitorEnvironment,
    at: datetime,
    status: CheckInStatus = CheckInStatus.OK,
) -> uuid.UUID:
    guid = uuid.uuid4()
    with engine.begin() as conn:
        conn.execute(
            checkin_table.insert().values(
                guid=guid,
                project_id=monitor.project_id,
                monitor_id=monitor.id,
                monitor_environment_id=env.id,
                status=int(status),
                duration=1500,
                date_added=at,
                date_updated=at + timedelta(seconds=2),
                expected_time=at.replace(minute=0),
                monitor_config={**CONFIG, "schedule_type": 1},
            )
        )
    return guid


def get(server: str, tenant: Tenant, params: object = None, path: str = CHECKINS) -> httpx.Response:
    return httpx.get(
        server + path,
        params=params,  # type: ignore[arg-type]
        headers={"Authorization": f"Bearer {tenant.token}"},
        timeout=60,
    )


def test_checkins_come_newest_first_in_sentrys_shape(
    server: str, engine: Engine, tenant: Tenant, monitor: Monitor
) -> None:
    prod = environment(engine, tenant, monitor, "production")
    old = insert_checkin(engine, monitor, prod, T0)
    new = insert_checkin(engine, monitor, prod, T0 + timedelta(minutes=5), CheckInStatus.ERROR)
    response = get(server, tenant)
    assert response.status_code == 200
    body = response.json()
    assert [c["id"] for c in body] == [str(new), str(old)]
    assert body[1] == {
        "id": str(old),
        "environment": "production",
        "status": "ok",
        "duration": 1500,
        "dateCreated": "2026-03-01T12:00:00Z",
        "dateUpdated": "2026-03-01T12:00:02Z",
        "expectedTime": "2026-03-01T12:00:00Z",
        "monitorConfig": {
            "schedule_type": "crontab",
            "schedule": "0 * * * *",
            "timezone": "UTC",
        },
    }
    assert body[0]["status"] == "error"
    project_path = "/api/0/projects/org-a/web/monitors/job/checkins/"
    assert get(server, tenant, path=project_path).json() == body


def test_checkins_filter_by_environment_and_time_range(
    server: str, engine: Engine, tenant: Tenant, monitor: Monitor
) -> None:
    prod = environment(engine, tenant, monitor, "production")
    dev = environment(engine, tenant, monitor, "dev")
    stage = environment(engine, tenant, monitor, "stage")
    p = insert_checkin(engine, monitor, prod, T0)
    d = insert_checkin(engine, monitor, dev, T0 + timedelta(minutes=1))
    insert_checkin(engine, monitor, stage, T0 + timedelta(minutes=2))
    late = insert_checkin(engine, monitor, prod, T0 + timedelta(hours=2))

    both = get(server, tenant, [("environment", "production"), ("environment", "dev")]).json()
    assert [c["id"] for c in both] == [str(late), str(d), str(p)]
    ranged = get(
        server,
        tenant,
        {
            "environment": "production",
            "start": "2026-03-01T11:00:00Z",
            "end": "2026-03-01T13:00:00Z",
        },
    ).json()
    assert [c["id"] for c in ranged] == [str(p)]
    bad = get(server, tenant, {"start": "yesterday"})
    assert bad.status_code == 400
    assert bad.json()["start"] == ["start must be an ISO 8601 date"]
    backwards = get(server, tenant, {"start": "2026-03-01T13:00:00Z", "end": "2026-03-01T11:00Z"})
    assert backwards.status_code == 400
    assert backwards.json()["start"] == ["start must be before end"]


def test_checkins_within_a_stats_period(
    server: str, engine: Engine, tenant: Tenant, monitor: Monitor
) -> None:
    prod = environment(engine, tenant, monitor, "production")
    now = datetime.now(UTC)
    insert_checkin(engine, monitor, prod, now - timedelta(hours=3))
    recent = insert_checkin(engine, monitor, prod, now - timedelta(minutes=10))
    assert [c["id"] for c in get(server, tenant, {"statsPeriod": "1h"}).json()] == [str(recent)]
    assert len(get(server, tenant, {"statsPeriod": "1d"}).json()) == 2
    bad = get(server, tenant, {"statsPeriod": "soon"})
    assert bad.status_code == 400
    assert bad.json()["statsPeriod"] == ["Invalid statsPeriod 'soon'"]


def test_checkins_paginate_with_a_link_header(
    server: str, engine: Engine, tenant: Tenant, monitor: Monitor
) -> None:
    prod = environment(engine, tenant, monitor, "production")
    guids = [insert_checkin(engine, monitor, prod, T0 + timedelta(minutes=i)) for i in range(5)]
    seen: list[str] = []
    params: dict[str, str] = {"per_page": "2"}
    while True:
        response = get(server, tenant, params)
        seen += [c["id"] for c in response.json()]
        links = httpx.Response(200, headers={"Link": response.headers["link"]}).links
        if links["next"]["results"] == "false":
            break
        params = {"per_page": "2", "cursor": links["next"]["cursor"]}
    assert seen == [str(g) for g in reversed(guids)]


def test_checkins_of_an_unknown_monitor_is_404(server: str, tenant: Tenant) -> None:
    assert get(server, tenant).status_code == 404


def test_checkins_of_another_organization_is_403(
    server: str, engine: Engine, monitor: Monitor
) -> None:
    other = make_tenant(engine, "org-b")
    response = get(server, other)
    assert response.status_code == 403
