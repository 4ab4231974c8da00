"""The OpenAPI document (`GET /api/0/openapi.json`): a valid OpenAPI 3.1 document that
names exactly the operations the app routes, served without a token."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from openapi_spec_validator import validate
from starlette.routing import Route

from tests.support.live_server import live_server
from vigil.api.app import all_routes, create_app
from vigil.api.openapi import OPENAPI_PATH, build_document
from vigil.config import Settings

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
