"""Where a benchmark keeps its data: a fresh temporary home (the embedded default), or
the PostgreSQL database and Kafka servers it is given, under a topic prefix of its own."""

from __future__ import annotations

import argparse
import os
import uuid
from pathlib import Path

from sqlalchemy import inspect, select
from sqlalchemy.exc import SQLAlchemyError

from vigil.bench import BenchError
from vigil.config import ConfigError, Settings, normalize_database_url
from vigil.db.engine import make_engine
from vigil.db.tables import organization


def add_backend_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url",
        help="an empty PostgreSQL database of its own (default: SQLite in a temporary home)",
    )
    parser.add_argument("--kafka", help="Kafka bootstrap servers (default: the embedded log)")


def backend_label(database_url: str | None, kafka: str | None) -> str:
    return f"{'PostgreSQL' if database_url else 'SQLite'} + {'Kafka' if kafka else 'embedded log'}"


def checked_database_url(raw: str | None) -> str | None:
    """The --database-url as the engine takes it; BenchError if it is not one to use."""
    if not raw:
        return None
    try:
        url = normalize_database_url(raw)
    except ConfigError as exc:
        raise BenchError(str(exc).replace("VIGIL_DATABASE_URL", "--database-url")) from None
    check_unused(url)
    return url


def child_env(home: Path, database_url: str | None, kafka: str | None) -> dict[str, str]:
    """The environment of a `vigil` child using `home`, and the database and Kafka given
    (else the embedded default in `home`), under a topic prefix of its own: nothing of
    the caller's VIGIL_* settings leaks in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env.update(VIGIL_HOME=str(home), VIGIL_LOG_LEVEL="WARNING")
    if database_url:
        env["VIGIL_DATABASE_URL"] = database_url
    if kafka:
        env["VIGIL_KAFKA_BOOTSTRAP_SERVERS"] = kafka
        env["VIGIL_TOPIC_PREFIX"] = f"bench{uuid.uuid4().hex[:8]}."
    return env


def check_unused(database_url: str | None) -> None:
    """A benchmark writes organizations, monitors and issues of its own: on a server
    database, only an empty one (or one without vigil's tables) is taken."""
    if not database_url:
        return
    engine = make_engine(Settings(database_url=database_url))
    try:
        with engine.connect() as conn:
            used = inspect(conn).has_table(organization.name) and (
                conn.execute(select(organization.c.id).limit(1)).first() is not None
            )
        if used:
            raise BenchError(
                "the database already holds vigil data: benchmark on an empty "
                "database of its own, never on one an install uses"
            )
    except SQLAlchemyError as exc:
        raise BenchError(f"cannot use the database: {exc}") from None
    finally:
        engine.dispose()
