"""Releases made and finalized through the API (their release date, ref, URL and
status) and their deploys.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Aware = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("release") as batch:
        batch.add_column(sa.Column("date_released", Aware, nullable=True))
        batch.add_column(sa.Column("ref", sa.String(250), nullable=True))
        batch.add_column(sa.Column("url", sa.Text, nullable=True))
        batch.add_column(sa.Column("status", sa.String(16), nullable=False, server_default="open"))
    op.create_table(
        "release_deploy",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("release_id", BigId, nullable=False),
        sa.Column("environment", sa.String(64), nullable=False),
        sa.Column("name", sa.String(64), nullable=True),
        sa.Column("url", sa.Text, nullable=True),
        sa.Column("date_started", Aware, nullable=True),
        sa.Column("date_finished", Aware, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_release_deploy"),
        sa.ForeignKeyConstraint(
            ["release_id"],
            ["release.id"],
            name="fk_release_deploy_release_id_release",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_release_deploy_release_id", "release_deploy", ["release_id"])


def downgrade() -> None:
    op.drop_table("release_deploy")
    with op.batch_alter_table("release") as batch:
        batch.drop_column("status")
        batch.drop_column("url")
        batch.drop_column("ref")
        batch.drop_column("date_released")
