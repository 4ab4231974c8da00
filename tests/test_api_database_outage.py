"""The web while its database is unavailable, on both backends: a 503 the client may
retry (with `Retry-After`) and one warning line per request, not a 500 and tracebacks.
Embedded: another process holds SQLite's write lock past the busy timeout. PostgreSQL:
the server cannot be reached at all (a port nothing listens on)."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest
from sqlalchemy import Engine

from tests.support.live_server import live_server
from tests.support.tenants import Tenant, bearer, make_tenant
from tests.test_envelope import check_in, envelope, sdk_auth
from vigil.api.app import create_app
from vigil.config import Settings

DETAIL = "the database is unavailable; retry later"


@pytest.fixture
def tenant(engine: Engine) -> Tenant:
    return make_tenant(engine, "org-a", "web")


@pytest.fixture
def unavailable(stack: Settings, engine: Engine, tenant: Tenant) -> Iterator[Settings]:
    """Settings of a web whose database is unavailable for as long as the test runs
    (after the tenant is made)."""
    if not stack.database_url:
        database = engine.url.database
        assert database
        held, release = threading.Event(), threading.Event()

        def hold() -> None:
            other = sqlite3.connect(database, isolation_level=None)
            other.execute("BEGIN IMMEDIATE")
            held.set()
            release.wait(60)
            other.execute("ROLLBACK")
            other.close()

        holder = threading.Thread(target=hold)
        holder.start()
        assert held.wait(10)
        try:
            yield replace(stack, sqlite_busy_timeout_ms=200)
        finally:
            release.set()
            holder.join(10)
    else:
        yield replace(stack, database_url="postgresql://postgres@127.0.0.1:1/unreachable")


def test_a_write_while_the_database_is_unavailable_is_a_503(
    unavailable: Settings, tenant: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    config = {"schedule_type": "crontab", "schedule": "0 * * * *"}
    body = {"project": "web", "name": "Nightly", "config": config}
    with caplog.at_level(logging.WARNING), live_server(create_app(unavailable)) as server:
        response = httpx.post(
            f"{server}/api/0/organizations/org-a/monitors/",
            json=body,
            headers=bearer(tenant.token),
            timeout=60,
        )
    assert response.status_code == 503, response.text
    assert response.json() == {"detail": DETAIL}
    assert response.headers["retry-after"] == "5"
    outages = [r for r in caplog.records if r.getMessage() == "database unavailable"]
    assert len(outages) == 1
    assert not [r for r in caplog.records if r.exc_info]  # no traceback


def test_an_envelope_when_the_keys_cannot_be_read_is_a_503(
    stack: Settings, unavailable: Settings, tenant: Tenant
) -> None:
    if not stack.database_url:
        pytest.skip("reading needs no write lock: the embedded database is not unavailable")
    with live_server(create_app(unavailable)) as server:
        response = httpx.post(
            f"{server}/api/{tenant.project.id}/envelope/",
            content=envelope(("check_in", check_in("job"))),
            headers=sdk_auth(tenant),
            timeout=60,
        )
    assert response.status_code == 503, response.text
    assert response.json() == {"detail": DETAIL}
