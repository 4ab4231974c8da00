"""The issues REST API, shaped like Sentry's (camelCase JSON, Bearer token, organization-
scoped). It reads what the `ingest-occurrences` consumer wrote (docs/issues.md) and
changes an issue's status through the consumer's own status-change path.

- `GET /api/0/organizations/{org}/issues/`: `project=` (ids or slugs, repeatable; `-1`
  is all), `query=` (see `issue_search`; without the parameter Sentry's default
  `is:unresolved`, an empty one matches every status), `environment=` (repeatable: seen
  in one of them), `statsPeriod=` (`24h`, `14d`, ...) or `start=`/`end=` on the last
  seen time, `sort=` date (last seen, the default) | new (first seen) | freq (times
  seen) | priority, cursor pagination (`cursor=`, `limit=`/`per_page=` up to 100) with
  Sentry's `Link` header, and `X-Hits`: how many issues match, across pages.
  `GET /api/0/projects/{org}/{project}/issues/` is the same for one project.
- `PUT /api/0/organizations/{org}/issues/?id=1&id=2`: Sentry's bulk change of the issues
  named by `id=` (the body as for one issue, below); all change or none. Without `id=`
  it is a 400 rather than a change to every issue a query matches.
- `GET .../issues/{issue_id}/`: one issue, by id or short id (`WEB-1A`), with its
  `activity` (newest first, Sentry's type names, ending with `first_seen`).
- `PUT .../issues/{issue_id}/`: `status` ("resolved" | "unresolved" | "ignored"), with
  `substatus` (a substatus name) or Sentry's `statusDetails` (`ignoreUntilEscalating`,
  or `ignoreCount` / `ignoreWindow` / `ignoreDuration` / `ignoreUntil` /
  `ignoreUserCount` for "until condition met"; none means forever). Without a substatus
  an unresolved issue becomes ongoing. The change goes through
  `status_change_processing.update_group_status`, as a status-change message would,
  and the answer is the issue afterwards; a combination that path refuses is a 400 with
  its reason. `priority` ("low" | "medium" | "high") sets the priority and locks it
  against automatic changes, as Sentry does for a person's choice.
- `GET .../issues/{issue_id}/events/` (newest first, `environment=`, paginated) and
  `.../events/latest/`, `.../events/oldest/`, `.../events/{event_id}/`: each event with
  its occurrence (`evidenceDisplay`, `evidenceData`, ...) and its tags as
  `[{key, value}]`. Events are ordered by their timestamp (the event's own time).

Reading needs `event:read`, `project:read` or `org:read`; `PUT` needs the `:write` of
one of them. An issue of another organization, or none, is a 404.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import Connection, Select, and_, exists, func, or_, select
from sqlalchemy.sql.elements import ColumnElement
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from vigil.api.auth import authorize_request
from vigil.api.http import json_object, read_body, route
from vigil.api.issue_search import (
    DEFAULT_QUERY,
    Field,
    InvalidQuery,
    IssueSearch,
    Sort,
    parse_query,
    parse_sort,
)
from vigil.api.paging import Page, format_date, paginated, parse_page
from vigil.api.query import FieldErrors, field_error_response, time_range
from vigil.api.services import services
from vigil.db.ids import MAX_ID, parse_id
from vigil.db.tables import activity as activity_table
from vigil.db.tables import environment as environment_table
from vigil.db.tables import event as event_table
from vigil.db.tables import group as group_table
from vigil.db.tables import group_environment as group_environment_table
from vigil.db.tables import issue_occurrence as occurrence_table
from vigil.db.tables import project as project_table
from vigil.db.tables import release as release_table
from vigil.issues import short_ids
from vigil.issues.enums import (
    LOG_LEVEL_NAMES,
    PRIORITY_NAMES,
    ActivityType,
    GroupHistoryStatus,
    GroupStatus,
    GroupSubStatus,
    PriorityLevel,
)
from vigil.issues.group_store import add_activity, add_history, get_group, update_group
from vigil.issues.group_types import registry
from vigil.issues.grouping import event_datetime
from vigil.issues.snooze import (
    InvalidSnooze,
    Snooze,
    has_condition,
    snooze_from_details,
)
from vigil.issues.snooze_store import get_snooze, get_snoozes, set_snooze
from vigil.issues.status_change import (
    INVALID_SUBSTATUS,
    MISSING_SUBSTATUS,
    UNEXPECTED_SUBSTATUS,
    NoChange,
)
from vigil.issues.status_change_processing import update_group_status
from vigil.tenancy import store as tenancy
from vigil.tenancy.store import Organization

READ: Final = ("event:read", "project:read", "org:read")
WRITE: Final = ("event:write", "project:write", "org:write")
MAX_PER_PAGE: Final = 100

ORG_ISSUES = "/api/0/organizations/{organization_slug}/issues/"
ORG_ISSUE = ORG_ISSUES + "{issue_id}/"
PROJECT_ISSUES = "/api/0/projects/{organization_slug}/{project_slug}/issues/"

# Statuses an issue listing or lookup shows; deletion and merge states are on their way out.
VISIBLE_STATUSES: Final = (GroupStatus.UNRESOLVED, GroupStatus.RESOLVED, GroupStatus.IGNORED)

_PRIORITY_HISTORY: Final = {
    PriorityLevel.HIGH: GroupHistoryStatus.PRIORITY_HIGH,
    PriorityLevel.MEDIUM: GroupHistoryStatus.PRIORITY_MEDIUM,
    PriorityLevel.LOW: GroupHistoryStatus.PRIORITY_LOW,
}


# --- JSON ------------------------------------------------------------------------------


def _label(enum_type: Any, value: int | None) -> str | None:
    if value is None:
        return None
    try:
        return str(enum_type(value).label)
    except ValueError:
        return None


def snooze_status_details(snooze: Snooze) -> dict[str, Any]:
    """`statusDetails` of an issue ignored until the snooze's condition, as Sentry's."""
    return {
        "ignoreCount": snooze.count,
        "ignoreUntil": format_date(snooze.until),
        "ignoreUserCount": snooze.user_count,
        "ignoreUserWindow": snooze.user_window,
        "ignoreWindow": snooze.window,
        "actor": None,
    }


def _status_details(
    status: int, substatus: int | None, snooze: Snooze | None = None
) -> dict[str, Any]:
    if status == GroupStatus.IGNORED and substatus == GroupSubStatus.UNTIL_ESCALATING:
        return {"ignoreUntilEscalating": True}
    if status == GroupStatus.IGNORED and snooze is not None:
        return snooze_status_details(snooze)
    return {}


def _assigned_to(assignee: str | None) -> dict[str, str] | None:
    if not assignee:
        return None
    kind, _, ident = assignee.partition(":")
    return {"type": kind, "id": ident}


def serialize_issue(row: Any, snooze: Snooze | None = None) -> dict[str, Any]:
    """An issue row (group columns with `project_slug`, `project_name` and
    `first_release_version`) in Sentry's shape; `snooze`, the condition it is ignored
    until, if any."""
    group_type = registry.get_by_id(row.type) if row.type in registry else None
    data = row.data or {}
    release = row.first_release_version
    return {
        "id": str(row.id),
        "shortId": short_ids.qualified(row.project_slug, row.short_id),
        "title": row.title,
        "culprit": row.culprit,
        "level": LOG_LEVEL_NAMES.get(row.level, str(row.level)),
        "status": _label(GroupStatus, row.status),
        "substatus": _label(GroupSubStatus, row.substatus),
        "statusDetails": _status_details(row.status, row.substatus, snooze),
        "priority": PRIORITY_NAMES.get(PriorityLevel(row.priority))
        if row.priority in set(PriorityLevel)
        else None,
        "priorityLocked": bool(row.priority_locked),
        "firstSeen": format_date(row.first_seen),
        "lastSeen": format_date(row.last_seen),
        "count": str(row.times_seen),
        "userCount": 0,
        "numComments": 0,
        "project": {"id": str(row.project_id), "slug": row.project_slug, "name": row.project_name},
        "platform": row.platform,
        "type": data.get("type", "default"),
        "issueType": group_type.slug if group_type else str(row.type),
        "issueCategory": group_type.category.label if group_type else None,
        "metadata": data.get("metadata", {}),
        "firstRelease": None if release is None else {"version": release, "shortVersion": release},
        "assignedTo": _assigned_to(row.assignee),
        "isBookmarked": False,
        "isSubscribed": False,
        "hasSeen": False,
        "isPublic": False,
        "shareId": None,
        "logger": None,
        "annotations": [],
    }


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def serialize_occurrence(data: dict[str, Any]) -> dict[str, Any]:
    """The stored occurrence (its dict form) with camelCase keys at the top level, as
    Sentry shows an event's occurrence; nested evidence is the producer's and kept."""
    return {_camel(key): value for key, value in data.items()}


def event_tags(row: Any) -> list[dict[str, str]]:
    """The event's tags as `[{key, value}]` sorted by key, with `environment`, `level`
    and `release` added from the event when it does not tag them itself, as Sentry's
    normalised events carry them."""
    pairs = {str(k): str(v) for k, v in (row.ev_tags or [])}
    derived = {
        "environment": row.ev_environment,
        "level": row.level if row.ev_event_id else None,
        "release": row.ev_release,
    }
    for key, value in derived.items():
        if value and key not in pairs:
            pairs[key] = str(value)
    return [{"key": key, "value": pairs[key]} for key in sorted(pairs)]


def _received(data: Mapping[str, Any]) -> datetime | None:
    """When the event was received as its producer says (a check-in's time, for crons'
    occurrences), as Sentry shows it; None if it does not say, or not as a time."""
    try:
        return None if data.get("received") is None else event_datetime(data["received"])
    except (ValueError, OverflowError, OSError):
        return None


def serialize_event(row: Any, *, full: bool = False) -> dict[str, Any]:
    """An occurrence row joined to its event (`ev_*` columns, null when the event was
    never stored, as for buffered spans) in Sentry's event shape."""
    event_id = row.ev_event_id or row.event_id
    data: dict[str, Any] = row.ev_data or {}
    body: dict[str, Any] = {
        "id": event_id,
        "eventID": event_id,
        "groupID": None if row.group_id is None else str(row.group_id),
        "projectID": str(row.project_id),
        "title": row.issue_title,
        "message": data.get("message") or row.subtitle,
        "culprit": row.culprit,
        "type": row.ev_type or "generic",
        "platform": row.ev_platform,
        "environment": row.ev_environment,
        "dateCreated": format_date(row.timestamp),
        "dateReceived": format_date(_received(data) or row.ev_received or row.date_added),
        "tags": event_tags(row),
        "user": data.get("user"),
        "occurrence": serialize_occurrence(dict(row.data)),
    }
    if full:
        body.update(
            {
                "release": None if not row.ev_release else {"version": row.ev_release},
                "contexts": data.get("contexts") or {},
                "sdk": data.get("sdk"),
                "metadata": data.get("metadata") or {"title": row.issue_title},
                "fingerprints": list(row.fingerprint),
                "entries": [],
                "errors": [],
            }
        )
    return body


