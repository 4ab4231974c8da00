"""The embedded log's SQLite file: its schema, how it is opened, and the checks that
refuse any file that is not a vigil log.

The file is marked as ours twice over: `PRAGMA application_id` says "vigil log" and
`PRAGMA user_version` holds the format version. Opening never re-initialises or
truncates a file that already holds something: a file that is not SQLite, a SQLite file
of someone else's, a damaged file, or a log written by a newer vigil each give a
`LogError` naming the file and what is wrong.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import msgpack

from vigil.streams.backend import LogError

APPLICATION_ID = 0x5647_4C47  # "VGLG": a vigil log
FORMAT_VERSION = 1
SQLITE_MAGIC = b"SQLite format 3\x00"
_OPEN_RETRY_S = 0.01

_SCHEMA = (
    """CREATE TABLE topics (
        name TEXT PRIMARY KEY,
        partitions INTEGER NOT NULL
    )""",
    # One row per partition: where its next message goes, its oldest kept message, and
    # the last broker timestamp given (ms since the epoch), which keeps timestamps
    # non-decreasing. Its messages are in table `messages_{id}` (see `messages_table`).
    """CREATE TABLE partitions (
        id INTEGER PRIMARY KEY,
        topic TEXT NOT NULL REFERENCES topics (name),
        partition INTEGER NOT NULL,
        next_offset INTEGER NOT NULL DEFAULT 0,
        low_offset INTEGER NOT NULL DEFAULT 0,
        last_timestamp INTEGER NOT NULL DEFAULT 0,
        UNIQUE (topic, partition)
    )""",
    # A row per (group, topic, partition) from the moment the group subscribes, so that
    # trimming waits for a group even before its first commit.
    """CREATE TABLE committed_offsets (
        group_name TEXT NOT NULL,
        topic TEXT NOT NULL,
        partition INTEGER NOT NULL,
        offset INTEGER NOT NULL,
        PRIMARY KEY (group_name, topic, partition)
    ) WITHOUT ROWID""",
    # The one active member of a group on a topic.
    """CREATE TABLE leases (
        group_name TEXT NOT NULL,
        topic TEXT NOT NULL,
        member_id TEXT NOT NULL,
        pid INTEGER NOT NULL,
        host TEXT NOT NULL,
        heartbeat REAL NOT NULL,
        PRIMARY KEY (group_name, topic)
    )""",
)


def messages_table(partition_id: int) -> str:
    """The table of one partition's messages: (offset, key, value, headers, timestamp).

    One table per partition, like a Kafka partition's own log: the offset is the rowid,
    so writing appends at the right edge of one b-tree (as cheap as a plain insert), and
    reading from an offset and trimming below one are range operations on it."""
    return f"messages_{int(partition_id)}"


def create_partition(conn: sqlite3.Connection, topic: str, index: int) -> int:
    """Add partition `index` of `topic` (in the caller's write transaction); its row id."""
    cur = conn.execute("INSERT INTO partitions (topic, partition) VALUES (?, ?)", (topic, index))
    partition_id = int(cur.lastrowid or 0)
    conn.execute(
        f"""CREATE TABLE {messages_table(partition_id)} (
            offset INTEGER PRIMARY KEY,
            key BLOB,
            value BLOB NOT NULL,
            headers BLOB,
            timestamp INTEGER NOT NULL
        )"""
    )
    return partition_id


def open_log(path: Path, busy_timeout_ms: int) -> sqlite3.Connection:
    """A connection to the log at `path`, which is created (with the current format) if
    missing or empty. LogError if the file is not a vigil log this version can use.

    The connection is in autocommit mode (transactions are explicit, see
    `write_transaction`) and may be used from several threads if the caller serialises
    its use."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LogError(f"cannot create the directory of the embedded log {path}: {exc}") from None
    try:
        conn = sqlite3.connect(
            path,
            timeout=busy_timeout_ms / 1000,
            isolation_level=None,
            check_same_thread=False,
        )
    except sqlite3.Error as exc:
        raise LogError(f"cannot open the embedded log {path}: {exc}") from None
    # While another process creates the file, or switches it to WAL, SQLite can answer
    # "locked" without waiting on the busy timeout; so wait here, as long.
    deadline = time.monotonic() + busy_timeout_ms / 1000
    try:
        while True:
            try:
                _prepare(conn, path)
                return conn
            except sqlite3.OperationalError as exc:
                if not _busy(exc) or time.monotonic() > deadline:
                    raise
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                time.sleep(_OPEN_RETRY_S)
    except sqlite3.DatabaseError as exc:
        conn.close()
        if isinstance(exc, sqlite3.OperationalError) and _busy(exc):
            raise LogError(
                f"the embedded log {path} stayed locked by another process for "
                f"{busy_timeout_ms} ms (VIGIL_SQLITE_BUSY_TIMEOUT_MS)"
            ) from None
        if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_NOTADB:
            _refuse_foreign(path)
        raise LogError(
            f"the embedded log {path} is damaged or unreadable ({exc}); move it away to "
            "start a new log"
        ) from None
    except BaseException:
        conn.close()
        raise


def _busy(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def _refuse_foreign(path: Path) -> None:
    """LogError naming a file SQLite found not to be a database at all ("file is not a
    database" names neither the file nor the cause); nothing if it is SQLite's.

    Only once SQLite has refused it: reading the file outside SQLite, then closing it,
    would drop every POSIX lock this process holds on it, those of its open log
    connections included (another process would then delete the WAL under them)."""
    try:
        with path.open("rb") as f:
            head = f.read(len(SQLITE_MAGIC))
    except OSError:
        return
    if head and head != SQLITE_MAGIC:
        raise LogError(
            f"{path} is not a vigil log: it is not a SQLite database (it starts with "
            f"{head[:8]!r}). Move it away, or point VIGIL_HOME elsewhere"
        )


def _marks(conn: sqlite3.Connection) -> tuple[int, int, list[str]]:
    """The file's application id, format version and tables, from one snapshot (another
    process may be creating the log meanwhile)."""
    own = not conn.in_transaction
    if own:
        conn.execute("BEGIN")
    try:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            ).fetchall()
        ]
    finally:
        if own:
            conn.execute("COMMIT")
    return int(app_id), int(version), tables


def _foreign(path: Path, app_id: int, tables: list[str]) -> LogError:
    shown = ", ".join(tables[:5]) + (", ..." if len(tables) > 5 else "")
    return LogError(
        f"{path} is a SQLite database but not a vigil log (application_id {app_id:#x}, "
        f"tables: {shown or 'none'}). Refusing to touch it: move it away, or point "
        "VIGIL_HOME elsewhere"
    )


def _prepare(conn: sqlite3.Connection, path: Path) -> None:
    app_id, version, tables = _marks(conn)
    if app_id == 0 and version == 0 and not tables:
        _initialise(conn, path)
        app_id, version, tables = _marks(conn)
    if app_id != APPLICATION_ID:
        raise _foreign(path, app_id, tables)
    if version > FORMAT_VERSION:
        raise LogError(
            f"the embedded log {path} has format version {version}, newer than this vigil "
            f"understands ({FORMAT_VERSION}): it was written by a newer vigil. Upgrade vigil"
        )
    if version < 1:
        raise LogError(f"the embedded log {path} is marked as a vigil log but has no format")
    # WAL: readers never block the writer and the writer never blocks readers, and a
    # commit is one append to the WAL file. (Persistent; repeating it is a no-op.)
    conn.execute("PRAGMA journal_mode=WAL")
    # synchronous=NORMAL: a committed transaction is in the WAL file before COMMIT
    # returns, so it survives the crash or SIGKILL of any process; only an OS crash or
    # power loss can lose the last few commits (never corrupt the file). FULL would add
    # an fsync to every commit for power-loss durability, which vigil's database (also
    # NORMAL) would not have anyway: the log cannot be more durable than the database
    # that applies it.
    conn.execute("PRAGMA synchronous=NORMAL")


def _initialise(conn: sqlite3.Connection, path: Path) -> None:
    conn.execute("PRAGMA journal_mode=WAL")
    with write_transaction(conn):
        # Another process may have initialised the file since we looked.
        app_id, version, tables = _marks(conn)
        if app_id == APPLICATION_ID:
            return
        if app_id != 0 or version != 0 or tables:
            raise _foreign(path, app_id, tables)
        for statement in _SCHEMA:
            conn.execute(statement)
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute(f"PRAGMA user_version = {FORMAT_VERSION}")


@contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """One write transaction. `BEGIN IMMEDIATE` takes the file's write lock up front, so
    writers in several processes queue on the busy timeout instead of failing when a
    read transaction tries to become a write one."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def log_error(path: Path, doing: str, exc: BaseException) -> LogError:
    """A LogError for a SQLite failure while `doing` something with the log at `path`."""
    return LogError(f"embedded log {path}: cannot {doing}: {exc}")


def encode_headers(headers: Sequence[tuple[str, bytes]]) -> bytes | None:
    """Headers as stored: msgpack `[[name, value], ...]`, or NULL for none (the common case)."""
    if not headers:
        return None
    return bytes(msgpack.packb([[name, value] for name, value in headers], use_bin_type=True))


def decode_headers(blob: bytes | None) -> list[tuple[str, bytes]]:
    if blob is None:
        return []
    return [(name, value) for name, value in msgpack.unpackb(blob, raw=False)]
