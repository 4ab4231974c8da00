"""Celery Beat auto-monitoring end to end, on both backends: a real Celery beat and
worker (kombu's filesystem transport: no broker to run) with sentry-sdk's Celery
integration (`monitor_beat_tasks=True`) check in against a real `vigil serve`. Each
beat entry becomes a monitor named after it, with the schedule and the Celery app's
timezone; a task that succeeds is an `ok` run, one that raises an `error` run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from pathlib import Path

import pytest

from tests.support.serve import Running, monitor_with_checkins, serve
from tests.support.services import free_port
from vigil.config import Settings

CELERY = Path(sys.executable).parent / "celery"

# The Celery app the jobs run in. Beat runs every entry once at start (then on its
# schedule), so the test need not wait for a schedule to come round; the rest is plain
# Celery and the SDK's own integration.
JOBS = """
import os

import sentry_sdk
from celery import Celery
from celery.beat import ScheduleEntry, Scheduler
from celery.schedules import crontab, schedstate
from sentry_sdk.integrations.celery import CeleryIntegration

sentry_sdk.init(
    dsn=os.environ["JOBS_DSN"],
    integrations=[CeleryIntegration(monitor_beat_tasks=True)],
    default_integrations=False,
)
queue = os.path.join(os.path.dirname(os.path.abspath(__file__)), "queue")
os.makedirs(queue, exist_ok=True)
app = Celery("jobs", broker="filesystem://")
app.conf.broker_transport_options = {"data_folder_in": queue, "data_folder_out": queue}
app.conf.timezone = "Europe/Berlin"
app.conf.beat_schedule = {
    "nightly-report": {"task": "jobs.report", "schedule": crontab(minute=30, hour=3)},
    "Sync every 10 minutes": {"task": "jobs.sync", "schedule": 600.0},
}


@app.task
def report():
    return "done"


@app.task
def sync():
    raise RuntimeError("upstream is down")


class RunAtStart(ScheduleEntry):
    def is_due(self):
        if self.total_run_count == 0:
            return schedstate(True, 1.0)
        return super().is_due()


class RunAtStartScheduler(Scheduler):
    Entry = RunAtStart
"""


@pytest.fixture
def server(stack: Settings) -> Iterator[Running]:
    with serve(replace(stack, bind=f"127.0.0.1:{free_port()}")) as running:
        yield running


@contextmanager
def celery(args: list[str], cwd: Path, env: dict[str, str]) -> Iterator[None]:
    log = (cwd / f"{args[0]}.log").open("w")
    process = subprocess.Popen(
        [str(CELERY), "-A", "jobs", *args],
        cwd=cwd,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        log.close()


def test_celery_beat_tasks_become_monitors_with_their_runs(server: Running, tmp_path: Path) -> None:
    dsn, headers = server.credentials()
    (tmp_path / "jobs.py").write_text(JOBS)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTRY_")}
    env.update(JOBS_DSN=dsn, PYTHONPATH=str(tmp_path))
    beat = ["beat", "-S", "jobs:RunAtStartScheduler", "--max-interval", "1", "-l", "info"]
    with ExitStack() as stack:
        stack.enter_context(celery(["worker", "--pool=solo", "-l", "info"], tmp_path, env))
        stack.enter_context(celery(beat, tmp_path, env))
        try:
            report, (ran,) = monitor_with_checkins(server, headers, "nightly-report", ["ok"])
            sync, (failed,) = monitor_with_checkins(
                server, headers, "sync-every-10-minutes", ["error"]
            )
        except AssertionError:
            for name in ("worker.log", "beat.log"):
                print(f"--- celery {name}:\n{(tmp_path / name).read_text()}")
            raise

    assert report["name"] == "nightly-report"
    assert report["config"]["schedule_type"] == "crontab"
    assert report["config"]["schedule"] == "30 3 * * *"
    assert report["config"]["timezone"] == "Europe/Berlin"
    assert sync["name"] == "sync-every-10-minutes"  # named by its slug, as Sentry does
    assert sync["config"]["schedule_type"] == "interval"
    assert sync["config"]["schedule"] == [10, "minute"]
    # beat's in_progress and the worker's outcome are one run, with its duration
    for run in (ran, failed):
        assert run["environment"] == "production"
        assert run["duration"] is not None
    assert sync["environments"][0]["status"] == "error"
