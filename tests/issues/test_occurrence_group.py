"""process_occurrence_group on both databases (spec A6): status-change pruning under
either spelling of the feature, dedupe of message ids in the database within 300 s,
idempotent replay, and failures that are recorded while the rest of the group is
applied (unlike the reference). Hostile payloads are failures, never crashes."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select

from tests.issues.occurrences import (
    T0,
    activities,
    count,
    events,
    groups,
    make_project,
    occurrence,
    occurrences,
    process,
    status_change,
)
from vigil.db.tables import issue_noise_counter, processed_message
from vigil.issues.consumer import (
    CHUNK_MESSAGES,
    process_occurrence_group,
    process_occurrence_groups,
)
from vigil.issues.enums import ActivityType, GroupStatus, GroupSubStatus
from vigil.issues.group_types import Quota
from vigil.issues.occurrence_processing import DEFAULT_PROCESSING
from vigil.tenancy import store as tenancy
from vigil.tenancy.store import Project

R, U, IGN = GroupStatus.RESOLVED, GroupStatus.UNRESOLVED, GroupStatus.IGNORED


@pytest.fixture
def project(engine: Engine) -> Project:
    return make_project(engine)


def at(when: datetime) -> Callable[[], datetime]:
    return lambda: when


def enable(engine: Engine, project: Project, feature: str) -> None:
    with engine.begin() as conn:
        org = tenancy.get_organization_by_id(conn, project.organization_id)
        tenancy.set_feature(conn, org, feature, True)


def sc_and_occurrence_batch(project: Project) -> list[dict[str, Any]]:
    return [
        status_change(project.id, "fp", R, None),
        occurrence(project.id, "fp"),
        status_change(project.id, "fp", IGN, GroupSubStatus.FOREVER),
        occurrence(project.id, "fp"),
    ]


@pytest.mark.parametrize(
    "feature",
    [
        "organizations:occurence-consumer-prune-status-changes",
        "organizations:occurrence-consumer-prune-status-changes",
        "occurence-consumer-prune-status-changes",
    ],
)
def test_pruning_keeps_the_last_status_change_after_the_occurrences(
    engine: Engine, project: Project, feature: str
) -> None:
    process(engine, occurrence(project.id, "fp"))
    enable(engine, project, feature)
    failures = process_occurrence_group(engine, sc_and_occurrence_batch(project), clock=at(T0))
    assert failures == []
    [grp] = groups(engine)
    assert grp.times_seen == 3
    assert (grp.status, grp.substatus) == (IGN, GroupSubStatus.FOREVER)
    # the first status change was dropped, never applied
    assert [a for a, _ in activities(engine, grp.id)] == [ActivityType.SET_IGNORED]


def test_without_pruning_every_status_change_applies_in_order(
    engine: Engine, project: Project
) -> None:
    process(engine, occurrence(project.id, "fp"))
    failures = process_occurrence_group(engine, sc_and_occurrence_batch(project), clock=at(T0))
    assert failures == []
    [grp] = groups(engine)
    assert (grp.status, grp.substatus) == (IGN, GroupSubStatus.FOREVER)
    assert [a for a, _ in activities(engine, grp.id)] == [
        ActivityType.SET_RESOLVED,
        ActivityType.SET_IGNORED,
    ]


def test_a_message_id_seen_within_300_s_is_skipped(engine: Engine, project: Project) -> None:
    process(engine, occurrence(project.id, "fp"))
    resolve = status_change(project.id, "fp", R, None)
    reopen = {**status_change(project.id, "fp", U, GroupSubStatus.ONGOING), "id": resolve["id"]}
    assert process_occurrence_group(engine, [resolve, reopen], clock=at(T0)) == []
    [grp] = groups(engine)
    assert grp.status == R  # the second message had the first one's id
    process_occurrence_group(engine, [reopen], clock=at(T0 + timedelta(seconds=299)))
    assert groups(engine)[0].status == R
    process_occurrence_group(engine, [reopen], clock=at(T0 + timedelta(seconds=301)))
    assert groups(engine)[0].status == U
    with engine.connect() as conn:
        assert conn.scalars(select(processed_message.c.message_id)).all() == [resolve["id"]]


def test_replaying_a_group_after_the_dedupe_window_applies_nothing_twice(
    engine: Engine, project: Project
) -> None:
    batch = [occurrence(project.id, "fp") for _ in range(3)]
    assert process_occurrence_group(engine, batch, clock=at(T0)) == []
    assert process_occurrence_group(engine, batch, clock=at(T0 + timedelta(hours=2))) == []
    [grp] = groups(engine)
    assert grp.times_seen == 3
    assert len(occurrences(engine)) == 3 and len(events(engine)) == 3


def test_a_replayed_occurrence_is_skipped_before_the_gates_count_it(
    engine: Engine, project: Project
) -> None:
    # The stored occurrence is its dedupe record, however long ago it was applied: a
    # replay takes no unit of the rate limit and no count of the noise gate.
    limited = replace(DEFAULT_PROCESSING, rate_limit=Quota(limit=2))
    noisy = occurrence(project.id, "noisy", type=1006)  # noise gate: counted, no group
    first = occurrence(project.id, "fp")
    assert process_occurrence_group(engine, [first, noisy], clock=at(T0), processing=limited) == []
    later = at(T0 + timedelta(minutes=10))  # past the status changes' 300 s window
    again = [first, first, noisy]
    assert process_occurrence_group(engine, again, clock=later, processing=limited) == []
    second = occurrence(project.id, "fp")  # the limit's second unit is still free
    assert process_occurrence_group(engine, [second], clock=later, processing=limited) == []
    assert [grp.times_seen for grp in groups(engine)] == [2]
    with engine.connect() as conn:
        assert conn.scalars(select(issue_noise_counter.c.count)).all() == [1]
    assert len(occurrences(engine)) == 3


def test_a_failing_message_is_recorded_and_the_rest_of_its_group_applied(
    engine: Engine, project: Project
) -> None:
    broken = occurrence(project.id, "fp")
    del broken["issue_title"]
    missing_event = occurrence(project.id, "fp", with_event=False)
    unsupported = status_change(project.id, "fp", GroupStatus.PENDING_DELETION, None)
    batch = [
        occurrence(project.id, "fp"),
        broken,
        missing_event,
        unsupported,
        occurrence(project.id, "fp"),
    ]
    failures = process_occurrence_group(engine, batch, clock=at(T0))
    assert [f.index for f in failures] == [1, 2, 3]
    assert failures[0].reason == "InvalidEventPayloadError: Missing required field: issue_title"
    assert failures[1].reason.startswith("EventLookupError: Failed to lookup event(")
    assert failures[2].reason.startswith("UnsupportedStatusError")
    [grp] = groups(engine)
    assert grp.times_seen == 2
    # a failed message is not remembered: once fixed, it may be sent again
    assert len(occurrences(engine)) == 2
    assert count(engine, processed_message) == 0  # status changes' ids only: none applied
    fixed = {**unsupported, "new_status": R}
    assert process_occurrence_group(engine, [fixed], clock=at(T0)) == []
    assert groups(engine)[0].status == R


def test_unknown_project_fails_each_message_with_the_reason(
    engine: Engine, project: Project
) -> None:
    batch = [occurrence(project.id + 7, "fp"), status_change(project.id + 7, "fp", R, None)]
    failures = process_occurrence_group(engine, batch, clock=at(T0))
    assert [(f.index, f.reason) for f in failures] == [
        (0, f"UnknownProjectError: project {project.id + 7} does not exist"),
        (1, f"UnknownProjectError: project {project.id + 7} does not exist"),
    ]


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"x": value}
    return value


HOSTILE: list[tuple[str, Callable[[dict[str, Any]], None]]] = [
    ("fingerprint not a list", lambda p: p.update(fingerprint="fp")),
    ("fingerprint of numbers", lambda p: p.update(fingerprint=[1, 2])),
    ("type as a string", lambda p: p.update(type="4001")),
    ("unknown type", lambda p: p.update(type=999999)),
    ("id not a uuid", lambda p: p.update(id="not-a-uuid")),
    ("evidence_display not a list", lambda p: p.update(evidence_display={"a": 1})),
    ("evidence_data null", lambda p: p.update(evidence_data=None)),
    ("event not an object", lambda p: p.update(event=[1, 2])),
    ("event of another project", lambda p: p["event"].update(project_id=p["project_id"] + 1)),
    ("huge level", lambda p: p.update(level="x" * 100_000)),
    ("huge environment", lambda p: p["event"].update(environment="e" * 10_000)),
    ("huge release", lambda p: p["event"].update(release="r" * 10_000)),
    ("timestamp out of range", lambda p: p["event"].update(timestamp=1e300)),
    ("detection time NaN", lambda p: p.update(detection_time=float("nan"))),
    ("priority out of range", lambda p: p.update(initial_issue_priority=10**12)),
    ("project_id a bool", lambda p: p.update(project_id=True)),
    ("deep nesting", lambda p: p.update(evidence_data=nested(5000))),
    ("nesting deeper than stored", lambda p: p["event"].update(extra=nested(101))),
    ("tags not an object", lambda p: p["event"].update(tags="tagged")),
    ("NUL in the title", lambda p: p.update(issue_title="a\x00b")),
    ("NUL in the environment", lambda p: p["event"].update(environment="a\x00b")),
]


@pytest.mark.parametrize(("name", "spoil"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_payload_fails_alone(
    engine: Engine, project: Project, name: str, spoil: Callable[[dict[str, Any]], None]
) -> None:
    bad = occurrence(project.id, "fp")
    spoil(bad)
    failures = process_occurrence_group(engine, [bad, occurrence(project.id, "fp")], clock=at(T0))
    assert [f.index for f in failures] == [0], name
    # the embedded event failing both event schemas keeps its own error, as the reference's
    assert failures[0].reason.startswith(
        ("InvalidEventPayloadError: ", "EventPayloadValidationError: ")
    )
    [grp] = groups(engine)
    assert grp.times_seen == 1
    assert len(occurrences(engine)) == 1


def test_oversized_but_valid_strings_are_kept(engine: Engine, project: Project) -> None:
    payload = occurrence(project.id, "fp", issue_title="t" * 200_000, culprit="c" * 50_000)
    assert process_occurrence_group(engine, [payload], clock=at(T0)) == []
    [grp] = groups(engine)
    assert len(grp.title) == 200_000


def test_unknown_payload_type_is_dropped_not_failed(engine: Engine, project: Project) -> None:
    odd = {"payload_type": "something", "id": uuid.uuid4().hex, "project_id": project.id}
    assert process_occurrence_group(engine, [odd, occurrence(project.id)], clock=at(T0)) == []
    assert len(groups(engine)) == 1


def test_status_change_ids_that_cannot_be_stored_still_dedupe(
    engine: Engine, project: Project
) -> None:
    process(engine, occurrence(project.id, "fp"))
    resolve = {**status_change(project.id, "fp", R, None), "id": "x\x00" + "y" * 500}
    reopen = {**status_change(project.id, "fp", U, GroupSubStatus.ONGOING), "id": resolve["id"]}
    assert process_occurrence_group(engine, [resolve, reopen], clock=at(T0)) == []
    assert groups(engine)[0].status == R


def test_groups_share_chunks_and_a_failure_is_reported_in_its_own_group(
    engine: Engine, project: Project
) -> None:
    # Groups applied one after the other share chunk transactions; a bad message rolls
    # its chunk back, which is then redone one message at a time: only it fails, the
    # rest (before and after it, in its group and in others) is applied once.
    broken = occurrence(project.id, "fp-b")
    del broken["issue_title"]
    many = [occurrence(project.id, f"fp-{n}") for n in range(CHUNK_MESSAGES + 5)]
    batch = [
        [occurrence(project.id, "fp-a"), occurrence(project.id, "fp-a")],
        [occurrence(project.id, "fp-b"), broken, occurrence(project.id, "fp-b")],
        [many[0]],
        many[1:],
    ]
    failures = process_occurrence_groups(engine, batch, clock=at(T0))
    assert [[f.index for f in group_failures] for group_failures in failures] == [
        [],
        [1],
        [],
        [],
    ]
    assert failures[1][0].reason == "InvalidEventPayloadError: Missing required field: issue_title"
    assert sorted(g.times_seen for g in groups(engine)) == [1] * len(many) + [2, 2]
    assert len(occurrences(engine)) == 4 + len(many)
