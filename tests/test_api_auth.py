"""Bearer-token auth of the management API: the rules as tables, then every answer
through a real server on both backends, and the key endpoints it guards (a key disabled
through the API stops ingest at once)."""

from __future__ import annotations

import httpx
import orjson
import pytest
from sqlalchemy import Engine
from starlette.exceptions import HTTPException

from tests.support.tenants import Tenant, bearer, make_tenant, make_token, revoke
from vigil.api.auth import NO_CREDENTIALS, bearer_token, check_access, scope_satisfied
from vigil.config import Settings
from vigil.tenancy import store
from vigil.tenancy.store import ApiToken, Organization

# --- the rules (pure) ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("Bearer vgl_abc", "vgl_abc"),
        ("bearer   vgl_abc ", "vgl_abc"),
        ("BEARER vgl_abc", "vgl_abc"),
        ("Bearer", None),
        ("Bearer ", None),
        ("Basic dXNlcjo=", None),
        ("Token vgl_abc", None),
    ],
)
def test_bearer_token(header: str | None, expected: str | None) -> None:
    assert bearer_token(header) == expected


@pytest.mark.parametrize(
    ("held", "required", "granted"),
    [
        (["org:read"], "org:read", True),
        (["org:write"], "org:read", True),
        (["org:admin"], "org:write", True),
        (["org:read"], "org:write", False),
        (["project:admin"], "org:read", False),
        (["project:read"], "project:read", True),
        (["project:read"], "project:write", False),
        (["project:write", "org:read"], "project:write", True),
        ([], "org:read", False),
        (["org:bogus"], "org:read", False),
    ],
)
def test_scope_satisfied(held: list[str], required: str, granted: bool) -> None:
    assert scope_satisfied(held, required) is granted


ORG_A = Organization(1, "org-a", "A")
ORG_B = Organization(2, "org-b", "B")


def token(org_id: int = 1, scopes: tuple[str, ...] = ("org:read",)) -> ApiToken:
    return ApiToken(9, org_id, "t", "vgl_abc", scopes, True)


@pytest.mark.parametrize(
    ("org", "tok", "required", "detail"),
    [
        (ORG_A, token(), "org:read", None),
        (ORG_B, token(), "org:read", "this token has no access to organization 'org-b'"),
        (None, token(), "org:read", "this token has no access to organization 'org-b'"),
        (ORG_A, token(), "org:write", "this token lacks the org:write scope"),
        (ORG_B, token(2, ()), "org:read", "this token lacks the org:read scope"),
    ],
)
def test_check_access(
    org: Organization | None, tok: ApiToken, required: str, detail: str | None
) -> None:
    if detail is None:
        assert check_access(tok, org, "org-a", required) == org
        return
    with pytest.raises(HTTPException) as caught:
        check_access(tok, org, "org-b", required)
    assert (caught.value.status_code, caught.value.detail) == (403, detail)


# --- through a real server -------------------------------------------------------------


@pytest.fixture
def tenant_a(engine: Engine) -> Tenant:
    return make_tenant(engine, "org-a", "project-a")


@pytest.fixture
def tenant_b(engine: Engine) -> Tenant:
    return make_tenant(engine, "org-b", "project-b")


