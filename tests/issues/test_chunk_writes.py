"""Chunks applied set-wise (`ChunkWrites`) leave exactly the rows that applying each
message alone leaves, on both databases: the same scenario goes to two projects, one
as a chunk, one message per transaction, and every table the consumer writes is
compared. The scenario mixes what a chunk must answer as the database would: repeats of
a group (one held update), an older event, a new environment, a release, a re-sent
message id, an occurrence naming an event stored earlier in the chunk, an event shared
by two occurrences, a status change between occurrences (held writes made first), a
regression, the noise gate, the rate limit and a category mismatch."""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import Connection, Engine, select
from sqlalchemy.exc import IntegrityError

from tests.issues.occurrences import (
    FEEDBACK,
    N_PLUS_ONE,
    T0,
    event_payload,
    make_project,
    occurrence,
    status_change,
)
from vigil.db.tables import (
    activity,
    environment,
    event,
    group,
    group_environment,
    group_history,
    group_inbox,
    grouphash,
    issue_occurrence,
    processed_message,
    quota_bucket,
)
from vigil.issues import gate_store
from vigil.issues.consumer import CHUNK_MESSAGES, apply_one, process_occurrence_groups
from vigil.issues.enums import ActivityType, GroupStatus, GroupSubStatus
from vigil.issues.fingerprint import md5_hex
from vigil.issues.group_types import Quota
from vigil.issues.occurrence_processing import DEFAULT_PROCESSING
from vigil.issues.snooze import Snooze
from vigil.issues.snooze_store import set_snooze
from vigil.issues.status_change_processing import update_group_status
from vigil.issues.writes import ChunkWrites
from vigil.tenancy.store import Project

NOW = T0 + timedelta(hours=1)
PROCESSING = replace(
    DEFAULT_PROCESSING,
    rate_limit=Quota(3600, 60, 10),
    resolve_assignee=lambda _conn, _org, actor: "user:7" if actor == "alice" else None,
)


def _ids(n: int) -> list[str]:
    return [uuid.UUID(int=i + 1).hex for i in range(n)]


def scenario(project_id: int) -> list[dict[str, Any]]:
    """The same messages (same ids) for any project."""
    ids = iter(_ids(200))

    def occ(fp: str, at: datetime, **extra: Any) -> dict[str, Any]:
        payload = occurrence(project_id, fp, at=at, **extra)
        payload["id"] = next(ids)
        if "event" in payload and "event_id" not in extra:
            payload["event_id"] = next(ids)
            payload["event"]["event_id"] = payload["event_id"]
        return payload

    first = occ("fp-a", T0)
    staging = occ(
        "fp-a",
        T0 + timedelta(minutes=1),
        level="warning",
        event=event_payload(project_id, "", T0 + timedelta(minutes=1), environment="staging"),
    )
    shared = occ("fp-a", T0 + timedelta(minutes=20))
    messages = [
        first,
        staging,
        occ("fp-a", T0 - timedelta(minutes=1)),
        dict(staging),  # the same message id again: skipped
        occ(
            "fp-b",
            T0,
            event=event_payload(project_id, "", T0, release="1.0", environment="production"),
        ),
        occ("fp-a", T0 + timedelta(minutes=2), with_event=False, event_id=first["event_id"]),
        {**status_change(project_id, "fp-a", GroupStatus.RESOLVED, None), "id": next(ids)},
        occ("fp-a", T0 + timedelta(minutes=10)),  # regresses the resolved group
        occ("fp-a", T0 + timedelta(minutes=11)),
        shared,
        # Another occurrence of the event just stored: the event is not stored twice.
        same_event(occ("fp-a", T0 + timedelta(minutes=21)), shared["event_id"]),
        occ("fp-a", T0 + timedelta(minutes=22), type=FEEDBACK),  # category mismatch
    ]
    messages += [occ("fp-noisy", T0 + timedelta(seconds=i), type=N_PLUS_ONE) for i in range(5)]
    messages += [occ("fp-limited", T0 + timedelta(seconds=i)) for i in range(12)]
    messages += [occ(f"fp-{i}", T0) for i in range(20)]
    # A new group with an assignee: its activity row refers to the group created here.
    messages.append(occ("fp-assigned", T0, assignee="alice"))
    for payload in messages:
        if payload.get("event") and not payload["event"].get("event_id"):
            payload["event"]["event_id"] = payload["event_id"]
    return messages


