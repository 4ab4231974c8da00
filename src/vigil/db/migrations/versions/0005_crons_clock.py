"""The crons clock: partition positions, the last tick (once-only across consumers), and
per-minute check-in volume, deviation and tick decision (B7.2, B9).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

Aware = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "monitor_clock_partition",
        sa.Column("partition_index", sa.Integer, autoincrement=False, nullable=False),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.Column("date_updated", Aware, nullable=False),
        sa.PrimaryKeyConstraint("partition_index", name="pk_monitor_clock_partition"),
    )
    op.create_table(
        "monitor_clock",
        sa.Column("id", sa.Integer, autoincrement=False, nullable=False),
        sa.Column("last_tick", sa.BigInteger, nullable=False),
        sa.Column("system_incident_start", sa.BigInteger, nullable=True),
        sa.Column("date_updated", Aware, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_monitor_clock"),
    )
    op.create_table(
        "monitor_clock_minute",
        sa.Column("minute", sa.BigInteger, autoincrement=False, nullable=False),
        sa.Column("volume", sa.BigInteger, nullable=True),
        sa.Column("pct_deviation", sa.Float, nullable=True),
        sa.Column("decision", sa.String(16), nullable=True),
        sa.PrimaryKeyConstraint("minute", name="pk_monitor_clock_minute"),
    )


def downgrade() -> None:
    op.drop_table("monitor_clock_minute")
    op.drop_table("monitor_clock")
    op.drop_table("monitor_clock_partition")