# --- lookups ---------------------------------------------------------------------------


def _issue_select() -> Select[Any]:
    g, p, r = group_table, project_table, release_table
    return (
        select(
            g,
            p.c.slug.label("project_slug"),
            p.c.name.label("project_name"),
            r.c.version.label("first_release_version"),
        )
        .join(p, p.c.id == g.c.project_id)
        .outerjoin(r, r.c.id == g.c.first_release_id)
        .where(g.c.status.in_([int(s) for s in VISIBLE_STATUSES]))
    )


def issue_rows(conn: Connection, group_ids: Sequence[int]) -> dict[int, Any]:
    """The issue rows (as `serialize_issue` takes them) of those groups still visible,
    by id."""
    if not group_ids:
        return {}
    query = _issue_select().where(group_table.c.id.in_(sorted(set(group_ids))))
    return {row.id: row for row in conn.execute(query)}


def find_issue(conn: Connection, org: Organization, issue_id: str) -> Any:
    """The issue row with that id or short id in the organization: 404 otherwise."""
    query = _issue_select().where(project_table.c.organization_id == org.id)
    condition: ColumnElement[bool] | None = None
    if issue_id.isdigit():
        group_id = parse_id(issue_id)  # None beyond 64 bits: no such issue
        if group_id is not None:
            condition = group_table.c.id == group_id
    else:
        parsed = short_ids.parse_qualified(issue_id)
        if parsed is not None and parsed[1] <= MAX_ID:
            condition = and_(project_table.c.slug == parsed[0], group_table.c.short_id == parsed[1])
    row = None if condition is None else conn.execute(query.where(condition)).first()
    if row is None:
        raise HTTPException(404, f"issue {issue_id!r} does not exist")
    return row


