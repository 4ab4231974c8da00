"""Index each environment's in-progress check-ins: a check-in sent with the nil id (the
crons endpoint without `check_in_id`) closes its environment's latest in-progress one,
which walked the environment's whole history when there was none (86 ms for 100,000
check-ins on SQLite).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_monitor_checkin_in_progress",
        "monitor_checkin",
        ["monitor_environment_id", "date_added"],
        sqlite_where=sa.text("status = 3"),
        postgresql_where=sa.text("status = 3"),
    )


def downgrade() -> None:
    op.drop_index("ix_monitor_checkin_in_progress", table_name="monitor_checkin")
