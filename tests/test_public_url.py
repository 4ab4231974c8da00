"""`system.url-prefix`: the URL clients reach vigil at, kept in the database, so a CLI
command run without the server's environment prints the same DSN as the server and the
API do. Both backends; the API through a real server socket, the CLI as a process."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import Engine

from tests.conftest import run_vigil
from tests.support.tenants import Tenant, make_tenant
from vigil.config import Settings
from vigil.options import set_option
from vigil.tenancy.public_url import URL_PREFIX_OPTION, is_url_prefix

PREFIX = "https://vigil.example.com/sentry"


@pytest.mark.parametrize(
    "value",
    ["https://vigil.example.com", "http://10.0.0.5:9000", "https://example.com/sentry/"],
)
def test_http_urls_with_a_host_are_prefixes(value: str) -> None:
    assert is_url_prefix(value)


@pytest.mark.parametrize(
    "value",
    [
        "vigil.example.com",  # no scheme
        "ftp://vigil.example.com",
        "https://",  # no host
        "https://vigil.example.com/?a=1",
        "https://vigil.example.com/#top",
        "https://vigil.example.com:port/",
        "https://vigil example.com/",
        "https://vigil.example.com/\tsentry",
        "https://user:secret@vigil.example.com/",
        "https://user@vigil.example.com/",
        "https://x.example.com/" + "a" * 200,
        42,
        ["https://vigil.example.com"],
    ],
)
def test_anything_else_is_not(value: object) -> None:
    assert not is_url_prefix(value)


def test_cli_dsns_follow_the_option_not_the_shells_environment(stack: Settings) -> None:
    assert run_vigil(stack, "org", "create", "default").returncode == 0
    # Without the option: this process's own VIGIL_BIND, as before.
    before = run_vigil(stack, "project", "create", "before")
    assert before.returncode == 0, before.stderr
    assert f"@{stack.bind}/" in before.stdout

    refused = run_vigil(stack, "option", "set", URL_PREFIX_OPTION, '"vigil.example.com"')
    assert refused.returncode != 0
    assert "the URL clients reach vigil at" in refused.stderr
    stored = run_vigil(stack, "option", "set", URL_PREFIX_OPTION, f'"{PREFIX}"')
    assert stored.returncode == 0, stored.stderr

    created = run_vigil(stack, "project", "create", "after")
    assert created.returncode == 0, created.stderr
    (dsn_line,) = [line for line in created.stdout.splitlines() if line.startswith("DSN: ")]
    assert dsn_line.startswith("DSN: https://")
    assert dsn_line.endswith("@vigil.example.com/sentry/" + dsn_line.rsplit("/", 1)[1])
    listed = run_vigil(stack, "key", "list", "--project", "after")
    assert listed.returncode == 0, listed.stderr
    assert dsn_line.removeprefix("DSN: ") in listed.stdout

    # Unset again: back to the process's own settings.
    assert run_vigil(stack, "option", "set", URL_PREFIX_OPTION, "null").returncode == 0
    again = run_vigil(stack, "key", "list", "--project", "after")
    assert f"@{stack.bind}/" in again.stdout


@pytest.fixture
def tenant(engine: Engine) -> Tenant:
    return make_tenant(engine, "org-u", "project-u")


def test_the_keys_api_builds_dsns_from_the_option(
    engine: Engine, server: str, tenant: Tenant
) -> None:
    url = f"{server}/api/0/projects/org-u/project-u/keys/"
    headers = {"Authorization": f"Bearer {tenant.token}"}
    pid, public = tenant.project.id, tenant.key.public_key
    before = httpx.get(url, headers=headers).json()[0]["dsn"]
    assert "vigil.example.com" not in before["public"]
    with engine.begin() as conn:
        set_option(conn, URL_PREFIX_OPTION, PREFIX + "/")
    (key,) = httpx.get(url, headers=headers).json()
    assert key["dsn"]["public"] == f"https://{public}@vigil.example.com/sentry/{pid}"
    assert key["dsn"]["crons"] == f"{PREFIX}/api/{pid}/cron/___MONITOR_SLUG___/{public}/"