def find_project_ids(conn: Connection, org: Organization, wanted: list[str]) -> list[int] | None:
    """The ids of the projects named (slug or id; 404 for one the organization has not
    got); None for all of them (none named, or `-1`)."""
    if not wanted or "-1" in wanted:
        return None
    ids = []
    for slug_or_id in wanted:
        try:
            ids.append(tenancy.get_project(conn, org, slug_or_id).id)
        except tenancy.NotFound:
            raise HTTPException(404, f"project {slug_or_id!r} does not exist") from None
    return ids


def _page(request: Request) -> Page:
    page = parse_page(request)
    raw = request.query_params.get("limit")
    if raw is not None:
        if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_PER_PAGE:
            raise FieldErrors({"limit": [f"limit must be between 1 and {MAX_PER_PAGE}"]})
        page = Page(page.offset, int(raw))
    return page


# --- the listing -----------------------------------------------------------------------

_COLUMNS: Final = {
    Field.STATUS: group_table.c.status,
    Field.SUBSTATUS: group_table.c.substatus,
    Field.TYPE: group_table.c.type,
    Field.PRIORITY: group_table.c.priority,
    Field.LEVEL: group_table.c.level,
}


def _in_environments(names: list[str] | tuple[str, ...]) -> ColumnElement[bool]:
    ge, env = group_environment_table, environment_table
    return exists(
        select(ge.c.group_id)
        .join(env, env.c.id == ge.c.environment_id)
        .where(ge.c.group_id == group_table.c.id, env.c.name.in_(list(names)))
    )


