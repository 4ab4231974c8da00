"""`/api/0/`, `/api/0/organizations/` and `/api/0/organizations/{organization_slug}/...`:
who the token is, its organization and that organization's projects, shaped like
Sentry's public API (camelCase, ids as strings). `sentry-cli info` reads the first to
check its configuration, `sentry-cli organizations list` the second.

A token belongs to one organization, so the organizations it sees are that one."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute

from vigil.api.auth import NO_CREDENTIALS, authorize, bearer_token, check_access, check_token
from vigil.api.http import route
from vigil.api.paging import format_date
from vigil.api.services import services
from vigil.db.tables import organization as organization_table
from vigil.tenancy import store


def serialize_organization(org: store.Organization, features: dict[str, bool]) -> dict[str, Any]:
    return {
        "id": str(org.id),
        "slug": org.slug,
        "name": org.name,
        "features": sorted(name for name, enabled in features.items() if enabled),
    }


def serialize_project(project: store.Project) -> dict[str, Any]:
    return {"id": str(project.id), "slug": project.slug, "name": project.name}


def organization_details(request: Request) -> JSONResponse:
    slug = request.path_params["organization_slug"]
    with services(request).reading() as conn:
        access = authorize(conn, request.headers.get("authorization"), slug, "org:read")
        features = store.features(conn, access.organization.id)
    return JSONResponse(serialize_organization(access.organization, features))


def organization_projects(request: Request) -> JSONResponse:
    slug = request.path_params["organization_slug"]
    with services(request).reading() as conn:
        access = authorize(conn, request.headers.get("authorization"), slug, "org:read")
        projects = store.list_projects(conn, access.organization)
    return JSONResponse([serialize_project(p) for p in projects])


def api_index(request: Request) -> JSONResponse:
    """Sentry's API root: the token's scopes (`auth`: null without a token; no users in
    vigil, so `user` is null). An unknown or revoked token is a 401."""
    secret = bearer_token(request.headers.get("authorization"))
    auth = None
    if secret is not None:
        with services(request).reading() as conn:
            token = check_token(store.find_token(conn, secret))
        auth = {"scopes": sorted(token.scopes)}
    return JSONResponse({"version": "0", "auth": auth, "user": None})


def list_organizations(request: Request) -> JSONResponse:
    """The token's organization, as Sentry lists a member's organizations."""
    secret = bearer_token(request.headers.get("authorization"))
    if secret is None:
        raise HTTPException(401, NO_CREDENTIALS)
    with services(request).reading() as conn:
        token = check_token(store.find_token(conn, secret))
        org = store.get_organization_by_id(conn, token.organization_id)
        check_access(token, org, org.slug, "org:read")
        features = store.features(conn, org.id)
        created = conn.execute(
            select(organization_table.c.date_added).where(organization_table.c.id == org.id)
        ).scalar_one()
    body = serialize_organization(org, features)
    body.update(
        dateCreated=format_date(created),
        status={"id": "active", "name": "active"},
        isEarlyAdopter=False,
        require2FA=False,
        requireEmailVerification=False,
        avatar={"avatarType": "letter_avatar", "avatarUuid": None},
    )
    return JSONResponse([body])


def routes() -> list[BaseRoute]:
    return [
        *route("/api/0/", api_index, ["GET"]),
        *route("/api/0/organizations/", list_organizations, ["GET"]),
        *route("/api/0/organizations/{organization_slug}/", organization_details, ["GET"]),
        *route(
            "/api/0/organizations/{organization_slug}/projects/", organization_projects, ["GET"]
        ),
    ]
