"""What the web process opens once at start and every handler shares."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import cast

from sqlalchemy import Connection, Engine
from starlette.requests import Request

from vigil.config import Settings
from vigil.ingest.auth import KeyCache
from vigil.ingest.log_writer import LogWriter
from vigil.streams.backend import LogBackend


@dataclass(frozen=True)
class Services:
    settings: Settings
    engine: Engine
    backend: LogBackend
    monitor_log: LogWriter
    keys: KeyCache

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """A read-only transaction (on SQLite a deferred one, which never blocks writers)."""
        with self.engine.connect() as conn:
            conn.execution_options(readonly=True)
            with conn.begin():
                yield conn

    @contextmanager
    def writing(self) -> Iterator[Connection]:
        """A write transaction, committed when the block ends without an exception."""
        with self.engine.begin() as conn:
            yield conn


def services(request: Request) -> Services:
    """The services of the app serving `request` (put in the lifespan state at start)."""
    return cast(Services, request.state.services)