def _issues_in(
    org: Organization, project_ids: list[int] | None, environments: list[str]
) -> Select[Any]:
    """The organization's issues (in `project_ids` unless None; seen in one of
    `environments` when any are named)."""
    query = _issue_select().where(project_table.c.organization_id == org.id)
    if project_ids is not None:
        query = query.where(group_table.c.project_id.in_(project_ids))
    if environments:
        query = query.where(_in_environments(environments))
    return query


def apply_search(query: Select[Any], search: IssueSearch) -> Select[Any]:
    """`query` (over groups) narrowed to the issues `search` matches."""
    g = group_table
    for item in search.filters:
        column = _COLUMNS[item.field]
        values = sorted(item.values)
        if item.negated:
            query = query.where(or_(column.is_(None), column.not_in(values)))
        else:
            query = query.where(column.in_(values))
    for term in search.text:
        query = query.where(func.lower(g.c.title).contains(term.lower(), autoescape=True))
    if search.environments:
        query = query.where(_in_environments(search.environments))
    if search.excluded_environments:
        query = query.where(~_in_environments(search.excluded_environments))
    if not search.names_type:
        hidden = [t.type_id for t in registry if not t.in_default_search]
        if hidden:
            query = query.where(g.c.type.not_in(hidden))
    return query


def _order(query: Select[Any], sort: Sort) -> Select[Any]:
    g = group_table
    if sort is Sort.NEW:
        return query.order_by(g.c.first_seen.desc(), g.c.id.desc())
    if sort is Sort.FREQ:
        return query.order_by(g.c.times_seen.desc(), g.c.id.desc())
    if sort is Sort.PRIORITY:
        return query.order_by(
            func.coalesce(g.c.priority, -1).desc(), g.c.last_seen.desc(), g.c.id.desc()
        )
    return query.order_by(g.c.last_seen.desc(), g.c.id.desc())


def list_issues(request: Request) -> Response:
    svc = services(request)
    with svc.reading() as conn:
        access = authorize_request(conn, request, READ)
        params = request.query_params
        try:
            page = _page(request)
            raw_query = params.get("query", DEFAULT_QUERY)
            search = parse_query(raw_query)
            sort = parse_sort(params.get("sort"))
            since, until = time_range(request, datetime.now(UTC))
        except FieldErrors as exc:
            return field_error_response(exc.errors)
        except InvalidQuery as exc:
            return JSONResponse({"detail": str(exc)}, status_code=400)
        org = access.organization
        wanted_projects = params.getlist("project")
        if "project_slug" in request.path_params:
            wanted_projects = [request.path_params["project_slug"]]
        project_ids = find_project_ids(conn, org, wanted_projects)
        query = _issues_in(org, project_ids, params.getlist("environment"))
        if since is not None:
            query = query.where(group_table.c.last_seen >= since)
        if until is not None:
            query = query.where(group_table.c.last_seen <= until)
        query = apply_search(query, search)
        hits = conn.execute(select(func.count()).select_from(query.subquery())).scalar_one()
        query = _order(query, sort)
        rows = conn.execute(query.offset(page.offset).limit(page.per_page + 1)).all()
        snoozes = get_snoozes(conn, [r.id for r in rows if r.status == GroupStatus.IGNORED])
    body = [serialize_issue(r, snoozes.get(r.id)) for r in rows]
    response = paginated(request, page, rows, body)
    # Sentry's count of all the issues the search matches, across pages.
    response.headers["X-Hits"] = str(hits)
    return response


