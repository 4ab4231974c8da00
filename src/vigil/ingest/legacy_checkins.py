"""Sentry's deprecated check-in API, for the clients that still use it: `sentry-cli`
before 2.19 (`monitors run`), and later 2.x ones configured with an auth token instead of
a DSN. Without it those wrappers get a 404: the job runs, no check-in is recorded, and
the wrapper fails with "resource not found" whatever the job did.

- `POST /api/0/monitors/{monitor}/checkins/` starts or records a run, `PUT
  /api/0/monitors/{monitor}/checkins/{check_in_id}/` finishes it (`latest`: the
  monitor environment's latest in-progress run); the same under
  `/api/0/organizations/{organization_slug}/monitors/{monitor}/checkins/`. `{monitor}`
  is the monitor's slug or its id (the UUID the monitors API calls `id`, which the
  oldest CLIs took).
- Credentials: `Authorization: DSN <dsn>` (the DSN's project; its key must be active)
  or `Authorization: Bearer <token>` with `project:write` or `event:write` (the token's
  organization). Under an organization's path, the DSN's project must be in it.
- Body: `status` (`in_progress`, `ok` or `error`; required), `environment` (default
  `production`), `duration` (whole milliseconds, as this API always took it), and with a
  DSN also `monitor_config`, which creates the monitor when there is none (as the
  envelope's check-ins do).
- The monitor must exist (404 otherwise, unless the POST creates it): a wrapper that
  names a monitor nobody created learns it at once.

The check-in becomes the same `ingest-monitors` message an envelope's would (so the
consumer applies it, records what it refuses as the monitor's processing errors, and
counts it in the project's quota), and the answer comes once the log has it: `201`
(POST) or `200` (PUT) with the check-in as this API returned it, `{id, status, duration,
environment, dateCreated}`; the POST's `id` is the new run's, for the PUT. A PUT is not
checked against stored check-ins: the POST before it may not be applied yet.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlsplit

from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from vigil.api.auth import bearer_token, check_access, check_token
from vigil.api.http import decoded, json_object, read_body, route
from vigil.api.paging import format_date
from vigil.api.query import FieldErrors, field_error_response
from vigil.api.services import services
from vigil.ingest.auth import IngestAuthError, PresentedKey, authenticate, key_from_dsn
from vigil.ingest.check_in_item import (
    CLIENT_STATUSES,
    MAX_ENVIRONMENT_LENGTH,
    NIL_CHECK_IN_ID,
    InvalidCheckIn,
    normalise_check_in,
)
from vigil.ingest.envelope import monitor_quota
from vigil.ingest.items import monitor_write
from vigil.ingest.log_writer import write_for_client
from vigil.monitors import store as monitors
from vigil.monitors.enums import ObjectStatus
from vigil.monitors.models import Monitor
from vigil.tenancy import store as tenancy
from vigil.tenancy.store import Organization
from vigil.uuid_text import parse_uuid_hex, uuid_hex

log = logging.getLogger(__name__)

MONITOR_CHECKINS: Final = "/api/0/monitors/{monitor_slug}/checkins/"
ORG_MONITOR_CHECKINS: Final = (
    "/api/0/organizations/{organization_slug}/monitors/{monitor_slug}/checkins/"
)
SCOPES: Final = ("project:write", "event:write")
DEFAULT_ENVIRONMENT: Final = "production"
LATEST: Final = "latest"
# The largest duration this API stored (a positive 32-bit integer of milliseconds).
MAX_DURATION_MS: Final = 2**31 - 1
# The `sdk` of a check-in whose client sent no User-Agent.
DEFAULT_CLIENT: Final = "sentry-cli"
NO_CREDENTIALS: Final = (
    "authentication credentials were not provided: send Authorization: DSN <dsn> "
    "or Authorization: Bearer <token>"
)
_GONE: Final = frozenset({ObjectStatus.PENDING_DELETION, ObjectStatus.DELETION_IN_PROGRESS})


@dataclass(frozen=True)
class LegacyCheckIn:
    """A request's check-in, checked: what the answer and the log message are made of."""

    status: str
    environment: str
    duration_ms: int | None
    monitor_config: Any


