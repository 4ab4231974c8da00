"""DSN key authentication for ingest: where a key may be presented (pure, as a table),
the caching of looked-up keys, and every answer through a real server on both
backends."""

from __future__ import annotations

import base64
import time
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import Engine

from tests.support.tenants import Tenant, make_tenant, set_key_active
from vigil.ingest.auth import (
    MISSING,
    IngestAuthError,
    KeyCache,
    PresentedKey,
    check_key,
    client_name,
    key_from_dsn,
    normalize_key,
    presented_key,
)
from vigil.tenancy import store
from vigil.tenancy.store import ProjectKey

KEY = "0123456789abcdef0123456789abcdef"
OTHER = "fedcba9876543210fedcba9876543210"


def basic(user: str) -> str:
    return "Basic " + base64.b64encode(user.encode()).decode()


# --- where the key comes from (pure) ---------------------------------------------------


@pytest.mark.parametrize(
    ("sources", "expected"),
    [
        ({}, None),
        (
            {"x_sentry_auth": f"Sentry sentry_key={KEY}, sentry_version=7, sentry_client=c/1"},
            PresentedKey(KEY, "x-sentry-auth", "c/1"),
        ),
        ({"x_sentry_auth": f"sentry_key={KEY}"}, PresentedKey(KEY, "x-sentry-auth")),
        ({"x_sentry_auth": "Sentry sentry_version=7"}, None),
        (
            {"authorization": f"Sentry sentry_key={KEY}, sentry_client=c/2"},
            PresentedKey(KEY, "authorization", "c/2"),
        ),
        ({"authorization": basic(f"{KEY}:")}, PresentedKey(KEY, "authorization")),
        ({"authorization": basic(f"{KEY}:secret")}, PresentedKey(KEY, "authorization")),
        ({"authorization": basic(":")}, None),
        (
            {"authorization": f"DSN http://{KEY}@example.com/1"},
            PresentedKey(KEY, "authorization"),
        ),
        ({"authorization": "Bearer vgl_token"}, None),
        ({"query_key": KEY, "query_client": "js/7"}, PresentedKey(KEY, "query", "js/7")),
        ({"path_key": KEY}, PresentedKey(KEY, "path")),
        # precedence: path, X-Sentry-Auth, Authorization, query
        ({"path_key": KEY, "x_sentry_auth": f"sentry_key={OTHER}"}, PresentedKey(KEY, "path")),
        (
            {"x_sentry_auth": f"sentry_key={KEY}", "authorization": basic(f"{OTHER}:")},
            PresentedKey(KEY, "x-sentry-auth"),
        ),
        (
            {"authorization": basic(f"{KEY}:"), "query_key": OTHER},
            PresentedKey(KEY, "authorization"),
        ),
    ],
)
def test_presented_key(sources: dict[str, str], expected: PresentedKey | None) -> None:
    assert presented_key(**sources) == expected


def test_basic_authorization_that_does_not_decode_is_refused() -> None:
    with pytest.raises(IngestAuthError) as caught:
        presented_key(authorization="Basic %%%")
    assert caught.value.status == 401


@pytest.mark.parametrize(
    ("dsn", "expected"),
    [
        (f"http://{KEY}@127.0.0.1:9000/1", KEY),
        (f"https://{KEY}:secret@host/prefix/42", KEY),
        ("http://127.0.0.1:9000/1", None),
        ("not a url", None),
        ("http://[::1/1", None),
    ],
)
def test_key_from_dsn(dsn: str, expected: str | None) -> None:
    assert key_from_dsn(dsn) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(KEY, KEY), (KEY.upper(), KEY), (f" {KEY} ", KEY), ("abc", None), ("g" * 32, None)],
)
def test_normalize_key(raw: str, expected: str | None) -> None:
    if expected is None:
        with pytest.raises(IngestAuthError, match="malformed DSN key") as caught:
            normalize_key(raw)
        assert caught.value.status == 401
    else:
        assert normalize_key(raw) == expected


def key(project_id: int = 1, active: bool = True) -> ProjectKey:
    return ProjectKey(7, project_id, KEY, "Default", active)


@pytest.mark.parametrize(
    ("found", "project_id", "status", "detail"),
    [
        (key(), 1, None, None),
        (None, 1, 401, "unknown DSN key"),
        (key(active=False), 1, 403, "DSN key is disabled"),
        (key(project_id=2), 1, 403, "DSN key belongs to another project"),
        (key(project_id=2, active=False), 1, 403, "DSN key is disabled"),
    ],
)
def test_check_key(
    found: ProjectKey | None, project_id: int, status: int | None, detail: str | None
) -> None:
    if status is None:
        assert check_key(found, project_id) == found
        return
    with pytest.raises(IngestAuthError) as caught:
        check_key(found, project_id)
    assert caught.value.status == status
    assert detail is not None and caught.value.detail.startswith(detail)


