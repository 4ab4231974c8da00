"""The management API called in-process, as the signed-in person's token: a page asks
the same endpoint a client would, through the app's router, and gets its status, JSON
body and headers. No socket, no second parser of query strings, no second copy of the
API's rules."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import Message

Query = Mapping[str, str | Sequence[str]] | None


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any
    headers: dict[str, str]

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def detail(self) -> str:
        """The API's reason for a refusal (`detail`, or its field errors)."""
        if isinstance(self.body, dict):
            if "detail" in self.body:
                return str(self.body["detail"])
            return "; ".join(
                f"{field}: {' '.join(map(str, errors))}"
                for field, errors in self.body.items()
                if isinstance(errors, list)
            )
        return f"the API answered {self.status}"


async def call_api(
    request: Request,
    token: str,
    path: str,
    *,
    method: str = "GET",
    query: Query = None,
    body: Any = None,
) -> Answer:
    """`method path?query` (with `body` as JSON) answered by this app's API for `token`;
    `path` as decoded (each segment as the API's handlers will see it)."""
    encoded = b"" if body is None else orjson.dumps(body)
    headers = [(b"authorization", f"Bearer {token}".encode()), (b"host", b"vigil.internal")]
    if body is not None:
        headers += [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(encoded)).encode()),
        ]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": request.url.scheme,
        "path": path,
        "raw_path": quote(path).encode(),
        "root_path": "",
        "query_string": _query_string(query).encode(),
        "headers": headers,
        "client": request.scope.get("client"),
        "server": request.scope.get("server"),
        "state": request.scope.get("state", {}),
        "app": request.scope.get("app"),
    }
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": encoded, "more_body": False}

    status = 500
    response_headers: dict[str, str] = {}
    chunks: list[bytes] = []

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])
            for key, value in message.get("headers", []):
                response_headers[key.decode("latin-1").lower()] = value.decode("latin-1")
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    try:
        await request.app.router(scope, receive, send)
    except HTTPException as exc:  # the API's refusals, as its error handler would answer
        return Answer(exc.status_code, {"detail": exc.detail}, {})
    raw = b"".join(chunks)
    try:
        parsed = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        parsed = None
    return Answer(status, parsed, response_headers)


def _query_string(query: Query) -> str:
    if not query:
        return ""
    pairs: list[tuple[str, str]] = []
    for key, value in query.items():
        if isinstance(value, str):
            pairs.append((key, value))
        else:
            pairs.extend((key, v) for v in value)
    return urlencode(pairs)
