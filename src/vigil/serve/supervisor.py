"""Runs child processes (the web app, each consumer), restarts a crashed one with
back-off, and stops them all on SIGINT/SIGTERM: each child gets SIGTERM, finishes its
batch and commits; one still running after the grace period is killed."""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from vigil.serve.backoff import Backoff

log = logging.getLogger("vigil.serve")

STOP_GRACE_SECONDS = 30.0
ANNOUNCE_WITHIN_S = 30.0
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # Children must not outlive a supervisor that was killed outright (SIGKILL).
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:  # not Linux: best effort only
        pass


@dataclass
class Child:
    name: str
    argv: Sequence[str]
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restart_at: float | None = None
    backoff: Backoff = field(default_factory=Backoff)


@dataclass(frozen=True)
class Announcement:
    """What to say once the web app accepts connections at `host`:`port` (the banner
    that names its address: said earlier, a client sent there at once was refused).
    `say(listening)`: said with False when the web app has not listened within
    ANNOUNCE_WITHIN_S, or before stopping without it, so that what only the banner
    shows (the first API token) is never lost."""

    host: str
    port: int
    say: Callable[[bool], None]


def accepts_connections(host: str, port: int) -> bool:
    """Whether something listens at host:port (a wildcard bind is asked on loopback)."""
    target = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    try:
        with socket.create_connection((target.strip("[]"), port), timeout=0.2):
            return True
    except OSError:
        return False


class Supervisor:
    def __init__(
        self,
        children: Mapping[str, Sequence[str]],
        env: Mapping[str, str],
        announcement: Announcement | None = None,
    ) -> None:
        self.children = [Child(name, argv) for name, argv in children.items()]
        self.env = dict(env)
        self._stop = threading.Event()
        self._announcement = announcement

    def request_stop(self, signum: int = signal.SIGTERM, _frame: object = None) -> None:
        if not self._stop.is_set():
            log.info("stopping", extra={"signal": signal.Signals(signum).name})
        self._stop.set()

    def _start(self, child: Child) -> None:
        child.process = subprocess.Popen(
            list(child.argv), env=self.env, preexec_fn=_die_with_parent
        )
        child.started_at = time.monotonic()
        child.restart_at = None
        log.info("started", extra={"child": child.name, "child_pid": child.process.pid})

    def run(self) -> int:
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGTERM, self.request_stop)
        for child in self.children:
            self._start(child)
        pending = self._announcement
        announce_by = time.monotonic() + ANNOUNCE_WITHIN_S
        while not self._stop.wait(0.05 if pending else 0.2):
            if pending is not None:
                listening = accepts_connections(pending.host, pending.port)
                if listening or time.monotonic() >= announce_by:
                    pending.say(listening)
                    pending = None
            now = time.monotonic()
            for child in self.children:
                if child.process is not None and child.process.poll() is not None:
                    code = child.process.returncode
                    delay = child.backoff.next_delay(now - child.started_at)
                    log.warning(
                        "child exited; restarting",
                        extra={"child": child.name, "exit_code": code, "restart_in_s": delay},
                    )
                    child.process = None
                    child.restart_at = now + delay
                elif (
                    child.process is None
                    and child.restart_at is not None
                    and now >= child.restart_at
                ):
                    self._start(child)
        if pending is not None:
            pending.say(False)
        return self._stop_all()

    def _stop_all(self) -> int:
        running = [c for c in self.children if c.process is not None and c.process.poll() is None]
        for child in running:
            assert child.process is not None
            child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        worst = 0
        for child in running:
            assert child.process is not None
            try:
                code = child.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("child did not stop in time; killing", extra={"child": child.name})
                child.process.kill()
                code = child.process.wait()
            # A child stopped by our own SIGTERM/SIGINT counts as a clean stop.
            if code not in (0, -signal.SIGTERM, -signal.SIGINT):
                log.warning(
                    "child stopped with an error", extra={"child": child.name, "exit_code": code}
                )
                worst = 1
            else:
                log.info("stopped", extra={"child": child.name})
        return worst


def vigil_argv(*args: str) -> list[str]:
    """The command line that runs `vigil <args>` with this interpreter."""
    return [sys.executable, "-m", "vigil", *args]


def child_env(base: Mapping[str, str], metrics_dir: str) -> dict[str, str]:
    env = dict(base)
    env["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    env["VIGIL_SUPERVISED"] = "1"
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def prepare_metrics_dir(path: str) -> None:
    """A fresh directory for this run's multi-process metrics (stale files would add up)."""
    os.makedirs(path, exist_ok=True)
    for name in os.listdir(path):
        if name.endswith(".db"):
            os.unlink(os.path.join(path, name))
