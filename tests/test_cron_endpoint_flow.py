"""The crons HTTP endpoint into the database: real curl requests through a real server,
applied by the real `ingest-monitors` consumer, on both backends. What a check-in without
an id means (close the latest in_progress one), that a lenient interval creates its
monitor, and that what the edge passes on for the consumer to judge is recorded as a
processing error the user sees, never a stuck consumer."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote

import orjson
import pytest
from sqlalchemy import Engine

from tests.support.consumers import checkins, running, wait_until
from tests.support.cron_requests import cron_url, curl
from tests.support.tenants import Tenant, make_tenant
from vigil.config import Settings
from vigil.monitors import processing_error_store
from vigil.monitors import store as monitor_store
from vigil.monitors.enums import CheckInStatus
from vigil.monitors.processing_errors import ProcessingErrorType


@pytest.fixture
def tenant(engine: Engine) -> Tenant:
    return make_tenant(engine, "acme")


def project_errors(engine: Engine, tenant: Tenant) -> list[ProcessingErrorType]:
    with engine.connect() as conn:
        records = processing_error_store.list_for_project(
            conn, tenant.project.id, datetime.now(UTC)
        )
    return [e.type for r in records for e in r.errors]


def monitor_errors(engine: Engine, tenant: Tenant, slug: str) -> list[ProcessingErrorType]:
    with engine.connect() as conn:
        monitor = monitor_store.get_monitor(conn, tenant.project.id, slug)
        assert monitor is not None
        records = processing_error_store.list_for_monitor(conn, monitor.id, datetime.now(UTC))
    return [e.type for r in records for e in r.errors]


def post_json(url: str, body: object) -> tuple[int, bytes]:
    return curl(
        "-X", "POST", "-H", "Content-Type: application/json", "--data-binary",
        orjson.dumps(body).decode(), url,
    )  # fmt: skip


def test_in_progress_then_ok_without_ids_is_one_completed_run(
    stack: Settings, engine: Engine, server: str, tenant: Tenant
) -> None:
    url = cron_url(server, tenant, "nightly")
    config = {"schedule": {"type": "interval", "value": "1", "unit": "day"}}
    assert post_json(url, {"status": "in_progress", "monitor_config": config}) == (202, b"")
    assert curl(f"{url}?status=ok&duration=4.2") == (202, b"")

    with running(stack) as alive:
        wait_until(
            lambda: [c.status for c in checkins(engine).values()] == [CheckInStatus.OK],
            "one completed check-in",
            alive,
        )
    [run] = checkins(engine).values()
    assert run.duration == 4200
    with engine.connect() as conn:
        monitor = monitor_store.get_monitor(conn, tenant.project.id, "nightly")
    assert monitor is not None
    assert monitor.config["schedule"] == [1, "day"]


def test_what_the_consumer_refuses_is_a_processing_error_and_the_rest_goes_on(
    stack: Settings, engine: Engine, server: str, tenant: Tenant
) -> None:
    hourly = {"schedule": {"type": "crontab", "value": "0 * * * *"}}
    url = cron_url(server, tenant, "hourly")
    assert post_json(url, {"status": "ok", "monitor_config": hourly}) == (202, b"")
    # "missed" is not for clients to send: it arrives as "unknown" and is refused.
    assert curl(f"{url}?status=missed") == (202, b"")
    # Slugs of control characters and punctuation leave nothing to name a monitor once
    # slugified: refused at the edge, as Relay refuses them.
    for slug in ("\x01\x02", "!!!", "\u202e"):
        status, body = curl(f"{cron_url(server, tenant, quote(slug, safe=''))}?status=ok")
        assert (status, b"to make a slug of" in body) == (400, True)
    # One that keeps a letter names an unknown monitor: the consumer's to refuse.
    assert curl(f"{cron_url(server, tenant, quote('!x!', safe=''))}?status=ok") == (202, b"")
    # An over-long duration is the consumer's to refuse.
    assert curl(f"{url}?status=ok&duration=1e300") == (202, b"")
    assert curl(f"{url}?status=error") == (202, b"")

    with running(stack) as alive:
        wait_until(lambda: len(checkins(engine)) == 2, "two check-ins", alive)
        wait_until(lambda: len(project_errors(engine, tenant)) == 1, "a project error", alive)
        wait_until(
            lambda: len(monitor_errors(engine, tenant, "hourly")) == 2,
            "two monitor errors",
            alive,
        )
    assert sorted(c.status for c in checkins(engine).values()) == sorted(
        [CheckInStatus.OK, CheckInStatus.ERROR]
    )
    assert set(project_errors(engine, tenant)) == {ProcessingErrorType.MONITOR_NOT_FOUND}
    assert monitor_errors(engine, tenant, "hourly") == [
        ProcessingErrorType.CHECKIN_VALIDATION_FAILED,
        ProcessingErrorType.CHECKIN_VALIDATION_FAILED,
    ]
