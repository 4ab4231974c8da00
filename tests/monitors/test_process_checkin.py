"""process_checkin on both databases (B4.3-B4.7, B5, B6, B8.3, B10): real rows, one
message at a time, time from the message, occurrences captured by a list."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, create_engine, select, update
from sqlalchemy.exc import OperationalError

from tests.support.checkins import T0, Sender, checkin_item, checkins, env_row, incidents
from vigil.db.engine import is_transient
from vigil.db.tables import monitor as monitor_table
from vigil.db.tables import monitor_checkin as checkin_table
from vigil.db.tables import monitor_environment as me_table
from vigil.db.tables import monitor_incident as incident_table
from vigil.db.tables import outbox as outbox_table
from vigil.db.timestamps import aware_utc
from vigil.monitors import processing_error_store
from vigil.monitors.checkin_processing import (
    CheckinProcessing,
    process_checkin,
    process_checkins,
    validate_checkin,
)
from vigil.monitors.enums import CheckInStatus, MonitorStatus, ObjectStatus
from vigil.monitors.processing_errors import (
    CheckinItem,
    ProcessingErrorsException,
    ProcessingErrorType,
)
from vigil.monitors.store import get_monitor
from vigil.tenancy import store as tenancy
from vigil.tenancy.store import Project

DAILY = {"schedule_type": "crontab", "schedule": "0 * * * *"}
NIL = "00000000-0000-0000-0000-000000000000"


@pytest.fixture
def project(engine: Engine) -> Project:
    with engine.begin() as conn:
        org = tenancy.create_organization(conn, "acme")
        return tenancy.create_project(conn, org, "app")


@pytest.fixture
def produced() -> list[tuple[dict[str, Any], str]]:
    return []


@pytest.fixture
def processing(produced: list[tuple[dict[str, Any], str]]) -> CheckinProcessing:
    return CheckinProcessing(produce_occurrence=lambda p, k: produced.append((p, k)))


@pytest.fixture
def send(engine: Engine, project: Project, processing: CheckinProcessing) -> Iterator[Sender]:
    yield Sender(engine, project, processing)


def errors(engine: Engine, project: Project) -> list[list[dict[str, Any]]]:
    """Every stored record's errors, newest first (monitor entity, else project)."""
    with engine.connect() as conn:
        monitor = get_monitor(conn, project.id, "nightly")
        if monitor is not None:
            records = processing_error_store.list_for_monitor(conn, monitor.id, T0)
        else:
            records = []
        records += processing_error_store.list_for_project(conn, project.id, T0)
    return [[e.to_dict() for e in r.errors] for r in records]


# --- main paths -----------------------------------------------------------------------


def test_first_checkin_creates_monitor_environment_and_checkin(
    engine: Engine, project: Project, send: Sender
) -> None:
    guid = send(monitor_config=DAILY)
    with engine.connect() as conn:
        monitor = get_monitor(conn, project.id, "nightly")
    assert monitor is not None and monitor.name == "nightly"
    [row] = checkins(engine)
    assert row.guid == uuid.UUID(guid)
    assert row.status == CheckInStatus.OK
    assert aware_utc(row.date_added) == T0
    assert row.monitor_config == monitor.config
    env = env_row(engine)
    assert env.status == MonitorStatus.OK
    assert aware_utc(env.last_checkin) == T0
    assert aware_utc(env.next_checkin) == datetime(2026, 3, 1, 13, 0, tzinfo=UTC)
    assert errors(engine, project) == []


@pytest.mark.parametrize("threshold", [1, 3])
def test_the_first_ok_check_in_of_a_new_environment_makes_it_ok_whatever_the_threshold(
    engine: Engine, project: Project, send: Sender, threshold: int
) -> None:
    # Its window holds that one check-in, ok: the recovery threshold is met (B5).
    send(monitor_config={**DAILY, "recovery_threshold": threshold})
    send(T0 + timedelta(hours=1), environment="staging", status="in_progress")
    with engine.connect() as conn:
        envs = {
            r.environment_id: (r.status, aware_utc(r.last_checkin))
            for r in conn.execute(select(me_table))
        }
    assert sorted(envs.values()) == [
        (MonitorStatus.ACTIVE, T0 + timedelta(hours=1)),  # in progress: not ok yet
        (MonitorStatus.OK, T0),
    ]


