"""A NUL character in what a client sends to the management API: a 400 naming where it
is, on both databases (PostgreSQL's text cannot hold one: it was a 500 there, and on
SQLite a search silently ignored what followed it)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from tests.support.tenants import Tenant, make_tenant

MONITOR = {
    "project": "web",
    "slug": "nightly",
    "name": "Nightly",
    "config": {"schedule_type": "crontab", "schedule": "0 3 * * *"},
}


@pytest.fixture
def tenant(engine: Engine) -> Tenant:
    return make_tenant(engine, "org-a", "web")


@pytest.mark.parametrize(
    ("method", "path", "body", "where"),
    [
        ("PUT", "/api/0/organizations/org-a/monitors/nightly/", {"name": "a\x00b"}, "name"),
        (
            "POST",
            "/api/0/organizations/org-a/monitors/",
            {**MONITOR, "slug": "other", "name": "x\x00"},
            "name",
        ),
        (
            "POST",
            "/api/0/organizations/org-a/monitors/",
            {**MONITOR, "slug": "tz", "config": {"schedule": "@daily", "timezone": "UTC\x00"}},
            "config.timezone",
        ),
        ("POST", "/api/0/projects/org-a/web/keys/", {"name": "k\x00"}, "name"),
        (
            "POST",
            "/api/0/organizations/org-a/dynamic-sampling/custom-rules/",
            {"query": "transaction:a\x00b", "projects": [1], "period": "1h"},
            "query",
        ),
        ("PUT", "/api/0/organizations/org-a/issues/?id=1", {"status": "resolved\x00"}, "status"),
        ("GET", "/api/0/organizations/org-a/issues/?query=a%00b", None, "query"),
        (
            "GET",
            "/api/0/organizations/org-a/issues/?environment=a%00b",
            None,
            "environment",
        ),
        (
            "GET",
            "/api/0/organizations/org-a/issues/?project=a%00b",
            None,
            "project",
        ),
        (
            "GET",
            "/api/0/organizations/org-a/monitors/nightly/checkins/?environment=a%00b",
            None,
            "environment",
        ),
        ("GET", "/api/0/organizations/org-a/monitors/?query=%00", None, "query"),
        ("POST", "/api/1/envelope/?sentry_key=a%00b", None, "sentry_key"),
    ],
)
def test_a_nul_character_is_a_400_naming_where_it_is(
    server: str, tenant: Tenant, method: str, path: str, body: Any, where: str
) -> None:
    headers = {"Authorization": f"Bearer {tenant.token}"}
    created = httpx.post(
        f"{server}/api/0/organizations/org-a/monitors/", json=MONITOR, headers=headers
    )
    assert created.status_code == 201, created.text
    answer = httpx.request(method, server + path, json=body, headers=headers, timeout=30)
    assert answer.status_code == 400, answer.text
    assert answer.json()["detail"] == f"{where} contains a NUL character"
    # the server is fine and nothing was changed
    monitor = httpx.get(f"{server}/api/0/organizations/org-a/monitors/nightly/", headers=headers)
    assert monitor.json()["name"] == "Nightly"