def chunks_redone() -> float:
    return REGISTRY.get_sample_value("vigil_issue_chunks_redone_total") or 0.0


def same_event(payload: dict[str, Any], event_id: str) -> dict[str, Any]:
    payload["event_id"] = event_id
    payload["event"]["event_id"] = event_id
    return payload


def snapshot(engine: Engine, project_id: int) -> dict[str, Any]:
    """Every row the consumer wrote for the project, keyed so that two projects compare
    (groups by fingerprint hash, not id)."""
    with engine.connect() as conn:
        hashes = {
            row.group_id: row.hash
            for row in conn.execute(select(grouphash).where(grouphash.c.project_id == project_id))
        }
        names = {
            row.id: row.name
            for row in conn.execute(
                select(environment).where(environment.c.project_id == project_id)
            )
        }

        def rows(table: Any, *columns: str, where: Any) -> Counter[tuple[Any, ...]]:
            found: Counter[tuple[Any, ...]] = Counter()
            for row in conn.execute(select(table).where(where)):
                values = row._asdict()
                if "group_id" in values:
                    values["group_id"] = hashes.get(values["group_id"])
                if "environment_id" in values:
                    values["environment_id"] = names[values["environment_id"]]
                # Keys that name the project (in stored payloads) are the same for both.
                found[
                    tuple(
                        repr(values[c]).replace(f"'project_id': {project_id}", "'project_id': P")
                        for c in columns
                    )
                ] += 1
            return found

        in_project = group.c.project_id == project_id
        group_ids = select(group.c.id).where(in_project)
        return {
            "groups": {
                hashes[row.id]: (
                    row.times_seen,
                    row.status,
                    row.substatus,
                    row.first_seen,
                    row.last_seen,
                    row.level,
                    row.culprit,
                    row.title,
                    row.message,
                    row.data,
                    row.first_release_id is not None,
                    row.priority,
                    row.short_id,
                )
                for row in conn.execute(select(group).where(in_project))
            },
            "events": rows(
                event,
                "event_id",
                "group_id",
                "occurrence_id",
                "timestamp",
                "environment",
                where=event.c.project_id == project_id,
            ),
            "occurrences": rows(
                issue_occurrence,
                "id",
                "group_id",
                "event_id",
                "data",
                where=issue_occurrence.c.project_id == project_id,
            ),
            "group_environments": rows(
                group_environment,
                "group_id",
                "environment_id",
                "first_seen",
                where=group_environment.c.group_id.in_(group_ids),
            ),
            "inbox": rows(
                group_inbox, "group_id", "reason", where=group_inbox.c.group_id.in_(group_ids)
            ),
            "activity": rows(
                activity, "group_id", "type", "data", where=activity.c.project_id == project_id
            ),
            "history": rows(
                group_history, "group_id", "status", where=group_history.c.project_id == project_id
            ),
            "processed": rows(
                processed_message, "message_id", where=processed_message.c.project_id == project_id
            ),
            "quota": sorted(
                (row.key.replace(str(project_id), "P"), row.bucket, row.count)
                for row in conn.execute(select(quota_bucket))
                if f":{project_id}:" in row.key or row.key.endswith(f":{project_id}")
            ),
        }


@pytest.fixture
def projects(engine: Engine) -> tuple[Project, Project]:
    return make_project(engine, "chunked", "app"), make_project(engine, "alone", "app")


