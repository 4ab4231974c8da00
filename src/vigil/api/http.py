"""HTTP plumbing shared by every endpoint: Sentry-shaped JSON errors, bounded body
reading, JSON bodies, and routes whose trailing slash is optional and whose path
parameters are checked before any endpoint (or the database) sees them.

Every error a client can cause is an `HTTPException` rendered as `{"detail": reason}`
with its status; the database unavailable is a 503 (and a line in the log); an
unexpected exception is a 500 with a generic detail (and a logged traceback), never a
stack trace in the answer.
"""

from __future__ import annotations

import functools
import inspect
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson
from starlette.convertors import Convertor, register_url_convertor
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from vigil.db.engine import is_transient
from vigil.db.ids import parse_id
from vigil.ingest.content_encoding import (
    BodyTooLarge,
    CorruptBody,
    UnsupportedEncoding,
    decode_body,
)

log = logging.getLogger(__name__)

# How long a client is asked to wait while the database is unavailable.
RETRY_AFTER_S = 5

# After a body turns out too large, read (and discard) up to this much more of it, so the
# client, still sending, gets the 413 instead of a reset connection.
DRAIN_MAX_BYTES = 16 * 1024 * 1024

_CONVERTOR = re.compile(r"\{(\w+):\w+\}")


def error_response(
    status: int, detail: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


async def http_exception_handler(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code in (204, 304):  # no body allowed
        return Response(status_code=exc.status_code, headers=exc.headers)
    return error_response(exc.status_code, exc.detail, exc.headers)


async def server_error_handler(request: Request, exc: Exception) -> Response:
    log.error(
        "unhandled error",
        exc_info=exc,
        extra={"method": request.method, "path": request.url.path},
    )
    return error_response(500, "internal server error")


async def database_error_handler(request: Request, exc: Exception) -> Response:
    """A database error: while the database is unavailable (connection lost, locked past
    the busy timeout, full), a 503 the client may retry and one line in the log, not a
    500 with a traceback per request; any other is a 500 as `server_error_handler`'s."""
    if not is_transient(exc):
        return await server_error_handler(request, exc)
    log.warning(
        "database unavailable",
        extra={"method": request.method, "path": request.url.path, "error": _first_line(exc)},
    )
    return error_response(
        503, "the database is unavailable; retry later", {"Retry-After": str(RETRY_AFTER_S)}
    )


def _first_line(exc: BaseException) -> str:
    cause = exc.__cause__ or getattr(exc, "orig", None) or exc
    return (str(cause).strip().splitlines() or [type(cause).__name__])[0]


# nginx's "client closed request": not sent (no one is there), only counted.
CLIENT_GONE = 499


async def client_gone_handler(request: Request, _exc: Exception) -> Response:
    """A client that hung up in the middle of its request body: nothing for the server
    to fix, so neither a 500 nor a traceback; one line at INFO."""
    log.info("client disconnected", extra={"method": request.method, "path": request.url.path})
    return Response(status_code=CLIENT_GONE)


def too_large(limit: int) -> HTTPException:
    return HTTPException(413, f"request body exceeds the limit of {limit} bytes")


async def read_body(request: Request, limit: int) -> bytes:
    """The request body; HTTPException(413) if it is (or declares to be) over `limit`."""
    declared = request.headers.get("content-length", "")
    over = declared.isdigit() and int(declared) > limit
    body = bytearray()
    drained = 0
    async for chunk in request.stream():
        if over:
            drained += len(chunk)
            if drained > DRAIN_MAX_BYTES:
                break
            continue
        body += chunk
        if len(body) > limit:
            over = True
            body.clear()
    if over:
        raise too_large(limit)
    return bytes(body)


def decoded(request: Request, body: bytes, limit: int) -> bytes:
    """`body` with the request's `Content-Encoding` (gzip, deflate, br) undone, at most
    `limit` bytes: 413 past it, 415 for an encoding not decoded, 400 for bad data."""
    try:
        return decode_body(body, request.headers.get("content-encoding"), limit)
    except BodyTooLarge as exc:
        raise HTTPException(413, str(exc)) from None
    except UnsupportedEncoding as exc:
        raise HTTPException(415, str(exc)) from None
    except CorruptBody as exc:
        raise HTTPException(400, f"invalid request body: {exc}") from None


def body_string(body: dict[str, Any], key: str, most: int | None = None) -> str | None:
    """A JSON body's optional string field (None when absent or null); HTTPException(400)
    for another type, or one over `most` characters."""
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise HTTPException(400, f"{key} must be a string")
    if most is not None and len(value) > most:
        raise HTTPException(400, f"{key}: at most {most} characters")
    return value


def json_object(body: bytes, *, refuse_nul: bool = True) -> dict[str, Any]:
    """A JSON object body (an empty body is `{}`); HTTPException(400) otherwise, also
    for a NUL character in any key or string (`refuse_nul`): no name, slug or query
    holds one, and PostgreSQL's text cannot."""
    if not body.strip():
        return {}
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise HTTPException(400, f"request body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise HTTPException(400, "request body must be a JSON object")
    if refuse_nul and (where := nul_in(value)) is not None:
        raise HTTPException(400, f"{where} contains a NUL character")
    return value


def nul_in(value: Any, path: str = "") -> str | None:
    """Where in a decoded JSON value a string (or key) holds a NUL character, as a
    dotted path (`config.timezone`, `projects.0`); None if nowhere."""
    # An explicit stack: a body nested a thousand deep is no reason for a RecursionError.
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        current, where = stack.pop()
        if isinstance(current, str):
            if "\x00" in current:
                return where or "the body"
        elif isinstance(current, dict):
            for key, item in current.items():
                inner = f"{where}.{key}" if where else str(key)
                if "\x00" in key:
                    return inner
                stack.append((item, inner))
        elif isinstance(current, list):
            stack.extend(
                (item, f"{where}.{i}" if where else str(i)) for i, item in enumerate(current)
            )
    return None


class RowIdConvertor(Convertor[int]):
    """`{name:int}` in a `route`: digits that a 64-bit id column can hold. Anything
    longer is a 404 naming it, not an overflow in the database (or in `int()`, which
    refuses more than 4300 digits)."""

    regex = "[0-9]+"

    def convert(self, value: str) -> int:
        parsed = 0 if value.strip("0") == "" else parse_id(value)
        if parsed is None:
            shown = value if len(value) <= 40 else value[:40] + "..."
            raise HTTPException(404, f"id {shown} does not exist (ids have at most 64 bits)")
        return parsed

    def to_string(self, value: int) -> str:
        return str(int(value))


register_url_convertor("row_id", RowIdConvertor())


def _refusing_nul(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    """`endpoint`, answering 400 when a path or query parameter holds a NUL character
    (which no name, id or search has and PostgreSQL text cannot hold) instead of
    calling it."""
    if not inspect.isfunction(endpoint):
        return endpoint

    def check(request: Request) -> None:
        for name, value in request.path_params.items():
            if isinstance(value, str) and "\x00" in value:
                raise HTTPException(400, f"{name} contains a NUL character")
        for name, value in request.query_params.multi_items():
            if "\x00" in name or "\x00" in value:
                raise HTTPException(400, f"{name} contains a NUL character")

    if inspect.iscoroutinefunction(endpoint):

        @functools.wraps(endpoint)
        async def checked_async(request: Request) -> Any:
            check(request)
            return await endpoint(request)

        return checked_async

    @functools.wraps(endpoint)
    def checked(request: Request) -> Any:
        check(request)
        return endpoint(request)

    return checked


def route_name(path: str) -> str:
    """The name of `route(path, ...)`'s routes: the template without convertors."""
    return _CONVERTOR.sub(r"{\1}", path)


def route(path: str, endpoint: Callable[..., Any], methods: Sequence[str]) -> list[Route]:
    """Routes for `path` (which ends in '/') and the same path without the slash, both
    named after the template (without convertors: `/api/{project_id}/envelope/`), so
    metrics count them as one route. No redirect: clients POST. `{name:int}` parameters
    are row ids (`RowIdConvertor`); a NUL in any path parameter is a 400 naming it."""
    assert path.endswith("/"), path
    name = route_name(path)
    pattern = path.replace(":int}", ":row_id}")
    checked = _refusing_nul(endpoint)
    return [
        Route(pattern, checked, methods=list(methods), name=name),
        Route(pattern.rstrip("/"), checked, methods=list(methods), name=name),
    ]
