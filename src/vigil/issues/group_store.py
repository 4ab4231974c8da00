"""Groups (issues) and their fingerprint hashes, activity, history and inbox entries:
reading and writing rows. What the values are is decided in `grouping` and
`status_change`; this module only moves them.

Two consumers may create the group of one fingerprint at once: the group, its short id
and its hash are inserted in one savepoint, and the loser of the race on the hash's
unique key rolls that savepoint back and takes the winner's group."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, bindparam, delete, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from vigil.db.tables import activity, group, group_history, group_inbox, grouphash, project_counter
from vigil.db.timestamps import as_utc
from vigil.issues.enums import ActivityType, GroupHistoryStatus, InboxReason
from vigil.issues.rows import increment, insert_if_absent


class GroupNotFound(LookupError):
    """No group with that id."""


@dataclass(frozen=True)
class Group:
    """A group row."""

    id: int
    project_id: int
    short_id: int
    type: int
    title: str
    culprit: str
    level: int
    message: str
    platform: str | None
    status: int
    substatus: int | None
    priority: int | None
    priority_locked: bool
    first_seen: datetime
    last_seen: datetime
    active_at: datetime | None
    resolved_at: datetime | None
    times_seen: int
    first_release_id: int | None
    assignee: str | None
    data: dict[str, Any]


_GROUP_FIELDS = frozenset(field.name for field in fields(Group))


def group_with(grp: Group, changes: Mapping[str, Any]) -> Group:
    """`grp` with some fields changed, as `dataclasses.replace` makes it, without its
    walk over every field and frozen-instance set-up (this runs for every occurrence of
    an existing group, and a group has 21 fields)."""
    unknown = changes.keys() - _GROUP_FIELDS
    if unknown:
        raise TypeError(f"Group has no field(s) {sorted(unknown)}")
    new = object.__new__(Group)
    new.__dict__.update(grp.__dict__)
    new.__dict__.update(changes)
    return new


def group_of(row: Row[Any]) -> Group:
    """A group row as a Group."""
    values = row._asdict()
    for name in ("first_seen", "last_seen", "active_at", "resolved_at"):
        if values[name] is not None:
            values[name] = as_utc(values[name])
    values.pop("date_added", None)
    return Group(**values)


# Statements run for every occurrence are built once (building one costs more than
# running it on SQLite).
_GET = select(group).where(group.c.id == bindparam("p_id"))
_LOCK = _GET.with_for_update()
_FIND_HASH = select(grouphash.c.group_id).where(
    grouphash.c.project_id == bindparam("p_project"), grouphash.c.hash == bindparam("p_hash")
)

_COUNTER = select(project_counter.c.value).where(
    project_counter.c.project_id == bindparam("p_project")
)
_INSERT_GROUP = insert(group).returning(group.c.id)
_TOP_GROUP_ID = select(func.max(group.c.id))
_NEXT_GROUP_IDS = text(
    "SELECT nextval(pg_get_serial_sequence('\"group\"', 'id')) FROM generate_series(1, :n)"
)
_INSERT_HASH = insert(grouphash)


def get_group(conn: Connection, group_id: int, *, for_update: bool = False) -> Group | None:
    """The group with that id, or None. `for_update` locks the row (PostgreSQL) until the
    transaction ends, so that read-decide-write sequences do not interleave."""
    row = conn.execute(_LOCK if for_update else _GET, {"p_id": group_id}).first()
    return None if row is None else group_of(row)


@dataclass(frozen=True)
class HashLookup:
    """A fingerprint hash's row: `exists` False when the hash was never seen; `group_id`
    None when it is known but belongs to no group."""

    exists: bool
    group_id: int | None


def find_hash(conn: Connection, project_id: int, hashed: str) -> HashLookup:
    """The group a hashed fingerprint part maps to in the project."""
    row = conn.execute(_FIND_HASH, {"p_project": project_id, "p_hash": hashed}).first()
    if row is None:
        return HashLookup(False, None)
    return HashLookup(True, row.group_id)


def reserve_short_ids(conn: Connection, project_id: int, count: int = 1) -> int:
    """Take the project's next `count` short ids; returns the last of them (the counter
    row is then held by this transaction until it ends)."""
    increment(conn, project_counter, {"project_id": project_id}, "value", count)
    return int(conn.execute(_COUNTER, {"p_project": project_id}).scalar_one())


def return_short_ids(conn: Connection, project_id: int, count: int) -> None:
    """Give back the last `count` short ids this transaction reserved and did not use."""
    increment(conn, project_counter, {"project_id": project_id}, "value", -count)


def create_group(
    conn: Connection,
    project_id: int,
    hashed: str,
    values: Mapping[str, Any],
    now: datetime,
) -> tuple[Group, bool]:
    """Create a group with `values` for the hash, unless the hash already has one (or a
    concurrent transaction just gave it one): (the group, whether it is new). LookupError
    if the hash exists without a group."""
    try:
        with conn.begin_nested():
            grp = insert_group(conn, project_id, values, now)
            conn.execute(
                _INSERT_HASH,
                {"project_id": project_id, "hash": hashed, "group_id": grp.id, "date_added": now},
            )
    except IntegrityError:
        found = find_hash(conn, project_id, hashed)
        if found.group_id is None:
            raise LookupError(f"hash {hashed} of project {project_id} has no group") from None
        existing = get_group(conn, found.group_id)
        assert existing is not None
        return existing, False
    return grp, True


def insert_group(
    conn: Connection,
    project_id: int,
    values: Mapping[str, Any],
    now: datetime,
    *,
    short_id: int | None = None,
) -> Group:
    """Insert a group with `short_id`, by default the project's next one (no hash: the
    caller adds it), and every other column in `values`; the group as stored, made from
    them (reading all columns back cost as much as the insert)."""
    if short_id is None:
        short_id = reserve_short_ids(conn, project_id)
    row = {"project_id": project_id, "short_id": short_id, "date_added": now, **values}
    group_id = conn.execute(_INSERT_GROUP, row).scalar_one()
    row["id"] = group_id
    del row["date_added"]
    return Group(**row)


def reserve_group_ids(conn: Connection, count: int, *, above: int = 0) -> list[int]:
    """Ids for `count` groups this transaction is about to insert, all greater than
    `above` (the last id it reserved). PostgreSQL takes them from the id sequence (an id
    left unused is skipped, as a rolled-back insert's would be); SQLite gives the ones
    after the largest in use, which nobody else can take while this transaction holds
    the database's write lock."""
    if conn.dialect.name == "postgresql":
        return [int(i) for i in conn.execute(_NEXT_GROUP_IDS, {"n": count}).scalars()]
    top = max(int(conn.execute(_TOP_GROUP_ID).scalar() or 0), above)
    return list(range(top + 1, top + 1 + count))


def new_group_row(
    project_id: int, group_id: int, short_id: int, values: Mapping[str, Any], now: datetime
) -> tuple[dict[str, Any], Group]:
    """A group row to insert with every column given, and the group it will be."""
    row = {"id": group_id, "project_id": project_id, "short_id": short_id, **values}
    grp = Group(**row)
    row["date_added"] = now
    return row, grp


def update_group(conn: Connection, group_id: int, **values: Any) -> None:
    """Write columns of a group."""
    conn.execute(update(group).where(group.c.id == group_id).values(**values))


def add_activity(
    conn: Connection,
    grp: Group,
    kind: ActivityType,
    data: Mapping[str, Any],
    now: datetime,
) -> None:
    """Append an entry to the group's activity log."""
    conn.execute(
        insert(activity).values(
            project_id=grp.project_id,
            group_id=grp.id,
            type=int(kind),
            data=dict(data),
            datetime=now,
        )
    )


def add_history(conn: Connection, grp: Group, status: GroupHistoryStatus, now: datetime) -> None:
    """Append a row to the group's status history."""
    conn.execute(
        insert(group_history).values(
            project_id=grp.project_id, group_id=grp.id, status=str(status), date_added=now
        )
    )


def put_in_inbox(
    conn: Connection,
    group_id: int,
    reason: InboxReason,
    now: datetime,
    details: Mapping[str, Any] | None = None,
) -> None:
    """Put the group in the inbox of issues to review, or update why it is there."""
    values = {"reason": int(reason), "reason_details": dict(details or {}), "date_added": now}
    if not insert_if_absent(conn, group_inbox, {"group_id": group_id, **values}):
        conn.execute(update(group_inbox).where(group_inbox.c.group_id == group_id).values(**values))


def remove_from_inbox(conn: Connection, group_id: int) -> None:
    """Take the group out of the inbox (resolved, ignored, reviewed)."""
    conn.execute(delete(group_inbox).where(group_inbox.c.group_id == group_id))
