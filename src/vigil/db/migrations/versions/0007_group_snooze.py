"""Issues ignored until a condition is met: the condition (Sentry's GroupSnooze).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Aware = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "group_snooze",
        sa.Column("group_id", BigId, nullable=False),
        sa.Column("until", Aware, nullable=True),
        sa.Column("event_count", sa.Integer, nullable=True),
        sa.Column("window_minutes", sa.Integer, nullable=True),
        sa.Column("user_count", sa.Integer, nullable=True),
        sa.Column("user_window_minutes", sa.Integer, nullable=True),
        sa.Column("times_seen", sa.BigInteger, nullable=False),
        sa.Column("date_added", Aware, nullable=False),
        sa.PrimaryKeyConstraint("group_id", name="pk_group_snooze"),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["group.id"],
            name="fk_group_snooze_group_id_group",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_group_snooze_until", "group_snooze", ["until"])


def downgrade() -> None:
    op.drop_table("group_snooze")
