"""`insert_rows` stores exactly what SQLAlchemy's own insert stores, on both databases:
the same rows go to two tables, one through each, and the raw stored values (read with
plain SQL, not through the column types) are compared."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    Uuid,
    bindparam,
    insert,
    literal_column,
    select,
    update,
)
from sqlalchemy import exc as sa_exc

from vigil.db.bulk import execute_many, insert_rows, sqlite_datetime, update_rows

AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _table(metadata: MetaData, name: str) -> Table:
    return Table(
        name,
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("label", String(64), nullable=True),
        Column("body", Text, nullable=False),
        Column("big", BigInteger, nullable=True),
        Column("flag", Boolean, nullable=False),
        Column("ref", Uuid, nullable=True),
        Column("at", DateTime(timezone=True), nullable=True),
        Column("data", JSON, nullable=True),
    )


@pytest.fixture
def tables(engine: Engine) -> Iterator[tuple[Table, Table]]:
    metadata = MetaData()
    suffix = uuid.uuid4().hex[:8]
    pair = (_table(metadata, f"bulk_a_{suffix}"), _table(metadata, f"bulk_b_{suffix}"))
    metadata.create_all(engine)
    yield pair
    metadata.drop_all(engine)


def _rows() -> list[dict[str, Any]]:
    return [
        {
            "id": 1,
            "label": "plain",
            "body": "{}",
            "big": 2**62,
            "flag": True,
            "ref": uuid.UUID(int=7),
            "at": AT,
            "data": {"k": [1, 2.5, None, "ü"], "nested": {"deep": True}},
        },
        {
            "id": 2,
            "label": None,
            "body": "quote ' and %s and %(x)s",
            "big": None,
            "flag": False,
            "ref": None,
            "at": AT.replace(microsecond=123456) + timedelta(days=400),
            "data": None,
        },
        {
            "id": 3,
            "label": "another zone and no microseconds",
            "body": "tab\there, new\nline, back\\slash, \\N, \\.",
            "big": -1,
            "flag": False,
            "ref": uuid.UUID("bd16982e-afa9-4012-8813-c423c1038669"),
            "at": datetime(999, 1, 2, 3, 4, 5, tzinfo=UTC),
            "data": [],
        },
    ]


def _stored(engine: Engine, table: Table) -> list[tuple[Any, ...]]:
    # Each column as the database holds it (text for SQLite's date-times and JSON).
    columns = [literal_column(f'"{c.name}"') for c in table.c]
    with engine.connect() as conn:
        query = select(*columns).select_from(table).order_by(literal_column('"id"'))
        return [tuple(row) for row in conn.execute(query)]


def test_insert_rows_stores_what_sqlalchemy_stores(
    engine: Engine, tables: tuple[Table, Table]
) -> None:
    ours, theirs = tables
    with engine.begin() as conn:
        insert_rows(conn, ours, _rows())
        conn.execute(insert(theirs), _rows())
    stored = _stored(engine, ours)
    assert stored == _stored(engine, theirs)
    assert len(stored) == 3
    with engine.connect() as conn:  # and read back through the types, as written
        back = [row._asdict() for row in conn.execute(select(ours).order_by(ours.c.id))]
    assert [row["data"] for row in back] == [row["data"] for row in _rows()]
    assert [row["body"] for row in back] == [row["body"] for row in _rows()]


def test_rows_inserted_first_on_a_connection_are_committed_by_its_commit(
    engine: Engine, tables: tuple[Table, Table]
) -> None:
    # "Commit as you go": no begin(), the insert is the connection's first statement.
    ours, _ = tables
    with engine.connect() as conn:
        insert_rows(conn, ours, _rows())
        assert conn.in_transaction()
        conn.commit()
    assert [row[0] for row in _stored(engine, ours)] == [1, 2, 3]
    with engine.connect() as conn:  # and rolled back without one
        insert_rows(conn, ours, [{**_rows()[0], "id": 9}])
    assert [row[0] for row in _stored(engine, ours)] == [1, 2, 3]


def test_a_failed_insert_raises_what_sqlalchemys_insert_raises(
    engine: Engine, tables: tuple[Table, Table]
) -> None:
    # On PostgreSQL the rows go in by COPY; its errors are still SQLAlchemy's, so that
    # callers tell bad data from a lost connection the same way.
    ours, theirs = tables
    duplicate = [_rows()[0], _rows()[0]]
    for table in (ours, theirs):
        with pytest.raises(sa_exc.IntegrityError), engine.begin() as conn:
            if table is ours:
                insert_rows(conn, table, duplicate)
            else:
                conn.execute(insert(table), duplicate)
    assert _stored(engine, ours) == _stored(engine, theirs) == []
    with engine.begin() as conn:  # the connection went back to the pool usable
        insert_rows(conn, ours, _rows()[1:])
    assert [row[0] for row in _stored(engine, ours)] == [2, 3]


def test_execute_many_updates_as_sqlalchemy_updates(
    engine: Engine, tables: tuple[Table, Table]
) -> None:
    ours, theirs = tables
    changes = [
        {"p_id": 1, "p_at": AT + timedelta(hours=1), "p_data": {"now": "changed"}},
        {"p_id": 3, "p_at": None, "p_data": None},
    ]

    def statement(table: Table) -> Any:
        return (
            update(table)
            .where(table.c.id == bindparam("p_id"))
            .values(at=bindparam("p_at"), data=bindparam("p_data"))
        )

    with engine.begin() as conn:
        insert_rows(conn, ours, _rows())
        insert_rows(conn, theirs, _rows())
        execute_many(conn, statement(ours), changes)
        conn.execute(statement(theirs), changes)
    stored = _stored(engine, ours)
    assert stored == _stored(engine, theirs)
    assert stored[0] != tuple(_stored_before_update(engine, ours))


def test_update_rows_sets_each_rows_columns_by_key_as_sqlalchemy_would(
    engine: Engine, tables: tuple[Table, Table]
) -> None:
    ours, theirs = tables
    later = AT + timedelta(hours=1)
    changes = [  # by the uuid column; nulls, JSON and a row that matches nothing
        {"ref": uuid.UUID(int=7), "at": later, "data": {"now": "changed"}, "big": None},
        {
            "ref": uuid.UUID("bd16982e-afa9-4012-8813-c423c1038669"),
            "at": None,
            "data": None,
            "big": 5,
        },
        {"ref": uuid.uuid4(), "at": later, "data": [1], "big": 1},
    ]
    with engine.begin() as conn:
        insert_rows(conn, ours, _rows())
        insert_rows(conn, theirs, _rows())
        update_rows(conn, ours, "ref", changes)
        update_rows(conn, ours, "id", [])  # nothing: no statement
        for change in changes:
            values = {k: v for k, v in change.items() if k != "ref"}
            conn.execute(update(theirs).where(theirs.c.ref == change["ref"]).values(**values))
    stored = _stored(engine, ours)
    assert stored == _stored(engine, theirs)
    with engine.connect() as conn:
        back = {r.id: (r.at, r.data, r.big) for r in conn.execute(select(ours))}
    assert back[1][1:] == ({"now": "changed"}, None) and back[1][0] is not None
    assert back[3] == (None, None, 5)
    assert back[2][2] is None  # untouched: its ref is null


def test_update_rows_refuses_rows_with_nothing_to_set(
    engine: Engine, tables: tuple[Table, Table]
) -> None:
    ours, _ = tables
    with engine.begin() as conn, pytest.raises(ValueError):
        update_rows(conn, ours, "id", [{"id": 1}])


def _stored_before_update(engine: Engine, table: Table) -> tuple[Any, ...]:
    # What row 1 would hold had nothing changed it: a fresh table with the same rows.
    metadata = MetaData()
    fresh = _table(metadata, f"bulk_fresh_{uuid.uuid4().hex[:8]}")
    metadata.create_all(engine)
    try:
        with engine.begin() as conn:
            insert_rows(conn, fresh, _rows()[:1])
        return _stored(engine, fresh)[0]
    finally:
        metadata.drop_all(engine)


def test_insert_rows_refuses_rows_that_leave_a_column_to_a_python_default(
    engine: Engine,
) -> None:
    metadata = MetaData()
    table = Table(
        f"bulk_default_{uuid.uuid4().hex[:8]}",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("kind", String(8), nullable=False, default="x"),
    )
    metadata.create_all(engine)
    try:
        with engine.begin() as conn, pytest.raises(ValueError, match="parameters bound"):
            insert_rows(conn, table, [{"id": 1}])
    finally:
        metadata.drop_all(engine)


def test_nothing_to_insert_runs_nothing(engine: Engine, tables: tuple[Table, Table]) -> None:
    ours, _ = tables
    with engine.begin() as conn:
        insert_rows(conn, ours, [])
    assert _stored(engine, ours) == []


@pytest.mark.parametrize(
    "value",
    [
        AT,
        AT.replace(microsecond=1),
        datetime(1, 1, 1),
        datetime(9999, 12, 31, 23, 59, 59, 999999),
        datetime(2026, 10, 25, 1, 30, tzinfo=timezone(timedelta(hours=2))),
    ],
)
def test_sqlite_datetime_text_is_sqlalchemys(value: datetime) -> None:
    from sqlalchemy.dialects import sqlite

    processor = sqlite.DATETIME().bind_processor(sqlite.dialect())
    assert processor is not None
    assert sqlite_datetime(value) == processor(value)
    assert sqlite_datetime(None) is None


def test_sqlite_datetime_of_an_equal_moment_in_another_offset_is_its_own() -> None:
    # The last text is reused for the same object only: 12:00 UTC and 14:00+02:00 are
    # equal moments, written as SQLAlchemy writes each (the offset dropped).
    utc = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    plus_two = utc.astimezone(timezone(timedelta(hours=2)))
    assert utc == plus_two
    assert [sqlite_datetime(utc), sqlite_datetime(plus_two), sqlite_datetime(utc)] == [
        "2026-03-01 12:00:00.000000",
        "2026-03-01 14:00:00.000000",
        "2026-03-01 12:00:00.000000",
    ]


@pytest.mark.parametrize("column", ["label", "at"])
def test_rows_of_one_column_are_stored_whole(engine: Engine, column: str) -> None:
    # One bound parameter per row: a plain text, and one the SQLite date-time text
    # converts (on PostgreSQL, SQLAlchemy's own insert).
    metadata = MetaData()
    kind = String(64) if column == "label" else DateTime(timezone=True)
    table = Table(f"bulk_one_{uuid.uuid4().hex[:8]}", metadata, Column(column, kind))
    metadata.create_all(engine)
    values = ["first", "second"] if column == "label" else [AT, AT + timedelta(hours=1)]
    try:
        with engine.begin() as conn:
            insert_rows(conn, table, [{column: value} for value in values])
        with engine.connect() as conn:
            stored = conn.scalars(select(table.c[column])).all()
        if column == "at":
            stored = [
                value.replace(tzinfo=UTC) if value.tzinfo is None else value for value in stored
            ]
        assert sorted(stored) == values
    finally:
        metadata.drop_all(engine)
