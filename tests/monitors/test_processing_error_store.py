"""The processing error store (B10) on both databases: which entity a record belongs
to, the 10 newest kept newest first, the 7-day expiry, and deleting by id (only through
the record's own project) and by type. Time is a parameter."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, func, select

from vigil.db.tables import monitor_processing_error as error_table
from vigil.monitors import processing_error_store as errors_store
from vigil.monitors.models import Monitor
from vigil.monitors.processing_error_store import InvalidProjectError
from vigil.monitors.processing_errors import (
    CheckinItem,
    ProcessingError,
    ProcessingErrorRecord,
    ProcessingErrorsException,
    ProcessingErrorType,
)
from vigil.monitors.store import ensure_monitor_with_config, no_owners
from vigil.tenancy import store as tenancy
from vigil.tenancy.store import Project

T = ProcessingErrorType
NOW = datetime(2026, 3, 8, 12, 0, tzinfo=UTC)
NOT_FOUND = ProcessingError(T.MONITOR_NOT_FOUND)
DISABLED = ProcessingError(T.MONITOR_DISABLED)
FINISHED = ProcessingError(T.CHECKIN_FINISHED)
INVALID = ProcessingError(T.MONITOR_INVALID_CONFIG, {"errors": {"schedule": ["x"]}})


@pytest.fixture
def conn(engine: Engine) -> Iterator[Connection]:
    with engine.begin() as connection:
        yield connection


@pytest.fixture
def project(conn: Connection) -> Project:
    org = tenancy.create_organization(conn, "acme")
    return tenancy.create_project(conn, org, "app")


@pytest.fixture
def other_project(conn: Connection, project: Project) -> Project:
    org = tenancy.get_organization_by_id(conn, project.organization_id)
    return tenancy.create_project(conn, org, "other")


def make_monitor(conn: Connection, project: Project, slug: str = "nightly") -> Monitor:
    config = {"schedule_type": "crontab", "schedule": "@daily"}
    monitor = ensure_monitor_with_config(conn, project, slug, config, no_owners, 100).monitor
    assert monitor is not None
    return monitor


def item(slug: object = "nightly", ts: datetime = NOW, project_id: int = 1) -> CheckinItem:
    payload: dict[str, Any] = {"monitor_slug": slug, "status": "ok"}
    message = {"message_type": "check_in", "project_id": project_id, "payload": b"{}"}
    return CheckinItem(ts, 0, message, payload)


def store(
    conn: Connection,
    project: Project,
    *errors: ProcessingError,
    monitor: Monitor | None = None,
    slug: object = "nightly",
    ts: datetime = NOW,
    now: datetime = NOW,
) -> ProcessingErrorRecord:
    exc = ProcessingErrorsException(errors or (NOT_FOUND,), monitor)
    return errors_store.store(conn, exc, item(slug, ts, project.id), project.id, now)


def entity_of(conn: Connection, record: ProcessingErrorRecord) -> str:
    return str(
        conn.execute(select(error_table.c.entity).where(error_table.c.id == record.id)).scalar_one()
    )


def rows(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(error_table)).scalar_one())


# --- entity -----------------------------------------------------------------------------


def test_errors_carrying_a_monitor_belong_to_it(conn: Connection, project: Project) -> None:
    monitor = make_monitor(conn, project, "named")
    record = store(conn, project, DISABLED, monitor=monitor, slug="something-else")
    assert entity_of(conn, record) == f"monitor:{monitor.id}"
    assert errors_store.list_for_monitor(conn, monitor.id, NOW) == [record]
    assert errors_store.list_for_project(conn, project.id, NOW) == []


def test_errors_for_a_slug_that_is_a_monitor_of_the_project_belong_to_it(
    conn: Connection, project: Project
) -> None:
    monitor = make_monitor(conn, project)
    record = store(conn, project, NOT_FOUND)
    assert entity_of(conn, record) == f"monitor:{monitor.id}"


@pytest.mark.parametrize("slug", ["unknown", "Nightly", None, 42])
def test_errors_for_no_monitor_of_the_project_belong_to_the_project(
    conn: Connection, project: Project, slug: object
) -> None:
    make_monitor(conn, project)  # "nightly": the raw slug must match it exactly
    record = store(conn, project, NOT_FOUND, slug=slug)
    assert entity_of(conn, record) == f"project:{project.id}"
    assert errors_store.list_for_project(conn, project.id, NOW) == [record]


def test_a_monitor_of_another_project_does_not_take_the_errors(
    conn: Connection, project: Project, other_project: Project
) -> None:
    make_monitor(conn, other_project)
    record = store(conn, project, NOT_FOUND)
    assert entity_of(conn, record) == f"project:{project.id}"


def test_a_stored_record_reads_back_exactly(conn: Connection, project: Project) -> None:
    record = store(conn, project, INVALID, NOT_FOUND)
    assert len(record.id) == 32 and int(record.id, 16) >= 0
    [read] = errors_store.list_for_project(conn, project.id, NOW)
    assert read == record
    assert read.to_dict()["errors"] == [
        {"type": 8, "errors": {"schedule": ["x"]}},
        {"type": 11},
    ]
    assert read.checkin.to_dict() == {
        "ts": NOW.isoformat(),
        "partition": 0,
        "message": {"message_type": "check_in", "project_id": project.id, "payload": "{}"},
        "payload": {"monitor_slug": "nightly", "status": "ok"},
    }


# --- ten newest, newest first -----------------------------------------------------------


def test_an_entity_keeps_its_ten_newest_records_newest_first(
    conn: Connection, project: Project
) -> None:
    monitor = make_monitor(conn, project)
    stored = [
        store(conn, project, monitor=monitor, ts=NOW - timedelta(minutes=12 - i)) for i in range(12)
    ]
    listed = errors_store.list_for_monitor(conn, monitor.id, NOW)
    assert [r.id for r in listed] == [r.id for r in reversed(stored[2:])]
    assert rows(conn) == 10


def test_order_is_by_message_time_not_by_arrival(conn: Connection, project: Project) -> None:
    late = store(conn, project, slug="x", ts=NOW - timedelta(minutes=1))
    early = store(conn, project, slug="x", ts=NOW - timedelta(minutes=5))
    newest = store(conn, project, slug="x", ts=NOW)
    listed = errors_store.list_for_project(conn, project.id, NOW)
    assert [r.id for r in listed] == [newest.id, late.id, early.id]
    # an eleventh record older than all ten is the one dropped
    for i in range(7):  # ten in all
        store(conn, project, slug="x", ts=NOW - timedelta(seconds=i))
    oldest = store(conn, project, slug="x", ts=NOW - timedelta(hours=1))
    ids = {r.id for r in errors_store.list_for_project(conn, project.id, NOW)}
    assert len(ids) == 10
    assert oldest.id not in ids and early.id in ids


def test_the_limit_is_per_entity(
    conn: Connection, project: Project, other_project: Project
) -> None:
    monitor = make_monitor(conn, project)
    for i in range(10):
        store(conn, project, monitor=monitor, ts=NOW - timedelta(minutes=i))
    kept = store(conn, project, slug="x", ts=NOW - timedelta(days=1))
    other = store(conn, other_project, ts=NOW - timedelta(days=1))
    store(conn, project, monitor=monitor, ts=NOW)
    assert errors_store.list_for_project(conn, project.id, NOW) == [kept]
    assert errors_store.list_for_project(conn, other_project.id, NOW) == [other]
    assert len(errors_store.list_for_monitor(conn, monitor.id, NOW)) == 10


# --- seven days -------------------------------------------------------------------------


def test_records_older_than_seven_days_are_dropped_on_store(
    conn: Connection, project: Project
) -> None:
    edge = store(conn, project, ts=NOW - timedelta(days=7))
    store(conn, project, ts=NOW - timedelta(days=7, seconds=1))
    assert errors_store.list_for_project(conn, project.id, NOW) == [edge]
    assert rows(conn) == 1


def test_records_past_seven_days_are_not_listed_and_can_be_swept(
    conn: Connection, project: Project
) -> None:
    record = store(conn, project, ts=NOW)
    week_later = NOW + timedelta(days=7)
    assert errors_store.list_for_project(conn, project.id, week_later) == [record]
    after = week_later + timedelta(microseconds=1)
    assert errors_store.list_for_project(conn, project.id, after) == []
    assert errors_store.delete_expired(conn, week_later) == 0
    assert errors_store.delete_expired(conn, after) == 1
    assert rows(conn) == 0


# --- deleting ---------------------------------------------------------------------------


def test_delete_by_id_through_its_own_project(conn: Connection, project: Project) -> None:
    record = store(conn, project)
    kept = store(conn, project)
    assert errors_store.delete_error(conn, project.id, record.id) is True
    assert errors_store.list_for_project(conn, project.id, NOW) == [kept]
    assert errors_store.delete_error(conn, project.id, record.id) is False


def test_delete_by_id_through_another_project_is_refused(
    conn: Connection, project: Project, other_project: Project
) -> None:
    record = store(conn, project)
    with pytest.raises(InvalidProjectError):
        errors_store.delete_error(conn, other_project.id, record.id)
    assert errors_store.list_for_project(conn, project.id, NOW) == [record]


def test_delete_by_type_removes_that_type_and_emptied_records(
    conn: Connection, project: Project, other_project: Project
) -> None:
    monitor = make_monitor(conn, project)
    mixed = store(conn, project, INVALID, NOT_FOUND, monitor=monitor, ts=NOW)
    only = store(conn, project, NOT_FOUND, monitor=monitor, ts=NOW - timedelta(minutes=1))
    other_type = store(conn, project, FINISHED, monitor=monitor, ts=NOW - timedelta(minutes=2))
    elsewhere = store(conn, other_project, NOT_FOUND)
    entity = errors_store.monitor_entity(monitor.id)

    assert errors_store.delete_errors_by_type(conn, entity, T.MONITOR_NOT_FOUND) == 2

    listed = errors_store.list_for_monitor(conn, monitor.id, NOW)
    assert [r.id for r in listed] == [mixed.id, other_type.id]
    assert listed[0].errors == (INVALID,)
    assert listed[1] == other_type
    assert only.id not in {r.id for r in listed}
    assert errors_store.list_for_project(conn, other_project.id, NOW) == [elsewhere]
    assert errors_store.delete_errors_by_type(conn, entity, T.MONITOR_NOT_FOUND) == 0
