"""The status-change decision table (spec A5), row by row."""

from __future__ import annotations

import pytest

from vigil.issues.enums import (
    ActivityType,
    GroupHistoryStatus,
    GroupStatus,
    GroupSubStatus,
    InboxReason,
    InboxRemoval,
    PriorityLevel,
)
from vigil.issues.errors import UnsupportedStatusError
from vigil.issues.status_change import (
    INVALID_SUBSTATUS,
    MISSING_SUBSTATUS,
    UNEXPECTED_SUBSTATUS,
    Decision,
    NoChange,
    PriorityChange,
    Transition,
    decide,
)

S, SS = GroupStatus, GroupSubStatus
UNRESOLVED, RESOLVED, IGNORED = S.UNRESOLVED, S.RESOLVED, S.IGNORED
A, H = ActivityType, GroupHistoryStatus


def run(
    current: tuple[int, int | None],
    new: tuple[int, int | None],
    *,
    locked: bool = False,
    initial: int | None = PriorityLevel.MEDIUM,
    priority: int | None = PriorityLevel.MEDIUM,
) -> Decision:
    return decide(
        current[0],
        current[1],
        new[0],
        new[1],
        priority_locked=locked,
        initial_priority=initial,
        current_priority=priority,
    )


@pytest.mark.parametrize(
    "state",
    [
        (UNRESOLVED, SS.ONGOING),
        (UNRESOLVED, SS.NEW),
        (UNRESOLVED, SS.ESCALATING),
        (UNRESOLVED, SS.REGRESSED),
        (RESOLVED, None),
        (IGNORED, SS.FOREVER),
        (IGNORED, SS.UNTIL_ESCALATING),
        (IGNORED, SS.UNTIL_CONDITION_MET),
        (S.PENDING_DELETION, None),
    ],
)
def test_same_status_is_a_silent_no_op(state: tuple[int, int | None]) -> None:
    assert run(state, state) == NoChange(None)


@pytest.mark.parametrize(
    ("current", "new", "log_name"),
    [
        ((RESOLVED, None), (UNRESOLVED, None), MISSING_SUBSTATUS),
        ((RESOLVED, None), (IGNORED, None), MISSING_SUBSTATUS),
        ((UNRESOLVED, SS.NEW), (RESOLVED, SS.FOREVER), UNEXPECTED_SUBSTATUS),
        ((UNRESOLVED, SS.NEW), (RESOLVED, SS.ONGOING), UNEXPECTED_SUBSTATUS),
        ((UNRESOLVED, SS.NEW), (S.PENDING_DELETION, SS.FOREVER), UNEXPECTED_SUBSTATUS),
        ((UNRESOLVED, SS.NEW), (IGNORED, SS.REGRESSED), INVALID_SUBSTATUS),
        ((UNRESOLVED, SS.NEW), (IGNORED, SS.ONGOING), INVALID_SUBSTATUS),
        ((UNRESOLVED, SS.NEW), (IGNORED, SS.NEW), INVALID_SUBSTATUS),
        ((UNRESOLVED, SS.NEW), (IGNORED, SS.ESCALATING), INVALID_SUBSTATUS),
        ((RESOLVED, None), (UNRESOLVED, SS.NEW), INVALID_SUBSTATUS),
        ((RESOLVED, None), (UNRESOLVED, SS.FOREVER), INVALID_SUBSTATUS),
        ((RESOLVED, None), (UNRESOLVED, SS.UNTIL_ESCALATING), INVALID_SUBSTATUS),
        ((RESOLVED, None), (UNRESOLVED, 99), INVALID_SUBSTATUS),
        ((RESOLVED, None), (IGNORED, 99), INVALID_SUBSTATUS),
    ],
)
def test_invalid_combinations_are_logged_no_ops(
    current: tuple[int, int | None], new: tuple[int, int | None], log_name: str
) -> None:
    assert run(current, new) == NoChange(log_name)


@pytest.mark.parametrize(
    "status", [S.PENDING_DELETION, S.DELETION_IN_PROGRESS, S.PENDING_MERGE, S.REPROCESSING, 99]
)
def test_unsupported_status_raises_not_implemented(status: int) -> None:
    with pytest.raises(NotImplementedError) as info:
        run((UNRESOLVED, SS.ONGOING), (status, None))
    assert isinstance(info.value, UnsupportedStatusError)
    assert info.value.log_name == "group.update_status.unsupported_status"


@pytest.mark.parametrize(
    "current", [(UNRESOLVED, SS.NEW), (UNRESOLVED, SS.ESCALATING), (IGNORED, SS.FOREVER)]
)
def test_resolve(current: tuple[int, int | None]) -> None:
    assert run(current, (RESOLVED, None)) == Transition(
        RESOLVED,
        None,
        A.SET_RESOLVED,
        H.RESOLVED,
        inbox_removal=InboxRemoval.RESOLVED,
        sync_status=True,
    )


