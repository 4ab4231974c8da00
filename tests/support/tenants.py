"""Real organizations, projects, DSN keys and tokens for HTTP tests."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from vigil.tenancy import store
from vigil.tenancy.credentials import format_dsn


@dataclass(frozen=True)
class Tenant:
    org: store.Organization
    project: store.Project
    key: store.ProjectKey
    token: str  # all scopes

    def dsn(self, base_url: str) -> str:
        return format_dsn(base_url, self.key.public_key, self.project.id)


def make_tenant(engine: Engine, org_slug: str, project_slug: str = "app") -> Tenant:
    with engine.begin() as conn:
        org = store.create_organization(conn, org_slug)
        project = store.create_project(conn, org, project_slug)
        key = store.create_key(conn, project)
        _, token = store.create_token(conn, org, "tests")
    return Tenant(org, project, key, token)


def bearer(secret: str) -> dict[str, str]:
    """Request headers authenticating with the API token `secret`."""
    return {"Authorization": f"Bearer {secret}"}


def make_token(engine: Engine, org: store.Organization, scopes: list[str]) -> str:
    with engine.begin() as conn:
        return store.create_token(conn, org, "scoped", scopes)[1]


def revoke(engine: Engine, org: store.Organization, token: str) -> None:
    with engine.begin() as conn:
        found = store.find_token(conn, token)
        assert found is not None
        store.revoke_token(conn, org, found.id)


def set_key_active(engine: Engine, key: store.ProjectKey, active: bool) -> None:
    with engine.begin() as conn:
        store.set_key_active(conn, key.public_key, active)
