"""`POST /api/0/projects/{org}/{project}/occurrences/` through a real server on both
backends: occurrences and status changes validated before they are accepted, written to
`ingest-occurrences` keyed on the raw first fingerprint part, and refused with the field
at fault, the auth reason, 413 or 503 otherwise."""

from __future__ import annotations

import gzip
import uuid
import zlib
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import brotli
import httpx
import orjson
import pytest
from sqlalchemy import Engine

from tests.support.live_server import live_server
from tests.support.log_reader import read_messages
from tests.support.services import free_port
from tests.support.tenants import Tenant, make_tenant, make_token
from vigil.api.app import create_app
from vigil.config import Settings
from vigil.issues.consumer import _process_message
from vigil.issues.occurrence import no_assignees, normalise_occurrence
from vigil.streams.backend import LogBackend
from vigil.streams.topics import Topic
from vigil.tenancy import store

SHARED = Path(__file__).resolve().parents[2] / "shared"
EXAMPLE = (
    SHARED / "vendor-data/sentry-kafka-schemas/examples/ingest-occurrences/1/monitor-failure.json"
)
OCCURRENCES = Topic.INGEST_OCCURRENCES.value
PATH = "/api/0/projects/org-a/web/occurrences/"


@pytest.fixture
def tenant(engine: Engine) -> Tenant:
    return make_tenant(engine, "org-a", "web")


def post(server: str, token: str, body: Any, path: str = PATH) -> httpx.Response:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return httpx.post(
        server + path,
        content=content,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        timeout=60,
    )


def example() -> dict[str, Any]:
    """The reference's example message, without its project ids (the path's fill them in)."""
    value: dict[str, Any] = orjson.loads(EXAMPLE.read_bytes())
    del value["project_id"], value["event"]["project_id"]
    return value


def occurrence(tenant: Tenant, **changes: Any) -> dict[str, Any]:
    value: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "project_id": tenant.project.id,
        "event_id": uuid.uuid4().hex,
        "fingerprint": ["disk-full:host-1", "second"],
        "issue_title": "Disk almost full",
        "subtitle": "95% used on /var",
        "type": 4001,
        "detection_time": "2025-01-02T03:04:05Z",
        "evidence_data": {"used": 0.95},
        "evidence_display": [{"name": "Used", "value": "95%", "important": True}],
        "level": "warning",
    }
    value.update(changes)
    return value


def status_change(**changes: Any) -> dict[str, Any]:
    return {
        "payload_type": "status_change",
        "fingerprint": ["disk-full:host-1"],
        "new_status": 1,
        "new_substatus": None,
        **changes,
    }


# --- accepted --------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br"])
def test_a_compressed_body_is_decoded(
    stack: Settings, server: str, tenant: Tenant, log_backend: LogBackend, encoding: str
) -> None:
    body = orjson.dumps(occurrence(tenant))
    packed = {
        "gzip": gzip.compress,
        "deflate": zlib.compress,
        "br": brotli.compress,
    }[encoding](body)
    response = httpx.post(
        f"{server}{PATH}",
        content=packed,
        headers={
            "Authorization": f"Bearer {tenant.token}",
            "Content-Type": "application/json",
            "Content-Encoding": encoding,
        },
        timeout=60,
    )
    assert response.status_code == 202, response.text
    [payload] = read_messages(stack, log_backend, OCCURRENCES, 1)
    assert orjson.loads(payload.value)["issue_title"] == "Disk almost full"
    odd = httpx.post(
        f"{server}{PATH}",
        content=body,
        headers={"Authorization": f"Bearer {tenant.token}", "Content-Encoding": "zstd"},
        timeout=60,
    )
    assert odd.status_code == 415
    assert "unsupported Content-Encoding 'zstd'" in odd.json()["detail"]


