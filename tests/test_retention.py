"""Data retention on both databases (`vigil.retention`, `vigil cleanup`): what is older
than the retention goes, with what belongs to it; what is newer, and what something kept
still refers to, stays."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from tests.conftest import run_vigil
from tests.issues.occurrences import N_PLUS_ONE, make_project, occurrence, process
from tests.support.checkins import Sender, incidents
from vigil.config import Settings
from vigil.db.tables import event, group, grouphash, issue_occurrence, monitor_checkin
from vigil.issues.fingerprint import md5_hex
from vigil.monitors.checkin_processing import CheckinProcessing
from vigil.retention import Removed, remove_expired
from vigil.tenancy.store import Project

NOW = datetime.now(UTC).replace(microsecond=0)
OLD = NOW - timedelta(days=100)
RECENT = NOW - timedelta(days=10)
DAILY = {"schedule": {"type": "crontab", "value": "0 3 * * *"}}


def at(moment: datetime, fingerprint: str, engine: Engine, project: Project, **extra: Any) -> None:
    process(engine, occurrence(project.id, fingerprint, at=moment, **extra), now=moment)


def count(engine: Engine, table: Any, *where: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


def group_of(engine: Engine, project: Project, fingerprint: str) -> int | None:
    with engine.connect() as conn:
        found = conn.execute(
            select(grouphash.c.group_id).where(
                grouphash.c.project_id == project.id, grouphash.c.hash == md5_hex(fingerprint)
            )
        ).scalar_one_or_none()
    return None if found is None else int(found)


@pytest.fixture
def project(engine: Engine) -> Project:
    return make_project(engine)


@pytest.fixture
def scenario(engine: Engine, project: Project) -> dict[str, Any]:
    # Issues: one last seen long ago, one seen then and lately, a noise-gated occurrence.
    at(OLD, "stale", engine, project)
    at(OLD, "alive", engine, project)
    at(RECENT, "alive", engine, project)
    at(OLD, "noisy", engine, project, type=N_PLUS_ONE)
    # Events that claim to be old, but were received lately (a backfill, a wrong clock).
    process(engine, occurrence(project.id, "backfilled", at=OLD), now=RECENT)
    # Crons: an incident opened and resolved long ago, another opened and resolved lately;
    # another monitor's incident opened long ago and still open.
    send = Sender(engine, project, CheckinProcessing())
    send(OLD - timedelta(days=1), monitor_config=DAILY)
    send(OLD, status="error")
    send(OLD + timedelta(hours=1))
    send(RECENT, status="error")
    send(RECENT + timedelta(hours=1))
    send(OLD, monitor_slug="broken", monitor_config=DAILY, status="error")
    before = incidents(engine)
    assert len(before) == 3
    assert count(engine, issue_occurrence, issue_occurrence.c.group_id.is_(None)) == 1
    return {"incidents": before}


def test_what_is_older_than_the_retention_goes(
    engine: Engine, project: Project, scenario: dict[str, Any]
) -> None:
    cutoff = NOW - timedelta(days=90)
    seen: dict[str, int] = {}
    removed = remove_expired(
        engine, NOW, 90, lambda kind, n: seen.__setitem__(kind, seen.get(kind, 0) + n)
    )

    # The issue last seen before the cutoff is gone, with its hash, event and occurrence
    # (counted as one issue).
    assert group_of(engine, project, "stale") is None
    alive = group_of(engine, project, "alive")
    assert alive is not None
    # The backfilled issue stays, with its event and occurrence: vigil got them lately.
    backfilled = group_of(engine, project, "backfilled")
    assert backfilled is not None
    assert count(engine, group) == 2
    assert count(engine, event, event.c.group_id == backfilled) == 1
    assert count(engine, issue_occurrence, issue_occurrence.c.group_id == backfilled) == 1
    # The issue still seen keeps only its recent event and occurrence.
    assert count(engine, event, event.c.group_id == alive) == 1
    assert count(engine, event, event.c.group_id == alive, event.c.timestamp >= cutoff) == 1
    assert count(engine, issue_occurrence, issue_occurrence.c.group_id == alive) == 1
    assert count(engine, event) == count(engine, issue_occurrence) == 2
    # Check-ins before the cutoff are gone; the incident resolved before it too.
    assert count(engine, monitor_checkin, monitor_checkin.c.date_added < cutoff) == 0
    assert count(engine, monitor_checkin) == 2
    _, recent, still_open = scenario["incidents"]
    kept = {row.id: row for row in incidents(engine)}
    assert set(kept) == {recent.id, still_open.id}
    # The open incident stays, its starting check-in gone (it keeps its time).
    assert kept[still_open.id].starting_checkin_id is None
    assert kept[still_open.id].starting_timestamp is not None
    assert kept[recent.id].resolving_checkin_id == recent.resolving_checkin_id

    # (The stale issue's event and occurrence are counted as such, deleted before it.)
    assert removed == Removed(issues=1, events=3, occurrences=3, checkins=4, incidents=1)
    assert seen == {"issues": 1, "events": 3, "occurrences": 3, "checkins": 4, "incidents": 1}
    # A second run finds nothing more.
    assert remove_expired(engine, NOW, 90).total() == 0


def test_zero_days_keeps_everything(engine: Engine, scenario: dict[str, Any]) -> None:
    assert remove_expired(engine, NOW, 0).total() == 0
    assert count(engine, group) == 3
    assert count(engine, monitor_checkin) == 6


def test_the_cleanup_command_reports_what_it_deleted(
    stack: Settings, engine: Engine, scenario: dict[str, Any]
) -> None:
    def cleanup(*args: str) -> subprocess.CompletedProcess[str]:
        return run_vigil(stack, "cleanup", *args)

    kept_longer = cleanup("--days", "200")
    assert kept_longer.returncode == 0, kept_longer.stderr
    assert "done: 0 issues, 0 events, 0 occurrences, 0 check-ins, 0 incidents" in kept_longer.stdout
    result = cleanup("--days", "90")
    assert result.returncode == 0, result.stderr
    cutoff = datetime.now(UTC) - timedelta(days=90)
    assert f"deleting what is older than 90 days (before {cutoff:%Y-%m-%d}" in result.stdout
    assert "  checkins: 4 deleted" in result.stdout
    assert "done: 1 issues, 3 events, 3 occurrences, 4 check-ins, 1 incidents" in result.stdout
    for days in ("-1", "0", "36501", "99999999999"):
        refused = cleanup("--days", days)
        assert refused.returncode != 0
        assert "--days must be from 1 to 36,500" in refused.stderr, refused.stderr
        assert "Traceback" not in refused.stderr


def test_an_issue_still_seen_loses_old_occurrences_without_events(
    engine: Engine, project: Project
) -> None:
    # An issue first seen long ago whose old occurrence has no event left (as when the
    # event was looked up, or deleted before): found by its occurrence alone. An issue
    # with nothing old is left alone.
    at(OLD, "alive", engine, project)
    at(RECENT, "alive", engine, project)
    at(RECENT, "young", engine, project)
    alive = group_of(engine, project, "alive")
    with engine.begin() as conn:
        conn.execute(event.delete().where(event.c.group_id == alive, event.c.timestamp < RECENT))

    removed = remove_expired(engine, NOW, 90)

    assert removed == Removed(occurrences=1)
    assert count(engine, issue_occurrence, issue_occurrence.c.group_id == alive) == 1
    assert count(engine, group) == 2
    assert count(engine, event) == count(engine, issue_occurrence) == 2


def test_an_event_is_kept_from_when_vigil_got_it_not_from_its_own_received(
    engine: Engine, project: Project
) -> None:
    # A detector's event dated and received long ago by its own account (as the
    # reference's example message is), stored lately: kept, as are its occurrence and
    # issue.
    payload = occurrence(project.id, "example", at=OLD)
    payload["event"]["received"] = (OLD - timedelta(days=300)).isoformat()
    process(engine, payload, now=RECENT)
    assert remove_expired(engine, NOW, 90).total() == 0
    assert count(engine, event) == count(engine, issue_occurrence) == 1
    with engine.connect() as conn:
        stored = conn.execute(select(event.c.received, event.c.data)).one()
    assert stored.data["received"] == payload["event"]["received"]  # the event as sent
    received = stored.received if stored.received.tzinfo else stored.received.replace(tzinfo=UTC)
    assert received == RECENT  # when vigil got it
