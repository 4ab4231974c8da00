"""Query parameters read the same way by every management endpoint, and the 400 that
names a bad one (`FieldErrors`, in Sentry's shape)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse


class FieldErrors(Exception):
    """A 400 naming its fields, in Sentry's shape."""

    def __init__(self, errors: dict[str, Any]) -> None:
        super().__init__(str(errors))
        self.errors = errors


def field_error_response(errors: dict[str, Any]) -> JSONResponse:
    first = next(iter(errors))
    reasons = errors[first]
    reason = reasons[0] if isinstance(reasons, list) and reasons else f"invalid {first}"
    if isinstance(reasons, dict):
        inner = next(iter(reasons))
        reason = f"{first}.{inner}: {reasons[inner][0]}"
    return JSONResponse({"detail": reason, **errors}, status_code=400)


def datetime_param(
    request: Request, name: str, *, empty_is_absent: bool = False
) -> datetime | None:
    """The query parameter `name` as an aware UTC datetime: ISO 8601, `Z` allowed, a
    naive value taken to be UTC. None when it is absent (and, with `empty_is_absent`,
    when it is empty); anything else is FieldErrors "`name` must be an ISO 8601 date"."""
    raw = request.query_params.get(name)
    if raw is None or (empty_is_absent and not raw):
        return None
    try:
        return parse_iso_datetime(raw)
    except ValueError:
        raise FieldErrors({name: [f"{name} must be an ISO 8601 date"]}) from None


def parse_iso_datetime(raw: str) -> datetime:
    """ISO 8601 (`Z` allowed) as an aware UTC datetime, a naive value taken to be UTC;
    ValueError otherwise."""
    value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# Sentry's `statsPeriod`: a count and a unit.
PERIOD: Final = re.compile(r"^(\d+)([smhdw])$")
PERIOD_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def time_range(request: Request, now: datetime) -> tuple[datetime | None, datetime | None]:
    """Sentry's time range parameters: `statsPeriod` (`90s`, `30m`, `24h`, `14d`, `2w`:
    from that long before `now`, with no end), else `start` / `end` (ISO 8601, an empty
    one absent; a start after the end is refused). FieldErrors naming the parameter for
    anything else."""
    period = request.query_params.get("statsPeriod")
    if period:
        matched = PERIOD.match(period)
        if matched is None:
            raise FieldErrors({"statsPeriod": [f"Invalid statsPeriod {period!r}"]})
        try:
            seconds = int(matched.group(1)) * PERIOD_UNITS[matched.group(2)]
            return now - timedelta(seconds=seconds), None
        # Reaches before the year 1, or has more digits than int() converts (ValueError).
        except (OverflowError, ValueError):
            raise FieldErrors({"statsPeriod": [f"Invalid statsPeriod {period!r}"]}) from None
    start = datetime_param(request, "start", empty_is_absent=True)
    end = datetime_param(request, "end", empty_is_absent=True)
    if start is not None and end is not None and start > end:
        raise FieldErrors({"start": ["start must be before end"]})  # Sentry's words
    return start, end
