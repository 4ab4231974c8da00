"""`GET /api/0/organizations/{organization_slug}/monitors-clock/`: where the crons clock
is (server-wide: one clock serves every organization), so people can see whether
missed and timed-out runs are being detected, and how far behind.

    {"lastTick": "2026-03-01T12:05:00Z", "lagSeconds": 12.5,
     "partitions": [{"partition": 0, "position": "2026-03-01T12:05:00Z"}, ...],
     "decision": "normal", "systemIncidentStart": null,
     "options": {"collectMetrics": false, "useDecisions": false, ...}}
"""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute

from vigil.api.auth import authorize
from vigil.api.http import route
from vigil.api.paging import format_date
from vigil.api.services import services
from vigil.monitors import clock_store


def monitors_clock(request: Request) -> JSONResponse:
    slug = request.path_params["organization_slug"]
    with services(request).reading() as conn:
        authorize(conn, request.headers.get("authorization"), slug, "org:read")
        status = clock_store.clock_status(conn)
        options = clock_store.read_options(conn)
    lag = status.lag(datetime.now(UTC))
    return JSONResponse(
        {
            "lastTick": format_date(status.last_tick),
            "lagSeconds": None if lag is None else round(lag.total_seconds(), 3),
            "partitions": [
                {"partition": p, "position": format_date(at)}
                for p, at in sorted(status.partitions.items())
            ],
            "decision": None if status.decision is None else status.decision.value,
            "systemIncidentStart": format_date(status.system_incident_start),
            "options": {
                "collectMetrics": options.collect_metrics,
                "useDecisions": options.use_decisions,
                "pctDeviationAnomalyThreshold": options.anomaly_threshold,
                "pctDeviationIncidentThreshold": options.incident_threshold,
                "tickDecisionWindow": options.decision_window,
            },
        }
    )


def routes() -> list[BaseRoute]:
    return [
        *route("/api/0/organizations/{organization_slug}/monitors-clock/", monitors_clock, ["GET"])
    ]