@pytest.mark.parametrize(
    ("presented", "user_agent", "expected"),
    [
        (
            PresentedKey(KEY, "x-sentry-auth", "sentry.python/2.75.0"),
            "ua/1",
            "sentry.python/2.75.0",
        ),
        (PresentedKey(KEY, "x-sentry-auth"), "sentry-cli/3.8.2", "sentry-cli/3.8.2"),
        (PresentedKey(KEY, "query"), None, None),
        (None, "  ", None),
        (None, "x" * 500, "x" * 200),
    ],
)
def test_client_name(
    presented: PresentedKey | None, user_agent: str | None, expected: str | None
) -> None:
    assert client_name(presented, user_agent) == expected


# --- the key cache ---------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_key_cache_reuses_a_lookup_until_the_ttl_then_looks_again() -> None:
    rows = {KEY: key()}
    lookups: list[str] = []

    def lookup(public_key: str) -> ProjectKey | None:
        lookups.append(public_key)
        return rows.get(public_key)

    clock = Clock()
    cache = KeyCache(lookup, ttl_s=2.0, clock=clock)
    assert cache.get(KEY) == key()
    rows[KEY] = key(active=False)
    clock.now += 1.9
    assert cache.get(KEY) == key()  # still the remembered one
    clock.now += 0.1
    assert cache.get(KEY) == key(active=False)
    assert lookups == [KEY, KEY]


def test_key_cache_forget_drops_a_key_at_once() -> None:
    rows = {KEY: key()}
    cache = KeyCache(rows.get, clock=Clock())
    assert cache.get(KEY) == key()
    rows[KEY] = key(active=False)
    cache.forget(KEY)
    assert cache.get(KEY) == key(active=False)


def test_key_cache_cached_answers_only_fresh_entries_and_never_looks_up() -> None:
    rows = {KEY: key()}
    lookups: list[str] = []

    def lookup(public_key: str) -> ProjectKey | None:
        lookups.append(public_key)
        return rows.get(public_key)

    clock = Clock()
    cache = KeyCache(lookup, ttl_s=2.0, clock=clock)
    assert cache.cached(KEY) is None  # never looked up: only `get` can tell
    assert cache.get(KEY) == key()
    assert cache.get("0" * 32) is None
    assert cache.cached(KEY) == (key(),)
    assert cache.cached("0" * 32) == (None,)  # known not to exist
    clock.now += 2.0
    rows[KEY] = key(active=False)
    assert cache.cached(KEY) is None  # expired: this caller is to look it up again
    # Meanwhile the others get the expired entry, not a lookup each.
    assert cache.cached(KEY) == (key(),)
    assert cache.cached(KEY) == (key(),)
    assert cache.get(KEY) == key(active=False)
    assert cache.cached(KEY) == (key(active=False),)
    cache.forget(KEY)
    assert cache.cached(KEY) is None
    assert lookups == [KEY, "0" * 32, KEY]


def test_key_cache_a_failed_lookup_lets_the_next_caller_look_up() -> None:
    clock = Clock()
    failing = [False]

    def lookup(public_key: str) -> ProjectKey | None:
        if failing[0]:
            raise OSError("the database is down")
        return key()

    cache = KeyCache(lookup, ttl_s=2.0, clock=clock)
    assert cache.get(KEY) == key()
    clock.now += 2.0
    failing[0] = True
    assert cache.cached(KEY) is None
    with pytest.raises(OSError):
        cache.get(KEY)
    assert cache.cached(KEY) is None  # nobody is looking it up: this caller is to
    # A caller that claimed the lookup and never made it holds it for a TTL at most.
    assert cache.cached(KEY) == (key(),)
    clock.now += 2.0
    assert cache.cached(KEY) is None


def test_key_cache_keeps_at_most_max_entries() -> None:
    lookups: list[str] = []

    def lookup(public_key: str) -> ProjectKey | None:
        lookups.append(public_key)
        return None

    cache = KeyCache(lookup, max_entries=2, clock=Clock())
    for public_key in ("a", "b", "c", "a"):
        cache.get(public_key)
    assert lookups == ["a", "b", "c", "a"]  # "a" was evicted by "c"


# --- through a real server -------------------------------------------------------------


@pytest.fixture
def tenant_a(engine: Engine) -> Tenant:
    return make_tenant(engine, "org-a", "project-a")


