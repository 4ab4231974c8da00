"""Sentry's deprecated check-in API (`POST|PUT /api/0/[organizations/{org}/]monitors/
{monitor}/checkins/[{id}/]`), on both backends: through a real server socket, what the
edge answers and writes to `ingest-monitors`, and who it refuses; end to end, the real
sentry-cli 2.18.1 (the last one that uses it) wrapping jobs against a real `vigil serve`,
with a DSN and with a token."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import Engine

from tests.support.legacy_cli import legacy_sentry_cli
from tests.support.log_reader import read_messages
from tests.support.serve import WAIT_S, Running, monitor_with_checkins, serve
from tests.support.services import free_port
from tests.support.tenants import Tenant, bearer, make_tenant, make_token, set_key_active
from vigil.config import Settings
from vigil.ingest.check_in_item import NIL_CHECK_IN_ID
from vigil.streams.backend import LogBackend
from vigil.streams.codecs import CheckInMessage, decode_monitor_message
from vigil.streams.topics import Topic
from vigil.tenancy import store as tenancy

DAILY = {"schedule_type": "crontab", "schedule": "0 3 * * *"}


@pytest.fixture
def tenant(engine: Engine) -> Tenant:
    return make_tenant(engine, "acme", "app")


def dsn_auth(tenant: Tenant, server: str) -> dict[str, str]:
    return {"Authorization": f"DSN {tenant.dsn(server)}", "User-Agent": "sentry-cli/2.18.1"}


def create_monitor(server: str, tenant: Tenant, slug: str, project: str = "app") -> str:
    """A monitor made through the monitors API; its id (the guid)."""
    body = {"project": project, "slug": slug, "name": slug, "config": DAILY}
    made = httpx.post(
        f"{server}/api/0/organizations/{tenant.org.slug}/monitors/",
        json=body,
        headers=bearer(tenant.token),
    )
    assert made.status_code == 201, made.text
    guid: str = made.json()["id"]
    return guid


def check_ins(stack: Settings, backend: LogBackend, expect: int) -> list[dict[str, Any]]:
    """The first `expect` messages of ingest-monitors: each check-in's fields, with the
    message's project and sdk."""
    found = []
    for payload in read_messages(stack, backend, Topic.INGEST_MONITORS.value, expect):
        message = decode_monitor_message(payload.value)
        assert isinstance(message, CheckInMessage)
        fields = orjson.loads(message.payload)
        found.append({**fields, "project_id": message.project_id, "sdk": message.sdk})
    return found


# --- the edge --------------------------------------------------------------------------


def test_a_run_started_and_finished_with_a_dsn_becomes_two_check_in_messages(
    stack: Settings, server: str, tenant: Tenant, log_backend: LogBackend
) -> None:
    create_monitor(server, tenant, "nightly")
    base = f"{server}/api/0/monitors/nightly/checkins/"
    started = httpx.post(
        base,
        json={"status": "in_progress", "environment": "prod"},
        headers=dsn_auth(tenant, server),
    )
    assert started.status_code == 201, started.text
    body = started.json()
    assert (body["status"], body["environment"], body["duration"]) == ("in_progress", "prod", None)
    assert body["dateCreated"].endswith("Z")
    run_id = uuid.UUID(body["id"])

    finished = httpx.put(
        f"{base}{run_id}/",
        json={"status": "error", "duration": 1500, "environment": "prod"},
        headers=dsn_auth(tenant, server),
    )
    assert finished.status_code == 200, finished.text
    assert finished.json()["id"] == str(run_id)
    assert (finished.json()["status"], finished.json()["duration"]) == ("error", 1500)

    first, second = check_ins(stack, log_backend, 2)
    assert first["check_in_id"] == second["check_in_id"] == run_id.hex
    assert (first["monitor_slug"], first["status"], first["environment"]) == (
        "nightly",
        "in_progress",
        "prod",
    )
    assert "duration" not in first
    assert (second["status"], second["duration"]) == ("error", 1.5)  # seconds on the wire
    assert first["project_id"] == second["project_id"] == tenant.project.id
    assert first["sdk"] == "sentry-cli/2.18.1"


def test_a_token_finds_the_monitor_by_slug_or_by_id_and_latest_is_the_nil_id(
    stack: Settings, server: str, tenant: Tenant, log_backend: LogBackend
) -> None:
    guid = create_monitor(server, tenant, "backup")
    by_id = httpx.post(
        f"{server}/api/0/monitors/{guid}/checkins/",
        json={"status": "ok"},
        headers=bearer(tenant.token),
    )
    assert by_id.status_code == 201, by_id.text
    assert by_id.json()["environment"] == "production"
    latest = httpx.put(
        f"{server}/api/0/organizations/acme/monitors/backup/checkins/latest/",
        json={"status": "ok", "duration": 0},
        headers=bearer(tenant.token),
    )
    assert latest.status_code == 200, latest.text
    assert latest.json()["id"] == str(uuid.UUID(NIL_CHECK_IN_ID))

    first, second = check_ins(stack, log_backend, 2)
    assert first["monitor_slug"] == second["monitor_slug"] == "backup"
    assert first["environment"] == "production"
    assert second["check_in_id"] == NIL_CHECK_IN_ID
    assert second["duration"] == 0


