"""Requests to the crons HTTP endpoint as a cron job sends them: the endpoint's URL for a
tenant's monitor, and the real `curl`."""

from __future__ import annotations

import subprocess

from tests.support.tenants import Tenant

CURL = "/usr/bin/curl"


def cron_url(server: str, tenant: Tenant, slug: str, *, key: bool = True) -> str:
    base = f"{server}/api/{tenant.project.id}/cron/{slug}/"
    return f"{base}{tenant.key.public_key}/" if key else base


def curl(*args: str) -> tuple[int, bytes]:
    """Runs the real curl; (status code, body)."""
    done = subprocess.run(
        [
            CURL,
            "--silent",
            "--show-error",
            "--max-time",
            "60",
            "--write-out",
            "\n%{http_code}",
            *args,
        ],
        capture_output=True,
        check=True,
        timeout=90,
    )
    body, _, code = done.stdout.rpartition(b"\n")
    return int(code), body