def test_in_progress_then_ok_with_the_same_id_completes_one_checkin(
    engine: Engine, send: Sender
) -> None:
    guid = send(monitor_config=DAILY, status="in_progress")
    [row] = checkins(engine)
    assert row.status == CheckInStatus.IN_PROGRESS
    assert aware_utc(row.timeout_at) == datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    assert env_row(engine).status == MonitorStatus.ACTIVE  # in progress never sets status
    send(T0 + timedelta(seconds=90), check_in_id=guid, status="ok")
    [row] = checkins(engine)
    assert (row.status, row.duration, row.timeout_at) == (CheckInStatus.OK, 90_000, None)
    assert env_row(engine).status == MonitorStatus.OK


def test_nil_uuid_closes_the_latest_in_progress_checkin(engine: Engine, send: Sender) -> None:
    send(monitor_config=DAILY, status="in_progress")
    second = send(T0 + timedelta(minutes=1), status="in_progress")
    send(T0 + timedelta(minutes=2), check_in_id=NIL, status="ok", duration=5)
    rows = checkins(engine)
    assert [(str(r.guid.hex), r.status) for r in rows][1] == (
        uuid.UUID(second).hex,
        CheckInStatus.OK,
    )
    assert rows[0].status == CheckInStatus.IN_PROGRESS
    assert rows[1].duration == 5000


def test_nil_uuid_without_in_progress_creates_a_checkin_with_a_fresh_id(
    engine: Engine, send: Sender
) -> None:
    send(monitor_config=DAILY, check_in_id=NIL)
    [row] = checkins(engine)
    assert row.guid.int != 0 and row.status == CheckInStatus.OK
    assert env_row(engine).status == MonitorStatus.OK


def test_nil_uuid_in_one_chunk_opens_then_closes_the_same_checkin(
    engine: Engine, project: Project, processing: CheckinProcessing
) -> None:
    # The first is its environment's first check-in; the second finds it in progress.
    process_checkins(
        engine,
        [
            checkin_item(project, T0, monitor_config=DAILY, check_in_id=NIL, status="in_progress"),
            checkin_item(project, T0 + timedelta(minutes=3), check_in_id=NIL, status="ok"),
        ],
        processing,
    )
    [row] = checkins(engine)
    assert (row.status, row.duration) == (CheckInStatus.OK, 180_000)
    assert env_row(engine).status == MonitorStatus.OK


def test_heartbeat_moves_date_updated_and_timeout(engine: Engine, send: Sender) -> None:
    config = {**DAILY, "max_runtime": 10}
    guid = send(monitor_config=config, status="in_progress")
    send(T0 + timedelta(minutes=7), check_in_id=guid, status="in_progress")
    [row] = checkins(engine)
    assert row.status == CheckInStatus.IN_PROGRESS
    assert aware_utc(row.date_updated) == T0 + timedelta(minutes=7)
    assert aware_utc(row.timeout_at) == datetime(2026, 3, 1, 12, 17, tzinfo=UTC)


def test_a_finished_checkin_cannot_be_finished_again(
    engine: Engine, project: Project, send: Sender
) -> None:
    guid = send(monitor_config=DAILY)
    send(T0 + timedelta(seconds=5), check_in_id=guid, status="error")
    assert checkins(engine)[0].status == CheckInStatus.OK
    assert errors(engine, project) == [[{"type": 1}]]


def test_a_late_heartbeat_after_completion_is_ignored_silently(
    engine: Engine, project: Project, send: Sender
) -> None:
    guid = send(monitor_config=DAILY)
    send(T0 + timedelta(seconds=5), check_in_id=guid, status="in_progress")
    assert checkins(engine)[0].status == CheckInStatus.OK
    assert errors(engine, project) == []


