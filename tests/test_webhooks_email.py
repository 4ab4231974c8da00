"""Email webhooks (`mailto:`) on both backends, through a real SMTP server on a loopback
socket: each change is one plain-text email to every address, with the issue's link;
a permanent refusal fails the delivery at once, a relay that cannot be reached is tried
again; an email webhook cannot be added without a relay, and a relay's password is
never printed by `vigil config`."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from tests.conftest import run_vigil
from tests.issues.occurrences import T0, make_project, occurrence, process, status_change
from tests.support.live_server import live_server
from tests.support.services import free_port
from tests.support.smtp_server import Mailbox, smtp_server
from tests.support.tenants import bearer, make_token
from vigil.api.app import create_app
from vigil.config import ConfigError, Settings, load_settings
from vigil.issues.enums import GroupStatus
from vigil.tenancy import store as tenancy
from vigil.tenancy.store import TenancyError
from vigil.webhooks import store as webhooks
from vigil.webhooks.dispatcher import SETTLE, Report, WebhookDispatcher
from vigil.webhooks.mail import parse_relay, recipients

TO = "mailto:ops@example.com,oncall@example.com"
# The relay that asks for a login does so without TLS: on loopback, for one test.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    with smtp_server() as box:
        yield box


def add(engine: Engine, url: str = TO, **kwargs: Any) -> webhooks.Webhook:
    with engine.begin() as conn:
        org = tenancy.get_organization(conn, "acme")
        return webhooks.create_webhook(conn, org, None, url, now=T0, mail_relay=True, **kwargs)


def run(stack: Settings, engine: Engine, relay: str) -> Report:
    settings = replace(stack, smtp_url=relay, email_from="alerts@vigil.example.com")
    now = T0 + SETTLE * 2
    return WebhookDispatcher(settings, background=False, clock=lambda: now).run_once(engine, now)


def test_each_change_is_an_email_to_every_address(
    stack: Settings, engine: Engine, mailbox: Mailbox
) -> None:
    project = make_project(engine)
    hook = add(engine)
    assert hook.format == "email"
    process(engine, occurrence(project.id, "fp-1", culprit="jobs.backup"))
    assert run(stack, engine, mailbox.url) == Report(found=1, delivered=1)
    process(engine, status_change(project.id, "fp-1", int(GroupStatus.RESOLVED), None))
    assert run(stack, engine, mailbox.url) == Report(found=1, delivered=1)
    [(to, created), (_, resolved)] = mailbox.messages
    assert to == ["ops@example.com", "oncall@example.com"]
    assert created["From"] == "alerts@vigil.example.com"
    assert created["To"] == "ops@example.com, oncall@example.com"
    assert created["Subject"] == "[vigil] New issue in acme/app: APP-1 Something broke"
    assert created["Auto-Submitted"] == "auto-generated"
    text = created.get_content().replace("\r\n", "\n")
    assert text.startswith("New issue in acme/app\n\nAPP-1  Something broke\njobs.backup\n")
    assert "Level: error · Events: 1\n" in text
    assert text.endswith("/ui/issues/1/\n")
    assert resolved["Subject"] == "[vigil] Resolved in acme/app: APP-1 Something broke"


def test_refused_failed_at_once_unreachable_tried_again(
    stack: Settings, engine: Engine, mailbox: Mailbox
) -> None:
    project = make_project(engine)
    add(engine, "mailto:nobody@example.com")
    mailbox.refuse.add("nobody@example.com")
    process(engine, occurrence(project.id, "fp-1"))
    assert run(stack, engine, mailbox.url) == Report(found=1, failed=1)
    with engine.connect() as conn:
        [refused] = webhooks.list_webhooks(conn)
    assert refused.last_error is not None and "550" in refused.last_error

    with engine.begin() as conn:
        webhooks.delete_webhook(conn, tenancy.get_organization(conn, "acme"), str(refused.id))
    add(engine, "mailto:ops@example.com")
    process(engine, occurrence(project.id, "fp-2"))
    down = f"smtp://127.0.0.1:{free_port()}"
    assert run(stack, engine, down) == Report(found=1, retrying=1)
    assert mailbox.messages == []


def test_a_test_notification_by_email_through_the_api(
    stack: Settings, engine: Engine, mailbox: Mailbox
) -> None:
    make_project(engine)
    hook = add(engine)
    with engine.connect() as conn:
        org = tenancy.get_organization(conn, "acme")
    token = make_token(engine, org, ["org:write"])
    path = f"/api/0/organizations/acme/webhooks/{hook.id}/test/"
    settings = replace(stack, smtp_url=mailbox.url, email_from="alerts@vigil.example.com")
    with live_server(create_app(settings)) as url:
        answer = httpx.post(url + path, headers=bearer(token), timeout=60)
    # (for email, responseCode is the relay's answer to the message)
    assert answer.json() == {"delivered": True, "responseCode": 250, "error": None}
    [(to, mail)] = mailbox.messages
    assert to == ["ops@example.com", "oncall@example.com"]
    assert mail["Subject"] == (
        "[vigil] Test notification in acme/app: APP-0 "
        "Test notification from vigil: this webhook works"
    )
    assert mail.get_content().replace("\r\n", "\n").endswith(f"/ui/webhooks/{hook.id}/\n")
    # Without a relay the web process says so, and nothing is sent.
    with live_server(create_app(replace(stack, smtp_url=""))) as url:
        refused = httpx.post(url + path, headers=bearer(token), timeout=60).json()
    assert refused["delivered"] is False
    assert refused["error"] == "VIGIL_SMTP_URL is not set: no relay"
    assert len(mailbox.messages) == 1


def test_a_relay_refusing_vigils_login_keeps_the_email_waiting(
    stack: Settings, engine: Engine
) -> None:
    project = make_project(engine)
    add(engine, "mailto:ops@example.com")
    process(engine, occurrence(project.id, "fp-1"))
    with smtp_server(password="s3cret") as box:
        relay = box.url.replace("smtp://", "smtp://vigil:wrong@")
        assert run(stack, engine, relay) == Report(found=1, retrying=1)
        with engine.connect() as conn:
            [hook] = webhooks.list_webhooks(conn)
        assert hook.last_error is not None and hook.last_error.startswith("SMTP 535")
        assert box.messages == []
        # Fixed, and the retry is due: delivered.
        settings = replace(stack, smtp_url=box.url.replace("smtp://", "smtp://vigil:s3cret@"))
        later = T0 + SETTLE * 2 + timedelta(minutes=1)
        report = WebhookDispatcher(settings, background=False, clock=lambda: later).run_once(
            engine, later
        )
        assert report == Report(delivered=1)
        [(to, _)] = box.messages
        assert to == ["ops@example.com"]


def test_no_email_webhook_without_a_relay_or_with_a_bad_address(
    stack: Settings, engine: Engine
) -> None:
    make_project(engine)
    with engine.begin() as conn:
        org = tenancy.get_organization(conn, "acme")
        with pytest.raises(TenancyError, match="email needs an SMTP relay: set VIGIL_SMTP_URL"):
            webhooks.create_webhook(conn, org, None, TO, now=T0)
    for url, reason in [
        ("mailto:", "a mailto: URL needs an address"),
        ("mailto:ops", "'ops' is not an email address"),
        ("mailto:ops@example.com?subject=x", "a mailto: URL is mailto:one@example.com"),
        ("mailto:" + ",".join(f"a{i}@example.com" for i in range(11)), "at most 10"),
    ]:
        with pytest.raises(TenancyError, match=reason.replace("?", r"\?")):
            add(engine, url)
    with pytest.raises(TenancyError, match="format: email goes with a mailto: URL"):
        add(engine, TO, fmt="slack")
    with pytest.raises(TenancyError, match="format: email goes with a mailto: URL"):
        add(engine, "https://hooks.example.com/", fmt="email")
    refused = run_vigil(stack, "webhook", "add", TO, "--org", "acme")
    assert refused.returncode == 1
    assert "email needs an SMTP relay" in refused.stderr


def test_relay_settings() -> None:
    relay = parse_relay("smtp://alerts%40example.com:s3cr%2Ft@mail.example.com?starttls=true")
    assert (relay.host, relay.port, relay.starttls, relay.tls) == (
        "mail.example.com",
        587,
        True,
        False,
    )
    assert (relay.user, relay.password) == ("alerts@example.com", "s3cr/t")
    assert parse_relay("smtps://mail.example.com").port == 465
    assert parse_relay("smtp://mail.example.com").port == 25
    assert recipients("mailto:a@example.com,%20b@example.com") == ["a@example.com", "b@example.com"]
    with pytest.raises(ConfigError, match="VIGIL_SMTP_URL must be smtp://"):
        load_settings({"VIGIL_SMTP_URL": "http://mail.example.com"})
    with pytest.raises(ConfigError, match="VIGIL_EMAIL_FROM must be an email address"):
        load_settings({"VIGIL_EMAIL_FROM": "vigil"})


def test_vigil_config_never_prints_a_password(stack: Settings) -> None:
    shown = run_vigil(
        replace(stack, smtp_url="smtp://alerts:hunter2@mail.example.com:587"), "config"
    )
    assert shown.returncode == 0, shown.stderr
    assert "VIGIL_SMTP_URL=smtp://alerts:***@mail.example.com:587" in shown.stdout
    assert "hunter2" not in shown.stdout
