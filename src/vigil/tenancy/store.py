"""Reading and writing tenancy rows. Every function takes an open connection, so the
caller decides the transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Row, and_, select, update
from sqlalchemy.exc import IntegrityError

from vigil.db.ids import in_range, parse_id
from vigil.db.tables import api_token, organization, organization_feature, project, project_key
from vigil.tenancy import credentials


class TenancyError(Exception):
    """A management request that cannot be carried out; the message says why."""


class NotFound(TenancyError):
    pass


@dataclass(frozen=True)
class Organization:
    id: int
    slug: str
    name: str


@dataclass(frozen=True)
class Project:
    id: int
    organization_id: int
    slug: str
    name: str


@dataclass(frozen=True)
class ProjectKey:
    id: int
    project_id: int
    public_key: str
    label: str
    is_active: bool


@dataclass(frozen=True)
class ApiToken:
    id: int
    organization_id: int
    name: str
    token_prefix: str
    scopes: tuple[str, ...]
    is_active: bool


def _now() -> datetime:
    return datetime.now(UTC)


# --- organizations ---------------------------------------------------------------------


def create_organization(conn: Connection, slug: str, name: str | None = None) -> Organization:
    if not credentials.valid_slug(slug):
        raise TenancyError(
            f"invalid organization slug {slug!r}: use lowercase letters, digits, '-' and '_' "
            "(at most 50, not only digits)"
        )
    try:
        with conn.begin_nested():
            org_id = conn.execute(
                organization.insert()
                .values(slug=slug, name=name or slug, date_added=_now())
                .returning(organization.c.id)
            ).scalar_one()
    except IntegrityError:
        raise TenancyError(f"organization {slug!r} already exists") from None
    return Organization(org_id, slug, name or slug)


def get_organization(conn: Connection, slug: str) -> Organization:
    row = conn.execute(select(organization).where(organization.c.slug == slug)).first()
    if row is None:
        raise NotFound(f"organization {slug!r} does not exist")
    return Organization(row.id, row.slug, row.name)


def get_organization_by_id(conn: Connection, org_id: int) -> Organization:
    if not in_range(org_id):  # no such row, and too big for the database
        raise NotFound(f"organization {org_id} does not exist")
    row = conn.execute(select(organization).where(organization.c.id == org_id)).first()
    if row is None:
        raise NotFound(f"organization {org_id} does not exist")
    return Organization(row.id, row.slug, row.name)


def list_organizations(conn: Connection) -> list[Organization]:
    rows = conn.execute(select(organization).order_by(organization.c.id))
    return [Organization(r.id, r.slug, r.name) for r in rows]


# --- projects --------------------------------------------------------------------------


def create_project(
    conn: Connection, org: Organization, slug: str, name: str | None = None
) -> Project:
    if not credentials.valid_slug(slug):
        raise TenancyError(
            f"invalid project slug {slug!r}: use lowercase letters, digits, '-' and '_' "
            "(at most 50, not only digits)"
        )
    try:
        with conn.begin_nested():
            pid = conn.execute(
                project.insert()
                .values(organization_id=org.id, slug=slug, name=name or slug, date_added=_now())
                .returning(project.c.id)
            ).scalar_one()
    except IntegrityError:
        raise TenancyError(
            f"project {slug!r} already exists in organization {org.slug!r}"
        ) from None
    return Project(pid, org.id, slug, name or slug)


def _project(row: Row[Any]) -> Project:
    return Project(row.id, row.organization_id, row.slug, row.name)


def get_project(conn: Connection, org: Organization, slug_or_id: str) -> Project:
    """The organization's project of that slug, or of that id when it is all digits (a
    slug never is); NotFound otherwise, also for an id no row can have."""
    cond = project.c.slug == slug_or_id
    if slug_or_id.isdigit():
        project_id = parse_id(slug_or_id)
        if project_id is None:
            raise NotFound(f"project {slug_or_id!r} does not exist in organization {org.slug!r}")
        cond = project.c.id == project_id
    row = conn.execute(
        select(project).where(and_(project.c.organization_id == org.id, cond))
    ).first()
    if row is None:
        raise NotFound(f"project {slug_or_id!r} does not exist in organization {org.slug!r}")
    return _project(row)


def get_project_by_id(conn: Connection, project_id: int) -> Project | None:
    if not in_range(project_id):  # no such row, and too big for the database
        return None
    row = conn.execute(select(project).where(project.c.id == project_id)).first()
    return None if row is None else _project(row)


def list_projects(conn: Connection, org: Organization) -> list[Project]:
    rows = conn.execute(
        select(project).where(project.c.organization_id == org.id).order_by(project.c.id)
    )
    return [_project(r) for r in rows]


# --- DSN keys --------------------------------------------------------------------------


def _key(row: Row[Any]) -> ProjectKey:
    r = row
    return ProjectKey(r.id, r.project_id, r.public_key, r.label, r.is_active)


def create_key(conn: Connection, proj: Project, label: str = "Default") -> ProjectKey:
    public = credentials.new_public_key()
    key_id = conn.execute(
        project_key.insert()
        .values(
            project_id=proj.id, public_key=public, label=label, is_active=True, date_added=_now()
        )
        .returning(project_key.c.id)
    ).scalar_one()
    return ProjectKey(key_id, proj.id, public, label, True)


def list_keys(conn: Connection, proj: Project) -> list[ProjectKey]:
    rows = conn.execute(
        select(project_key).where(project_key.c.project_id == proj.id).order_by(project_key.c.id)
    )
    return [_key(r) for r in rows]


def get_key(conn: Connection, public_key: str) -> ProjectKey | None:
    row = conn.execute(select(project_key).where(project_key.c.public_key == public_key)).first()
    return None if row is None else _key(row)


def set_key_active(conn: Connection, public_key: str, active: bool) -> ProjectKey:
    result = conn.execute(
        update(project_key).where(project_key.c.public_key == public_key).values(is_active=active)
    )
    if result.rowcount == 0:
        raise NotFound(f"DSN key {public_key!r} does not exist")
    key = get_key(conn, public_key)
    assert key is not None
    return key


# --- API tokens ------------------------------------------------------------------------


def create_token(
    conn: Connection, org: Organization, name: str, scopes: list[str] | None = None
) -> tuple[ApiToken, str]:
    """Create a token; returns it and its secret value, which is not stored and is shown once."""
    chosen = credentials.validate_scopes(list(credentials.ALL_SCOPES) if scopes is None else scopes)
    secret = credentials.new_token()
    token_id = conn.execute(
        api_token.insert()
        .values(
            organization_id=org.id,
            name=name,
            token_hash=credentials.hash_token(secret),
            token_prefix=credentials.token_prefix(secret),
            scopes=chosen,
            is_active=True,
            date_added=_now(),
        )
        .returning(api_token.c.id)
    ).scalar_one()
    return ApiToken(
        token_id, org.id, name, credentials.token_prefix(secret), tuple(chosen), True
    ), secret


def _token(row: Row[Any]) -> ApiToken:
    r = row
    return ApiToken(
        r.id,
        r.organization_id,
        r.name,
        r.token_prefix,
        tuple(r.scopes),
        r.is_active,
    )


def find_token(conn: Connection, secret: str) -> ApiToken | None:
    row = conn.execute(
        select(api_token).where(api_token.c.token_hash == credentials.hash_token(secret))
    ).first()
    return None if row is None else _token(row)


def list_tokens(conn: Connection, org: Organization) -> list[ApiToken]:
    rows = conn.execute(
        select(api_token).where(api_token.c.organization_id == org.id).order_by(api_token.c.id)
    )
    return [_token(r) for r in rows]


def revoke_token(conn: Connection, org: Organization, token_id: int) -> None:
    if not in_range(token_id):  # not a row id: the driver would refuse it
        raise NotFound(f"token {token_id} does not exist in organization {org.slug!r}")
    result = conn.execute(
        update(api_token)
        .where(and_(api_token.c.id == token_id, api_token.c.organization_id == org.id))
        .values(is_active=False)
    )
    if result.rowcount == 0:
        raise NotFound(f"token {token_id} does not exist in organization {org.slug!r}")


# --- features --------------------------------------------------------------------------


def set_feature(conn: Connection, org: Organization, feature: str, enabled: bool) -> None:
    table = organization_feature
    exists = conn.execute(
        select(table.c.enabled).where(
            and_(table.c.organization_id == org.id, table.c.feature == feature)
        )
    ).first()
    if exists is None:
        conn.execute(
            table.insert().values(organization_id=org.id, feature=feature, enabled=enabled)
        )
    else:
        conn.execute(
            update(table)
            .where(and_(table.c.organization_id == org.id, table.c.feature == feature))
            .values(enabled=enabled)
        )


def features(conn: Connection, org_id: int) -> dict[str, bool]:
    table = organization_feature
    rows = conn.execute(
        select(table.c.feature, table.c.enabled).where(table.c.organization_id == org_id)
    )
    return {r.feature: r.enabled for r in rows}


def has_feature(conn: Connection, org_id: int, feature: str) -> bool:
    return features(conn, org_id).get(feature, False)
