"""Issue webhooks and their deliveries.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Aware = sa.DateTime(timezone=True)


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=f"fk_{table}_{column}_{target}", ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "webhook",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("organization_id", BigId, nullable=False),
        sa.Column("project_id", BigId, nullable=True),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("actions", sa.JSON, nullable=False),
        sa.Column("secret", sa.String(64), nullable=False),
        sa.Column("group_cursor", sa.BigInteger, nullable=False),
        sa.Column("history_cursor", sa.BigInteger, nullable=False),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("date_last_error", Aware, nullable=True),
        sa.Column("date_added", Aware, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_webhook"),
        _fk("webhook", "organization_id", "organization"),
        _fk("webhook", "project_id", "project"),
    )
    op.create_index("ix_webhook_organization_id", "webhook", ["organization_id"])
    op.create_table(
        "webhook_delivery",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("webhook_id", BigId, nullable=False),
        sa.Column("group_id", BigId, nullable=False),
        sa.Column("source", sa.String(40), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", Aware, nullable=True),
        sa.Column("response_code", sa.Integer, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("date_added", Aware, nullable=False),
        sa.Column("date_done", Aware, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_delivery"),
        _fk("webhook_delivery", "webhook_id", "webhook"),
        _fk("webhook_delivery", "group_id", "group"),
        sa.UniqueConstraint("webhook_id", "source", name="uq_webhook_delivery_webhook_id_source"),
    )
    op.create_index(
        "ix_webhook_delivery_webhook_id_status_id",
        "webhook_delivery",
        ["webhook_id", "status", "id"],
    )
    op.create_index("ix_webhook_delivery_date_done", "webhook_delivery", ["date_done"])
    op.create_index(
        "ix_webhook_delivery_webhook_id_date_added",
        "webhook_delivery",
        ["webhook_id", "date_added"],
    )


def downgrade() -> None:
    op.drop_table("webhook_delivery")
    op.drop_table("webhook")
