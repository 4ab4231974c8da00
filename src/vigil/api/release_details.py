"""Releases made, changed and deployed through the API, as `sentry-cli releases new |
info | finalize | archive | restore | delete` and `sentry-cli deploys new | list` do it
in a deploy pipeline (a pipeline pointed at vigil must not fail on them):

- `POST /api/0/organizations/{org}/releases/` `{"version", "projects": [slug], "ref"?,
  "url"?, "dateReleased"?}` (also `POST /api/0/projects/{org}/{project}/releases/`,
  the project from the path): 201 with the release, or 208 with it when the version
  already exists (its projects are added, its fields changed: `sentry-cli releases
  archive | restore` post `{"version", "projects": [], "status"}`);
- `GET | PUT | DELETE …/releases/{version}/`: `PUT` takes `dateReleased`, `ref`, `url`,
  `projects` (added) and `status` (`open` / `archived`); `DELETE` refuses (400) a release
  issues were first seen in;
- `GET | POST …/releases/{version}/deploys/`: `{"environment", "name"?, "url"?,
  "dateStarted"?, "dateFinished"?}` (201).

Reading needs `org:read` or `project:read`; the rest `org:write` or `project:write`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import Connection, delete, select, update
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from vigil.api.auth import Access, authorize_request
from vigil.api.http import body_string, json_object, read_body, route
from vigil.api.paging import format_date
from vigil.api.query import parse_iso_datetime
from vigil.api.releases import ORG_RELEASES, PROJECT_RELEASES, READ, release_details
from vigil.api.services import services
from vigil.db.tables import group as group_table
from vigil.db.tables import group_release as group_release_table
from vigil.db.tables import release as release_table
from vigil.db.tables import release_deploy as deploy_table
from vigil.issues.environment_store import get_or_create_release
from vigil.tenancy import store

WRITE: Final = ("org:write", "project:write")
MAX_VERSION_CHARS: Final = 200  # Sentry's limit
MAX_REF_CHARS: Final = 250
MAX_ENVIRONMENT_CHARS: Final = 64
MAX_NAME_CHARS: Final = 64
STATUSES: Final = ("open", "archived")


def check_version(value: Any) -> str:
    """A version as Sentry takes one; 400 saying why not."""
    if not isinstance(value, str) or not value.strip():
        raise HTTPException(400, "version is required: a non-empty string")
    if len(value) > MAX_VERSION_CHARS:
        raise HTTPException(400, f"version: at most {MAX_VERSION_CHARS} characters")
    if value != value.strip() or value in (".", "..", "latest") or "/" in value:
        raise HTTPException(
            400, "version: no surrounding spaces or '/', and not '.', '..', 'latest'"
        )
    if any(not c.isprintable() for c in value):
        raise HTTPException(400, "version: no control characters")
    return value


def _date(body: dict[str, Any], key: str) -> datetime | None:
    raw = body.get(key)
    if raw is None:
        return None
    try:
        if isinstance(raw, str):
            return parse_iso_datetime(raw)
    except ValueError:
        pass
    raise HTTPException(400, f"{key} must be an ISO 8601 date")


def _projects(conn: Connection, access: Access, body: dict[str, Any]) -> list[store.Project]:
    raw = body.get("projects")
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(p, str | int) for p in raw):
        raise HTTPException(400, "projects must be a list of project slugs")
    try:
        return [store.get_project(conn, access.organization, str(p)) for p in raw]
    except store.NotFound as exc:
        raise HTTPException(400, str(exc)) from None


def _lookup(conn: Connection, access: Access, version: str) -> Any:
    return conn.execute(
        select(release_table).where(
            release_table.c.organization_id == access.organization.id,
            release_table.c.version == version,
        )
    ).first()


def _find(conn: Connection, access: Access, version: str) -> Any:
    row = _lookup(conn, access, version)
    if row is None:
        raise HTTPException(404, f"release {version!r} does not exist")
    return row


def _changes(body: dict[str, Any]) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if "dateReleased" in body:
        changes["date_released"] = _date(body, "dateReleased")
    if "ref" in body:
        changes["ref"] = body_string(body, "ref", MAX_REF_CHARS)
    if "url" in body:
        changes["url"] = body_string(body, "url")
    if "status" in body:
        status = body["status"]
        if status not in STATUSES:
            raise HTTPException(400, f"status: one of {', '.join(STATUSES)}")
        changes["status"] = status
    return changes


async def create_release(request: Request) -> Response:
    svc = services(request)
    body = json_object(await read_body(request, svc.settings.max_message_bytes))
    version = check_version(body.get("version"))
    changes = _changes(body)
    path_project = request.path_params.get("project_slug")

    def create() -> Response:
        now = datetime.now(UTC)
        with svc.writing() as conn:
            access = authorize_request(conn, request, WRITE)
            projects = _projects(conn, access, body)
            if path_project is not None:
                try:
                    projects.append(store.get_project(conn, access.organization, path_project))
                except store.NotFound as exc:
                    raise HTTPException(404, str(exc)) from None
            existed = _lookup(conn, access, version) is not None
            if not projects and not existed:
                # (an existing one may be named alone: archive / restore post its status)
                raise HTTPException(400, "projects: name at least one project of the release")
            for project in projects:
                get_or_create_release(conn, access.organization.id, project.id, version, now)
            row = _find(conn, access, version)
            if changes:
                conn.execute(
                    update(release_table).where(release_table.c.id == row.id).values(changes)
                )
                row = _find(conn, access, version)
            answer = release_details(conn, row)
        return JSONResponse(answer, status_code=208 if existed else 201)

    return await run_in_threadpool(create)


def get_release(request: Request) -> Response:
    with services(request).reading() as conn:
        access = authorize_request(conn, request, READ)
        row = _find(conn, access, request.path_params["version"])
        return JSONResponse(release_details(conn, row))


async def update_release(request: Request) -> Response:
    svc = services(request)
    body = json_object(await read_body(request, svc.settings.max_message_bytes))
    changes = _changes(body)

    def change() -> Response:
        now = datetime.now(UTC)
        with svc.writing() as conn:
            access = authorize_request(conn, request, WRITE)
            row = _find(conn, access, request.path_params["version"])
            for project in _projects(conn, access, body):
                get_or_create_release(conn, access.organization.id, project.id, row.version, now)
            if changes:
                conn.execute(
                    update(release_table).where(release_table.c.id == row.id).values(changes)
                )
            answer = release_details(conn, _find(conn, access, row.version))
        return JSONResponse(answer)

    return await run_in_threadpool(change)


async def delete_release(request: Request) -> Response:
    svc = services(request)

    def remove() -> Response:
        with svc.writing() as conn:
            access = authorize_request(conn, request, WRITE)
            row = _find(conn, access, request.path_params["version"])
            used = (
                conn.execute(
                    select(group_release_table.c.group_id)
                    .where(group_release_table.c.release_id == row.id)
                    .limit(1)
                ).first()
                or conn.execute(
                    select(group_table.c.id)
                    .where(group_table.c.first_release_id == row.id)
                    .limit(1)
                ).first()
            )
            if used is not None:
                raise HTTPException(
                    400, "This release is referenced by issues and cannot be removed."
                )
            conn.execute(delete(release_table).where(release_table.c.id == row.id))
        return Response(status_code=204)

    return await run_in_threadpool(remove)


def _deploy(row: Any) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "environment": row.environment,
        "name": row.name,
        "url": row.url,
        "dateStarted": format_date(row.date_started),
        "dateFinished": format_date(row.date_finished),
    }


def list_deploys(request: Request) -> Response:
    with services(request).reading() as conn:
        access = authorize_request(conn, request, READ)
        row = _find(conn, access, request.path_params["version"])
        rows = conn.execute(
            select(deploy_table)
            .where(deploy_table.c.release_id == row.id)
            .order_by(deploy_table.c.date_finished.desc(), deploy_table.c.id.desc())
            .limit(100)
        )
        return JSONResponse([_deploy(r) for r in rows])


async def create_deploy(request: Request) -> Response:
    svc = services(request)
    body = json_object(await read_body(request, svc.settings.max_message_bytes))
    environment = body_string(body, "environment", MAX_ENVIRONMENT_CHARS)
    if not environment:
        raise HTTPException(400, "environment is required")
    values = {
        "environment": environment,
        "name": body_string(body, "name", MAX_NAME_CHARS),
        "url": body_string(body, "url"),
        "date_started": _date(body, "dateStarted"),
        "date_finished": _date(body, "dateFinished") or datetime.now(UTC),
    }

    def create() -> Response:
        with svc.writing() as conn:
            access = authorize_request(conn, request, WRITE)
            row = _find(conn, access, request.path_params["version"])
            deploy_id = conn.execute(
                deploy_table.insert()
                .values(release_id=row.id, **values)
                .returning(deploy_table.c.id)
            ).scalar_one()
            made = conn.execute(select(deploy_table).where(deploy_table.c.id == deploy_id)).one()
        return JSONResponse(_deploy(made), status_code=201)

    return await run_in_threadpool(create)


def routes() -> list[BaseRoute]:
    one = ORG_RELEASES + "{version}/"
    return [
        *route(ORG_RELEASES, create_release, ["POST"]),
        *route(PROJECT_RELEASES, create_release, ["POST"]),
        *route(one, get_release, ["GET"]),
        *route(one, update_release, ["PUT"]),
        *route(one, delete_release, ["DELETE"]),
        *route(one + "deploys/", list_deploys, ["GET"]),
        *route(one + "deploys/", create_deploy, ["POST"]),
    ]
