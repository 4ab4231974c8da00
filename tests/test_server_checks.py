"""Start-up warnings about PostgreSQL settings vigil needs (autovacuum): the rules, and
`vigil migrate` saying them for the server it migrated, on both backends."""

from __future__ import annotations

from sqlalchemy import Engine, text

from tests.conftest import run_vigil
from vigil.config import Settings
from vigil.db.server_checks import warnings_for


def test_autovacuum_off_is_named_with_what_to_do() -> None:
    (warning,) = warnings_for({"autovacuum": "off", "track_counts": "on"})
    assert "autovacuum is off" in warning
    assert "ANALYZE" in warning


def test_track_counts_off_is_named_too() -> None:
    found = warnings_for({"autovacuum": "off", "track_counts": "off"})
    assert len(found) == 2
    assert "track_counts is off" in found[1]


def test_default_settings_give_no_warning() -> None:
    assert warnings_for({"autovacuum": "on", "track_counts": "on"}) == []


def test_migrate_warns_exactly_when_the_server_has_autovacuum_off(
    stack: Settings, engine: Engine
) -> None:
    result = run_vigil(stack, "migrate")
    assert result.returncode == 0, result.stderr
    assert "database is up to date" in result.stdout
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            off = conn.execute(text("SHOW autovacuum")).scalar_one() == "off"
    else:
        off = False  # SQLite keeps no such setting: never a warning
    assert ("warning: PostgreSQL's autovacuum is off" in result.stderr) == off