def test_a_null_payload_type_is_written_as_an_occurrence_the_consumer_applies(
    stack: Settings, server: str, tenant: Tenant, log_backend: LogBackend, engine: Engine
) -> None:
    body = occurrence(tenant, payload_type=None)
    body["event"] = {
        "event_id": body["event_id"],
        "project_id": tenant.project.id,
        "platform": "python",
        "timestamp": "2025-01-02T03:04:05Z",
    }
    response = post(server, tenant.token, body)
    assert response.status_code == 202, response.text
    [payload] = read_messages(stack, log_backend, OCCURRENCES, 1)
    written = orjson.loads(payload.value)
    assert "payload_type" not in written
    with engine.begin() as conn:
        applied = _process_message(conn, written, now=datetime.now(UTC))
    assert applied is not None and applied[1].group.title == "Disk almost full"


def test_the_reference_example_is_accepted_and_written_with_the_paths_project(
    stack: Settings, server: str, tenant: Tenant, log_backend: LogBackend
) -> None:
    response = post(server, tenant.token, example())
    assert response.status_code == 202, response.text
    assert response.json() == {"id": "a" * 32}
    [payload] = read_messages(stack, log_backend, OCCURRENCES, 1)
    assert payload.key == f"{'c' * 32}-{tenant.project.id}".encode()
    written = orjson.loads(payload.value)
    expected = example()
    expected["project_id"] = tenant.project.id
    expected["event"]["project_id"] = tenant.project.id
    assert written == expected
    normalised = normalise_occurrence(written, resolve_assignee=no_assignees, now=datetime.now(UTC))
    assert normalised.event_data is not None


def test_an_occurrence_is_answered_with_its_normalised_id_and_keyed_on_the_raw_fingerprint(
    stack: Settings, server: str, tenant: Tenant, log_backend: LogBackend
) -> None:
    body = occurrence(tenant)
    response = post(server, tenant.token, body)
    assert response.status_code == 202, response.text
    assert response.json() == {"id": uuid.UUID(body["id"]).hex}
    [payload] = read_messages(stack, log_backend, OCCURRENCES, 1)
    assert payload.key == f"disk-full:host-1-{tenant.project.id}".encode()
    assert orjson.loads(payload.value) == body  # as sent: the consumer hashes the parts


def test_a_status_change_gets_an_id_when_it_has_none(
    stack: Settings, server: str, tenant: Tenant, log_backend: LogBackend
) -> None:
    first = post(server, tenant.token, status_change())
    second = post(server, tenant.token, status_change(id="mine", new_status=2, new_substatus=5))
    assert (first.status_code, second.status_code) == (202, 202), first.text + second.text
    generated = first.json()["id"]
    assert len(generated) == 32 and uuid.UUID(generated).hex == generated
    assert second.json() == {"id": "mine"}
    written = [orjson.loads(p.value) for p in read_messages(stack, log_backend, OCCURRENCES, 2)]
    assert written == [
        {**status_change(), "id": generated, "project_id": tenant.project.id},
        {
            **status_change(new_status=2, new_substatus=5),
            "id": "mine",
            "project_id": tenant.project.id,
        },
    ]


def test_the_project_may_be_named_by_id_and_the_slash_left_out(server: str, tenant: Tenant) -> None:
    path = f"/api/0/projects/org-a/{tenant.project.id}/occurrences"
    response = post(server, tenant.token, occurrence(tenant), path)
    assert response.status_code == 202, response.text


# --- refused ---------------------------------------------------------------------------


def _without(key: str) -> dict[str, Any]:
    return {key: ...}


