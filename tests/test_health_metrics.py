"""`/_health/` and `/metrics` through a real server, on both backends."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import anyio
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, delete, insert, select, update

from tests.support import sink_consumer
from tests.support.checkins import T0, Sender
from tests.support.live_server import live_server
from tests.support.services import free_port
from tests.support.tenants import make_tenant
from vigil.api.app import create_app
from vigil.api.health import CheckResult, clock_problem, health_report, run_check
from vigil.config import Settings
from vigil.db.tables import environment as environment_table
from vigil.db.tables import monitor as monitor_table
from vigil.db.tables import monitor_clock as clock_table
from vigil.db.tables import monitor_environment as me_table
from vigil.monitors import store as monitor_store
from vigil.monitors.checkin_processing import CheckinProcessing
from vigil.monitors.enums import ObjectStatus
from vigil.streams import consumers
from vigil.streams.backend import get_backend
from vigil.streams.runner import produce

# --- the report (pure) -----------------------------------------------------------------


def test_report_of_passing_checks_is_200() -> None:
    status, body = health_report({"log": CheckResult(True), "database": CheckResult(True)})
    assert status == 200
    assert body == {"ok": True, "checks": {"database": {"ok": True}, "log": {"ok": True}}}


def test_report_of_a_failing_check_is_503_naming_it() -> None:
    status, body = health_report(
        {"database": CheckResult(False, "no such database"), "log": CheckResult(True)}
    )
    assert status == 503
    assert body == {
        "ok": False,
        "detail": "failing checks: database",
        "checks": {"database": {"ok": False, "error": "no such database"}, "log": {"ok": True}},
    }


def test_run_check_turns_exceptions_and_timeouts_into_failures() -> None:
    def fails() -> None:
        raise RuntimeError("broken")

    def hangs() -> None:
        time.sleep(1)

    def run(check: Callable[[], None], timeout_s: float = 10.0) -> CheckResult:
        return anyio.run(run_check, check, timeout_s)

    assert run(lambda: None) == CheckResult(True)
    assert run(fails) == CheckResult(False, "broken")
    assert run(hangs, 0.01) == CheckResult(False, "no answer within 0.01 s")


def test_a_clock_more_than_the_lag_allowed_behind_is_a_problem() -> None:
    now = T0 + timedelta(minutes=10)
    assert clock_problem(now - timedelta(seconds=179), now, 180) is None
    late = clock_problem(now - timedelta(seconds=181), now, 180)
    assert late is not None
    assert late.startswith(
        "the crons clock's last tick (2026-03-01T12:07:04Z) is 181 s behind (more than 180 s)"
    )
    never = clock_problem(None, now, 180)
    assert never is not None and never.startswith("the crons clock has not ticked yet")


# --- through a real server -------------------------------------------------------------


def test_liveness_is_ok(server: str) -> None:
    response = httpx.get(f"{server}/_health/")
    assert (response.status_code, response.text) == (200, "ok")
    assert httpx.get(f"{server}/_health").status_code == 200
    assert httpx.get(f"{server}/_health/?full=0").text == "ok"


def test_full_check_reports_database_and_log(server: str) -> None:
    response = httpx.get(f"{server}/_health/?full=1", timeout=60)
    assert response.status_code == 200
    assert response.json() == {
        "ok": True,
        "checks": {"database": {"ok": True}, "log": {"ok": True}},
    }


def set_last_tick(engine: Engine, at: datetime) -> None:
    with engine.begin() as conn:
        conn.execute(delete(clock_table))
        minute = int(at.timestamp()) // 60 * 60
        conn.execute(insert(clock_table).values(id=1, last_tick=minute, date_updated=at))


def test_the_clock_check_fails_while_missed_runs_are_not_detected(
    server: str, engine: Engine
) -> None:
    def health(query: str) -> httpx.Response:
        return httpx.get(f"{server}/_health/?{query}", timeout=60)

    # No `vigil periodic` here: the clock never ticked.
    never = health("clock=1")
    assert never.status_code == 503
    body = never.json()
    assert body["detail"] == "failing checks: crons_clock"
    assert body["checks"]["crons_clock"]["error"].startswith("the crons clock has not ticked")
    assert body["checks"]["database"] == {"ok": True}

    set_last_tick(engine, datetime.now(UTC))
    ticking = health("full=1&clock=1")
    assert ticking.status_code == 200, ticking.text
    assert ticking.json()["checks"]["crons_clock"] == {"ok": True}

    set_last_tick(engine, datetime.now(UTC) - timedelta(minutes=10))
    stalled = health("clock=1")
    assert stalled.status_code == 503
    assert "s behind (more than 180 s)" in stalled.json()["checks"]["crons_clock"]["error"]
    assert health("clock=1&clock_max_lag=3600").status_code == 200
    # A load balancer's check is not the clock's: the web replicas keep serving.
    assert health("full=1").json()["checks"].keys() == {"database", "log"}
    for bad in ("abc", "0", "-5", "nan", str(10**9)):
        refused = health(f"clock=1&clock_max_lag={bad}")
        assert refused.status_code == 400, bad
        assert "clock_max_lag: a number of seconds" in refused.json()["detail"]


def unreachable_database(stack: Settings, backend_name: str) -> Settings:
    if backend_name == "kafka":
        url = stack.database_url.rsplit("/", 1)[0] + f"/missing_{uuid.uuid4().hex[:8]}"
    else:  # a directory is not a SQLite database
        url = f"sqlite:///{stack.home}"
    return replace(stack, database_url=url)


def test_full_check_fails_with_503_naming_the_database_when_it_is_unreachable(
    stack: Settings, backend_name: str
) -> None:
    with live_server(create_app(unreachable_database(stack, backend_name))) as server:
        liveness = httpx.get(f"{server}/_health/")
        response = httpx.get(f"{server}/_health/?full=1", timeout=60)
    assert (liveness.status_code, liveness.text) == (200, "ok")
    assert response.status_code == 503
    body = response.json()
    assert body["detail"] == "failing checks: database"
    assert body["checks"]["log"] == {"ok": True}
    assert body["checks"]["database"]["ok"] is False
    assert body["checks"]["database"]["error"]


def test_full_check_fails_with_503_naming_the_log_when_the_broker_is_down(
    stack: Settings, backend_name: str
) -> None:
    if backend_name != "kafka":
        pytest.skip("an unreachable broker is a Kafka situation")
    down = replace(stack, kafka_bootstrap_servers=f"127.0.0.1:{free_port()}")
    with live_server(create_app(down)) as server:
        response = httpx.get(f"{server}/_health/?full=1", timeout=60)
    assert response.status_code == 503
    body = response.json()
    assert body["detail"] == "failing checks: log"
    assert body["checks"]["database"] == {"ok": True}
    assert "cannot reach the Kafka broker" in body["checks"]["log"]["error"]


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_metrics_count_requests_by_route_template_and_status(server: str, engine: Engine) -> None:
    tenant = make_tenant(engine, "acme")
    httpx.get(f"{server}/_health/")
    httpx.get(f"{server}/no/such/path")
    envelope = b'{}\n{"type":"event"}\n{}\n'
    auth = {"X-Sentry-Auth": f"Sentry sentry_key={tenant.key.public_key}"}
    httpx.post(f"{server}/api/{tenant.project.id}/envelope/", content=envelope, headers=auth)
    httpx.post(f"{server}/api/{tenant.project.id}/envelope", content=envelope)

    response = httpx.get(f"{server}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    found = samples(response.text)

    def count(route: str, status: str) -> float:
        labels = (("route", route), ("status", status))
        return found.get(("vigil_http_requests_total", labels), 0.0)

    assert count("/_health/", "200") >= 1
    assert count("unmatched", "404") >= 1
    assert count("/api/{project_id}/envelope/", "200") >= 1
    assert count("/api/{project_id}/envelope/", "401") >= 1
    assert found[("vigil_envelope_items_dropped_total", (("item_type", "event"),))] >= 1


def test_metrics_report_consumer_lag_per_group_topic_and_partition(
    stack: Settings, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A real consumer definition, registered for this test: nobody consumes it, so
    # everything produced to its topic is lag.
    monkeypatch.setitem(
        consumers.CONSUMERS, sink_consumer.NAME, lambda _s: sink_consumer.definition(engine)
    )
    with live_server(create_app(stack)) as server:
        backend = get_backend(stack)
        try:
            for i in range(3):
                produce(backend, stack, sink_consumer.TOPIC, b"{}", f"key-{i}")
        finally:
            backend.close()
        response = httpx.get(f"{server}/metrics", timeout=60)
    assert response.status_code == 200
    group, topic = stack.topic(sink_consumer.NAME), stack.topic(sink_consumer.TOPIC)
    lag = {
        dict(labels)["partition"]: value
        for (name, labels), value in samples(response.text).items()
        if name == "vigil_consumer_lag"
        and dict(labels)["group"] == group
        and dict(labels)["topic"] == topic
    }
    assert lag, response.text
    assert sum(lag.values()) == 3
    assert set(lag) == {str(p) for p in range(stack.partitions)}


def test_metrics_report_the_monitors_state_for_alerting(server: str, engine: Engine) -> None:
    tenant = make_tenant(engine, "acme", "web")
    send = Sender(engine, tenant.project, CheckinProcessing())
    daily = {"schedule": {"type": "crontab", "value": "0 3 * * *"}}
    send(T0, monitor_slug="backup", environment="prod", monitor_config=daily, status="error")
    send(T0, monitor_slug="backup", environment="staging", monitor_config=daily, status="error")
    send(T0, monitor_slug="report", monitor_config=daily, status="ok")
    send(T0, monitor_slug="new-job", monitor_config=daily, status="in_progress")
    send(T0, monitor_slug="old-job", monitor_config=daily, status="error")
    with engine.begin() as conn:
        staging = monitor_store.get_monitor(conn, tenant.project.id, "backup")
        old = monitor_store.get_monitor(conn, tenant.project.id, "old-job")
        assert staging is not None and old is not None
        conn.execute(
            update(me_table)
            .where(me_table.c.monitor_id == staging.id)
            .where(
                me_table.c.environment_id.in_(
                    select(environment_table.c.id).where(environment_table.c.name == "staging")
                )
            )
            .values(is_muted=True)
        )
        conn.execute(
            update(monitor_table)
            .where(monitor_table.c.id == old.id)
            .values(status=int(ObjectStatus.DISABLED))
        )

    found = samples(httpx.get(f"{server}/metrics", timeout=60).text)
    counts = {
        dict(labels)["status"]: value
        for (name, labels), value in found.items()
        if name == "vigil_monitor_environments"
        and dict(labels)["organization"] == "acme"
        and dict(labels)["project"] == "web"
    }
    assert counts == {"error": 1, "muted": 1, "ok": 1, "active": 1, "disabled": 1}
    failing = [
        dict(labels)
        for (name, labels), value in found.items()
        if name == "vigil_monitor_environment_failing" and value == 1
    ]
    assert failing == [
        {"organization": "acme", "project": "web", "monitor": "backup", "environment": "prod"}
    ]