# --- one issue -------------------------------------------------------------------------


def issue_activity(conn: Connection, row: Any) -> list[dict[str, Any]]:
    """The issue's activity, newest first, ending with the `first_seen` entry Sentry
    shows for its creation. Types are Sentry's names (`set_resolved`, `set_ignored`,
    `set_regression`, `set_escalating`, `set_priority`, ...)."""
    found = conn.execute(
        select(activity_table)
        .where(activity_table.c.group_id == row.id)
        .order_by(activity_table.c.datetime.desc(), activity_table.c.id.desc())
    ).all()
    entries = [
        {
            "id": str(a.id),
            "type": _activity_name(a.type),
            "data": a.data or {},
            "dateCreated": format_date(a.datetime),
            "user": None,
        }
        for a in found
    ]
    entries.append(
        {
            "id": f"{row.id}-first-seen",
            "type": "first_seen",
            "data": {},
            "dateCreated": format_date(row.first_seen),
            "user": None,
        }
    )
    return entries


def _activity_name(value: int) -> str:
    try:
        return ActivityType(value).name.lower()
    except ValueError:
        return str(value)


def serialize_issue_details(conn: Connection, row: Any) -> dict[str, Any]:
    """One issue as its own endpoint shows it: the listing's fields and its activity."""
    snooze = get_snooze(conn, row.id) if row.status == GroupStatus.IGNORED else None
    return {**serialize_issue(row, snooze), "activity": issue_activity(conn, row)}


def get_issue(request: Request) -> Response:
    svc = services(request)
    with svc.reading() as conn:
        access = authorize_request(conn, request, READ)
        row = find_issue(conn, access.organization, request.path_params["issue_id"])
        body = serialize_issue_details(conn, row)
    return JSONResponse(body)


@dataclass(frozen=True)
class StatusRequest:
    """The status and substatus a PUT asks for, and the `statusDetails` of an ignore
    until a condition is met."""

    status: GroupStatus
    substatus: GroupSubStatus | None
    condition: Mapping[str, Any] | None = None


PUT_STATUS_NAMES: Final = {  # the statuses a PUT may ask for
    "resolved": GroupStatus.RESOLVED,
    "unresolved": GroupStatus.UNRESOLVED,
    "ignored": GroupStatus.IGNORED,
    "muted": GroupStatus.IGNORED,  # its older name, still sent by sentry-cli
}
# Asked by `sentry-cli issues resolve --next-release`: refused, as resolving in a
# release is (vigil knows no deploys, so no release comes "next").
IN_NEXT_RELEASE: Final = "resolvedInNextRelease"
# The most issues one bulk change selected by a search changes, as Sentry's.
BULK_MUTATION_LIMIT: Final = 1000


def parse_status_request(body: dict[str, Any]) -> StatusRequest | None:
    """The status change a PUT body asks for (None when it names no `status`);
    FieldErrors for values that are not a status, substatus or status details."""
    if "status" not in body:
        if "substatus" in body or "statusDetails" in body:
            raise FieldErrors({"status": ["status is required with substatus or statusDetails"]})
        return None
    raw = body["status"]
    if raw == IN_NEXT_RELEASE:
        raise FieldErrors({"status": ["resolving in the next release is not supported"]})
    if not isinstance(raw, str) or raw not in PUT_STATUS_NAMES:
        raise FieldErrors({"status": [f'"{raw}" is not a valid choice.']})
    status = PUT_STATUS_NAMES[raw]
    details = body.get("statusDetails") or {}
    if not isinstance(details, dict):
        raise FieldErrors({"statusDetails": ["statusDetails must be an object"]})
    substatus: GroupSubStatus | None = None
    raw_sub = body.get("substatus")
    if raw_sub is not None:
        if not isinstance(raw_sub, str):
            raise FieldErrors({"substatus": [f'"{raw_sub}" is not a valid choice.']})
        try:
            substatus = GroupSubStatus.from_label(raw_sub)
        except ValueError:
            raise FieldErrors({"substatus": [f'"{raw_sub}" is not a valid choice.']}) from None
    elif status == GroupStatus.UNRESOLVED:
        substatus = GroupSubStatus.ONGOING
    elif status == GroupStatus.IGNORED:
        if details.get("ignoreUntilEscalating"):
            substatus = GroupSubStatus.UNTIL_ESCALATING
        elif has_condition(details):
            substatus = GroupSubStatus.UNTIL_CONDITION_MET
        else:
            substatus = GroupSubStatus.FOREVER
    if status == GroupStatus.RESOLVED and any(
        key in details for key in ("inRelease", "inNextRelease", "inCommit", "inUpcomingRelease")
    ):
        raise FieldErrors(
            {"statusDetails": ["resolving in a release or a commit is not supported"]}
        )
    condition = None
    if substatus == GroupSubStatus.UNTIL_CONDITION_MET and has_condition(details):
        try:  # checked now, so that nothing is written for a request refused later
            snooze_from_details(details, now=datetime.now(UTC), times_seen=0)
        except InvalidSnooze as exc:
            raise FieldErrors({"statusDetails": [exc.message]}) from None
        condition = details
    return StatusRequest(status, substatus, condition)


