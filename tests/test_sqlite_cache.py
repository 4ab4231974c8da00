"""SQLite connections keep a large transaction's pages in memory until it commits. About
the SQLite file only, so not run per backend."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from vigil.config import Settings
from vigil.db.engine import make_engine


def test_a_transaction_of_several_mebibytes_stays_in_memory_until_it_commits(
    tmp_path: Path,
) -> None:
    # A consumer's chunk transaction dirties more pages than SQLite's default 2 MiB
    # cache holds; the connection's cache keeps them until the commit, instead of
    # spilling them to the WAL on the way and reading them back.
    engine = make_engine(Settings(home=tmp_path))
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE blobs (b TEXT)"))
    database = engine.url.database
    assert database
    wal = Path(database + "-wal")
    with engine.begin() as conn:
        before = wal.stat().st_size
        for _ in range(1500):  # about 6 MiB
            conn.execute(text("INSERT INTO blobs VALUES (:b)"), {"b": "x" * 4000})
        assert wal.stat().st_size == before
    assert wal.stat().st_size > before + 5 * 2**20
    engine.dispose()
