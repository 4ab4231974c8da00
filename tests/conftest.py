"""Shared fixtures. The `stack` fixture runs a test on both backends:

- `embedded`: a SQLite file and the embedded log, in the test's own directory;
- `kafka`: PostgreSQL (a database made for this session) and a tansu broker, with a
  topic prefix of the test's own so tests never see each other's messages.

On top of it: `engine` (its database), `server` (the web app on a real socket) and
`log_backend` (its log).
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from sqlalchemy import Engine, text

from tests.support.live_server import live_server
from tests.support.services import postgres_database, tansu_broker
from vigil.api.app import create_app
from vigil.config import Settings
from vigil.db.engine import make_engine
from vigil.db.migrate import migrate
from vigil.db.tables import metadata
from vigil.streams.backend import LogBackend, get_backend

BACKENDS = ("embedded", "kafka")

# Property tests assert behaviour, never speed: Hypothesis's per-example deadline and its
# "generation is slow" check would fail them on a loaded machine (a CI runner, a suite
# run beside a benchmark).
settings.register_profile("vigil", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("vigil")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with postgres_database() as url:
        yield url


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    with tansu_broker() as servers:
        yield servers


@pytest.fixture(params=BACKENDS)
def backend_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def stack(backend_name: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """Settings for one test on one backend (the database is migrated, and empty)."""
    home = tmp_path / "home"
    home.mkdir()
    settings = Settings(home=home, batch_time_ms=200)
    if backend_name == "kafka":
        pg = request.getfixturevalue("postgres_url")
        servers = request.getfixturevalue("kafka_bootstrap")
        settings = replace(
            settings,
            database_url=pg.replace("postgresql://", "postgresql+psycopg://", 1),
            kafka_bootstrap_servers=servers,
            topic_prefix=f"t{uuid.uuid4().hex[:10]}.",
            kafka_session_timeout_ms=6000,
        )
    engine = make_engine(settings)
    migrate(engine)
    try:
        yield settings
    finally:
        if backend_name == "kafka":
            _empty_postgres(engine)
        engine.dispose()


def _empty_postgres(engine: Engine) -> None:
    names = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture
def engine(stack: Settings) -> Iterator[Engine]:
    eng = make_engine(stack)
    yield eng
    eng.dispose()


@pytest.fixture
def server(stack: Settings) -> Iterator[str]:
    """The web app on these settings, served on a real socket: its base URL. (Modules
    that need a whole `vigil serve` define their own `server`.)"""
    with live_server(create_app(stack)) as url:
        yield url


@pytest.fixture
def log_backend(stack: Settings) -> Iterator[LogBackend]:
    """The log of these settings (embedded or Kafka), closed after the test."""
    backend = get_backend(stack)
    yield backend
    backend.close()


def subprocess_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a `vigil` child process use these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env.update(
        VIGIL_HOME=str(settings.home),
        VIGIL_DATABASE_URL=settings.database_url,
        VIGIL_KAFKA_BOOTSTRAP_SERVERS=settings.kafka_bootstrap_servers,
        VIGIL_TOPIC_PREFIX=settings.topic_prefix,
        VIGIL_BATCH_TIME_MS=str(settings.batch_time_ms),
        VIGIL_KAFKA_SESSION_TIMEOUT_MS=str(settings.kafka_session_timeout_ms),
        VIGIL_BIND=settings.bind,
        VIGIL_SMTP_URL=settings.smtp_url,
        VIGIL_EMAIL_FROM=settings.email_from,
    )
    return {k: v for k, v in env.items() if v != ""}


def run_vigil(
    settings: Settings, *args: str, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """`vigil ARGS...` as a child process using these settings, its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "vigil", *args],
        env=subprocess_env(settings),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
