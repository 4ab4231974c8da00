"""`vigil serve` as a user runs it: one command, a printed DSN a real sentry-sdk can use,
a printed token the API accepts, a crashed child restarted, Ctrl-C stops cleanly, and a
second start bootstraps nothing."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path

import httpx
import sentry_sdk
from arroyo.types import Topic as LogTopic
from sentry_sdk.crons import capture_checkin

from tests.conftest import subprocess_env
from tests.support.serve import Running, serve, wait_healthy
from tests.support.services import free_port
from vigil.config import Settings
from vigil.streams import codecs
from vigil.streams.backend import LogBackend, get_backend
from vigil.streams.topics import Topic


def _children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(p) for p in text.split()]


def _cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def _stop(running: Running) -> int:
    running.process.send_signal(signal.SIGINT)
    return running.process.wait(timeout=60)


def _first_checkin(settings: Settings, backend: LogBackend) -> codecs.CheckInMessage:
    """The first check-in on ingest-monitors; clock pulses (on Kafka, one per partition
    a minute) are skipped."""
    consumer = backend.get_consumer(settings.topic(f"reader-{uuid.uuid4().hex[:12]}"))
    consumer.subscribe([LogTopic(settings.topic(Topic.INGEST_MONITORS))])
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            value = consumer.poll(0.2)
            if value is None:
                continue
            decoded = codecs.decode_monitor_message(value.payload.value)
            if isinstance(decoded, codecs.CheckInMessage):
                return decoded
    finally:
        consumer.close()
    raise AssertionError("no check-in reached ingest-monitors")


def test_serve_end_to_end(stack: Settings) -> None:
    settings = replace(stack, bind=f"127.0.0.1:{free_port()}")
    with serve(settings) as running:
        dsn = running.banner("DSN")
        token = running.banner("API token")
        assert dsn is not None
        assert token is not None and token.startswith("vgl_")
        assert re.fullmatch(r"http://[0-9a-f]{32}@127\.0\.0\.1:\d+/\d+", dsn)

        # the printed token reads its organization
        org = httpx.get(
            f"{running.base_url}/api/0/organizations/default/",
            headers={"Authorization": f"Bearer {token}"},
        )
        assert org.status_code == 200
        assert org.json()["slug"] == "default"

        # the full health check sees the database and the log
        health = httpx.get(f"{running.base_url}/_health/?full=1")
        assert health.status_code == 200, health.text

        # the crons clock starts ticking on its own (an idle log: by wall time)
        deadline = time.monotonic() + 60
        while (clock := httpx.get(f"{running.base_url}/_health/?clock=1")).status_code != 200:
            assert time.monotonic() < deadline, clock.text
            time.sleep(0.2)
        assert clock.json()["checks"]["crons_clock"] == {"ok": True}

        # a real sentry-sdk, pointed at the printed DSN, delivers a check-in to the log
        sentry_sdk.init(dsn=dsn, default_integrations=False)
        try:
            check_in_id = capture_checkin(monitor_slug="nightly-job", status="ok", duration=1.5)
            sentry_sdk.flush(timeout=30)
        finally:
            sentry_sdk.get_client().close(timeout=30)
            sentry_sdk.init(dsn=None)
        backend = get_backend(settings)
        try:
            decoded = _first_checkin(settings, backend)
        finally:
            backend.close()
        payload = decoded.payload_json()
        assert payload["monitor_slug"] == "nightly-job"
        assert payload["check_in_id"] == check_in_id
        assert decoded.sdk is not None and decoded.sdk.startswith("sentry.python/")

        # a crashed child is restarted by the supervisor
        (web_pid,) = [p for p in _children(running.process.pid) if " web" in _cmdline(p)]
        os.kill(web_pid, signal.SIGKILL)
        wait_healthy(running)
        assert any("child exited; restarting" in line for line in running.output)
        (new_web,) = [p for p in _children(running.process.pid) if " web" in _cmdline(p)]
        assert new_web != web_pid

        # Ctrl-C stops everything cleanly
        children = _children(running.process.pid)
        assert _stop(running) == 0
        for pid in children:
            assert (
                not Path(f"/proc/{pid}").exists()
                or "zombie" in Path(f"/proc/{pid}/status").read_text()
            )

    # a second start bootstraps nothing and shows no token again
    with serve(settings) as again:
        assert again.banner("DSN") == dsn
        assert any("nothing was bootstrapped" in line for line in again.output)
        assert not (again.banner("API token") or "").startswith("vgl_")
        assert _stop(again) == 0


def _serve_process(settings: Settings, *, logs: bool) -> subprocess.Popen[str]:
    """`vigil serve` in a process group of its own, its banner (and its log, with
    `logs`) on stdout, read as it comes."""
    return subprocess.Popen(
        [sys.executable, "-m", "vigil", "serve"],
        env=subprocess_env(settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if logs else subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )


def test_the_banner_comes_once_the_web_app_answers(stack: Settings) -> None:
    # A client handed the printed DSN at once must reach the server: the SDK drops a
    # check-in it cannot send, and does not retry.
    settings = replace(stack, bind=f"127.0.0.1:{free_port()}")
    process = _serve_process(settings, logs=False)
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if "listening on" in line:
                break
        else:
            raise AssertionError("vigil serve printed no banner")
        assert httpx.get(f"{settings.base_url}/_health/", timeout=30).status_code == 200
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def test_the_first_token_is_shown_even_if_the_web_app_never_listens(stack: Settings) -> None:
    # An address this host does not have: the web app cannot bind it. The banner, the
    # only place the first API token is shown, still comes out before vigil stops.
    settings = replace(stack, bind=f"192.0.2.1:{free_port()}")
    process = _serve_process(settings, logs=True)
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if "child exited; restarting" in line and "child=web" in line:
                break
        process.send_signal(signal.SIGINT)
        rest = process.stdout.read()
        process.wait(timeout=60)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    assert "the web app is not answering on 192.0.2.1" in rest
    assert re.search(r"API token: vgl_[0-9a-f]+", rest)
    assert "listening on" not in rest


def test_serve_refuses_a_port_another_program_listens_on(stack: Settings) -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        settings = replace(stack, bind=f"127.0.0.1:{port}")
        result = subprocess.run(
            [sys.executable, "-m", "vigil", "serve"],
            env=subprocess_env(settings),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}: another program listens there" in result.stderr
    assert "listening on" not in result.stdout


def test_serve_refuses_an_invalid_setting(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env.update(VIGIL_HOME=str(tmp_path), VIGIL_BIND="nowhere")
    result = subprocess.run(
        [sys.executable, "-m", "vigil", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "VIGIL_BIND must be HOST:PORT" in result.stderr
