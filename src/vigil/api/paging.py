"""What the management API's answers share: Sentry's dates (ISO 8601 in UTC with a `Z`)
and its cursor pagination (`cursor=value:offset:is_prev`, `per_page`, and the `Link`
header with a previous and a next link, each saying whether it has results)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse

from vigil.api.query import FieldErrors
from vigil.db.ids import MAX_ID

DEFAULT_PER_PAGE: Final = 100
MAX_PER_PAGE: Final = 100


def format_date(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a `Z`, as Sentry's API writes dates."""
    if value is None:
        return None
    aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return aware.isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Page:
    offset: int
    per_page: int


def parse_page(request: Request) -> Page:
    """Sentry's `cursor=value:offset:is_prev` (offset-based here) and `per_page`."""
    per_page = DEFAULT_PER_PAGE
    raw = request.query_params.get("per_page")
    if raw is not None:
        if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_PER_PAGE:
            raise FieldErrors({"per_page": [f"per_page must be between 1 and {MAX_PER_PAGE}"]})
        per_page = int(raw)
    offset = 0
    cursor = request.query_params.get("cursor")
    if cursor:
        parts = cursor.split(":")
        # Each part at most 19 digits and the offset within 64 bits, as a database OFFSET is.
        if len(parts) != 3 or not all(p.isascii() and p.isdigit() and len(p) <= 19 for p in parts):
            raise FieldErrors({"cursor": ["invalid cursor"]})
        offset = int(parts[1])
        if offset > MAX_ID:
            raise FieldErrors({"cursor": ["invalid cursor"]})
    return Page(offset, per_page)


def link_header(request: Request, page: Page, has_next: bool) -> str:
    """Sentry's `Link` header: a previous and a next link, each saying whether it has
    results and carrying its cursor."""

    def link(offset: int, is_prev: int, rel: str, results: bool) -> str:
        cursor = f"0:{offset}:{is_prev}"
        params = [(k, v) for k, v in request.query_params.multi_items() if k != "cursor"]
        url = str(request.url.replace(query=urlencode([*params, ("cursor", cursor)])))
        flag = "true" if results else "false"
        return f'<{url}>; rel="{rel}"; results="{flag}"; cursor="{cursor}"'

    previous = max(page.offset - page.per_page, 0)
    return ", ".join(
        [
            link(previous, 1, "previous", page.offset > 0),
            link(page.offset + page.per_page, 0, "next", has_next),
        ]
    )


def paginated(request: Request, page: Page, rows: Sequence[Any], body: list[Any]) -> JSONResponse:
    """`rows` was read with one more than a page, to know whether there is a next one."""
    has_next = len(rows) > page.per_page
    return JSONResponse(
        body[: page.per_page], headers={"Link": link_header(request, page, has_next)}
    )
