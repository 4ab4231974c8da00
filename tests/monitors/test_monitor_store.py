"""The monitor store on both databases: the check-in upsert of B4.4 (lookup, invalid
configs, creation, merging, owners, the organization's monitor limit), ensure_environment
(B1: default name, invalid names, the per-monitor limit) and the API's getters. Time is
a parameter: every write gets `now`."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, func, select, update

from vigil.config import ConfigError, load_settings
from vigil.db.tables import environment as environment_table
from vigil.db.tables import monitor as monitor_table
from vigil.db.tables import monitor_environment as monitor_environment_table
from vigil.monitors.enums import MonitorStatus, MonitorType, ObjectStatus
from vigil.monitors.models import Monitor
from vigil.monitors.processing_errors import ProcessingError, ProcessingErrorType
from vigil.monitors.store import (
    EnsuredMonitor,
    MonitorEnvironmentLimitsExceeded,
    MonitorEnvironmentValidationFailed,
    MonitorLimitsExceeded,
    OwnerResolver,
    ensure_environment,
    ensure_monitor_with_config,
    get_monitor,
    get_organization_monitor,
    list_monitors,
    no_owners,
)
from vigil.tenancy import store as tenancy
from vigil.tenancy.store import Organization, Project

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LATER = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
DAILY = {"schedule_type": "crontab", "schedule": "@daily"}
DAILY_STORED: dict[str, Any] = {
    "schedule_type": 1,
    "schedule": "0 0 * * *",
    "checkin_margin": None,
    "max_runtime": None,
    "failure_issue_threshold": None,
    "recovery_threshold": None,
}
MANY = 10_000

# The organization's users and teams, as an owner resolver would know them.
USERS = {"7": 7, "alice": 70}
TEAMS = {"3": 3}


def resolve(kind: str, identifier: str) -> int | None:
    return (USERS if kind == "user" else TEAMS).get(identifier)


@pytest.fixture
def conn(engine: Engine) -> Iterator[Connection]:
    with engine.begin() as connection:
        yield connection


@pytest.fixture
def org(conn: Connection) -> Organization:
    return tenancy.create_organization(conn, "acme")


@pytest.fixture
def project(conn: Connection, org: Organization) -> Project:
    return tenancy.create_project(conn, org, "app")


def upsert(
    conn: Connection,
    project: Project,
    config: object,
    *,
    slug: str = "nightly",
    resolver: OwnerResolver = resolve,
    limit: int = MANY,
    now: datetime = NOW,
) -> EnsuredMonitor:
    return ensure_monitor_with_config(conn, project, slug, config, resolver, limit, now=now)


def created(conn: Connection, project: Project, config: object, **kw: Any) -> Monitor:
    result = upsert(conn, project, config, **kw)
    assert result.errors == ()
    assert result.monitor is not None
    return result.monitor


def monitor_rows(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(monitor_table)).scalar_one())


# --- lookup without a config ------------------------------------------------------------


@pytest.mark.parametrize("config", [None, {}])
def test_no_config_and_no_monitor_finds_nothing_and_creates_nothing(
    conn: Connection, project: Project, config: object
) -> None:
    assert upsert(conn, project, config) == EnsuredMonitor(None, ())
    assert monitor_rows(conn) == 0


@pytest.mark.parametrize("config", [None, {}])
def test_no_config_returns_the_existing_monitor_unchanged(
    conn: Connection, project: Project, config: object
) -> None:
    monitor = created(conn, project, DAILY)
    assert upsert(conn, project, config, now=LATER) == EnsuredMonitor(monitor, ())
    assert get_monitor(conn, project.id, "nightly") == monitor


# --- invalid configs --------------------------------------------------------------------


def test_invalid_config_without_a_monitor_is_monitor_invalid_config_with_field_errors(
    conn: Connection, project: Project
) -> None:
    result = upsert(conn, project, {"schedule_type": "crontab"})
    assert result.monitor is None
    assert result.errors == (
        ProcessingError(
            ProcessingErrorType.MONITOR_INVALID_CONFIG,
            {"errors": {"schedule": ["This field is required."]}},
        ),
    )
    assert result.errors[0].to_dict() == {
        "type": 8,
        "errors": {"schedule": ["This field is required."]},
    }
    assert monitor_rows(conn) == 0


def test_invalid_config_for_an_existing_monitor_is_ignored(
    conn: Connection, project: Project
) -> None:
    monitor = created(conn, project, {**DAILY, "checkin_margin": 5})
    result = upsert(conn, project, {"schedule_type": "crontab", "schedule": "@reboot"})
    assert result == EnsuredMonitor(monitor, ())
    assert get_monitor(conn, project.id, "nightly") == monitor


def test_a_config_that_is_not_a_mapping_is_invalid(conn: Connection, project: Project) -> None:
    result = upsert(conn, project, "0 * * * *")
    assert result.monitor is None
    assert [e.type for e in result.errors] == [ProcessingErrorType.MONITOR_INVALID_CONFIG]


# --- creation ---------------------------------------------------------------------------


def test_valid_config_creates_an_active_cron_job_named_after_its_slug(
    conn: Connection, org: Organization, project: Project
) -> None:
    monitor = created(conn, project, DAILY)
    assert isinstance(monitor.guid, uuid.UUID)
    assert (monitor.organization_id, monitor.project_id) == (org.id, project.id)
    assert (monitor.slug, monitor.name) == ("nightly", "nightly")
    assert monitor.status is ObjectStatus.ACTIVE
    assert monitor.type is MonitorType.CRON_JOB
    assert monitor.is_muted is False
    assert (monitor.owner_user_id, monitor.owner_team_id) == (None, None)
    assert monitor.config == DAILY_STORED
    assert monitor.date_added == NOW
    assert get_monitor(conn, project.id, "nightly") == monitor
    assert monitor_rows(conn) == 1


def test_each_monitor_gets_its_own_guid(conn: Connection, project: Project) -> None:
    first = created(conn, project, DAILY, slug="a")
    second = created(conn, project, DAILY, slug="b")
    assert first.guid != second.guid


def test_the_same_slug_in_another_project_is_another_monitor(
    conn: Connection, org: Organization, project: Project
) -> None:
    other = tenancy.create_project(conn, org, "other")
    first = created(conn, project, DAILY)
    second = created(conn, other, DAILY)
    assert first.id != second.id
    assert get_monitor(conn, other.id, "nightly") == second


# --- merging into an existing monitor ---------------------------------------------------


def test_schedule_and_schedule_type_are_always_overwritten_other_stored_keys_kept(
    conn: Connection, project: Project
) -> None:
    created(conn, project, {**DAILY, "checkin_margin": 5, "max_runtime": 20})
    monitor = created(conn, project, {"schedule": {"type": "interval", "value": 2, "unit": "hour"}})
    assert monitor.config == {**DAILY_STORED, "checkin_margin": 5, "max_runtime": 20} | {
        "schedule_type": 2,
        "schedule": [2, "hour"],
    }
    assert get_monitor(conn, project.id, "nightly") == monitor


def test_keys_the_payload_names_take_their_validated_values_even_null(
    conn: Connection, project: Project
) -> None:
    created(conn, project, {**DAILY, "checkin_margin": 5, "max_runtime": 20})
    monitor = created(conn, project, {**DAILY, "checkin_margin": None, "recovery_threshold": 3})
    assert monitor.config == {**DAILY_STORED, "max_runtime": 20, "recovery_threshold": 3}


def test_an_empty_timezone_removes_the_stored_one_an_absent_one_keeps_it(
    conn: Connection, project: Project
) -> None:
    created(conn, project, {**DAILY, "timezone": "Europe/Vienna"})
    kept = created(conn, project, DAILY)
    assert kept.config["timezone"] == "Europe/Vienna"
    removed = created(conn, project, {**DAILY, "timezone": ""})
    assert "timezone" not in removed.config
    assert removed.config == DAILY_STORED


def test_stored_keys_a_check_in_cannot_set_survive_a_merge(
    conn: Connection, project: Project
) -> None:
    monitor = created(conn, project, DAILY)
    conn.execute(
        update(monitor_table)
        .where(monitor_table.c.id == monitor.id)
        .values(config={**DAILY_STORED, "alert_rule_id": 12})
    )
    merged = created(conn, project, {**DAILY, "alert_rule_id": 99, "max_runtime": 5})
    assert merged.config == {**DAILY_STORED, "alert_rule_id": 12, "max_runtime": 5}


def test_an_unchanged_config_writes_nothing(conn: Connection, project: Project) -> None:
    monitor = created(conn, project, DAILY)
    assert upsert(conn, project, dict(DAILY), now=LATER) == EnsuredMonitor(monitor, ())


# --- owners -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("owner", "user", "team"),
    [
        ("user:7", 7, None),
        ("user:alice", 70, None),
        ("team:3", None, 3),
        ("user:999", None, None),  # not one of the organization's
        ("team:7", None, None),
        ("bob", None, None),  # not an owner reference
        ("robot:1", None, None),
    ],
)
def test_owner_on_creation(
    conn: Connection, project: Project, owner: str, user: int | None, team: int | None
) -> None:
    monitor = created(conn, project, {**DAILY, "owner": owner})
    assert (monitor.owner_user_id, monitor.owner_team_id) == (user, team)
    assert "owner" not in monitor.config
    assert monitor.config == DAILY_STORED


def test_no_owner_resolves_without_users_and_teams(conn: Connection, project: Project) -> None:
    monitor = created(conn, project, {**DAILY, "owner": "user:7"}, resolver=no_owners)
    assert (monitor.owner_user_id, monitor.owner_team_id) == (None, None)


def test_a_valid_new_owner_replaces_the_existing_one(conn: Connection, project: Project) -> None:
    created(conn, project, {**DAILY, "owner": "team:3"})
    monitor = created(conn, project, {**DAILY, "owner": "user:7"})
    assert (monitor.owner_user_id, monitor.owner_team_id) == (7, None)
    assert get_monitor(conn, project.id, "nightly") == monitor


@pytest.mark.parametrize("owner", ["user:999", "bob", None])
def test_an_invalid_or_absent_owner_never_clears_the_existing_one(
    conn: Connection, project: Project, owner: str | None
) -> None:
    created(conn, project, {**DAILY, "owner": "team:3"})
    monitor = created(conn, project, {**DAILY, "owner": owner})
    assert (monitor.owner_user_id, monitor.owner_team_id) == (None, 3)


def test_an_owner_alone_is_not_a_config(conn: Connection, project: Project) -> None:
    # the owner is popped out first; what is left is validated and has no schedule
    result = upsert(conn, project, {"owner": "user:7"})
    assert result.monitor is None
    assert [e.type for e in result.errors] == [ProcessingErrorType.MONITOR_INVALID_CONFIG]


# --- the organization's monitor limit ---------------------------------------------------


def test_monitor_limit_allows_n_monitors_and_refuses_the_next(
    conn: Connection, org: Organization, project: Project
) -> None:
    other_project = tenancy.create_project(conn, org, "other")
    created(conn, project, DAILY, slug="one", limit=2)
    created(conn, other_project, DAILY, slug="two", limit=2)  # the limit is per organization
    with pytest.raises(MonitorLimitsExceeded) as raised:
        upsert(conn, project, DAILY, slug="three", limit=2)
    assert str(raised.value) == "You may not exceed 2 monitors per organization"
    assert monitor_rows(conn) == 2
    assert get_monitor(conn, project.id, "three") is None


def test_monitor_limit_does_not_stop_updates_or_lookups(conn: Connection, project: Project) -> None:
    created(conn, project, DAILY, slug="one", limit=1)
    updated = created(conn, project, {**DAILY, "max_runtime": 9}, slug="one", limit=1)
    assert updated.config["max_runtime"] == 9
    assert upsert(conn, project, None, slug="two", limit=1) == EnsuredMonitor(None, ())


def test_monitor_limit_counts_only_the_organizations_own_monitors(
    conn: Connection, project: Project
) -> None:
    created(conn, project, DAILY, slug="one", limit=1)
    other_org = tenancy.create_organization(conn, "other-org")
    elsewhere = tenancy.create_project(conn, other_org, "app")
    assert created(conn, elsewhere, DAILY, slug="one", limit=1).organization_id == other_org.id


def test_an_invalid_config_never_reaches_the_limit(conn: Connection, project: Project) -> None:
    created(conn, project, DAILY, slug="one", limit=1)
    result = upsert(conn, project, {"schedule": "nope", "schedule_type": "crontab"}, limit=1)
    assert [e.type for e in result.errors] == [ProcessingErrorType.MONITOR_INVALID_CONFIG]


# --- a caller that read the monitors first (`absent`: the check-in consumer) ------------


def test_a_monitor_made_since_the_caller_looked_is_updated_even_at_the_limit(
    conn: Connection, project: Project
) -> None:
    # The consumer's chunk read its monitors up front; another consumer made this one
    # since. Creating it is not tried twice, and the limit does not refuse an update.
    made = created(conn, project, DAILY, slug="one", limit=1)
    for limit in (MANY, 1):
        result = ensure_monitor_with_config(
            conn,
            project,
            "one",
            {**DAILY, "max_runtime": limit},
            resolve,
            limit,
            now=LATER,
            absent=True,
        )
        assert result.errors == ()
        assert result.monitor is not None
        assert (result.monitor.id, result.monitor.config["max_runtime"]) == (made.id, limit)
    assert monitor_rows(conn) == 1
    assert get_monitor(conn, project.id, "one") == result.monitor


def test_an_invalid_config_for_a_monitor_made_since_the_caller_looked_is_ignored(
    conn: Connection, project: Project
) -> None:
    made = created(conn, project, DAILY, slug="one")
    result = ensure_monitor_with_config(
        conn, project, "one", {"schedule": "nope"}, resolve, MANY, now=LATER, absent=True
    )
    assert result == EnsuredMonitor(made, ())


def test_a_monitor_created_is_the_row_as_stored(conn: Connection, project: Project) -> None:
    made = ensure_monitor_with_config(
        conn, project, "fresh", DAILY, resolve, MANY, now=NOW, absent=True
    ).monitor
    assert made is not None
    assert made == get_monitor(conn, project.id, "fresh")
    assert (made.status, made.type, made.date_added) == (
        ObjectStatus.ACTIVE,
        MonitorType.CRON_JOB,
        NOW,
    )


# --- ensure_environment -----------------------------------------------------------------


@pytest.fixture
def monitor(conn: Connection, project: Project) -> Monitor:
    return created(conn, project, DAILY)


@pytest.mark.parametrize("name", [None, ""])
def test_an_absent_environment_is_production(
    conn: Connection, project: Project, monitor: Monitor, name: str | None
) -> None:
    env = ensure_environment(conn, project, monitor, name, MANY, now=NOW)
    assert env.environment == "production"
    assert env.monitor_id == monitor.id
    assert env.status is MonitorStatus.ACTIVE
    assert env.is_muted is False
    assert (env.next_checkin, env.next_checkin_latest, env.last_checkin) == (None, None, None)
    assert env.date_added == NOW


def test_ensure_environment_finds_what_it_created(
    conn: Connection, project: Project, monitor: Monitor
) -> None:
    first = ensure_environment(conn, project, monitor, "staging", MANY, now=NOW)
    again = ensure_environment(conn, project, monitor, "staging", MANY, now=LATER)
    assert again == first
    assert again.date_added == NOW


def test_monitors_of_a_project_share_its_environments(
    conn: Connection, project: Project, monitor: Monitor
) -> None:
    other = created(conn, project, DAILY, slug="other")
    a = ensure_environment(conn, project, monitor, "staging", MANY, now=NOW)
    b = ensure_environment(conn, project, other, "staging", MANY, now=NOW)
    assert a.environment_id == b.environment_id
    assert a.id != b.id
    names = conn.execute(select(environment_table.c.project_id, environment_table.c.name)).all()
    assert [tuple(r) for r in names] == [(project.id, "staging")]


@pytest.mark.parametrize("name", ["e" * 64, "Prod EU", "ünïcode", " spaced "])
def test_valid_environment_names_are_kept_as_sent(
    conn: Connection, project: Project, monitor: Monitor, name: str
) -> None:
    assert ensure_environment(conn, project, monitor, name, MANY).environment == name


@pytest.mark.parametrize("name", ["e" * 65, "a/b", "a\nb", "a\rb", "a\fb"])
def test_invalid_environment_names_are_refused(
    conn: Connection, project: Project, monitor: Monitor, name: str
) -> None:
    with pytest.raises(MonitorEnvironmentValidationFailed) as raised:
        ensure_environment(conn, project, monitor, name, MANY)
    assert str(raised.value) == "Environment name too long"
    assert list_monitors(conn, monitor.organization_id)[0].environments == ()


def test_environment_limit_allows_n_environments_and_refuses_the_next(
    conn: Connection, project: Project, monitor: Monitor
) -> None:
    ensure_environment(conn, project, monitor, None, 2)
    ensure_environment(conn, project, monitor, "staging", 2)
    with pytest.raises(MonitorEnvironmentLimitsExceeded) as raised:
        ensure_environment(conn, project, monitor, "dev", 2)
    assert str(raised.value) == "You may not exceed 2 environments per monitor"
    # existing environments are still found at the limit, and the limit is per monitor
    assert ensure_environment(conn, project, monitor, "staging", 2).environment == "staging"
    other = created(conn, project, DAILY, slug="other")
    assert ensure_environment(conn, project, other, "dev", 2).environment == "dev"
    listed = list_monitors(conn, monitor.organization_id)
    envs = {m.monitor.slug: [e.environment for e in m.environments] for m in listed}
    assert envs == {"nightly": ["production", "staging"], "other": ["dev"]}


def test_an_environment_made_since_the_caller_looked_is_found_even_at_the_limit(
    conn: Connection, project: Project, monitor: Monitor
) -> None:
    first = ensure_environment(conn, project, monitor, "staging", MANY, now=NOW)
    for limit in (MANY, 1):
        again = ensure_environment(conn, project, monitor, "staging", limit, now=LATER, absent=True)
        assert again == first
    with pytest.raises(MonitorEnvironmentLimitsExceeded):
        ensure_environment(conn, project, monitor, "dev", 1, absent=True)


def test_environment_ids_the_caller_knows_are_used_and_the_ones_looked_up_kept(
    conn: Connection, project: Project, monitor: Monitor
) -> None:
    known: dict[tuple[int, str], int] = {}
    made = ensure_environment(
        conn, project, monitor, "staging", MANY, absent=True, environment_ids=known
    )
    assert known == {(project.id, "staging"): made.environment_id}
    other = created(conn, project, DAILY, slug="other")
    again = ensure_environment(
        conn, project, other, "staging", MANY, absent=True, environment_ids=known
    )
    assert again.environment_id == made.environment_id
    assert again.id != made.id


# --- getters ----------------------------------------------------------------------------


def test_organization_monitor_by_slug_is_the_oldest_unless_projects_are_given(
    conn: Connection, org: Organization, project: Project
) -> None:
    other = tenancy.create_project(conn, org, "other")
    first = created(conn, project, DAILY)
    second = created(conn, other, DAILY)
    assert get_organization_monitor(conn, org.id, "nightly") == first
    assert get_organization_monitor(conn, org.id, "nightly", [other.id]) == second
    assert get_organization_monitor(conn, org.id, "missing") is None
    stranger = tenancy.create_organization(conn, "stranger")
    assert get_organization_monitor(conn, stranger.id, "nightly") is None


def test_list_monitors_by_name_with_environments(
    conn: Connection, org: Organization, project: Project
) -> None:
    b = created(conn, project, DAILY, slug="b-job")
    a = created(conn, project, DAILY, slug="a-job")
    ensure_environment(conn, project, b, "staging", MANY)
    ensure_environment(conn, project, b, None, MANY)
    listed = list_monitors(conn, org.id)
    assert [m.monitor for m in listed] == [a, b]
    assert [e.environment for e in listed[1].environments] == ["production", "staging"]
    assert listed[0].environments == ()
    other = tenancy.create_project(conn, org, "other")
    assert list_monitors(conn, org.id, [other.id]) == []


def test_list_monitors_pages_and_filters_before_reading_the_page(
    conn: Connection, org: Organization, project: Project
) -> None:
    jobs = [created(conn, project, DAILY, slug=f"job-{i}") for i in range(5)]
    backup = created(conn, project, DAILY, slug="Backup-ÉTÉ")
    for job in (*jobs, backup):
        ensure_environment(conn, project, job, None, MANY)

    def slugs(**kwargs: Any) -> list[str]:
        return [m.monitor.slug for m in list_monitors(conn, org.id, **kwargs)]

    assert slugs(offset=1, limit=2) == ["job-0", "job-1"]  # names sort "Backup…" first
    assert slugs(offset=5, limit=10) == ["job-4"]
    assert slugs(offset=6, limit=10) == []
    # each term in the name or the slug, casefolded beyond ASCII; paged after filtering
    assert slugs(terms=["été"]) == ["Backup-ÉTÉ"]
    assert slugs(terms=["job", "3"]) == ["job-3"]
    assert slugs(terms=["job"], offset=3, limit=5) == ["job-3", "job-4"]
    assert slugs(terms=["nothing"]) == []
    # the page's monitors come with their own environments only
    page = list_monitors(conn, org.id, terms=["job"], offset=1, limit=1)
    assert [[e.monitor_id for e in m.environments] for m in page] == [[jobs[1].id]]


def test_list_monitors_by_status_failing_first(
    conn: Connection, org: Organization, project: Project
) -> None:
    def made(slug: str, status: MonitorStatus | None, **env: Any) -> Monitor:
        monitor = created(conn, project, DAILY, slug=slug)
        if status is not None:
            ensure_environment(conn, project, monitor, None, MANY)
            conn.execute(
                update(monitor_environment_table)
                .where(monitor_environment_table.c.monitor_id == monitor.id)
                .values(status=int(status), **env)
            )
        return monitor

    made("a-disabled", MonitorStatus.ERROR)
    conn.execute(
        update(monitor_table)
        .where(monitor_table.c.slug == "a-disabled")
        .values(status=int(ObjectStatus.DISABLED))
    )
    muted = made("b-muted", MonitorStatus.ERROR, is_muted=True)
    # (all its environments muted: so is the monitor, as the API keeps it)
    conn.execute(update(monitor_table).where(monitor_table.c.id == muted.id).values(is_muted=True))
    made("c-new", None)
    made("d-ok", MonitorStatus.OK)
    made("e-waiting", MonitorStatus.ACTIVE)
    made("f-failing", MonitorStatus.ERROR)
    failing_in_staging = made("g-staging-fails", MonitorStatus.OK)
    ensure_environment(conn, project, failing_in_staging, "staging", MANY)
    conn.execute(
        update(monitor_environment_table)
        .where(
            monitor_environment_table.c.monitor_id == failing_in_staging.id,
            monitor_environment_table.c.status == int(MonitorStatus.ACTIVE),
        )
        .values(status=int(MonitorStatus.ERROR))
    )

    def slugs(**kwargs: Any) -> list[str]:
        return [m.monitor.slug for m in list_monitors(conn, org.id, **kwargs)]

    by_status = ["f-failing", "g-staging-fails", "d-ok", "c-new", "e-waiting", "b-muted"]
    assert slugs(sort="status") == [*by_status, "a-disabled"]
    assert slugs(sort="status", ascending=False) == ["a-disabled", *reversed(by_status)]
    # Only the environments asked for decide.
    assert slugs(sort="status", environments=["production"])[:3] == [
        "f-failing",
        "d-ok",
        "g-staging-fails",
    ]
    assert slugs(sort="status", terms=["ok"]) == ["d-ok"]
    assert slugs(sort="muted")[-1] == "b-muted"
    with pytest.raises(ValueError, match="sort: one of status, name, muted"):
        list_monitors(conn, org.id, sort="date")


# --- settings ---------------------------------------------------------------------------


def test_limits_are_operator_settings(tmp_path: Path) -> None:
    home = {"VIGIL_HOME": str(tmp_path)}
    defaults = load_settings(home)
    assert (defaults.max_monitors_per_org, defaults.max_environments_per_monitor) == (10_000, 1000)
    custom = load_settings(
        {**home, "VIGIL_MAX_MONITORS_PER_ORG": "5", "VIGIL_MAX_ENVIRONMENTS_PER_MONITOR": "3"}
    )
    assert (custom.max_monitors_per_org, custom.max_environments_per_monitor) == (5, 3)
    with pytest.raises(ConfigError, match="VIGIL_MAX_MONITORS_PER_ORG"):
        load_settings({**home, "VIGIL_MAX_MONITORS_PER_ORG": "0"})