def test_the_same_id_in_another_environment_is_a_mismatch(
    engine: Engine, project: Project, send: Sender
) -> None:
    guid = send(monitor_config=DAILY, status="in_progress", environment="staging")
    send(check_in_id=guid, environment="production")
    assert errors(engine, project) == [[{"type": 0, "existingEnvironment": "staging"}]]
    assert checkins(engine)[0].status == CheckInStatus.IN_PROGRESS


def test_an_invalid_guid_is_a_processing_error(
    engine: Engine, project: Project, send: Sender
) -> None:
    send(monitor_config=DAILY, check_in_id="not-a-uuid")
    assert checkins(engine) == []
    assert errors(engine, project) == [[{"type": 4}]]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"duration": -1}, {"duration": ["Ensure this value is greater than or equal to 0."]}),
        (
            {"duration": 2_147_484},
            {"duration": ["Ensure this value is less than or equal to 2147483647."]},
        ),
        # in milliseconds, these are past any integer: refused, never a crash
        (
            {"duration": 1e308},
            {"duration": ["Ensure this value is less than or equal to 2147483647."]},
        ),
        ({"duration": -1e308}, {"duration": ["Ensure this value is greater than or equal to 0."]}),
        (
            {"duration": float("inf")},
            {"duration": ["Ensure this value is less than or equal to 2147483647."]},
        ),
        ({"duration": float("nan")}, {"duration": ["A valid integer is required."]}),
        ({"status": "done"}, {"status": ['"done" is not a valid choice.']}),
    ],
)
def test_validation_errors_name_the_field(
    engine: Engine,
    project: Project,
    send: Sender,
    fields: dict[str, Any],
    expected: dict[str, list[str]],
) -> None:
    send(monitor_config=DAILY, **fields)
    assert checkins(engine) == []
    assert errors(engine, project) == [[{"type": 5, "errors": expected}]]


def test_an_integer_duration_past_any_float_is_refused_not_a_crash() -> None:
    # JSON written by a producer's own encoder may hold it (orjson, here, would not).
    with pytest.raises(ProcessingErrorsException) as raised:
        validate_checkin({"status": "ok", "duration": 10**400})
    [error] = raised.value.errors
    assert error.to_dict() == {
        "type": 5,
        "errors": {"duration": ["Ensure this value is less than or equal to 2147483647."]},
    }


def test_a_duration_is_truncated_to_milliseconds_before_its_range_is_checked(
    engine: Engine, project: Project, send: Sender
) -> None:
    send(monitor_config=DAILY, duration=-0.0004)  # int(-0.4 ms) = 0, as the reference
    assert [c.duration for c in checkins(engine)] == [0]
    assert errors(engine, project) == []


def test_no_monitor_and_an_invalid_config(engine: Engine, project: Project, send: Sender) -> None:
    send()
    send(T0 + timedelta(minutes=1), monitor_config={"schedule_type": "crontab"})
    [newest, oldest] = errors(engine, project)
    assert oldest == [{"type": 11}]
    assert [e["type"] for e in newest] == [8, 11]


def test_a_slug_of_only_punctuation_creates_no_monitor(
    engine: Engine, project: Project, send: Sender
) -> None:
    send(monitor_slug="///", monitor_config=DAILY)
    with engine.connect() as conn:
        assert conn.execute(select(monitor_table)).first() is None
        [record] = processing_error_store.list_for_project(conn, project.id, T0)
    assert [e.to_dict() for e in record.errors] == [{"type": 11}]


def test_the_same_id_for_another_monitor_is_a_mismatch(
    engine: Engine, project: Project, send: Sender
) -> None:
    guid = send(monitor_config=DAILY, status="in_progress")
    send(monitor_slug="other", monitor_config=DAILY, check_in_id=guid)
    assert len(checkins(engine)) == 1
    with engine.connect() as conn:
        other = get_monitor(conn, project.id, "other")
        assert other is not None
        [record] = processing_error_store.list_for_monitor(conn, other.id, T0)
    assert [e.to_dict() for e in record.errors] == [
        {"type": 0, "existingEnvironment": "production"}
    ]


