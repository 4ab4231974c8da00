"""A client that hangs up in the middle of its request body: the server counts it
(499, as nginx names it), logs one line at INFO, and neither answers 500 nor logs a
traceback; the next request is served as usual."""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import Engine

from tests.support.tenants import Tenant, make_tenant


@pytest.fixture
def tenant(engine: Engine) -> Tenant:
    return make_tenant(engine, "org-a", "web")


def hang_up_midway(server: str, head: str) -> None:
    address = urlsplit(server)
    with socket.create_connection((address.hostname, address.port)) as sock:
        sock.sendall(head.encode() + b"{}\n")  # far less than Content-Length says
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(10)
        with contextlib.suppress(OSError):
            sock.recv(1024)


def test_a_client_gone_midway_is_counted_not_an_error(
    server: str, tenant: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    envelope = (
        f"POST /api/{tenant.project.id}/envelope/ HTTP/1.1\r\nHost: x\r\n"
        f"X-Sentry-Auth: Sentry sentry_key={tenant.key.public_key}\r\n"
        "Content-Length: 99999\r\n\r\n"
    )
    monitor = (
        "PUT /api/0/organizations/org-a/monitors/nightly/ HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {tenant.token}\r\nContent-Type: application/json\r\n"
        "Content-Length: 5000\r\n\r\n"
    )
    hang_up_midway(server, envelope)
    hang_up_midway(server, monitor)
    deadline = time.monotonic() + 30
    while sum("client disconnected" in r.getMessage() for r in caplog.records) < 2:
        assert time.monotonic() < deadline, [r.getMessage() for r in caplog.records]
        time.sleep(0.05)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    metrics = httpx.get(f"{server}/metrics").text
    assert 'route="/api/{project_id}/envelope/",status="499"' in metrics
    assert 'status="500"' not in metrics
    assert httpx.get(f"{server}/_health/").status_code == 200
