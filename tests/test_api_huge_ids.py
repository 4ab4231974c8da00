"""Ids no row can have, over real HTTP on both backends: a number beyond 64 bits (which
SQLite refuses outright), too long for `int()`, or a Unicode digit `int` refuses, in a
project path, a `project=` filter, an issue path, a cursor, a page size or an ingest
path, and a NUL in any path parameter (which PostgreSQL text cannot hold), is a 4xx with
a reason, never a 500."""

from __future__ import annotations

from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import Engine

from tests.conftest import run_vigil
from tests.support.tenants import Tenant, make_tenant
from vigil.config import Settings
from vigil.db.ids import MAX_ID, parse_id

HUGE = str(2**64 + 1)
ENDLESS = "9" * 5000  # more digits than int() converts
SUPERSCRIPT = "²"  # str.isdigit() is true, int() refuses it


@pytest.fixture
def tenant(engine: Engine) -> Tenant:
    return make_tenant(engine, "acme")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", 1),
        (str(MAX_ID), MAX_ID),
        (str(MAX_ID + 1), None),
        (HUGE, None),
        ("0", None),
        ("", None),
        ("-1", None),
        (SUPERSCRIPT, None),
        ("١٢", None),  # Arabic-Indic digits: int() takes them, but they are no id
        (" 1", None),
        ("0" * 30 + "1", None),
    ],
)
def test_parse_id(text: str, expected: int | None) -> None:
    assert parse_id(text) == expected


@pytest.mark.parametrize("bad", [HUGE, SUPERSCRIPT, str(MAX_ID + 1)])
@pytest.mark.parametrize(
    "path",
    [
        "/api/0/projects/acme/{id}/keys/",
        "/api/0/projects/acme/{id}/monitors/nightly/",
        "/api/0/projects/acme/{id}/processing-errors/",
        "/api/0/projects/acme/{id}/issues/",
        "/api/0/organizations/acme/issues/{id}/",
        "/api/0/organizations/acme/monitors/?project={id}",
        "/api/0/organizations/acme/issues/?project={id}",
    ],
)
def test_an_impossible_id_is_not_found(server: str, tenant: Tenant, path: str, bad: str) -> None:
    url = server + path.format(id=quote(bad))
    response = httpx.get(url, headers={"Authorization": f"Bearer {tenant.token}"}, timeout=30)
    assert response.status_code == 404, response.text
    assert bad in response.json()["detail"]


@pytest.mark.parametrize(
    ("listing", "query", "field"),
    [
        (listing, query, field)
        for listing in ("monitors", "issues")
        for query, field in [
            (f"cursor=0:{HUGE}:0", "cursor"),
            (f"cursor=0:{ENDLESS}:0", "cursor"),
            (f"cursor=0:{SUPERSCRIPT}:0", "cursor"),
            (f"per_page={SUPERSCRIPT}", "per_page"),
        ]
    ]
    + [("issues", f"limit={SUPERSCRIPT}", "limit")],
)
def test_an_impossible_page_is_a_field_error(
    server: str, tenant: Tenant, listing: str, query: str, field: str
) -> None:
    url = f"{server}/api/0/organizations/acme/{listing}/?{quote(query, safe='=:')}"
    response = httpx.get(url, headers={"Authorization": f"Bearer {tenant.token}"}, timeout=30)
    assert response.status_code == 400, response.text
    assert field in response.json()


def test_posting_to_an_impossible_project_is_not_found(server: str, tenant: Tenant) -> None:
    auth = {"Authorization": f"Bearer {tenant.token}"}
    occurrence = httpx.post(
        f"{server}/api/0/projects/acme/{HUGE}/occurrences/", json={}, headers=auth, timeout=30
    )
    assert occurrence.status_code == 404, occurrence.text
    created = httpx.post(
        f"{server}/api/0/organizations/acme/monitors/",
        json={"project": HUGE, "name": "n", "config": {"schedule": "0 * * * *"}},
        headers=auth,
        timeout=30,
    )
    assert created.status_code == 400, created.text
    assert "project" in created.json()


@pytest.mark.parametrize("bad", [HUGE, ENDLESS])
@pytest.mark.parametrize("path", ["/api/{id}/envelope/", "/api/{id}/cron/nightly/{key}/"])
def test_ingest_to_an_impossible_project_is_not_found(
    server: str, tenant: Tenant, path: str, bad: str
) -> None:
    url = server + path.format(id=bad, key=tenant.key.public_key)
    headers = {"X-Sentry-Auth": f"Sentry sentry_key={tenant.key.public_key}, sentry_version=7"}
    response = httpx.post(url, content=b"{}\n", headers=headers, timeout=30)
    assert response.status_code == 404, response.text
    assert response.json()["detail"].startswith(f"id {bad[:40]}")
    assert "64 bits" in response.json()["detail"]


@pytest.mark.parametrize(
    ("method", "path", "name"),
    [
        ("GET", "/api/0/organizations/a%00b/issues/", "organization_slug"),
        ("GET", "/api/0/projects/acme/a%00b/issues/", "project_slug"),
        ("PUT", "/api/0/projects/acme/app/keys/a%00b/", "key_id"),
        ("DELETE", "/api/0/projects/acme/app/processing-errors/a%00b/", "error_id"),
        ("GET", "/api/0/organizations/acme/monitors/a%00b/", "monitor_slug"),
        ("GET", "/api/0/organizations/acme/issues/1/events/a%00b/", "event_id"),
    ],
)
def test_a_nul_in_a_path_parameter_is_a_400_naming_it(
    server: str, tenant: Tenant, method: str, path: str, name: str
) -> None:
    # PostgreSQL text cannot hold NUL: the query would fail rather than find nothing.
    headers = {"Authorization": f"Bearer {tenant.token}"}
    response = httpx.request(method, server + path, json={}, headers=headers, timeout=30)
    assert response.status_code == 400, response.text
    assert response.json() == {"detail": f"{name} contains a NUL character"}


@pytest.mark.parametrize("bad", [SUPERSCRIPT, "--5", HUGE])
def test_an_impossible_custom_rule_project_is_a_field_error(
    server: str, tenant: Tenant, bad: str
) -> None:
    response = httpx.get(
        f"{server}/api/0/organizations/acme/dynamic-sampling/custom-rules/",
        params={"query": "transaction:/a", "project": bad},
        headers={"Authorization": f"Bearer {tenant.token}"},
        timeout=30,
    )
    assert response.status_code == 400, response.text
    assert response.json()["projects"] == [
        f"invalid project id: {bad if bad == HUGE else repr(bad)}"
    ]


@pytest.mark.parametrize("period", ["99999999999999999999d", "999999w"])
def test_a_stats_period_beyond_the_calendar_is_a_field_error(
    server: str, tenant: Tenant, period: str
) -> None:
    response = httpx.get(
        f"{server}/api/0/organizations/acme/issues/",
        params={"statsPeriod": period},
        headers={"Authorization": f"Bearer {tenant.token}"},
        timeout=30,
    )
    assert response.status_code == 400, response.text
    assert "statsPeriod" in response.json()


def test_revoking_a_token_by_an_id_no_row_can_have(stack: Settings, tenant: Tenant) -> None:
    for token_id in (HUGE, "0", "-5"):
        result = run_vigil(stack, "token", "revoke", "--org", "acme", "--id", token_id)
        assert result.returncode != 0
        assert f"token {int(token_id)} does not exist in organization 'acme'" in result.stderr
        assert "Traceback" not in result.stderr
