"""Datetimes read back from the database. SQLite returns naive datetimes for what vigil
always stores as UTC (PostgreSQL returns aware ones); this is the one place that evens
that out: `aware_utc` keeps an aware value's own offset, `as_utc` converts it to UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import overload


@overload
def aware_utc(value: datetime) -> datetime: ...


@overload
def aware_utc(value: None) -> None: ...


def aware_utc(value: datetime | None) -> datetime | None:
    """`value` as an aware datetime (a naive one is UTC); None stays None."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def as_utc(value: datetime) -> datetime:
    """`value` in UTC: a naive one (as SQLite returns them) is taken to be UTC, an aware
    one is converted."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
