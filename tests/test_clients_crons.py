"""End to end with the real clients against a real `vigil serve` on both backends:
check-ins sent by sentry-sdk (`capture_checkin`, `@sentry_sdk.monitor`) and by
`sentry-cli monitors run` create their monitors and show up, with the right statuses,
in the management API."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from tests.support.serve import Running, serve
from tests.support.services import free_port
from vigil.config import Settings

WAIT_S = 120.0
SENTRY_CLI = Path(sys.executable).parent / "sentry-cli"
T = TypeVar("T")

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


def credentials(running: Running) -> tuple[str, dict[str, str]]:
    dsn, token = running.banner("DSN"), running.banner("API token")
    assert dsn is not None and token is not None
    return dsn, {"Authorization": f"Bearer {token}"}


def poll(fetch: Callable[[], T | None], what: str, running: Running) -> T:
    """`fetch()` until it returns something, within WAIT_S."""
    deadline = time.monotonic() + WAIT_S
    while True:
        found = fetch()
        if found is not None:
            return found
        if running.process.poll() is not None:
            raise AssertionError("vigil serve exited:\n" + "\n".join(running.output))
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}:\n" + "\n".join(running.output))
        time.sleep(0.1)


def monitor_with_checkins(
    running: Running, headers: dict[str, str], slug: str, statuses: list[str]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The monitor and its check-ins (newest first), once their statuses are these."""
    url = f"{running.base_url}/api/0/organizations/default/monitors/{slug}/"

    def fetch() -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        monitor = httpx.get(url, headers=headers, timeout=10)
        if monitor.status_code == 404:
            return None
        assert monitor.status_code == 200, monitor.text
        checkins = httpx.get(url + "checkins/", headers=headers, timeout=10)
        assert checkins.status_code == 200, checkins.text
        body: list[dict[str, Any]] = checkins.json()
        if [c["status"] for c in body] != statuses:
            return None
        return monitor.json(), body

    return poll(fetch, f"{slug} with check-ins {statuses}", running)


def test_sentry_sdk_checkins_create_monitors_seen_in_the_api(server: Running) -> None:
    dsn, headers = credentials(server)
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
    dsn, headers = credentials(server)
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
