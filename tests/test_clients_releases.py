"""Releases in a deploy pipeline pointed at vigil, on both backends, with the real
sentry-cli against a real server socket: `releases new` (twice: the second is the 208
Sentry answers), `info`, `finalize`, `deploys new | list`, `archive`, `restore`, `list`,
`delete`; and the API's answers to what it refuses."""

from __future__ import annotations

import subprocess
from typing import Any

import httpx
from sqlalchemy import Engine

from tests.issues.occurrences import event_payload, occurrence, process
from tests.support.sentry_cli import run_with_token
from tests.support.tenants import Tenant, bearer, make_tenant, make_token

VERSION = "billing@2.4.0+build.7"
RELEASE = "/api/0/organizations/acme/releases/"


def cli(server: str, tenant: Tenant, *args: str) -> subprocess.CompletedProcess[str]:
    return run_with_token(server, tenant.token, "acme", "app", *args)


def release(server: str, tenant: Tenant, version: str = VERSION) -> Any:
    answer = httpx.get(f"{server}{RELEASE}{version}/", headers=bearer(tenant.token))
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_a_deploy_pipeline_with_sentry_cli(server: str, engine: Engine) -> None:
    tenant = make_tenant(engine, "acme")
    for _ in range(2):
        made = cli(server, tenant, "releases", "new", VERSION)
        assert made.returncode == 0, made.stderr
        assert f"Created release {VERSION}" in made.stdout
    shown = release(server, tenant)
    assert shown["version"] == VERSION
    assert shown["dateReleased"] is None
    assert [p["slug"] for p in shown["projects"]] == ["app"]
    info = cli(server, tenant, "releases", "info", VERSION)
    assert info.returncode == 0 and VERSION in info.stdout

    finalized = cli(server, tenant, "releases", "finalize", VERSION)
    assert finalized.returncode == 0, finalized.stderr
    assert release(server, tenant)["dateReleased"] is not None

    deployed = cli(server, tenant, "deploys", "new", "-r", VERSION, "-e", "production", "-n", "eu")
    assert deployed.returncode == 0, deployed.stderr
    assert "Created new deploy eu for 'production'" in deployed.stdout
    deploys = cli(server, tenant, "deploys", "list", "-r", VERSION)
    assert deploys.returncode == 0 and "production" in deploys.stdout and "eu" in deploys.stdout

    for action, status in (("archive", "archived"), ("restore", "open")):
        done = cli(server, tenant, "releases", action, VERSION)
        assert done.returncode == 0, done.stderr
        assert release(server, tenant)["status"] == status
    listed = cli(server, tenant, "releases", "list")
    assert listed.returncode == 0 and VERSION in listed.stdout

    deleted = cli(server, tenant, "releases", "delete", VERSION)
    assert deleted.returncode == 0, deleted.stderr
    gone = httpx.get(f"{server}{RELEASE}{VERSION}/", headers=bearer(tenant.token))
    assert gone.status_code == 404
    assert cli(server, tenant, "releases", "info", VERSION).returncode == 1


def test_what_the_releases_api_refuses(server: str, engine: Engine) -> None:
    tenant = make_tenant(engine, "acme")
    headers = bearer(tenant.token)
    for body, detail in [
        ({"projects": ["app"]}, "version is required"),
        ({"version": "a/b", "projects": ["app"]}, "no surrounding spaces or '/'"),
        ({"version": "latest", "projects": ["app"]}, "not '.', '..', 'latest'"),
        ({"version": "x" * 201, "projects": ["app"]}, "at most 200 characters"),
        ({"version": "1.0"}, "projects: name at least one project"),
        ({"version": "1.0", "projects": ["nope"]}, "nope"),
        ({"version": "1.0", "projects": ["app"], "dateReleased": "soon"}, "ISO 8601"),
        ({"version": "1.0", "projects": ["app"], "status": "gone"}, "status: one of"),
    ]:
        answer = httpx.post(server + RELEASE, json=body, headers=headers)
        assert answer.status_code == 400, (body, answer.text)
        assert detail in answer.json()["detail"]
    missing = httpx.post(
        f"{server}{RELEASE}9.9/deploys/", json={"environment": "p"}, headers=headers
    )
    assert missing.status_code == 404
    made = httpx.post(
        server + RELEASE, json={"version": "1.0", "projects": ["app"]}, headers=headers
    )
    assert made.status_code == 201
    no_env = httpx.post(f"{server}{RELEASE}1.0/deploys/", json={}, headers=headers)
    assert (no_env.status_code, no_env.json()["detail"]) == (400, "environment is required")
    reader = bearer(make_token(engine, tenant.org, ["project:read"]))
    assert httpx.get(f"{server}{RELEASE}1.0/", headers=reader).status_code == 200
    assert httpx.put(f"{server}{RELEASE}1.0/", json={}, headers=reader).status_code == 403

    # A release issues were first seen in stays.
    event = event_payload(tenant.project.id, "a" * 32, release="2.0")
    process(engine, occurrence(tenant.project.id, "fp-1", event=event, event_id="a" * 32))
    refused = httpx.delete(f"{server}{RELEASE}2.0/", headers=headers)
    assert refused.status_code == 400
    assert "referenced by issues" in refused.json()["detail"]
    assert httpx.get(f"{server}{RELEASE}2.0/", headers=headers).json()["newGroups"] == 1
