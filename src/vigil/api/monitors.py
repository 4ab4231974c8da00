"""The crons management API, shaped like Sentry's: monitors, their check-ins and the
processing errors of monitors and projects.

- `GET|POST /api/0/organizations/{org}/monitors/`: the organization's monitors (`project=`
  slug or id, repeatable), in Sentry's `sort` (`status`, the default: failing first, then
  ok, waiting, muted, disabled; `name`; `muted`; `asc=0` reverses), cursor-paginated
  with a Sentry `Link` header;
  create one from `project`, `name`, optional `slug` (else the slugified name) and
  `config` (string `schedule_type`), validated as check-in configs are (B2). Field
  errors are 400 in Sentry's shape (`{"config": {"schedule": [...]}}`); so is the
  organization's monitor limit (`nonFieldErrors`, with the reference's message).
- `GET|PUT|DELETE .../monitors/{monitor_slug}/`, organization- and project-scoped: PUT
  changes `name`, `slug`, `config` (merged into the stored one, then validated whole),
  `isMuted` (the monitor and all its environments) and `status` ("active"/"disabled").
  DELETE removes the monitor with its environments, check-ins and incidents at once and
  answers 202, the status Sentry answers (it schedules the deletion).
- `PUT|DELETE .../monitors/{monitor_slug}/environments/{environment}/`: PUT
  `{"isMuted"}` mutes or unmutes one environment (the monitor counts as muted when all
  its environments are) and answers the monitor; DELETE removes the environment with its
  check-ins and incidents (202, as Sentry answers). 404 for an environment the monitor
  has not got.
- `GET .../monitors/{monitor_slug}/checkins/`: newest first, `environment=` (repeatable),
  `start`/`end` (ISO 8601, on the check-in's creation time), cursor-paginated.
- `GET|DELETE .../monitors/{monitor_slug}/processing-errors/` and
  `GET|DELETE /api/0/projects/{org}/{project}/processing-errors/`: the stored records
  (B10), newest first; DELETE takes `errortype=` (the error type id) and answers 204.
  `DELETE /api/0/projects/{org}/{project}/processing-errors/{id}/` removes one record
  (204; 404 when there is none; 400 when it is another project's).

Reading needs `org:read` or `project:read`; writing `org:write` or `project:write`.
A monitor of another organization, or none, is a 404.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import Connection, delete, select, update
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from vigil.api.auth import authorize_request
from vigil.api.http import json_object, read_body, route
from vigil.api.paging import format_date, paginated, parse_page
from vigil.api.query import FieldErrors, field_error_response, time_range
from vigil.api.services import services
from vigil.db.tables import environment as environment_table
from vigil.db.tables import monitor as monitor_table
from vigil.db.tables import monitor_checkin as checkin_table
from vigil.db.tables import monitor_environment as monitor_environment_table
from vigil.monitors import processing_error_store, store
from vigil.monitors.enums import CheckInStatus, ObjectStatus, ScheduleType
from vigil.monitors.models import Monitor, MonitorEnvironment, MonitorWithEnvironments
from vigil.monitors.monitor_config import InvalidConfig, validate_monitor_config
from vigil.monitors.processing_errors import ProcessingErrorType
from vigil.monitors.slugs import MAX_SLUG_LENGTH, slugify, valid_monitor_slug
from vigil.tenancy import store as tenancy
from vigil.tenancy.store import Organization, Project

READ: Final = ("org:read", "project:read")
WRITE: Final = ("org:write", "project:write")
MAX_NAME_LENGTH: Final = 128
SLUG_INVALID: Final = (
    "Invalid monitor slug. It must contain only lowercase letters, numbers, underscores or hyphens."
)

ORG_MONITORS = "/api/0/organizations/{organization_slug}/monitors/"
ORG_MONITOR = ORG_MONITORS + "{monitor_slug}/"
PROJECT_MONITOR = "/api/0/projects/{organization_slug}/{project_slug}/monitors/{monitor_slug}/"
PROJECT_ERRORS = "/api/0/projects/{organization_slug}/{project_slug}/processing-errors/"


# --- JSON ------------------------------------------------------------------------------


def serialize_config(config: dict[str, Any] | None) -> dict[str, Any] | None:
    """A stored config with its schedule type as the API's string."""
    if config is None:
        return None
    shown = dict(config)
    kind = shown.get("schedule_type")
    if isinstance(kind, int) and kind in (ScheduleType.CRONTAB, ScheduleType.INTERVAL):
        shown["schedule_type"] = ScheduleType(kind).label
    shown.setdefault("timezone", "UTC")
    return shown


