"""Issue 4's acceptance path with the real clients against a real `vigil serve`, on both
backends: `error` check-ins past the monitor's failure threshold open an issue of
category cron, visible in the issues API with the failure reason of its window (B8.3),
and enough `ok` check-ins resolve it (B5) — sent by sentry-sdk, `sentry-cli monitors
run` and `curl` on the crons HTTP endpoint. Every wait polls the API with a deadline."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.support.serve import WAIT_S, Running, monitor_with_checkins, poll, serve
from tests.support.services import free_port
from vigil.config import Settings

SENTRY_CLI = Path(sys.executable).parent / "sentry-cli"
CURL = "/usr/bin/curl"
ISSUE_TYPE = "monitor_check_in_failure"  # type 4001

# sentry-sdk is process-global state: each check-in is sent by a child process of its own,
# so the test decides when the next one goes.
SDK_CHECKIN = """
import sys

import orjson
import sentry_sdk
from sentry_sdk.crons import capture_checkin

sentry_sdk.init(dsn=sys.argv[1], default_integrations=False)
config = orjson.loads(sys.argv[4]) if len(sys.argv) > 4 else None
capture_checkin(monitor_slug=sys.argv[2], status=sys.argv[3], monitor_config=config)
sentry_sdk.flush(timeout=30)
"""


@pytest.fixture
def server(stack: Settings) -> Iterator[Running]:
    with serve(replace(stack, bind=f"127.0.0.1:{free_port()}")) as running:
        yield running


class Api:
    """The organization's issues and monitors, read as a user of the REST API would."""

    def __init__(self, running: Running) -> None:
        self.running = running
        self.dsn, self.headers = running.credentials()
        self.base = f"{running.base_url}/api/0/organizations/default"

    def get(self, path: str, **params: str) -> Any:
        response = httpx.get(self.base + path, params=params, headers=self.headers, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()

    def cron_issues(self, status: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.get("/issues/", query=f"is:{status} issue.category:cron")
        return found

    def issue(self, issue_id: str) -> dict[str, Any]:
        found: dict[str, Any] = self.get(f"/issues/{issue_id}/")
        return found

    def environment_status(self, slug: str) -> str:
        [environment] = self.get(f"/monitors/{slug}/")["environments"]
        return str(environment["status"])

    def wait_for_issue(self, status: str) -> dict[str, Any]:
        """The one cron issue of that status, once there is one."""

        def fetch() -> list[dict[str, Any]] | None:
            return self.cron_issues(status) or None

        [issue] = poll(fetch, f"an {status} cron issue", self.running)
        return issue

    def wait_for_issue_status(self, issue_id: str, status: str) -> dict[str, Any]:
        def fetch() -> dict[str, Any] | None:
            found = self.issue(issue_id)
            return found if found["status"] == status else None

        return poll(fetch, f"issue {issue_id} {status}", self.running)

    def events(self, issue_id: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.get(f"/issues/{issue_id}/events/", full="true")
        return found


def failure_reason(event: dict[str, Any]) -> Any:
    [reason] = [e for e in event["occurrence"]["evidenceDisplay"] if e["name"] == "Failure reason"]
    return reason


def assert_cron_issue(issue: dict[str, Any], name: str) -> None:
    assert issue["issueCategory"] == "cron"
    assert issue["issueType"] == ISSUE_TYPE
    assert issue["title"] == f"Monitor failure: {name}"
    assert issue["status"] == "unresolved"


def test_sentry_sdk_failure_threshold_opens_and_recovery_threshold_resolves(
    server: Running,
) -> None:
    api = Api(server)
    slug = "sdk-thresholds"
    config = {
        "schedule": {"type": "interval", "value": 1, "unit": "day"},
        "failure_issue_threshold": 2,
        "recovery_threshold": 2,
    }

    def send(status: str, *statuses: str) -> dict[str, Any]:
        """One check-in from the real SDK; the monitor once its check-ins are `statuses`
        (newest first), i.e. once this one is applied."""
        argv = [sys.executable, "-c", SDK_CHECKIN, api.dsn, slug, status]
        argv.append(orjson.dumps(config).decode())
        sent = subprocess.run(argv, capture_output=True, text=True, timeout=WAIT_S)
        assert sent.returncode == 0, sent.stderr
        monitor, _ = monitor_with_checkins(server, api.headers, slug, [status, *statuses])
        return monitor

    # On a brand-new monitor a lone error would already count as past the threshold (B6:
    # fewer than `threshold` check-ins, none ok); after an ok, the window must be all errors.
    monitor = send("ok")
    assert monitor["config"]["failure_issue_threshold"] == 2
    assert monitor["config"]["recovery_threshold"] == 2
    send("error", "ok")
    assert api.cron_issues("unresolved") == []  # the window [ok, error] holds an ok
    assert api.environment_status(slug) == "ok"

    send("error", "error", "ok")
    issue = api.wait_for_issue("unresolved")
    assert_cron_issue(issue, slug)
    assert api.environment_status(slug) == "error"
    # The incident's window is both errors: one occurrence for each, each with its reason.
    events = poll(
        lambda: found if len(found := api.events(issue["id"])) == 2 else None,
        "two events",
        server,
    )
    for event in events:
        assert failure_reason(event) == {
            "name": "Failure reason",
            "value": "2 error check-ins detected",
            "important": True,
        }

    send("ok", "error", "error", "ok")
    # The latest two check-ins are [ok, error]: not yet recovered.
    assert api.issue(issue["id"])["status"] == "unresolved"
    assert api.environment_status(slug) == "error"

    send("ok", "ok", "error", "error", "ok")
    resolved = api.wait_for_issue_status(issue["id"], "resolved")
    assert resolved["title"] == f"Monitor failure: {slug}"
    assert api.environment_status(slug) == "ok"
    assert api.cron_issues("unresolved") == []


def test_sentry_cli_failing_command_opens_a_cron_issue(server: Running) -> None:
    api = Api(server)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTRY_")}
    env.update(SENTRY_DSN=api.dsn, SENTRY_LOAD_DOTENV="0")
    argv = [str(SENTRY_CLI), "monitors", "run", "-s", "* * * * *"]
    argv += ["--failure-issue-threshold", "1", "cli-fails", "--", "false"]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=WAIT_S)
    assert done.returncode == 1, done.stderr  # the command's exit code

    monitor, _ = monitor_with_checkins(server, api.headers, "cli-fails", ["error"])
    assert monitor["config"]["failure_issue_threshold"] == 1
    issue = api.wait_for_issue("unresolved")
    assert_cron_issue(issue, "cli-fails")
    assert api.environment_status("cli-fails") == "error"
    events = poll(lambda: api.events(issue["id"]) or None, "the issue's event", server)
    # Events are newest first; a minute schedule may add a missed check-in's later.
    first = events[-1]
    assert failure_reason(first)["value"] == "An error check-in was detected"
    assert first["occurrence"]["issueTitle"] == "Monitor failure: cli-fails"

    # The same CLI, with a token, lists and changes the issue (the bulk issues PUT).
    token = api.headers["Authorization"].removeprefix("Bearer ")
    env = {k: v for k, v in env.items() if k != "SENTRY_DSN"}
    env.update(
        SENTRY_URL=server.base_url,
        SENTRY_AUTH_TOKEN=token,
        SENTRY_ORG="default",
        SENTRY_PROJECT=monitor["project"]["slug"],
    )

    def cli(*args: str) -> str:
        done = subprocess.run(
            [str(SENTRY_CLI), *args], env=env, capture_output=True, text=True, timeout=WAIT_S
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def issues(*args: str) -> str:
        return cli("issues", *args)

    assert "project:write" in cli("info")  # the CLI's own check of its configuration
    assert "default" in cli("organizations", "list")
    assert "Monitor failure: cli-fails" in issues("list")
    issues("mute", "-i", issue["id"])
    assert api.issue(issue["id"])["status"] == "ignored"
    issues("unresolve", "-s", "muted")
    assert api.issue(issue["id"])["status"] == "unresolved"
    issues("resolve", "-a")  # every unresolved issue of the project
    assert api.issue(issue["id"])["status"] == "resolved"


def curl(*args: str) -> int:
    """The real curl; its HTTP status."""
    done = subprocess.run(
        [CURL, "--silent", "--show-error", "--max-time", "60", "--output", "/dev/null",
         "--write-out", "%{http_code}", *args],
        capture_output=True, text=True, timeout=WAIT_S,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


def test_curl_error_opens_and_a_keyless_ok_resolves(server: Running) -> None:
    api = Api(server)
    key, project_id = api.dsn.split("//", 1)[1].split("@", 1)[0], api.dsn.rsplit("/", 1)[1]
    keyless = f"{server.base_url}/api/{project_id}/cron/curl-job/"
    config = {"schedule": {"type": "crontab", "value": "0 4 * * *"}}
    body = orjson.dumps({"status": "error", "monitor_config": config}).decode()
    posted = curl("-X", "POST", "-H", "Content-Type: application/json", "--data-binary", body,
                  f"{keyless}{key}/")  # fmt: skip
    assert posted == 202

    monitor_with_checkins(server, api.headers, "curl-job", ["error"])
    issue = api.wait_for_issue("unresolved")
    assert_cron_issue(issue, "curl-job")
    assert api.environment_status("curl-job") == "error"

    # Without ids: in_progress starts a run, and ok (the nil check-in id) closes it.
    assert curl(f"{keyless}{key}/?status=in_progress") == 202
    monitor_with_checkins(server, api.headers, "curl-job", ["in_progress", "error"])
    assert curl("--user", f"{key}:", f"{keyless}?status=ok") == 202
    _, (closed, _) = monitor_with_checkins(server, api.headers, "curl-job", ["ok", "error"])
    assert closed["duration"] is not None
    resolved = api.wait_for_issue_status(issue["id"], "resolved")
    assert resolved["title"] == "Monitor failure: curl-job"
    assert api.environment_status("curl-job") == "ok"
    assert api.cron_issues("unresolved") == []
