"""The database itself allows at most one active (unresolved) incident per monitor
environment, on SQLite and PostgreSQL alike: a second one is refused, however it is
written. Resolved incidents are history and may be many, and stay resolved: the check-in
that resolved one cannot be deleted from under it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Connection, Engine, delete, func, select, update
from sqlalchemy.exc import IntegrityError

from vigil.db.tables import monitor, monitor_checkin, monitor_environment, monitor_incident
from vigil.monitors.enums import CheckInStatus
from vigil.monitors.models import MonitorEnvironment
from vigil.monitors.store import ensure_environment, ensure_monitor_with_config, no_owners
from vigil.tenancy import store as tenancy

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def conn(engine: Engine) -> Iterator[Connection]:
    with engine.begin() as connection:
        yield connection


@pytest.fixture
def environments(conn: Connection) -> tuple[MonitorEnvironment, MonitorEnvironment]:
    org = tenancy.create_organization(conn, "acme")
    project = tenancy.create_project(conn, org, "app")
    config = {"schedule_type": "crontab", "schedule": "@daily"}
    monitor = ensure_monitor_with_config(conn, project, "job", config, no_owners, 10).monitor
    assert monitor is not None
    production = ensure_environment(conn, project, monitor, None, 10, now=NOW)
    staging = ensure_environment(conn, project, monitor, "staging", 10, now=NOW)
    return production, staging


def checkin(conn: Connection, env: MonitorEnvironment, status: CheckInStatus) -> int:
    return int(
        conn.execute(
            monitor_checkin.insert()
            .values(
                guid=uuid.uuid4(),
                project_id=_project_of(conn, env),
                monitor_id=env.monitor_id,
                monitor_environment_id=env.id,
                status=int(status),
                date_added=NOW,
                date_updated=NOW,
            )
            .returning(monitor_checkin.c.id)
        ).scalar_one()
    )


def _project_of(conn: Connection, env: MonitorEnvironment) -> int:
    return int(
        conn.execute(
            select(monitor.c.project_id).where(monitor.c.id == env.monitor_id)
        ).scalar_one()
    )


def open_incident(conn: Connection, env: MonitorEnvironment) -> int:
    start = checkin(conn, env, CheckInStatus.ERROR)
    return int(
        conn.execute(
            monitor_incident.insert()
            .values(
                monitor_id=env.monitor_id,
                monitor_environment_id=env.id,
                starting_checkin_id=start,
                starting_timestamp=NOW,
                grouphash=uuid.uuid4().hex,
                date_added=NOW,
            )
            .returning(monitor_incident.c.id)
        ).scalar_one()
    )


def resolve(conn: Connection, env: MonitorEnvironment, incident_id: int) -> None:
    ok = checkin(conn, env, CheckInStatus.OK)
    conn.execute(
        update(monitor_incident)
        .where(monitor_incident.c.id == incident_id)
        .values(resolving_checkin_id=ok, resolving_timestamp=NOW + timedelta(minutes=1))
    )


def active(conn: Connection, env: MonitorEnvironment) -> int:
    return int(
        conn.execute(
            select(func.count())
            .select_from(monitor_incident)
            .where(monitor_incident.c.monitor_environment_id == env.id)
            .where(monitor_incident.c.resolving_checkin_id.is_(None))
        ).scalar_one()
    )


def test_a_second_active_incident_for_an_environment_is_refused(
    conn: Connection, environments: tuple[MonitorEnvironment, MonitorEnvironment]
) -> None:
    production, _ = environments
    open_incident(conn, production)
    with pytest.raises(IntegrityError), conn.begin_nested():
        open_incident(conn, production)
    assert active(conn, production) == 1


def test_reopening_a_resolved_incident_beside_an_active_one_is_refused(
    conn: Connection, environments: tuple[MonitorEnvironment, MonitorEnvironment]
) -> None:
    production, _ = environments
    first = open_incident(conn, production)
    resolve(conn, production, first)
    open_incident(conn, production)
    with pytest.raises(IntegrityError), conn.begin_nested():
        conn.execute(
            update(monitor_incident)
            .where(monitor_incident.c.id == first)
            .values(resolving_checkin_id=None)
        )
    assert active(conn, production) == 1


def test_resolved_incidents_do_not_count(
    conn: Connection, environments: tuple[MonitorEnvironment, MonitorEnvironment]
) -> None:
    production, _ = environments
    for _ in range(3):
        resolve(conn, production, open_incident(conn, production))
    open_incident(conn, production)
    assert active(conn, production) == 1
    total = conn.execute(select(func.count()).select_from(monitor_incident)).scalar_one()
    assert total == 4


def test_each_environment_may_have_its_own_active_incident(
    conn: Connection, environments: tuple[MonitorEnvironment, MonitorEnvironment]
) -> None:
    production, staging = environments
    open_incident(conn, production)
    open_incident(conn, staging)
    assert (active(conn, production), active(conn, staging)) == (1, 1)


def test_deleting_a_monitor_takes_its_check_ins_and_incidents_with_it(
    conn: Connection, environments: tuple[MonitorEnvironment, MonitorEnvironment]
) -> None:
    # resolving_checkin_id has no ON DELETE action; a cascade from the monitor removes
    # the incident and its check-ins in the same statement, so it never gets in the way
    production, staging = environments
    resolve(conn, production, open_incident(conn, production))
    open_incident(conn, staging)
    conn.execute(delete(monitor).where(monitor.c.id == production.monitor_id))
    for table in (monitor_incident, monitor_checkin, monitor_environment):
        assert conn.execute(select(func.count()).select_from(table)).scalar_one() == 0


def test_a_check_in_that_resolved_an_incident_cannot_be_deleted_alone(
    conn: Connection, environments: tuple[MonitorEnvironment, MonitorEnvironment]
) -> None:
    # nulling the reference would silently reopen the incident
    production, _ = environments
    incident = open_incident(conn, production)
    resolve(conn, production, incident)
    resolving = conn.execute(
        select(monitor_incident.c.resolving_checkin_id).where(monitor_incident.c.id == incident)
    ).scalar_one()
    with pytest.raises(IntegrityError), conn.begin_nested():
        conn.execute(delete(monitor_checkin).where(monitor_checkin.c.id == resolving))
    assert active(conn, production) == 0
