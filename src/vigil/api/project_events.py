"""`GET /api/0/projects/{org}/{project}/events/`: a project's stored events, newest first
by their timestamp, as Sentry lists them (what `sentry-cli events list` reads).

Each event in the shape of an issue's events (`issues.serialize_event`: `eventID`,
`groupID`, `title`, `dateCreated`, `tags`, `user`, its occurrence, ...), `full=true`
adding the full fields. `environment=` (repeatable), `statsPeriod=` or `start=`/`end=`
on the event's timestamp, cursor pages (`per_page` up to 100) with Sentry's `Link`
header; events of the same time, the latest stored first. Sentry's `query=` search is
not supported: a non-empty one is a 400 rather than an answer that silently ignores it.
An event found by several occurrences is listed once, with the occurrence that stored
it. Reading needs `event:read`, `project:read` or `org:read`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, and_
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from vigil.api.auth import authorize_request
from vigil.api.http import route
from vigil.api.issues import READ, event_columns, serialize_event
from vigil.api.paging import paginated, parse_page
from vigil.api.query import FieldErrors, field_error_response, time_range
from vigil.api.services import services
from vigil.db.tables import event as event_table
from vigil.db.tables import issue_occurrence as occurrence_table
from vigil.tenancy import store as tenancy

PROJECT_EVENTS = "/api/0/projects/{organization_slug}/{project_slug}/events/"


def _project_events(project_id: int) -> Select[Any]:
    """A project's events joined to the occurrence that stored each, in the columns
    `serialize_event` reads."""
    io, ev = occurrence_table, event_table
    return (
        event_columns()
        .select_from(
            ev.join(io, and_(io.c.project_id == ev.c.project_id, io.c.id == ev.c.occurrence_id))
        )
        .where(ev.c.project_id == project_id)
    )


def list_project_events(request: Request) -> Response:
    svc = services(request)
    params = request.query_params
    try:
        page = parse_page(request)
        since, until = time_range(request, datetime.now(UTC))
        if params.get("query", "").strip():
            raise FieldErrors({"query": ["searching a project's events is not supported"]})
    except FieldErrors as exc:
        return field_error_response(exc.errors)
    with svc.reading() as conn:
        access = authorize_request(conn, request, READ)
        slug = request.path_params["project_slug"]
        try:
            project = tenancy.get_project(conn, access.organization, slug)
        except tenancy.NotFound:
            raise HTTPException(404, f"project {slug!r} does not exist") from None
        ev = event_table
        query = _project_events(project.id)
        environments = params.getlist("environment")
        if environments:
            query = query.where(ev.c.environment.in_(environments))
        if since is not None:
            query = query.where(ev.c.timestamp >= since)
        if until is not None:
            query = query.where(ev.c.timestamp <= until)
        rows = conn.execute(
            query.order_by(ev.c.timestamp.desc(), ev.c.id.desc())
            .offset(page.offset)
            .limit(page.per_page + 1)
        ).all()
    full = params.get("full") in ("1", "true")
    return paginated(request, page, rows, [serialize_event(r, full=full) for r in rows])


def routes() -> list[BaseRoute]:
    return [*route(PROJECT_EVENTS, list_project_events, ["GET"])]
