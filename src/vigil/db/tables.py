"""The database schema, as SQLAlchemy Core tables. Migrations are the source of truth for
existing databases; these definitions must match them (a test checks that they do)."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    text,
)

# Stable constraint names, so migrations can refer to them on both databases.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# BigInteger ids that are still SQLite rowid aliases (autoincrement) there.
BigId = BigInteger().with_variant(Integer(), "sqlite")

organization = Table(
    "organization",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("slug", String(50), nullable=False, unique=True),
    Column("name", String(64), nullable=False),
    Column("date_added", DateTime(timezone=True), nullable=False),
)

project = Table(
    "project",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column(
        "organization_id",
        BigId,
        ForeignKey("organization.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("slug", String(50), nullable=False),
    Column("name", String(200), nullable=False),
    Column("date_added", DateTime(timezone=True), nullable=False),
    UniqueConstraint("organization_id", "slug", name="uq_project_organization_id_slug"),
)

project_key = Table(
    "project_key",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column(
        "project_id",
        BigId,
        ForeignKey("project.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("public_key", String(32), nullable=False, unique=True),
    Column("label", String(64), nullable=False),
    Column("is_active", Boolean, nullable=False),
    Column("date_added", DateTime(timezone=True), nullable=False),
)

api_token = Table(
    "api_token",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column(
        "organization_id",
        BigId,
        ForeignKey("organization.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("name", String(64), nullable=False),
    # sha256 hex of the whole token: the token itself is shown once and never stored
    Column("token_hash", String(64), nullable=False, unique=True),
    # the first characters, so people can tell tokens apart in listings
    Column("token_prefix", String(16), nullable=False),
    Column("scopes", JSON, nullable=False),
    Column("is_active", Boolean, nullable=False),
    Column("date_added", DateTime(timezone=True), nullable=False),
    Column("last_used", DateTime(timezone=True), nullable=True),
)

organization_feature = Table(
    "organization_feature",
    metadata,
    Column(
        "organization_id",
        BigId,
        ForeignKey("organization.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("feature", String(200), primary_key=True),
    Column("enabled", Boolean, nullable=False),
)

# Server-wide options an operator can change at run time (the reference's "options").
option = Table(
    "option",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("value", JSON, nullable=False),
    Column("date_updated", DateTime(timezone=True), nullable=False),
)

# --- custom dynamic-sampling rules (spec Part C) ---------------------------------------
#
# `rule_id` is the organization-scoped id Relay sees (as rule_id + 3000). It must be
# unique among the organization's active, unexpired rules only, and "unexpired" moves
# with the clock, so no unique constraint can say it on either database. Uniqueness is
# guaranteed by `vigil.sampling.rules.update_or_create` instead: every write that may
# create a rule runs in a transaction serialised per organization (`serialize()`:
# PostgreSQL takes an advisory transaction lock on the organization; SQLite write
# transactions are `BEGIN IMMEDIATE` and so already run one at a time).
custom_dynamic_sampling_rule = Table(
    "custom_dynamic_sampling_rule",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column(
        "organization_id",
        BigId,
        ForeignKey("organization.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("rule_id", Integer, nullable=False),  # 0 = unassigned
    Column("is_active", Boolean, nullable=False),
    Column("is_org_level", Boolean, nullable=False),
    Column("condition", Text, nullable=False),  # JSON text, as received
    Column("condition_hash", String(40), nullable=False),  # sha1 hex, see condition_hash.py
    Column("query", Text, nullable=True),
    Column("sample_rate", Float, nullable=False),
    Column("num_samples", Integer, nullable=False),
    Column("start_date", DateTime(timezone=True), nullable=False),
    Column("end_date", DateTime(timezone=True), nullable=False, index=True),
    Column("created_by_id", BigInteger, nullable=True),
    Column("notification_sent", Boolean, nullable=False),
    Column("date_added", DateTime(timezone=True), nullable=False),
    Index("ix_custom_dynamic_sampling_rule_org_hash", "organization_id", "condition_hash"),
)

custom_dynamic_sampling_rule_project = Table(
    "custom_dynamic_sampling_rule_project",
    metadata,
    Column(
        "custom_dynamic_sampling_rule_id",
        BigId,
        # explicit short names: the convention's would pass PostgreSQL's 63 characters
        ForeignKey(
            "custom_dynamic_sampling_rule.id", ondelete="CASCADE", name="fk_cdsr_project_rule"
        ),
        primary_key=True,
    ),
    Column(
        "project_id",
        BigId,
        ForeignKey("project.id", ondelete="CASCADE", name="fk_cdsr_project_project"),
        primary_key=True,
        index=True,
    ),
)

# --- crons (spec B1, B10) ---------------------------------------------------------------
#
# Environments are per project, named once and shared by everything that is tagged with
# an environment (monitor environments now, issue events later), as in the reference.
environment = Table(
    "environment",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column(
        "project_id",
        BigId,
        ForeignKey("project.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("name", String(64), nullable=False),
    Column("date_added", DateTime(timezone=True), nullable=False),
    UniqueConstraint("project_id", "name", name="uq_environment_project_id_name"),
)

monitor = Table(
    "monitor",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("guid", Uuid, nullable=False, unique=True),
    Column(
        "organization_id",
        BigId,
        ForeignKey("organization.id", ondelete="CASCADE"),
        nullable=False,
        index=True,  # the organization's monitor limit and listings
    ),
    Column(
        "project_id",
        BigId,
        ForeignKey("project.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("slug", String(50), nullable=False),
    Column("name", String(128), nullable=False),
    Column("status", SmallInteger, nullable=False),  # ObjectStatus
    Column("type", SmallInteger, nullable=False),  # MonitorType
    Column("is_muted", Boolean, nullable=False),
    # No user or team tables yet: the ids are whatever the owner resolver answers.
    Column("owner_user_id", BigInteger, nullable=True),
    Column("owner_team_id", BigInteger, nullable=True),
    Column("config", JSON, nullable=False),
    Column("date_added", DateTime(timezone=True), nullable=False),
    UniqueConstraint("project_id", "slug", name="uq_monitor_project_id_slug"),
    CheckConstraint("owner_user_id IS NULL OR owner_team_id IS NULL", name="ck_monitor_one_owner"),
)

monitor_environment = Table(
    "monitor_environment",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column(
        "monitor_id",
        BigId,
        ForeignKey("monitor.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column(
        "environment_id",
        BigId,
        ForeignKey("environment.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("status", SmallInteger, nullable=False),  # MonitorStatus
    Column("is_muted", Boolean, nullable=False),
    # the clock selects the environments that are due by next_checkin_latest
    Column("next_checkin", DateTime(timezone=True), nullable=True),
    Column("next_checkin_latest", DateTime(timezone=True), nullable=True, index=True),
    Column("last_checkin", DateTime(timezone=True), nullable=True),
    Column("date_added", DateTime(timezone=True), nullable=False),
    UniqueConstraint(
        "monitor_id", "environment_id", name="uq_monitor_environment_monitor_id_environment_id"
    ),
)

monitor_checkin = Table(
    "monitor_checkin",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("guid", Uuid, nullable=False, unique=True),
    Column(
        "project_id",
        BigId,
        ForeignKey("project.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column(
        "monitor_id",
        BigId,
        ForeignKey("monitor.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column(
        "monitor_environment_id",
        BigId,
        ForeignKey("monitor_environment.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("status", SmallInteger, nullable=False),  # CheckInStatus
    Column("duration", Integer, nullable=True),  # milliseconds
    Column("date_added", DateTime(timezone=True), nullable=False),
    Column("date_updated", DateTime(timezone=True), nullable=False),
    Column("date_clock", DateTime(timezone=True), nullable=True),
    Column("expected_time", DateTime(timezone=True), nullable=True),
    Column("timeout_at", DateTime(timezone=True), nullable=True),
    Column("monitor_config", JSON, nullable=True),
    Column("trace_id", Uuid, nullable=True),
    # the clock's timeout task: in-progress check-ins whose timeout has passed
    Index("ix_monitor_checkin_status_timeout_at", "status", "timeout_at"),
    # thresholds and listings read an environment's newest first
    Index(
        "ix_monitor_checkin_monitor_environment_id_date_added",
        "monitor_environment_id",
        "date_added",
    ),
    # an environment's in-progress check-ins (the nil id's "latest in progress", B4.5)
    # without walking its history; 3 = CheckInStatus.IN_PROGRESS, which queries must
    # write as a literal for either planner to use the index
    Index(
        "ix_monitor_checkin_in_progress",
        "monitor_environment_id",
        "date_added",
        sqlite_where=text("status = 3"),
        postgresql_where=text("status = 3"),
    ),
    Index("ix_monitor_checkin_monitor_id_date_added", "monitor_id", "date_added"),
)

monitor_incident = Table(
    "monitor_incident",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column(
        "monitor_id",
        BigId,
        ForeignKey("monitor.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column(
        "monitor_environment_id",
        BigId,
        ForeignKey("monitor_environment.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column(
        "starting_checkin_id",
        BigId,
        ForeignKey("monitor_checkin.id", ondelete="SET NULL"),
        nullable=True,
    ),
    Column("starting_timestamp", DateTime(timezone=True), nullable=True),
    # Deliberately no ON DELETE action: nulling it would silently reopen a resolved
    # incident, so whatever deletes old check-ins must delete their incidents first.
    Column(
        "resolving_checkin_id",
        BigId,
        ForeignKey("monitor_checkin.id"),
        nullable=True,
    ),
    Column("resolving_timestamp", DateTime(timezone=True), nullable=True),
    Column("grouphash", String(32), nullable=False),  # the issue's fingerprint
    Column("date_added", DateTime(timezone=True), nullable=False),
    # At most one active (unresolved) incident per monitor environment, enforced by the
    # database on both SQLite and PostgreSQL with a partial unique index.
    Index(
        "uq_monitor_incident_active",
        "monitor_environment_id",
        unique=True,
        sqlite_where=text("resolving_checkin_id IS NULL"),
        postgresql_where=text("resolving_checkin_id IS NULL"),
    ),
    Index("ix_monitor_incident_monitor_environment_id", "monitor_environment_id"),
)

# User-visible processing errors (B10): at most 10 per entity, 7 days, newest first.
monitor_processing_error = Table(
    "monitor_processing_error",
    metadata,
    Column("id", String(32), primary_key=True),  # uuid4 hex
    Column(
        "project_id",
        BigId,
        ForeignKey("project.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column(
        "monitor_id",
        BigId,
        ForeignKey("monitor.id", ondelete="CASCADE"),
        nullable=True,
    ),
    Column("entity", String(64), nullable=False),  # "monitor:{id}" or "project:{id}"
    Column("checkin", JSON, nullable=False),  # {ts, partition, message, payload}
    Column("errors", JSON, nullable=False),  # [{type, ...extra fields}]
    Column("date_added", DateTime(timezone=True), nullable=False),  # the message's time
    Index("ix_monitor_processing_error_entity_date_added", "entity", "date_added"),
)

# --- issue platform (spec Part A) -------------------------------------------------------
#
# What the reference keeps in Redis, its node store and Snuba (stored events and
# occurrences, noise counters, creation quotas, the consumer's dedupe cache) lives here.
# Creation races (two consumers creating the group of one fingerprint, one release, one
# group environment) are settled by the unique constraints: the loser's insert fails and
# it reads the winner's row.

# One counter per project, for short ids ("PROJ-1", "PROJ-2", ...): incremented by an
# UPDATE, which serialises concurrent creators on the row.
project_counter = Table(
    "project_counter",
    metadata,
    Column(
        "project_id",
        BigId,
        ForeignKey("project.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("value", BigInteger, nullable=False),
)

release = Table(
    "release",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column(
        "organization_id",
        BigId,
        ForeignKey("organization.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("version", String(250), nullable=False),
    Column("date_added", DateTime(timezone=True), nullable=False),
    # set through the releases API (sentry-cli releases new / finalize / archive)
    Column("date_released", DateTime(timezone=True), nullable=True),
    Column("ref", String(250), nullable=True),
    Column("url", Text, nullable=True),
    Column("status", String(16), nullable=False, server_default="open"),  # open | archived
    UniqueConstraint("organization_id", "version", name="uq_release_organization_id_version"),
)

# A release deployed to an environment (sentry-cli deploys new).
release_deploy = Table(
    "release_deploy",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column(
        "release_id",
        BigId,
        ForeignKey("release.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("environment", String(64), nullable=False),
    Column("name", String(64), nullable=True),
    Column("url", Text, nullable=True),
    Column("date_started", DateTime(timezone=True), nullable=True),
    Column("date_finished", DateTime(timezone=True), nullable=False),
)

# The projects a release was seen in, with the groups it first brought there.
release_project = Table(
    "release_project",
    metadata,
    Column("release_id", BigId, ForeignKey("release.id", ondelete="CASCADE"), primary_key=True),
    Column(
        "project_id",
        BigId,
        ForeignKey("project.id", ondelete="CASCADE"),
        primary_key=True,
        index=True,
    ),
    Column("new_groups", Integer, nullable=False),
)

release_project_environment = Table(
    "release_project_environment",
    metadata,
    Column(
        "release_id",
        BigId,
        ForeignKey("release.id", ondelete="CASCADE", name="fk_rpe_release"),
        primary_key=True,
    ),
    Column(
        "project_id",
        BigId,
        ForeignKey("project.id", ondelete="CASCADE", name="fk_rpe_project"),
        primary_key=True,
    ),
    Column(
        "environment_id",
        BigId,
        ForeignKey("environment.id", ondelete="CASCADE", name="fk_rpe_environment"),
        primary_key=True,
    ),
    Column("new_issues_count", Integer, nullable=False),
    Column("first_seen", DateTime(timezone=True), nullable=False),
    Column("last_seen", DateTime(timezone=True), nullable=False),
)

# An issue. "group" is the reference's word (and a reserved one in SQL: SQLAlchemy quotes it).
group = Table(
    "group",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column(
        "project_id",
        BigId,
        ForeignKey("project.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("short_id", BigInteger, nullable=False),  # per project, from project_counter
    Column("type", Integer, nullable=False),  # GroupType id
    Column("title", Text, nullable=False),
    Column("culprit", Text, nullable=False),
    Column("level", SmallInteger, nullable=False),  # log level as an int (40 = error)
    Column("message", Text, nullable=False),  # searchable text
    Column("platform", String(64), nullable=True),
    Column("status", SmallInteger, nullable=False),  # GroupStatus
    Column("substatus", SmallInteger, nullable=True),  # GroupSubStatus
    Column("priority", SmallInteger, nullable=True),  # PriorityLevel
    Column("priority_locked", Boolean, nullable=False),  # set by a person: never auto-changed
    Column("first_seen", DateTime(timezone=True), nullable=False),
    Column("last_seen", DateTime(timezone=True), nullable=False),
    Column("active_at", DateTime(timezone=True), nullable=True),
    Column("resolved_at", DateTime(timezone=True), nullable=True),
    Column("times_seen", BigInteger, nullable=False),
    Column(
        "first_release_id",
        BigId,
        ForeignKey("release.id", ondelete="SET NULL"),
        nullable=True,
    ),
    # "user:<id>" / "team:<id>", resolved within the organization (see docs/issues.md)
    Column("assignee", String(64), nullable=True),
    # {type, title, culprit, location, last_received, metadata: {title, value, ...}}
    Column("data", JSON, nullable=False),
    Column("date_added", DateTime(timezone=True), nullable=False),
    UniqueConstraint("project_id", "short_id", name="uq_group_project_id_short_id"),
    # issue listings: by project and status, newest / oldest / most seen first
    Index("ix_group_project_id_status_last_seen", "project_id", "status", "last_seen"),
    Index("ix_group_project_id_last_seen", "project_id", "last_seen"),
    Index("ix_group_project_id_first_seen", "project_id", "first_seen"),
    Index("ix_group_project_id_times_seen", "project_id", "times_seen"),
)

# Fingerprint hash (md5 of a fingerprint part) → group, unique per project.
grouphash = Table(
    "grouphash",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column(
        "project_id",
        BigId,
        ForeignKey("project.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("hash", String(32), nullable=False),
    # null: the hash is known but belongs to no group (its occurrences make no issue)
    Column(
        "group_id",
        BigId,
        ForeignKey("group.id", ondelete="CASCADE"),
        nullable=True,
        index=True,
    ),
    Column("date_added", DateTime(timezone=True), nullable=False),
    UniqueConstraint("project_id", "hash", name="uq_grouphash_project_id_hash"),
)

# Stored events: generic events saved from an occurrence's embedded event, and any event
# an occurrence may refer to by id (the reference's node store + Snuba).
event = Table(
    "event",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column(
        "project_id",
        BigId,
        ForeignKey("project.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("event_id", String(32), nullable=False),  # uuid hex
    # the group and occurrence the event was saved for (null for events stored otherwise)
    Column("group_id", BigId, ForeignKey("group.id", ondelete="CASCADE"), nullable=True),
    Column("occurrence_id", String(32), nullable=True),
    Column("type", String(32), nullable=False),  # "generic", "transaction", ...
    Column("timestamp", DateTime(timezone=True), nullable=False),
    Column("received", DateTime(timezone=True), nullable=False),
    Column("platform", String(64), nullable=True),
    Column("environment", String(64), nullable=True),
    Column("release", String(250), nullable=True),
    Column("tags", JSON, nullable=False),  # [[key, value], ...]
    Column("data", JSON, nullable=False),  # the whole event as stored
    UniqueConstraint("project_id", "event_id", name="uq_event_project_id_event_id"),
    Index("ix_event_group_id_timestamp", "group_id", "timestamp"),
    # a project's events, newest first (`sentry-cli events list`)
    Index("ix_event_project_id_timestamp", "project_id", "timestamp"),
)

issue_occurrence = Table(
    "issue_occurrence",
    metadata,
    Column("id", String(32), primary_key=True),  # uuid hex, unique per project
    Column(
        "project_id",
        BigId,
        ForeignKey("project.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    # null when no group resulted (noise gate, quota, type mismatch): still stored
    Column(
        "group_id",
        BigId,
        ForeignKey("group.id", ondelete="CASCADE"),
        nullable=True,
    ),
    Column("event_id", String(32), nullable=False),
    Column("fingerprint", JSON, nullable=False),  # hashed parts
    Column("type", Integer, nullable=False),
    Column("issue_title", Text, nullable=False),
    Column("subtitle", Text, nullable=False),
    Column("resource_id", Text, nullable=True),
    Column("evidence_data", JSON, nullable=False),
    Column("evidence_display", JSON, nullable=False),  # [{name, value, important}]
    Column("detection_time", DateTime(timezone=True), nullable=False),
    Column("level", String(32), nullable=False),
    Column("culprit", Text, nullable=False),
    Column("priority", SmallInteger, nullable=True),
    Column("assignee", String(64), nullable=True),
    Column("data", JSON, nullable=False),  # the occurrence's dict form
    # its event's time (the event's own, stored or not): what an issue's events sort by;
    # the default is for writers from before the column (see migration 0011)
    Column(
        "timestamp",
        DateTime(timezone=True),
        nullable=False,
        server_default=func.current_timestamp(),
    ),
    Column("date_added", DateTime(timezone=True), nullable=False),
    # an issue's events, newest first (by group: no query looks occurrences up by event)
    Index("ix_issue_occurrence_group_id_timestamp", "group_id", "timestamp"),
    # what arrived since (snoozes, retention)
    Index("ix_issue_occurrence_group_id_date_added", "group_id", "date_added"),
)

group_environment = Table(
    "group_environment",
    metadata,
    Column("group_id", BigId, ForeignKey("group.id", ondelete="CASCADE"), primary_key=True),
    Column(
        "environment_id",
        BigId,
        ForeignKey("environment.id", ondelete="CASCADE"),
        primary_key=True,
        index=True,
    ),
    Column(
        "first_release_id",
        BigId,
        ForeignKey("release.id", ondelete="SET NULL"),
        nullable=True,
    ),
    Column("first_seen", DateTime(timezone=True), nullable=False),
)

group_release = Table(
    "group_release",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column(
        "project_id",
        BigId,
        ForeignKey("project.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("group_id", BigId, ForeignKey("group.id", ondelete="CASCADE"), nullable=False),
    Column(
        "release_id",
        BigId,
        ForeignKey("release.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("environment", String(64), nullable=False),  # "" when the event had none
    Column("first_seen", DateTime(timezone=True), nullable=False),
    Column("last_seen", DateTime(timezone=True), nullable=False),
    UniqueConstraint(
        "group_id", "release_id", "environment", name="uq_group_release_group_release_env"
    ),
)

# Issues waiting for review, and why (new, regression, escalating, ongoing, ...).
group_inbox = Table(
    "group_inbox",
    metadata,
    Column("group_id", BigId, ForeignKey("group.id", ondelete="CASCADE"), primary_key=True),
    Column("reason", SmallInteger, nullable=False),  # InboxReason
    Column("reason_details", JSON, nullable=True),
    Column("date_added", DateTime(timezone=True), nullable=False),
)

# An issue ignored until a condition is met (Sentry's GroupSnooze, set by the issues API's
# statusDetails): it is unignored when the condition is. `times_seen` is the group's when
# it was ignored; `event_count` more occurrences (or that many within `window_minutes`, when
# set) or the time `until` ends it. Users are not counted (vigil has none): `user_count` is
# kept and shown, never met.
group_snooze = Table(
    "group_snooze",
    metadata,
    Column("group_id", BigId, ForeignKey("group.id", ondelete="CASCADE"), primary_key=True),
    Column("until", DateTime(timezone=True), nullable=True, index=True),
    Column("event_count", Integer, nullable=True),
    Column("window_minutes", Integer, nullable=True),
    Column("user_count", Integer, nullable=True),
    Column("user_window_minutes", Integer, nullable=True),
    Column("times_seen", BigInteger, nullable=False),
    Column("date_added", DateTime(timezone=True), nullable=False),
)

activity = Table(
    "activity",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column(
        "project_id",
        BigId,
        ForeignKey("project.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("group_id", BigId, ForeignKey("group.id", ondelete="CASCADE"), nullable=False),
    Column("type", SmallInteger, nullable=False),  # ActivityType
    Column("data", JSON, nullable=False),
    Column("datetime", DateTime(timezone=True), nullable=False),
    Index("ix_activity_group_id_datetime", "group_id", "datetime"),
)

group_history = Table(
    "group_history",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column(
        "project_id",
        BigId,
        ForeignKey("project.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("group_id", BigId, ForeignKey("group.id", ondelete="CASCADE"), nullable=False),
    Column("status", String(32), nullable=False),  # GroupHistoryStatus name
    Column("date_added", DateTime(timezone=True), nullable=False),
    Index("ix_group_history_group_id_date_added", "group_id", "date_added"),
)

# The consumer's dedupe record (the reference's 300 s cache): a message id (raw, as sent)
# applied for a project. Rows older than the window are ignored and pruned.
processed_message = Table(
    "processed_message",
    metadata,
    Column(
        "project_id",
        BigId,
        ForeignKey("project.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("message_id", String(200), primary_key=True),
    Column("processed_at", DateTime(timezone=True), nullable=False, index=True),
)

# The noise gate's counter per fingerprint hash (the reference's Redis key
# grouphash:{hash}:{project_id}); expired rows count as absent.
issue_noise_counter = Table(
    "issue_noise_counter",
    metadata,
    Column(
        "project_id",
        BigId,
        ForeignKey("project.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("hash", String(32), primary_key=True),
    Column("count", Integer, nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)

# Sliding-window quota buckets (issue creation per project and type, the optional
# per-fingerprint rate limit): units used in the bucket starting at `bucket` (epoch s).
quota_bucket = Table(
    "quota_bucket",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("bucket", BigInteger, primary_key=True),
    Column("count", Integer, nullable=False),
)

# --- the crons clock (B7.2, B9) ----------------------------------------------------------
#
# The reference keeps these in Redis; vigil keeps them here. Minutes are epoch seconds of
# a minute's start.

# Where each partition of ingest-monitors is: the minute of its latest applied message.
monitor_clock_partition = Table(
    "monitor_clock_partition",
    metadata,
    Column("partition_index", Integer, primary_key=True, autoincrement=False),
    Column("position", BigInteger, nullable=False),
    Column("date_updated", DateTime(timezone=True), nullable=False),
)

# The clock: one row (id 1). `last_tick` only moves by a conditional UPDATE on the value
# read (or the insert of the first row), so each minute ticks once across consumers.
monitor_clock = Table(
    "monitor_clock",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("last_tick", BigInteger, nullable=False),
    Column("system_incident_start", BigInteger, nullable=True),
    Column("date_updated", DateTime(timezone=True), nullable=False),
)

# Per minute: check-in volume, its % deviation from previous days, the tick's decision.
monitor_clock_minute = Table(
    "monitor_clock_minute",
    metadata,
    Column("minute", BigInteger, primary_key=True, autoincrement=False),
    Column("volume", BigInteger, nullable=True),
    Column("pct_deviation", Float, nullable=True),
    Column("decision", String(16), nullable=True),
)

# --- the transactional outbox (vigil.streams.outbox) -----------------------------------
#
# Messages decided inside a database transaction, written in that transaction and produced
# to the log after it committed; a row is deleted once the log acknowledged it. Ids are
# never reused (sqlite_autoincrement), so a flusher deleting the ids it produced can never
# delete a newer row.
outbox = Table(
    "outbox",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("topic", String(200), nullable=False),
    Column("key", LargeBinary, nullable=True),
    Column("value", LargeBinary, nullable=False),
    Column("date_added", DateTime(timezone=True), nullable=False),
    # why the log refused it for good (over the size limit): parked, not blocking
    Column("refused", Text, nullable=True),
    sqlite_autoincrement=True,
)

# --- issue webhooks (vigil.webhooks) ---------------------------------------------------
#
# Where an organization wants to hear of its issues being created, resolved, unresolved
# (regressions included) or archived. The cursors are the last group id and group-history
# id the dispatcher has settled for this webhook: it starts at the newest rows when the
# webhook is made, so a new webhook never replays history.
webhook = Table(
    "webhook",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column(
        "organization_id",
        BigId,
        ForeignKey("organization.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    # null: every project of the organization
    Column("project_id", BigId, ForeignKey("project.id", ondelete="CASCADE"), nullable=True),
    Column("url", Text, nullable=False),
    Column("format", String(16), nullable=False),  # "sentry" | "slack"
    Column("actions", JSON, nullable=False),  # ["created", "resolved", ...]
    # the key of each delivery's signature (HMAC-SHA256): kept, as the receiver's is
    Column("secret", String(64), nullable=False),
    Column("group_cursor", BigInteger, nullable=False),
    Column("history_cursor", BigInteger, nullable=False),
    # the latest attempt that was not delivered: what the receiver answered, and when
    Column("last_error", Text, nullable=True),
    Column("date_last_error", DateTime(timezone=True), nullable=True),
    Column("date_added", DateTime(timezone=True), nullable=False),
)

# One message to one webhook; kept a week once delivered or given up, for the operator
# to see. (webhook, source) is unique, source naming what caused it ("group:12",
# "history:40"): finding the same change twice never sends it twice.
webhook_delivery = Table(
    "webhook_delivery",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("webhook_id", BigId, ForeignKey("webhook.id", ondelete="CASCADE"), nullable=False),
    Column("group_id", BigId, ForeignKey("group.id", ondelete="CASCADE"), nullable=False),
    Column("source", String(40), nullable=False),
    Column("action", String(16), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("status", String(16), nullable=False),  # pending | delivered | failed
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", DateTime(timezone=True), nullable=True),
    Column("response_code", Integer, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("date_added", DateTime(timezone=True), nullable=False),
    Column("date_done", DateTime(timezone=True), nullable=True),
    UniqueConstraint("webhook_id", "source", name="uq_webhook_delivery_webhook_id_source"),
    # each webhook's pending deliveries in order; its counts by status
    Index("ix_webhook_delivery_webhook_id_status_id", "webhook_id", "status", "id"),
    Index("ix_webhook_delivery_webhook_id_date_added", "webhook_id", "date_added"),
    Index("ix_webhook_delivery_date_done", "date_done"),
)
