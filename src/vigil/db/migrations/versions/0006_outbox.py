"""The transactional outbox: messages written in the transaction that decided them and
produced to the log after it committed (vigil.streams.outbox).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "outbox",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("topic", sa.String(200), nullable=False),
        sa.Column("key", sa.LargeBinary, nullable=True),
        sa.Column("value", sa.LargeBinary, nullable=False),
        sa.Column("date_added", sa.DateTime(timezone=True), nullable=False),
        # why the log refused it for good (over the size limit): parked, not blocking
        sa.Column("refused", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
        # ids must never be reused: see vigil.streams.outbox
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    op.drop_table("outbox")
