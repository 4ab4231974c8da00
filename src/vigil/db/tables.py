"""The database schema, as SQLAlchemy Core tables. Migrations are the source of truth for
existing databases; these definitions must match them (a test checks that they do)."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
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
