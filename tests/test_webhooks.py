"""Issue webhooks on both backends: what the consumer stores (real occurrences and status
changes through `_process_message`) is found by the dispatcher and POSTed to a real HTTP
receiver on a loopback socket — signed, in Sentry's shape or Slack's, once per change,
in order per webhook, retried while the receiver fails and given up when it refuses.
The dispatcher runs with an explicit clock, so retry waits are stepped over, not slept."""

from __future__ import annotations

import hashlib
import hmac
import socket
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select

from tests.issues.occurrences import T0, make_project, occurrence, process, status_change
from tests.support.services import free_port
from tests.support.webhook_receiver import Receiver, webhook_receiver
from vigil.config import Settings
from vigil.db.tables import webhook_delivery
from vigil.db.timestamps import as_utc
from vigil.issues.enums import GroupStatus
from vigil.options import set_option
from vigil.tenancy import store as tenancy
from vigil.tenancy.store import Project, TenancyError
from vigil.webhooks import delivery
from vigil.webhooks import store as webhooks
from vigil.webhooks.dispatcher import SETTLE, Report, WebhookDispatcher
from vigil.webhooks.store import Webhook


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as r:
        yield r


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def add_webhook(
    engine: Engine, project: Project | None, url: str, *, org: str = "acme", **kwargs: Any
) -> Webhook:
    with engine.begin() as conn:
        organization = tenancy.get_organization(conn, org)
        return webhooks.create_webhook(conn, organization, project, url, now=T0, **kwargs)


def dispatcher(stack: Settings, clock: Clock) -> WebhookDispatcher:
    return WebhookDispatcher(stack, background=False, clock=clock)


def run(d: WebhookDispatcher, engine: Engine, clock: Clock) -> Report:
    return d.run_once(engine, clock.now)


def deliveries(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(webhook_delivery).order_by(webhook_delivery.c.id)))


def test_created_resolved_and_regressed_are_posted_signed_in_sentrys_shape(
    stack: Settings, engine: Engine, receiver: Receiver
) -> None:
    project = make_project(engine)
    hook = add_webhook(engine, None, receiver.url)
    with engine.begin() as conn:
        set_option(conn, "system.url-prefix", "https://vigil.example.com")
    clock = Clock(T0 + SETTLE * 2)
    d = dispatcher(stack, clock)

    process(engine, occurrence(project.id, "fp-1"))
    assert run(d, engine, clock) == Report(found=1, delivered=1)
    [created] = receiver.received
    body = created.json()
    assert body["action"] == "created"
    assert body["actor"] == {"type": "application", "id": "vigil", "name": "vigil"}
    assert body["installation"]["uuid"]
    issue = body["data"]["issue"]
    assert issue["title"] == "Something broke"
    assert issue["status"] == "unresolved"
    assert issue["project"]["slug"] == "app"
    assert issue["issueCategory"] == "cron"
    assert issue["web_url"] == f"https://vigil.example.com/ui/issues/{issue['id']}/"
    assert (
        issue["url"] == f"https://vigil.example.com/api/0/organizations/acme/issues/{issue['id']}/"
    )
    headers = created.headers
    assert headers["content-type"] == "application/json"
    assert headers["sentry-hook-resource"] == "issue"
    assert int(headers["sentry-hook-timestamp"]) == int(clock.now.timestamp())
    expected = hmac.new(hook.secret.encode(), created.body, hashlib.sha256).hexdigest()
    assert headers["sentry-hook-signature"] == expected
    assert headers["request-id"]

    # Resolved by a status change, then regressed by a new occurrence.
    process(engine, status_change(project.id, "fp-1", int(GroupStatus.RESOLVED), None))
    process(engine, occurrence(project.id, "fp-1", at=T0 + timedelta(minutes=5)))
    assert run(d, engine, clock) == Report(found=2, delivered=2)
    actions = [(b["action"], b["data"]["issue"]["id"]) for b in receiver.bodies()]
    assert actions == [
        ("created", issue["id"]),
        ("resolved", issue["id"]),
        ("unresolved", issue["id"]),
    ]
    # The issue as it was when the change was found: both changes found in one run see
    # it regressed.
    assert receiver.bodies()[2]["data"]["issue"]["status"] == "unresolved"

    # Nothing new: nothing sent, and every delivery is recorded as delivered.
    assert run(d, engine, clock) == Report()
    assert [(r.action, r.status, r.attempts, r.response_code) for r in deliveries(engine)] == [
        ("created", "delivered", 1, 200),
        ("resolved", "delivered", 1, 200),
        ("unresolved", "delivered", 1, 200),
    ]