def get(server: str, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.get(f"{server}{path}", headers=headers or {}, timeout=60)


def test_token_reads_its_own_organization(server: str, tenant_a: Tenant, engine: Engine) -> None:
    with engine.begin() as conn:
        store.set_feature(conn, tenant_a.org, "organizations:crons", True)
        store.set_feature(conn, tenant_a.org, "organizations:off", False)
    response = get(server, "/api/0/organizations/org-a/", bearer(tenant_a.token))
    assert response.status_code == 200
    assert response.json() == {
        "id": str(tenant_a.org.id),
        "slug": "org-a",
        "name": "org-a",
        "features": ["organizations:crons"],
    }
    projects = get(server, "/api/0/organizations/org-a/projects/", bearer(tenant_a.token))
    assert projects.status_code == 200
    assert projects.json() == [
        {"id": str(tenant_a.project.id), "slug": "project-a", "name": "project-a"}
    ]


def test_the_api_root_says_whose_token_it_is(engine: Engine, server: str, tenant_a: Tenant) -> None:
    scoped = make_token(engine, tenant_a.org, ["project:write", "org:read"])
    answer = get(server, "/api/0/", bearer(scoped))
    assert answer.status_code == 200
    assert answer.json() == {
        "version": "0",
        "auth": {"scopes": ["org:read", "project:write"]},
        "user": None,
    }
    anonymous = get(server, "/api/0/")
    assert anonymous.json() == {"version": "0", "auth": None, "user": None}
    assert get(server, "/api/0/", bearer("vgl_" + "0" * 64)).status_code == 401
    revoke(engine, tenant_a.org, scoped)
    assert get(server, "/api/0/", bearer(scoped)).json() == {"detail": "token has been revoked"}


def test_the_organizations_a_token_sees_are_its_own(
    engine: Engine, server: str, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    answer = get(server, "/api/0/organizations/", bearer(tenant_a.token))
    assert answer.status_code == 200
    [org] = answer.json()
    assert (org["id"], org["slug"], org["name"]) == (str(tenant_a.org.id), "org-a", "org-a")
    assert org["dateCreated"].endswith("Z")
    assert (org["require2FA"], org["isEarlyAdopter"]) == (False, False)
    assert get(server, "/api/0/organizations/").status_code == 401
    project_only = make_token(engine, tenant_a.org, ["project:read"])
    assert get(server, "/api/0/organizations/", bearer(project_only)).status_code == 403


def test_token_of_org_a_cannot_read_org_b(server: str, tenant_a: Tenant, tenant_b: Tenant) -> None:
    for path in (
        "/api/0/organizations/org-b/",
        "/api/0/organizations/org-b/projects/",
        "/api/0/projects/org-b/project-b/keys/",
    ):
        response = get(server, path, bearer(tenant_a.token))
        assert response.status_code == 403, path
        assert response.json() == {"detail": "this token has no access to organization 'org-b'"}, (
            path
        )


def test_token_cannot_probe_organizations_that_do_not_exist(server: str, tenant_a: Tenant) -> None:
    response = get(server, "/api/0/organizations/nope/", bearer(tenant_a.token))
    assert (response.status_code, response.json()) == (
        403,
        {"detail": "this token has no access to organization 'nope'"},
    )


def test_missing_credentials_get_401(server: str, tenant_a: Tenant) -> None:
    for headers in ({}, {"Authorization": "Basic dXNlcjo="}):
        response = get(server, "/api/0/organizations/org-a/", headers)
        assert (response.status_code, response.json()) == (401, {"detail": NO_CREDENTIALS})


def test_unknown_token_gets_401(server: str, tenant_a: Tenant) -> None:
    response = get(server, "/api/0/organizations/org-a/", bearer("vgl_" + "0" * 64))
    assert (response.status_code, response.json()) == (401, {"detail": "invalid token"})


def test_revoked_token_gets_401(engine: Engine, server: str, tenant_a: Tenant) -> None:
    assert get(server, "/api/0/organizations/org-a/", bearer(tenant_a.token)).status_code == 200
    revoke(engine, tenant_a.org, tenant_a.token)
    response = get(server, "/api/0/organizations/org-a/", bearer(tenant_a.token))
    assert (response.status_code, response.json()) == (401, {"detail": "token has been revoked"})


def test_missing_scope_gets_403(engine: Engine, server: str, tenant_a: Tenant) -> None:
    project_only = make_token(engine, tenant_a.org, ["project:read"])
    response = get(server, "/api/0/organizations/org-a/", bearer(project_only))
    assert (response.status_code, response.json()) == (
        403,
        {"detail": "this token lacks the org:read scope"},
    )
    keys = get(server, "/api/0/projects/org-a/project-a/keys/", bearer(project_only))
    assert keys.status_code == 200
    created = httpx.post(
        f"{server}/api/0/projects/org-a/project-a/keys/",
        json={"name": "ci"},
        headers=bearer(project_only),
    )
    assert (created.status_code, created.json()) == (
        403,
        {"detail": "this token lacks the project:write scope"},
    )


# --- project keys ----------------------------------------------------------------------


def keys_url(server: str, project: str = "project-a") -> str:
    return f"{server}/api/0/projects/org-a/{project}/keys/"


def test_keys_are_listed_in_sentrys_shape(stack: Settings, server: str, tenant_a: Tenant) -> None:
    response = httpx.get(keys_url(server), headers=bearer(tenant_a.token))
    assert response.status_code == 200
    public = tenant_a.key.public_key
    pid = tenant_a.project.id
    base = stack.base_url
    assert response.json() == [
        {
            "id": public,
            "name": "Default",
            "label": "Default",
            "public": public,
            "isActive": True,
            "projectId": pid,
            "dsn": {
                "public": f"http://{public}@{base.removeprefix('http://')}/{pid}",
                "crons": f"{base}/api/{pid}/cron/___MONITOR_SLUG___/{public}/",
            },
        }
    ]


def test_created_key_is_listed_and_authenticates_ingest(server: str, tenant_a: Tenant) -> None:
    created = httpx.post(keys_url(server), json={"name": "ci"}, headers=bearer(tenant_a.token))
    assert created.status_code == 201
    body = created.json()
    assert (body["name"], body["isActive"], body["projectId"]) == ("ci", True, tenant_a.project.id)
    listed = httpx.get(keys_url(server), headers=bearer(tenant_a.token)).json()
    assert [k["name"] for k in listed] == ["Default", "ci"]
    assert ingest(server, tenant_a.project.id, body["public"]).status_code == 200


def ingest(server: str, project_id: int, public_key: str) -> httpx.Response:
    payload = orjson.dumps({"monitor_slug": "job", "status": "ok"})
    return httpx.post(
        f"{server}/api/{project_id}/envelope/",
        content=b'{}\n{"type":"check_in"}\n' + payload,
        headers={"X-Sentry-Auth": f"Sentry sentry_key={public_key}"},
    )


def test_key_disabled_through_the_api_stops_ingest_at_once(server: str, tenant_a: Tenant) -> None:
    public = tenant_a.key.public_key
    url = keys_url(server) + f"{public}/"
    assert ingest(server, tenant_a.project.id, public).status_code == 200

    disabled = httpx.put(url, json={"isActive": False}, headers=bearer(tenant_a.token))
    assert (disabled.status_code, disabled.json()["isActive"]) == (200, False)
    refused = ingest(server, tenant_a.project.id, public)
    assert (refused.status_code, refused.json()) == (403, {"detail": "DSN key is disabled"})

    enabled = httpx.put(url, json={"isActive": True}, headers=bearer(tenant_a.token))
    assert (enabled.status_code, enabled.json()["isActive"]) == (200, True)
    assert ingest(server, tenant_a.project.id, public).status_code == 200


@pytest.mark.parametrize(
    ("method", "body", "status", "detail"),
    [
        ("POST", b"[]", 400, "request body must be a JSON object"),
        ("POST", b"{", 400, "request body is not valid JSON"),
        ("POST", b'{"name": 5}', 400, "name must be a non-empty string"),
        ("POST", orjson.dumps({"name": "x" * 65}), 400, "name must be at most 64 characters"),
        ("PUT", b'{"isActive": "no"}', 400, "isActive must be true or false"),
        ("PUT", b'{"name": "other"}', 400, "renaming a key is not supported"),
    ],
)
def test_bad_key_requests_get_400_with_reason(
    server: str, tenant_a: Tenant, method: str, body: bytes, status: int, detail: str
) -> None:
    url = keys_url(server) + (f"{tenant_a.key.public_key}/" if method == "PUT" else "")
    response = httpx.request(
        method,
        url,
        content=body,
        headers={**bearer(tenant_a.token), "Content-Type": "application/json"},
    )
    assert response.status_code == status
    assert response.json()["detail"].startswith(detail)


def test_key_of_another_project_or_unknown_project_gets_404(
    engine: Engine, server: str, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    with engine.begin() as conn:
        other = store.create_project(conn, tenant_a.org, "other")
    response = httpx.put(
        keys_url(server, "other") + f"{tenant_a.key.public_key}/",
        json={"isActive": False},
        headers=bearer(tenant_a.token),
    )
    assert response.status_code == 404
    assert response.json() == {
        "detail": f"key {tenant_a.key.public_key!r} does not exist in project {other.slug!r}"
    }
    missing = httpx.get(keys_url(server, "nope"), headers=bearer(tenant_a.token))
    assert (missing.status_code, missing.json()) == (
        404,
        {"detail": "project 'nope' does not exist in organization 'org-a'"},
    )


def test_unknown_routes_and_methods_answer_json(server: str) -> None:
    missing = get(server, "/api/0/nothing-here/")
    assert (missing.status_code, missing.json()) == (404, {"detail": "Not Found"})
    wrong_method = httpx.delete(f"{server}/api/0/organizations/org-a/")
    assert wrong_method.status_code == 405
    assert wrong_method.json() == {"detail": "Method Not Allowed"}
    assert set(wrong_method.headers["allow"].split(", ")) == {"GET", "HEAD"}