def serialize_environment(env: MonitorEnvironment) -> dict[str, Any]:
    return {
        "name": env.environment,
        "status": env.status.label,
        "isMuted": env.is_muted,
        "lastCheckIn": format_date(env.last_checkin),
        "nextCheckIn": format_date(env.next_checkin),
        "nextCheckInLatest": format_date(env.next_checkin_latest),
        "dateCreated": format_date(env.date_added),
    }


def serialize_monitor(item: MonitorWithEnvironments, project: Project) -> dict[str, Any]:
    monitor = item.monitor
    return {
        "id": str(monitor.guid),
        "slug": monitor.slug,
        "name": monitor.name,
        "status": monitor.status.label,
        "isMuted": monitor.is_muted,
        "config": serialize_config(monitor.config),
        "project": {"id": str(project.id), "slug": project.slug},
        "owner": None,
        "dateCreated": format_date(monitor.date_added),
        "environments": [serialize_environment(e) for e in item.environments],
    }


# --- pagination ------------------------------------------------------------------------


# --- lookups ---------------------------------------------------------------------------


def _project(conn: Connection, org: Organization, slug_or_id: str) -> Project:
    try:
        return tenancy.get_project(conn, org, slug_or_id)
    except tenancy.NotFound:
        raise HTTPException(404, f"project {slug_or_id!r} does not exist") from None


def find_monitor(conn: Connection, request: Request, org: Organization) -> tuple[Monitor, Project]:
    """The monitor of the path (project-scoped when the path names a project): 404 when
    there is none in the token's organization."""
    slug = request.path_params["monitor_slug"]
    project_slug = request.path_params.get("project_slug")
    project_ids = None if project_slug is None else [_project(conn, org, project_slug).id]
    monitor = store.get_organization_monitor(conn, org.id, slug, project_ids)
    if monitor is None:
        raise HTTPException(404, f"monitor {slug!r} does not exist")
    project = tenancy.get_project_by_id(conn, monitor.project_id)
    assert project is not None
    return monitor, project


def _with_environments(
    conn: Connection, monitor: Monitor, names: Sequence[str] = ()
) -> MonitorWithEnvironments:
    """The monitor with its environments (those named, when `names` are given: Sentry's
    `environment` parameter)."""
    found = store.list_monitor_environments(conn, [monitor.id])
    if names:
        found = [e for e in found if e.environment in names]
    return MonitorWithEnvironments(monitor, tuple(found))


# --- monitors --------------------------------------------------------------------------


def list_monitors(request: Request) -> Response:
    svc = services(request)
    with svc.reading() as conn:
        access = authorize_request(conn, request, READ)
        try:
            page = parse_page(request)
        except FieldErrors as exc:
            return field_error_response(exc.errors)
        sort = request.query_params.get("sort") or "status"
        if sort not in store.MONITOR_SORTS:
            return field_error_response(
                {"sort": [f"Unknown sort {sort[:40]!r}: one of {', '.join(store.MONITOR_SORTS)}"]}
            )
        projects = {p.id: p for p in tenancy.list_projects(conn, access.organization)}
        wanted = request.query_params.getlist("project")
        project_ids = None
        if wanted and "-1" not in wanted:  # -1: every project, as Sentry's UI asks
            project_ids = [_project(conn, access.organization, p).id for p in wanted]
        # `query`: words that must each be in the name or the slug, in any case (Sentry's).
        rows = store.list_monitors(
            conn,
            access.organization.id,
            project_ids,
            terms=request.query_params.get("query", "").casefold().split(),
            environments=request.query_params.getlist("environment"),
            sort=sort,
            ascending=request.query_params.get("asc", "1") != "0",
            offset=page.offset,
            limit=page.per_page + 1,
        )
    body = [serialize_monitor(m, projects[m.monitor.project_id]) for m in rows]
    return paginated(request, page, rows, body)


def _name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise FieldErrors({"name": ["This field may not be blank."]})
    if len(value) > MAX_NAME_LENGTH:
        raise FieldErrors(
            {"name": [f"Ensure this field has no more than {MAX_NAME_LENGTH} characters."]}
        )
    return value