def test_a_change_looked_at_again_before_it_settles_is_sent_once(
    stack: Settings, engine: Engine, receiver: Receiver
) -> None:
    project = make_project(engine)
    hook = add_webhook(engine, project, receiver.url)
    process(engine, occurrence(project.id, "fp-1"))
    clock = Clock(T0 + SETTLE / 2)  # the group is younger than SETTLE
    d = dispatcher(stack, clock)
    assert run(d, engine, clock).delivered == 1
    with engine.connect() as conn:
        unsettled = webhooks.get_webhook(conn, tenancy.get_organization(conn, "acme"), str(hook.id))
    assert unsettled.group_cursor == hook.group_cursor  # looked at again next time
    assert run(d, engine, clock) == Report()
    clock.now = T0 + SETTLE * 2
    assert run(d, engine, clock) == Report()
    with engine.connect() as conn:
        settled = webhooks.get_webhook(conn, tenancy.get_organization(conn, "acme"), str(hook.id))
    assert settled.group_cursor > hook.group_cursor
    assert len(receiver.received) == 1


def test_a_failing_receiver_is_retried_and_holds_the_webhooks_later_deliveries(
    stack: Settings, engine: Engine, receiver: Receiver
) -> None:
    project = make_project(engine)
    add_webhook(engine, project, receiver.url)
    clock = Clock(T0 + SETTLE * 2)
    d = dispatcher(stack, clock)
    process(engine, occurrence(project.id, "fp-1"))
    process(engine, occurrence(project.id, "fp-2"))
    receiver.answer_next(503)
    assert run(d, engine, clock) == Report(found=2, retrying=1)
    first, second = deliveries(engine)
    assert (first.status, first.attempts, first.response_code) == ("pending", 1, 503)
    assert first.last_error == "HTTP 503: no thanks"
    assert (second.status, second.attempts) == ("pending", 0)  # held behind the first

    clock.now += delivery.RETRY_DELAYS[0] / 2
    assert run(d, engine, clock) == Report()  # not yet time to retry
    clock.now += delivery.RETRY_DELAYS[0]
    assert run(d, engine, clock) == Report(delivered=2)
    titles = [b["data"]["issue"]["shortId"] for b in receiver.bodies()]
    assert titles == ["APP-1", "APP-1", "APP-2"]  # the retry, then the held one
    assert [r.status for r in deliveries(engine)] == ["delivered", "delivered"]
    # Every attempt of a delivery carries the same Request-ID.
    ids = [r.headers["request-id"] for r in receiver.received]
    assert ids[0] == ids[1] != ids[2]


def test_a_refusal_fails_the_delivery_at_once_and_the_next_ones_go_on(
    stack: Settings, engine: Engine, receiver: Receiver
) -> None:
    project = make_project(engine)
    add_webhook(engine, project, receiver.url)
    clock = Clock(T0 + SETTLE * 2)
    d = dispatcher(stack, clock)
    process(engine, occurrence(project.id, "fp-1"))
    process(engine, occurrence(project.id, "fp-2"))
    receiver.answer_next(404)
    assert run(d, engine, clock) == Report(found=2, delivered=1, failed=1)
    failed, delivered = deliveries(engine)
    assert (failed.status, failed.response_code, failed.last_error) == (
        "failed",
        404,
        "HTTP 404: no thanks",
    )
    assert delivered.status == "delivered"
    with engine.connect() as conn:
        [counts] = webhooks.delivery_counts(conn, [failed.webhook_id]).values()
        [hook] = webhooks.list_webhooks(conn)
    assert counts == webhooks.DeliveryCounts(pending=0, delivered=1, failed=1)
    assert hook.last_error == "HTTP 404: no thanks"
    assert hook.date_last_error is not None and as_utc(hook.date_last_error) == clock.now


