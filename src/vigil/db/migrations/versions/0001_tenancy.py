"""Tenancy: organizations, projects, DSN keys, API tokens, features, options.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "organization",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("slug", sa.String(50), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("date_added", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_organization"),
        sa.UniqueConstraint("slug", name="uq_organization_slug"),
    )
    op.create_table(
        "project",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("organization_id", BigId, nullable=False),
        sa.Column("slug", sa.String(50), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("date_added", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_project"),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organization.id"],
            name="fk_project_organization_id_organization",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("organization_id", "slug", name="uq_project_organization_id_slug"),
    )
    op.create_index("ix_project_organization_id", "project", ["organization_id"])
    op.create_table(
        "project_key",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("project_id", BigId, nullable=False),
        sa.Column("public_key", sa.String(32), nullable=False),
        sa.Column("label", sa.String(64), nullable=False),
        sa.Column("is_active", sa.Boolean, nullable=False),
        sa.Column("date_added", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_project_key"),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["project.id"],
            name="fk_project_key_project_id_project",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("public_key", name="uq_project_key_public_key"),
    )
    op.create_index("ix_project_key_project_id", "project_key", ["project_id"])
    op.create_table(
        "api_token",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("organization_id", BigId, nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("token_prefix", sa.String(16), nullable=False),
        sa.Column("scopes", sa.JSON, nullable=False),
        sa.Column("is_active", sa.Boolean, nullable=False),
        sa.Column("date_added", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_token"),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organization.id"],
            name="fk_api_token_organization_id_organization",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("token_hash", name="uq_api_token_token_hash"),
    )
    op.create_index("ix_api_token_organization_id", "api_token", ["organization_id"])
    op.create_table(
        "organization_feature",
        sa.Column("organization_id", BigId, nullable=False),
        sa.Column("feature", sa.String(200), nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.PrimaryKeyConstraint("organization_id", "feature", name="pk_organization_feature"),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organization.id"],
            name="fk_organization_feature_organization_id_organization",
            ondelete="CASCADE",
        ),
    )
    op.create_table(
        "option",
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("value", sa.JSON, nullable=False),
        sa.Column("date_updated", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_option"),
    )


def downgrade() -> None:
    for name in (
        "option",
        "organization_feature",
        "api_token",
        "project_key",
        "project",
        "organization",
    ):
        op.drop_table(name)
