"""Custom dynamic-sampling rules and the projects they are linked to.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # No unique constraint on (organization_id, rule_id): ids are unique among active,
    # unexpired rules only, which `vigil.sampling.rules` guarantees by serialising rule
    # creation per organization (see the comment at the table in vigil.db.tables).
    op.create_table(
        "custom_dynamic_sampling_rule",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("organization_id", BigId, nullable=False),
        sa.Column("rule_id", sa.Integer, nullable=False),
        sa.Column("is_active", sa.Boolean, nullable=False),
        sa.Column("is_org_level", sa.Boolean, nullable=False),
        sa.Column("condition", sa.Text, nullable=False),
        sa.Column("condition_hash", sa.String(40), nullable=False),
        sa.Column("query", sa.Text, nullable=True),
        sa.Column("sample_rate", sa.Float, nullable=False),
        sa.Column("num_samples", sa.Integer, nullable=False),
        sa.Column("start_date", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_date", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by_id", sa.BigInteger, nullable=True),
        sa.Column("notification_sent", sa.Boolean, nullable=False),
        sa.Column("date_added", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_custom_dynamic_sampling_rule"),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organization.id"],
            name="fk_custom_dynamic_sampling_rule_organization_id_organization",
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        "ix_custom_dynamic_sampling_rule_org_hash",
        "custom_dynamic_sampling_rule",
        ["organization_id", "condition_hash"],
    )
    op.create_index(
        "ix_custom_dynamic_sampling_rule_end_date", "custom_dynamic_sampling_rule", ["end_date"]
    )
    op.create_table(
        "custom_dynamic_sampling_rule_project",
        sa.Column("custom_dynamic_sampling_rule_id", BigId, nullable=False),
        sa.Column("project_id", BigId, nullable=False),
        sa.PrimaryKeyConstraint(
            "custom_dynamic_sampling_rule_id",
            "project_id",
            name="pk_custom_dynamic_sampling_rule_project",
        ),
        sa.ForeignKeyConstraint(
            ["custom_dynamic_sampling_rule_id"],
            ["custom_dynamic_sampling_rule.id"],
            name="fk_cdsr_project_rule",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["project.id"], name="fk_cdsr_project_project", ondelete="CASCADE"
        ),
    )
    op.create_index(
        "ix_custom_dynamic_sampling_rule_project_project_id",
        "custom_dynamic_sampling_rule_project",
        ["project_id"],
    )


def downgrade() -> None:
    op.drop_table("custom_dynamic_sampling_rule_project")
    op.drop_table("custom_dynamic_sampling_rule")
