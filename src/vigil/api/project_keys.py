"""`/api/0/projects/{organization_slug}/{project_slug}/keys/`: a project's DSN keys,
shaped like Sentry's (the key's `id` is its public key). Listing needs `project:read`;
creating a key and enabling/disabling one (`PUT` with `isActive`) need `project:write`.
A key disabled here stops authenticating ingest in this process at once."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute

from vigil.api.auth import authorize
from vigil.api.http import json_object, read_body, route
from vigil.api.services import services
from vigil.tenancy import store
from vigil.tenancy.credentials import format_dsn
from vigil.tenancy.public_url import public_base_url

MAX_NAME_CHARS = 64  # project_key.label


def serialize_key(key: store.ProjectKey, base_url: str) -> dict[str, Any]:
    return {
        "id": key.public_key,
        "name": key.label,
        "label": key.label,
        "public": key.public_key,
        "isActive": key.is_active,
        "projectId": key.project_id,
        "dsn": {
            "public": format_dsn(base_url, key.public_key, key.project_id),
            "crons": (f"{base_url}/api/{key.project_id}/cron/___MONITOR_SLUG___/{key.public_key}/"),
        },
    }


def parse_key_name(body: dict[str, Any]) -> str | None:
    """The `name` of a key create/update body (None when absent); 400 if unusable."""
    name = body.get("name")
    if name is None:
        return None
    if not isinstance(name, str) or not name.strip():
        raise HTTPException(400, "name must be a non-empty string")
    if len(name.strip()) > MAX_NAME_CHARS:
        raise HTTPException(400, f"name must be at most {MAX_NAME_CHARS} characters")
    return name.strip()


def parse_is_active(body: dict[str, Any]) -> bool | None:
    """The `isActive` of a key update body (None when absent); 400 unless a boolean."""
    value = body.get("isActive")
    if value is not None and not isinstance(value, bool):
        raise HTTPException(400, "isActive must be true or false")
    return value


def _project(conn: Connection, request: Request, required: str) -> tuple[store.Project, str]:
    params = request.path_params
    access = authorize(
        conn, request.headers.get("authorization"), params["organization_slug"], required
    )
    try:
        project = store.get_project(conn, access.organization, params["project_slug"])
    except store.NotFound as exc:
        raise HTTPException(404, str(exc)) from None
    return project, public_base_url(conn, services(request).settings)


def list_keys(request: Request) -> JSONResponse:
    with services(request).reading() as conn:
        project, base_url = _project(conn, request, "project:read")
        keys = store.list_keys(conn, project)
    return JSONResponse([serialize_key(k, base_url) for k in keys])


async def create_key(request: Request) -> JSONResponse:
    svc = services(request)
    body = json_object(await read_body(request, svc.settings.max_message_bytes))
    name = parse_key_name(body)

    def create() -> JSONResponse:
        with svc.writing() as conn:
            project, base_url = _project(conn, request, "project:write")
            key = store.create_key(conn, project, name or "Default")
        return JSONResponse(serialize_key(key, base_url), status_code=201)

    return await run_in_threadpool(create)


async def update_key(request: Request) -> JSONResponse:
    svc = services(request)
    body = json_object(await read_body(request, svc.settings.max_message_bytes))
    name = parse_key_name(body)
    is_active = parse_is_active(body)
    public_key = request.path_params["key_id"]

    def update() -> JSONResponse:
        with svc.writing() as conn:
            project, base_url = _project(conn, request, "project:write")
            key = store.get_key(conn, public_key)
            if key is None or key.project_id != project.id:
                raise HTTPException(
                    404, f"key {public_key!r} does not exist in project {project.slug!r}"
                )
            if name is not None and name != key.label:
                raise HTTPException(400, "renaming a key is not supported; only isActive")
            if is_active is not None and is_active != key.is_active:
                key = store.set_key_active(conn, public_key, is_active)
        svc.keys.forget(public_key)
        return JSONResponse(serialize_key(key, base_url))

    return await run_in_threadpool(update)


def routes() -> list[BaseRoute]:
    keys = "/api/0/projects/{organization_slug}/{project_slug}/keys/"
    return [
        *route(keys, list_keys, ["GET"]),
        *route(keys, create_key, ["POST"]),
        *route(keys + "{key_id}/", update_key, ["PUT"]),
    ]
