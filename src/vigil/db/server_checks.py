"""PostgreSQL server settings that vigil needs and cannot set itself, checked at start-up
so that the operator hears of them before the symptoms.

Autovacuum matters most. vigil's tables grow from empty to millions of rows, and the
consumers look rows up by key in sets (`... WHERE project_id = ? AND event_id IN (...)`).
Without statistics, PostgreSQL takes a project's rows for a few hundred and scans all of
them for each lookup: measured on 100,000 events, a set of 128 ids took 58 ms instead of
0.6 ms, and the occurrences consumer applied half as many messages a second. Autovacuum
keeps the statistics current (ANALYZE once a tenth of a table has changed).
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import Connection, text

CHECKED = ("autovacuum", "track_counts")


def warnings_for(values: Mapping[str, str]) -> list[str]:
    """What is wrong, for vigil, with these server settings (`SHOW` values by name), in
    words for the operator; empty when nothing is."""
    found = []
    if values.get("autovacuum") == "off":
        found.append(
            "PostgreSQL's autovacuum is off: vigil's tables will keep no statistics, and "
            "lookups slow down as they grow (measured: 100x on 100,000 events). Turn it on "
            "(autovacuum = on in postgresql.conf, the default), or run ANALYZE on the "
            "database regularly."
        )
    if values.get("track_counts") == "off":
        found.append(
            "PostgreSQL's track_counts is off, so autovacuum cannot tell when vigil's "
            "tables need ANALYZE. Turn it on (the default)."
        )
    return found


def server_warnings(conn: Connection) -> list[str]:
    """`warnings_for` the connected server's settings; empty on any database other
    than PostgreSQL."""
    if conn.dialect.name != "postgresql":
        return []
    values = {name: str(conn.execute(text(f"SHOW {name}")).scalar_one()) for name in CHECKED}
    return warnings_for(values)
