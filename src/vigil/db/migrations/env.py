"""Alembic environment: runs on the connection vigil hands it (see vigil.db.migrate)."""

from __future__ import annotations

from alembic import context

from vigil.db.tables import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
