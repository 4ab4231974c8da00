"""Occurrences through the database (spec A3, A4) on both databases: group creation,
update, regression (never of an ignored group), releases and environments, the noise
gate and creation quota, the ingest gate, the three event paths, idempotency, and the
reference's example message processed to an issue."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, select

from tests.issues.occurrences import (
    CRON,
    N_PLUS_ONE,
    T0,
    UNRELEASED,
    activities,
    count,
    event_payload,
    events,
    groups,
    history,
    later,
    make_project,
    occurrence,
    occurrences,
    process,
)
from vigil.db.tables import (
    environment,
    group_environment,
    group_inbox,
    group_release,
    issue_noise_counter,
    release,
    release_project,
    release_project_environment,
)
from vigil.issues import event_store, occurrence_processing
from vigil.issues.drop_log import DropLog
from vigil.issues.enums import (
    ActivityType,
    GroupStatus,
    GroupSubStatus,
    InboxReason,
    PriorityLevel,
)
from vigil.issues.errors import InvalidEventPayloadError
from vigil.issues.fingerprint import md5_hex
from vigil.issues.occurrence_processing import EventLookupError, OccurrenceProcessing
from vigil.issues.occurrence_store import get_occurrence
from vigil.issues.projects import UnknownProjectError
from vigil.issues.status_change_processing import update_group_status
from vigil.tenancy import store as tenancy
from vigil.tenancy.store import Project

EXAMPLE = (
    Path(__file__).resolve().parents[3]
    / "shared/vendor-data/sentry-kafka-schemas/examples/ingest-occurrences/1/monitor-failure.json"
)
P95_REGRESSION = 1018  # released, no noise gate, default creation quota 5 per hour


@pytest.fixture
def project(engine: Engine) -> Project:
    return make_project(engine)


def test_first_occurrence_creates_an_unresolved_new_group_with_its_event(
    engine: Engine, project: Project
) -> None:
    payload = occurrence(project.id)
    result = process(engine, payload)
    assert result is not None
    occ, info = result
    assert occ is not None and info is not None and info.is_new and not info.is_regression
    [grp] = groups(engine)
    assert grp.id == info.group.id
    assert grp.short_id == 1
    assert (grp.status, grp.substatus) == (GroupStatus.UNRESOLVED, GroupSubStatus.NEW)
    assert grp.priority == PriorityLevel.HIGH  # the cron type's default
    assert grp.type == CRON
    assert grp.title == "Something broke"
    assert grp.culprit == "api/123"
    assert grp.level == 40
    assert grp.times_seen == 1
    assert grp.message == "Something broke it was bad api/123"
    assert grp.data["metadata"] == {
        "title": "Something broke",
        "value": "it was bad",
        "initial_priority": 75,
    }
    assert grp.data["type"] == "generic"
    with engine.connect() as conn:
        stored = get_occurrence(conn, payload["id"], project.id)
        inbox = conn.execute(select(group_inbox.c.reason)).scalar_one()
        env_names = conn.scalars(select(environment.c.name)).all()
        group_envs = conn.execute(select(group_environment)).all()
    assert stored is not None and stored.fingerprint == (md5_hex("fp-1"),)
    assert stored.evidence_data == {"k": "v"}
    assert inbox == InboxReason.NEW
    assert env_names == [""]  # an event without environment
    assert len(group_envs) == 1
    [ev] = events(engine)
    assert (ev.event_id, ev.type, ev.group_id) == (payload["event_id"], "generic", grp.id)
    assert ev.tags == [["server", "web-1"]]
    [occ_row] = occurrences(engine)
    assert occ_row.group_id == grp.id


def test_more_occurrences_update_the_group(engine: Engine, project: Project) -> None:
    process(engine, occurrence(project.id, at=later(10)))
    result = process(engine, occurrence(project.id, at=later(20), level="warning"))
    older = process(engine, occurrence(project.id, at=later(5), level="warning"))
    assert result is not None and older is not None
    assert result[1] is not None and not result[1].is_new
    [grp] = groups(engine)
    assert grp.times_seen == 3
    assert grp.level == 30
    assert grp.first_seen.replace(tzinfo=None) == later(5).replace(tzinfo=None)
    assert grp.last_seen.replace(tzinfo=None) == later(20).replace(tzinfo=None)
    assert len(events(engine)) == 3


def test_short_ids_count_per_project(engine: Engine, project: Project) -> None:
    with engine.begin() as conn:
        org = tenancy.get_organization_by_id(conn, project.organization_id)
        other = tenancy.create_project(conn, org, "other")
    process(engine, occurrence(project.id, "a"))
    process(engine, occurrence(project.id, "b"))
    process(engine, occurrence(other.id, "a"))
    assert [(g.project_id, g.short_id) for g in groups(engine)] == [
        (project.id, 1),
        (project.id, 2),
        (other.id, 1),
    ]


def test_a_resolved_group_regresses_on_a_newer_event(engine: Engine, project: Project) -> None:
    process(engine, occurrence(project.id))
    [grp] = groups(engine)
    with engine.begin() as conn:
        update_group_status(conn, grp.id, GroupStatus.RESOLVED, None, now=later(1))
    payload = occurrence(project.id, at=later(10), event=None)
    payload["event"] = event_payload(project.id, payload["event_id"], later(10), release="1.2")
    result = process(engine, payload, now=later(10))
    assert result is not None and result[1] is not None and result[1].is_regression
    [grp] = groups(engine)
    assert (grp.status, grp.substatus) == (GroupStatus.UNRESOLVED, GroupSubStatus.REGRESSED)
    assert grp.resolved_at is None
    assert activities(engine, grp.id)[-1] == (
        ActivityType.SET_REGRESSION,
        {"event_id": payload["event_id"], "version": "1.2"},
    )
    assert history(engine, grp.id) == ["resolved", "regressed"]
    with engine.connect() as conn:
        assert conn.execute(select(group_inbox.c.reason)).scalar_one() == InboxReason.REGRESSION


def test_an_event_from_around_the_resolution_does_not_regress(
    engine: Engine, project: Project
) -> None:
    process(engine, occurrence(project.id))
    [grp] = groups(engine)
    with engine.begin() as conn:
        update_group_status(conn, grp.id, GroupStatus.RESOLVED, None, now=later(1))
    # active_at is the first event's time: an event 4 s later is within the margin
    result = process(engine, occurrence(project.id, at=T0 + timedelta(seconds=4)))
    assert result is not None and result[1] is not None and not result[1].is_regression
    [grp] = groups(engine)
    assert grp.status == GroupStatus.RESOLVED
    assert grp.times_seen == 2


@pytest.mark.parametrize(
    "substatus",
    [GroupSubStatus.UNTIL_ESCALATING, GroupSubStatus.FOREVER, GroupSubStatus.UNTIL_CONDITION_MET],
)
def test_an_ignored_group_never_regresses(
    engine: Engine, project: Project, substatus: GroupSubStatus
) -> None:
    process(engine, occurrence(project.id))
    [grp] = groups(engine)
    with engine.begin() as conn:
        update_group_status(conn, grp.id, GroupStatus.IGNORED, substatus, now=later(1))
    result = process(engine, occurrence(project.id, at=later(60)))
    assert result is not None and result[1] is not None and not result[1].is_regression
    [grp] = groups(engine)
    assert (grp.status, grp.substatus) == (GroupStatus.IGNORED, substatus)
    assert grp.times_seen == 2


def test_releases_and_environments_are_recorded(engine: Engine, project: Project) -> None:
    def send(at_minutes: int, release_name: str, env: str) -> None:
        payload = occurrence(project.id, at=later(at_minutes), event=None)
        payload["event"] = event_payload(
            project.id,
            payload["event_id"],
            later(at_minutes),
            release=release_name,
            environment=env,
        )
        process(engine, payload)

    send(0, "1.0", "prod")
    send(1, "1.0", "prod")
    send(2, "1.1", "staging")
    [grp] = groups(engine)
    with engine.connect() as conn:
        releases = dict(conn.execute(select(release.c.version, release.c.id)).all())
        new_groups = dict(
            conn.execute(select(release_project.c.release_id, release_project.c.new_groups)).all()
        )
        rpe = conn.execute(
            select(
                release_project_environment.c.release_id,
                release_project_environment.c.new_issues_count,
            )
        ).all()
        group_releases = conn.execute(
            select(
                group_release.c.release_id, group_release.c.environment, group_release.c.last_seen
            ).order_by(group_release.c.id)
        ).all()
        envs = conn.scalars(
            select(environment.c.name)
            .join(group_environment, group_environment.c.environment_id == environment.c.id)
            .order_by(environment.c.name)
        ).all()
    assert set(releases) == {"1.0", "1.1"}
    assert grp.first_release_id == releases["1.0"]
    # only the release the group was first seen in counts it as new
    assert new_groups == {releases["1.0"]: 1, releases["1.1"]: 0}
    assert rpe == [(releases["1.0"], 1)]
    assert [(r, e) for r, e, _ in group_releases] == [
        (releases["1.0"], "prod"),
        (releases["1.1"], "staging"),
    ]
    assert group_releases[0].last_seen.replace(tzinfo=None) == later(1).replace(tzinfo=None)
    assert envs == ["prod", "staging"]


def test_noise_gate_creates_the_group_at_the_limit_and_resets_its_counter(
    engine: Engine, project: Project
) -> None:
    # type 1006 ignores the first 2 occurrences of a fingerprint (ignore_limit 3)
    first = process(engine, occurrence(project.id, type=N_PLUS_ONE))
    second = process(engine, occurrence(project.id, type=N_PLUS_ONE, at=later(1)))
    assert first is not None and first[1] is None
    assert second is not None and second[1] is None
    assert groups(engine) == []
    assert [o.group_id for o in occurrences(engine)] == [None, None]  # stored all the same
    with engine.connect() as conn:
        assert conn.execute(select(issue_noise_counter.c.count)).scalar_one() == 2
    third = process(engine, occurrence(project.id, type=N_PLUS_ONE, at=later(2)))
    assert third is not None and third[1] is not None and third[1].is_new
    assert count(engine, issue_noise_counter) == 0  # reset, unlike the reference


def test_noise_counter_expires(engine: Engine, project: Project) -> None:
    process(engine, occurrence(project.id, type=N_PLUS_ONE), now=T0)
    process(engine, occurrence(project.id, type=N_PLUS_ONE), now=T0 + timedelta(hours=25))
    process(engine, occurrence(project.id, type=N_PLUS_ONE), now=T0 + timedelta(hours=26))
    assert groups(engine) == []  # the first one's count had expired: 1, then 2
    process(engine, occurrence(project.id, type=N_PLUS_ONE), now=T0 + timedelta(hours=27))
    assert len(groups(engine)) == 1


def test_creation_quota_limits_new_groups_per_type_and_hour(
    engine: Engine,
    project: Project,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # (A fresh record of logged drops: the process-wide one remembers other tests'.)
    monkeypatch.setattr(occurrence_processing, "drops", DropLog())
    for i in range(5):
        process(engine, occurrence(project.id, f"fp-{i}", type=P95_REGRESSION), now=T0)
    with caplog.at_level(logging.INFO, logger="vigil.issues"):
        dropped = process(
            engine, occurrence(project.id, "fp-5", type=P95_REGRESSION), now=later(30)
        )
        process(engine, occurrence(project.id, "fp-6", type=P95_REGRESSION), now=later(30))
    assert dropped is not None and dropped[1] is None
    assert len(groups(engine)) == 5
    # The operator sees why, once (the next drop within the minute only counts).
    lines = [r for r in caplog.records if r.message.startswith("occurrence dropped")]
    assert [(r.message, r.__dict__["project_id"], r.__dict__["reason"]) for r in lines] == [
        (
            "occurrence dropped: the project has created 5 new issues of this type in the "
            "last 3,600 s, its creation quota",
            project.id,
            "creation_quota",
        )
    ]
    # an existing group still takes occurrences
    updated = process(engine, occurrence(project.id, "fp-0", type=P95_REGRESSION), now=later(31))
    assert updated is not None and updated[1] is not None
    # other types have their own quota
    process(engine, occurrence(project.id, "cron", type=CRON), now=later(31))
    assert len(groups(engine)) == 6
    # an hour later the window has moved on
    process(engine, occurrence(project.id, "fp-5", type=P95_REGRESSION), now=later(61))
    assert len(groups(engine)) == 7


def test_unreleased_type_needs_the_organization_ingest_feature(
    engine: Engine, project: Project
) -> None:
    assert process(engine, occurrence(project.id, type=UNRELEASED)) is None
    assert occurrences(engine) == [] and events(engine) == []
    with engine.begin() as conn:
        org = tenancy.get_organization_by_id(conn, project.organization_id)
        tenancy.set_feature(conn, org, "organizations:profile-file-io-main-thread-ingest", True)
    result = process(engine, occurrence(project.id, type=UNRELEASED))
    assert result is not None and result[1] is not None and result[1].is_new


def test_occurrence_of_another_category_does_not_join_the_group(
    engine: Engine, project: Project
) -> None:
    process(engine, occurrence(project.id, type=CRON))
    result = process(engine, occurrence(project.id, type=P95_REGRESSION))
    assert result is not None and result[1] is None
    [grp] = groups(engine)
    assert grp.times_seen == 1
    assert [o.group_id for o in occurrences(engine)] == [grp.id, None]


def test_looked_up_event_keeps_its_type(engine: Engine, project: Project) -> None:
    event_id = uuid.uuid4().hex
    with engine.begin() as conn:
        event_store.save_event(
            conn,
            project.id,
            {**event_payload(project.id, event_id), "type": "transaction"},
            T0,
        )
    result = process(engine, occurrence(project.id, with_event=False, event_id=event_id))
    assert result is not None and result[1] is not None and result[1].is_new
    [grp] = groups(engine)
    assert grp.data["type"] == "transaction"
    [ev] = events(engine)
    assert ev.type == "transaction"


def test_missing_looked_up_event_is_an_event_lookup_error(engine: Engine, project: Project) -> None:
    payload = occurrence(project.id, with_event=False)
    with pytest.raises(EventLookupError, match=r"Failed to lookup event\(.*\) for project_id"):
        process(engine, payload)
    assert occurrences(engine) == [] and groups(engine) == []


def test_buffered_spans_build_an_event_that_is_not_stored(engine: Engine, project: Project) -> None:
    payload = occurrence(project.id, is_buffered_spans=True)
    payload["event"]["release"] = "2.0"
    result = process(engine, payload)
    assert result is not None and result[1] is not None and result[1].is_new
    assert events(engine) == []
    [grp] = groups(engine)
    assert grp.first_release_id is not None
    [occ] = occurrences(engine)
    assert occ.event_id == payload["event_id"]


def test_mismatched_event_ids_are_invalid(engine: Engine, project: Project) -> None:
    payload = occurrence(project.id)
    payload["event"]["event_id"] = uuid.uuid4().hex
    with pytest.raises(InvalidEventPayloadError, match="is different from event_id in event_data"):
        process(engine, payload)
    assert events(engine) == []


def test_replayed_occurrence_changes_nothing(engine: Engine, project: Project) -> None:
    payload = occurrence(project.id)
    process(engine, payload)
    again = process(engine, payload, now=later(60))
    assert again is not None and again[1] is None
    [grp] = groups(engine)
    assert grp.times_seen == 1
    assert len(events(engine)) == 1 and len(occurrences(engine)) == 1


def test_unknown_project_is_an_error(engine: Engine, project: Project) -> None:
    with pytest.raises(UnknownProjectError, match=f"project {project.id + 100} does not exist"):
        process(engine, occurrence(project.id + 100))


def test_assignee_resolved_within_the_organization_assigns_a_new_group(
    engine: Engine, project: Project
) -> None:
    seen: list[tuple[int, str]] = []

    def resolve(_conn: Any, org_id: int, actor: str) -> str | None:
        seen.append((org_id, actor))
        return actor if actor == "user:7" else None

    processing = OccurrenceProcessing(resolve_assignee=resolve)
    process(engine, occurrence(project.id, "a", assignee="user:7"), processing=processing)
    process(engine, occurrence(project.id, "b", assignee="team:9"), processing=processing)
    process(engine, occurrence(project.id, "c", assignee="user:7"))  # default: nobody
    a, b, c = groups(engine)
    assert (a.assignee, b.assignee, c.assignee) == ("user:7", None, None)
    assert seen == [(project.organization_id, "user:7"), (project.organization_id, "team:9")]
    assert activities(engine, a.id) == [(ActivityType.ASSIGNED, {"assignee": "user:7"})]


def test_reference_example_message_becomes_an_issue(engine: Engine, project: Project) -> None:
    payload = orjson.loads(EXAMPLE.read_bytes())
    payload["project_id"] = payload["event"]["project_id"] = project.id
    result = process(engine, payload)
    assert result is not None
    occ, info = result
    assert occ is not None and info is not None and info.is_new
    [grp] = groups(engine)
    assert grp.title == "Monitor failure: poll_service"
    assert grp.type == 4001 and grp.priority == PriorityLevel.HIGH
    assert grp.data["metadata"]["value"] == "Your monitor has reached its failure threshold."
    assert grp.platform == "other"
    [ev] = events(engine)
    assert ev.environment == "us"
    assert dict(map(tuple, ev.tags))["monitor.slug"] == "poll_service"
    assert occ.important_evidence_display is not None
    assert occ.important_evidence_display.value == "A missed check-in was detected"
    with engine.connect() as conn:
        env = conn.scalars(
            select(environment.c.name).join(
                group_environment, group_environment.c.environment_id == environment.c.id
            )
        ).all()
        stored = get_occurrence(conn, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", project.id)
    assert env == ["us"]
    assert stored is not None and stored.issue_title == "Monitor failure: poll_service"
