"""`vigil serve` as a user runs it, in a child process, for end-to-end tests: started
until healthy, its banner (DSN, API token) readable, killed when the block ends, and
`poll` to wait for what it will show through its API."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from tests.conftest import subprocess_env
from vigil.config import Settings

START_TIMEOUT_S = 90.0
WAIT_S = 120.0
T = TypeVar("T")


@dataclass
class Running:
    process: subprocess.Popen[str]
    base_url: str
    output: list[str]

    def banner(self, field: str) -> str | None:
        for line in self.output:
            match = re.match(rf"\s*{field}:\s+(\S+)", line)
            if match:
                return match.group(1)
        return None

    def credentials(self) -> tuple[str, dict[str, str]]:
        """The printed DSN and the printed token as request headers."""
        dsn, token = self.banner("DSN"), self.banner("API token")
        assert dsn is not None and token is not None
        return dsn, {"Authorization": f"Bearer {token}"}


def _pump(stream: object, sink: list[str]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        sink.append(line.rstrip("\n"))


@contextmanager
def serve(settings: Settings) -> Iterator[Running]:
    """`vigil serve` with these settings, healthy, until the block ends (then killed,
    with every process it started)."""
    env = subprocess_env(settings)
    process = subprocess.Popen(
        [sys.executable, "-m", "vigil", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: killed whole below
    )
    output: list[str] = []
    threading.Thread(target=_pump, args=(process.stdout, output), daemon=True).start()
    running = Running(process, settings.base_url, output)
    try:
        wait_healthy(running)
        wait_for_banner(running)
        yield running
    finally:
        # The whole group at once: children that outlived a killed supervisor (they
        # stop when told, after their batch) went on using the database while the next
        # fixture emptied it, and PostgreSQL saw a deadlock.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def wait_healthy(running: Running) -> None:
    """Returns once `/_health/` answers 200; fails if the server exits or never does."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if running.process.poll() is not None:
            raise AssertionError("vigil serve exited:\n" + "\n".join(running.output))
        try:
            if httpx.get(f"{running.base_url}/_health/", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("vigil serve did not become healthy:\n" + "\n".join(running.output))


def wait_for_banner(running: Running) -> None:
    """Returns once the banner (printed when the web app accepts connections, checked
    every 50 ms by the supervisor) is out, so that its DSN and token can be read."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while not any(line.lstrip().startswith("Data:") for line in running.output):
        if running.process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError("vigil serve printed no banner:\n" + "\n".join(running.output))
        time.sleep(0.02)
    # "Data:" is its last line but one, printed in the same write as the rest
    time.sleep(0.05)


def poll(fetch: Callable[[], T | None], what: str, running: Running) -> T:
    """`fetch()` until it returns something, within WAIT_S; fails early if the server exits."""
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
    """The monitor (monitors API) and its check-ins (newest first), once their statuses
    are these."""
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
        # Read again, after the check-ins: the first read may predate the last of them
        # (and the environment state it brought, applied in the same transaction).
        monitor = httpx.get(url, headers=headers, timeout=10)
        assert monitor.status_code == 200, monitor.text
        return monitor.json(), body

    return poll(fetch, f"{slug} with check-ins {statuses}", running)
