"""The issue-platform enums carry the reference's values and names (spec 0.1)."""

from __future__ import annotations

import pytest

from vigil.issues.enums import (
    IGNORED_SUBSTATUSES,
    LOG_LEVEL_NAMES,
    UNRESOLVED_SUBSTATUSES,
    ActivityType,
    GroupCategory,
    GroupStatus,
    GroupSubStatus,
    PayloadType,
    PriorityLevel,
    log_level_int,
)


@pytest.mark.parametrize(
    ("member", "value", "label"),
    [
        (GroupStatus.UNRESOLVED, 0, "unresolved"),
        (GroupStatus.RESOLVED, 1, "resolved"),
        (GroupStatus.IGNORED, 2, "ignored"),
        (GroupStatus.PENDING_DELETION, 3, "pending_deletion"),
        (GroupStatus.DELETION_IN_PROGRESS, 4, "deletion_in_progress"),
        (GroupStatus.PENDING_MERGE, 5, "pending_merge"),
        (GroupStatus.REPROCESSING, 6, "reprocessing"),
    ],
)
def test_group_status_values(member: GroupStatus, value: int, label: str) -> None:
    assert member == value
    assert member.label == label


def test_muted_is_an_alias_of_ignored() -> None:
    assert GroupStatus["MUTED"] is GroupStatus["IGNORED"]
    assert GroupStatus(2).label == "ignored"
    assert len(GroupStatus) == 7


@pytest.mark.parametrize(
    ("member", "value", "label"),
    [
        (GroupSubStatus.UNTIL_ESCALATING, 1, "archived_until_escalating"),
        (GroupSubStatus.ESCALATING, 2, "escalating"),
        (GroupSubStatus.ONGOING, 3, "ongoing"),
        (GroupSubStatus.UNTIL_CONDITION_MET, 4, "archived_until_condition_met"),
        (GroupSubStatus.FOREVER, 5, "archived_forever"),
        (GroupSubStatus.REGRESSED, 6, "regressed"),
        (GroupSubStatus.NEW, 7, "new"),
    ],
)
def test_substatus_values_and_names(member: GroupSubStatus, value: int, label: str) -> None:
    assert member == value
    assert member.label == label
    assert GroupSubStatus.from_label(label) is member


def test_substatus_from_unknown_label() -> None:
    with pytest.raises(ValueError, match="not a group substatus"):
        GroupSubStatus.from_label("archived")


def test_substatus_sets() -> None:
    assert {
        GroupSubStatus.ONGOING,
        GroupSubStatus.ESCALATING,
        GroupSubStatus.REGRESSED,
        GroupSubStatus.NEW,
    } == UNRESOLVED_SUBSTATUSES
    assert {
        GroupSubStatus.UNTIL_ESCALATING,
        GroupSubStatus.FOREVER,
        GroupSubStatus.UNTIL_CONDITION_MET,
    } == IGNORED_SUBSTATUSES
    assert set(GroupSubStatus) == UNRESOLVED_SUBSTATUSES | IGNORED_SUBSTATUSES


@pytest.mark.parametrize(
    ("member", "value", "label"),
    [
        (PriorityLevel.LOW, 25, "low"),
        (PriorityLevel.MEDIUM, 50, "medium"),
        (PriorityLevel.HIGH, 75, "high"),
    ],
)
def test_priority_values_and_names(member: PriorityLevel, value: int, label: str) -> None:
    assert member == value
    assert member.label == label
    assert PriorityLevel.from_label(label) is member


def test_priority_ok_has_no_string_form() -> None:
    assert int(PriorityLevel.OK) == 0
    with pytest.raises(ValueError):
        _ = PriorityLevel.OK.label
    with pytest.raises(ValueError):
        PriorityLevel.from_label("ok")


@pytest.mark.parametrize(
    ("member", "value"),
    [
        (GroupCategory.ERROR, 1),
        (GroupCategory.PERFORMANCE, 2),
        (GroupCategory.PROFILE, 3),
        (GroupCategory.CRON, 4),
        (GroupCategory.REPLAY, 5),
        (GroupCategory.FEEDBACK, 6),
        (GroupCategory.UPTIME, 7),
        (GroupCategory.METRIC_ALERT, 8),
    ],
)
def test_group_category_values(member: GroupCategory, value: int) -> None:
    assert member == value
    assert member.label == member.name.lower()


@pytest.mark.parametrize(
    ("name", "number"),
    [("debug", 10), ("info", 20), ("warning", 30), ("error", 40), ("fatal", 50)],
)
def test_log_levels(name: str, number: int) -> None:
    assert log_level_int(name) == number
    assert LOG_LEVEL_NAMES[number] == name


@pytest.mark.parametrize("name", ["warn", "critical", "INFO", ""])
def test_unknown_log_level(name: str) -> None:
    with pytest.raises(ValueError, match="not a log level"):
        log_level_int(name)


@pytest.mark.parametrize(
    ("member", "value"),
    [
        (ActivityType.SET_RESOLVED, 1),
        (ActivityType.SET_UNRESOLVED, 2),
        (ActivityType.SET_IGNORED, 3),
        (ActivityType.SET_REGRESSION, 6),
        (ActivityType.AUTO_SET_ONGOING, 24),
        (ActivityType.SET_ESCALATING, 25),
        (ActivityType.SET_PRIORITY, 26),
    ],
)
def test_activity_types(member: ActivityType, value: int) -> None:
    assert member == value


def test_payload_types() -> None:
    assert [p.value for p in PayloadType] == ["occurrence", "status_change"]
