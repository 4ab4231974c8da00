"""The envelope endpoint reached without Starlette's router: the path every SDK check-in
takes, so the one where the web process's per-request overhead counts.

`EnvelopeShortcut` is the app's outermost middleware (inside Starlette's own error
middleware, which answers an unexpected exception with the app's 500). A `POST` to
`/api/{project_id}/envelope/` (slash optional) goes straight to
`envelope.envelope_endpoint`, with what the routed path would have done around it: the
project id read as a row id (404 past 64 bits), a NUL in a query parameter refused (400),
`HTTPException`, a client gone mid-body and a database error answered by the app's
handlers, and the answer counted in `HTTP_REQUESTS` under the route's name. Anything
else goes on to the app.
"""

from __future__ import annotations

import re

from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.types import ASGIApp, Receive, Scope, Send

from vigil import metrics
from vigil.api.http import (
    RowIdConvertor,
    client_gone_handler,
    database_error_handler,
    http_exception_handler,
)
from vigil.ingest.envelope import ENVELOPE_ROUTE, envelope_endpoint

_PATH = re.compile(r"/api/([0-9]+)/envelope/?")
_PROJECT_ID = RowIdConvertor()


class EnvelopeShortcut:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            matched = _PATH.fullmatch(scope["path"])
            if matched is not None:
                await _serve(scope, receive, send, matched[1])
                return
        await self.app(scope, receive, send)


async def _serve(scope: Scope, receive: Receive, send: Send, project_id: str) -> None:
    request = Request(scope, receive)
    status = 500  # unless answered: Starlette's error middleware answers the exception
    try:
        try:
            scope["path_params"] = {"project_id": _PROJECT_ID.convert(project_id)}
            _refuse_nul_in_query(scope, request)
            response = await envelope_endpoint(request)
        except HTTPException as exc:
            response = await http_exception_handler(request, exc)
        except ClientDisconnect as exc:
            response = await client_gone_handler(request, exc)
        except SQLAlchemyError as exc:
            response = await database_error_handler(request, exc)
        status = response.status_code
        await response(scope, receive, send)
    finally:
        metrics.HTTP_REQUESTS.labels(ENVELOPE_ROUTE, str(status)).inc()


def _refuse_nul_in_query(scope: Scope, request: Request) -> None:
    # A NUL reaches the query only percent-encoded: decode it only then.
    if b"%00" not in scope.get("query_string", b""):
        return
    for name, value in request.query_params.multi_items():
        if "\x00" in name or "\x00" in value:
            raise HTTPException(400, f"{name} contains a NUL character")