def test_a_post_with_a_dsn_and_a_monitor_config_creates_the_monitor(
    stack: Settings, server: str, tenant: Tenant, log_backend: LogBackend
) -> None:
    config = {"schedule": {"type": "crontab", "value": "*/5 * * * *"}, "checkin_margin": 2}
    made = httpx.post(
        f"{server}/api/0/monitors/new-job/checkins/",
        json={"status": "in_progress", "monitor_config": config},
        headers=dsn_auth(tenant, server),
    )
    assert made.status_code == 201, made.text
    (message,) = check_ins(stack, log_backend, 1)
    assert message["monitor_slug"] == "new-job"
    assert message["monitor_config"]["schedule"] == {"type": "crontab", "value": "*/5 * * * *"}
    # A token names no project to create it in.
    refused = httpx.post(
        f"{server}/api/0/monitors/other-job/checkins/",
        json={"status": "in_progress", "monitor_config": config},
        headers=bearer(tenant.token),
    )
    assert refused.status_code == 404, refused.text


def test_an_unknown_monitor_is_a_404_and_nothing_is_written(
    stack: Settings, server: str, tenant: Tenant, engine: Engine, log_backend: LogBackend
) -> None:
    other = make_tenant(engine, "other", "web")
    create_monitor(server, other, "theirs", project="web")
    for url, headers in [
        (f"{server}/api/0/monitors/nope/checkins/", dsn_auth(tenant, server)),
        (f"{server}/api/0/monitors/nope/checkins/", bearer(tenant.token)),
        # another organization's monitor, by slug and under its path, is not found
        (f"{server}/api/0/monitors/theirs/checkins/", bearer(tenant.token)),
        (f"{server}/api/0/monitors/theirs/checkins/", dsn_auth(tenant, server)),
    ]:
        answer = httpx.post(url, json={"status": "ok"}, headers=headers)
        assert answer.status_code == 404, (url, answer.text)
        assert "does not exist" in answer.json()["detail"]
    # Marker: the only message in the topic is the one written after the refusals.
    create_monitor(server, tenant, "mine")
    httpx.post(
        f"{server}/api/0/monitors/mine/checkins/",
        json={"status": "ok"},
        headers=bearer(tenant.token),
    ).raise_for_status()
    (only,) = check_ins(stack, log_backend, 1)
    assert only["monitor_slug"] == "mine"


def test_a_dsn_reaches_only_its_own_projects_monitors(
    server: str, tenant: Tenant, engine: Engine
) -> None:
    with engine.begin() as conn:
        second = tenancy.create_project(conn, tenant.org, "second")
    create_monitor(server, tenant, "elsewhere", project=second.slug)
    guid = create_monitor(server, tenant, "elsewhere-too", project=second.slug)
    for name in ("elsewhere", guid):
        answer = httpx.post(
            f"{server}/api/0/monitors/{name}/checkins/",
            json={"status": "ok"},
            headers=dsn_auth(tenant, server),
        )
        assert answer.status_code == 404, answer.text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "status"),
        ({"status": "missed"}, "status"),
        ({"status": "OK "}, "status"),
        ({"status": "ok", "duration": -1}, "duration"),
        ({"status": "ok", "duration": 1.5}, "duration"),
        ({"status": "ok", "duration": "10"}, "duration"),
        ({"status": "ok", "duration": 2**31}, "duration"),
        ({"status": "ok", "environment": "e" * 65}, "environment"),
        ({"status": "ok", "environment": 7}, "environment"),
    ],
)
def test_an_invalid_check_in_is_a_400_naming_the_field(
    server: str, tenant: Tenant, body: dict[str, Any], field: str
) -> None:
    create_monitor(server, tenant, "nightly")
    answer = httpx.post(
        f"{server}/api/0/monitors/nightly/checkins/", json=body, headers=bearer(tenant.token)
    )
    assert answer.status_code == 400, answer.text
    assert field in answer.json(), answer.json()