def parse_body(body: dict[str, Any], *, creating: bool) -> LegacyCheckIn:
    """The check-in of a POST (`creating`) or PUT body; FieldErrors with each field's
    reason, in Sentry's shape."""
    errors: dict[str, list[str]] = {}
    status = body.get("status")
    if status is None:
        errors["status"] = ["This field is required."]
    elif not isinstance(status, str) or status not in CLIENT_STATUSES:
        errors["status"] = [f"{status!r} is not a valid choice: in_progress, ok or error."]
    environment = body.get("environment")
    if environment is None or environment == "":
        environment = DEFAULT_ENVIRONMENT
    elif not isinstance(environment, str) or len(environment) > MAX_ENVIRONMENT_LENGTH:
        errors["environment"] = [
            f"Must be a string of at most {MAX_ENVIRONMENT_LENGTH} characters."
        ]
    duration = body.get("duration")
    if duration is not None and not (
        isinstance(duration, int)
        and not isinstance(duration, bool)
        and 0 <= duration <= MAX_DURATION_MS
    ):
        errors["duration"] = [f"Must be whole milliseconds, from 0 to {MAX_DURATION_MS}."]
    config = body.get("monitor_config")
    if config is not None and not creating:
        errors["monitor_config"] = ["Only a POST may carry a monitor_config."]
    if errors:
        raise FieldErrors(errors)
    assert isinstance(status, str) and isinstance(environment, str)
    return LegacyCheckIn(status, environment, duration, config)


def dsn_project_id(dsn: str) -> int | None:
    """The project id of a DSN (its path's last segment), or None if it has none."""
    try:
        path = urlsplit(dsn).path
    except ValueError:
        return None
    last = path.rstrip("/").rpartition("/")[2]
    return int(last) if last.isascii() and last.isdigit() and len(last) <= 18 else None


@dataclass(frozen=True)
class Credentials:
    """What a request presents: a DSN whose key is admitted for `project_id`, or an API
    token (`secret`), not yet looked up."""

    project_id: int | None
    secret: str | None


@dataclass(frozen=True)
class Caller:
    """Whom a request may write for: one project (a DSN) or an organization (a token)."""

    organization_id: int
    project_id: int | None


async def _credentials(request: Request) -> Credentials:
    """The request's DSN (its key checked from the key cache, as ingest checks keys) or
    token; 401/403 otherwise."""
    header = (request.headers.get("authorization") or "").strip()
    scheme, _, rest = header.partition(" ")
    if scheme.lower() == "dsn":
        dsn = rest.strip()
        key, project_id = key_from_dsn(dsn), dsn_project_id(dsn)
        if key is None or project_id is None:
            raise HTTPException(401, "Authorization: DSN must carry a DSN with a key and project")
        try:
            await authenticate(
                services(request).keys, PresentedKey(key, "authorization"), project_id
            )
        except IngestAuthError as exc:
            raise HTTPException(exc.status, exc.detail) from None
        return Credentials(project_id, None)
    secret = bearer_token(header)
    if secret is None:
        raise HTTPException(401, NO_CREDENTIALS)
    return Credentials(None, secret)


def _caller(conn: Connection, credentials: Credentials, org_slug: str | None) -> Caller:
    """Whom the credentials write for, in the organization of the path when it names
    one: 403 for another organization's DSN or a token without access or scope."""
    if credentials.project_id is not None:
        project = tenancy.get_project_by_id(conn, credentials.project_id)
        if project is None:
            raise HTTPException(401, "unknown DSN key")
        organization = tenancy.get_organization_by_id(conn, project.organization_id)
        if org_slug is not None and organization.slug != org_slug:
            raise HTTPException(403, f"the DSN's project is not in organization {org_slug!r}")
        return Caller(organization.id, project.id)
    assert credentials.secret is not None
    token = check_token(tenancy.find_token(conn, credentials.secret))
    found: Organization | None
    if org_slug is None:
        found = tenancy.get_organization_by_id(conn, token.organization_id)
        org_slug = found.slug
    else:
        try:
            found = tenancy.get_organization(conn, org_slug)
        except tenancy.NotFound:
            found = None
    return Caller(check_access(token, found, org_slug, SCOPES).id, None)


