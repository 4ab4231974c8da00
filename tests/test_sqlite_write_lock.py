"""SQLite write transactions wait for another process's write lock (polled, not
SQLite's own growing sleeps) for up to the busy timeout, then fail as a passing outage.
About the SQLite file only, so not run per backend."""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from vigil.config import Settings
from vigil.db.engine import is_transient, make_engine


def _engine(tmp_path: Path, busy_timeout_ms: int) -> Engine:
    settings = replace(Settings(home=tmp_path), sqlite_busy_timeout_ms=busy_timeout_ms)
    engine = make_engine(settings)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS t (n INTEGER)"))
    return engine


def _hold_write_lock(path: str, released: threading.Event, held: threading.Event) -> None:
    # Another writer: takes the lock, writes, and lets go when told to.
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO t VALUES (1)")
    held.set()
    released.wait(10)
    other.execute("COMMIT")
    other.close()


def _path(engine: Engine) -> str:
    database = engine.url.database
    assert database
    return database


def test_a_write_transaction_waits_for_the_lock_and_then_sees_the_other_write(
    tmp_path: Path,
) -> None:
    engine = _engine(tmp_path, busy_timeout_ms=10_000)
    released, held = threading.Event(), threading.Event()
    holder = threading.Thread(target=_hold_write_lock, args=(_path(engine), released, held))
    holder.start()
    assert held.wait(10)
    threading.Timer(0.3, released.set).start()
    with engine.begin() as conn:  # waits until the holder commits
        assert conn.execute(text("SELECT count(*) FROM t")).scalar_one() == 1
        conn.execute(text("INSERT INTO t VALUES (2)"))
    holder.join(10)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM t")).scalar_one() == 2
    # The busy timeout is back on the connection for whatever it runs next.
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA busy_timeout")).scalar_one() == 10_000
    engine.dispose()


def test_a_lock_held_past_the_busy_timeout_is_a_passing_outage(tmp_path: Path) -> None:
    engine = _engine(tmp_path, busy_timeout_ms=200)
    released, held = threading.Event(), threading.Event()
    holder = threading.Thread(target=_hold_write_lock, args=(_path(engine), released, held))
    holder.start()
    assert held.wait(10)
    try:
        with pytest.raises(OperationalError) as raised, engine.begin():
            pass
        assert is_transient(raised.value)
        # Reading needs no write lock; the busy timeout is back on the connection.
        with engine.execution_options(readonly=True).connect() as conn:
            assert conn.execute(text("PRAGMA busy_timeout")).scalar_one() == 200
    finally:
        released.set()
        holder.join(10)
    with engine.begin() as conn:  # usable again once the lock is free
        conn.execute(text("INSERT INTO t VALUES (3)"))
    engine.dispose()
