"""What people see of the clock, through a real server on both backends: the
monitors-clock endpoint, and a missed check-in in the check-ins API with its
expected time."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import Engine

from tests.support.checkins import Sender, env_row
from tests.support.tenants import Tenant, make_tenant
from vigil.monitors import clock_store
from vigil.monitors.checkin_processing import CheckinProcessing
from vigil.monitors.clock_tasks import mark_environment_missing
from vigil.options import set_option

H13 = datetime(2026, 3, 1, 13, 0, tzinfo=UTC)
T = int(H13.timestamp())
CLOCK = "/api/0/organizations/org-a/monitors-clock/"


@pytest.fixture
def tenant(engine: Engine) -> Tenant:
    return make_tenant(engine, "org-a", "web")


def get(server: str, tenant: Tenant, path: str) -> httpx.Response:
    return httpx.get(server + path, headers={"Authorization": f"Bearer {tenant.token}"})


def test_the_clock_before_its_first_tick(server: str, tenant: Tenant) -> None:
    response = get(server, tenant, CLOCK)
    assert response.status_code == 200
    assert response.json() == {
        "lastTick": None,
        "lagSeconds": None,
        "partitions": [],
        "decision": None,
        "systemIncidentStart": None,
        "options": {
            "collectMetrics": False,
            "useDecisions": False,
            "pctDeviationAnomalyThreshold": -10.0,
            "pctDeviationIncidentThreshold": -30.0,
            "tickDecisionWindow": 5,
        },
    }


def test_the_clock_position_lag_and_decision(server: str, tenant: Tenant, engine: Engine) -> None:
    with engine.begin() as conn:
        set_option(conn, clock_store.COLLECT_METRICS, True)
        clock_store.advance(conn, {0: T, 1: T + 120})
        clock_store.evaluate_tick(conn, T, clock_store.read_options(conn))
    body = get(server, tenant, CLOCK).json()
    assert body["lastTick"] == "2026-03-01T13:00:00Z"
    assert body["lagSeconds"] > 0
    assert body["partitions"] == [
        {"partition": 0, "position": "2026-03-01T13:00:00Z"},
        {"partition": 1, "position": "2026-03-01T13:02:00Z"},
    ]
    assert body["decision"] == "normal"
    assert body["options"]["collectMetrics"] is True


def test_the_clock_needs_a_token_of_the_organization(server: str, engine: Engine) -> None:
    other = make_tenant(engine, "org-b")
    assert httpx.get(server + CLOCK).status_code == 401
    assert get(server, other, CLOCK).status_code in (403, 404)


def test_a_missed_checkin_in_the_checkins_api(server: str, tenant: Tenant, engine: Engine) -> None:
    send = Sender(engine, tenant.project, CheckinProcessing(produce_occurrence=lambda p, k: None))
    send(monitor_config={"schedule_type": "crontab", "schedule": "0 * * * *"})
    env_id = env_row(engine).id
    with engine.begin() as conn:
        mark_environment_missing(
            conn, env_id, datetime(2026, 3, 1, 13, 1, tzinfo=UTC), lambda p, k: None
        )
    response = get(server, tenant, "/api/0/organizations/org-a/monitors/nightly/checkins/")
    assert response.status_code == 200
    missed, ok = response.json()
    assert missed["status"] == "missed"
    assert missed["expectedTime"] == missed["dateCreated"] == "2026-03-01T13:00:00Z"
    assert missed["duration"] is None
    assert ok["status"] == "ok"
