"""Drop the index of occurrences by (project, event id): no query reads through it (an
issue's events are found by group; an occurrence's event by the event table's own key),
and every occurrence stored paid for a random-key insert into it.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_issue_occurrence_project_id_event_id", table_name="issue_occurrence")


def downgrade() -> None:
    op.create_index(
        "ix_issue_occurrence_project_id_event_id", "issue_occurrence", ["project_id", "event_id"]
    )
