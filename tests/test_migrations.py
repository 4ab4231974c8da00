"""Migrations apply from empty on both databases, match the table definitions, and a
second start bootstraps nothing."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, func, select

from vigil.config import Settings
from vigil.db.migrate import current_revision, head_revision, migrate
from vigil.db.tables import api_token, metadata, organization, project, project_key
from vigil.tenancy import credentials, store
from vigil.tenancy.bootstrap import bootstrap


def test_migrated_schema_matches_table_definitions(engine: Engine) -> None:
    assert current_revision(engine) == head_revision()
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_migrating_again_is_a_no_op(engine: Engine) -> None:
    head = head_revision()
    assert migrate(engine) == (head, head)


def test_first_start_bootstraps_and_second_changes_nothing(engine: Engine, stack: Settings) -> None:
    first = bootstrap(engine)
    assert first.created
    assert first.organization.slug == "default"
    assert first.project.slug == "default"
    assert first.key is not None and credentials.is_public_key(first.key.public_key)
    assert first.token is not None and first.token.startswith(credentials.TOKEN_PREFIX)

    second = bootstrap(engine)
    assert not second.created
    assert second.token is None
    assert second.project == first.project
    assert second.key == first.key
    with engine.connect() as conn:
        for table in (organization, project, project_key, api_token):
            assert conn.execute(select(func.count()).select_from(table)).scalar_one() == 1
        # the token is stored hashed, never in the clear
        stored = conn.execute(select(api_token.c.token_hash)).scalar_one()
        assert stored == credentials.hash_token(first.token)
        assert first.token not in str(conn.execute(select(api_token)).all())
        found = store.find_token(conn, first.token)
        assert found is not None and found.organization_id == first.organization.id
