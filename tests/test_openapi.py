"""The OpenAPI document (`GET /api/0/openapi.json`): a valid OpenAPI 3.1 document that
names exactly the operations the app routes, served without a token."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator, ValidationError
from openapi_spec_validator import validate
from referencing import Registry
from referencing.jsonschema import DRAFT202012
from sqlalchemy import Engine
from starlette.routing import Route

from tests.issues.occurrences import occurrence, process
from tests.support.checkins import Sender
from tests.support.live_server import live_server
from tests.support.services import free_port
from tests.support.tenants import make_tenant
from vigil.api.app import all_routes, create_app
from vigil.api.openapi import ISSUE, MONITOR, OPENAPI_PATH, ORG, PROJECT, build_document
from vigil.config import Settings
from vigil.monitors.checkin_processing import CheckinProcessing
from vigil.webhooks.dispatcher import WebhookDispatcher

_CONVERTOR = re.compile(r"\{(\w+):\w+\}")


def routed_operations() -> set[tuple[str, str]]:
    """(method, path) of every route, as the document writes paths: convertors left out,
    one form of an optional trailing slash, HEAD (which GET answers) not counted."""
    found = set()
    for route in all_routes():
        assert isinstance(route, Route)
        path = _CONVERTOR.sub(r"{\1}", route.path)
        if not path.endswith("/") and path not in ("/metrics", OPENAPI_PATH):
            path += "/"
        found |= {(method, path) for method in route.methods or () if method != "HEAD"}
    return found


def test_the_document_is_valid_openapi() -> None:
    validate(build_document("http://127.0.0.1:9000"))


def test_the_document_names_every_routed_operation_and_no_other() -> None:
    document = build_document("http://127.0.0.1:9000")
    documented = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
    }
    assert documented == routed_operations()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    settings = Settings(home=tmp_path, public_url="https://vigil.example.com")
    with live_server(create_app(settings)) as url:
        yield url


def test_it_is_served_without_a_token(server: str) -> None:
    response = httpx.get(server + OPENAPI_PATH, timeout=30)
    assert response.status_code == 200
    document = response.json()
    assert document["servers"] == [{"url": "https://vigil.example.com"}]
    issue = document["paths"]["/api/0/organizations/{organization_slug}/issues/{issue_id}/"]
    assert issue["put"]["security"] == [{"bearer": []}]
    assert set(issue["put"]["responses"]) >= {"200", "400", "401", "403", "404"}


# --- the schemas against real answers ----------------------------------------------------


def _validator(document: dict[str, Any], method: str, path: str, status: str) -> Any:
    """A validator of the answer `status` of the documented operation, its references
    resolved in the document."""
    registry: Registry[Any] = Registry().with_resource(
        "urn:vigil", DRAFT202012.create_resource(document)
    )
    pointer = "/".join(
        part.replace("~", "~0").replace("/", "~1")
        for part in ("paths", path, method, "responses", status, "content")
    )
    schema = {"$ref": f"urn:vigil#/{pointer}/application~1json/schema"}
    return Draft202012Validator(schema, registry=registry)


def test_real_answers_match_the_documented_schemas(stack: Settings, engine: Engine) -> None:
    tenant = make_tenant(engine, "acme", "web")
    project = tenant.project
    # An issue with an event, a monitor with check-ins, a processing error of each kind.
    process(engine, occurrence(project.id, "job-failed"), now=datetime.now(UTC))
    send = Sender(engine, project, CheckinProcessing())
    now = datetime.now(UTC)
    config = {"schedule": {"type": "interval", "value": 1, "unit": "day"}, "checkin_margin": 5}
    guid = send(
        now - timedelta(minutes=2),
        monitor_slug="nightly",
        monitor_config=config,
        status="in_progress",
    )
    send(now - timedelta(minutes=1), monitor_slug="nightly", status="error", check_in_id=guid)
    send(now, monitor_slug="nightly", status="ok", check_in_id=guid)  # already finished
    send(now, monitor_slug="fresh", monitor_config={"schedule": "not a schedule"})
    with live_server(create_app(stack)) as url:
        document = httpx.get(url + OPENAPI_PATH, timeout=30).json()
        headers = {"Authorization": f"Bearer {tenant.token}"}

        def get(template: str, issue_id: str = "") -> Any:
            concrete = template.format(
                organization_slug="acme",
                project_slug="web",
                monitor_slug="nightly",
                issue_id=issue_id,
            )
            response = httpx.get(url + concrete, headers=headers, timeout=30)
            assert response.status_code == 200, (template, response.text)
            _validator(document, "get", template, "200").validate(response.json())
            return response.json()

        [issue] = get(ORG + "/issues/")
        get(ISSUE + "/", issue_id=issue["id"])
        events = get(ISSUE + "/events/", issue_id=issue["id"])
        assert events and events[0]["occurrence"]["evidenceDisplay"]
        get(ISSUE + "/events/latest/", issue_id=issue["id"])
        monitors = get(ORG + "/monitors/")
        assert [m["slug"] for m in monitors] == ["nightly"]
        get(MONITOR + "/")
        checkins = get(MONITOR + "/checkins/")
        assert {c["status"] for c in checkins} == {"error"}
        assert get(MONITOR + "/processing-errors/")
        assert get(PROJECT + "/processing-errors/")
        # A webhook, and a delivery to a port nobody listens on (pending, with its error).
        created = httpx.post(
            url + "/api/0/organizations/acme/webhooks/",
            headers=headers,
            json={"url": f"http://127.0.0.1:{free_port()}/hook"},
            timeout=30,
        )
        assert created.status_code == 201, created.text
        _validator(document, "post", ORG + "/webhooks/", "201").validate(created.json())
        process(engine, occurrence(project.id, "job-failed-again"), now=datetime.now(UTC))
        later = datetime.now(UTC) + timedelta(minutes=5)
        WebhookDispatcher(stack, background=False, clock=lambda: later).run_once(engine, later)
        [hook] = get(ORG + "/webhooks/")
        assert hook["deliveries"]["pending"] == 1 and hook["lastError"]
        response = httpx.get(
            url + f"/api/0/organizations/acme/webhooks/{hook['id']}/deliveries/",
            headers=headers,
            timeout=30,
        )
        [delivery] = response.json()
        assert delivery["status"] == "pending"
        template = ORG + "/webhooks/{webhook_id}/deliveries/"
        _validator(document, "get", template, "200").validate(response.json())
        tested = httpx.post(
            url + f"/api/0/organizations/acme/webhooks/{hook['id']}/test/",
            headers=headers,
            timeout=30,
        )
        assert tested.status_code == 200 and tested.json()["delivered"] is False
        template = ORG + "/webhooks/{webhook_id}/test/"
        _validator(document, "post", template, "200").validate(tested.json())
        # A refusal has the documented error shape too.
        missing = httpx.get(
            url + f"/api/0/organizations/acme/issues/{2**40}/", headers=headers, timeout=30
        )
        assert missing.status_code == 404
        _validator(document, "get", ISSUE + "/", "404").validate(missing.json())
        bad = httpx.put(
            url + f"/api/0/organizations/acme/issues/{issue['id']}/",
            headers=headers,
            json={"status": "ignored", "substatus": "regressed"},
            timeout=30,
        )
        assert bad.status_code == 400
        _validator(document, "put", ISSUE + "/", "400").validate(bad.json())
        # And a wrong shape would be caught: the schemas are not empty.
        with pytest.raises(ValidationError):
            _validator(document, "get", ISSUE + "/", "200").validate({"id": 1})
