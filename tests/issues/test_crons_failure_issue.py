"""Crons to issues on both databases: the monitor-failure occurrences and the resolving
status change that check-in processing produces (B8.3) go through the occurrence
consumer's group processing and make one cron issue that opens and resolves."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Engine

from tests.issues.occurrences import T0, activities, groups, make_project, occurrences
from tests.support.checkins import checkin_item
from vigil.issues.batching import batch_key
from vigil.issues.consumer import process_occurrence_group
from vigil.issues.enums import ActivityType, GroupStatus, PriorityLevel
from vigil.monitors.checkin_processing import CheckinProcessing, process_checkin


def test_monitor_failure_becomes_a_cron_issue_and_recovery_resolves_it(engine: Engine) -> None:
    project = make_project(engine)
    produced: list[tuple[dict[str, Any], str]] = []
    processing = CheckinProcessing(produce_occurrence=lambda p, k: produced.append((p, k)))

    def checkin(hours: int, status: str, **extra: Any) -> None:
        at = T0 + timedelta(hours=hours)
        process_checkin(engine, checkin_item(project, at, status=status, **extra), processing)

    config = {
        "schedule": {"type": "crontab", "value": "0 * * * *"},
        "failure_issue_threshold": 1,
        "recovery_threshold": 1,
    }
    checkin(0, "ok", monitor_config=config)
    checkin(1, "error")
    checkin(2, "error")
    checkin(3, "ok")
    kinds = [p.get("payload_type") for p, _ in produced]
    assert kinds == ["occurrence", "occurrence", "status_change"]
    # the producer's key is the batch key the consumer splits by
    keys = {batch_key(p) for p, _ in produced}
    assert len(keys) == 1

    failures = process_occurrence_group(
        engine, [p for p, _ in produced], clock=lambda: T0 + timedelta(hours=3)
    )
    assert failures == []
    [grp] = groups(engine)
    assert grp.type == 4001
    assert grp.title == "Monitor failure: nightly"
    assert grp.priority == PriorityLevel.HIGH
    assert grp.times_seen == 2
    assert (grp.status, grp.substatus) == (GroupStatus.RESOLVED, None)
    assert [a for a, _ in activities(engine, grp.id)] == [ActivityType.SET_RESOLVED]
    assert len(occurrences(engine)) == 2
