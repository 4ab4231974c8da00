"""Migrations apply from empty on both databases, match the table definitions, and a
second start bootstraps nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, func, insert, select

from vigil.config import Settings
from vigil.db.migrate import MIGRATIONS, current_revision, head_revision, migrate
from vigil.db.tables import (
    api_token,
    event,
    issue_occurrence,
    metadata,
    organization,
    project,
    project_key,
)
from vigil.db.timestamps import as_utc
from vigil.tenancy import credentials, store
from vigil.tenancy.bootstrap import bootstrap


def test_migrated_schema_matches_table_definitions(engine: Engine) -> None:
    assert current_revision(engine) == head_revision()
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_migrating_again_is_a_no_op(engine: Engine) -> None:
    head = head_revision()
    assert migrate(engine) == (head, head)


def test_first_start_bootstraps_and_second_changes_nothing(engine: Engine, stack: Settings) -> None:
    first = bootstrap(engine)
    assert first.created
    assert first.organization.slug == "default"
    assert first.project.slug == "default"
    assert first.key is not None and credentials.is_public_key(first.key.public_key)
    assert first.token is not None and first.token.startswith(credentials.TOKEN_PREFIX)

    second = bootstrap(engine)
    assert not second.created
    assert second.token is None
    assert second.project == first.project
    assert second.key == first.key
    with engine.connect() as conn:
        for table in (organization, project, project_key, api_token):
            assert conn.execute(select(func.count()).select_from(table)).scalar_one() == 1
        # the token is stored hashed, never in the clear
        stored = conn.execute(select(api_token.c.token_hash)).scalar_one()
        assert stored == credentials.hash_token(first.token)
        assert first.token not in str(conn.execute(select(api_token)).all())
        found = store.find_token(conn, first.token)
        assert found is not None and found.organization_id == first.organization.id


def test_occurrences_stored_before_they_kept_their_events_time_take_it(engine: Engine) -> None:
    """0011: an occurrence stored earlier gets its stored event's timestamp, else (no
    event stored, as for buffered spans) its detection time."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    event_time = datetime(2026, 3, 1, 11, 0, tzinfo=UTC)
    detected = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    with engine.begin() as conn:
        org = store.create_organization(conn, "acme")
        project_id = store.create_project(conn, org, "app").id
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0010")
    try:
        with engine.begin() as conn:
            conn.execute(
                insert(event).values(
                    project_id=project_id,
                    event_id="e" * 32,
                    type="generic",
                    timestamp=event_time,
                    received=detected,
                    tags=[],
                    data={},
                )
            )
            for occurrence_id, event_id in (("1" * 32, "e" * 32), ("2" * 32, "f" * 32)):
                conn.execute(
                    insert(issue_occurrence).values(
                        _occurrence_before_0011(occurrence_id, project_id, event_id, detected)
                    )
                )
    finally:
        assert migrate(engine) == ("0010", head_revision())
    with engine.connect() as conn:
        rows = conn.execute(select(issue_occurrence.c.id, issue_occurrence.c.timestamp))
        stored = {row.id: as_utc(row.timestamp) for row in rows}
    assert stored == {
        "1" * 32: event_time,
        "2" * 32: detected,
    }
    # A consumer of the version before, still running once this one migrated, keeps
    # storing occurrences: at the time of the insert.
    before = datetime.now(UTC).replace(microsecond=0)
    with engine.begin() as conn:
        row = _occurrence_before_0011("3" * 32, project_id, "f" * 32, detected)
        conn.execute(insert(issue_occurrence).values(row))
        at = conn.execute(
            select(issue_occurrence.c.timestamp).where(issue_occurrence.c.id == "3" * 32)
        ).scalar_one()
    assert before <= as_utc(at) <= datetime.now(UTC)


def _occurrence_before_0011(
    occurrence_id: str, project_id: int, event_id: str, at: datetime
) -> dict[str, Any]:
    """An occurrence row as vigil wrote it before migration 0011 (no `timestamp`)."""
    return {
        "id": occurrence_id,
        "project_id": project_id,
        "event_id": event_id,
        "fingerprint": ["a"],
        "type": 4001,
        "issue_title": "t",
        "subtitle": "s",
        "evidence_data": {},
        "evidence_display": [],
        "detection_time": at,
        "level": "error",
        "culprit": "",
        "data": {},
        "date_added": at,
    }
