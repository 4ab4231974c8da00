"""Processing errors (B10) through the API on both backends: a monitor's and a
project's records, newest first, in their stored JSON form, and deleting by type."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import Engine

from tests.support.tenants import Tenant, make_tenant, make_token
from vigil.monitors import processing_error_store
from vigil.monitors import store as monitor_store
from vigil.monitors.models import Monitor
from vigil.monitors.processing_errors import (
    CheckinItem,
    ProcessingError,
    ProcessingErrorRecord,
    ProcessingErrorsException,
    ProcessingErrorType,
)
from vigil.tenancy import store

MONITOR_ERRORS = "/api/0/organizations/org-a/monitors/job/processing-errors/"
PROJECT_ERRORS = "/api/0/projects/org-a/web/processing-errors/"
T = ProcessingErrorType


@pytest.fixture
def tenant(engine: Engine) -> Tenant:
    return make_tenant(engine, "org-a", "web")


@pytest.fixture
def monitor(engine: Engine, tenant: Tenant) -> Monitor:
    config = {"schedule_type": "crontab", "schedule": "@daily"}
    with engine.begin() as conn:
        ensured = monitor_store.ensure_monitor_with_config(
            conn, tenant.project, "job", config, monitor_store.no_owners, 10
        )
    assert ensured.monitor is not None
    return ensured.monitor


def record(
    engine: Engine,
    tenant: Tenant,
    slug: str,
    minutes_ago: int,
    *errors: ProcessingError,
    monitor: Monitor | None = None,
) -> ProcessingErrorRecord:
    now = datetime.now(UTC)
    ts = now - timedelta(minutes=minutes_ago)
    payload = {"monitor_slug": slug, "status": "ok"}
    message = {"message_type": "check_in", "project_id": tenant.project.id, "payload": b"{}"}
    item = CheckinItem(ts, 0, message, payload)
    with engine.begin() as conn:
        return processing_error_store.store(
            conn, ProcessingErrorsException(errors, monitor), item, tenant.project.id, now
        )


def call(method: str, server: str, path: str, token: str, **kwargs: object) -> httpx.Response:
    return httpx.request(
        method,
        server + path,
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
        **kwargs,  # type: ignore[arg-type]
    )


def test_a_monitors_errors_come_newest_first_as_stored(
    server: str, engine: Engine, tenant: Tenant, monitor: Monitor
) -> None:
    older = record(engine, tenant, "job", 10, ProcessingError(T.MONITOR_DISABLED), monitor=monitor)
    newer = record(
        engine,
        tenant,
        "job",
        1,
        ProcessingError(T.CHECKIN_INVALID_DURATION, {"duration": "-5"}),
        monitor=monitor,
    )
    record(engine, tenant, "unknown", 1, ProcessingError(T.MONITOR_NOT_FOUND))
    response = call("GET", server, MONITOR_ERRORS, tenant.token)
    assert response.status_code == 200
    assert response.json() == [newer.to_dict(), older.to_dict()]
    assert response.json()[0]["errors"] == [
        {"type": int(T.CHECKIN_INVALID_DURATION), "duration": "-5"}
    ]
    project_path = "/api/0/projects/org-a/web/monitors/job/processing-errors/"
    assert call("GET", server, project_path, tenant.token).json() == response.json()


def test_a_projects_errors_are_those_of_no_monitor(
    server: str, engine: Engine, tenant: Tenant, monitor: Monitor
) -> None:
    record(engine, tenant, "job", 1, ProcessingError(T.MONITOR_DISABLED), monitor=monitor)
    missing = record(engine, tenant, "unknown", 1, ProcessingError(T.MONITOR_NOT_FOUND))
    response = call("GET", server, PROJECT_ERRORS, tenant.token)
    assert response.status_code == 200
    assert response.json() == [missing.to_dict()]


def test_delete_by_type_removes_only_that_type(
    server: str, engine: Engine, tenant: Tenant, monitor: Monitor
) -> None:
    both = record(
        engine,
        tenant,
        "job",
        2,
        ProcessingError(T.MONITOR_DISABLED),
        ProcessingError(T.CHECKIN_FINISHED),
        monitor=monitor,
    )
    record(engine, tenant, "job", 1, ProcessingError(T.MONITOR_DISABLED), monitor=monitor)
    response = call(
        "DELETE",
        server,
        MONITOR_ERRORS,
        tenant.token,
        params={"errortype": int(T.MONITOR_DISABLED)},
    )
    assert response.status_code == 204
    left = call("GET", server, MONITOR_ERRORS, tenant.token).json()
    assert left == [{**both.to_dict(), "errors": [{"type": int(T.CHECKIN_FINISHED)}]}]

    record(engine, tenant, "unknown", 1, ProcessingError(T.MONITOR_NOT_FOUND))
    response = call(
        "DELETE",
        server,
        PROJECT_ERRORS,
        tenant.token,
        params={"errortype": int(T.MONITOR_NOT_FOUND)},
    )
    assert response.status_code == 204
    assert call("GET", server, PROJECT_ERRORS, tenant.token).json() == []


def test_delete_with_an_unknown_type_is_400(server: str, tenant: Tenant, monitor: Monitor) -> None:
    response = call("DELETE", server, MONITOR_ERRORS, tenant.token, params={"errortype": "99"})
    assert response.status_code == 400
    assert response.json()["errortype"] == ["Invalid error type: '99'"]


def test_auth_other_organization_and_missing_scope(
    server: str, engine: Engine, tenant: Tenant, monitor: Monitor
) -> None:
    other = make_tenant(engine, "org-b")
    assert call("GET", server, PROJECT_ERRORS, other.token).status_code == 403
    assert call("GET", server, MONITOR_ERRORS, other.token).status_code == 403
    reader = make_token(engine, tenant.org, ["project:read"])
    assert call("GET", server, PROJECT_ERRORS, reader).status_code == 200
    response = call("DELETE", server, PROJECT_ERRORS, reader, params={"errortype": "11"})
    assert response.status_code == 403


def test_delete_one_record_by_id_through_its_own_project_only(
    server: str, engine: Engine, tenant: Tenant, monitor: Monitor
) -> None:
    with engine.begin() as conn:
        org = store.get_organization(conn, "org-a")
        store.create_project(conn, org, "api")
    kept = record(engine, tenant, "unknown", 2, ProcessingError(T.MONITOR_NOT_FOUND))
    gone = record(engine, tenant, "job", 1, ProcessingError(T.MONITOR_DISABLED), monitor=monitor)
    other_project = f"/api/0/projects/org-a/api/processing-errors/{gone.id}/"
    response = call("DELETE", server, other_project, tenant.token)
    assert response.status_code == 400
    assert response.json()["error_id"] == ["Invalid processing error id"]
    # Another organization learns nothing of it: as if there were no such record.
    stranger = make_tenant(engine, "org-b", "theirs")
    theirs = f"/api/0/projects/org-b/theirs/processing-errors/{gone.id}/"
    assert call("DELETE", server, theirs, stranger.token).status_code == 404
    missing = f"/api/0/projects/org-b/theirs/processing-errors/{'0' * 32}/"
    assert call("DELETE", server, missing, stranger.token).status_code == 404
    response = call("DELETE", server, PROJECT_ERRORS + f"{gone.id}/", tenant.token)
    assert response.status_code == 204
    assert call("GET", server, MONITOR_ERRORS, tenant.token).json() == []
    assert call("GET", server, PROJECT_ERRORS, tenant.token).json() == [kept.to_dict()]
    again = call("DELETE", server, PROJECT_ERRORS + f"{gone.id}/", tenant.token)
    assert again.status_code == 404
