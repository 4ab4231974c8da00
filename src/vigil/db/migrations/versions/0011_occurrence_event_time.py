"""Occurrences keep their event's time, and an issue's events sort by it (as Sentry's
do), not by when they arrived.

Existing occurrences take their stored event's timestamp, else (an event never stored,
as for buffered spans) their detection time. The column defaults to the time of the
insert, so a consumer of the version before, still running while its replacement
starts, keeps storing occurrences (sorted by arrival, as that version did).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

Aware = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("issue_occurrence", sa.Column("timestamp", Aware, nullable=True))
    op.execute(
        "UPDATE issue_occurrence SET timestamp = COALESCE("
        "(SELECT event.timestamp FROM event WHERE event.project_id = issue_occurrence.project_id"
        " AND event.event_id = issue_occurrence.event_id), detection_time)"
    )
    with op.batch_alter_table("issue_occurrence") as batch:
        batch.alter_column(
            "timestamp",
            existing_type=Aware,
            nullable=False,
            server_default=sa.func.current_timestamp(),
        )
    op.create_index(
        "ix_issue_occurrence_group_id_timestamp", "issue_occurrence", ["group_id", "timestamp"]
    )


def downgrade() -> None:
    op.drop_index("ix_issue_occurrence_group_id_timestamp", table_name="issue_occurrence")
    with op.batch_alter_table("issue_occurrence") as batch:
        batch.drop_column("timestamp")
