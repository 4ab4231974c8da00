"""Apply Alembic migrations programmatically (`vigil migrate`, and `serve` on start)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from vigil.db.engine import serialize

MIGRATIONS = Path(__file__).parent / "migrations"

# Held while migrating, so two processes starting at once apply each migration once.
_MIGRATION_LOCK = 0x76676C6D


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def migrate(engine: Engine) -> tuple[str | None, str | None]:
    """Upgrade to the newest revision. Returns (revision before, revision after)."""
    cfg = _config()
    with engine.begin() as conn:
        serialize(conn, _MIGRATION_LOCK)
        before = MigrationContext.configure(conn).get_current_revision()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
        after = MigrationContext.configure(conn).get_current_revision()
    return before, after