def test_an_unreachable_receiver_is_given_up_after_the_last_retry(
    stack: Settings, engine: Engine, receiver: Receiver
) -> None:
    project = make_project(engine)
    add_webhook(engine, project, f"http://127.0.0.1:{free_port()}/nobody-listens")
    clock = Clock(T0 + SETTLE * 2)
    d = dispatcher(stack, clock)
    process(engine, occurrence(project.id, "fp-1"))
    assert run(d, engine, clock) == Report(found=1, retrying=1)
    [row] = deliveries(engine)
    assert row.response_code is None and "Connection refused" in row.last_error
    for wait in delivery.RETRY_DELAYS:
        clock.now += wait
        run(d, engine, clock)
    [row] = deliveries(engine)
    assert (row.status, row.attempts) == ("failed", len(delivery.RETRY_DELAYS) + 1)
    assert receiver.received == []


def test_scope_actions_format_and_no_replay_of_what_came_before(
    stack: Settings, engine: Engine, receiver: Receiver
) -> None:
    project = make_project(engine)
    with engine.begin() as conn:
        other = tenancy.create_project(conn, tenancy.get_organization(conn, "acme"), "other")
    process(engine, occurrence(project.id, "before"))  # before any webhook: never sent
    add_webhook(engine, project, receiver.url, fmt="slack", actions=["resolved"])
    clock = Clock(T0 + SETTLE * 2)
    d = dispatcher(stack, clock)
    process(engine, occurrence(project.id, "fp-1", culprit="jobs.nightly <main>"))
    process(engine, occurrence(other.id, "fp-1"))
    process(engine, status_change(other.id, "fp-1", int(GroupStatus.RESOLVED), None))
    process(engine, status_change(project.id, "fp-1", int(GroupStatus.RESOLVED), None))
    process(engine, status_change(project.id, "before", int(GroupStatus.RESOLVED), None))
    assert run(d, engine, clock) == Report(found=2, delivered=2)
    texts = [b["text"] for b in receiver.bodies()]
    assert texts[0].startswith("*Resolved* in acme/app: <http://")
    assert "|APP-2> Something broke\njobs.nightly &lt;main&gt;" in texts[0]
    assert "|APP-1> Something broke" in texts[1]  # the issue from before, resolved now
    # The cursors moved past every row read, the other project's and a status no webhook
    # hears of included: none is read again.
    process(engine, occurrence(other.id, "fp-2"))
    process(engine, status_change(other.id, "fp-2", int(GroupStatus.RESOLVED), None))
    run(d, engine, clock)
    with engine.connect() as conn:
        hook = webhooks.list_webhooks(conn)[0]
        assert (hook.group_cursor, hook.history_cursor) == webhooks.highest_ids(conn)


def test_webhook_settings_are_checked(stack: Settings, engine: Engine) -> None:
    make_project(engine)
    for url, reason in [
        ("ftp://example.com/x", "url: an http:// or https:// URL with a host, or mailto:"),
        ("http:///x", "url: an http:// or https:// URL with a host, or mailto:"),
        ("http://example.com/a b", "url: no spaces or control characters"),
        ("http://example.com/\x00", "url: no spaces or control characters"),
        ("http://example.com:99999/", "url: the port must be a number from 1 to 65535"),
        ("http://example.com:http/", "url: the port must be a number from 1 to 65535"),
        ("http://example.com/" + "x" * 2000, "url: at most 2000 characters"),
    ]:
        with pytest.raises(TenancyError, match=reason.replace("(", r"\(").replace(")", r"\)")):
            add_webhook(engine, None, url)
    with pytest.raises(TenancyError, match="actions: unknown deleted"):
        add_webhook(engine, None, "http://example.com/", actions=["deleted"])
    with pytest.raises(TenancyError, match="format: one of sentry, slack, email"):
        add_webhook(engine, None, "http://example.com/", fmt="teams")
    for _ in range(webhooks.MAX_WEBHOOKS_PER_ORGANIZATION):
        add_webhook(engine, None, "http://example.com/")
    with pytest.raises(TenancyError, match="the most an organization may have"):
        add_webhook(engine, None, "http://example.com/")