@pytest.mark.parametrize(
    ("changes", "field", "detail"),
    [
        (_without("id"), "id", "Missing required field: id"),
        ({"id": "not-a-uuid"}, "id", "id is not a valid UUID: 'not-a-uuid'"),
        ({"fingerprint": []}, "fingerprint", "fingerprint must be non-empty"),
        ({"fingerprint": "abc"}, "fingerprint", "fingerprint must be a list of strings"),
        (_without("issue_title"), "issue_title", "Missing required field: issue_title"),
        ({"type": 999999}, "type", "No group type with the id 999999 is registered."),
        ({"type": "4001"}, "type", "type must be an integer"),
        (
            {"detection_time": "yesterday"},
            "detection_time",
            "detection_time is not an ISO-8601 date-time: 'yesterday'",
        ),
        ({"evidence_data": None}, "evidence_data", "evidence_data must be an object"),
        ({"evidence_display": [{"name": "x"}]}, "evidence_display", None),
        (
            _without("event_id"),
            "event_id",
            "Payload must contain either event_id or event_data",
        ),
        ({"payload_type": "other"}, "payload_type", None),
        ({"project_id": 123456789}, "project_id", None),
        ({"event": {"project_id": 123456789}}, "project_id", None),
        ({"event": {"platform": "python"}}, "event", None),
        (
            {"initial_issue_priority": 60},
            "initial_issue_priority",
            "initial_issue_priority must be one of 25 (low), 50 (medium), 75 (high), not 60",
        ),
        ({"initial_issue_priority": 0}, "initial_issue_priority", None),
        ({"priority": -5}, "priority", None),
    ],
)
def test_an_invalid_occurrence_is_a_400_naming_its_field(
    stack: Settings,
    server: str,
    tenant: Tenant,
    log_backend: LogBackend,
    changes: dict[str, Any],
    field: str,
    detail: str | None,
) -> None:
    body = occurrence(tenant)
    for key, value in changes.items():
        if value is ...:
            del body[key]
        else:
            body[key] = value
    response = post(server, tenant.token, body)
    assert response.status_code == 400, response.text
    answer = response.json()
    assert answer.get(field) == [answer["detail"]], answer
    if detail is not None:
        assert answer["detail"] == detail
    _log_is_empty(stack, server, tenant, log_backend)


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.mark.parametrize(
    ("changes", "event_changes", "field", "detail"),
    [
        (
            {"event_id": "c" * 32},
            {},
            "event_id",
            "event_id in occurrence(cccccccccccccccccccccccccccccccc) is different from "
            "event_id in event_data(bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb)",
        ),
        ({}, {"environment": "e" * 65}, "event", "event environment is longer than 64 characters"),
        ({}, {"release": "r" * 251}, "event", "event release is longer than 250 characters"),
        ({}, {"platform": "p" * 65}, "event", "event platform is longer than 64 characters"),
        (
            {"evidence_data": _nested(101)},
            {},
            "non_field_errors",
            "payload nests deeper than 100 levels",
        ),
        (
            {"initial_issue_priority": 40000},
            {},
            "initial_issue_priority",
            "initial_issue_priority is out of range",
        ),
        # Both event schemas refuse the event (which takes the occurrence's level): the
        # answer gives the current schema's reason, not the legacy one's (which wants a
        # date-time string for the timestamp).
        (
            {"level": "critical"},
            {"timestamp": 1717713781.1},
            "event",
            "event is not a valid event: level: not a log level",
        ),
    ],
)
def test_what_the_consumer_would_refuse_is_a_400(
    stack: Settings,
    server: str,
    tenant: Tenant,
    log_backend: LogBackend,
    changes: dict[str, Any],
    event_changes: dict[str, Any],
    field: str,
    detail: str,
) -> None:
    body = {**example(), **changes}
    body["event"] = {**body["event"], **event_changes}
    response = post(server, tenant.token, body)
    assert response.status_code == 400, response.text
    assert response.json() == {"detail": detail, field: [detail]}
    _log_is_empty(stack, server, tenant, log_backend)


@pytest.mark.parametrize(
    ("changes", "field", "detail"),
    [
        ({"fingerprint": []}, "fingerprint", "fingerprint must be non-empty"),
        ({"new_status": "resolved"}, "new_status", "new_status must be an integer"),
        ({"new_status": 42}, "new_status", "new_status 42 is not a group status"),
        ({"new_status": 1, "new_substatus": 5}, "new_substatus", None),
        ({"new_status": 2, "new_substatus": None}, "new_substatus", None),
        ({"new_status": 2, "new_substatus": 6}, "new_substatus", None),
        ({"new_status": 0, "new_substatus": 7}, "new_substatus", None),
        ({"new_status": 3}, "new_status", None),
        ({"new_substatus": 99, "new_status": 0}, "new_substatus", None),
    ],
)
def test_an_invalid_status_change_is_a_400_with_the_reason(
    server: str, tenant: Tenant, changes: dict[str, Any], field: str, detail: str | None
) -> None:
    response = post(server, tenant.token, status_change(**changes))
    assert response.status_code == 400, response.text
    answer = response.json()
    assert answer.get(field) == [answer["detail"]], answer
    if detail is not None:
        assert answer["detail"] == detail