def test_a_put_refuses_a_monitor_config_and_an_id_that_is_no_uuid(
    server: str, tenant: Tenant
) -> None:
    create_monitor(server, tenant, "nightly")
    base = f"{server}/api/0/monitors/nightly/checkins/"
    config = httpx.put(
        f"{base}{uuid.uuid4()}/",
        json={"status": "ok", "monitor_config": {"schedule": "* * * * *"}},
        headers=bearer(tenant.token),
    )
    assert config.status_code == 400
    assert "monitor_config" in config.json()
    not_an_id = httpx.put(f"{base}run-1/", json={"status": "ok"}, headers=bearer(tenant.token))
    assert not_an_id.status_code == 400
    assert "UUID" in not_an_id.json()["detail"]
    not_json = httpx.post(base, content=b"{", headers=bearer(tenant.token))
    assert not_json.status_code == 400


def test_credentials_are_checked(server: str, tenant: Tenant, engine: Engine) -> None:
    create_monitor(server, tenant, "nightly")
    url = f"{server}/api/0/monitors/nightly/checkins/"
    org_url = f"{server}/api/0/organizations/acme/monitors/nightly/checkins/"
    other = make_tenant(engine, "other", "web")
    dsn = tenant.dsn(server)
    unknown_key = dsn.replace(tenant.key.public_key, "0" * 32)
    wrong_project = dsn.rsplit("/", 1)[0] + f"/{other.project.id}"
    read_only = make_token(engine, tenant.org, ["project:read", "org:read"])

    def status(target: str, authorization: str | None) -> tuple[int, str]:
        headers = {} if authorization is None else {"Authorization": authorization}
        answer = httpx.post(target, json={"status": "ok"}, headers=headers)
        return answer.status_code, str(answer.json().get("detail"))

    code, detail = status(url, None)
    assert (code, "DSN" in detail, "Bearer" in detail) == (401, True, True)
    assert status(url, f"DSN {unknown_key}")[0] == 401
    assert status(url, "DSN not-a-dsn")[0] == 401
    assert status(url, f"DSN {wrong_project}")[0] == 403
    assert status(url, "Bearer vgl_nope")[0] == 401
    code, detail = status(url, f"Bearer {read_only}")
    assert (code, "scope" in detail) == (403, True)
    assert status(org_url, f"Bearer {other.token}")[0] == 403
    assert status(org_url, f"DSN {other.dsn(server)}")[0] == 403
    assert status(org_url, f"Bearer {tenant.token}")[0] == 201
    # A disabled key (disabled before its first use here: lookups are cached 2 s)
    with engine.begin() as conn:
        spare = tenancy.create_key(conn, tenant.project)
    set_key_active(engine, spare, False)
    disabled = dsn.replace(tenant.key.public_key, spare.public_key)
    assert status(url, f"DSN {disabled}") == (403, "DSN key is disabled")


# --- end to end: the real sentry-cli 2.18.1 --------------------------------------------


@pytest.fixture
def old_cli() -> Path:
    return legacy_sentry_cli()


@pytest.fixture
def running(stack: Settings) -> Iterator[Running]:
    with serve(replace(stack, bind=f"127.0.0.1:{free_port()}")) as found:
        yield found


def test_sentry_cli_2_18_wraps_jobs_with_a_dsn_and_with_a_token(
    old_cli: Path, running: Running, tmp_path: Path
) -> None:
    dsn, headers = running.credentials()
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("SENTRY_")}
    base_env.update(SENTRY_URL=running.base_url, SENTRY_LOAD_DOTENV="0")

    def run(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(old_cli), "monitors", "run", *argv],
            env={**base_env, **env},
            capture_output=True,
            text=True,
            timeout=WAIT_S,
            cwd=tmp_path,
        )

    with_dsn = {"SENTRY_DSN": dsn}
    marker = tmp_path / "ran"
    # This CLI cannot create monitors: for one nobody made, it runs the job and fails.
    missing = run(with_dsn, "nightly", "--", "true")
    assert missing.returncode == 1
    assert "resource not found" in missing.stderr

    made = httpx.post(
        f"{running.base_url}/api/0/organizations/default/monitors/",
        json={"project": "default", "slug": "nightly", "name": "Nightly", "config": DAILY},
        headers=headers,
    )
    assert made.status_code == 201, made.text
    failed = run(with_dsn, "nightly", "--", "sh", "-c", "touch ran; exit 3")
    assert failed.returncode == 3, failed.stderr  # the job's own exit code
    assert marker.exists()
    _, (checkin,) = monitor_with_checkins(running, headers, "nightly", ["error"])
    assert checkin["environment"] == "production"
    assert checkin["duration"] is not None

    token = headers["Authorization"].removeprefix("Bearer ")
    ok = run({"SENTRY_AUTH_TOKEN": token}, "-e", "staging", "nightly", "--", "true")
    assert ok.returncode == 0, ok.stderr
    monitor, (latest, earlier) = monitor_with_checkins(running, headers, "nightly", ["ok", "error"])
    assert (latest["environment"], earlier["environment"]) == ("staging", "production")
    assert sorted(e["name"] for e in monitor["environments"]) == ["production", "staging"]
