"""The processes a benchmark runs and watches: `vigil` children in a home of their own,
their output kept for when they fail, and their resident memory."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

SAMPLE_EVERY_S = 0.05
STOP_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Child:
    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self, last: int = 40) -> str:
        return "\n".join(self.lines[-last:])


@contextmanager
def vigil_process(args: list[str], env: dict[str, str]) -> Iterator[Child]:
    """`vigil ARGS…` as a child process while inside; stopped as Ctrl-C would at the
    end. Its output is kept, and shown if it ends in a failure."""
    process = subprocess.Popen(
        [sys.executable, "-m", "vigil", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    child = Child(process)

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            child.lines.append(line.rstrip("\n"))

    threading.Thread(target=pump, daemon=True).start()
    try:
        yield child
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.returncode not in (0, -signal.SIGINT, 130):
            print(f"vigil {' '.join(args)} failed:\n{child.output()}", file=sys.stderr)


def rss_bytes(pid: int) -> int:
    """Resident memory of `pid` and all its descendants (0 once it is gone)."""
    total = 0
    stack = [pid]
    while stack:
        current = stack.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        if match:
            total += int(match.group(1)) * 1024
        stack.extend(int(c) for c in children)
    return total


class PeakMemory:
    """The peak of `rss_bytes(pid)` while inside, sampled every 50 ms (Linux's /proc;
    elsewhere it stays 0)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_EVERY_S):
            self.peak = max(self.peak, rss_bytes(self.pid))

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