def test_a_disabled_monitor_drops_checkins(engine: Engine, project: Project, send: Sender) -> None:
    send(monitor_config=DAILY)
    with engine.begin() as conn:
        conn.execute(update(monitor_table).values(status=int(ObjectStatus.DISABLED)))
    send(T0 + timedelta(minutes=1))
    assert len(checkins(engine)) == 1
    assert errors(engine, project) == [[{"type": 6}]]


def test_environment_limit_and_invalid_environment(
    engine: Engine, project: Project, processing: CheckinProcessing, send: Sender
) -> None:
    processing.max_environments = 1
    send(monitor_config=DAILY)
    send(T0 + timedelta(minutes=1), environment="staging")
    send(T0 + timedelta(minutes=2), environment="a" * 65)
    assert errors(engine, project) == [
        [{"type": 9, "reason": "Environment name too long"}],
        [{"type": 13, "reason": "You may not exceed 1 environments per monitor"}],
    ]


def test_killswitch_and_rate_limit(
    engine: Engine, project: Project, processing: CheckinProcessing, send: Sender
) -> None:
    for i in range(7):
        send(T0 + timedelta(seconds=i), monitor_config=DAILY)
    assert len(checkins(engine)) == 6
    send(T0 + timedelta(minutes=1))  # a new minute, a new bucket
    assert len(checkins(engine)) == 7
    processing.killswitch = frozenset({project.organization_id})
    send(T0 + timedelta(minutes=2))
    assert len(checkins(engine)) == 7
    assert [e[0]["type"] for e in errors(engine, project)] == [15, 14]


# --- mark_failed / mark_ok / incidents --------------------------------------------------


def test_failure_threshold_opens_one_incident_and_recovery_resolves_it(
    engine: Engine,
    project: Project,
    send: Sender,
    produced: list[tuple[dict[str, Any], str]],
) -> None:
    config = {**DAILY, "failure_issue_threshold": 2, "recovery_threshold": 2}
    hour = timedelta(hours=1)
    send(monitor_config=config)
    send(T0 + hour, status="error")
    assert env_row(engine).status == MonitorStatus.OK and produced == []
    send(T0 + 2 * hour, status="error")
    assert env_row(engine).status == MonitorStatus.ERROR
    [incident] = incidents(engine)
    assert len(produced) == 2  # one occurrence per check-in of the window
    key = f"{incident.grouphash}-{project.id}"
    assert {k for _, k in produced} == {key}
    send(T0 + 3 * hour, status="error")
    assert len(incidents(engine)) == 1 and len(produced) == 3
    send(T0 + 4 * hour)
    assert env_row(engine).status == MonitorStatus.ERROR  # one OK of two
    send(T0 + 5 * hour)
    assert env_row(engine).status == MonitorStatus.OK
    [incident] = incidents(engine)
    assert aware_utc(incident.resolving_timestamp) == T0 + 5 * hour
    change, change_key = produced[-1]
    assert change_key == key
    assert {k: v for k, v in change.items() if k != "id"} == {
        "payload_type": "status_change",
        "fingerprint": [incident.grouphash],
        "project_id": project.id,
        "new_status": 1,
        "new_substatus": None,
    }
    send(T0 + 6 * hour, status="error")
    send(T0 + 7 * hour, status="error")
    assert len(incidents(engine)) == 2  # a new incident, a new fingerprint
    assert incidents(engine)[1].grouphash != incident.grouphash


