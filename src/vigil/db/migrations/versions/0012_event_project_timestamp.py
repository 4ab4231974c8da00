"""Index a project's events by time, for `GET /api/0/projects/{org}/{project}/events/`
(`sentry-cli events list`), newest first without sorting the project's every event.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_event_project_id_timestamp", "event", ["project_id", "timestamp"])


def downgrade() -> None:
    op.drop_index("ix_event_project_id_timestamp", table_name="event")
