"""Check-in messages sent straight to `process_checkin` (no log, no consumer), and the
rows they leave: check-ins, the monitor environment, incidents."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Engine, select

from vigil.db.tables import monitor_checkin as checkin_table
from vigil.db.tables import monitor_environment as me_table
from vigil.db.tables import monitor_incident as incident_table
from vigil.monitors.checkin_processing import CheckinProcessing, process_checkin
from vigil.monitors.processing_errors import CheckinItem
from vigil.tenancy.store import Project

T0 = datetime(2026, 3, 1, 12, 0, 5, tzinfo=UTC)


def checkin_item(project: Project, at: datetime, **payload: Any) -> CheckinItem:
    """A check-in message for the project as the consumer hands it on (monitor
    "nightly", a fresh check-in id and status "ok" unless given), received at `at`."""
    payload.setdefault("monitor_slug", "nightly")
    payload.setdefault("check_in_id", uuid.uuid4().hex)
    payload.setdefault("status", "ok")
    message = {
        "message_type": "check_in",
        "payload": orjson.dumps(payload),
        "start_time": at.timestamp(),
        "project_id": project.id,
        "sdk": "sentry.python/2.0",
        "retention_days": 90,
    }
    return CheckinItem(at, 0, message, payload)


class Sender:
    """`send(at, **payload)`: one check-in message for the project, processed at `at`
    (monitor "nightly", a fresh check-in id and status "ok" unless given); returns its
    check-in id."""

    def __init__(self, engine: Engine, project: Project, processing: CheckinProcessing) -> None:
        self.engine, self.project, self.processing = engine, project, processing

    def __call__(self, at: datetime = T0, **payload: Any) -> str:
        item = checkin_item(self.project, at, **payload)
        process_checkin(self.engine, item, self.processing)
        return str(item.payload["check_in_id"])


def checkins(engine: Engine) -> list[Any]:
    """Every check-in row, oldest first."""
    with engine.connect() as conn:
        return list(conn.execute(select(checkin_table).order_by(checkin_table.c.id)))


def env_row(engine: Engine) -> Any:
    """The one monitor environment row."""
    with engine.connect() as conn:
        return conn.execute(select(me_table)).one()


def incidents(engine: Engine) -> list[Any]:
    """Every incident row, oldest first."""
    with engine.connect() as conn:
        return list(conn.execute(select(incident_table).order_by(incident_table.c.id)))
