"""Autovacuum's ANALYZE, done by a benchmark on a PostgreSQL server that has autovacuum
off (as the CI machine's has).

Without statistics PostgreSQL plans vigil's set lookups as scans of a whole project's
rows (`vigil.db.server_checks`), so a benchmark on such a server would measure a
misconfiguration that vigil warns about, not vigil. This thread does what autovacuum
would: ANALYZE each table once its rows changed since the last ANALYZE exceed
50 + 10 % of its rows (PostgreSQL's defaults), checked every second (autovacuum's own
default is once a minute: the benchmarks run for less than that, and a running install
has long been analyzed, so the figures are those of a running install, not of its first
minute). On a server whose autovacuum is on, it does nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

NAPTIME_S = 1.0
THRESHOLD = 50
SCALE_FACTOR = 0.1
DUE = text(
    "SELECT relname FROM pg_stat_user_tables "
    "WHERE n_mod_since_analyze > :threshold + :scale * greatest(n_live_tup, 0)"
)


@contextmanager
def autoanalyze(database_url: str | None) -> Iterator[bool]:
    """While inside, ANALYZE as autovacuum would if `database_url` is a PostgreSQL
    server with autovacuum off; yields whether it does."""
    if not database_url or not database_url.startswith(("postgresql", "postgres:")):
        yield False
        return
    url = database_url.replace("postgres://", "postgresql://", 1)
    url = url.replace("postgresql://", "postgresql+psycopg://", 1)
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            autovacuum = conn.execute(text("SHOW autovacuum")).scalar_one()
            counted = conn.execute(text("SHOW track_counts")).scalar_one() == "on"
        if autovacuum == "on" and counted:
            yield False
            return
        # Without track_counts nothing says what changed: every table is analyzed.
        due = DUE if counted else text("SELECT relname FROM pg_stat_user_tables")
        stop = threading.Event()

        def run() -> None:
            with engine.connect() as conn:
                while not stop.wait(NAPTIME_S):
                    params = {"threshold": THRESHOLD, "scale": SCALE_FACTOR}
                    for (table,) in conn.execute(due, params).all():
                        try:
                            conn.execute(text(f'ANALYZE "{table}"'))
                        except DBAPIError:  # dropped meanwhile: the next round will tell
                            continue

        thread = threading.Thread(target=run, name="autoanalyze", daemon=True)
        thread.start()
        print("(this server's autovacuum is off: the benchmark runs its ANALYZE instead)")
        try:
            yield True
        finally:
            stop.set()
            thread.join()
    finally:
        engine.dispose()
