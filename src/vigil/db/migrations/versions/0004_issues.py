"""Issue platform: groups, group hashes, events, occurrences, releases, group
environments and releases, inbox, activity, history, the consumer's dedupe record,
noise counters and quota buckets.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Aware = sa.DateTime(timezone=True)


def _fk(
    table: str,
    column: str,
    target: str,
    ondelete: str | None = "CASCADE",
    name: str | None = None,
) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column],
        [f"{target}.id"],
        name=name or f"fk_{table}_{column}_{target}",
        ondelete=ondelete,
    )


def upgrade() -> None:
    op.create_table(
        "project_counter",
        sa.Column("project_id", BigId, nullable=False),
        sa.Column("value", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("project_id", name="pk_project_counter"),
        _fk("project_counter", "project_id", "project"),
    )
    op.create_table(
        "release",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("organization_id", BigId, nullable=False),
        sa.Column("version", sa.String(250), nullable=False),
        sa.Column("date_added", Aware, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_release"),
        _fk("release", "organization_id", "organization"),
        sa.UniqueConstraint(
            "organization_id", "version", name="uq_release_organization_id_version"
        ),
    )
    op.create_table(
        "release_project",
        sa.Column("release_id", BigId, nullable=False),
        sa.Column("project_id", BigId, nullable=False),
        sa.Column("new_groups", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("release_id", "project_id", name="pk_release_project"),
        _fk("release_project", "release_id", "release"),
        _fk("release_project", "project_id", "project"),
    )
    op.create_index("ix_release_project_project_id", "release_project", ["project_id"])
    op.create_table(
        "release_project_environment",
        sa.Column("release_id", BigId, nullable=False),
        sa.Column("project_id", BigId, nullable=False),
        sa.Column("environment_id", BigId, nullable=False),
        sa.Column("new_issues_count", sa.Integer, nullable=False),
        sa.Column("first_seen", Aware, nullable=False),
        sa.Column("last_seen", Aware, nullable=False),
        sa.PrimaryKeyConstraint(
            "release_id",
            "project_id",
            "environment_id",
            name="pk_release_project_environment",
        ),
        _fk("", "release_id", "release", name="fk_rpe_release"),
        _fk("", "project_id", "project", name="fk_rpe_project"),
        _fk("", "environment_id", "environment", name="fk_rpe_environment"),
    )
    op.create_table(
        "group",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("project_id", BigId, nullable=False),
        sa.Column("short_id", sa.BigInteger, nullable=False),
        sa.Column("type", sa.Integer, nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("culprit", sa.Text, nullable=False),
        sa.Column("level", sa.SmallInteger, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("platform", sa.String(64), nullable=True),
        sa.Column("status", sa.SmallInteger, nullable=False),
        sa.Column("substatus", sa.SmallInteger, nullable=True),
        sa.Column("priority", sa.SmallInteger, nullable=True),
        sa.Column("priority_locked", sa.Boolean, nullable=False),
        sa.Column("first_seen", Aware, nullable=False),
        sa.Column("last_seen", Aware, nullable=False),
        sa.Column("active_at", Aware, nullable=True),
        sa.Column("resolved_at", Aware, nullable=True),
        sa.Column("times_seen", sa.BigInteger, nullable=False),
        sa.Column("first_release_id", BigId, nullable=True),
        sa.Column("assignee", sa.String(64), nullable=True),
        sa.Column("data", sa.JSON, nullable=False),
        sa.Column("date_added", Aware, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_group"),
        _fk("group", "project_id", "project"),
        _fk("group", "first_release_id", "release", "SET NULL"),
        sa.UniqueConstraint("project_id", "short_id", name="uq_group_project_id_short_id"),
    )
    op.create_index(
        "ix_group_project_id_status_last_seen", "group", ["project_id", "status", "last_seen"]
    )
    op.create_index("ix_group_project_id_last_seen", "group", ["project_id", "last_seen"])
    op.create_index("ix_group_project_id_first_seen", "group", ["project_id", "first_seen"])
    op.create_index("ix_group_project_id_times_seen", "group", ["project_id", "times_seen"])
    op.create_table(
        "grouphash",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("project_id", BigId, nullable=False),
        sa.Column("hash", sa.String(32), nullable=False),
        sa.Column("group_id", BigId, nullable=True),
        sa.Column("date_added", Aware, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_grouphash"),
        _fk("grouphash", "project_id", "project"),
        _fk("grouphash", "group_id", "group"),
        sa.UniqueConstraint("project_id", "hash", name="uq_grouphash_project_id_hash"),
    )
    op.create_index("ix_grouphash_group_id", "grouphash", ["group_id"])
    op.create_table(
        "event",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("project_id", BigId, nullable=False),
        sa.Column("event_id", sa.String(32), nullable=False),
        sa.Column("group_id", BigId, nullable=True),
        sa.Column("occurrence_id", sa.String(32), nullable=True),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("timestamp", Aware, nullable=False),
        sa.Column("received", Aware, nullable=False),
        sa.Column("platform", sa.String(64), nullable=True),
        sa.Column("environment", sa.String(64), nullable=True),
        sa.Column("release", sa.String(250), nullable=True),
        sa.Column("tags", sa.JSON, nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_event"),
        _fk("event", "project_id", "project"),
        _fk("event", "group_id", "group"),
        sa.UniqueConstraint("project_id", "event_id", name="uq_event_project_id_event_id"),
    )
    op.create_index("ix_event_group_id_timestamp", "event", ["group_id", "timestamp"])
    op.create_table(
        "issue_occurrence",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("project_id", BigId, nullable=False),
        sa.Column("group_id", BigId, nullable=True),
        sa.Column("event_id", sa.String(32), nullable=False),
        sa.Column("fingerprint", sa.JSON, nullable=False),
        sa.Column("type", sa.Integer, nullable=False),
        sa.Column("issue_title", sa.Text, nullable=False),
        sa.Column("subtitle", sa.Text, nullable=False),
        sa.Column("resource_id", sa.Text, nullable=True),
        sa.Column("evidence_data", sa.JSON, nullable=False),
        sa.Column("evidence_display", sa.JSON, nullable=False),
        sa.Column("detection_time", Aware, nullable=False),
        sa.Column("level", sa.String(32), nullable=False),
        sa.Column("culprit", sa.Text, nullable=False),
        sa.Column("priority", sa.SmallInteger, nullable=True),
        sa.Column("assignee", sa.String(64), nullable=True),
        sa.Column("data", sa.JSON, nullable=False),
        sa.Column("date_added", Aware, nullable=False),
        sa.PrimaryKeyConstraint("id", "project_id", name="pk_issue_occurrence"),
        _fk("issue_occurrence", "project_id", "project"),
        _fk("issue_occurrence", "group_id", "group"),
    )
    op.create_index(
        "ix_issue_occurrence_group_id_date_added",
        "issue_occurrence",
        ["group_id", "date_added"],
    )
    op.create_index(
        "ix_issue_occurrence_project_id_event_id",
        "issue_occurrence",
        ["project_id", "event_id"],
    )
    op.create_table(
        "group_environment",
        sa.Column("group_id", BigId, nullable=False),
        sa.Column("environment_id", BigId, nullable=False),
        sa.Column("first_release_id", BigId, nullable=True),
        sa.Column("first_seen", Aware, nullable=False),
        sa.PrimaryKeyConstraint("group_id", "environment_id", name="pk_group_environment"),
        _fk("group_environment", "group_id", "group"),
        _fk("group_environment", "environment_id", "environment"),
        _fk("group_environment", "first_release_id", "release", "SET NULL"),
    )
    op.create_index("ix_group_environment_environment_id", "group_environment", ["environment_id"])
    op.create_table(
        "group_release",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("project_id", BigId, nullable=False),
        sa.Column("group_id", BigId, nullable=False),
        sa.Column("release_id", BigId, nullable=False),
        sa.Column("environment", sa.String(64), nullable=False),
        sa.Column("first_seen", Aware, nullable=False),
        sa.Column("last_seen", Aware, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_group_release"),
        _fk("group_release", "project_id", "project"),
        _fk("group_release", "group_id", "group"),
        _fk("group_release", "release_id", "release"),
        sa.UniqueConstraint(
            "group_id", "release_id", "environment", name="uq_group_release_group_release_env"
        ),
    )
    op.create_index("ix_group_release_release_id", "group_release", ["release_id"])
    op.create_table(
        "group_inbox",
        sa.Column("group_id", BigId, nullable=False),
        sa.Column("reason", sa.SmallInteger, nullable=False),
        sa.Column("reason_details", sa.JSON, nullable=True),
        sa.Column("date_added", Aware, nullable=False),
        sa.PrimaryKeyConstraint("group_id", name="pk_group_inbox"),
        _fk("group_inbox", "group_id", "group"),
    )
    op.create_table(
        "activity",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("project_id", BigId, nullable=False),
        sa.Column("group_id", BigId, nullable=False),
        sa.Column("type", sa.SmallInteger, nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
        sa.Column("datetime", Aware, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_activity"),
        _fk("activity", "project_id", "project"),
        _fk("activity", "group_id", "group"),
    )
    op.create_index("ix_activity_group_id_datetime", "activity", ["group_id", "datetime"])
    op.create_table(
        "group_history",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("project_id", BigId, nullable=False),
        sa.Column("group_id", BigId, nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("date_added", Aware, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_group_history"),
        _fk("group_history", "project_id", "project"),
        _fk("group_history", "group_id", "group"),
    )
    op.create_index(
        "ix_group_history_group_id_date_added", "group_history", ["group_id", "date_added"]
    )
    op.create_table(
        "processed_message",
        sa.Column("project_id", BigId, nullable=False),
        sa.Column("message_id", sa.String(200), nullable=False),
        sa.Column("processed_at", Aware, nullable=False),
        sa.PrimaryKeyConstraint("project_id", "message_id", name="pk_processed_message"),
        _fk("processed_message", "project_id", "project"),
    )
    op.create_index("ix_processed_message_processed_at", "processed_message", ["processed_at"])
    op.create_table(
        "issue_noise_counter",
        sa.Column("project_id", BigId, nullable=False),
        sa.Column("hash", sa.String(32), nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("expires_at", Aware, nullable=False),
        sa.PrimaryKeyConstraint("project_id", "hash", name="pk_issue_noise_counter"),
        _fk("issue_noise_counter", "project_id", "project"),
    )
    op.create_table(
        "quota_bucket",
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("bucket", sa.BigInteger, nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("key", "bucket", name="pk_quota_bucket"),
    )


def downgrade() -> None:
    for name in (
        "quota_bucket",
        "issue_noise_counter",
        "processed_message",
        "group_history",
        "activity",
        "group_inbox",
        "group_release",
        "group_environment",
        "issue_occurrence",
        "event",
        "grouphash",
        "group",
        "release_project_environment",
        "release_project",
        "release",
        "project_counter",
    ):
        op.drop_table(name)
