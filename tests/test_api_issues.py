"""The issues API (`/api/0/organizations/{org}/issues/...`) through a real server on both
backends, over issues made by the occurrence consumer's own processing: the Sentry
shape, search, environments, sorting, pagination, status changes through the
status-change path, events with their occurrence and tags, and auth."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select

from tests.issues.occurrences import (
    CRON,
    FEEDBACK,
    T0,
    event_payload,
    later,
    occurrence,
    process,
    status_change,
)
from tests.support.tenants import Tenant, make_tenant, make_token
from vigil.api.paging import format_date
from vigil.db.tables import activity, group_snooze, grouphash
from vigil.issues.enums import ActivityType, GroupStatus, GroupSubStatus
from vigil.issues.fingerprint import md5_hex
from vigil.issues.occurrence_processing import DEFAULT_PROCESSING
from vigil.issues.snooze_processing import expire_snoozes
from vigil.tenancy import store

ISSUES = "/api/0/organizations/org-a/issues/"
P95_REGRESSION = 1018  # performance, released, no noise gate
# statusDetails of an issue ignored until a condition: Sentry's keys, all of them
NO_DETAILS = {
    "ignoreCount": None,
    "ignoreUntil": None,
    "ignoreUserCount": None,
    "ignoreUserWindow": None,
    "ignoreWindow": None,
    "actor": None,
}


@pytest.fixture
def tenant(engine: Engine) -> Tenant:
    return make_tenant(engine, "org-a", "web")


def call(method: str, server: str, path: str, token: str, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.request(method, server + path, headers=headers, timeout=60, **kwargs)


def get(server: str, tenant: Tenant, path: str = ISSUES, **params: Any) -> httpx.Response:
    return call("GET", server, path, tenant.token, params=params)


def issue(
    engine: Engine,
    project_id: int,
    fingerprint: str,
    *,
    minutes: float = 0,
    title: str = "Something broke",
    environment: str | None = None,
    **extra: Any,
) -> int:
    """An issue made by processing an occurrence (its event at T0 + `minutes`); its id."""
    at = later(minutes)
    payload = occurrence(project_id, fingerprint, at=at, issue_title=title, **extra)
    if environment is not None:
        payload["event"] = event_payload(
            project_id, payload["event_id"], at, environment=environment
        )
    process(engine, payload, now=at)
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(grouphash.c.group_id).where(
                    grouphash.c.project_id == project_id,
                    grouphash.c.hash == md5_hex(fingerprint),
                )
            ).scalar_one()
        )


def ids(response: httpx.Response) -> list[int]:
    assert response.status_code == 200, response.text
    return [int(item["id"]) for item in response.json()]


# --- the listing -----------------------------------------------------------------------


def test_an_issue_in_sentrys_shape(server: str, tenant: Tenant, engine: Engine) -> None:
    payload = occurrence(tenant.project.id, "disk", at=T0, culprit="api/disk")
    payload["event"] = event_payload(
        tenant.project.id, payload["event_id"], T0, environment="production", release="app@1.2"
    )
    process(engine, payload, now=T0)
    response = get(server, tenant)
    [body] = response.json()
    assert body == {
        **body,
        "shortId": "WEB-1",
        "title": "Something broke",
        "culprit": "api/disk",
        "level": "error",
        "status": "unresolved",
        "substatus": "new",
        "statusDetails": {},
        "priority": "high",
        "firstSeen": "2026-03-01T12:00:00Z",
        "lastSeen": "2026-03-01T12:00:00Z",
        "count": "1",
        "project": {"id": str(tenant.project.id), "slug": "web", "name": "web"},
        "issueType": "monitor_check_in_failure",
        "issueCategory": "cron",
        "firstRelease": {"version": "app@1.2", "shortVersion": "app@1.2"},
    }
    assert isinstance(body["id"], str)
    assert body["metadata"]["title"] == "Something broke"
    assert body["metadata"]["value"] == "it was bad"
    link = response.headers["Link"]
    assert 'rel="previous"; results="false"' in link and 'rel="next"; results="false"' in link


def test_the_default_query_is_unresolved_sorted_by_last_seen(
    server: str, tenant: Tenant, engine: Engine
) -> None:
    pid = tenant.project.id
    first = issue(engine, pid, "a", minutes=0)
    second = issue(engine, pid, "b", minutes=5)
    resolved = issue(engine, pid, "c", minutes=10)
    process(engine, status_change(pid, "c", GroupStatus.RESOLVED, None), now=later(11))
    issue(engine, pid, "a", minutes=20)  # seen again: now the most recent
    assert ids(get(server, tenant)) == [first, second]
    assert ids(get(server, tenant, query="is:resolved")) == [resolved]
    assert ids(get(server, tenant, query="")) == [first, resolved, second]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("is:ignored", ["ignored"]),
        ("is:unresolved", ["cron", "perf"]),
        ("issue.category:cron", ["cron", "ignored"]),
        ("is:unresolved issue.category:cron", ["cron"]),
        ("issue.category:performance", ["perf"]),
        ("issue.category:feedback", ["feedback"]),
        ("is:unresolved issue.category:[cron, performance]", ["cron", "perf"]),
        ("!issue.category:cron", ["perf", "feedback"]),
        ("issue.type:performance_p95_endpoint_regression", ["perf"]),
        ("database", ["perf"]),
        ("DATABASE slow", ["perf"]),
        ('"went down"', ["cron"]),
        ("is:unresolved priority:high", ["cron"]),
        ("is:new", ["cron", "perf"]),
    ],
)
def test_search(
    server: str, tenant: Tenant, engine: Engine, query: str, expected: list[str]
) -> None:
    pid = tenant.project.id
    made = {
        "cron": issue(engine, pid, "cron", minutes=3, title="Job went down"),
        "perf": issue(
            engine, pid, "perf", minutes=2, title="Slow database query", type=P95_REGRESSION
        ),
        "feedback": issue(engine, pid, "fb", minutes=1, title="User says", type=FEEDBACK),
        "ignored": issue(engine, pid, "ign", minutes=0, title="Muted job"),
    }
    process(
        engine,
        status_change(pid, "ign", GroupStatus.IGNORED, GroupSubStatus.FOREVER),
        now=later(4),
    )
    assert ids(get(server, tenant, query=query)) == [made[name] for name in expected]


def test_free_text_ignores_case_beyond_ascii(server: str, tenant: Tenant, engine: Engine) -> None:
    pid = tenant.project.id
    backup = issue(engine, pid, "backup", title="ÜBERWEISUNG fehlgeschlagen")
    issue(engine, pid, "other", title="Uber job timed out")
    for term in ("überweisung", "ÜBERWEISUNG", "Überweisung"):
        assert ids(get(server, tenant, query=term)) == [backup], term


def test_an_invalid_query_or_sort_is_a_400(server: str, tenant: Tenant) -> None:
    response = get(server, tenant, query="is:sleeping")
    assert response.status_code == 400
    assert response.json() == {"detail": "Invalid value 'sleeping' for is:"}
    response = get(server, tenant, sort="trends")
    assert response.status_code == 400
    assert response.json()["detail"].startswith("Invalid sort 'trends'")
    # A query of a thousand words: a reason, not the database's limit as a 500.
    response = get(server, tenant, query=" ".join(["a"] * 1000))
    assert response.status_code == 400
    assert response.json() == {"detail": "Too many search terms: 1000 (at most 100)"}
    assert get(server, tenant, query=" ".join(["a"] * 100)).status_code == 200


def test_environment_filter(server: str, tenant: Tenant, engine: Engine) -> None:
    pid = tenant.project.id
    prod = issue(engine, pid, "p", minutes=1, environment="production")
    staging = issue(engine, pid, "s", minutes=2, environment="staging")
    assert ids(get(server, tenant, environment="production")) == [prod]
    assert ids(get(server, tenant, environment=["production", "staging"])) == [staging, prod]
    assert ids(get(server, tenant, query="environment:staging")) == [staging]
    assert ids(get(server, tenant, environment="nowhere")) == []


def test_sorts(server: str, tenant: Tenant, engine: Engine) -> None:
    pid = tenant.project.id
    old_busy = issue(engine, pid, "busy", minutes=0)
    for minute in (1, 2):
        issue(engine, pid, "busy", minutes=minute)
    newest = issue(engine, pid, "new", minutes=10)
    middle = issue(engine, pid, "mid", minutes=5)
    assert ids(get(server, tenant)) == [newest, middle, old_busy]
    assert ids(get(server, tenant, sort="new")) == [newest, middle, old_busy]
    assert ids(get(server, tenant, sort="freq"))[0] == old_busy
    issue(engine, pid, "busy", minutes=20)
    assert ids(get(server, tenant, sort="date")) == [old_busy, newest, middle]
    assert ids(get(server, tenant, sort="new")) == [newest, middle, old_busy]


def test_cursor_pagination_follows_the_link_header(
    server: str, tenant: Tenant, engine: Engine
) -> None:
    made = [issue(engine, tenant.project.id, f"fp-{n}", minutes=n) for n in range(5)]
    seen: list[int] = []
    url = server + ISSUES + "?limit=2"
    while True:
        response = httpx.get(url, headers={"Authorization": f"Bearer {tenant.token}"})
        seen += ids(response)
        next_link = response.links["next"]
        if 'results="true"' not in response.headers["Link"].split(", ")[1]:
            break
        url = next_link["url"]
    assert seen == list(reversed(made))
    assert response.headers["X-Hits"] == "5"
    assert 'rel="previous"; results="true"' in response.headers["Link"]


def test_project_filter(server: str, tenant: Tenant, engine: Engine) -> None:
    with engine.begin() as conn:
        other = store.create_project(conn, tenant.org, "api")
    web = issue(engine, tenant.project.id, "x", minutes=1)
    api = issue(engine, other.id, "x", minutes=2)
    assert ids(get(server, tenant, project=tenant.project.id)) == [web]
    assert ids(get(server, tenant, project=[tenant.project.id, other.id])) == [api, web]
    assert ids(get(server, tenant, project=-1)) == [api, web]
    assert get(server, tenant, project=999999).status_code == 404


# --- one issue -------------------------------------------------------------------------


def test_get_by_id_or_short_id(server: str, tenant: Tenant, engine: Engine) -> None:
    group_id = issue(engine, tenant.project.id, "x")
    by_id = get(server, tenant, f"{ISSUES}{group_id}/")
    assert by_id.status_code == 200
    by_short = get(server, tenant, f"{ISSUES}WEB-1/")
    assert by_short.json() == by_id.json()
    assert get(server, tenant, f"{ISSUES}999999/").status_code == 404
    assert get(server, tenant, f"{ISSUES}WEB-2/").status_code == 404


def test_another_organizations_issue_is_a_404(server: str, tenant: Tenant, engine: Engine) -> None:
    other = make_tenant(engine, "org-b", "web")
    theirs = issue(engine, other.project.id, "x")
    response = get(server, tenant, f"{ISSUES}{theirs}/")
    assert response.status_code == 404
    assert response.json() == {"detail": f"issue '{theirs}' does not exist"}


def put(server: str, tenant: Tenant, group_id: int, body: Any) -> httpx.Response:
    return call("PUT", server, f"{ISSUES}{group_id}/", tenant.token, json=body)


@pytest.mark.parametrize(
    ("body", "status", "substatus", "details", "activity_type"),
    [
        ({"status": "resolved"}, "resolved", None, {}, ActivityType.SET_RESOLVED),
        (
            {"status": "ignored"},
            "ignored",
            "archived_forever",
            {},
            ActivityType.SET_IGNORED,
        ),
        (
            {"status": "ignored", "statusDetails": {"ignoreUntilEscalating": True}},
            "ignored",
            "archived_until_escalating",
            {"ignoreUntilEscalating": True},
            ActivityType.SET_IGNORED,
        ),
        (
            {"status": "ignored", "statusDetails": {"ignoreCount": 100}},
            "ignored",
            "archived_until_condition_met",
            {**NO_DETAILS, "ignoreCount": 100},
            ActivityType.SET_IGNORED,
        ),
        (
            {"status": "ignored", "substatus": "archived_until_condition_met"},
            "ignored",
            "archived_until_condition_met",
            {},
            ActivityType.SET_IGNORED,
        ),
        ({"status": "unresolved"}, "unresolved", "ongoing", {}, ActivityType.SET_UNRESOLVED),
        (
            {"status": "unresolved", "substatus": "escalating"},
            "unresolved",
            "escalating",
            {},
            ActivityType.SET_ESCALATING,
        ),
    ],
)
def test_put_status_goes_through_the_status_change_path(
    server: str,
    tenant: Tenant,
    engine: Engine,
    body: dict[str, Any],
    status: str,
    substatus: str | None,
    details: dict[str, Any],
    activity_type: ActivityType,
) -> None:
    group_id = issue(engine, tenant.project.id, "x")
    response = put(server, tenant, group_id, body)
    assert response.status_code == 200, response.text
    shown = response.json()
    assert (shown["status"], shown["substatus"], shown["statusDetails"]) == (
        status,
        substatus,
        details,
    )
    assert get(server, tenant, f"{ISSUES}{group_id}/").json() == shown
    with engine.connect() as conn:
        kinds = list(conn.scalars(select(activity.c.type).where(activity.c.group_id == group_id)))
    assert int(activity_type) in kinds


# --- ignored until a condition is met (Sentry's snoozes) ---------------------------------


def again(engine: Engine, project_id: int, fingerprint: str, minutes: float) -> None:
    """Another occurrence of the issue, processed `minutes` after T0."""
    at = later(minutes)
    process(engine, occurrence(project_id, fingerprint, at=at), now=at)


def shown(server: str, tenant: Tenant, group_id: int) -> dict[str, Any]:
    response = get(server, tenant, f"{ISSUES}{group_id}/")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_ignored_until_a_count_shows_it_and_ends_after_that_many_more(
    server: str, tenant: Tenant, engine: Engine
) -> None:
    pid = tenant.project.id
    group_id = issue(engine, pid, "x")
    response = put(
        server, tenant, group_id, {"status": "ignored", "statusDetails": {"ignoreCount": 2}}
    )
    assert response.status_code == 200, response.text
    details = {**NO_DETAILS, "ignoreCount": 2}
    body = response.json()
    assert (body["status"], body["substatus"], body["statusDetails"]) == (
        "ignored",
        "archived_until_condition_met",
        details,
    )
    [listed] = get(server, tenant, query="is:ignored").json()
    assert listed["statusDetails"] == details
    again(engine, pid, "x", 1)
    assert shown(server, tenant, group_id)["status"] == "ignored"
    again(engine, pid, "x", 2)  # the second one since it was ignored
    after = shown(server, tenant, group_id)
    assert (after["status"], after["substatus"], after["statusDetails"]) == (
        "unresolved",
        "ongoing",
        {},
    )
    assert after["count"] == "3"
    # (the occurrences' clock is T0, before the PUT's: the listing's order says nothing)
    assert [a["type"] for a in after["activity"]].count("set_unresolved") == 1
    with engine.connect() as conn:
        assert conn.execute(select(group_snooze)).first() is None


def test_ignored_until_a_count_within_a_window(server: str, tenant: Tenant, engine: Engine) -> None:
    pid = tenant.project.id
    group_id = issue(engine, pid, "x")
    condition = {"ignoreCount": 2, "ignoreWindow": 10}
    assert put(server, tenant, group_id, {"status": "ignored", "statusDetails": condition})
    again(engine, pid, "x", 20)
    again(engine, pid, "x", 40)  # two since, but 20 minutes apart
    assert shown(server, tenant, group_id)["status"] == "ignored"
    again(engine, pid, "x", 45)  # two within ten minutes
    assert shown(server, tenant, group_id)["status"] == "unresolved"


def test_ignored_for_a_time_ends_when_the_time_comes(
    server: str, tenant: Tenant, engine: Engine
) -> None:
    group_id = issue(engine, tenant.project.id, "x")
    before = datetime.now(UTC)
    body = {"status": "ignored", "statusDetails": {"ignoreDuration": 30}}
    details = put(server, tenant, group_id, body).json()["statusDetails"]
    until = datetime.fromisoformat(details["ignoreUntil"])
    assert before + timedelta(minutes=30) <= until <= datetime.now(UTC) + timedelta(minutes=30)
    assert expire_snoozes(engine, until - timedelta(seconds=1)) == 0
    assert shown(server, tenant, group_id)["status"] == "ignored"
    assert expire_snoozes(engine, until) == 1
    after = shown(server, tenant, group_id)
    assert (after["status"], after["substatus"]) == ("unresolved", "ongoing")
    assert expire_snoozes(engine, until + timedelta(hours=1)) == 0


def test_another_status_ends_the_snooze(server: str, tenant: Tenant, engine: Engine) -> None:
    pid = tenant.project.id
    group_id = issue(engine, pid, "x")
    ignore = {"status": "ignored", "statusDetails": {"ignoreCount": 1}}
    assert put(server, tenant, group_id, ignore).status_code == 200
    assert put(server, tenant, group_id, {"status": "resolved"}).status_code == 200
    with engine.connect() as conn:
        assert conn.execute(select(group_snooze)).first() is None
    # Ignored until a condition by a message: there is none to meet, it stays ignored.
    process(
        engine,
        status_change(pid, "x", GroupStatus.IGNORED, GroupSubStatus.UNTIL_CONDITION_MET),
        now=later(1),
    )
    again(engine, pid, "x", 2)
    assert shown(server, tenant, group_id)["status"] == "ignored"


def test_a_new_condition_replaces_the_old_one(server: str, tenant: Tenant, engine: Engine) -> None:
    group_id = issue(engine, tenant.project.id, "x")
    put(server, tenant, group_id, {"status": "ignored", "statusDetails": {"ignoreCount": 1}})
    body = {"status": "ignored", "statusDetails": {"ignoreCount": 5}}
    assert put(server, tenant, group_id, body).json()["statusDetails"]["ignoreCount"] == 5
    again(engine, tenant.project.id, "x", 1)
    assert shown(server, tenant, group_id)["status"] == "ignored"


def test_bulk_ignore_until_a_count_answers_the_condition(
    server: str, tenant: Tenant, engine: Engine
) -> None:
    ids = [issue(engine, tenant.project.id, fp) for fp in ("a", "b")]
    query = "&".join(f"id={i}" for i in ids)
    body = {"status": "ignored", "statusDetails": {"ignoreCount": 3, "ignoreWindow": 60}}
    response = call("PUT", server, f"{ISSUES}?{query}", tenant.token, json=body)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "status": "ignored",
        "substatus": "archived_until_condition_met",
        "statusDetails": {**NO_DETAILS, "ignoreCount": 3, "ignoreWindow": 60},
    }
    for group_id in ids:
        assert shown(server, tenant, group_id)["statusDetails"]["ignoreWindow"] == 60


def test_put_unassigns_and_refuses_an_assignment_it_cannot_make(
    server: str, tenant: Tenant, engine: Engine
) -> None:
    # An assignee resolved by the producer's side (a detector naming "alice").
    assigning = replace(DEFAULT_PROCESSING, resolve_assignee=lambda _c, _o, _a: "user:7")
    process(engine, occurrence(tenant.project.id, "x", assignee="alice"), processing=assigning)
    [group_id] = ids(get(server, tenant))
    assert shown(server, tenant, group_id)["assignedTo"] == {"type": "user", "id": "7"}

    refused = put(server, tenant, group_id, {"assignedTo": "user:8"})
    assert refused.status_code == 400
    assert refused.json()["assignedTo"] == [
        "vigil has no users or teams to assign to: only null unassigns"
    ]
    assert shown(server, tenant, group_id)["assignedTo"] == {"type": "user", "id": "7"}

    response = put(server, tenant, group_id, {"assignedTo": None})
    assert response.status_code == 200, response.text
    assert response.json()["assignedTo"] is None
    assert response.json()["activity"][0]["type"] == "unassigned"
    # Sentry's per-user flags mean nothing to a token: accepted, as Sentry accepts them.
    assert put(server, tenant, group_id, {"hasSeen": True}).status_code == 200


def test_put_the_same_status_changes_nothing(server: str, tenant: Tenant, engine: Engine) -> None:
    group_id = issue(engine, tenant.project.id, "x")
    assert put(server, tenant, group_id, {"status": "resolved"}).status_code == 200
    again = put(server, tenant, group_id, {"status": "resolved"})
    assert again.status_code == 200
    assert again.json()["status"] == "resolved"
    with engine.connect() as conn:
        kinds = list(conn.scalars(select(activity.c.type).where(activity.c.group_id == group_id)))
    assert kinds.count(ActivityType.SET_RESOLVED) == 1


@pytest.mark.parametrize(
    ("body", "field", "detail"),
    [
        ({"status": "sleeping"}, "status", '"sleeping" is not a valid choice.'),
        ({"status": "ignored", "substatus": "nope"}, "substatus", '"nope" is not a valid choice.'),
        ({"substatus": "ongoing"}, "status", "status is required with substatus or statusDetails"),
        (
            {"status": "unresolved", "substatus": "archived_forever"},
            "substatus",
            "substatus 'archived_forever' is not valid with status 'unresolved' "
            "(group.update_status.invalid_substatus)",
        ),
        (
            {"status": "ignored", "substatus": "regressed"},
            "substatus",
            "substatus 'regressed' is not valid with status 'ignored' "
            "(group.update_status.invalid_substatus)",
        ),
        (
            {"status": "resolved", "substatus": "ongoing"},
            "substatus",
            "status 'resolved' takes no substatus, not 'ongoing' "
            "(group.update_status.unexpected_substatus)",
        ),
        (
            {"status": "ignored", "statusDetails": {"ignoreCount": "ten"}},
            "statusDetails",
            "ignoreCount must be a whole number, not 'ten'",
        ),
        (
            # (Past 64 bits the JSON integer arrives as a float: whole, out of range.)
            {"status": "ignored", "statusDetails": {"ignoreCount": 10**30}},
            "statusDetails",
            "ignoreCount must be between 1 and 2147483647",
        ),
        (
            {"status": "ignored", "statusDetails": {"ignoreCount": 1, "ignoreWindow": 20000}},
            "statusDetails",
            "ignoreWindow must be between 1 and 10080",
        ),
        (
            {"status": "resolved", "statusDetails": {"inNextRelease": True}},
            "statusDetails",
            "resolving in a release or a commit is not supported",
        ),
        ({"priority": "urgent"}, "priority", '"urgent" is not a valid choice.'),
    ],
)
def test_put_refuses_what_the_status_path_refuses(
    server: str,
    tenant: Tenant,
    engine: Engine,
    body: dict[str, Any],
    field: str,
    detail: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    group_id = issue(engine, tenant.project.id, "x")
    with caplog.at_level(logging.INFO):
        response = put(server, tenant, group_id, body)
    assert response.status_code == 400, response.text
    assert response.json() == {"detail": detail, field: [detail]}
    # The client's mistake, answered: nothing for an operator's error log.
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    shown = get(server, tenant, f"{ISSUES}{group_id}/").json()
    assert (shown["status"], shown["substatus"]) == ("unresolved", "new")


def test_put_priority_sets_and_locks_it(server: str, tenant: Tenant, engine: Engine) -> None:
    group_id = issue(engine, tenant.project.id, "x")
    response = put(server, tenant, group_id, {"priority": "low"})
    assert response.status_code == 200, response.text
    assert (response.json()["priority"], response.json()["priorityLocked"]) == ("low", True)
    # Escalating no longer raises a priority a person chose.
    escalate = put(server, tenant, group_id, {"status": "unresolved", "substatus": "escalating"})
    assert escalate.json()["priority"] == "low"


def test_a_read_token_cannot_put(server: str, tenant: Tenant, engine: Engine) -> None:
    group_id = issue(engine, tenant.project.id, "x")
    reader = make_token(engine, tenant.org, ["event:read"])
    assert call("GET", server, ISSUES, reader).status_code == 200
    refused = call("PUT", server, f"{ISSUES}{group_id}/", reader, json={"status": "resolved"})
    assert refused.status_code == 403
    assert httpx.get(server + ISSUES).status_code == 401


# --- events ----------------------------------------------------------------------------


def test_events_newest_first_with_their_occurrence_and_tags(
    server: str, tenant: Tenant, engine: Engine
) -> None:
    pid = tenant.project.id
    first = occurrence(pid, "x", at=T0)
    second = occurrence(
        pid,
        "x",
        at=later(1),
        evidence_data={"reason": "timeout"},
        evidence_display=[{"name": "Failure reason", "value": "timeout", "important": True}],
    )
    second["event"] = event_payload(
        pid,
        second["event_id"],
        later(1),
        environment="production",
        tags={"monitor.slug": "job"},
        received="2026-03-01T12:00:58.5+00:00",  # as crons' occurrences carry it
    )
    process(engine, first, now=T0)
    process(engine, second, now=later(3))
    group_id = issue(engine, pid, "x", minutes=2)
    path = f"{ISSUES}{group_id}/events/"
    response = get(server, tenant, path)
    assert response.status_code == 200
    listed = response.json()
    assert len(listed) == 3
    assert listed[1]["eventID"] == second["event_id"]
    assert listed[2]["eventID"] == first["event_id"]
    event = listed[1]
    assert event["groupID"] == str(group_id)
    assert event["projectID"] == str(pid)
    assert event["title"] == "Something broke"
    assert event["dateCreated"] == "2026-03-01T12:01:00Z"
    assert event["dateReceived"] == "2026-03-01T12:00:58.500000Z"  # the producer's
    assert listed[2]["dateReceived"] == format_date(T0)  # none given: when vigil got it
    assert event["tags"] == [
        {"key": "environment", "value": "production"},
        {"key": "level", "value": "error"},
        {"key": "monitor.slug", "value": "job"},
    ]
    assert event["occurrence"]["id"] == second["id"]
    assert event["occurrence"]["evidenceData"] == {"reason": "timeout"}
    assert event["occurrence"]["evidenceDisplay"] == [
        {"name": "Failure reason", "value": "timeout", "important": True}
    ]
    assert event["occurrence"]["issueTitle"] == "Something broke"
    assert event["occurrence"]["subtitle"] == "it was bad"
    assert event["occurrence"]["type"] == CRON
    assert len(event["occurrence"]["fingerprint"]) == 1  # hashed
    assert 'rel="next"' in response.headers["Link"]
    only_prod = get(server, tenant, path, environment="production").json()
    assert [e["eventID"] for e in only_prod] == [second["event_id"]]
    # latest and oldest of an environment, as Sentry: the newest event is not in it
    for which in ("latest", "oldest"):
        in_prod = get(server, tenant, f"{path}{which}/", environment="production")
        assert in_prod.json()["eventID"] == second["event_id"]
        assert get(server, tenant, f"{path}{which}/", environment="nowhere").status_code == 404

    latest = get(server, tenant, f"{path}latest/")
    assert latest.status_code == 200
    assert latest.json()["eventID"] == listed[0]["eventID"]
    assert (
        latest.json()["occurrence"]["evidenceDisplay"] == listed[0]["occurrence"]["evidenceDisplay"]
    )
    assert get(server, tenant, f"{path}oldest/").json()["eventID"] == first["event_id"]
    one = get(server, tenant, f"{path}{second['event_id']}/")
    assert one.json()["contexts"] == {}
    assert one.json()["eventID"] == second["event_id"]
    assert get(server, tenant, f"{path}{'f' * 32}/").status_code == 404


def test_events_sort_by_their_own_time_not_by_arrival(
    server: str, tenant: Tenant, engine: Engine
) -> None:
    pid = tenant.project.id
    # Arrival order: 12:05, then 12:01 sent late, then 12:03 from a buffered-spans
    # producer (its event is never stored: the occurrence keeps the event's time).
    newest = occurrence(pid, "x", at=later(5))
    late = occurrence(pid, "x", at=later(1))
    spans = occurrence(pid, "x", at=later(3), is_buffered_spans=True)
    for arrived, payload in enumerate((newest, late, spans), start=6):
        process(engine, payload, now=later(arrived))
    with engine.connect() as conn:
        group_id = conn.execute(select(grouphash.c.group_id)).scalar_one()
    path = f"{ISSUES}{group_id}/events/"
    listed = get(server, tenant, path).json()
    assert [e["eventID"] for e in listed] == [
        newest["event_id"],
        spans["event_id"],
        late["event_id"],
    ]
    assert [e["dateCreated"] for e in listed] == [
        "2026-03-01T12:05:00Z",
        "2026-03-01T12:03:00Z",
        "2026-03-01T12:01:00Z",
    ]
    assert get(server, tenant, f"{path}latest/").json()["eventID"] == newest["event_id"]
    assert get(server, tenant, f"{path}oldest/").json()["eventID"] == late["event_id"]
    # One per page: the cursor walks the same order.
    page = get(server, tenant, path, per_page="1", cursor="0:1:0").json()
    assert [e["eventID"] for e in page] == [spans["event_id"]]


def test_latest_event_of_an_issue_without_events_is_a_404(
    server: str, tenant: Tenant, engine: Engine
) -> None:
    other = make_tenant(engine, "org-b", "web")
    theirs = issue(engine, other.project.id, "x")
    assert get(server, tenant, f"{ISSUES}{theirs}/events/latest/").status_code == 404


def test_project_scoped_listing(server: str, tenant: Tenant, engine: Engine) -> None:
    with engine.begin() as conn:
        other = store.create_project(conn, tenant.org, "api")
    web = issue(engine, tenant.project.id, "x", minutes=1)
    issue(engine, other.id, "x", minutes=2)
    assert ids(get(server, tenant, "/api/0/projects/org-a/web/issues/")) == [web]
    missing = get(server, tenant, "/api/0/projects/org-a/nope/issues/")
    assert missing.status_code == 404


def test_bulk_put_changes_the_named_issues(server: str, tenant: Tenant, engine: Engine) -> None:
    first = issue(engine, tenant.project.id, "a", minutes=1)
    second = issue(engine, tenant.project.id, "b", minutes=2)
    untouched = issue(engine, tenant.project.id, "c", minutes=3)
    response = call(
        "PUT",
        server,
        ISSUES,
        tenant.token,
        params={"id": [first, second]},
        json={"status": "ignored", "statusDetails": {"ignoreUntilEscalating": True}},
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "status": "ignored",
        "substatus": "archived_until_escalating",
        "statusDetails": {"ignoreUntilEscalating": True},
    }
    assert ids(get(server, tenant, query="is:ignored")) == [second, first]
    assert ids(get(server, tenant)) == [untouched]


def test_bulk_put_needs_ids_that_all_exist(server: str, tenant: Tenant, engine: Engine) -> None:
    first = issue(engine, tenant.project.id, "a")
    unknown = call(
        "PUT",
        server,
        ISSUES,
        tenant.token,
        params={"id": [first, 999999]},
        json={"status": "resolved"},
    )
    assert unknown.status_code == 404
    assert ids(get(server, tenant)) == [first]  # nothing changed


def test_bulk_put_without_ids_changes_what_the_search_finds(
    server: str, tenant: Tenant, engine: Engine
) -> None:
    with engine.begin() as conn:
        other = store.create_project(conn, tenant.org, "api")
    first = issue(engine, tenant.project.id, "a", minutes=1, title="Alpha failed")
    second = issue(engine, tenant.project.id, "b", minutes=2, title="Beta failed")
    elsewhere = issue(engine, other.id, "c", minutes=3)
    project_issues = "/api/0/projects/org-a/web/issues/"
    # sentry-cli's `issues mute -s unresolved`: the project's unresolved issues only
    muted = call(
        "PUT",
        server,
        project_issues,
        tenant.token,
        params={"status": "unresolved"},
        json={"status": "muted", "snoozeDuration": None},
    )
    assert muted.status_code == 200, muted.text
    assert muted.json()["status"] == "ignored"
    assert ids(get(server, tenant, query="is:ignored")) == [second, first]
    assert ids(get(server, tenant)) == [elsewhere]
    # a search on the organization's path: `query=`, here within one project
    resolved = call(
        "PUT",
        server,
        ISSUES,
        tenant.token,
        params={"query": "is:ignored beta", "project": "web"},
        json={"status": "resolved"},
    )
    assert resolved.status_code == 200, resolved.text
    assert ids(get(server, tenant, query="is:resolved")) == [second]
    # nothing found: 204, as Sentry answers
    none = call(
        "PUT",
        server,
        project_issues,
        tenant.token,
        params={"query": "nothing-like-it"},
        json={"status": "resolved"},
    )
    assert none.status_code == 204
    # without ids or a search, the default search: the unresolved issues (of the path's
    # project), never the resolved or ignored ones
    call(
        "PUT", server, ISSUES, tenant.token, params={"id": [elsewhere]}, json={"status": "resolved"}
    )
    reopened = call(
        "PUT",
        server,
        "/api/0/projects/org-a/api/issues/",
        tenant.token,
        json={"status": "unresolved"},
    )
    assert reopened.status_code == 204


def test_bulk_put_refusals(server: str, tenant: Tenant, engine: Engine) -> None:
    with engine.begin() as conn:
        other = store.create_project(conn, tenant.org, "api")
    first = issue(engine, tenant.project.id, "a")
    theirs = issue(engine, other.id, "b")

    def put(path: str, body: dict[str, Any], **params: Any) -> httpx.Response:
        return call("PUT", server, path, tenant.token, params=params, json=body)

    project_issues = "/api/0/projects/org-a/web/issues/"
    next_release = put(project_issues, {"status": "resolvedInNextRelease"}, id=[first])
    assert next_release.status_code == 400
    assert next_release.json()["status"] == ["resolving in the next release is not supported"]
    bad_status = put(project_issues, {"status": "resolved"}, status="open")
    assert bad_status.status_code == 400 and "status" in bad_status.json()
    bad_query = put(ISSUES, {"status": "resolved"}, query="is:nonsense")
    assert bad_query.status_code == 400 and "query" in bad_query.json()
    # an issue of another project on a project's path: none changes
    wrong_project = put(project_issues, {"status": "resolved"}, id=[first, theirs])
    assert wrong_project.status_code == 404
    assert set(ids(get(server, tenant))) == {first, theirs}


def test_detail_shows_the_activity_newest_first(
    server: str, tenant: Tenant, engine: Engine
) -> None:
    pid = tenant.project.id
    group_id = issue(engine, pid, "x", minutes=0)
    process(engine, status_change(pid, "x", GroupStatus.RESOLVED, None), now=later(5))
    issue(engine, pid, "x", minutes=10)  # a newer event: the issue regresses
    shown = get(server, tenant, f"{ISSUES}{group_id}/").json()
    assert (shown["status"], shown["substatus"]) == ("unresolved", "regressed")
    assert [a["type"] for a in shown["activity"]] == [
        "set_regression",
        "set_resolved",
        "first_seen",
    ]
    assert shown["activity"][-1]["dateCreated"] == "2026-03-01T12:00:00Z"
    changed = put(server, tenant, group_id, {"status": "ignored"}).json()
    assert changed["activity"][0]["type"] == "set_ignored"


@pytest.mark.parametrize(
    "issue_id", ["99999999999999999999999", "WEB-ZZZZZZZZZZZZZZZZZZZZ", "WEB-", "-", "%20"]
)
def test_ids_that_name_nothing_are_404s(server: str, tenant: Tenant, issue_id: str) -> None:
    response = get(server, tenant, f"{ISSUES}{issue_id}/")
    assert response.status_code == 404
    assert get(server, tenant, f"{ISSUES}{issue_id}/events/latest/").status_code == 404


def test_a_huge_project_id_is_a_404(server: str, tenant: Tenant) -> None:
    assert get(server, tenant, project="99999999999999999999999").status_code == 404


def test_last_seen_window(server: str, tenant: Tenant, engine: Engine) -> None:
    early = issue(engine, tenant.project.id, "early", minutes=0)
    late = issue(engine, tenant.project.id, "late", minutes=10)
    assert ids(get(server, tenant, start="2026-03-01T12:05:00Z")) == [late]
    assert ids(get(server, tenant, end="2026-03-01T12:05:00")) == [early]
    assert ids(get(server, tenant, statsPeriod="24h")) == []  # T0 is long past
    assert ids(get(server, tenant, statsPeriod="5200w")) == [late, early]
    bad = get(server, tenant, statsPeriod="soon")
    assert bad.status_code == 400
    assert bad.json()["statsPeriod"] == ["Invalid statsPeriod 'soon'"]
