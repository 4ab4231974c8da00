"""Unignoring an issue whose snooze condition is met (Sentry's `process_snoozes`): on a
new occurrence of it (`process_snooze`), and, for a snooze that ends in time, when the
time comes (`expire_snoozes`, a periodic job), so that "ignore for an hour" ends after
an hour even if nothing happens. The issue becomes unresolved and ongoing, with an
activity entry, a history row "unignored" and a place in the inbox; its snooze goes."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import Connection, Engine

from vigil.issues.enums import (
    ActivityType,
    GroupHistoryStatus,
    GroupStatus,
    GroupSubStatus,
    InboxReason,
)
from vigil.issues.group_store import Group, get_group
from vigil.issues.snooze import condition_met, time_is_up
from vigil.issues.snooze_store import delete_snooze, get_snooze, groups_due, occurrences_since
from vigil.issues.status_change import Transition
from vigil.issues.status_change_processing import apply_transition

log = logging.getLogger(__name__)

UNIGNORE: Final = Transition(
    status=GroupStatus.UNRESOLVED,
    substatus=GroupSubStatus.ONGOING,
    activity=ActivityType.SET_UNRESOLVED,
    history=GroupHistoryStatus.UNIGNORED,
    inbox_reason=InboxReason.UNIGNORED,
)
# Groups unignored per transaction by the periodic job (bounds SQLite's write lock).
EXPIRY_BATCH: Final = 500


def awaits_condition(grp: Group) -> bool:
    return grp.status == GroupStatus.IGNORED and grp.substatus == GroupSubStatus.UNTIL_CONDITION_MET


def process_snooze(conn: Connection, grp: Group, now: datetime) -> bool:
    """After an occurrence of `grp` (as stored, the occurrence included): unignore it if
    its snooze's condition is met. True when it was unignored."""
    if not awaits_condition(grp):
        return False
    snooze = get_snooze(conn, grp.id)
    if snooze is None:
        return False  # ignored until a condition by a message: none is known
    in_window = 0
    if snooze.window is not None and snooze.count is not None:
        in_window = occurrences_since(conn, grp.id, now - timedelta(minutes=snooze.window))
    if not condition_met(snooze, now=now, times_seen=grp.times_seen, in_window=in_window):
        return False
    apply_transition(conn, grp, UNIGNORE, now)
    return True


def expire_snoozes(engine: Engine, now: datetime) -> int:
    """Unignore the issues whose snooze's time has come; how many were."""
    done = 0
    while True:
        with engine.begin() as conn:
            due = groups_due(conn, now, EXPIRY_BATCH)
            # Locked in id order, as the consumer and bulk changes lock groups (no deadlock).
            for group_id in sorted(due):
                grp = get_group(conn, group_id, for_update=True)
                snooze = get_snooze(conn, group_id)
                if grp is None or snooze is None or not time_is_up(snooze, now):
                    continue  # gone, or replaced by a later snooze meanwhile
                if awaits_condition(grp):
                    apply_transition(conn, grp, UNIGNORE, now)  # the snooze goes with it
                    done += 1
                else:
                    delete_snooze(conn, group_id)  # a status change it outlived
        if len(due) < EXPIRY_BATCH:
            break
    if done:
        log.info("ignored issues unignored: their time came", extra={"issues": done})
    return done