def find_monitor(conn: Connection, caller: Caller, name: str) -> Monitor | None:
    """The caller's monitor named `name`: by id when it is a UUID that is one, else by
    slug; None when there is none (or it is being deleted)."""
    found: Monitor | None = None
    guid = parse_uuid_hex(name)
    if guid is not None:
        found = monitors.get_monitor_by_guid(conn, uuid.UUID(guid), caller.organization_id)
        if found is not None and caller.project_id not in (None, found.project_id):
            found = None
    if found is None:
        if caller.project_id is not None:
            found = monitors.get_monitor(conn, caller.project_id, name)
        else:
            found = monitors.get_organization_monitor(conn, caller.organization_id, name)
    if found is None or found.status in _GONE:
        return None
    return found


def _check_in_id(request: Request) -> str:
    raw: str | None = request.path_params.get("check_in_id")
    if raw is None:
        return uuid.uuid4().hex
    if raw == LATEST:
        return NIL_CHECK_IN_ID
    try:
        return uuid_hex(raw)
    except ValueError:
        raise HTTPException(400, "check_in_id must be a UUID or 'latest'") from None


async def legacy_check_in(request: Request) -> Response:
    received_at = time.time()
    svc = services(request)
    creating = request.method == "POST"
    limit = svc.settings.max_message_bytes
    body = json_object(decoded(request, await read_body(request, limit), limit))
    credentials = await _credentials(request)
    name: str = request.path_params["monitor_slug"]

    def lookup() -> tuple[Caller, Monitor | None]:
        # One read (and one thread hop) for whom the request writes for and its monitor.
        with svc.reading() as conn:
            caller = _caller(conn, credentials, request.path_params.get("organization_slug"))
            return caller, find_monitor(conn, caller, name)

    caller, monitor = await run_in_threadpool(lookup)
    try:
        check_in = parse_body(body, creating=creating)
    except FieldErrors as exc:
        return field_error_response(exc.errors)
    check_in_id = _check_in_id(request)
    upsert = creating and check_in.monitor_config is not None and caller.project_id is not None
    if monitor is None and not upsert:
        raise HTTPException(404, f"monitor {name!r} does not exist")
    project_id = monitor.project_id if monitor is not None else caller.project_id
    assert project_id is not None
    wire: dict[str, Any] = {
        "check_in_id": check_in_id,
        "monitor_slug": monitor.slug if monitor is not None else name,
        "status": check_in.status,
        "environment": check_in.environment,
    }
    if check_in.duration_ms is not None:
        wire["duration"] = check_in.duration_ms / 1000
    if check_in.monitor_config is not None:
        wire["monitor_config"] = check_in.monitor_config
    try:
        edge = normalise_check_in(wire)
    except InvalidCheckIn as exc:
        raise HTTPException(400, f"invalid check-in: {exc}") from None
    sdk = (request.headers.get("user-agent") or DEFAULT_CLIENT)[:200]
    write = monitor_write(edge, project_id=project_id, sdk=sdk, received_at=received_at)
    await write_for_client(svc.monitor_log, [write], what="check-in", project_id=project_id)
    monitor_quota(request).record(project_id, 1)
    answer = {
        "id": str(uuid.UUID(check_in_id)),
        "status": check_in.status,
        "duration": check_in.duration_ms,
        "environment": check_in.environment,
        "dateCreated": format_date(datetime.fromtimestamp(received_at, UTC)),
    }
    return JSONResponse(answer, status_code=201 if creating else 200)


def routes() -> list[BaseRoute]:
    found: list[BaseRoute] = []
    for base in (MONITOR_CHECKINS, ORG_MONITOR_CHECKINS):
        found += route(base, legacy_check_in, ["POST"])
        found += route(base + "{check_in_id}/", legacy_check_in, ["PUT"])
    return found
