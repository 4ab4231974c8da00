"""Small row helpers the stores share: insert-or-keep under a unique constraint (with or
without the row inserted) and counter increments, written once for both databases."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, Executable, Row, Table, and_, bindparam, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError


def insert_if_absent(conn: Connection, table: Table, values: Mapping[str, Any]) -> bool:
    """Insert a row; False (and nothing changed) if one with the same unique key exists.

    Both databases say it in one statement (`INSERT ... ON CONFLICT DO NOTHING`), which
    also settles a race with a concurrent transaction inserting the same key (PostgreSQL
    waits for it, then does nothing) and leaves the caller's transaction usable. Other
    integrity errors (a missing foreign row) are raised."""
    return _insert_or_keep(conn, table, values, whole=False) is not None


def insert_new(conn: Connection, table: Table, values: Mapping[str, Any]) -> Row[Any] | None:
    """`insert_if_absent` giving the row as inserted, every column (its id, defaults):
    None when one with the same unique key exists. Saves reading back what was just
    written."""
    return _insert_or_keep(conn, table, values, whole=True)


def _insert_or_keep(
    conn: Connection, table: Table, values: Mapping[str, Any], *, whole: bool
) -> Row[Any] | None:
    # The row inserted (its primary key, or every column if `whole`), None if kept.
    dialect = conn.dialect.name
    if dialect in ("postgresql", "sqlite"):
        statement = _insert_or_keep_statement(dialect, table, whole)
        return conn.execute(statement, dict(values)).first()
    returned = table.c if whole else table.primary_key.columns
    try:
        with conn.begin_nested():
            return conn.execute(table.insert().values(**values).returning(*returned)).first()
    except IntegrityError:
        return None


@functools.cache
def _insert_or_keep_statement(dialect: str, table: Table, whole: bool) -> Executable:
    # Built once per table and given its values at execution: building a statement
    # costs several times what SQLite takes to run it. RETURNING says whether a row went
    # in (rowcount is not reliable for this on psycopg).
    returned = table.c if whole else [next(iter(table.primary_key.columns))]
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(table).on_conflict_do_nothing().returning(*returned)


def increment(
    conn: Connection,
    table: Table,
    key: Mapping[str, Any],
    column: str,
    by: int = 1,
    *,
    insert_values: Mapping[str, Any] | None = None,
) -> None:
    """Add `by` to `column` of the row with `key`, creating the row (with `column` = `by`
    and `insert_values`) when there is none. Safe against a concurrent creator."""
    bump = _increment_statement(table, tuple(key), column)
    params = {**{f"k_{name}": value for name, value in key.items()}, "k_by": by}
    if conn.execute(bump, params).rowcount:
        return
    if not insert_if_absent(conn, table, {**key, column: by, **(insert_values or {})}):
        conn.execute(bump, params)


@functools.cache
def _increment_statement(table: Table, key: tuple[str, ...], column: str) -> Executable:
    # Built once per (table, key columns, counter) and given its values at execution.
    where = and_(*(table.c[name] == bindparam(f"k_{name}") for name in key))
    return update(table).where(where).values({column: table.c[column] + bindparam("k_by")})
