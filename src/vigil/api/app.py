"""The web process: Sentry-compatible ingest, the management API, health and metrics,
and the web UI's pages (`vigil.web`, HTML; signed-in pages ask the API in-process).

`create_app(settings)` builds the Starlette app. At start (lifespan) it opens the
database engine, the log backend and the log producer once; at shutdown it closes them.
A log that is unreachable at start does not stop the app: ingest answers 503 and
`/_health/?full=1` reports it until the log is back. Every error is JSON
`{"detail": reason}` with its status, unknown paths included, except the refusals a UI
page itself draws (an HTML page with the API's reason).
"""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, NamedTuple

from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect
from starlette.routing import BaseRoute

from vigil.api import clock as clock_api
from vigil.api import (
    custom_rules,
    health,
    issues,
    monitors,
    occurrences,
    openapi,
    organizations,
    project_events,
    project_keys,
    release_details,
    releases,
    webhooks,
)
from vigil.api import metrics as metrics_api
from vigil.api.http import (
    client_gone_handler,
    database_error_handler,
    http_exception_handler,
    server_error_handler,
)
from vigil.api.services import Services
from vigil.config import Settings
from vigil.db.engine import make_engine
from vigil.ingest import cron_endpoint, envelope, legacy_checkins
from vigil.ingest.auth import KeyCache
from vigil.ingest.envelope_shortcut import EnvelopeShortcut
from vigil.ingest.log_writer import LogWriter
from vigil.streams.backend import get_backend
from vigil.streams.topics import Topic
from vigil.tenancy import store
from vigil.web import pages as web_pages


def all_routes() -> list[BaseRoute]:
    return [
        *envelope.routes(),
        *cron_endpoint.routes(),
        *legacy_checkins.routes(),
        *organizations.routes(),
        *project_keys.routes(),
        *custom_rules.routes(),
        *monitors.routes(),
        *clock_api.routes(),
        *occurrences.routes(),
        *issues.routes(),
        *project_events.routes(),
        *releases.routes(),
        *release_details.routes(),
        *webhooks.routes(),
        *health.routes(),
        *metrics_api.routes(),
        *openapi.routes(),
    ]


class ServerOptions(NamedTuple):
    """uvicorn's `http` and `loop` settings."""

    http: str
    loop: str


def server_options() -> ServerOptions:
    """How to serve the app: the C HTTP parser (httptools) and libuv's event loop
    (uvloop) when they are importable, else uvicorn's pure-Python h11 and asyncio. Chosen
    here rather than left to uvicorn's "auto", so the fast path is a stated choice (both
    are dependencies; uvloop is not built for Windows)."""
    has = importlib.util.find_spec
    return ServerOptions(
        http="httptools" if has("httptools") is not None else "h11",
        loop="uvloop" if has("uvloop") is not None else "asyncio",
    )


def create_app(settings: Settings) -> Starlette:
    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[dict[str, Any]]:
        engine = make_engine(settings)
        read_only = engine.execution_options(readonly=True)

        def lookup(public_key: str) -> store.ProjectKey | None:
            with read_only.connect() as conn:
                return store.get_key(conn, public_key)

        backend = get_backend(settings)
        monitor_log = LogWriter(backend, settings, Topic.INGEST_MONITORS)
        occurrence_log = LogWriter(backend, settings, Topic.INGEST_OCCURRENCES)
        try:
            monitor_log.open()
            svc = Services(settings, engine, backend, monitor_log, KeyCache(lookup))
            yield {
                "services": svc,
                "metrics": metrics_api.MetricsEndpoint(settings, backend, read_only),
                "occurrence_log": occurrence_log,
            }
        finally:
            occurrence_log.close()
            monitor_log.close()
            backend.close()
            engine.dispose()

    app = Starlette(
        # The API (which the OpenAPI document describes), then the UI's pages.
        routes=[*all_routes(), *web_pages.routes()],
        # The envelope (every SDK check-in) first, past the router and the counter,
        # which it does without.
        middleware=[Middleware(EnvelopeShortcut), Middleware(metrics_api.RequestCounter)],
        exception_handlers={
            HTTPException: http_exception_handler,
            ClientDisconnect: client_gone_handler,
            SQLAlchemyError: database_error_handler,
            Exception: server_error_handler,
        },
        lifespan=lifespan,
    )
    # Clients POST to these paths; a redirect would lose the body. Both forms are routed.
    app.router.redirect_slashes = False
    return app
