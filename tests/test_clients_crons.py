"""End to end with the real clients against a real `vigil serve` on both backends:
check-ins sent by sentry-sdk (`capture_checkin`, `@sentry_sdk.monitor`) and by
`sentry-cli monitors run` create their monitors and show up, with the right statuses,
in the management API."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from tests.support.serve import WAIT_S, Running, monitor_with_checkins, serve
from tests.support.services import free_port
from vigil.config import Settings

SENTRY_CLI = Path(sys.executable).parent / "sentry-cli"

# sentry-sdk is process-global state: it runs in a child process of its own.
SDK_CLIENT = """
import sys

import sentry_sdk
from sentry_sdk.crons import capture_checkin

sentry_sdk.init(dsn=sys.argv[1], default_integrations=False)
crontab = {
    "schedule": {"type": "crontab", "value": "0 3 * * *"},
    "checkin_margin": 5,
    "max_runtime": 30,
    "timezone": "Europe/Berlin",
}
started = capture_checkin(monitor_slug="sdk-job", status="in_progress", monitor_config=crontab)
capture_checkin(monitor_slug="sdk-job", check_in_id=started, status="ok", duration=1.5)

interval = {"schedule": {"type": "interval", "value": 10, "unit": "minute"}}


@sentry_sdk.monitor(monitor_slug="decorated-job", monitor_config=interval)
def succeeds():
    return 1


@sentry_sdk.monitor(monitor_slug="decorated-fail", monitor_config=interval)
def fails():
    raise RuntimeError("boom")


succeeds()
try:
    fails()
except RuntimeError:
    pass
sentry_sdk.flush(timeout=30)
print(started)
"""


@pytest.fixture
def server(stack: Settings) -> Iterator[Running]:
    with serve(replace(stack, bind=f"127.0.0.1:{free_port()}")) as running:
        yield running


def test_sentry_sdk_checkins_create_monitors_seen_in_the_api(server: Running) -> None:
    dsn, headers = server.credentials()
    client = subprocess.run(
        [sys.executable, "-c", SDK_CLIENT, dsn],
        capture_output=True,
        text=True,
        timeout=WAIT_S,
    )
    assert client.returncode == 0, client.stderr
    started = client.stdout.strip()

    monitor, (checkin,) = monitor_with_checkins(server, headers, "sdk-job", ["ok"])
    assert monitor["config"]["schedule_type"] == "crontab"
    assert monitor["config"]["schedule"] == "0 3 * * *"
    assert monitor["config"]["timezone"] == "Europe/Berlin"
    assert (monitor["config"]["checkin_margin"], monitor["config"]["max_runtime"]) == (5, 30)
    assert [e["name"] for e in monitor["environments"]] == ["production"]
    assert uuid.UUID(checkin["id"]) == uuid.UUID(started)  # in_progress, then completed
    assert checkin["duration"] == 1500

    monitor, (checkin,) = monitor_with_checkins(server, headers, "decorated-job", ["ok"])
    assert monitor["config"]["schedule_type"] == "interval"
    assert monitor["config"]["schedule"] == [10, "minute"]
    assert checkin["duration"] is not None
    monitor, _ = monitor_with_checkins(server, headers, "decorated-fail", ["error"])
    assert monitor["environments"][0]["status"] == "error"


def test_sentry_cli_monitors_run_reports_the_exit_code(server: Running) -> None:
    dsn, headers = server.credentials()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTRY_")}
    env.update(SENTRY_DSN=dsn, SENTRY_LOAD_DOTENV="0")

    def run(command: str) -> int:
        argv = [str(SENTRY_CLI), "monitors", "run", "-s", "*/5 * * * *", "cli-job", "--"]
        done = subprocess.run(
            [*argv, command], env=env, capture_output=True, text=True, timeout=WAIT_S
        )
        return done.returncode

    assert run("true") == 0
    monitor_with_checkins(server, headers, "cli-job", ["ok"])
    assert run("false") == 1  # the command's exit code
    monitor, (failed, succeeded) = monitor_with_checkins(
        server, headers, "cli-job", ["error", "ok"]
    )
    assert monitor["config"]["schedule"] == "*/5 * * * *"
    assert failed["environment"] == succeeded["environment"] == "production"
    assert failed["duration"] is not None
