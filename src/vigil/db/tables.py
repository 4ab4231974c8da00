"""The database schema, as SQLAlchemy Core tables. Migrations are the source of truth for
existing databases; these definitions must match them (a test checks that they do)."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

# Stable constraint names, so migrations can refer to them on both databases.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# BigInteger ids that are still SQLite rowid aliases (autoincrement) there.
BigId = BigInteger().with_variant(Integer(), "sqlite")

organization = Table(
    "organization",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("slug", String(50), nullable=False, unique=True),
    Column("name", String(64), nullable=False),
    Column("date_added", DateTime(timezone=True), nullable=False),
)

project = Table(
    "project",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column(
        "organization_id",
        BigId,
        ForeignKey("organization.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("slug", String(50), nullable=False),
    Column("name", String(200), nullable=False),
    Column("date_added", DateTime(timezone=True), nullable=False),
    UniqueConstraint("organization_id", "slug", name="uq_project_organization_id_slug"),
)

project_key = Table(
    "project_key",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column(
        "project_id",
        BigId,
        ForeignKey("project.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("public_key", String(32), nullable=False, unique=True),
    Column("label", String(64), nullable=False),
    Column("is_active", Boolean, nullable=False),
    Column("date_added", DateTime(timezone=True), nullable=False),
)

api_token = Table(
    "api_token",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column(
        "organization_id",
        BigId,
        ForeignKey("organization.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("name", String(64), nullable=False),
    # sha256 hex of the whole token: the token itself is shown once and never stored
    Column("token_hash", String(64), nullable=False, unique=True),
    # the first characters, so people can tell tokens apart in listings
    Column("token_prefix", String(16), nullable=False),
    Column("scopes", JSON, nullable=False),
    Column("is_active", Boolean, nullable=False),
    Column("date_added", DateTime(timezone=True), nullable=False),
    Column("last_used", DateTime(timezone=True), nullable=True),
)

organization_feature = Table(
    "organization_feature",
    metadata,
    Column(
        "organization_id",
        BigId,
        ForeignKey("organization.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("feature", String(200), primary_key=True),
    Column("enabled", Boolean, nullable=False),
)

# Server-wide options an operator can change at run time (the reference's "options").
option = Table(
    "option",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("value", JSON, nullable=False),
    Column("date_updated", DateTime(timezone=True), nullable=False),
)

# --- custom dynamic-sampling rules (spec Part C) ---------------------------------------
#
# `rule_id` is the organization-scoped id Relay sees (as rule_id + 3000). It must be
# unique among the organization's active, unexpired rules only, and "unexpired" moves
# with the clock, so no unique constraint can say it on either database. Uniqueness is
# guaranteed by `vigil.sampling.rules.update_or_create` instead: every write that may
# create a rule runs in a transaction serialised per organization (`serialize()`:
# PostgreSQL takes an advisory transaction lock on the organization; SQLite write
# transactions are `BEGIN IMMEDIATE` and so already run one at a time).
custom_dynamic_sampling_rule = Table(
    "custom_dynamic_sampling_rule",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column(
        "organization_id",
        BigId,
        ForeignKey("organization.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("rule_id", Integer, nullable=False),  # 0 = unassigned
    Column("is_active", Boolean, nullable=False),
    Column("is_org_level", Boolean, nullable=False),
    Column("condition", Text, nullable=False),  # JSON text, as received
    Column("condition_hash", String(40), nullable=False),  # sha1 hex, see condition_hash.py
    Column("query", Text, nullable=True),
    Column("sample_rate", Float, nullable=False),
    Column("num_samples", Integer, nullable=False),
    Column("start_date", DateTime(timezone=True), nullable=False),
    Column("end_date", DateTime(timezone=True), nullable=False, index=True),
    Column("created_by_id", BigInteger, nullable=True),
    Column("notification_sent", Boolean, nullable=False),
    Column("date_added", DateTime(timezone=True), nullable=False),
    Index("ix_custom_dynamic_sampling_rule_org_hash", "organization_id", "condition_hash"),
)

custom_dynamic_sampling_rule_project = Table(
    "custom_dynamic_sampling_rule_project",
    metadata,
    Column(
        "custom_dynamic_sampling_rule_id",
        BigId,
        # explicit short names: the convention's would pass PostgreSQL's 63 characters
        ForeignKey(
            "custom_dynamic_sampling_rule.id", ondelete="CASCADE", name="fk_cdsr_project_rule"
        ),
        primary_key=True,
    ),
    Column(
        "project_id",
        BigId,
        ForeignKey("project.id", ondelete="CASCADE", name="fk_cdsr_project_project"),
        primary_key=True,
        index=True,
    ),
)