def test_a_chunk_leaves_the_rows_one_message_at_a_time_leaves(
    engine: Engine, projects: tuple[Project, Project]
) -> None:
    chunked, alone = projects
    messages = scenario(chunked.id)
    assert len(messages) <= CHUNK_MESSAGES  # one chunk: the set-wise path throughout
    redone = chunks_redone()
    failures = process_occurrence_groups(
        engine, [messages], clock=lambda: NOW, processing=PROCESSING
    )
    assert failures == [[]]
    assert chunks_redone() == redone  # applied as a chunk, not one message at a time
    for payload in scenario(alone.id):
        apply_one(engine, payload, now=NOW, processing=PROCESSING)

    got, expected = snapshot(engine, chunked.id), snapshot(engine, alone.id)
    assert got == expected
    # The scenario did reach what it is about (not two empty snapshots).
    assert len(expected["groups"]) == 25  # fp-a, fp-b, fp-noisy, fp-limited, fp-0..19, fp-assigned
    # No event of its own: the status change, the re-sent message, the looked-up and the
    # shared event, two rate limited.
    assert sum(expected["events"].values()) == len(messages) - 6
    fp_a = expected["groups"][md5_hex("fp-a")]
    assert fp_a[:3] == (8, GroupStatus.UNRESOLVED, GroupSubStatus.REGRESSED)
    assert Counter(type for _, type, _ in expected["activity"]) == {
        repr(int(ActivityType.SET_RESOLVED)): 1,
        repr(int(ActivityType.SET_REGRESSION)): 1,
        repr(int(ActivityType.ASSIGNED)): 1,
    }


def test_a_chunk_replayed_after_it_was_applied_changes_nothing(
    engine: Engine, projects: tuple[Project, Project]
) -> None:
    chunked, _ = projects
    messages = scenario(chunked.id)
    process_occurrence_groups(engine, [messages], clock=lambda: NOW, processing=PROCESSING)
    before = snapshot(engine, chunked.id)
    # After the dedupe window: only the stored occurrences keep it from applying twice.
    later = NOW + timedelta(minutes=10)
    failures = process_occurrence_groups(
        engine, [messages], clock=lambda: later, processing=PROCESSING
    )
    assert failures == [[]]
    after = snapshot(engine, chunked.id)
    # (The status change applies again: past the window nothing tells it was applied.)
    times_seen = {hashed: values[0] for hashed, values in before["groups"].items()}
    assert {hashed: values[0] for hashed, values in after["groups"].items()} == times_seen
    assert after["events"] == before["events"]
    assert after["occurrences"] == before["occurrences"]


