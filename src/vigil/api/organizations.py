"""`/api/0/organizations/{organization_slug}/...`: an organization and its projects,
shaped like Sentry's public API (camelCase, ids as strings)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute

from vigil.api.auth import authorize
from vigil.api.http import route
from vigil.api.services import services
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


def routes() -> list[BaseRoute]:
    return [
        *route("/api/0/organizations/{organization_slug}/", organization_details, ["GET"]),
        *route(
            "/api/0/organizations/{organization_slug}/projects/", organization_projects, ["GET"]
        ),
    ]
