"""Builders of ingest-occurrences payloads and readers of what processing stored, shared
by the issue platform's database tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select

from vigil.db.tables import activity, event, group, group_history, issue_occurrence
from vigil.issues.consumer import ProcessedMessage, _process_message
from vigil.issues.occurrence_processing import DEFAULT_PROCESSING, OccurrenceProcessing
from vigil.tenancy import store as tenancy
from vigil.tenancy.store import Project

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
PERF_SLOW_DB = 1001  # noise ignore_limit 100, creation quota 5/h
N_PLUS_ONE = 1006  # noise ignore_limit 3
CRON = 4001  # no noise gate, quota 60,000/h
FEEDBACK = 6001
UNRELEASED = 2001  # profile_file_io_main_thread


def make_project(engine: Engine, org_slug: str = "acme", slug: str = "app") -> Project:
    with engine.begin() as conn:
        org = tenancy.create_organization(conn, org_slug)
        return tenancy.create_project(conn, org, slug)


def event_payload(
    project_id: int, event_id: str, at: datetime = T0, **extra: Any
) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "project_id": project_id,
        "platform": "python",
        "timestamp": at.isoformat(),
        "tags": {"server": "web-1"},
        **extra,
    }


def occurrence(
    project_id: int,
    fingerprint: str = "fp-1",
    *,
    at: datetime = T0,
    type: int = CRON,
    with_event: bool = True,
    event: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """An occurrence message with an embedded event at `at` (fresh ids each time)."""
    event_id = uuid.uuid4().hex
    payload: dict[str, Any] = {
        "id": uuid.uuid4().hex,
        "project_id": project_id,
        "event_id": event_id,
        "fingerprint": [fingerprint],
        "issue_title": "Something broke",
        "subtitle": "it was bad",
        "resource_id": None,
        "evidence_data": {"k": "v"},
        "evidence_display": [{"name": "Reason", "value": "bad", "important": True}],
        "type": type,
        "detection_time": at.timestamp(),
        "level": "error",
        "culprit": "api/123",
        "payload_type": "occurrence",
    }
    if with_event:
        payload["event"] = event if event is not None else event_payload(project_id, event_id, at)
    payload.update(extra)
    return payload


def status_change(
    project_id: int, fingerprint: str, new_status: int, new_substatus: int | None
) -> dict[str, Any]:
    return {
        "payload_type": "status_change",
        "id": uuid.uuid4().hex,
        "project_id": project_id,
        "fingerprint": [fingerprint],
        "new_status": new_status,
        "new_substatus": new_substatus,
    }


def process(
    engine: Engine,
    payload: dict[str, Any],
    *,
    now: datetime = T0,
    processing: OccurrenceProcessing = DEFAULT_PROCESSING,
) -> ProcessedMessage | None:
    """One message through `_process_message` in its own transaction."""
    with engine.begin() as conn:
        return _process_message(conn, payload, now=now, processing=processing)


def later(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def groups(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(group).order_by(group.c.id)))


def activities(engine: Engine, group_id: int) -> list[tuple[int, dict[str, Any]]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(activity.c.type, activity.c.data)
            .where(activity.c.group_id == group_id)
            .order_by(activity.c.id)
        )
        return [(r.type, r.data) for r in rows]


def history(engine: Engine, group_id: int) -> list[str]:
    with engine.connect() as conn:
        return list(
            conn.scalars(
                select(group_history.c.status)
                .where(group_history.c.group_id == group_id)
                .order_by(group_history.c.id)
            )
        )


def count(engine: Engine, table: Any) -> int:
    from sqlalchemy import func

    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def occurrences(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(issue_occurrence).order_by(issue_occurrence.c.date_added)))


def events(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(event).order_by(event.c.id)))