def refusal_reason(log_name: str, wanted: StatusRequest) -> str:
    """Why the status-change path refused `wanted`, for the client."""
    status = wanted.status.label
    substatus = wanted.substatus.label if wanted.substatus is not None else None
    if log_name == MISSING_SUBSTATUS:
        return f"status {status!r} needs a substatus ({log_name})"
    if log_name == UNEXPECTED_SUBSTATUS:
        return f"status {status!r} takes no substatus, not {substatus!r} ({log_name})"
    if log_name == INVALID_SUBSTATUS:
        return f"substatus {substatus!r} is not valid with status {status!r} ({log_name})"
    return log_name


def _priority(body: dict[str, Any]) -> PriorityLevel | None:
    if "priority" not in body:
        return None
    raw = body["priority"]
    if isinstance(raw, str):
        try:
            return PriorityLevel.from_label(raw)
        except ValueError:
            pass
    raise FieldErrors({"priority": [f'"{raw}" is not a valid choice.']})


def _set_priority(conn: Connection, group_id: int, priority: PriorityLevel) -> None:
    grp = get_group(conn, group_id, for_update=True)
    assert grp is not None
    now = datetime.now(UTC)
    if grp.priority != priority:
        add_activity(
            conn,
            grp,
            ActivityType.SET_PRIORITY,
            {"priority": priority.label, "reason": "user"},
            now,
        )
        add_history(conn, grp, _PRIORITY_HISTORY[priority], now)
    update_group(conn, group_id, priority=int(priority), priority_locked=True)


