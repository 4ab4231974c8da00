"""A consistent copy of a live SQLite database (`vigil backup`): SQLite's online backup
of the whole file in one step, inside one read transaction, so the copy is the database
as of one moment while `vigil serve` goes on writing (in WAL mode a reader holds no
writer back). A step-wise backup would start over each time another connection wrote,
which under steady ingest may be never. The copy is then checked (`quick_check`)."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Final

from sqlalchemy.engine import make_url

BUSY_TIMEOUT_S: Final = 30.0


class BackupError(Exception):
    """The copy could not be made, or is not sound; the message says why."""


def sqlite_path(url: str) -> Path | None:
    """The file a SQLite database URL names (read as the engine reads it); None for any
    other database, or an in-memory SQLite one."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    path = parsed.database
    return Path(path) if path and path != ":memory:" else None


def backup_sqlite(source: Path, target: Path) -> int:
    """Copy the SQLite database `source` to the new file `target`; its size in bytes.
    BackupError if `source` is missing or not a database, `target` exists, or the copy
    fails its check (the partial copy is removed)."""
    if not source.is_file():
        raise BackupError(f"{source}: no such database")
    if target.exists():
        raise BackupError(f"{target}: already exists (vigil never overwrites a backup)")
    try:
        with (
            closing(sqlite3.connect(source, timeout=BUSY_TIMEOUT_S)) as src,
            closing(sqlite3.connect(target)) as dst,
        ):
            src.backup(dst)  # pages=-1: every page in one step, one snapshot
            verdict = dst.execute("PRAGMA quick_check").fetchone()[0]
        if verdict != "ok":
            raise BackupError(f"{target}: the copy fails SQLite's check: {verdict}")
    except (sqlite3.Error, BackupError) as exc:
        target.unlink(missing_ok=True)
        if isinstance(exc, BackupError):
            raise
        raise BackupError(f"{source}: {exc}") from exc
    return target.stat().st_size
