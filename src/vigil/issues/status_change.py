"""What a status change does to a group (spec A5): the decision table as one pure
function, `decide`. The caller applies the decision (group row, activity, history,
inbox, status sync) in one transaction and logs a no-op's `log_name`. No I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from vigil.issues.enums import (
    IGNORED_SUBSTATUSES,
    ActivityType,
    GroupHistoryStatus,
    GroupStatus,
    GroupSubStatus,
    InboxReason,
    InboxRemoval,
    PriorityLevel,
)
from vigil.issues.errors import UnsupportedStatusError

MISSING_SUBSTATUS = "group.update_status.missing_substatus"
UNEXPECTED_SUBSTATUS = "group.update_status.unexpected_substatus"
INVALID_SUBSTATUS = "group.update_status.invalid_substatus"


@dataclass(frozen=True)
class NoChange:
    """Nothing happens: no activity, no history. `log_name` is the error to log (with
    project_id, hashed fingerprint, new_status and new_substatus as extra), or None when
    the group already has the requested status and substatus."""

    log_name: str | None = None


@dataclass(frozen=True)
class PriorityChange:
    """Set the group's priority, recording an Activity SET_PRIORITY with `reason`."""

    priority: int
    reason: str


@dataclass(frozen=True)
class Transition:
    """Set the group's status and substatus, record `activity` and a history row
    `history`; put the group in the inbox with `inbox_reason` or take it out with
    `inbox_removal`; apply `priority_change` if any; and, when `sync_status`, tell
    external issue trackers."""

    status: GroupStatus
    substatus: GroupSubStatus | None
    activity: ActivityType
    history: GroupHistoryStatus
    inbox_reason: InboxReason | None = None
    inbox_removal: InboxRemoval | None = None
    priority_change: PriorityChange | None = None
    sync_status: bool = True


Decision = NoChange | Transition

_IGNORED_HISTORY = {
    GroupSubStatus.UNTIL_ESCALATING: GroupHistoryStatus.ARCHIVED_UNTIL_ESCALATING,
    GroupSubStatus.UNTIL_CONDITION_MET: GroupHistoryStatus.ARCHIVED_UNTIL_CONDITION_MET,
    GroupSubStatus.FOREVER: GroupHistoryStatus.ARCHIVED_FOREVER,
}


def decide(
    current_status: int,
    current_substatus: int | None,
    new_status: int,
    new_substatus: int | None,
    *,
    priority_locked: bool,
    initial_priority: int | None,
    current_priority: int | None,
) -> Decision:
    """What a request to move a group from (current_status, current_substatus) to
    (new_status, new_substatus) does, row by row as the reference's table.

    Priority: escalating raises it to HIGH, and going from escalating back to ongoing
    restores `initial_priority` (the one the group was created with); neither happens
    when the priority was set by hand (`priority_locked`), when there is no initial
    priority to restore, or when the group already has that priority.

    Raises UnsupportedStatusError (a NotImplementedError) for a status other than
    UNRESOLVED, RESOLVED and IGNORED with no substatus, after which the caller logs
    `UnsupportedStatusError.log_name`.
    """
    if (new_status, new_substatus) == (current_status, current_substatus):
        return NoChange()
    if new_status in (GroupStatus.UNRESOLVED, GroupStatus.IGNORED):
        if new_substatus is None:
            return NoChange(MISSING_SUBSTATUS)
    elif new_substatus is not None:
        return NoChange(UNEXPECTED_SUBSTATUS)

    if new_status == GroupStatus.RESOLVED:
        return Transition(
            GroupStatus.RESOLVED,
            None,
            ActivityType.SET_RESOLVED,
            GroupHistoryStatus.RESOLVED,
            inbox_removal=InboxRemoval.RESOLVED,
        )
    if new_status == GroupStatus.IGNORED:
        if new_substatus not in IGNORED_SUBSTATUSES:
            return NoChange(INVALID_SUBSTATUS)
        substatus = GroupSubStatus(new_substatus)
        return Transition(
            GroupStatus.IGNORED,
            substatus,
            ActivityType.SET_IGNORED,
            _IGNORED_HISTORY[substatus],
            inbox_removal=InboxRemoval.IGNORED,
        )
    if new_status == GroupStatus.UNRESOLVED:
        return _unresolve(
            current_substatus,
            new_substatus,
            priority_locked=priority_locked,
            initial_priority=initial_priority,
            current_priority=current_priority,
        )
    raise UnsupportedStatusError(f"Unsupported status: {new_status}")


def _unresolve(
    current_substatus: int | None,
    new_substatus: int | None,
    *,
    priority_locked: bool,
    initial_priority: int | None,
    current_priority: int | None,
) -> Decision:
    if new_substatus == GroupSubStatus.ESCALATING:
        return Transition(
            GroupStatus.UNRESOLVED,
            GroupSubStatus.ESCALATING,
            ActivityType.SET_ESCALATING,
            GroupHistoryStatus.ESCALATING,
            inbox_reason=InboxReason.ESCALATING,
            priority_change=_priority_change(
                PriorityLevel.HIGH, "escalating", priority_locked, current_priority
            ),
        )
    if new_substatus == GroupSubStatus.REGRESSED:
        return Transition(
            GroupStatus.UNRESOLVED,
            GroupSubStatus.REGRESSED,
            ActivityType.SET_REGRESSION,
            GroupHistoryStatus.REGRESSED,
            inbox_reason=InboxReason.REGRESSION,
        )
    if new_substatus == GroupSubStatus.ONGOING:
        if current_substatus == GroupSubStatus.ESCALATING:
            return Transition(
                GroupStatus.UNRESOLVED,
                GroupSubStatus.ONGOING,
                ActivityType.AUTO_SET_ONGOING,
                GroupHistoryStatus.ONGOING,
                inbox_reason=InboxReason.ONGOING,
                priority_change=_priority_change(
                    initial_priority, "ongoing", priority_locked, current_priority
                ),
                # The reference kicks off no status sync for this row.
                sync_status=False,
            )
        return Transition(
            GroupStatus.UNRESOLVED,
            GroupSubStatus.ONGOING,
            ActivityType.SET_UNRESOLVED,
            GroupHistoryStatus.UNRESOLVED,
            inbox_reason=InboxReason.ONGOING,
            sync_status=False,
        )
    return NoChange(INVALID_SUBSTATUS)


def _priority_change(
    target: int | None, reason: str, locked: bool, current: int | None
) -> PriorityChange | None:
    # A priority someone set by hand is theirs; automatic changes leave it alone.
    if locked or target is None or target == current:
        return None
    return PriorityChange(int(target), reason)