class Refused(Exception):
    """A change the status-change path refused: the transaction is rolled back and the
    client gets a 400 with the reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def response(self) -> JSONResponse:
        return JSONResponse({"detail": self.reason, "substatus": [self.reason]}, status_code=400)


def _unassigns(body: dict[str, Any]) -> bool:
    """Whether the PUT takes the issue's assignee away (`assignedTo` null or ""). Anyone
    else is a 400: vigil has no users or teams to assign to (an occurrence's assignee is
    one resolved by the producer), and a 200 would say the assignment was made."""
    if "assignedTo" not in body:
        return False
    if body["assignedTo"] in (None, ""):
        return True
    raise FieldErrors(
        {"assignedTo": ["vigil has no users or teams to assign to: only null unassigns"]}
    )


def _unassign(conn: Connection, group_id: int) -> None:
    grp = get_group(conn, group_id, for_update=True)
    assert grp is not None
    if grp.assignee is not None:
        update_group(conn, group_id, assignee=None)
        add_activity(conn, grp, ActivityType.UNASSIGNED, {}, datetime.now(UTC))


def apply_changes(
    conn: Connection,
    group_id: int,
    wanted: StatusRequest | None,
    priority: PriorityLevel | None,
    unassign: bool = False,
) -> None:
    """Apply a PUT's status change (through the status-change path), priority and
    unassignment to one issue; Refused, with the rule's reason, for a combination that
    path refuses."""
    if wanted is not None:
        substatus = None if wanted.substatus is None else int(wanted.substatus)
        # A refusal is the client's 400, not an error of the server's.
        decision = update_group_status(
            conn, group_id, int(wanted.status), substatus, refusal_level=logging.INFO
        )
        if isinstance(decision, NoChange) and decision.log_name is not None:
            raise Refused(refusal_reason(decision.log_name, wanted))
        if wanted.condition is not None:
            # Also when it was already ignored until a condition: the new one replaces it.
            grp = get_group(conn, group_id)
            assert grp is not None
            now = datetime.now(UTC)
            snooze = snooze_from_details(wanted.condition, now=now, times_seen=grp.times_seen)
            set_snooze(conn, group_id, snooze, now)
    if priority is not None:
        _set_priority(conn, group_id, priority)
    if unassign:
        _unassign(conn, group_id)


def _parse_changes(
    body: dict[str, Any],
) -> tuple[StatusRequest | None, PriorityLevel | None, bool]:
    return parse_status_request(body), _priority(body), _unassigns(body)


async def update_issue(request: Request) -> Response:
    svc = services(request)
    body = json_object(await read_body(request, svc.settings.max_message_bytes))

    def write() -> Response:
        try:
            with svc.writing() as conn:
                access = authorize_request(conn, request, WRITE)
                row = find_issue(conn, access.organization, request.path_params["issue_id"])
                wanted, priority, unassign = _parse_changes(body)
                apply_changes(conn, row.id, wanted, priority, unassign)
                updated = find_issue(conn, access.organization, str(row.id))
                body_out = serialize_issue_details(conn, updated)
        except FieldErrors as exc:
            return field_error_response(exc.errors)
        except Refused as exc:
            return exc.response()
        return JSONResponse(body_out)

    return await run_in_threadpool(write)


def _bulk_selection(conn: Connection, request: Request, org: Organization) -> list[Any]:
    """The issues a bulk change is for: those named by `id=` (repeatable; each must be
    the organization's, and the path's project's on a project path), else up to
    BULK_MUTATION_LIMIT that the search finds: `status=` (`unresolved`, `resolved`,
    `ignored` or `muted`), else `query=` (default `is:unresolved`), in `project=` or the
    path's project, and `environment=`."""
    params = request.query_params
    path_project = request.path_params.get("project_slug")
    project_ids = find_project_ids(
        conn, org, [path_project] if path_project else params.getlist("project")
    )
    wanted_ids = params.getlist("id")
    if wanted_ids:
        rows = [find_issue(conn, org, i) for i in wanted_ids]
        if project_ids is not None:
            for row in rows:
                if row.project_id not in project_ids:
                    raise HTTPException(404, f"issue {row.id} is not in project {path_project!r}")
        return rows
    status = params.get("status")
    if status is not None:
        if status not in PUT_STATUS_NAMES:
            raise FieldErrors({"status": [f'"{status}" is not a valid choice.']})
        raw_query = f"is:{PUT_STATUS_NAMES[status].label}"
    else:
        raw_query = params.get("query", DEFAULT_QUERY)
    try:
        search = parse_query(raw_query)
    except InvalidQuery as exc:
        raise FieldErrors({"query": [str(exc)]}) from None
    query = _issues_in(org, project_ids, params.getlist("environment"))
    query = apply_search(query, search).order_by(group_table.c.id).limit(BULK_MUTATION_LIMIT)
    return list(conn.execute(query).all())


async def bulk_update_issues(request: Request) -> Response:
    """Sentry's bulk mutation (`sentry-cli issues resolve|mute|unresolve`), for the
    issues `_bulk_selection` finds: all of them change or, if one is refused, none. The
    answer is the change applied, as Sentry's; 204 when no issue was selected."""
    svc = services(request)
    body = json_object(await read_body(request, svc.settings.max_message_bytes))

    def write() -> Response:
        try:
            with svc.writing() as conn:
                access = authorize_request(conn, request, WRITE)
                wanted, priority, unassign = _parse_changes(body)
                rows = _bulk_selection(conn, request, access.organization)
                if not rows:
                    return Response(status_code=204)
                # In id order, so that two bulk changes lock their groups in the same
                # order and never deadlock (PostgreSQL).
                for row in sorted(rows, key=lambda r: int(r.id)):
                    apply_changes(conn, row.id, wanted, priority, unassign)
        except FieldErrors as exc:
            return field_error_response(exc.errors)
        except Refused as exc:
            return exc.response()
        result: dict[str, Any] = {}
        if wanted is not None:
            substatus = None if wanted.substatus is None else int(wanted.substatus)
            asked = (
                None
                if wanted.condition is None
                else snooze_from_details(wanted.condition, now=datetime.now(UTC), times_seen=0)
            )
            result.update(
                status=wanted.status.label,
                substatus=_label(GroupSubStatus, substatus),
                statusDetails=_status_details(int(wanted.status), substatus, asked),
            )
        if priority is not None:
            result["priority"] = priority.label
        if unassign:
            result["assignedTo"] = None
        return JSONResponse(result)

    return await run_in_threadpool(write)


# --- events ----------------------------------------------------------------------------


def event_columns() -> Select[Any]:
    """The occurrence's columns and its event's, as `ev_*`: what `serialize_event`
    reads (the caller joins the two tables)."""
    ev = event_table
    return select(
        occurrence_table,
        ev.c.event_id.label("ev_event_id"),
        ev.c.type.label("ev_type"),
        ev.c.timestamp.label("ev_timestamp"),
        ev.c.received.label("ev_received"),
        ev.c.platform.label("ev_platform"),
        ev.c.environment.label("ev_environment"),
        ev.c.release.label("ev_release"),
        ev.c.tags.label("ev_tags"),
        ev.c.data.label("ev_data"),
    )


def _events_select(group_id: int) -> Select[Any]:
    io, ev = occurrence_table, event_table
    return (
        event_columns()
        .select_from(
            io.outerjoin(
                ev, and_(ev.c.project_id == io.c.project_id, ev.c.event_id == io.c.event_id)
            )
        )
        .where(io.c.group_id == group_id)
    )


def list_events(request: Request) -> Response:
    svc = services(request)
    with svc.reading() as conn:
        access = authorize_request(conn, request, READ)
        issue = find_issue(conn, access.organization, request.path_params["issue_id"])
        try:
            page = _page(request)
        except FieldErrors as exc:
            return field_error_response(exc.errors)
        query = _events_select(issue.id)
        environments = request.query_params.getlist("environment")
        if environments:
            query = query.where(event_table.c.environment.in_(environments))
        io = occurrence_table
        rows = conn.execute(
            query.order_by(io.c.timestamp.desc(), io.c.id.desc())
            .offset(page.offset)
            .limit(page.per_page + 1)
        ).all()
    full = request.query_params.get("full") in ("1", "true")
    return paginated(request, page, rows, [serialize_event(r, full=full) for r in rows])


def _one_event(request: Request, which: str) -> Response:
    svc = services(request)
    with svc.reading() as conn:
        access = authorize_request(conn, request, READ)
        issue = find_issue(conn, access.organization, request.path_params["issue_id"])
        io = occurrence_table
        query = _events_select(issue.id)
        environments = request.query_params.getlist("environment")
        if environments and which in ("latest", "oldest"):
            # as Sentry: the newest (oldest) of the events in these environments
            query = query.where(event_table.c.environment.in_(environments))
        if which == "oldest":
            query = query.order_by(io.c.timestamp.asc(), io.c.id.asc())
        else:
            query = query.order_by(io.c.timestamp.desc(), io.c.id.desc())
            if which != "latest":
                query = query.where(
                    or_(io.c.event_id == which.replace("-", "").lower(), io.c.id == which)
                )
        row = conn.execute(query.limit(1)).first()
    if row is None:
        raise HTTPException(404, f"event {which!r} does not exist")
    return JSONResponse(serialize_event(row, full=True))


def latest_event(request: Request) -> Response:
    return _one_event(request, "latest")


def oldest_event(request: Request) -> Response:
    return _one_event(request, "oldest")


def get_event(request: Request) -> Response:
    return _one_event(request, request.path_params["event_id"])


# --- routes ----------------------------------------------------------------------------


def routes() -> list[BaseRoute]:
    return [
        *route(ORG_ISSUES, list_issues, ["GET"]),
        *route(ORG_ISSUES, bulk_update_issues, ["PUT"]),
        *route(PROJECT_ISSUES, list_issues, ["GET"]),
        *route(PROJECT_ISSUES, bulk_update_issues, ["PUT"]),
        *route(ORG_ISSUE, get_issue, ["GET"]),
        *route(ORG_ISSUE, update_issue, ["PUT"]),
        *route(ORG_ISSUE + "events/", list_events, ["GET"]),
        *route(ORG_ISSUE + "events/latest/", latest_event, ["GET"]),
        *route(ORG_ISSUE + "events/oldest/", oldest_event, ["GET"]),
        *route(ORG_ISSUE + "events/{event_id}/", get_event, ["GET"]),
    ]