def test_without_a_producer_decisions_go_to_the_outbox_in_order(
    engine: Engine, project: Project
) -> None:
    # The consumer's way: the occurrence and the status change are rows of the outbox,
    # written by the check-in's own transaction.
    send = Sender(engine, project, CheckinProcessing())
    hour = timedelta(hours=1)
    send(monitor_config=DAILY)
    send(T0 + hour, status="error")
    send(T0 + 2 * hour)
    [incident] = incidents(engine)
    with engine.connect() as conn:
        rows = list(conn.execute(select(outbox_table).order_by(outbox_table.c.id)))
    assert [r.topic for r in rows] == ["ingest-occurrences"] * 2
    assert {bytes(r.key) for r in rows} == {f"{incident.grouphash}-{project.id}".encode()}
    bodies = [orjson.loads(r.value) for r in rows]
    assert [b["payload_type"] for b in bodies] == ["occurrence", "status_change"]
    assert bodies[0]["fingerprint"] == bodies[1]["fingerprint"] == [incident.grouphash]


def test_monitor_failure_occurrence_shape(
    engine: Engine,
    project: Project,
    send: Sender,
    produced: list[tuple[dict[str, Any], str]],
) -> None:
    trace = uuid.uuid4()
    send(monitor_config=DAILY)
    send(T0 + timedelta(hours=1), status="error", contexts={"trace": {"trace_id": str(trace)}})
    [(payload, _)] = produced
    with engine.connect() as conn:
        monitor = get_monitor(conn, project.id, "nightly")
    assert monitor is not None
    [incident] = incidents(engine)
    assert payload["type"] == 4001
    assert payload["issue_title"] == "Monitor failure: nightly"
    assert payload["subtitle"] == "Your monitor has reached its failure threshold."
    assert payload["fingerprint"] == [incident.grouphash]
    assert payload["level"] == "error" and payload["culprit"] == ""
    assert payload["evidence_data"] == {}
    assert payload["evidence_display"] == [
        {"name": "Failure reason", "value": "An error check-in was detected", "important": True},
        {"name": "Environment", "value": "production", "important": False},
        {"name": "Last successful check-in", "value": T0.isoformat(), "important": False},
    ]
    event = payload["event"]
    assert event["event_id"] == payload["event_id"]
    assert event["contexts"] == {
        "monitor": {
            "id": str(monitor.guid),
            "slug": "nightly",
            "name": "nightly",
            "config": monitor.config,
            "status": "error",
            "type": "cron_job",
        },
        "trace": {"trace_id": trace.hex, "span_id": None},
    }
    assert event["tags"] == {
        "monitor.id": str(monitor.guid),
        "monitor.slug": "nightly",
        "monitor.incident": str(incident.id),
    }
    assert event["received"] == (T0 + timedelta(hours=1)).isoformat()
    assert (event["platform"], event["sdk"], event["environment"]) == ("other", None, "production")


def test_a_muted_environment_fails_without_occurrences(
    engine: Engine, send: Sender, produced: list[tuple[dict[str, Any], str]]
) -> None:
    send(monitor_config=DAILY)
    with engine.begin() as conn:
        conn.execute(update(me_table).values(is_muted=True))
    send(T0 + timedelta(hours=1), status="error")
    assert env_row(engine).status == MonitorStatus.ERROR
    assert len(incidents(engine)) == 1 and produced == []


def test_a_timed_out_checkin_only_records_the_duration_of_its_completion(
    engine: Engine, send: Sender
) -> None:
    guid = send(monitor_config=DAILY, status="in_progress")
    with engine.begin() as conn:
        conn.execute(update(checkin_table).values(status=int(CheckInStatus.TIMEOUT)))
    send(T0 + timedelta(minutes=45), check_in_id=guid, status="ok")
    [row] = checkins(engine)
    assert (row.status, row.duration, row.timeout_at) == (CheckInStatus.TIMEOUT, 2_700_000, None)


def test_completing_a_run_older_than_the_longest_duration_is_an_invalid_duration(
    engine: Engine, project: Project, send: Sender
) -> None:
    guid = send(monitor_config=DAILY, status="in_progress")
    send(T0 + timedelta(days=30), check_in_id=guid, status="ok")
    assert checkins(engine)[0].status == CheckInStatus.IN_PROGRESS
    assert errors(engine, project) == [[{"type": 3, "duration": "2592000000"}]]