def test_a_snoozed_group_is_unignored_in_a_chunk_as_one_message_at_a_time(
    engine: Engine, projects: tuple[Project, Project]
) -> None:
    # Ignored until 3 more occurrences: the chunk must judge the condition on what it
    # holds, and unignore at the third, as one message at a time does.
    def messages(project_id: int) -> list[dict[str, Any]]:
        ids = iter(_ids(40))
        made = []
        for i in range(5):
            payload = occurrence(project_id, "fp-snoozed", at=T0 + timedelta(minutes=i))
            payload["id"] = next(ids)
            payload["event_id"] = payload["event"]["event_id"] = next(ids)
            made.append(payload)
        return made

    chunked, alone = projects
    for project in projects:
        [first, *_] = messages(project.id)
        first = {**first, "id": uuid.uuid4().hex}
        first["event_id"] = first["event"]["event_id"] = uuid.uuid4().hex
        apply_one(engine, first, now=NOW, processing=PROCESSING)
        with engine.begin() as conn:
            group_id = conn.execute(
                select(grouphash.c.group_id).where(
                    grouphash.c.project_id == project.id,
                    grouphash.c.hash == md5_hex("fp-snoozed"),
                )
            ).scalar_one()
            update_group_status(
                conn, group_id, GroupStatus.IGNORED, GroupSubStatus.UNTIL_CONDITION_MET, now=NOW
            )
            set_snooze(conn, group_id, Snooze(count=3, times_seen=1), NOW)
    redone = chunks_redone()
    failures = process_occurrence_groups(
        engine, [messages(chunked.id)], clock=lambda: NOW, processing=PROCESSING
    )
    assert failures == [[]]
    assert chunks_redone() == redone  # set-wise, not redone one message at a time
    for payload in messages(alone.id):
        apply_one(engine, payload, now=NOW, processing=PROCESSING)

    got, expected = snapshot(engine, chunked.id), snapshot(engine, alone.id)
    # The first occurrences differ by id (made apart for each project); all else agrees.
    for rows in (got, expected):
        rows.pop("occurrences"), rows.pop("events"), rows.pop("processed")
    assert got == expected
    times_seen, status, substatus = expected["groups"][md5_hex("fp-snoozed")][:3]
    assert (times_seen, status, substatus) == (6, GroupStatus.UNRESOLVED, GroupSubStatus.ONGOING)
    assert Counter(type for _, type, _ in expected["activity"]) == {
        repr(int(ActivityType.SET_IGNORED)): 1,
        repr(int(ActivityType.SET_UNRESOLVED)): 1,
    }


def test_a_held_write_refused_by_the_database_fails_the_chunk_not_the_transaction(
    engine: Engine, projects: tuple[Project, Project]
) -> None:
    # What a concurrent consumer storing the same event first looks like at flush: the
    # held insert is refused, and the error reaches the caller (who redoes the chunk
    # one message at a time) instead of being swallowed.
    chunked, _ = projects
    payload = occurrence(chunked.id, "fp-race", at=T0)
    with pytest.raises(IntegrityError), engine.begin() as conn:
        writes = ChunkWrites(conn)
        writes.read_ahead([payload])
        _store_event_behind_its_back(conn, chunked.id, payload["event_id"])
        writes.save_event(chunked.id, payload["event"], NOW, payload["id"])
        writes.flush()


def _store_event_behind_its_back(conn: Connection, project_id: int, event_id: str) -> None:
    conn.execute(
        event.insert().values(
            project_id=project_id,
            event_id=event_id,
            type="generic",
            timestamp=T0,
            received=T0,
            tags=[],
            data={},
        )
    )


def test_a_chunk_grants_quota_units_as_the_database_would(engine: Engine) -> None:
    # A chunk keeps the window's sum while the bucket stays the same: across buckets,
    # and past the window's end, it answers as reading the buckets each time does.
    quota = Quota(window_seconds=180, granularity_seconds=60, limit=3)
    steps = [0, 1, 2, 59, 61, 62, 130, 185, 186, 240, 241, 242, 243, 400, 401]
    times = [T0 + timedelta(seconds=s) for s in steps]
    with engine.begin() as conn:
        alone = [gate_store.take_quota(conn, "quota:alone", quota, at) for at in times]
    with engine.begin() as conn:
        writes = ChunkWrites(conn)
        chunked = [writes.take_quota("quota:chunk", quota, at) for at in times]
        writes.flush()
    assert chunked == alone
    assert alone.count(True) < len(steps)  # the limit was met on the way
    # and wrote the same units (buckets that left the window aside: the database's
    # answers delete those on the way, a chunk leaves them to the periodic cleanup)
    oldest = int(times[-1].timestamp()) // 60 * 60 - quota.window_seconds
    with engine.connect() as conn:
        rows = conn.execute(select(quota_bucket).where(quota_bucket.c.bucket > oldest)).all()
    written = {(row.key, row.bucket): row.count for row in rows}
    assert written and {
        bucket: n for (key, bucket), n in written.items() if key == "quota:alone"
    } == {bucket: n for (key, bucket), n in written.items() if key == "quota:chunk"}