def _slug(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise FieldErrors({"slug": ["This field may not be blank."]})
    if len(value) > MAX_SLUG_LENGTH:
        raise FieldErrors(
            {"slug": [f"Ensure this field has no more than {MAX_SLUG_LENGTH} characters."]}
        )
    if valid_monitor_slug(value) != value:
        raise FieldErrors({"slug": [SLUG_INVALID]})
    return value


def _check_slug_free(conn: Connection, project_id: int, slug: str) -> None:
    if store.get_monitor(conn, project_id, slug) is not None:
        raise FieldErrors({"slug": [f'The slug "{slug}" is already in use.']})


def _config(raw: Any) -> dict[str, Any]:
    checked = validate_monitor_config(raw)
    if isinstance(checked, InvalidConfig):
        raise FieldErrors({"config": checked.errors})
    return dict(checked.config)


async def create_monitor(request: Request) -> Response:
    svc = services(request)
    body = json_object(await read_body(request, svc.settings.max_message_bytes))

    def write() -> Response:
        with svc.writing() as conn:
            access = authorize_request(conn, request, WRITE)
            try:
                return _create(conn, access.organization, body, svc.settings.max_monitors_per_org)
            except FieldErrors as exc:
                return field_error_response(exc.errors)

    return await run_in_threadpool(write)


def _create(
    conn: Connection, org: Organization, body: dict[str, Any], max_monitors: int
) -> Response:
    raw_project = body.get("project")
    if isinstance(raw_project, int) and not isinstance(raw_project, bool):
        raw_project = str(raw_project)
    if raw_project is None or raw_project == "":
        raise FieldErrors({"project": ["This field is required."]})
    if not isinstance(raw_project, str):  # a float (an integer past 64 bits), a list, ...
        raise FieldErrors({"project": ["Invalid project"]})
    try:
        project = tenancy.get_project(conn, org, raw_project)
    except tenancy.NotFound:
        raise FieldErrors({"project": ["Invalid project"]}) from None
    name = _name(body.get("name"))
    slug = _slug(body["slug"]) if body.get("slug") is not None else _default_slug(name)
    config = _config(body.get("config"))
    _check_slug_free(conn, project.id, slug)
    try:
        ensured = store.ensure_monitor_with_config(
            conn,
            project,
            slug,
            config,
            store.no_owners,
            max_monitors,
        )
    except store.MonitorLimitsExceeded as exc:
        # Sentry's monitor validator refuses it as a non-field error
        return field_error_response({"nonFieldErrors": [str(exc)]})
    monitor = ensured.monitor
    assert monitor is not None
    conn.execute(update(monitor_table).where(monitor_table.c.id == monitor.id).values(name=name))
    created = store.get_monitor_by_id(conn, monitor.id)
    assert created is not None
    return JSONResponse(serialize_monitor(_with_environments(conn, created), project), 201)


def _default_slug(name: str) -> str:
    slug = slugify(name)[:MAX_SLUG_LENGTH].strip("-")
    if not slug:
        raise FieldErrors({"slug": [SLUG_INVALID]})
    return slug


def get_monitor(request: Request) -> Response:
    svc = services(request)
    with svc.reading() as conn:
        access = authorize_request(conn, request, READ)
        monitor, project = find_monitor(conn, request, access.organization)
        names = request.query_params.getlist("environment")
        return JSONResponse(serialize_monitor(_with_environments(conn, monitor, names), project))


async def update_monitor(request: Request) -> Response:
    svc = services(request)
    body = json_object(await read_body(request, svc.settings.max_message_bytes))

    def write() -> Response:
        with svc.writing() as conn:
            access = authorize_request(conn, request, WRITE)
            monitor, project = find_monitor(conn, request, access.organization)
            try:
                changes = _changes(conn, monitor, project, body)
            except FieldErrors as exc:
                return field_error_response(exc.errors)
            if changes:
                conn.execute(
                    update(monitor_table).where(monitor_table.c.id == monitor.id).values(**changes)
                )
            if "is_muted" in changes:
                conn.execute(
                    update(monitor_environment_table)
                    .where(monitor_environment_table.c.monitor_id == monitor.id)
                    .values(is_muted=changes["is_muted"])
                )
            updated = store.get_monitor_by_id(conn, monitor.id)
            assert updated is not None
            return JSONResponse(serialize_monitor(_with_environments(conn, updated), project))

    return await run_in_threadpool(write)


def _changes(
    conn: Connection, monitor: Monitor, project: Project, body: dict[str, Any]
) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    # Fields Sentry's PUT takes that vigil cannot honour are refused, never ignored: a
    # 200 would tell the client its change was made.
    if "project" in body and str(body["project"]) not in (project.slug, str(project.id)):
        raise FieldErrors({"project": ["moving a monitor to another project is not supported"]})
    if body.get("owner") not in (None, ""):
        raise FieldErrors({"owner": ["vigil has no users or teams: a monitor has no owner"]})
    if "name" in body:
        changes["name"] = _name(body["name"])
    if "slug" in body:
        slug = _slug(body["slug"])
        if slug != monitor.slug:
            _check_slug_free(conn, monitor.project_id, slug)
            changes["slug"] = slug
    if "config" in body:
        if not isinstance(body["config"], dict):
            raise FieldErrors({"config": _config(body["config"])})
        merged = {**(serialize_config(monitor.config) or {}), **body["config"]}
        changes["config"] = _config(merged)
    if "isMuted" in body:
        if not isinstance(body["isMuted"], bool):
            raise FieldErrors({"isMuted": ["Must be a valid boolean."]})
        changes["is_muted"] = body["isMuted"]
    if "status" in body:
        allowed = {"active": ObjectStatus.ACTIVE, "disabled": ObjectStatus.DISABLED}
        status = body["status"]
        if not isinstance(status, str) or status not in allowed:
            raise FieldErrors({"status": [f'"{status}" is not a valid choice.']})
        changes["status"] = int(allowed[status])
    return changes


def delete_monitor(request: Request) -> Response:
    svc = services(request)
    with svc.writing() as conn:
        access = authorize_request(conn, request, WRITE)
        monitor, _ = find_monitor(conn, request, access.organization)
        conn.execute(delete(monitor_table).where(monitor_table.c.id == monitor.id))
    return Response(status_code=202)


# --- one environment -------------------------------------------------------------------


def _environment(envs: list[MonitorEnvironment], monitor: Monitor, name: str) -> MonitorEnvironment:
    for env in envs:
        if env.environment == name:
            return env
    raise HTTPException(404, f"monitor {monitor.slug!r} has no environment {name!r}")


async def update_monitor_environment(request: Request) -> Response:
    svc = services(request)
    body = json_object(await read_body(request, svc.settings.max_message_bytes))
    muted = body.get("isMuted")
    if "isMuted" in body and not isinstance(muted, bool):
        return field_error_response({"isMuted": ["Must be a valid boolean."]})

    def write() -> Response:
        with svc.writing() as conn:
            access = authorize_request(conn, request, WRITE)
            monitor, project = find_monitor(conn, request, access.organization)
            envs = store.list_monitor_environments(conn, [monitor.id])
            env = _environment(envs, monitor, request.path_params["environment"])
            if isinstance(muted, bool):
                conn.execute(
                    update(monitor_environment_table)
                    .where(monitor_environment_table.c.id == env.id)
                    .values(is_muted=muted)
                )
                # Muted as a whole when every environment is, as Sentry derives it.
                all_muted = all(muted if e.id == env.id else e.is_muted for e in envs)
                conn.execute(
                    update(monitor_table)
                    .where(monitor_table.c.id == monitor.id)
                    .values(is_muted=all_muted)
                )
            updated = store.get_monitor_by_id(conn, monitor.id)
            assert updated is not None
            return JSONResponse(serialize_monitor(_with_environments(conn, updated), project))

    return await run_in_threadpool(write)


def delete_monitor_environment(request: Request) -> Response:
    svc = services(request)
    with svc.writing() as conn:
        access = authorize_request(conn, request, WRITE)
        monitor, _ = find_monitor(conn, request, access.organization)
        envs = store.list_monitor_environments(conn, [monitor.id])
        env = _environment(envs, monitor, request.path_params["environment"])
        conn.execute(
            delete(monitor_environment_table).where(monitor_environment_table.c.id == env.id)
        )
    return Response(status_code=202)


# --- check-ins -------------------------------------------------------------------------


def list_checkins(request: Request) -> Response:
    svc = services(request)
    with svc.reading() as conn:
        access = authorize_request(conn, request, READ)
        monitor, _ = find_monitor(conn, request, access.organization)
        try:
            page = parse_page(request)
            start, end = time_range(request, datetime.now(UTC))
        except FieldErrors as exc:
            return field_error_response(exc.errors)
        c, me, env = checkin_table, monitor_environment_table, environment_table
        query = (
            select(c, env.c.name.label("environment_name"))
            .join(me, me.c.id == c.c.monitor_environment_id)
            .join(env, env.c.id == me.c.environment_id)
            .where(c.c.monitor_id == monitor.id)
        )
        environments = request.query_params.getlist("environment")
        if environments:
            query = query.where(env.c.name.in_(environments))
        if start is not None:
            query = query.where(c.c.date_added >= start)
        if end is not None:
            query = query.where(c.c.date_added <= end)
        rows = conn.execute(
            query.order_by(c.c.date_added.desc(), c.c.id.desc())
            .offset(page.offset)
            .limit(page.per_page + 1)
        ).all()
    body = [
        {
            "id": str(r.guid),
            "environment": r.environment_name,
            "status": CheckInStatus(r.status).label,
            "duration": r.duration,
            "dateCreated": format_date(r.date_added),
            "dateUpdated": format_date(r.date_updated),
            "expectedTime": format_date(r.expected_time),
            "monitorConfig": serialize_config(r.monitor_config),
        }
        for r in rows
    ]
    return paginated(request, page, rows, body)


# --- processing errors -----------------------------------------------------------------


def _error_type(request: Request) -> ProcessingErrorType:
    raw = request.query_params.get("errortype", "")
    try:
        return ProcessingErrorType(int(raw))
    except ValueError:
        raise FieldErrors({"errortype": [f"Invalid error type: {raw!r}"]}) from None


def _errors_entity(conn: Connection, request: Request, org: Organization) -> str:
    if "monitor_slug" in request.path_params:
        monitor, _ = find_monitor(conn, request, org)
        return processing_error_store.monitor_entity(monitor.id)
    project = _project(conn, org, request.path_params["project_slug"])
    return processing_error_store.project_entity(project.id)


def list_processing_errors(request: Request) -> Response:
    svc = services(request)
    with svc.reading() as conn:
        access = authorize_request(conn, request, READ)
        entity = _errors_entity(conn, request, access.organization)
        records = processing_error_store.list_errors(conn, entity, datetime.now(UTC))
    return JSONResponse([r.to_dict() for r in records])


def delete_processing_errors(request: Request) -> Response:
    svc = services(request)
    with svc.writing() as conn:
        access = authorize_request(conn, request, WRITE)
        entity = _errors_entity(conn, request, access.organization)
        try:
            error_type = _error_type(request)
        except FieldErrors as exc:
            return field_error_response(exc.errors)
        processing_error_store.delete_errors_by_type(conn, entity, error_type)
    return Response(status_code=204)


def delete_processing_error(request: Request) -> Response:
    """One record, by id, through its own project: 404 when there is none (or it is
    another organization's: its existence is not theirs to learn), 400 when it is another
    project's of the organization."""
    svc = services(request)
    with svc.writing() as conn:
        access = authorize_request(conn, request, WRITE)
        project = _project(conn, access.organization, request.path_params["project_slug"])
        error_id = request.path_params["error_id"]
        try:
            deleted = processing_error_store.delete_error(conn, project.id, error_id)
        except processing_error_store.InvalidProjectError as exc:
            owner = tenancy.get_project_by_id(conn, exc.owner_project_id)
            if owner is not None and owner.organization_id == access.organization.id:
                return field_error_response({"error_id": ["Invalid processing error id"]})
            deleted = False
    if not deleted:
        raise HTTPException(404, f"processing error {error_id!r} does not exist")
    return Response(status_code=204)


# --- routes ----------------------------------------------------------------------------


def routes() -> list[BaseRoute]:
    monitor_paths = [ORG_MONITOR, PROJECT_MONITOR]
    found: list[BaseRoute] = [
        *route(ORG_MONITORS, list_monitors, ["GET"]),
        *route(ORG_MONITORS, create_monitor, ["POST"]),
        *route(PROJECT_ERRORS, list_processing_errors, ["GET"]),
        *route(PROJECT_ERRORS, delete_processing_errors, ["DELETE"]),
        *route(PROJECT_ERRORS + "{error_id}/", delete_processing_error, ["DELETE"]),
    ]
    for path in monitor_paths:
        found += [
            *route(path, get_monitor, ["GET"]),
            *route(path, update_monitor, ["PUT"]),
            *route(path, delete_monitor, ["DELETE"]),
            *route(path + "environments/{environment}/", update_monitor_environment, ["PUT"]),
            *route(path + "environments/{environment}/", delete_monitor_environment, ["DELETE"]),
            *route(path + "checkins/", list_checkins, ["GET"]),
            *route(path + "processing-errors/", list_processing_errors, ["GET"]),
            *route(path + "processing-errors/", delete_processing_errors, ["DELETE"]),
        ]
    return found
