"""The webhook an operator adds to be told when a job fails, end to end on both backends:
a real `vigil serve`, a webhook added through its API, a failing run reported by the
real sentry-sdk opens a cron issue and the receiver (a real HTTP server) is POSTed
`created`; the next good run resolves it and the receiver gets `resolved`. The same
with an email webhook, through a real SMTP server as the relay."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace

import httpx
import orjson
import pytest

from tests.support.serve import WAIT_S, Running, poll, serve
from tests.support.services import free_port
from tests.support.smtp_server import smtp_server
from tests.support.webhook_receiver import webhook_receiver
from tests.test_clients_crons_issues import SDK_CHECKIN
from vigil.config import Settings


@pytest.fixture
def server(stack: Settings) -> Iterator[Running]:
    with serve(replace(stack, bind=f"127.0.0.1:{free_port()}")) as running:
        yield running


def test_a_failing_job_is_posted_to_the_webhook_and_so_is_its_recovery(server: Running) -> None:
    dsn, headers = server.credentials()
    config = {"schedule": {"type": "crontab", "value": "0 * * * *"}, "failure_issue_threshold": 1}

    def check_in(status: str) -> None:
        argv = [sys.executable, "-c", SDK_CHECKIN, dsn, "nightly-backup", status]
        sent = subprocess.run(
            [*argv, orjson.dumps(config).decode()], capture_output=True, text=True, timeout=WAIT_S
        )
        assert sent.returncode == 0, sent.stderr

    with webhook_receiver() as receiver:
        added = httpx.post(
            f"{server.base_url}/api/0/organizations/default/webhooks/",
            json={"url": receiver.url},
            headers=headers,
            timeout=30,
        )
        assert added.status_code == 201, added.text

        def actions(count: int) -> list[str] | None:
            found = [body["action"] for body in receiver.bodies()]
            return found if len(found) >= count else None

        check_in("ok")
        check_in("error")
        assert poll(lambda: actions(1), "the webhook's created", server) == ["created"]
        issue = receiver.bodies()[0]["data"]["issue"]
        assert issue["issueCategory"] == "cron"
        assert issue["title"] == "Monitor failure: nightly-backup"
        assert issue["web_url"] == f"{server.base_url}/ui/issues/{issue['id']}/"

        check_in("ok")
        assert poll(lambda: actions(2), "the webhook's resolved", server) == [
            "created",
            "resolved",
        ]
        resolved = receiver.bodies()[1]["data"]["issue"]
        assert (resolved["id"], resolved["status"]) == (issue["id"], "resolved")


def test_a_failing_job_is_emailed_through_the_relay(stack: Settings) -> None:
    with smtp_server() as mailbox:
        settings = replace(stack, bind=f"127.0.0.1:{free_port()}", smtp_url=mailbox.url)
        with serve(settings) as running:
            dsn, headers = running.credentials()
            added = httpx.post(
                f"{running.base_url}/api/0/organizations/default/webhooks/",
                json={"url": "mailto:oncall@example.com", "actions": ["created"]},
                headers=headers,
                timeout=30,
            )
            assert added.status_code == 201, added.text
            assert added.json()["format"] == "email"
            config = {"schedule": {"type": "interval", "value": 1, "unit": "day"}}
            argv = [sys.executable, "-c", SDK_CHECKIN, dsn, "billing-export", "error"]
            sent = subprocess.run(
                [*argv, orjson.dumps(config).decode()],
                capture_output=True,
                text=True,
                timeout=WAIT_S,
            )
            assert sent.returncode == 0, sent.stderr
            [(to, mail)] = poll(lambda: mailbox.messages or None, "the email", running)
    assert to == ["oncall@example.com"]
    assert mail["Subject"].startswith("[vigil] New issue in default/")
    assert mail["Subject"].endswith("Monitor failure: billing-export")
    assert mail["From"] == "vigil@127.0.0.1"
