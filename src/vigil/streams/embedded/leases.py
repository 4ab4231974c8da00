"""Group membership in the embedded log: one active member per consumer group and topic.

A member holds a lease row (member id, pid, host, heartbeat) for each topic it reads.
Another member of the group may take the lease only when it is free: released, held by
a process of this host that no longer runs (killed with SIGKILL, say), or not renewed
for longer than the lease timeout (a member on another host, or one that is stuck).
"""

from __future__ import annotations

import os
import socket
import sqlite3
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from vigil.streams.embedded.storage import write_transaction


@dataclass(frozen=True)
class Member:
    """One consumer instance: its id, and the process that runs it."""

    member_id: str
    pid: int
    host: str

    @classmethod
    def new(cls) -> Member:
        host = this_host()
        pid = os.getpid()
        return cls(f"{host}:{pid}:{uuid.uuid4().hex[:12]}", pid, host)


def this_host() -> str:
    """Where a pid means this process table: the host name, and on Linux the pid
    namespace, so that two containers sharing a log file never judge each other's pids."""
    try:
        namespace = f"/pidns:{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        namespace = ""
    return socket.gethostname() + namespace


def try_acquire(
    conn: sqlite3.Connection,
    group: str,
    topics: Sequence[str],
    member: Member,
    now: float,
    timeout: float,
) -> bool:
    """Take the leases of `group` on all of `topics` for `member`, or none of them.
    False if any is held by a live member other than `member`."""
    if not all(_free_for(conn, group, t, member, now, timeout) for t in topics):
        return False  # decided without taking the write lock: waiting members stay cheap
    with write_transaction(conn):
        # Decide again under the write lock: another member may have been quicker.
        if not all(_free_for(conn, group, t, member, now, timeout) for t in topics):
            return False
        conn.executemany(
            "INSERT OR REPLACE INTO leases (group_name, topic, member_id, pid, host, heartbeat) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [(group, t, member.member_id, member.pid, member.host, now) for t in topics],
        )
    return True


def renew(
    conn: sqlite3.Connection, group: str, topics: Sequence[str], member: Member, now: float
) -> bool:
    """Refresh `member`'s leases; False if it no longer holds all of them (another member
    took one over), in which case it holds none any more."""
    with write_transaction(conn):
        held = _renew_held(conn, group, topics, member, now)
        if not held:
            release_held(conn, group, member)
    return held


def renew_in_transaction(
    conn: sqlite3.Connection, group: str, topics: Sequence[str], member: Member, now: float
) -> bool:
    """`renew`, inside the caller's write transaction (which it does not end)."""
    return _renew_held(conn, group, topics, member, now)


def _renew_held(
    conn: sqlite3.Connection, group: str, topics: Sequence[str], member: Member, now: float
) -> bool:
    cur = conn.executemany(
        "UPDATE leases SET heartbeat = ? WHERE group_name = ? AND topic = ? AND member_id = ?",
        [(now, group, t, member.member_id) for t in topics],
    )
    return cur.rowcount == len(topics)


def release(conn: sqlite3.Connection, group: str, member: Member) -> None:
    """Give up `member`'s leases so that a waiting member takes over at once."""
    with write_transaction(conn):
        release_held(conn, group, member)


def release_held(conn: sqlite3.Connection, group: str, member: Member) -> None:
    conn.execute(
        "DELETE FROM leases WHERE group_name = ? AND member_id = ?", (group, member.member_id)
    )


def holder(conn: sqlite3.Connection, group: str, topic: str) -> str | None:
    """The member id holding `group`'s lease on `topic`, if any."""
    row = conn.execute(
        "SELECT member_id FROM leases WHERE group_name = ? AND topic = ?", (group, topic)
    ).fetchone()
    return None if row is None else str(row[0])


def _free_for(
    conn: sqlite3.Connection, group: str, topic: str, member: Member, now: float, timeout: float
) -> bool:
    row = conn.execute(
        "SELECT member_id, pid, host, heartbeat FROM leases WHERE group_name = ? AND topic = ?",
        (group, topic),
    ).fetchone()
    if row is None:
        return True
    member_id, pid, host, heartbeat = row
    if member_id == member.member_id:
        return True
    if now - heartbeat > timeout:
        return True
    return host == member.host and not process_alive(pid)


def process_alive(pid: int) -> bool:
    """Whether process `pid` of this host still runs (a zombie, killed but not yet
    reaped by its parent, does not)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: it exists
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False  # no /proc (not Linux) or gone just now: the kill(0) answer stands
    # The state follows the command name, which is in parentheses and may hold spaces.
    fields = stat.rpartition(b")")[2].split()
    return bool(fields) and fields[0] == b"Z"
