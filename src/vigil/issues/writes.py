"""How occurrence processing reads and writes the rows it touches, one message at a time
(`IssueWrites`: every call goes straight to the stores) or a chunk of messages in one
transaction (`ChunkWrites`: the rows the chunk needs are read with one query each, and
what it writes is held and written set-wise when the chunk ends).

Why: an occurrence ran 12 to 20 statements one after the other, at about 50 µs each in
SQLAlchemy, which bounded a consumer to about a thousand occurrences a second. A chunk of
hundreds of occurrences now reads its stored occurrences, events, hashes and groups (and
its status changes' dedupe records) with a query each, and writes its events,
occurrences and each touched group once.

The processing logic is the same in both: `ChunkWrites` answers every read as the
database would if the held writes had been made (what the chunk stored counts as
stored), and writes them before anything else reads those rows (`flush`). A held write
that fails when it is made (a concurrent consumer stored the same key) fails the chunk,
which the consumer then redoes one message per transaction with `IssueWrites`."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite

from vigil.db.bulk import insert_rows
from vigil.db.tables import (
    event,
    group,
    group_environment,
    group_inbox,
    grouphash,
    issue_occurrence,
    processed_message,
    quota_bucket,
)
from vigil.db.timestamps import as_utc
from vigil.issues import dedupe_store, event_store, gate_store, group_store
from vigil.issues import quota as quota_rules
from vigil.issues.batching import is_status_change_payload
from vigil.issues.enums import InboxReason
from vigil.issues.environment_store import ensure_group_environment, get_or_create_environment
from vigil.issues.errors import InvalidEventPayloadError
from vigil.issues.event_store import StoredEvent
from vigil.issues.fingerprint import md5_hex
from vigil.issues.group_store import Group, HashLookup
from vigil.issues.group_types import Quota
from vigil.issues.occurrence import IssueOccurrence
from vigil.issues.occurrence_store import occurrence_exists, occurrence_row, store_occurrence
from vigil.issues.rows import increment
from vigil.uuid_text import parse_uuid_hex

_UPDATE_GROUP = (
    update(group)
    .where(group.c.id == bindparam("p_id"))
    .values(times_seen=group.c.times_seen + bindparam("p_times_seen"))
)


# What the read-ahead selects: (the key's column compared for equality, or None; the
# column compared with a list; the columns selected). One equality and a list of plain
# values, so that each database uses the unique index (SQLite did not for a list of
# row values, and scanned the table).
_READS: dict[str, tuple[Any, Any, tuple[Any, ...]]] = {
    "processed": (
        processed_message.c.project_id,
        processed_message.c.message_id,
        (processed_message.c.message_id, processed_message.c.processed_at),
    ),
    "occurrences": (
        issue_occurrence.c.project_id,
        issue_occurrence.c.id,
        (issue_occurrence.c.id,),
    ),
    "events": (event.c.project_id, event.c.event_id, tuple(event.c)),
    "hashes": (grouphash.c.project_id, grouphash.c.hash, (grouphash.c.hash, grouphash.c.group_id)),
    "groups": (None, group.c.id, tuple(group.c)),
}
_MOST_KEYS = 128


@functools.cache
def _select_by_keys(name: str, size: int) -> Select[Any]:
    # One statement per table and power-of-two key count, built and compiled once: an
    # expanding IN is rendered anew at every execution, which cost more than the query.
    fixed, listed, selected = _READS[name]
    query = select(*selected).where(listed.in_([bindparam(f"k{i}") for i in range(size)]))
    if fixed is not None:
        query = query.where(fixed == bindparam("fixed"))
    if name == "groups":
        # Locked, in id order, as each would be when read on its own.
        query = query.order_by(group.c.id).with_for_update()
    return query


def _select_keys(conn: Connection, name: str, values: list[Any], fixed: object = None) -> list[Any]:
    """The rows of `_READS[name]` whose listed column is one of `values` (and whose
    equality column is `fixed`)."""
    found: list[Any] = []
    for start in range(0, len(values), _MOST_KEYS):
        part = values[start : start + _MOST_KEYS]
        size = 1 << (len(part) - 1).bit_length()
        part += [part[-1]] * (size - len(part))  # padded with a value already asked for
        params = {f"k{i}": value for i, value in enumerate(part)}
        if fixed is not None:
            params["fixed"] = fixed
        found.extend(conn.execute(_select_by_keys(name, size), params))
    return found


def _by_project(keys: Iterable[tuple[int, str]]) -> dict[int, list[str]]:
    grouped: dict[int, list[str]] = {}
    for project_id, value in keys:
        grouped.setdefault(project_id, []).append(value)
    return grouped


class IssueWrites:
    """Every read and write made at once, in the caller's transaction."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    # --- dedupe records ---------------------------------------------------------------
    def was_processed(self, project_id: int, message_id: str, now: datetime) -> bool:
        return dedupe_store.was_processed(self.conn, project_id, message_id, now)

    def mark_processed(self, project_id: int, message_id: str, now: datetime) -> None:
        dedupe_store.mark_processed(self.conn, project_id, message_id, now)

    # --- occurrences and events -------------------------------------------------------
    def occurrence_exists(self, occurrence_id: str, project_id: int) -> bool:
        return occurrence_exists(self.conn, occurrence_id, project_id)

    def store_occurrence(
        self,
        occurrence: IssueOccurrence,
        now: datetime,
        group_id: int | None,
        event_time: datetime,
    ) -> None:
        store_occurrence(self.conn, occurrence, now, group_id=group_id, event_time=event_time)

    def get_event(self, project_id: int, event_id: str) -> StoredEvent | None:
        return event_store.get_event(self.conn, project_id, event_id)

    def save_event(
        self, project_id: int, data: Mapping[str, Any], now: datetime, occurrence_id: str
    ) -> StoredEvent:
        return event_store.save_event(self.conn, project_id, data, now, occurrence_id=occurrence_id)

    def link_event_to_group(self, project_id: int, event_id: str, group_id: int) -> None:
        event_store.link_event_to_group(self.conn, project_id, event_id, group_id)

    # --- groups -----------------------------------------------------------------------
    def find_hash(self, project_id: int, hashed: str) -> HashLookup:
        return group_store.find_hash(self.conn, project_id, hashed)

    def get_group_for_update(self, group_id: int) -> Group | None:
        return group_store.get_group(self.conn, group_id, for_update=True)

    def update_group(self, grp: Group, times_seen: int, columns: Mapping[str, Any]) -> Group:
        """Add `times_seen` and write `columns`; the group as it now is. The row is
        locked (PostgreSQL) or the database is (SQLite) since it was read, so what the
        update made of it is known without reading it again."""
        self.conn.execute(_UPDATE_GROUP, {"p_id": grp.id, "p_times_seen": times_seen, **columns})
        return group_store.group_with(grp, {**columns, "times_seen": grp.times_seen + times_seen})

    def reload_group(self, group_id: int) -> Group:
        """The group as stored, after a write outside `update_group` (a regression)."""
        found = group_store.get_group(self.conn, group_id)
        assert found is not None
        return found

    def before_group_write(self, group_id: int) -> None:
        """A statement other than `update_group` is about to write the group, or a row
        that refers to it: what is held of it must be in the database."""

    def forget_groups(self) -> None:
        """Group rows may have been written by other means (a status change): nothing is
        held here, so nothing is to forget."""

    def create_group(
        self, project_id: int, hashed: str, values: Mapping[str, Any], now: datetime
    ) -> tuple[Group, bool]:
        return group_store.create_group(self.conn, project_id, hashed, values, now)

    def put_new_group_in_inbox(self, group_id: int, now: datetime) -> None:
        group_store.put_in_inbox(self.conn, group_id, InboxReason.NEW, now)

    def take_quota(self, key: str, quota: Quota, now: datetime) -> bool:
        return gate_store.take_quota(self.conn, key, quota, now)

    # --- environments -----------------------------------------------------------------
    def environment_id(self, project_id: int, name: str, now: datetime) -> int:
        return get_or_create_environment(self.conn, project_id, name, now)

    def ensure_group_environment(
        self,
        group_id: int,
        environment_id: int,
        release_id: int | None,
        seen: datetime,
        *,
        new_group: bool,
    ) -> bool:
        return ensure_group_environment(
            self.conn, group_id, environment_id, release_id, seen, new_group=new_group
        )

    def flush(self) -> None:
        """Write what is held (nothing is, here)."""