def test_an_older_failure_does_not_move_a_newer_environment(
    engine: Engine, send: Sender, produced: list[tuple[dict[str, Any], str]]
) -> None:
    send(T0 + timedelta(hours=2), monitor_config=DAILY)
    send(T0 + timedelta(hours=1), status="error")
    env = env_row(engine)
    assert (env.status, aware_utc(env.last_checkin)) == (MonitorStatus.OK, T0 + timedelta(hours=2))
    assert incidents(engine) == [] and produced == []


def test_fewer_checkins_than_the_threshold_and_none_ok_reach_it(
    engine: Engine, send: Sender, produced: list[tuple[dict[str, Any], str]]
) -> None:
    send(monitor_config={**DAILY, "failure_issue_threshold": 3}, status="error")
    send(T0 + timedelta(hours=1), status="error")
    assert env_row(engine).status == MonitorStatus.ERROR
    [incident] = incidents(engine)
    assert aware_utc(incident.starting_timestamp) == T0
    # the first error alone already reached it; the second adds one occurrence
    reasons = [p["evidence_display"][0]["value"] for p, _ in produced]
    assert reasons == ["An error check-in was detected", "An error check-in was detected"]
    assert produced[0][0]["evidence_display"][2]["value"] == "Never"


def test_a_database_outage_is_raised_for_the_runner_to_retry(
    tmp_path: Path, project: Project, processing: CheckinProcessing
) -> None:
    # A database that cannot be opened: the check-in must not be logged and dropped.
    unreachable = create_engine(f"sqlite:///{tmp_path / 'missing' / 'dir' / 'vigil.sqlite3'}")
    with pytest.raises(OperationalError) as caught:
        Sender(unreachable, project, processing)()
    assert is_transient(caught.value)


# --- a batch in one transaction is the same as one check-in at a time ---------------------


def _scenario(project: Project) -> list[CheckinItem]:
    """Every path of steps 6-14 in one sequence: creation by config, write-behind ok and
    in_progress check-ins, their completion by id and by the nil id, failures reaching
    the threshold between ok check-ins, recovery, a finished check-in finished again, a
    late heartbeat, an unknown monitor, a second environment, an invalid guid; the nil
    id's latest in-progress check-in among several (by time, then the later created),
    after a general-path check-in of its environment, and with none in progress."""
    h = timedelta(hours=1)
    m = timedelta(minutes=1)
    config = {**DAILY, "failure_issue_threshold": 2, "recovery_threshold": 2}
    run = uuid.uuid4().hex
    done = uuid.uuid4().hex
    late = uuid.uuid4().hex
    first, second, tied = (uuid.uuid4().hex for _ in range(3))
    # check-in ids are fixed per position, so both projects' rows can be compared
    return [
        checkin_item(project, T0, monitor_config=config),
        checkin_item(project, T0 + h, status="in_progress", check_in_id=run),
        checkin_item(project, T0 + h + timedelta(minutes=2), status="in_progress", check_in_id=run),
        checkin_item(project, T0 + h + timedelta(minutes=5), check_in_id=run),
        checkin_item(project, T0 + 2 * h, status="error"),
        checkin_item(project, T0 + 3 * h, status="ok", check_in_id=done),
        checkin_item(project, T0 + 4 * h, status="error"),
        checkin_item(project, T0 + 5 * h, status="error"),
        checkin_item(project, T0 + 5 * h, status="error", check_in_id=done),  # finished already
        checkin_item(project, T0 + 6 * h, status="in_progress", check_in_id=done),  # late: ignored
        checkin_item(project, T0 + 6 * h, status="in_progress"),
        checkin_item(project, T0 + 6 * h + timedelta(minutes=1), check_in_id=NIL),
        checkin_item(project, T0 + 7 * h),
        checkin_item(project, T0 + 8 * h),
        checkin_item(project, T0 + 8 * h + 10 * m, status="in_progress", check_in_id=first),
        checkin_item(project, T0 + 8 * h + 11 * m, status="in_progress", check_in_id=second),
        checkin_item(project, T0 + 8 * h + 11 * m, status="in_progress", check_in_id=tied),
        checkin_item(project, T0 + 8 * h + 12 * m, status="in_progress", check_in_id=NIL),
        checkin_item(project, T0 + 8 * h + 13 * m, check_in_id=NIL),  # closes `tied`
        checkin_item(project, T0 + 8 * h + 14 * m, check_in_id=NIL),  # closes `second`
        checkin_item(project, T0 + 8 * h + 14 * m, check_in_id=done),  # the general path
        checkin_item(project, T0 + 8 * h + 15 * m, check_in_id=NIL),  # closes `first`
        checkin_item(project, T0 + 8 * h + 16 * m, check_in_id=NIL),  # none: a new one
        checkin_item(project, T0 + 8 * h + 17 * m, check_in_id=NIL, status="in_progress"),
        checkin_item(project, T0 + 8 * h + 18 * m, check_in_id=NIL, duration=30.0),
        checkin_item(
            project, T0 + 8 * h, environment="staging", status="in_progress", check_in_id=late
        ),
        checkin_item(project, T0 + 8 * h, check_in_id=late),  # another environment's: a mismatch
        checkin_item(
            project,
            T0 + 8 * h + timedelta(minutes=3),
            environment="staging",
            check_in_id=late,
            duration=120.0,
        ),
        checkin_item(project, T0 + 9 * h, monitor_slug="unknown-monitor"),
        checkin_item(project, T0 + 9 * h, check_in_id="not-a-guid"),
        checkin_item(project, T0 + 10 * h, status="error"),
        checkin_item(project, T0 + 11 * h, status="error"),
    ]