def _log_is_empty(stack: Settings, server: str, tenant: Tenant, log_backend: LogBackend) -> None:
    """Nothing was written before this: the next accepted message is the first."""
    marker = occurrence(tenant)
    assert post(server, tenant.token, marker).status_code == 202
    [payload] = read_messages(stack, log_backend, OCCURRENCES, 1)
    assert orjson.loads(payload.value)["id"] == marker["id"]


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"{not json", None),
        (b"[1, 2]", "request body must be a JSON object"),
        (b"", "the request has no body: send one occurrence or status change as JSON"),
        (b" \n", "the request has no body: send one occurrence or status change as JSON"),
        (b"{}", "Missing required field: id"),
    ],
)
def test_a_body_that_is_not_a_message_is_a_400(
    server: str, tenant: Tenant, body: bytes, detail: str | None
) -> None:
    response = post(server, tenant.token, body)
    assert response.status_code == 400
    if detail is not None:
        assert response.json()["detail"] == detail
    else:
        assert response.json()["detail"].startswith("request body is not valid JSON")


def test_a_body_over_the_limit_is_a_413(stack: Settings, tenant: Tenant) -> None:
    limit = 16 * 1024
    with live_server(create_app(replace(stack, max_message_bytes=limit))) as small:
        body = occurrence(tenant, evidence_data={"padding": "x" * limit})
        response = post(small, tenant.token, body)
    assert response.status_code == 413
    assert response.json() == {"detail": f"request body exceeds the limit of {limit} bytes"}


def test_auth(server: str, tenant: Tenant, engine: Engine) -> None:
    body = occurrence(tenant)
    assert httpx.post(server + PATH, json=body, timeout=60).status_code == 401
    reader = make_token(engine, tenant.org, ["project:read", "org:read"])
    refused = post(server, reader, body)
    assert refused.status_code == 403
    assert refused.json() == {"detail": "this token lacks the project:write or org:write scope"}
    writer = make_token(engine, tenant.org, ["project:write"])
    assert post(server, writer, body).status_code == 202
    other = make_tenant(engine, "org-b", "web")
    assert post(server, other.token, body).status_code == 403
    missing = post(server, tenant.token, body, "/api/0/projects/org-a/nope/occurrences/")
    assert missing.status_code == 404
    assert missing.json() == {"detail": "project 'nope' does not exist"}
    huge = post(server, tenant.token, body, f"/api/0/projects/org-a/{10**30}/occurrences/")
    assert huge.status_code == 404


def test_another_organizations_project_id_in_the_payload_is_refused(
    server: str, tenant: Tenant, engine: Engine
) -> None:
    other = make_tenant(engine, "org-b", "api")
    response = post(server, tenant.token, occurrence(tenant, project_id=other.project.id))
    assert response.status_code == 400
    assert response.json()["project_id"] == [
        f"project_id {other.project.id} is not the id of this project ({tenant.project.id})"
    ]


def test_log_unavailable_gets_503(stack: Settings, engine: Engine, backend_name: str) -> None:
    if backend_name != "kafka":
        pytest.skip("an unreachable broker is a Kafka situation")
    tenant = make_tenant(engine, "org-a", "web")
    down = replace(stack, kafka_bootstrap_servers=f"127.0.0.1:{free_port()}")
    with live_server(create_app(down)) as server:
        response = post(server, tenant.token, occurrence(tenant))
    assert response.status_code == 503
    assert response.json() == {"detail": "the log is unavailable; retry later"}


def test_an_unreleased_type_needs_the_organizations_ingest_feature(
    server: str, tenant: Tenant, engine: Engine
) -> None:
    body = occurrence(tenant, type=2001)  # profile_file_io_main_thread, not released
    refused = post(server, tenant.token, body)
    assert refused.status_code == 400
    assert refused.json()["type"] == [
        "issue type profile_file_io_main_thread (2001) is not released: the organization "
        "needs the feature organizations:profile-file-io-main-thread-ingest"
    ]
    with engine.begin() as conn:
        store.set_feature(conn, tenant.org, "profile-file-io-main-thread-ingest", True)
    assert post(server, tenant.token, body).status_code == 202
