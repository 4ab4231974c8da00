"""The pure rules of grouping (spec A4): issue values, updating an existing group,
regressions and the noise gate."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from vigil.issues.enums import GroupStatus, GroupSubStatus
from vigil.issues.group_types import NoiseConfig, get_group_type_by_id
from vigil.issues.grouping import (
    REGRESSION_MARGIN,
    CounterAction,
    EventFacts,
    GroupSnapshot,
    GroupUpdate,
    creation_quota_key,
    event_datetime,
    event_facts,
    is_resolved,
    issue_kwargs,
    issue_message,
    level_int,
    merge_group_data,
    noise_counter_key,
    noise_gate,
    occurrence_rate_limit_key,
    regression,
    should_regress,
    update_existing_group,
)
from vigil.issues.occurrence import IssueOccurrence

T0 = datetime(2024, 6, 6, 12, 0, tzinfo=UTC)


def occurrence(**changes: Any) -> IssueOccurrence:
    values: dict[str, Any] = {
        "id": "a" * 32,
        "project_id": 1,
        "event_id": "e" * 32,
        "fingerprint": ("f" * 32,),
        "issue_title": "something bad happened",
        "subtitle": "it was bad",
        "resource_id": None,
        "evidence_data": {},
        "evidence_display": (),
        "type": get_group_type_by_id(1001),
        "detection_time": T0,
        "culprit": "api/123",
        "level": "warning",
    }
    values.update(changes)
    return IssueOccurrence(**values)


def facts(**changes: Any) -> EventFacts:
    values: dict[str, Any] = {"event_id": "e" * 32, "datetime": T0, "platform": "python"}
    values.update(changes)
    return EventFacts(**values)


# --- the issue's values ---


@pytest.mark.parametrize(
    ("event", "occ", "message"),
    [
        # the reference's example: an event with no title of its own
        (
            facts(event_type="default"),
            occurrence(),
            "<unlabeled event> something bad happened it was bad api/123",
        ),
        # a generic event saved from the occurrence has the issue title as its own
        (
            facts(title="something bad happened"),
            occurrence(),
            "something bad happened it was bad api/123",
        ),
        (
            facts(message="boom"),
            occurrence(culprit=""),
            "boom <unlabeled event> something bad happened it was bad",
        ),
        (facts(title="t", message="t"), occurrence(issue_title="t", subtitle="", culprit=""), "t"),
        (facts(title="x it was bad"), occurrence(), "x it was bad something bad happened api/123"),
    ],
)
def test_issue_message(event: EventFacts, occ: IssueOccurrence, message: str) -> None:
    assert issue_message(event, occ) == message


def test_issue_kwargs() -> None:
    event = facts(
        event_type="generic",
        title="something bad happened",
        location="loc",
        metadata={"title": "old", "value": "old", "kept": 1},
    )
    kwargs = issue_kwargs(occurrence(), event, "1.0")
    assert kwargs.platform == "python"
    assert kwargs.message == "something bad happened it was bad api/123"
    assert kwargs.level == 30
    assert kwargs.culprit == "api/123"
    assert kwargs.first_seen == kwargs.last_seen == kwargs.active_at == T0
    assert kwargs.type == 1001
    assert kwargs.first_release == "1.0"
    assert kwargs.priority == 25  # type 1001's default
    assert kwargs.data == {
        "type": "generic",
        "title": "something bad happened",
        "culprit": "api/123",
        "location": "loc",
        "last_received": T0.isoformat(),
        "metadata": {
            "title": "something bad happened",
            "value": "it was bad",
            "initial_priority": 25,
            "kept": 1,
        },
    }


@pytest.mark.parametrize(("explicit", "priority"), [(None, 75), (25, 25), (0, 0)])
def test_issue_priority(explicit: int | None, priority: int) -> None:
    occ = occurrence(type=get_group_type_by_id(4001), initial_issue_priority=explicit)
    kwargs = issue_kwargs(occ, facts(), None)
    assert kwargs.priority == priority
    assert kwargs.data["metadata"]["initial_priority"] == priority
    assert kwargs.first_release is None


def test_feedback_metadata_comes_from_evidence() -> None:
    evidence = {
        "contact_email": "a@b.c",
        "message": "it broke",
        "name": "Ann",
        "source": "widget",
        "summary": "broke",
        "unrelated": 1,
    }
    occ = occurrence(type=get_group_type_by_id(6001), evidence_data=evidence)
    metadata = issue_kwargs(occ, facts(), None).data["metadata"]
    assert {k: metadata[k] for k in ("contact_email", "message", "name", "source", "summary")} == {
        k: evidence[k] for k in ("contact_email", "message", "name", "source", "summary")
    }
    assert "unrelated" not in metadata and "associated_event_id" not in metadata
    sparse = issue_kwargs(occurrence(type=get_group_type_by_id(6001)), facts(), None)
    assert sparse.data["metadata"]["contact_email"] is None


def test_non_feedback_metadata_ignores_evidence() -> None:
    occ = occurrence(evidence_data={"contact_email": "a@b.c"})
    assert "contact_email" not in issue_kwargs(occ, facts(), None).data["metadata"]


@pytest.mark.parametrize(
    ("level", "number"),
    [("debug", 10), ("info", 20), ("warning", 30), ("error", 40), ("fatal", 50), ("odd", 40)],
)
def test_level_int(level: str, number: int) -> None:
    assert level_int(level) == number


def test_event_facts_from_stored_data() -> None:
    data = {
        "event_id": "e" * 32,
        "timestamp": "2024-06-06T12:00:00",
        "platform": "other",
        "type": "generic",
        "metadata": {"title": "Monitor failure: x"},
    }
    f = event_facts(data)
    assert (f.datetime, f.event_type, f.title, f.message, f.platform) == (
        T0,
        "generic",
        "Monitor failure: x",
        "",
        "other",
    )
    bare = event_facts(
        {"event_id": "e", "timestamp": T0.timestamp(), "logentry": {"formatted": "hi"}}
    )
    assert (bare.event_type, bare.title, bare.message, bare.datetime) == ("default", "hi", "hi", T0)
    untitled = event_facts({"event_id": "e", "timestamp": 0, "type": "transaction"})
    assert (untitled.title, untitled.event_type) == ("<unlabeled event>", "transaction")


@pytest.mark.parametrize("bad", [None, "yesterday", [1]])
def test_event_datetime_rejects(bad: object) -> None:
    with pytest.raises(ValueError):
        event_datetime(bad)


# --- an existing group absorbs an occurrence ---


def group(**changes: Any) -> GroupSnapshot:
    values: dict[str, Any] = {
        "message": "something bad happened it was bad api/123",
        "level": 30,
        "culprit": "api/123",
        "first_seen": T0,
        "last_seen": T0,
        "data": {
            "title": "something bad happened",
            "metadata": {"title": "something bad happened", "value": "v"},
        },
    }
    values.update(changes)
    return GroupSnapshot(**values)


def absorb(g: GroupSnapshot, occ: IssueOccurrence, event: EventFacts) -> GroupUpdate:
    return update_existing_group(g, issue_kwargs(occ, event, None), event)


@pytest.mark.parametrize(
    ("event_time", "last_seen", "first_seen"),
    [
        (T0 + timedelta(hours=1), T0 + timedelta(hours=1), None),  # newer: last_seen moves
        (T0, T0, None),
        (T0 - timedelta(hours=1), T0, T0 - timedelta(hours=1)),  # older: first_seen moves
    ],
)
def test_seen_times(event_time: datetime, last_seen: datetime, first_seen: datetime | None) -> None:
    update = absorb(
        group(), occurrence(), facts(datetime=event_time, title="something bad happened")
    )
    assert update.last_seen == last_seen
    assert update.first_seen == first_seen
    assert update.times_seen == 1


def test_unchanged_values_are_not_written() -> None:
    update = absorb(group(), occurrence(), facts(title="something bad happened"))
    assert (update.message, update.level, update.culprit, update.first_seen) == (
        None,
        None,
        None,
        None,
    )
    assert set(update.columns()) == {"last_seen", "data"}


def test_level_and_culprit_change() -> None:
    update = absorb(group(), occurrence(level="fatal", culprit="other"), facts(title="x"))
    assert (update.level, update.culprit) == (50, "other")
    assert update.columns()["level"] == 50 and update.columns()["culprit"] == "other"


@pytest.mark.parametrize(
    ("event", "occ", "changes"),
    [
        (facts(title="real"), occurrence(subtitle="new"), True),
        (facts(title="<unlabeled event>"), occurrence(subtitle="new"), False),  # placeholder
        (facts(title="<untitled>"), occurrence(subtitle="new"), False),
        (facts(title="real", event_type="transaction"), occurrence(subtitle="new"), False),
        (facts(title="something bad happened"), occurrence(), False),  # same message
    ],
)
def test_message_rule(event: EventFacts, occ: IssueOccurrence, changes: bool) -> None:
    update = absorb(group(), occ, event)
    assert (update.message is not None) is changes


@pytest.mark.parametrize(
    ("existing", "incoming", "merged"),
    [
        (
            {"a": 1, "metadata": {"x": 1, "title": "T"}},
            {"b": 2, "metadata": {"y": 2, "title": "U"}},
            {"a": 1, "b": 2, "metadata": {"x": 1, "y": 2, "title": "U"}},
        ),
        (  # a placeholder title never replaces a real one
            {"title": "Real", "metadata": {"title": "Real"}},
            {"title": "<unlabeled event>", "metadata": {"title": "<unlabeled event>"}},
            {"title": "Real", "metadata": {"title": "Real"}},
        ),
        (  # but it does replace another placeholder, or nothing
            {"metadata": {"title": "<untitled>"}},
            {"title": "Error", "metadata": {"title": "<unknown>"}},
            {"title": "Error", "metadata": {"title": "<unknown>"}},
        ),
        ({}, {"metadata": {"v": 1}}, {"metadata": {"v": 1}}),
        ({"metadata": {"v": 1}}, {}, {"metadata": {"v": 1}}),
    ],
)
def test_merge_group_data(
    existing: dict[str, Any], incoming: dict[str, Any], merged: dict[str, Any]
) -> None:
    assert merge_group_data(existing, incoming) == merged


# --- regressions ---


NOW = T0 + timedelta(days=1)


@pytest.mark.parametrize(
    ("case", "kwargs", "regresses"),
    [
        ("resolved, active long ago", {}, True),
        ("ignored never regresses", {"status": GroupStatus.IGNORED}, False),
        ("unresolved, no auto-resolve", {"status": GroupStatus.UNRESOLVED}, False),
        (
            "unresolved, auto-resolved by age",
            {"status": GroupStatus.UNRESOLVED, "resolve_age_hours": 12},
            True,
        ),
        (
            "unresolved, seen within the age",
            {"status": GroupStatus.UNRESOLVED, "resolve_age_hours": 48},
            False,
        ),
        ("pending deletion", {"status": GroupStatus.PENDING_DELETION}, False),
        ("resolved in a newer release", {"resolved_in_newer_release": True}, False),
        ("pending commit resolution", {"has_pending_commit_resolution": True}, False),
        ("active 5 s before the event", {"active_at": NOW - REGRESSION_MARGIN}, False),
        ("active 5.001 s before", {"active_at": NOW - timedelta(seconds=5, milliseconds=1)}, True),
        ("event older than activation", {"active_at": NOW + timedelta(hours=1)}, False),
        ("no active_at", {"active_at": None}, False),
    ],
)
def test_should_regress(case: str, kwargs: dict[str, Any], regresses: bool) -> None:
    args: dict[str, Any] = {
        "status": GroupStatus.RESOLVED,
        "active_at": T0,
        "last_seen": T0,
        "event_datetime": NOW,
        "now": NOW,
    }
    args.update(kwargs)
    assert should_regress(**args) is regresses, case


@pytest.mark.parametrize(
    ("status", "last_seen", "age", "resolved"),
    [
        (GroupStatus.RESOLVED, None, None, True),
        (GroupStatus.UNRESOLVED, T0, None, False),
        (GroupStatus.UNRESOLVED, T0, 0, False),
        (GroupStatus.UNRESOLVED, NOW - timedelta(hours=3), 2, True),
        (GroupStatus.UNRESOLVED, NOW - timedelta(hours=2), 2, False),
        (GroupStatus.UNRESOLVED, None, 2, False),
        (GroupStatus.IGNORED, T0, 2, False),
    ],
)
def test_is_resolved(
    status: GroupStatus, last_seen: datetime | None, age: int | None, resolved: bool
) -> None:
    assert is_resolved(status, last_seen, now=NOW, resolve_age_hours=age) is resolved


@pytest.mark.parametrize(("release", "version"), [("1.2.3", "1.2.3"), (None, "")])
def test_regression_update(release: str | None, version: str) -> None:
    r = regression("e" * 32, NOW, release)
    assert (r.status, r.substatus, r.active_at, r.last_seen) == (
        GroupStatus.UNRESOLVED,
        GroupSubStatus.REGRESSED,
        NOW,
        NOW,
    )
    assert r.activity_data == {"event_id": "e" * 32, "version": version}


# --- the noise gate ---


def run_gate(config: NoiseConfig | None, occurrences: int) -> list[bool]:
    """Feed `occurrences` occurrences of one fingerprint through the gate, keeping the
    counter as a store would, and say which ones create the group."""
    stored = 0
    created = []
    for _ in range(occurrences):
        decision = noise_gate(stored, config)
        created.append(decision.create)
        if decision.action is CounterAction.STORE:
            stored = decision.count
        elif decision.action is CounterAction.RESET:
            stored = 0
    return created


@pytest.mark.parametrize(
    ("config", "occurrences", "created"),
    [
        (None, 3, [True, True, True]),
        (NoiseConfig(ignore_limit=3), 3, [False, False, True]),
        (NoiseConfig(ignore_limit=1), 2, [True, True]),
        (NoiseConfig(ignore_limit=0), 1, [True]),
        # after a group is created (and, say, deleted), the gate starts over: the counter
        # was reset, unlike the reference, which left it and let every later one through
        (NoiseConfig(ignore_limit=3), 6, [False, False, True, False, False, True]),
        (NoiseConfig(ignore_limit=2), 4, [False, True, False, True]),
    ],
)
def test_noise_gate_sequences(
    config: NoiseConfig | None, occurrences: int, created: list[bool]
) -> None:
    assert run_gate(config, occurrences) == created


def test_noise_gate_decisions() -> None:
    config = NoiseConfig(ignore_limit=3, expiry_time=timedelta(hours=2))
    first = noise_gate(0, config)
    assert (first.create, first.action, first.count, first.expiry) == (
        False,
        CounterAction.STORE,
        1,
        timedelta(hours=2),
    )
    third = noise_gate(2, config)
    assert (third.create, third.action) == (True, CounterAction.RESET)
    none = noise_gate(5, None)
    assert (none.create, none.action) == (True, CounterAction.KEEP)


def test_keys() -> None:
    assert noise_counter_key("abc", 4) == "grouphash:abc:4"
    assert creation_quota_key(4, "monitor_check_in_failure") == (
        "issue-platform-issues:4:monitor_check_in_failure"
    )
    assert occurrence_rate_limit_key(4, "abc") == "occurrence_rate_limit:4-abc"