def _state(engine: Engine, project: Project) -> dict[str, Any]:
    def t(value: datetime | None) -> datetime | None:
        return None if value is None else aware_utc(value)

    with engine.connect() as conn:
        monitor = get_monitor(conn, project.id, "nightly")
        assert monitor is not None
        rows = conn.execute(
            select(checkin_table)
            .where(checkin_table.c.monitor_id == monitor.id)
            .order_by(checkin_table.c.id)
        )
        found_checkins = [
            (
                r.status,
                r.duration,
                t(r.date_added),
                t(r.date_updated),
                t(r.expected_time),
                t(r.timeout_at),
            )
            for r in rows
        ]
        envs = conn.execute(
            select(me_table).where(me_table.c.monitor_id == monitor.id).order_by(me_table.c.id)
        )
        found_envs = [
            (r.status, t(r.last_checkin), t(r.next_checkin), t(r.next_checkin_latest)) for r in envs
        ]
        found_incidents = [
            (t(r.starting_timestamp), t(r.resolving_timestamp))
            for r in conn.execute(
                select(incident_table)
                .where(incident_table.c.monitor_id == monitor.id)
                .order_by(incident_table.c.id)
            )
        ]
        records = processing_error_store.list_for_monitor(conn, monitor.id, T0)
        records += processing_error_store.list_for_project(conn, project.id, T0)
        kinds = sorted(e.type for r in records for e in r.errors)
        occurrences = [
            orjson.loads(r.value)["payload_type"]
            for r in conn.execute(select(outbox_table).order_by(outbox_table.c.id))
            if bytes(r.key).endswith(f"-{project.id}".encode())
        ]
    return {
        "checkins": found_checkins,
        "environments": found_envs,
        "incidents": found_incidents,
        "errors": kinds,
        "occurrences": occurrences,
    }


