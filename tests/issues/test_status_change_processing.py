"""Status changes through the database (spec A5) on both databases: every row of the
table, with the group row, activity, history and inbox afterwards; messages that find
no group; and `update_group_status`, the same path by group id."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import Engine, select, update

from tests.issues.occurrences import (
    activities,
    groups,
    history,
    make_project,
    occurrence,
    process,
    status_change,
)
from vigil.db.tables import group, group_inbox
from vigil.issues.enums import ActivityType, GroupStatus, GroupSubStatus, InboxReason
from vigil.issues.errors import InvalidEventPayloadError, UnsupportedStatusError
from vigil.issues.group_store import GroupNotFound
from vigil.issues.projects import UnknownProjectError
from vigil.issues.status_change import NoChange, Transition
from vigil.issues.status_change_processing import update_group_status
from vigil.tenancy.store import Project

U, R, IGN = GroupStatus.UNRESOLVED, GroupStatus.RESOLVED, GroupStatus.IGNORED
S = GroupSubStatus


@pytest.fixture
def project(engine: Engine) -> Project:
    return make_project(engine)


def make_group(
    engine: Engine, project: Project, status: int, substatus: int | None, **extra: Any
) -> int:
    process(engine, occurrence(project.id, "fp"))
    [grp] = groups(engine)
    with engine.begin() as conn:
        conn.execute(
            update(group)
            .where(group.c.id == grp.id)
            .values(status=status, substatus=substatus, **extra)
        )
    return int(grp.id)


def inbox(engine: Engine) -> int | None:
    with engine.connect() as conn:
        return conn.execute(select(group_inbox.c.reason)).scalar_one_or_none()


# (current status, substatus) -> (new status, substatus) -> activity, history, inbox
CHANGES = [
    ((U, S.NEW), (R, None), ActivityType.SET_RESOLVED, "resolved", None),
    (
        (U, S.ONGOING),
        (IGN, S.UNTIL_ESCALATING),
        ActivityType.SET_IGNORED,
        "archived_until_escalating",
        None,
    ),
    (
        (U, S.ONGOING),
        (IGN, S.UNTIL_CONDITION_MET),
        ActivityType.SET_IGNORED,
        "archived_until_condition_met",
        None,
    ),
    ((U, S.ONGOING), (IGN, S.FOREVER), ActivityType.SET_IGNORED, "archived_forever", None),
    ((R, None), (U, S.REGRESSED), ActivityType.SET_REGRESSION, "regressed", InboxReason.REGRESSION),
    ((R, None), (U, S.ONGOING), ActivityType.SET_UNRESOLVED, "unresolved", InboxReason.ONGOING),
    (
        (IGN, S.FOREVER),
        (U, S.ONGOING),
        ActivityType.SET_UNRESOLVED,
        "unresolved",
        InboxReason.ONGOING,
    ),
]


@pytest.mark.parametrize(("current", "new", "kind", "hist", "reason"), CHANGES)
def test_status_change_message_applies_the_table_row(
    engine: Engine,
    project: Project,
    current: tuple[int, int | None],
    new: tuple[int, int | None],
    kind: ActivityType,
    hist: str,
    reason: InboxReason | None,
) -> None:
    group_id = make_group(engine, project, *current)
    result = process(engine, status_change(project.id, "fp", *new))
    assert result is not None and result[0] is None and result[1] is not None
    assert result[1].group.id == group_id and not result[1].is_new
    [grp] = groups(engine)
    assert (grp.status, grp.substatus) == new
    assert (grp.resolved_at is not None) == (new[0] == R)
    assert activities(engine, group_id)[-1][0] == kind
    assert history(engine, group_id) == [hist]
    assert inbox(engine) == reason


def test_escalating_raises_priority_and_ongoing_restores_it(
    engine: Engine, project: Project
) -> None:
    group_id = make_group(engine, project, U, S.ONGOING, priority=25)
    # the group was created with priority 75 (cron default): metadata initial_priority
    with engine.begin() as conn:
        conn.execute(
            update(group)
            .where(group.c.id == group_id)
            .values(data={"metadata": {"initial_priority": 50}})
        )
    process(engine, status_change(project.id, "fp", U, S.ESCALATING))
    [grp] = groups(engine)
    assert (grp.substatus, grp.priority) == (S.ESCALATING, 75)
    assert inbox(engine) == InboxReason.ESCALATING
    process(engine, status_change(project.id, "fp", U, S.ONGOING))
    [grp] = groups(engine)
    assert (grp.substatus, grp.priority) == (S.ONGOING, 50)
    assert [a for a, _ in activities(engine, group_id)] == [
        ActivityType.SET_ESCALATING,
        ActivityType.SET_PRIORITY,
        ActivityType.AUTO_SET_ONGOING,
        ActivityType.SET_PRIORITY,
    ]
    assert history(engine, group_id) == [
        "escalating",
        "priority_high",
        "ongoing",
        "priority_medium",
    ]


def test_escalating_leaves_a_locked_priority_alone(engine: Engine, project: Project) -> None:
    group_id = make_group(engine, project, U, S.ONGOING, priority=25, priority_locked=True)
    process(engine, status_change(project.id, "fp", U, S.ESCALATING))
    [grp] = groups(engine)
    assert (grp.substatus, grp.priority) == (S.ESCALATING, 25)
    assert [a for a, _ in activities(engine, group_id)] == [ActivityType.SET_ESCALATING]


@pytest.mark.parametrize(
    ("current", "new"),
    [
        ((U, S.NEW), (U, S.NEW)),  # same: no-op
        ((R, None), (R, None)),
        ((U, S.NEW), (U, None)),  # missing substatus
        ((U, S.NEW), (IGN, None)),
        ((U, S.NEW), (R, S.FOREVER)),  # unexpected substatus
        ((U, S.ONGOING), (IGN, S.REGRESSED)),  # invalid substatus
        ((R, None), (U, S.NEW)),
    ],
)
def test_refused_or_same_status_changes_nothing(
    engine: Engine, project: Project, current: tuple[int, int | None], new: tuple[int, int | None]
) -> None:
    group_id = make_group(engine, project, *current)
    before = activities(engine, group_id)
    assert process(engine, status_change(project.id, "fp", *new)) is None
    [grp] = groups(engine)
    assert (grp.status, grp.substatus) == current
    assert activities(engine, group_id) == before
    assert history(engine, group_id) == []


def test_unsupported_status_raises(engine: Engine, project: Project) -> None:
    make_group(engine, project, U, S.NEW)
    with pytest.raises(NotImplementedError):
        process(engine, status_change(project.id, "fp", GroupStatus.PENDING_DELETION, None))
    [grp] = groups(engine)
    assert grp.status == U


def test_status_change_for_an_unknown_fingerprint_does_nothing(
    engine: Engine, project: Project
) -> None:
    make_group(engine, project, U, S.NEW)
    assert process(engine, status_change(project.id, "other", R, None)) is None
    [grp] = groups(engine)
    assert grp.status == U


def test_same_fingerprint_in_another_project_is_another_group(
    engine: Engine, project: Project
) -> None:
    make_group(engine, project, U, S.NEW)
    other = make_project(engine, "other-org")
    process(engine, occurrence(other.id, "fp"))
    process(engine, status_change(other.id, "fp", R, None))
    first, second = groups(engine)
    assert (first.status, second.status) == (U, R)


def test_status_change_for_an_unknown_project_raises(engine: Engine, project: Project) -> None:
    with pytest.raises(UnknownProjectError):
        process(engine, status_change(project.id + 1, "fp", R, None))


@pytest.mark.parametrize(
    "broken",
    [{"fingerprint": []}, {"new_status": "resolved"}, {"id": None}, {"project_id": "1"}],
)
def test_malformed_status_change_is_invalid(
    engine: Engine, project: Project, broken: dict[str, Any]
) -> None:
    payload = {**status_change(project.id, "fp", R, None), **broken}
    with pytest.raises(InvalidEventPayloadError):
        process(engine, payload)


def test_update_group_status_by_id(engine: Engine, project: Project) -> None:
    group_id = make_group(engine, project, U, S.NEW)
    with engine.begin() as conn:
        applied = update_group_status(conn, group_id, R, None)
        same = update_group_status(conn, group_id, R, None)
        refused = update_group_status(conn, group_id, U, None)
    assert isinstance(applied, Transition) and applied.status == R
    assert same == NoChange(None)
    assert refused == NoChange("group.update_status.missing_substatus")
    assert [a for a, _ in activities(engine, group_id)] == [ActivityType.SET_RESOLVED]
    with engine.begin() as conn, pytest.raises(GroupNotFound):
        update_group_status(conn, group_id + 1, R, None)
    with engine.begin() as conn, pytest.raises(UnsupportedStatusError):
        update_group_status(conn, group_id, GroupStatus.REPROCESSING, None)


def test_refused_change_is_logged_with_the_reference_name_and_counted(
    engine: Engine, project: Project, caplog: pytest.LogCaptureFixture
) -> None:
    make_group(engine, project, U, S.NEW)
    before = (
        REGISTRY.get_sample_value(
            "vigil_issue_messages_total", {"outcome": "invalid_status_change"}
        )
        or 0.0
    )
    with caplog.at_level(logging.ERROR, logger="vigil.issues.status_change_processing"):
        process(engine, status_change(project.id, "fp", U, None))
        process(engine, status_change(project.id, "fp", U, S.NEW))  # same: silent
    [record] = caplog.records
    assert record.getMessage() == "group.update_status.missing_substatus"
    assert record.__dict__["new_status"] == U and record.__dict__["new_substatus"] is None
    assert record.__dict__["project_id"] == project.id
    after = REGISTRY.get_sample_value(
        "vigil_issue_messages_total", {"outcome": "invalid_status_change"}
    )
    assert after == before + 1
