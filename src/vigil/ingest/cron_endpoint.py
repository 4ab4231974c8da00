"""The crons HTTP endpoint: `GET|POST /api/{project_id}/cron/{monitor_slug}/{sentry_key}/`
and `/api/{project_id}/cron/{monitor_slug}/` (trailing slash optional on both), for jobs
that check in with `curl` rather than an SDK.

- The DSN public key is the path's last segment or, without it, comes from the usual
  places (`X-Sentry-Auth`, `Authorization: Basic base64("<key>:")`, `?sentry_key=`).
- With a `Content-Type` of `application/json` and a body, the body is a full check-in
  (status, check_in_id, environment, duration, monitor_config, contexts) whose monitor
  slug is the path's. Otherwise the query parameters `status` (required),
  `check_in_id`, `environment` and `duration` are the check-in.
- The check-in is normalised as an envelope's is (`check_in_item`) and written to
  `ingest-monitors` (sdk = the client's `sentry_client`, else "relay-http") before the
  answer.

Answers: 202 with an empty body once the log has the check-in (never 429: limits are
applied by the consumer, which records what it refuses where the user sees it); 400 for
a check-in that cannot be one, with the reason; 401 / 403 for missing, unknown, disabled
or foreign keys; 413 over `max_message_bytes`; 415 for an unknown Content-Encoding of a
JSON body; 503 when the log cannot take it (never 500).
"""

from __future__ import annotations

import logging
import time

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from vigil.api.http import decoded, read_body, route
from vigil.api.services import services
from vigil.ingest.auth import (
    IngestAuthError,
    PresentedKey,
    authenticate,
    client_name,
    presented_key,
)
from vigil.ingest.check_in_item import (
    EdgeCheckIn,
    InvalidCheckIn,
    check_in_from_body,
    check_in_from_query,
)
from vigil.ingest.envelope import monitor_quota
from vigil.ingest.items import monitor_write
from vigil.ingest.log_writer import write_for_client
from vigil.tenancy.credentials import parse_sentry_auth

log = logging.getLogger(__name__)

# The `sdk` of a check-in whose client does not name itself (Relay's value).
DEFAULT_CLIENT = "relay-http"
MISSING_KEY = (
    "missing DSN key: put it in the path (/api/{project_id}/cron/{monitor_slug}/{public key}/), "
    'or send Authorization: Basic base64("<public key>:"), X-Sentry-Auth, or ?sentry_key='
)


async def cron_endpoint(request: Request) -> Response:
    received_at = time.time()
    svc = services(request)
    project_id: int = request.path_params["project_id"]
    limit = svc.settings.max_message_bytes
    body = await read_body(request, limit)
    try:
        presented = presented_key(
            path_key=request.path_params.get("sentry_key"),
            x_sentry_auth=request.headers.get("x-sentry-auth"),
            authorization=request.headers.get("authorization"),
            query_key=request.query_params.get("sentry_key"),
            query_client=request.query_params.get("sentry_client"),
        )
        if presented is None:
            raise IngestAuthError(401, MISSING_KEY)
        await authenticate(svc.keys, presented, project_id)
    except IngestAuthError as exc:
        raise HTTPException(exc.status, exc.detail) from None

    check_in = _check_in(request, body, limit)
    write = monitor_write(
        check_in,
        project_id=project_id,
        sdk=_client(request, presented),
        received_at=received_at,
    )
    await write_for_client(svc.monitor_log, [write], what="check-in", project_id=project_id)
    # Counted in the project's quota (B11), so a flood of both kinds is seen; never refused.
    monitor_quota(request).record(project_id, 1)
    return Response(status_code=202)


def _check_in(request: Request, body: bytes, limit: int) -> EdgeCheckIn:
    """The request's check-in: from a JSON body when it has one, else from the query."""
    slug: str = request.path_params["monitor_slug"]
    content_type = request.headers.get("content-type", "").strip().lower()
    try:
        if content_type.startswith("application/json") and body:
            return check_in_from_body(decoded(request, body, limit), slug)
        return check_in_from_query(slug, request.query_params)
    except InvalidCheckIn as exc:
        log.info(
            "crons endpoint: check-in refused",
            extra={
                "project_id": request.path_params["project_id"],
                "reason": exc.reason.value,
                "detail": str(exc),
            },
        )
        raise HTTPException(400, f"invalid check-in: {exc}") from None


def _client(request: Request, presented: PresentedKey) -> str:
    """The `sentry_client` the request names (also when the key is in the path), else
    DEFAULT_CLIENT. The User-Agent (curl's, a browser's) is not a client name here."""
    client = presented.client
    if client is None:
        auth = request.headers.get("x-sentry-auth")
        client = parse_sentry_auth(auth).get("sentry_client") if auth else None
        client = client or request.query_params.get("sentry_client")
    named = PresentedKey(presented.public_key, presented.source, client)
    return client_name(named, None) or DEFAULT_CLIENT


def routes() -> list[BaseRoute]:
    methods = ["GET", "POST"]
    return [
        *route("/api/{project_id:int}/cron/{monitor_slug}/{sentry_key}/", cron_endpoint, methods),
        *route("/api/{project_id:int}/cron/{monitor_slug}/", cron_endpoint, methods),
    ]