@pytest.mark.parametrize("chunk", [100, 2], ids=["one-batch", "slices-of-2"])
def test_a_batch_in_one_transaction_ends_as_one_check_in_at_a_time(
    engine: Engine, chunk: int
) -> None:
    with engine.begin() as conn:
        org = tenancy.create_organization(conn, "acme")
        one_by_one = tenancy.create_project(conn, org, "one")
        batched = tenancy.create_project(conn, org, "batch")
    processing = CheckinProcessing()  # the consumer's: occurrences to the outbox
    for item in _scenario(one_by_one):
        process_checkin(engine, item, processing)
    # In slices, an in-progress check-in is continued from the database, not from the
    # writes still pending in the same transaction.
    scenario = _scenario(batched)
    for start in range(0, len(scenario), chunk):
        process_checkins(engine, scenario[start : start + chunk], processing)

    expected = _state(engine, one_by_one)
    assert _state(engine, batched) == expected
    # the nil id's check-ins closed the latest in progress, else made one (B4.5, B4.6)
    after = T0 + timedelta(hours=8, minutes=10)
    nine = T0 + timedelta(hours=9)
    nil_section = [(c[0], c[1], c[2]) for c in expected["checkins"] if after <= c[2] < nine]
    assert nil_section == [
        (CheckInStatus.OK, 300_000, after),  # `first`, by the nil id after the general path
        (CheckInStatus.OK, 180_000, after + timedelta(minutes=1)),  # `second`
        (CheckInStatus.OK, 120_000, after + timedelta(minutes=1)),  # `tied`: created later
        (CheckInStatus.OK, None, after + timedelta(minutes=6)),
        (CheckInStatus.OK, 30_000, after + timedelta(minutes=7)),
    ]
    # the scenario did reach every path it names
    assert len(expected["incidents"]) == 2 and expected["incidents"][0][1] is not None
    assert expected["occurrences"].count("status_change") == 1
    assert len(expected["environments"]) == 2
    assert expected["errors"] == sorted(
        int(kind)
        for kind in (
            ProcessingErrorType.CHECKIN_FINISHED,
            ProcessingErrorType.CHECKIN_FINISHED,
            ProcessingErrorType.CHECKIN_ENVIRONMENT_MISMATCH,
            ProcessingErrorType.MONITOR_NOT_FOUND,
            ProcessingErrorType.CHECKIN_INVALID_GUID,
        )
    )


def test_a_check_in_that_fails_is_dropped_alone_and_the_rest_of_the_batch_applied(
    engine: Engine, project: Project, caplog: pytest.LogCaptureFixture
) -> None:
    processing = CheckinProcessing()
    send = Sender(engine, project, processing)
    send(monitor_config=DAILY)
    send(monitor_slug="other", monitor_config=DAILY)
    with engine.begin() as conn:  # a stored schedule that does not compute
        conn.execute(
            update(monitor_table)
            .where(monitor_table.c.slug == "nightly")
            .values(config={"schedule_type": 2, "schedule": [-2, "minute"]})
        )
    h = timedelta(hours=1)
    batch = [
        checkin_item(project, T0 + h),  # the write-behind path
        checkin_item(project, T0 + h, monitor_slug="other"),
        checkin_item(project, T0 + 2 * h, status="error"),  # the general path, in its savepoint
        checkin_item(project, T0 + 2 * h, monitor_slug="other", status="in_progress"),
    ]
    process_checkins(engine, batch, processing)

    with engine.connect() as conn:
        by_slug = {
            slug: [
                r.status
                for r in conn.execute(
                    select(checkin_table)
                    .join(monitor_table, monitor_table.c.id == checkin_table.c.monitor_id)
                    .where(monitor_table.c.slug == slug)
                    .order_by(checkin_table.c.id)
                )
            ]
            for slug in ("nightly", "other")
        }
    assert by_slug == {
        "nightly": [CheckInStatus.OK],  # only the one from before the bad schedule
        "other": [CheckInStatus.OK, CheckInStatus.OK, CheckInStatus.IN_PROGRESS],
    }
    dropped = [r for r in caplog.records if r.getMessage() == "Failed to process check-in"]
    assert len(dropped) == 2
