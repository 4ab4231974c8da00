"""`/api/0/organizations/{org}/dynamic-sampling/custom-rules/` through a real server on
both backends: create, extend, look up, the 400s with their field, 429 on too many
rules, and auth."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select

from tests.support.sampling_rules import count_rows, insert_rules
from tests.support.tenants import Tenant, bearer, make_tenant, make_token
from vigil.db.tables import custom_dynamic_sampling_rule as rule_table
from vigil.sampling.rules import DATE_FORMAT, MAX_CUSTOM_RULES
from vigil.tenancy import store

PATH = "/api/0/organizations/{org}/dynamic-sampling/custom-rules/"


@pytest.fixture
def tenant(engine: Engine) -> Tenant:
    return make_tenant(engine, "org-a", "web")


@pytest.fixture
def second_project(engine: Engine, tenant: Tenant) -> store.Project:
    with engine.begin() as conn:
        return store.create_project(conn, tenant.org, "api")


def post(server: str, tenant: Tenant, body: Any, org: str = "org-a") -> httpx.Response:
    return httpx.post(
        server + PATH.format(org=org), json=body, headers=bearer(tenant.token), timeout=60
    )


def get(server: str, tenant: Tenant, params: Any, org: str = "org-a") -> httpx.Response:
    return httpx.get(
        server + PATH.format(org=org), params=params, headers=bearer(tenant.token), timeout=60
    )


def parse_date(text: str) -> datetime:
    return datetime.strptime(text, DATE_FORMAT).replace(tzinfo=UTC)


def test_post_creates_a_rule_in_sentrys_shape(
    server: str, tenant: Tenant, second_project: store.Project, engine: Engine
) -> None:
    before = datetime.now(UTC)
    projects = [second_project.id, tenant.project.id]
    response = post(
        server,
        tenant,
        {
            "query": "event.type:transaction transaction:/api/*",
            "projects": projects,
            "period": "2d",
        },
    )
    after = datetime.now(UTC)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {
        "ruleId",
        "condition",
        "startDate",
        "endDate",
        "numSamples",
        "sampleRate",
        "dateAdded",
        "projects",
        "orgId",
    }
    assert body["ruleId"] == 3001
    assert body["condition"] == {"op": "glob", "name": "event.transaction", "value": ["/api/*"]}
    assert (body["numSamples"], body["sampleRate"]) == (100, 1.0)
    assert body["projects"] == sorted(projects)
    assert body["orgId"] == tenant.org.id
    start = parse_date(body["startDate"])
    assert before - timedelta(microseconds=1) <= start <= after
    assert parse_date(body["endDate"]) == start + timedelta(days=2)
    assert parse_date(body["dateAdded"]) == start
    assert body["startDate"].endswith("Z") and len(body["startDate"]) == 27
    with engine.connect() as conn:
        query = conn.execute(select(rule_table.c.query)).scalar_one()
    assert query == "event.type:transaction transaction:/api/*"


def test_post_without_projects_or_with_minus_one_makes_one_org_rule(
    server: str, tenant: Tenant
) -> None:
    first = post(server, tenant, {"query": "environment:prod"})
    assert first.status_code == 200
    assert (first.json()["projects"], first.json()["ruleId"]) == ([], 3001)
    # default period: one hour
    body = first.json()
    assert parse_date(body["endDate"]) - parse_date(body["startDate"]) == timedelta(hours=1)
    second = post(server, tenant, {"query": "environment:prod", "projects": [-1]})
    assert second.json()["ruleId"] == 3001


def test_post_again_extends_the_rule(server: str, tenant: Tenant, engine: Engine) -> None:
    pid = tenant.project.id
    first = post(server, tenant, {"query": "transaction:/a", "projects": [pid], "period": "1h"})
    second = post(
        server,
        tenant,
        {
            "query": "event.type:transaction AND transaction:/a",
            "projects": [str(pid)],
            "period": "3h",
        },
    )
    assert (first.status_code, second.status_code) == (200, 200)
    a, b = first.json(), second.json()
    assert b["ruleId"] == a["ruleId"]
    assert b["startDate"] == a["startDate"]
    assert parse_date(b["endDate"]) - parse_date(a["startDate"]) >= timedelta(hours=3)
    # a shorter period later does not shorten it
    third = post(server, tenant, {"query": "transaction:/a", "projects": [pid], "period": "30m"})
    assert third.json()["endDate"] == b["endDate"]
    assert count_rows(engine) == (1, 1)
    # another project set is another rule
    org_rule = post(server, tenant, {"query": "transaction:/a", "period": "30m"})
    assert org_rule.json()["ruleId"] == 3002


def test_get_answers_the_rule_that_covers_the_projects(
    server: str, tenant: Tenant, second_project: store.Project
) -> None:
    p1, p2 = tenant.project.id, second_project.id
    created = post(server, tenant, {"query": "transaction:/a", "projects": [p1, p2]}).json()
    for projects in ([p2, p1], [p1], [p2]):
        found = get(server, tenant, {"query": "transaction:/a", "project": projects})
        assert (found.status_code, found.json()) == (200, created), projects
    # not covered: no project (an organization rule is asked for), another query
    missing = get(server, tenant, {"query": "transaction:/a"})
    assert (missing.status_code, missing.content) == (204, b"")
    assert get(server, tenant, {"query": "transaction:/b", "project": [p1]}).status_code == 204
    # an organization rule covers every project
    org_rule = post(server, tenant, {"query": "transaction:/b"}).json()
    for projects in ([], [p1], [p1, p2]):
        found = get(server, tenant, {"query": "transaction:/b", "project": projects})
        assert (found.status_code, found.json()) == (200, org_rule), projects


def test_get_without_any_rule_is_204(server: str, tenant: Tenant) -> None:
    response = get(server, tenant, {"query": "transaction:/nothing"})
    assert response.status_code == 204
    assert response.content == b""


def test_expired_rule_is_not_answered(server: str, tenant: Tenant, engine: Engine) -> None:
    post(server, tenant, {"query": "transaction:/a"})
    with engine.begin() as conn:
        conn.execute(rule_table.update().values(end_date=datetime.now(UTC) - timedelta(seconds=1)))
    assert get(server, tenant, {"query": "transaction:/a"}).status_code == 204
    # and its id is reused by the next rule
    assert post(server, tenant, {"query": "transaction:/a"}).json()["ruleId"] == 3001


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ({"projects": []}, "query", "query must be a string"),
        ({"query": ""}, "query", "query is empty"),
        ({"query": 5}, "query", "query must be a string"),
        ({"query": "a:1 OR b:2"}, "query", "OR is not supported"),
        ({"query": "event.type:error"}, "query", "event.type:error is not supported"),
        ({"query": "(transaction:/a)"}, "query", "parentheses are not supported"),
        ({"query": "transaction:/a", "period": "forever"}, "period", "invalid period 'forever'"),
        ({"query": "transaction:/a", "period": "0m"}, "period", "invalid period '0m'"),
        ({"query": "transaction:/a", "period": 60}, "period", "period must be a string"),
        ({"query": "transaction:/a", "projects": "1"}, "projects", "projects must be a list"),
        ({"query": "transaction:/a", "projects": [True]}, "projects", "invalid project id"),
        (
            {"query": "transaction:/a", "projects": [999999]},
            "projects",
            "invalid project id: 999999",
        ),
    ],
)
def test_bad_posts_get_400_naming_the_field(
    server: str, tenant: Tenant, engine: Engine, body: Any, field: str, reason: str
) -> None:
    response = post(server, tenant, body)
    assert response.status_code == 400
    answer = response.json()
    assert answer["detail"].startswith(reason), answer
    assert answer[field] == [answer["detail"]]
    assert count_rows(engine) == (0, 0)


def test_project_of_another_organization_is_a_bad_project(
    server: str, tenant: Tenant, engine: Engine
) -> None:
    other = make_tenant(engine, "org-b", "theirs")
    response = post(server, tenant, {"query": "transaction:/a", "projects": [other.project.id]})
    assert response.status_code == 400
    assert response.json()["projects"] == [f"invalid project id: {other.project.id}"]
    lookup = get(server, tenant, {"query": "transaction:/a", "project": [other.project.id]})
    assert lookup.status_code == 400
    assert lookup.json()["projects"] == [f"invalid project id: {other.project.id}"]


@pytest.mark.parametrize(
    ("params", "field", "reason"),
    [
        ({}, "query", "query is empty"),
        ({"query": "a:1 OR b:2"}, "query", "OR is not supported"),
        ({"query": "transaction:/a", "project": ["x"]}, "projects", "invalid project id: 'x'"),
    ],
)
def test_bad_gets_get_400_naming_the_field(
    server: str, tenant: Tenant, params: Any, field: str, reason: str
) -> None:
    response = get(server, tenant, params)
    assert response.status_code == 400
    assert response.json()["detail"].startswith(reason)
    assert response.json()[field] == [response.json()["detail"]]


def test_too_many_rules_is_429(server: str, tenant: Tenant, engine: Engine) -> None:
    now = datetime.now(UTC)
    insert_rules(
        engine,
        tenant.org.id,
        range(1, MAX_CUSTOM_RULES + 1),
        start=now + timedelta(hours=1),
        end=now + timedelta(hours=2),
    )
    before = count_rows(engine)
    response = post(server, tenant, {"query": "transaction:/a", "projects": [tenant.project.id]})
    assert response.status_code == 429
    answer = response.json()
    assert answer["detail"].startswith("too many custom sampling rules")
    assert answer["error"] == [answer["detail"]]
    assert count_rows(engine) == before


def test_fifty_rules_on_a_project_is_429(server: str, tenant: Tenant, engine: Engine) -> None:
    pid = tenant.project.id
    for n in range(50):
        assert (
            post(server, tenant, {"query": f"transaction:/t{n}", "projects": [pid]}).status_code
            == 200
        )
    response = post(server, tenant, {"query": "transaction:/t50", "projects": [pid]})
    assert response.status_code == 429
    assert f"project {pid} already has 50" in response.json()["detail"]


def test_token_of_another_organization_gets_403(
    server: str, tenant: Tenant, engine: Engine
) -> None:
    other = make_tenant(engine, "org-b", "theirs")
    detail = {"detail": "this token has no access to organization 'org-a'"}
    created = post(server, other, {"query": "transaction:/a"})
    assert (created.status_code, created.json()) == (403, detail)
    looked_up = get(server, other, {"query": "transaction:/a"})
    assert (looked_up.status_code, looked_up.json()) == (403, detail)
    # a bad body does not tell a stranger anything either
    bad = post(server, other, {"query": "a:1 OR b:2"})
    assert (bad.status_code, bad.json()) == (403, detail)
    assert count_rows(engine) == (0, 0)


def test_missing_token_gets_401(server: str, tenant: Tenant) -> None:
    response = httpx.post(server + PATH.format(org="org-a"), json={"query": "transaction:/a"})
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("scopes", "allowed"),
    [
        (["org:read"], True),
        (["project:read"], True),
        (["project:admin"], True),
        (["event:read"], False),
        ([], False),
    ],
)
def test_any_org_or_project_scope_is_enough(
    server: str, tenant: Tenant, engine: Engine, scopes: list[str], allowed: bool
) -> None:
    token = make_token(engine, tenant.org, scopes)
    scoped = Tenant(tenant.org, tenant.project, tenant.key, token)
    created = post(server, scoped, {"query": "transaction:/a"})
    looked_up = get(server, scoped, {"query": "transaction:/a"})
    if allowed:
        assert (created.status_code, looked_up.status_code) == (200, 200)
    else:
        expected = {"detail": "this token lacks the org:read or project:read scope"}
        assert (created.status_code, created.json()) == (403, expected)
        assert (looked_up.status_code, looked_up.json()) == (403, expected)
