"""Status changes through the database (spec A5): a status-change message finds its
group by fingerprint and `update_status` applies the decision of
`status_change.decide` (group row, activity, history, inbox, priority) in the caller's
transaction. `update_group_status` is the same path for a group chosen by id (the REST
API's `PUT /issues/{id}/`)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from vigil import metrics
from vigil.issues.enums import (
    ActivityType,
    GroupHistoryStatus,
    GroupStatus,
    GroupSubStatus,
    PriorityLevel,
)
from vigil.issues.errors import UnsupportedStatusError
from vigil.issues.group_store import (
    Group,
    GroupNotFound,
    add_activity,
    add_history,
    find_hash,
    get_group,
    put_in_inbox,
    remove_from_inbox,
    update_group,
)
from vigil.issues.projects import ProjectLoader, load_project
from vigil.issues.snooze_store import delete_snooze
from vigil.issues.status_change import Decision, NoChange, Transition, decide
from vigil.issues.status_change_message import normalise_status_change

log = logging.getLogger(__name__)

_PRIORITY_HISTORY = {
    PriorityLevel.HIGH: GroupHistoryStatus.PRIORITY_HIGH,
    PriorityLevel.MEDIUM: GroupHistoryStatus.PRIORITY_MEDIUM,
    PriorityLevel.LOW: GroupHistoryStatus.PRIORITY_LOW,
}


def process_status_change_message(
    conn: Connection,
    payload: Mapping[str, Any],
    *,
    now: datetime,
    load: ProjectLoader = load_project,
) -> Group | None:
    """Apply a status-change message: the group whose first fingerprint hash it names in
    its project, if any, goes through `update_status`. Returns the group when it changed,
    None when nothing happened (no such group, or a no-op). InvalidEventPayloadError for
    a malformed message, UnknownProjectError, UnsupportedStatusError."""
    change = normalise_status_change(payload)
    load(conn, change.project_id)
    found = find_hash(conn, change.project_id, change.fingerprint[0])
    if found.group_id is None:
        metrics.ISSUE_MESSAGES.labels("dropped_group_not_found").inc()
        log.info(
            "status change for an unknown group dropped",
            extra={"project_id": change.project_id, "fingerprint": list(change.fingerprint)},
        )
        return None
    grp = get_group(conn, found.group_id, for_update=True)
    if grp is None:
        return None
    extra = {
        "project_id": change.project_id,
        "fingerprint": list(change.fingerprint),
        "new_status": change.new_status,
        "new_substatus": change.new_substatus,
    }
    decision = update_status(
        conn, grp, change.new_status, change.new_substatus, now=now, log_extra=extra
    )
    if isinstance(decision, NoChange):
        return None
    return get_group(conn, grp.id)


def update_status(
    conn: Connection,
    grp: Group,
    new_status: int,
    new_substatus: int | None,
    *,
    now: datetime,
    log_extra: Mapping[str, Any] | None = None,
    refusal_level: int = logging.ERROR,
) -> Decision:
    """Decide (spec A5 table) and apply a status change to `grp`. A refused change is
    logged at `refusal_level` (its rule's name, with `log_extra`) and counted, and
    changes nothing; UnsupportedStatusError is logged and raised."""
    extra = dict(log_extra or {"group_id": grp.id})
    try:
        decision = decide(
            grp.status,
            grp.substatus,
            new_status,
            new_substatus,
            priority_locked=grp.priority_locked,
            initial_priority=(grp.data.get("metadata") or {}).get("initial_priority"),
            current_priority=grp.priority,
        )
    except UnsupportedStatusError:
        log.log(refusal_level, UnsupportedStatusError.log_name, extra=extra)
        metrics.ISSUE_MESSAGES.labels("invalid_status_change").inc()
        raise
    if isinstance(decision, NoChange):
        if decision.log_name is not None:
            log.log(refusal_level, decision.log_name, extra=extra)
            metrics.ISSUE_MESSAGES.labels("invalid_status_change").inc()
        return decision
    apply_transition(conn, grp, decision, now)
    return decision


def apply_transition(conn: Connection, grp: Group, change: Transition, now: datetime) -> None:
    """Write a decided transition: status, substatus (resolved_at set when resolving,
    cleared otherwise), the activity and history entries, the inbox, the priority. Any
    snooze of the group ends: it was about the status this one replaces."""
    delete_snooze(conn, grp.id)
    update_group(
        conn,
        grp.id,
        status=int(change.status),
        substatus=None if change.substatus is None else int(change.substatus),
        resolved_at=now if change.status == GroupStatus.RESOLVED else None,
    )
    data: dict[str, Any] = {}
    if change.substatus is not None:
        data["substatus"] = GroupSubStatus(change.substatus).label
    add_activity(conn, grp, change.activity, data, now)
    add_history(conn, grp, change.history, now)
    if change.inbox_removal is not None:
        remove_from_inbox(conn, grp.id)
    if change.inbox_reason is not None:
        put_in_inbox(conn, grp.id, change.inbox_reason, now)
    if change.priority_change is not None:
        priority = change.priority_change.priority
        update_group(conn, grp.id, priority=priority)
        label = PriorityLevel(priority).label if priority in _PRIORITY_HISTORY else None
        add_activity(
            conn,
            grp,
            ActivityType.SET_PRIORITY,
            {"priority": label, "reason": change.priority_change.reason},
            now,
        )
        history = _PRIORITY_HISTORY.get(PriorityLevel(priority)) if label else None
        if history is not None:
            add_history(conn, grp, history, now)


def update_group_status(
    conn: Connection,
    group_id: int,
    new_status: int,
    new_substatus: int | None,
    *,
    now: datetime | None = None,
    refusal_level: int = logging.ERROR,
) -> Decision:
    """Apply a status change to the group with that id, as a status-change message
    would: the applied `Transition`, or `NoChange` (log_name None when the group already
    had that status, else the rule that refused it). GroupNotFound for an unknown id,
    UnsupportedStatusError for a status other than unresolved / resolved / ignored.
    `refusal_level`: how loud a refusal is logged (a caller that answers the client
    with it need not log an error)."""
    grp = get_group(conn, group_id, for_update=True)
    if grp is None:
        raise GroupNotFound(f"group {group_id} does not exist")
    extra = {"group_id": group_id, "new_status": new_status, "new_substatus": new_substatus}
    return update_status(
        conn,
        grp,
        new_status,
        new_substatus,
        now=now or datetime.now(UTC),
        log_extra=extra,
        refusal_level=refusal_level,
    )