def test_deliveries_done_a_week_ago_are_pruned(
    stack: Settings, engine: Engine, receiver: Receiver
) -> None:
    project = make_project(engine)
    add_webhook(engine, project, receiver.url)
    clock = Clock(T0 + SETTLE * 2)
    process(engine, occurrence(project.id, "fp-1"))
    assert run(dispatcher(stack, clock), engine, clock).delivered == 1
    clock.now += timedelta(days=7, minutes=1)
    run(dispatcher(replace(stack), clock), engine, clock)  # a fresh process prunes first thing
    assert deliveries(engine) == []


def test_a_dead_receivers_backlog_never_holds_another_webhook_back(
    stack: Settings, engine: Engine, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One delivery read per webhook and run: the dead one's backlog fills its reads only.
    monkeypatch.setattr("vigil.webhooks.dispatcher.SEND_LIMIT", 1)
    project = make_project(engine)
    dead = add_webhook(engine, project, f"http://127.0.0.1:{free_port()}/down")
    alive = add_webhook(engine, project, receiver.url)
    clock = Clock(T0 + SETTLE * 2)
    d = dispatcher(stack, clock)
    for n in range(3):
        process(engine, occurrence(project.id, f"fp-{n}"))
    report = run(d, engine, clock)
    assert (report.found, report.retrying, report.delivered) == (6, 1, 1)
    clock.now += timedelta(seconds=1)
    assert run(d, engine, clock).delivered == 1  # the dead one is waiting for its retry
    assert run(d, engine, clock).delivered == 1
    assert len(receiver.received) == 3
    pending = [r.webhook_id for r in deliveries(engine) if r.status == "pending"]
    assert pending == [dead.id] * 3 and alive.id not in pending


def test_one_run_spends_a_bounded_time_on_a_webhook(
    stack: Settings, engine: Engine, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With no time at all, one delivery a run: a slow receiver's backlog waits for the
    # next runs, which find the next changes meanwhile.
    monkeypatch.setattr("vigil.webhooks.dispatcher.SEND_BUDGET_S", 0.0)
    project = make_project(engine)
    add_webhook(engine, project, receiver.url)
    clock = Clock(T0 + SETTLE * 2)
    d = dispatcher(stack, clock)
    for n in range(3):
        process(engine, occurrence(project.id, f"fp-{n}"))
    assert run(d, engine, clock) == Report(found=3, delivered=1)
    assert run(d, engine, clock) == Report(delivered=1)
    assert run(d, engine, clock) == Report(delivered=1)
    assert [b["data"]["issue"]["shortId"] for b in receiver.bodies()] == ["APP-1", "APP-2", "APP-3"]


def test_a_receiver_that_does_not_speak_http_is_tried_again(
    stack: Settings, engine: Engine
) -> None:
    # A server that answers something else than HTTP.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")

    threading.Thread(target=serve, daemon=True).start()
    try:
        project = make_project(engine)
        add_webhook(engine, project, f"http://127.0.0.1:{listener.getsockname()[1]}/")
        clock = Clock(T0 + SETTLE * 2)
        process(engine, occurrence(project.id, "fp-1"))
        assert run(dispatcher(stack, clock), engine, clock) == Report(found=1, retrying=1)
        [row] = deliveries(engine)
        assert row.last_error.startswith("BadStatusLine")
    finally:
        listener.close()
