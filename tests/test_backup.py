"""`vigil backup`: a consistent copy of a live embedded install (the SQLite database and
the embedded log) while another connection keeps writing, which a restore brings back;
what it refuses (a PostgreSQL database, a directory in use) and says why."""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import Engine

from tests.conftest import run_vigil
from vigil.config import Settings
from vigil.db.backup import BackupError, backup_sqlite, sqlite_path
from vigil.streams.backend import get_backend
from vigil.streams.runner import produce
from vigil.streams.topics import Topic
from vigil.tenancy import store


def test_backup_copies_a_live_install_that_a_restore_brings_back(
    stack: Settings, engine: Engine, backend_name: str, tmp_path: Path
) -> None:
    target = tmp_path / "backup"
    with engine.begin() as conn:
        store.create_organization(conn, "kept")
    if backend_name == "kafka":  # PostgreSQL: its own tools
        refused = run_vigil(stack, "backup", str(target))
        assert refused.returncode == 1
        assert "not a SQLite file: back it up with its own tools (pg_dump" in refused.stderr
        assert not target.exists()
        return
    backend = get_backend(stack)
    try:
        backend.ensure_topics([Topic.INGEST_MONITORS.value])
        produce(backend, stack, Topic.INGEST_MONITORS.value, b"accepted", "key")
    finally:
        backend.close()

    # Another writer goes on meanwhile, as `vigil serve` would.
    stop = threading.Event()
    written: list[str] = []

    def write() -> None:
        while not stop.is_set():
            with engine.begin() as conn:
                slug = f"busy-{len(written)}"
                store.create_organization(conn, slug)
            written.append(slug)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        made = run_vigil(stack, "backup", str(target))
    finally:
        stop.set()
        writer.join()
    assert made.returncode == 0, made.stderr
    lines = made.stdout.splitlines()
    assert lines[0] == f"copying the embedded log ({stack.log_path}) …"
    assert lines[2].startswith("copying the database (")
    assert lines[3].startswith(f"  {target / 'vigil.sqlite3'}: ") and " s, checked" in lines[3]
    assert lines[-1].startswith("done. To restore: stop vigil")
    assert written  # the writer was not held back

    restored = tmp_path / "restored"
    restored.mkdir()
    for name in ("vigil.sqlite3", "log.sqlite3"):
        (restored / name).write_bytes((target / name).read_bytes())
    listed = run_vigil(replace(stack, home=restored), "org", "list")
    assert listed.returncode == 0, listed.stderr
    slugs = {line.split("\t")[1] for line in listed.stdout.splitlines() if line.strip()}
    assert "kept" in slugs
    # A consistent moment: the writer's organizations in the copy are a prefix of its own.
    busy = sorted((s for s in slugs if s.startswith("busy-")), key=lambda s: int(s[5:]))
    assert busy == written[: len(busy)]
    with sqlite3.connect(restored / "log.sqlite3") as log:
        [(held,)] = log.execute("SELECT sum(next_offset) FROM partitions").fetchall()
    assert held == 1  # the accepted message is in the copied log

    # Nothing to copy where there is no database: said before anything is made.
    elsewhere = run_vigil(replace(stack, home=tmp_path / "empty"), "backup", str(tmp_path / "b2"))
    assert elsewhere.returncode == 1
    assert "vigil.sqlite3: no such database (is VIGIL_HOME" in elsewhere.stderr
    assert not (tmp_path / "b2").exists()
    # Never over a backup, nor into a directory in use.
    again = run_vigil(stack, "backup", str(target))
    assert again.returncode == 1
    assert f"{target}: not empty (vigil never overwrites a backup)" in again.stderr
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    into_file = run_vigil(stack, "backup", str(a_file))
    assert (into_file.returncode, into_file.stderr.strip()) == (
        1,
        f"vigil: {a_file}: not a directory (give a new or empty directory)",
    )
    nowhere = run_vigil(stack, "backup", str(a_file / "below"))
    assert nowhere.returncode == 1
    assert f"vigil: {a_file / 'below'}: cannot make the directory" in nowhere.stderr
    assert "Traceback" not in nowhere.stderr


def test_backup_refuses_what_it_cannot_copy(tmp_path: Path) -> None:
    assert sqlite_path("sqlite:////var/lib/vigil/vigil.sqlite3") == Path(
        "/var/lib/vigil/vigil.sqlite3"
    )
    assert sqlite_path("postgresql://db/vigil") is None
    assert sqlite_path("sqlite:///:memory:") is None
    with pytest.raises(BackupError, match="no such database"):
        backup_sqlite(tmp_path / "missing.sqlite3", tmp_path / "copy.sqlite3")
    not_a_database = tmp_path / "notes.txt"
    not_a_database.write_text("not a database, but long enough to be read as one " * 100)
    with pytest.raises(BackupError, match="file is not a database"):
        backup_sqlite(not_a_database, tmp_path / "copy.sqlite3")
    assert not (tmp_path / "copy.sqlite3").exists()  # no partial copy left behind
    good = tmp_path / "good.sqlite3"
    with sqlite3.connect(good) as conn:
        conn.execute("CREATE TABLE t (x)")
    existing = tmp_path / "existing.sqlite3"
    existing.write_bytes(b"")
    with pytest.raises(BackupError, match="already exists"):
        backup_sqlite(good, existing)
