"""`POST /api/{project_id}/envelope/`: Sentry envelopes, as sentry-sdk and sentry-cli
send them.

Answers (see `spec/clients.md` for how clients react):

- 200 `{"id": "<event_id>"}` (`{}` when the envelope header has none) once every valid
  check-in is acknowledged by the log. Items that are not check-ins, and check-ins that
  cannot be one, are accepted and dropped, with a metric and a log line, as Relay does;
- 400 for a body that is not an envelope (or not valid data of its Content-Encoding),
  401 / 403 for missing, unknown, disabled or foreign DSN keys, 413 for a body over
  `max_message_bytes` (compressed or decompressed) or an envelope any of whose check-ins
  makes a message over it (the reason names the item; nothing of the envelope is written
  nor counted in the quota: every message's size is checked before the first is
  written), 415 for an unknown Content-Encoding;
- 429 with `X-Sentry-Rate-Limits: <secs>:monitor:project` only when the project floods
  (over its check-in quota, `monitor_quota`), so the SDK holds back check-ins and nothing
  else; never a bare 429, which would make the SDK drop everything for a minute;
- 503 when the log cannot take the check-ins: never 500.
"""

from __future__ import annotations

import logging
import time

from sqlalchemy import Engine, func, select
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from vigil import metrics
from vigil.api.http import error_response, read_body, route, route_name
from vigil.api.services import services
from vigil.db.tables import monitor, monitor_environment
from vigil.ingest.auth import (
    MISSING,
    IngestAuthError,
    PresentedKey,
    authenticate,
    client_name,
    key_from_dsn,
    presented_key,
)
from vigil.ingest.content_encoding import (
    BodyTooLarge,
    CorruptBody,
    UnsupportedEncoding,
    decode_body,
)
from vigil.ingest.envelope_format import Envelope, EnvelopeError, parse_envelope
from vigil.ingest.items import UNSUPPORTED_TYPE, DroppedItem, MonitorWrite, plan_envelope
from vigil.ingest.log_writer import WriteTooLarge, write_for_client
from vigil.ingest.monitor_quota import RATE_LIMITS_HEADER, MonitorQuota, rate_limits_value

log = logging.getLogger(__name__)

ENVELOPE_PATH = "/api/{project_id:int}/envelope/"
ENVELOPE_ROUTE = route_name(ENVELOPE_PATH)  # as metrics name it


async def envelope_endpoint(request: Request) -> Response:
    received_at = time.time()
    svc = services(request)
    project_id: int = request.path_params["project_id"]
    limit = svc.settings.max_message_bytes
    body = await read_body(request, limit)
    try:
        presented = presented_key(
            x_sentry_auth=request.headers.get("x-sentry-auth"),
            authorization=request.headers.get("authorization"),
            query_key=request.query_params.get("sentry_key"),
            query_client=request.query_params.get("sentry_client"),
        )
        if presented is not None:
            await authenticate(svc.keys, presented, project_id)
        envelope = _parse(body, request.headers.get("content-encoding"), limit)
        if presented is None:
            dsn_key = key_from_dsn(envelope.dsn) if envelope.dsn else None
            if dsn_key is None:
                raise IngestAuthError(401, MISSING)
            presented = PresentedKey(dsn_key, "envelope")
            await authenticate(svc.keys, presented, project_id)
    except IngestAuthError as exc:
        raise HTTPException(exc.status, exc.detail) from None

    plan = plan_envelope(
        envelope,
        project_id=project_id,
        sdk=client_name(presented, request.headers.get("user-agent")),
        received_at=received_at,
    )
    for dropped in plan.dropped:
        _record_dropped(dropped, project_id)
    if plan.writes:
        # All or nothing: sentry-sdk does not resend after a 413, so an envelope refused
        # once its first check-ins are on the log would be half-accepted unbeknownst to
        # the client. Before the quota too, which a refused envelope must not use up.
        try:
            svc.monitor_log.check_sizes(plan.writes)
        except WriteTooLarge as exc:
            raise HTTPException(413, _too_large(plan.writes[exc.index], exc)) from None
        quota = monitor_quota(request)
        # No worker thread on the common path: the quota is settled on the event loop
        # when the project's limit is remembered, else its lookup takes a thread; the log
        # write is produced on the loop and its acknowledgement awaited there.
        verdict = quota.admit_if_known(project_id, len(plan.writes))
        if verdict is None:
            retry_after = await run_in_threadpool(quota.admit, project_id, len(plan.writes))
        else:
            retry_after = verdict.retry_after
        if retry_after is None:
            try:
                await write_for_client(
                    svc.monitor_log, plan.writes, what="check-ins", project_id=project_id
                )
            except HTTPException:
                quota.refund(project_id, len(plan.writes))
                raise
        if retry_after is not None:
            log.info(
                "check-ins refused: the project is over its check-in quota",
                extra={"project_id": project_id, "retry_after": retry_after},
            )
            return error_response(
                429,
                f"project {project_id} sends more check-ins than its quota; "
                f"retry in {retry_after} s",
                {RATE_LIMITS_HEADER: rate_limits_value(retry_after)},
            )
    return JSONResponse({"id": envelope.event_id} if envelope.event_id else {})


def monitor_quota(request: Request) -> MonitorQuota:
    """The app's project check-in quota, made on first use: one per app (a test process
    runs several apps), shared by the envelope and crons endpoints."""
    state = request.app.state
    quota: MonitorQuota | None = getattr(state, "monitor_quota", None)
    if quota is None:
        engine = services(request).engine
        quota = MonitorQuota(lambda project_id: count_monitor_environments(engine, project_id))
        state.monitor_quota = quota
    return quota


def count_monitor_environments(engine: Engine, project_id: int) -> int:
    """How many monitor environments the project's monitors have (what B11 counts)."""
    joined = monitor_environment.join(monitor, monitor.c.id == monitor_environment.c.monitor_id)
    query = select(func.count()).select_from(joined).where(monitor.c.project_id == project_id)
    # Read-only: on SQLite a deferred transaction, not the write lock the consumer needs.
    with engine.execution_options(readonly=True).connect() as conn:
        return int(conn.execute(query).scalar_one())


def _parse(body: bytes, content_encoding: str | None, limit: int) -> Envelope:
    try:
        return parse_envelope(decode_body(body, content_encoding, limit))
    except BodyTooLarge as exc:
        raise HTTPException(413, str(exc)) from None
    except UnsupportedEncoding as exc:
        raise HTTPException(415, str(exc)) from None
    except (CorruptBody, EnvelopeError) as exc:
        raise HTTPException(400, f"invalid envelope: {exc}") from None


def _too_large(write: MonitorWrite, exc: WriteTooLarge) -> str:
    return (
        f"envelope item {write.item} (check-in of monitor {write.slug!r}): {exc}; "
        "nothing of the envelope was accepted"
    )


def _record_dropped(dropped: DroppedItem, project_id: int) -> None:
    fields = {
        "project_id": project_id,
        "item_type": dropped.item_type,
        "reason": dropped.reason,
        "detail": dropped.detail,
    }
    if dropped.reason == UNSUPPORTED_TYPE:
        metrics.ENVELOPE_ITEMS_DROPPED.labels(dropped.item_type).inc()
        log.debug("envelope item dropped", extra=fields)
    else:
        metrics.ENVELOPE_ITEMS_INVALID.labels(dropped.item_type, dropped.reason).inc()
        log.info("invalid envelope item dropped", extra=fields)


def routes() -> list[BaseRoute]:
    return [*route(ENVELOPE_PATH, envelope_endpoint, ["POST"])]
