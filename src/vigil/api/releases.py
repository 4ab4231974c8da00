"""`GET /api/0/organizations/{org}/releases/` and `GET /api/0/projects/{org}/{project}/
releases/`: the releases vigil has seen in events (an event's `release`), newest first,
shaped like Sentry's list (`sentry-cli releases list` reads the project's).

Each: `version` (and `shortVersion`, the same), `dateCreated` (when vigil first saw it or
it was made), `dateReleased` (when it was finalized), `ref`, `url`, `status`
(`open` or `archived`), `newGroups` (the issues it first brought,
in the projects asked for), `firstEvent` / `lastEvent` (from its issues' events) and its
`projects`. `project=` (repeatable, slug or id) narrows the organization's list,
`query=` keeps versions containing the text; cursor pages. Reading needs `org:read` or
`project:read`. Making, changing and deleting one release, and its deploys:
`vigil.api.release_details`.
"""

from __future__ import annotations

from typing import Any, Final

from sqlalchemy import ColumnElement, Connection, and_, func, select
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from vigil.api.auth import authorize
from vigil.api.http import route
from vigil.api.issues import find_project_ids
from vigil.api.paging import format_date, paginated, parse_page
from vigil.api.query import FieldErrors, field_error_response
from vigil.api.services import services
from vigil.db.tables import group_release as group_release_table
from vigil.db.tables import project as project_table
from vigil.db.tables import release as release_table
from vigil.db.tables import release_project as release_project_table

ORG_RELEASES: Final = "/api/0/organizations/{organization_slug}/releases/"
PROJECT_RELEASES: Final = "/api/0/projects/{organization_slug}/{project_slug}/releases/"
READ: Final = ("org:read", "project:read")


def list_releases(request: Request) -> Response:
    svc = services(request)
    with svc.reading() as conn:
        org_slug = request.path_params["organization_slug"]
        access = authorize(conn, request.headers.get("authorization"), org_slug, READ)
        org = access.organization
        try:
            page = parse_page(request)
        except FieldErrors as exc:
            return field_error_response(exc.errors)
        path_project = request.path_params.get("project_slug")
        wanted = [path_project] if path_project else request.query_params.getlist("project")
        project_ids = find_project_ids(conn, org, wanted)
        r, rp, p = release_table, release_project_table, project_table
        seen_in = (
            select(rp.c.release_id)
            .join(p, p.c.id == rp.c.project_id)
            .where(p.c.organization_id == org.id)
        )
        if project_ids is not None:
            seen_in = seen_in.where(rp.c.project_id.in_(project_ids))
        query = select(r).where(r.c.organization_id == org.id, r.c.id.in_(seen_in))
        text = request.query_params.get("query")
        if text:
            query = query.where(func.lower(r.c.version).contains(text.lower(), autoescape=True))
        rows = conn.execute(
            query.order_by(r.c.date_added.desc(), r.c.id.desc())
            .offset(page.offset)
            .limit(page.per_page + 1)
        ).all()
        ids = [row.id for row in rows[: page.per_page]]
        projects = _projects_of(conn, ids, project_ids)
        events = _event_times(conn, ids, project_ids)
    body = [
        serialize_release(row, projects.get(row.id, []), events.get(row.id, (None, None)))
        for row in rows[: page.per_page]
    ]
    return paginated(request, page, rows, body)


def serialize_release(
    row: Any, projects: list[dict[str, Any]], events: tuple[Any, Any]
) -> dict[str, Any]:
    """A release row in Sentry's shape, with its projects and first / last event."""
    first, last = events
    return {
        "version": row.version,
        "shortVersion": row.version,
        "ref": row.ref,
        "url": row.url,
        "status": row.status,
        "dateCreated": format_date(row.date_added),
        "dateReleased": format_date(row.date_released),
        "newGroups": sum(project["newGroups"] for project in projects),
        "firstEvent": format_date(first),
        "lastEvent": format_date(last),
        "projects": projects,
    }


def release_details(conn: Connection, row: Any) -> dict[str, Any]:
    """One release as the API shows it (all its projects)."""
    projects = _projects_of(conn, [row.id], None).get(row.id, [])
    events = _event_times(conn, [row.id], None).get(row.id, (None, None))
    return serialize_release(row, projects, events)


def _projects_of(
    conn: Connection, release_ids: list[int], project_ids: list[int] | None
) -> dict[int, list[dict[str, Any]]]:
    rp, p = release_project_table, project_table
    query = (
        select(rp.c.release_id, rp.c.new_groups, p.c.id, p.c.slug, p.c.name)
        .join(p, p.c.id == rp.c.project_id)
        .where(rp.c.release_id.in_(release_ids))
        .order_by(p.c.slug)
    )
    if project_ids is not None:
        query = query.where(rp.c.project_id.in_(project_ids))
    found: dict[int, list[dict[str, Any]]] = {}
    for release_id, new_groups, project_id, slug, name in conn.execute(query):
        found.setdefault(release_id, []).append(
            {"id": str(project_id), "slug": slug, "name": name, "newGroups": new_groups}
        )
    return found


def _event_times(
    conn: Connection, release_ids: list[int], project_ids: list[int] | None
) -> dict[int, tuple[Any, Any]]:
    gr = group_release_table
    condition: ColumnElement[bool] = gr.c.release_id.in_(release_ids)
    if project_ids is not None:
        condition = and_(condition, gr.c.project_id.in_(project_ids))
    query = (
        select(gr.c.release_id, func.min(gr.c.first_seen), func.max(gr.c.last_seen))
        .where(condition)
        .group_by(gr.c.release_id)
    )
    return {release_id: (first, last) for release_id, first, last in conn.execute(query)}


def routes() -> list[BaseRoute]:
    return [
        *route(ORG_RELEASES, list_releases, ["GET"]),
        *route(PROJECT_RELEASES, list_releases, ["GET"]),
    ]
