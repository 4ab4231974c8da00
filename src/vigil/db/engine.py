"""The database engine: the one place that knows SQLite from PostgreSQL.

SQLite runs in WAL mode with a busy timeout, and every write transaction starts with
`BEGIN IMMEDIATE`, so two processes that both write wait for each other instead of
failing on a lock upgrade. Connections opened with `readonly=True` start a deferred
transaction and never block writers.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url

from vigil.config import Settings


class DatabaseError(Exception):
    """The database cannot be used; the message says why and what to do."""


CACHE_KIB = 16384
"""Each SQLite connection's page cache (SQLite's default: 2 MiB). A consumer's chunk
transaction dirties more pages than 2 MiB holds (events, occurrences and the indexes of
random ids); SQLite then spilled them to the WAL mid-transaction and read them back.
Pages are allocated as used: an idle connection does not take it."""


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def json_dumps(value: Any) -> str:
    """JSON columns' text. orjson is several times faster than the standard encoder,
    which mattered for the events and occurrences written in bulk; what orjson refuses
    (an integer beyond 64 bits) is left to the standard encoder."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return json.dumps(value)


def make_engine(settings: Settings, *, pool_size: int = 5) -> Engine:
    url = make_url(settings.resolved_database_url)
    if url.get_backend_name() == "sqlite":
        path = url.database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"timeout": settings.sqlite_busy_timeout_ms / 1000},
            json_serializer=json_dumps,
        )
        _configure_sqlite(engine, settings.sqlite_busy_timeout_ms)
        return engine
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        json_serializer=json_dumps,
    )


def _configure_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        # Take transaction control away from the driver: we emit BEGIN ourselves.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        cur.close()
        # SQLite's own lower() changes ASCII letters only, so a search for "über" would
        # not find "Über"; Python's matches PostgreSQL's lower() on a UTF-8 database.
        dbapi_conn.create_function("lower", 1, _unicode_lower, deterministic=True)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        if conn.get_execution_options().get("readonly"):
            conn.exec_driver_sql("BEGIN")
        else:
            _begin_immediate(conn, busy_timeout_ms)


def _unicode_lower(value: str | bytes | int | float | None) -> str | bytes | int | float | None:
    return value.lower() if isinstance(value, str) else value


_FIRST_PAUSE_S = 0.0002
_LONGEST_PAUSE_S = 0.002


def _begin_immediate(conn: Any, busy_timeout_ms: int) -> None:
    """Take SQLite's write lock, waiting up to the busy timeout for another process to
    let go of it. SQLite's own wait sleeps in growing steps of up to 100 ms and checks
    only between them: with two processes writing in turns (a consumer and the clock),
    most of each wait was sleeping past the moment the lock was free. This polls every
    2 ms at most instead."""
    raw = conn.connection.driver_connection
    raw.execute("PRAGMA busy_timeout=0")
    try:
        deadline = time.monotonic() + busy_timeout_ms / 1000
        pause = _FIRST_PAUSE_S
        while time.monotonic() < deadline:
            try:
                raw.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    break  # not a wait: the last try below reports it
            time.sleep(pause)
            pause = min(pause * 2, _LONGEST_PAUSE_S)
        # The last try, through SQLAlchemy, so that its error is reported as any other.
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    finally:
        raw.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")


def serialize(conn: Connection, lock_id: int) -> None:
    """Make concurrent transactions that call this with the same id run one at a time.

    SQLite write transactions already do (`BEGIN IMMEDIATE`); PostgreSQL takes an
    advisory lock held until the transaction ends."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_id})


# SQLite reports both "try again" and "this statement is wrong" as OperationalError;
# only these mean the database was busy or briefly unreachable.
_SQLITE_TRANSIENT = (
    "locked",
    "busy",
    "disk i/o error",
    "unable to open database file",
    # SQLITE_FULL: a full disk is an outage to wait out, not a message to dead-letter
    "database or disk is full",
)
_PG_QUERY_CANCELED = "57014"  # statement timeout: may be the message's own doing


def is_transient(exc: BaseException) -> bool:
    """Whether `exc` says the database was unavailable for a moment (connection lost,
    busy or locked, serialization conflict, deadlock), so that the same work may succeed
    when retried. Everything else is taken as a property of the data."""
    for err in (exc, exc.__cause__):
        if err is None:
            continue
        if isinstance(err, sa_exc.DBAPIError) and err.connection_invalidated:
            return True
        if isinstance(err, sa_exc.DisconnectionError | sa_exc.TimeoutError):
            return True
        if isinstance(err, sa_exc.OperationalError):
            orig = err.orig
            if isinstance(orig, sqlite3.OperationalError):
                text = str(orig).lower()
                return any(marker in text for marker in _SQLITE_TRANSIENT)
            # PostgreSQL's operational errors: connection failures, serialization
            # failures, deadlocks, shutdowns, resource exhaustion.
            return getattr(orig, "sqlstate", None) != _PG_QUERY_CANCELED
    return False
