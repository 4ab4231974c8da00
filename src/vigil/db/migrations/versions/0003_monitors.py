"""Crons: environments, monitors, monitor environments, check-ins, incidents and
processing errors.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Aware = sa.DateTime(timezone=True)


def _fk(
    table: str, column: str, target: str, ondelete: str | None = "CASCADE"
) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=f"fk_{table}_{column}_{target}", ondelete=ondelete
    )


def upgrade() -> None:
    op.create_table(
        "environment",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("project_id", BigId, nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("date_added", Aware, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_environment"),
        _fk("environment", "project_id", "project"),
        sa.UniqueConstraint("project_id", "name", name="uq_environment_project_id_name"),
    )
    op.create_table(
        "monitor",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("guid", sa.Uuid, nullable=False),
        sa.Column("organization_id", BigId, nullable=False),
        sa.Column("project_id", BigId, nullable=False),
        sa.Column("slug", sa.String(50), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("status", sa.SmallInteger, nullable=False),
        sa.Column("type", sa.SmallInteger, nullable=False),
        sa.Column("is_muted", sa.Boolean, nullable=False),
        sa.Column("owner_user_id", sa.BigInteger, nullable=True),
        sa.Column("owner_team_id", sa.BigInteger, nullable=True),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("date_added", Aware, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_monitor"),
        _fk("monitor", "organization_id", "organization"),
        _fk("monitor", "project_id", "project"),
        sa.UniqueConstraint("guid", name="uq_monitor_guid"),
        sa.UniqueConstraint("project_id", "slug", name="uq_monitor_project_id_slug"),
        sa.CheckConstraint(
            "owner_user_id IS NULL OR owner_team_id IS NULL", name="ck_monitor_one_owner"
        ),
    )
    op.create_index("ix_monitor_organization_id", "monitor", ["organization_id"])
    op.create_table(
        "monitor_environment",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("monitor_id", BigId, nullable=False),
        sa.Column("environment_id", BigId, nullable=False),
        sa.Column("status", sa.SmallInteger, nullable=False),
        sa.Column("is_muted", sa.Boolean, nullable=False),
        sa.Column("next_checkin", Aware, nullable=True),
        sa.Column("next_checkin_latest", Aware, nullable=True),
        sa.Column("last_checkin", Aware, nullable=True),
        sa.Column("date_added", Aware, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_monitor_environment"),
        _fk("monitor_environment", "monitor_id", "monitor"),
        _fk("monitor_environment", "environment_id", "environment"),
        sa.UniqueConstraint(
            "monitor_id",
            "environment_id",
            name="uq_monitor_environment_monitor_id_environment_id",
        ),
    )
    op.create_index(
        "ix_monitor_environment_next_checkin_latest",
        "monitor_environment",
        ["next_checkin_latest"],
    )
    op.create_table(
        "monitor_checkin",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("guid", sa.Uuid, nullable=False),
        sa.Column("project_id", BigId, nullable=False),
        sa.Column("monitor_id", BigId, nullable=False),
        sa.Column("monitor_environment_id", BigId, nullable=False),
        sa.Column("status", sa.SmallInteger, nullable=False),
        sa.Column("duration", sa.Integer, nullable=True),
        sa.Column("date_added", Aware, nullable=False),
        sa.Column("date_updated", Aware, nullable=False),
        sa.Column("date_clock", Aware, nullable=True),
        sa.Column("expected_time", Aware, nullable=True),
        sa.Column("timeout_at", Aware, nullable=True),
        sa.Column("monitor_config", sa.JSON, nullable=True),
        sa.Column("trace_id", sa.Uuid, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_monitor_checkin"),
        _fk("monitor_checkin", "project_id", "project"),
        _fk("monitor_checkin", "monitor_id", "monitor"),
        _fk("monitor_checkin", "monitor_environment_id", "monitor_environment"),
        sa.UniqueConstraint("guid", name="uq_monitor_checkin_guid"),
    )
    op.create_index(
        "ix_monitor_checkin_status_timeout_at", "monitor_checkin", ["status", "timeout_at"]
    )
    op.create_index(
        "ix_monitor_checkin_monitor_environment_id_date_added",
        "monitor_checkin",
        ["monitor_environment_id", "date_added"],
    )
    op.create_index(
        "ix_monitor_checkin_monitor_id_date_added", "monitor_checkin", ["monitor_id", "date_added"]
    )
    op.create_table(
        "monitor_incident",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("monitor_id", BigId, nullable=False),
        sa.Column("monitor_environment_id", BigId, nullable=False),
        sa.Column("starting_checkin_id", BigId, nullable=True),
        sa.Column("starting_timestamp", Aware, nullable=True),
        sa.Column("resolving_checkin_id", BigId, nullable=True),
        sa.Column("resolving_timestamp", Aware, nullable=True),
        sa.Column("grouphash", sa.String(32), nullable=False),
        sa.Column("date_added", Aware, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_monitor_incident"),
        _fk("monitor_incident", "monitor_id", "monitor"),
        _fk("monitor_incident", "monitor_environment_id", "monitor_environment"),
        _fk("monitor_incident", "starting_checkin_id", "monitor_checkin", "SET NULL"),
        # no ON DELETE action: see vigil.db.tables.monitor_incident
        _fk("monitor_incident", "resolving_checkin_id", "monitor_checkin", None),
    )
    # one active incident per monitor environment (partial unique index, both databases)
    op.create_index(
        "uq_monitor_incident_active",
        "monitor_incident",
        ["monitor_environment_id"],
        unique=True,
        sqlite_where=sa.text("resolving_checkin_id IS NULL"),
        postgresql_where=sa.text("resolving_checkin_id IS NULL"),
    )
    op.create_index(
        "ix_monitor_incident_monitor_environment_id",
        "monitor_incident",
        ["monitor_environment_id"],
    )
    op.create_table(
        "monitor_processing_error",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("project_id", BigId, nullable=False),
        sa.Column("monitor_id", BigId, nullable=True),
        sa.Column("entity", sa.String(64), nullable=False),
        sa.Column("checkin", sa.JSON, nullable=False),
        sa.Column("errors", sa.JSON, nullable=False),
        sa.Column("date_added", Aware, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_monitor_processing_error"),
        _fk("monitor_processing_error", "project_id", "project"),
        _fk("monitor_processing_error", "monitor_id", "monitor"),
    )
    op.create_index(
        "ix_monitor_processing_error_entity_date_added",
        "monitor_processing_error",
        ["entity", "date_added"],
    )


def downgrade() -> None:
    for name in (
        "monitor_processing_error",
        "monitor_incident",
        "monitor_checkin",
        "monitor_environment",
        "monitor",
        "environment",
    ):
        op.drop_table(name)