@pytest.fixture
def tenant_b(engine: Engine) -> Tenant:
    return make_tenant(engine, "org-b", "project-b")


CHECK_IN = orjson.dumps({"monitor_slug": "job", "status": "ok"})


def envelope_body(header: dict[str, Any] | None = None) -> bytes:
    item = orjson.dumps({"type": "check_in", "length": len(CHECK_IN)})
    return orjson.dumps(header or {}) + b"\n" + item + b"\n" + CHECK_IN + b"\n"


def send(
    server: str,
    project_id: int,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
    body: bytes | None = None,
) -> httpx.Response:
    return httpx.post(
        f"{server}/api/{project_id}/envelope/",
        content=envelope_body() if body is None else body,
        headers=headers or {},
        params=params or {},
        timeout=60,
    )


def auth_forms(tenant: Tenant, server: str) -> dict[str, dict[str, Any]]:
    public = tenant.key.public_key
    return {
        "x-sentry-auth": {
            "headers": {"X-Sentry-Auth": f"Sentry sentry_key={public}, sentry_version=7"}
        },
        "query": {"params": {"sentry_key": public, "sentry_version": "7"}},
        "basic": {"headers": {"Authorization": basic(f"{public}:")}},
        "authorization-sentry": {"headers": {"Authorization": f"Sentry sentry_key={public}"}},
        "envelope-dsn": {"body": envelope_body({"dsn": tenant.dsn(server)})},
    }


def test_every_form_of_dsn_key_authenticates(server: str, tenant_a: Tenant) -> None:
    for form, request in auth_forms(tenant_a, server).items():
        response = send(server, tenant_a.project.id, **request)
        assert (response.status_code, response.json()) == (200, {}), form


def test_missing_key_gets_401_with_reason(server: str, tenant_a: Tenant) -> None:
    response = send(server, tenant_a.project.id)
    assert response.status_code == 401
    assert response.json() == {"detail": MISSING}


def test_unknown_key_gets_401(server: str, tenant_a: Tenant) -> None:
    response = send(server, tenant_a.project.id, {"X-Sentry-Auth": f"Sentry sentry_key={KEY}"})
    assert (response.status_code, response.json()) == (401, {"detail": "unknown DSN key"})


def test_malformed_key_gets_401(server: str, tenant_a: Tenant) -> None:
    response = send(server, tenant_a.project.id, params={"sentry_key": "nope"})
    assert response.status_code == 401
    assert response.json() == {"detail": "malformed DSN key: expected 32 hexadecimal characters"}


def test_disabled_key_gets_403(engine: Engine, server: str, tenant_a: Tenant) -> None:
    set_key_active(engine, tenant_a.key, False)
    for form, request in auth_forms(tenant_a, server).items():
        response = send(server, tenant_a.project.id, **request)
        assert response.status_code == 403, form
        assert response.json() == {"detail": "DSN key is disabled"}, form


def test_key_of_project_a_cannot_write_to_project_b(
    server: str, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    for form, request in auth_forms(tenant_a, server).items():
        response = send(server, tenant_b.project.id, **request)
        assert response.status_code == 403, form
        assert response.json() == {
            "detail": "DSN key belongs to another project and cannot write to project "
            f"{tenant_b.project.id}"
        }, form


def test_key_of_project_a_cannot_write_to_a_project_that_does_not_exist(
    server: str, tenant_a: Tenant
) -> None:
    headers = {"X-Sentry-Auth": f"Sentry sentry_key={tenant_a.key.public_key}"}
    response = send(server, 999_999, headers)
    assert response.status_code == 403


def test_a_second_key_of_the_same_project_also_works(
    engine: Engine, server: str, tenant_a: Tenant
) -> None:
    with engine.begin() as conn:
        second = store.create_key(conn, tenant_a.project, "second")
    headers = {"X-Sentry-Auth": f"Sentry sentry_key={second.public_key}"}
    assert send(server, tenant_a.project.id, headers).status_code == 200


def test_key_disabled_by_another_process_stops_working_within_the_cache_ttl(
    engine: Engine, server: str, tenant_a: Tenant
) -> None:
    headers = {"X-Sentry-Auth": f"Sentry sentry_key={tenant_a.key.public_key}"}
    assert send(server, tenant_a.project.id, headers).status_code == 200  # now cached
    set_key_active(engine, tenant_a.key, False)  # as `vigil key disable` would
    deadline = time.monotonic() + 60
    while (status := send(server, tenant_a.project.id, headers).status_code) == 200:
        assert time.monotonic() < deadline, "the disabled key kept working"
        time.sleep(0.1)
    assert status == 403
