"""End to end on a real `vigil serve`, both backends: a one-minute monitor that stopped
checking in gets its `missed` check-in from the idle clock (nothing needs to arrive for
it), reaches its failure threshold and becomes a cron issue; the next `ok` check-in,
sent to the crons HTTP endpoint, resolves both. No waiting for minutes: the monitor is
already overdue when vigil starts, and the clock's first tick is the current minute."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, update

from tests.support.serve import Running, poll, serve
from tests.support.services import free_port
from tests.support.tenants import Tenant, make_tenant
from vigil.config import Settings
from vigil.db.tables import monitor_environment as me_table
from vigil.monitors import store as monitor_store
from vigil.monitors.enums import MonitorStatus

EVERY_MINUTE = {"schedule_type": "interval", "schedule": [1, "minute"]}


@pytest.fixture
def tenant(engine: Engine) -> Tenant:
    return make_tenant(engine, "acme", "jobs")


@pytest.fixture
def overdue(engine: Engine, tenant: Tenant) -> datetime:
    """A monitor whose last run was three minutes ago: due two minutes ago."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    with engine.begin() as conn:
        ensured = monitor_store.ensure_monitor_with_config(
            conn, tenant.project, "job", EVERY_MINUTE, monitor_store.no_owners, 10
        )
        assert ensured.monitor is not None
        env = monitor_store.ensure_environment(conn, tenant.project, ensured.monitor, None, 10)
        conn.execute(
            update(me_table)
            .where(me_table.c.id == env.id)
            .values(
                status=int(MonitorStatus.OK),
                last_checkin=now - timedelta(minutes=3),
                next_checkin=now - timedelta(minutes=2),
                next_checkin_latest=now - timedelta(minutes=1),
            )
        )
    return now - timedelta(minutes=2)


@pytest.fixture
def server(stack: Settings, overdue: datetime) -> Iterator[Running]:
    with serve(replace(stack, bind=f"127.0.0.1:{free_port()}")) as running:
        yield running


def test_a_stopped_job_is_missed_becomes_an_issue_and_recovers(
    server: Running, tenant: Tenant, overdue: datetime
) -> None:
    auth = {"Authorization": f"Bearer {tenant.token}"}
    api = f"{server.base_url}/api/0/organizations/acme"

    def get(path: str, **params: Any) -> Any:
        response = httpx.get(f"{api}{path}", params=params, headers=auth, timeout=60)
        assert response.status_code == 200, response.text
        return response.json()

    def missed() -> dict[str, Any] | None:
        found = [c for c in get("/monitors/job/checkins/") if c["status"] == "missed"]
        return found[0] if found else None

    checkin = poll(missed, "the missed check-in", server)
    assert checkin["expectedTime"] == overdue.isoformat().replace("+00:00", "Z")
    assert get("/monitors/job/")["environments"][0]["status"] == "error"

    def issues(query: str) -> list[dict[str, Any]] | None:
        return get("/issues/", query=query) or None

    [issue] = poll(lambda: issues("is:unresolved issue.category:cron"), "the issue", server)
    assert issue["title"] == "Monitor failure: job"

    clock = get("/monitors-clock/")
    assert clock["lastTick"] is not None and clock["decision"] is None  # metrics are off

    sent = httpx.get(
        f"{server.base_url}/api/{tenant.project.id}/cron/job/{tenant.key.public_key}/",
        params={"status": "ok"},
        timeout=60,
    )
    assert sent.status_code == 202
    [resolved] = poll(lambda: issues("is:resolved issue.category:cron"), "resolution", server)
    assert resolved["id"] == issue["id"]
    assert get("/monitors/job/")["environments"][0]["status"] == "ok"