class ChunkWrites(IssueWrites):
    """The reads and writes of one chunk transaction: rows read ahead for the whole chunk
    (`read_ahead`), rows read once and remembered, writes held until `flush`. Made for
    one chunk attempt and dropped with it: if the chunk fails, nothing of it remains."""

    def __init__(self, conn: Connection) -> None:
        super().__init__(conn)
        # Rows read (or known absent), by key.
        self._processed: dict[tuple[int, str], datetime | None] = {}
        self._occurrences: dict[tuple[str, int], bool] = {}
        self._events: dict[tuple[int, str], StoredEvent | None] = {}
        self._hashes: dict[tuple[int, str], HashLookup] = {}
        self._groups: dict[int, Group] = {}
        self._environments: dict[tuple[int, str], int] = {}
        self._group_environments: set[tuple[int, int]] = set()
        self._quotas: dict[str, dict[int, int]] = {}
        self._quota_usage: dict[str, tuple[int, int]] = {}  # key: (bucket, window's units)
        self._absent_hashes: dict[int, int] = {}
        self._short_ids: dict[int, list[int]] = {}
        self._group_ids: list[int] = []
        self._last_group_id = 0
        # Writes held until flush.
        self._marks: dict[tuple[int, str], datetime] = {}
        self._new_events: dict[tuple[int, str], dict[str, Any]] = {}
        self._new_occurrences: list[dict[str, Any]] = []
        self._new_hashes: list[dict[str, Any]] = []
        self._group_updates: dict[int, tuple[int, dict[str, Any]]] = {}
        self._new_groups: dict[int, dict[str, Any]] = {}
        self._new_inbox: list[dict[str, Any]] = []
        self._new_group_environments: list[dict[str, Any]] = []
        self._quota_units: dict[tuple[str, int], int] = {}

    # --- reading ahead ----------------------------------------------------------------
    def read_ahead(self, payloads: Iterable[Mapping[str, Any]]) -> None:
        """Read, with one query each, the dedupe records, occurrences, events, hashes and
        groups the chunk's occurrence messages will ask for. Keys are taken from the raw
        messages as normalisation will make them; a key it would make differently is
        simply read on its own later."""
        messages: list[tuple[int, str]] = []
        occurrences: list[tuple[str, int]] = []
        events: list[tuple[int, str]] = []
        hashes: list[tuple[int, str]] = []
        for payload in payloads:
            project_id = payload.get("project_id")
            if not isinstance(project_id, int) or isinstance(project_id, bool):
                continue
            message_id = payload.get("id")
            if is_status_change_payload(payload):
                # Only status changes have dedupe records (see the consumer).
                if isinstance(message_id, str):
                    messages.append((project_id, dedupe_store.stored_id(message_id)))
            else:
                occurrence_id = parse_uuid_hex(message_id)
                if occurrence_id is not None:
                    occurrences.append((occurrence_id, project_id))
            embedded = payload.get("event")
            inner = embedded.get("event_id") if isinstance(embedded, Mapping) else None
            for raw in (payload.get("event_id"), inner):
                event_id = parse_uuid_hex(raw)
                if event_id is not None:
                    events.append((project_id, event_id))
            fingerprint = payload.get("fingerprint")
            if isinstance(fingerprint, list) and fingerprint and isinstance(fingerprint[0], str):
                hashes.append((project_id, md5_hex(fingerprint[0])))
        self._read_processed(messages)
        self._read_occurrences(occurrences)
        self._read_events(events)
        self._read_hashes(hashes)

    def _read_processed(self, keys: list[tuple[int, str]]) -> None:
        keys = [key for key in dict.fromkeys(keys) if key not in self._processed]
        if not keys:
            return
        self._processed.update(dict.fromkeys(keys))
        for project_id, message_ids in _by_project(keys).items():
            for message_id, processed_at in _select_keys(
                self.conn, "processed", message_ids, project_id
            ):
                self._processed[(project_id, message_id)] = as_utc(processed_at)

    def _read_occurrences(self, keys: list[tuple[str, int]]) -> None:
        keys = [key for key in dict.fromkeys(keys) if key not in self._occurrences]
        if not keys:
            return
        self._occurrences.update(dict.fromkeys(keys, False))
        by_project = _by_project((project_id, occurrence_id) for occurrence_id, project_id in keys)
        for project_id, occurrence_ids in by_project.items():
            for (occurrence_id,) in _select_keys(
                self.conn, "occurrences", occurrence_ids, project_id
            ):
                self._occurrences[(occurrence_id, project_id)] = True

    def _read_events(self, keys: list[tuple[int, str]]) -> None:
        keys = [key for key in dict.fromkeys(keys) if key not in self._events]
        if not keys:
            return
        self._events.update(dict.fromkeys(keys))
        for project_id, event_ids in _by_project(keys).items():
            for row in _select_keys(self.conn, "events", event_ids, project_id):
                self._events[(row.project_id, row.event_id)] = event_store.stored_event(row)

    def _read_hashes(self, keys: list[tuple[int, str]]) -> None:
        keys = [key for key in dict.fromkeys(keys) if key not in self._hashes]
        if not keys:
            return
        self._hashes.update(dict.fromkeys(keys, HashLookup(False, None)))
        group_ids = []
        for project_id, hashes in _by_project(keys).items():
            found = 0
            for hashed, group_id in _select_keys(self.conn, "hashes", hashes, project_id):
                found += 1
                self._hashes[(project_id, hashed)] = HashLookup(True, group_id)
                if group_id is not None and group_id not in self._groups:
                    group_ids.append(group_id)
            # As many new groups as this may be created: their short ids are reserved
            # at once when the first is (see _next_short_id).
            self._absent_hashes[project_id] = len(hashes) - found
        if group_ids:
            for row in _select_keys(self.conn, "groups", sorted(group_ids)):
                self._groups[row.id] = group_store.group_of(row)

    # --- dedupe records ---------------------------------------------------------------
    def was_processed(self, project_id: int, message_id: str, now: datetime) -> bool:
        key = (project_id, dedupe_store.stored_id(message_id))
        if key in self._marks:
            return True
        if key not in self._processed:
            return super().was_processed(project_id, message_id, now)
        processed_at = self._processed[key]
        return processed_at is not None and processed_at > now - dedupe_store.WINDOW

    def mark_processed(self, project_id: int, message_id: str, now: datetime) -> None:
        self._marks[(project_id, dedupe_store.stored_id(message_id))] = now

    # --- occurrences and events -------------------------------------------------------
    def occurrence_exists(self, occurrence_id: str, project_id: int) -> bool:
        key = (occurrence_id, project_id)
        if key not in self._occurrences:
            self._occurrences[key] = super().occurrence_exists(occurrence_id, project_id)
        return self._occurrences[key]

    def store_occurrence(
        self,
        occurrence: IssueOccurrence,
        now: datetime,
        group_id: int | None,
        event_time: datetime,
    ) -> None:
        row = occurrence_row(occurrence, now, group_id=group_id, event_time=event_time)
        self._new_occurrences.append(row)
        self._occurrences[(occurrence.id, occurrence.project_id)] = True

    def get_event(self, project_id: int, event_id: str) -> StoredEvent | None:
        key = (project_id, event_id)
        if key not in self._events:
            self._events[key] = super().get_event(project_id, event_id)
        return self._events[key]

    def save_event(
        self, project_id: int, data: Mapping[str, Any], now: datetime, occurrence_id: str
    ) -> StoredEvent:
        found = self.get_event(project_id, str(data["event_id"]))
        if found is not None:
            return found
        new = event_store.event_of(project_id, data, now)
        if len(new.event_id) != 32:
            raise InvalidEventPayloadError(f"event_id is not a 32-digit hex UUID: {new.event_id!r}")
        key = (project_id, new.event_id)
        self._events[key] = new
        self._new_events[key] = event_store.event_row(new, occurrence_id)
        return new

    def link_event_to_group(self, project_id: int, event_id: str, group_id: int) -> None:
        held = self._new_events.get((project_id, event_id))
        if held is None:
            self.before_group_write(group_id)
            super().link_event_to_group(project_id, event_id, group_id)
        elif held["group_id"] is None:
            held["group_id"] = group_id

    # --- groups -----------------------------------------------------------------------
    def find_hash(self, project_id: int, hashed: str) -> HashLookup:
        key = (project_id, hashed)
        if key not in self._hashes:
            self._hashes[key] = super().find_hash(project_id, hashed)
        return self._hashes[key]

    def get_group_for_update(self, group_id: int) -> Group | None:
        found = self._groups.get(group_id)
        if found is None:
            found = super().get_group_for_update(group_id)
            if found is not None:
                self._groups[group_id] = found
        return found

    def update_group(self, grp: Group, times_seen: int, columns: Mapping[str, Any]) -> Group:
        # The columns are the group's new values, not changes: the latest ones win.
        new = self._new_groups.get(grp.id)
        if new is not None:
            new["times_seen"] += times_seen
            new.update(columns)
        else:
            held_times, held_columns = self._group_updates.get(grp.id, (0, {}))
            self._group_updates[grp.id] = (held_times + times_seen, {**held_columns, **columns})
        updated = group_store.group_with(
            grp, {**columns, "times_seen": grp.times_seen + times_seen}
        )
        self._groups[grp.id] = updated
        return updated

    def before_group_write(self, group_id: int) -> None:
        if group_id in self._new_groups:
            self._insert_new_groups()
        self._flush_group(group_id)

    def reload_group(self, group_id: int) -> Group:
        found = super().reload_group(group_id)
        self._groups[group_id] = found
        return found

    def forget_groups(self) -> None:
        """Group rows may have been written by other means (a status change): write what
        is held for them and read them again when next asked."""
        for group_id in list(self._group_updates):
            self._flush_group(group_id)
        self._groups.clear()

    def _flush_group(self, group_id: int) -> None:
        held = self._group_updates.pop(group_id, None)
        if held is not None:
            times_seen, columns = held
            self.conn.execute(
                _UPDATE_GROUP, {"p_id": group_id, "p_times_seen": times_seen, **columns}
            )

    def create_group(
        self, project_id: int, hashed: str, values: Mapping[str, Any], now: datetime
    ) -> tuple[Group, bool]:
        # No savepoint: a concurrent creator of the same hash makes the held hash insert
        # fail at flush, and the chunk is redone one message at a time, where the race
        # is settled (see group_store.create_group). The group's id is reserved and its
        # row held: one insert per new group was most of a new fingerprint's cost.
        group_id = self._next_group_id(project_id)
        row, grp = group_store.new_group_row(
            project_id, group_id, self._next_short_id(project_id), values, now
        )
        self._new_groups[group_id] = row
        self._new_hashes.append(
            {"project_id": project_id, "hash": hashed, "group_id": grp.id, "date_added": now}
        )
        self._hashes[(project_id, hashed)] = HashLookup(True, grp.id)
        self._groups[grp.id] = grp
        return grp, True

    def _next_group_id(self, project_id: int) -> int:
        # Reserved in a block, as many as the chunk may create (see _next_short_id).
        if not self._group_ids:
            count = max(1, self._absent_hashes.get(project_id, 0))
            self._group_ids = group_store.reserve_group_ids(
                self.conn, count, above=self._last_group_id
            )
        self._last_group_id = self._group_ids.pop(0)
        return self._last_group_id

    def _insert_new_groups(self) -> None:
        if self._new_groups:
            insert_rows(self.conn, group, list(self._new_groups.values()))
            self._new_groups.clear()

    def _next_short_id(self, project_id: int) -> int:
        # Reserved in a block (one statement for the chunk instead of two per group);
        # what is left is given back at flush, so short ids keep no gaps.
        reserved = self._short_ids.setdefault(project_id, [])
        if not reserved:
            count = max(1, self._absent_hashes.get(project_id, 0))
            last = group_store.reserve_short_ids(self.conn, project_id, count)
            reserved.extend(range(last - count + 1, last + 1))
        self._absent_hashes[project_id] = self._absent_hashes.get(project_id, 0) - 1
        return reserved.pop(0)

    def put_new_group_in_inbox(self, group_id: int, now: datetime) -> None:
        self._new_inbox.append(
            {
                "group_id": group_id,
                "reason": int(InboxReason.NEW),
                "reason_details": {},
                "date_added": now,
            }
        )

    def take_quota(self, key: str, quota: Quota, now: datetime) -> bool:
        buckets = self._quotas.get(key)
        if buckets is None:
            buckets = gate_store.read_quota(self.conn, key, quota, now)
            self._quotas[key] = buckets
        timestamp = now.timestamp()
        current = quota_rules.bucket_of(timestamp, quota)
        # The window's sum is kept while the bucket stays the same: summing every bucket
        # of the window again for each new group was a thirtieth of a new group's cost.
        known = self._quota_usage.get(key)
        if known is not None and known[0] == current:
            used = known[1]
        else:
            used = quota_rules.window_usage(buckets, timestamp, quota)
        if not quota_rules.fits(used, quota):
            self._quota_usage[key] = (current, used)
            return False
        self._quota_usage[key] = (current, used + 1)
        buckets[current] = buckets.get(current, 0) + 1
        self._quota_units[(key, current)] = self._quota_units.get((key, current), 0) + 1
        return True

    # --- environments -----------------------------------------------------------------
    def environment_id(self, project_id: int, name: str, now: datetime) -> int:
        key = (project_id, name)
        if key not in self._environments:
            self._environments[key] = super().environment_id(project_id, name, now)
        return self._environments[key]

    def ensure_group_environment(
        self,
        group_id: int,
        environment_id: int,
        release_id: int | None,
        seen: datetime,
        *,
        new_group: bool,
    ) -> bool:
        key = (group_id, environment_id)
        if key in self._group_environments:
            return False
        self._group_environments.add(key)
        # A group this chunk created has only the environments it holds.
        if not new_group and group_id not in self._new_groups:
            return super().ensure_group_environment(
                group_id, environment_id, release_id, seen, new_group=False
            )
        self._new_group_environments.append(
            {
                "group_id": group_id,
                "environment_id": environment_id,
                "first_release_id": release_id,
                "first_seen": seen,
            }
        )
        return True

    # --- writing ----------------------------------------------------------------------
    def flush(self) -> None:
        """Make the held writes, a statement per table (one per touched group)."""
        conn = self.conn
        self._insert_new_groups()
        insert_rows(conn, grouphash, self._new_hashes)
        for group_id in list(self._group_updates):
            self._flush_group(group_id)
        insert_rows(conn, event, list(self._new_events.values()))
        insert_rows(conn, issue_occurrence, self._new_occurrences)
        insert_rows(conn, group_inbox, self._new_inbox)
        insert_rows(conn, group_environment, self._new_group_environments)
        for project_id, reserved in self._short_ids.items():
            if reserved:
                group_store.return_short_ids(conn, project_id, len(reserved))
        self._short_ids.clear()
        for (key, bucket), units in self._quota_units.items():
            increment(conn, quota_bucket, {"key": key, "bucket": bucket}, "count", units)
        if self._marks:
            rows = [
                {"project_id": project_id, "message_id": message_id, "processed_at": at}
                for (project_id, message_id), at in self._marks.items()
            ]
            insert_rows(
                conn, processed_message, rows, statement=_upsert_processed(conn.dialect.name)
            )
            self._processed.update(self._marks)
        for held in (
            self._new_hashes,
            self._new_occurrences,
            self._new_inbox,
            self._new_group_environments,
        ):
            held.clear()
        self._new_events.clear()
        self._quota_units.clear()
        self._marks.clear()


@functools.cache
def _upsert_processed(dialect: str) -> Any:
    # A dedupe record is new, or an expired one of the same id is renewed. Built once
    # per dialect.
    build = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = build(processed_message)
    return statement.on_conflict_do_update(
        index_elements=[processed_message.c.project_id, processed_message.c.message_id],
        set_={"processed_at": statement.excluded.processed_at},
    )
