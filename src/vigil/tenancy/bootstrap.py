"""The first start of a fresh install: an organization, a project, a DSN key and a token,
so `vigil serve` is usable at once. Later starts change nothing."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, func, select

from vigil.db.engine import serialize
from vigil.db.tables import organization
from vigil.tenancy import store

DEFAULT_SLUG = "default"
_BOOTSTRAP_LOCK = 0x76676C62


@dataclass(frozen=True)
class Bootstrap:
    created: bool
    organization: store.Organization
    project: store.Project
    key: store.ProjectKey | None
    token: str | None  # the secret, only when just created


def bootstrap(engine: Engine) -> Bootstrap:
    """Create `default`/`default` with a key and a token unless any organization exists."""
    with engine.begin() as conn:
        serialize(conn, _BOOTSTRAP_LOCK)
        if conn.execute(select(func.count()).select_from(organization)).scalar_one() > 0:
            orgs = store.list_organizations(conn)
            org = next((o for o in orgs if o.slug == DEFAULT_SLUG), orgs[0])
            projects = store.list_projects(conn, org)
            if not projects:
                raise store.TenancyError(
                    f"organization {org.slug!r} has no project; create one with "
                    "`vigil project create`"
                )
            project = projects[0]
            keys = [k for k in store.list_keys(conn, project) if k.is_active]
            return Bootstrap(False, org, project, keys[0] if keys else None, None)
        org = store.create_organization(conn, DEFAULT_SLUG, "Default")
        project = store.create_project(conn, org, DEFAULT_SLUG, "Default")
        key = store.create_key(conn, project)
        _, secret = store.create_token(conn, org, "bootstrap")
        return Bootstrap(True, org, project, key, secret)