@pytest.mark.parametrize(
    ("substatus", "history"),
    [
        (SS.UNTIL_ESCALATING, H.ARCHIVED_UNTIL_ESCALATING),
        (SS.UNTIL_CONDITION_MET, H.ARCHIVED_UNTIL_CONDITION_MET),
        (SS.FOREVER, H.ARCHIVED_FOREVER),
    ],
)
def test_ignore(substatus: GroupSubStatus, history: GroupHistoryStatus) -> None:
    decision = run((UNRESOLVED, SS.NEW), (IGNORED, substatus))
    assert decision == Transition(
        IGNORED, substatus, A.SET_IGNORED, history, inbox_removal=InboxRemoval.IGNORED
    )
    assert history.value == substatus.label


def test_ignore_changes_between_ignored_substatuses() -> None:
    decision = run((IGNORED, SS.FOREVER), (IGNORED, SS.UNTIL_ESCALATING))
    assert isinstance(decision, Transition)
    assert decision.substatus is SS.UNTIL_ESCALATING


@pytest.mark.parametrize(
    ("locked", "priority", "change"),
    [
        (False, PriorityLevel.MEDIUM, PriorityChange(75, "escalating")),
        (False, PriorityLevel.LOW, PriorityChange(75, "escalating")),
        (False, None, PriorityChange(75, "escalating")),
        (False, PriorityLevel.HIGH, None),  # already high
        (True, PriorityLevel.LOW, None),  # set by hand
    ],
)
def test_escalating(locked: bool, priority: int | None, change: PriorityChange | None) -> None:
    decision = run(
        (UNRESOLVED, SS.ONGOING), (UNRESOLVED, SS.ESCALATING), locked=locked, priority=priority
    )
    assert decision == Transition(
        UNRESOLVED,
        SS.ESCALATING,
        A.SET_ESCALATING,
        H.ESCALATING,
        inbox_reason=InboxReason.ESCALATING,
        priority_change=change,
        sync_status=True,
    )


@pytest.mark.parametrize(
    "current", [(RESOLVED, None), (UNRESOLVED, SS.ONGOING), (IGNORED, SS.FOREVER)]
)
def test_regressed(current: tuple[int, int | None]) -> None:
    assert run(current, (UNRESOLVED, SS.REGRESSED)) == Transition(
        UNRESOLVED,
        SS.REGRESSED,
        A.SET_REGRESSION,
        H.REGRESSED,
        inbox_reason=InboxReason.REGRESSION,
        sync_status=True,
    )


@pytest.mark.parametrize(
    ("locked", "initial", "priority", "change"),
    [
        (False, PriorityLevel.MEDIUM, PriorityLevel.HIGH, PriorityChange(50, "ongoing")),
        (False, PriorityLevel.LOW, PriorityLevel.HIGH, PriorityChange(25, "ongoing")),
        (False, PriorityLevel.HIGH, PriorityLevel.HIGH, None),  # nothing to revert
        (False, None, PriorityLevel.HIGH, None),  # no initial priority recorded
        (True, PriorityLevel.LOW, PriorityLevel.HIGH, None),  # set by hand
    ],
)
def test_ongoing_after_escalating(
    locked: bool, initial: int | None, priority: int, change: PriorityChange | None
) -> None:
    decision = run(
        (UNRESOLVED, SS.ESCALATING),
        (UNRESOLVED, SS.ONGOING),
        locked=locked,
        initial=initial,
        priority=priority,
    )
    assert decision == Transition(
        UNRESOLVED,
        SS.ONGOING,
        A.AUTO_SET_ONGOING,
        H.ONGOING,
        inbox_reason=InboxReason.ONGOING,
        priority_change=change,
        sync_status=False,
    )


@pytest.mark.parametrize(
    "current",
    [
        (RESOLVED, None),
        (IGNORED, SS.FOREVER),
        (IGNORED, SS.UNTIL_ESCALATING),
        (UNRESOLVED, SS.NEW),
        (UNRESOLVED, SS.REGRESSED),
    ],
)
def test_ongoing_otherwise(current: tuple[int, int | None]) -> None:
    assert run(current, (UNRESOLVED, SS.ONGOING)) == Transition(
        UNRESOLVED,
        SS.ONGOING,
        A.SET_UNRESOLVED,
        H.UNRESOLVED,
        inbox_reason=InboxReason.ONGOING,
        sync_status=False,
    )


def test_plain_ints_are_accepted() -> None:
    decision = run((1, None), (2, 5))
    assert isinstance(decision, Transition)
    assert decision.status is IGNORED and decision.substatus is SS.FOREVER
