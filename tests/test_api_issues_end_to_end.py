"""End to end against a real `vigil serve` on both backends, as a detector that does not
speak Kafka would use it: the reference's example occurrence and a status change posted
to the occurrences endpoint become an issue, resolved, read back through the issues
API with its event and occurrence."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.support.serve import Running, poll, serve
from tests.support.services import free_port
from vigil.config import Settings

SHARED = Path(__file__).resolve().parents[2] / "shared"
EXAMPLE = (
    SHARED / "vendor-data/sentry-kafka-schemas/examples/ingest-occurrences/1/monitor-failure.json"
)


@pytest.fixture
def server(stack: Settings) -> Iterator[Running]:
    with serve(replace(stack, bind=f"127.0.0.1:{free_port()}")) as running:
        yield running


def test_posted_occurrence_and_status_change_are_read_back_as_an_issue(
    server: Running,
) -> None:
    dsn, token = server.banner("DSN"), server.banner("API token")
    assert dsn is not None and token is not None
    project_id = int(dsn.rstrip("/").rsplit("/", 1)[1])
    auth = {"Authorization": f"Bearer {token}"}
    api = f"{server.base_url}/api/0"
    occurrences = f"{api}/projects/default/{project_id}/occurrences/"
    issues = f"{api}/organizations/default/issues/"

    example: dict[str, Any] = orjson.loads(EXAMPLE.read_bytes())
    example["project_id"] = example["event"]["project_id"] = project_id
    accepted = httpx.post(occurrences, json=example, headers=auth, timeout=60)
    assert (accepted.status_code, accepted.json()) == (202, {"id": "a" * 32})

    def listed(query: str) -> list[dict[str, Any]] | None:
        response = httpx.get(issues, params={"query": query}, headers=auth, timeout=60)
        assert response.status_code == 200, response.text
        return response.json() or None

    [issue] = poll(lambda: listed("is:unresolved issue.category:cron"), "the issue", server)
    assert issue["title"] == "Monitor failure: poll_service"
    assert (issue["status"], issue["substatus"], issue["priority"]) == (
        "unresolved",
        "new",
        "high",
    )
    assert issue["issueType"] == "monitor_check_in_failure"
    assert issue["count"] == "1"

    latest = httpx.get(f"{issues}{issue['id']}/events/latest/", headers=auth, timeout=60)
    assert latest.status_code == 200
    event = latest.json()
    assert event["eventID"] == "b" * 32
    assert {"key": "monitor.slug", "value": "poll_service"} in event["tags"]
    assert event["occurrence"]["evidenceDisplay"][0] == {
        "name": "Failure reason",
        "value": "A missed check-in was detected",
        "important": True,
    }

    resolve = {
        "payload_type": "status_change",
        "fingerprint": example["fingerprint"],
        "new_status": 1,
        "new_substatus": None,
    }
    assert httpx.post(occurrences, json=resolve, headers=auth, timeout=60).status_code == 202
    [resolved] = poll(lambda: listed("is:resolved"), "the issue resolved", server)
    assert resolved["id"] == issue["id"]
    assert listed("is:unresolved") is None
