"""The OpenAPI 3.1 document of vigil's HTTP API, served at `GET /api/0/openapi.json`
(no token needed: it describes, it reveals nothing).

Each operation is declared once in `OPERATIONS`: its method and path (as routed), a
summary, the query parameters it reads, what its body is, and its answers. The JSON
bodies are Sentry's shapes; the main ones have schemas (`openapi_schemas`), the others
are described in words pointing to README.md and docs/. Tests check that the document
and the app's routes name the same operations, and that real answers match the schemas,
so neither can drift from the other.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from vigil import __version__
from vigil.api.openapi_schemas import SCHEMAS, ref
from vigil.api.services import services

OPENAPI_PATH: Final = "/api/0/openapi.json"
_CONVERTOR = re.compile(r"\{(\w+)(?::\w+)?\}")

ORG = "/api/0/organizations/{organization_slug}"
PROJECT = "/api/0/projects/{organization_slug}/{project_slug}"
MONITOR = ORG + "/monitors/{monitor_slug}"
PROJECT_MONITOR = PROJECT + "/monitors/{monitor_slug}"
ISSUE = ORG + "/issues/{issue_id}"

_PATH_PARAMS: Final = {
    "organization_slug": "the organization's slug",
    "project_slug": "the project's slug or id",
    "project_id": "the project's id (as in the DSN)",
    "monitor_slug": "the monitor's slug",
    "sentry_key": "the DSN's public key",
    "issue_id": "the issue's id or short id (WEB-1A)",
    "event_id": "the event's id (32 hex digits) or its occurrence's id",
    "key_id": "the DSN key's public key",
    "error_id": "the processing error record's id",
    "environment": "the monitor environment's name",
    "check_in_id": "the run's id (the POST's answer), or `latest`",
    "webhook_id": "the webhook's id",
    "version": "the release's version",
}
_INTEGER_PATH_PARAMS: Final = frozenset({"project_id"})

PAGINATION: Final = (
    ("cursor", "the page: the cursor of a `Link` header's next or previous link"),
    ("per_page", "results per page, 1-100"),
)
_INTEGER_QUERY: Final = frozenset({"per_page", "limit"})


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    summary: str
    tag: str
    query: tuple[tuple[str, str], ...] = ()
    body: str | None = None  # what the JSON body is; None: no body
    answers: Mapping[int, str] = field(default_factory=lambda: {200: "the result"})
    auth: str = "token"  # "token", "dsn", "dsn-or-token" or "none"
    paged: bool = False
    # The success answer's and the body's schema in `openapi_schemas.SCHEMAS`, by name
    # ("Issue[]": a list of them); None: described in words only.
    response: str | None = None
    request: str | None = None


def _op(method: str, path: str, summary: str, tag: str, **kwargs: Any) -> Operation:
    return Operation(method, path, summary, tag, **kwargs)


_NOT_FOUND = {404: "not found, or not this organization's"}
_FIELD_ERRORS = {400: "invalid: `{field: [reason]}` and `detail`"}

OPERATIONS: Final[tuple[Operation, ...]] = (
    # --- ingest (Sentry's, for SDKs and cron wrappers) ---
    _op(
        "POST",
        "/api/{project_id}/envelope/",
        "Ingest an envelope: its check_in items become check-ins",
        "ingest",
        body="a Sentry envelope (identity, gzip, deflate or br); see README.md",
        answers={
            200: "accepted and durable: `{id}`",
            400: "not an envelope",
            401: "no DSN key",
            403: "a key of another project, or disabled",
            413: "over VIGIL_MAX_MESSAGE_BYTES",
            429: "over the project's check-in quota (`X-Sentry-Rate-Limits`)",
            503: "the log is unavailable",
        },
        auth="dsn",
    ),
    *(
        _op(
            method,
            path,
            "Record a check-in (curl, cron wrappers)",
            "ingest",
            query=(
                ("status", "in_progress, ok or error"),
                ("check_in_id", "the run's id (else the latest in_progress one)"),
                ("environment", "the monitor environment"),
                ("duration", "seconds"),
            ),
            body="optional JSON check-in with `monitor_config` (POST)"
            if method == "POST"
            else None,
            answers={
                202: "accepted and durable (empty body)",
                400: "not a check-in",
                401: "no DSN key",
                403: "a key of another project, or disabled",
                413: "over VIGIL_MAX_MESSAGE_BYTES",
                503: "the log is unavailable",
            },
            auth="dsn",
        )
        for path in (
            "/api/{project_id}/cron/{monitor_slug}/{sentry_key}/",
            "/api/{project_id}/cron/{monitor_slug}/",
        )
        for method in ("GET", "POST")
    ),
    # --- the deprecated check-in API (sentry-cli before 2.19, token-configured CLIs) ---
    *(
        _op(
            method,
            base + ("{check_in_id}/" if method == "PUT" else ""),
            "Start a run (POST) or finish one (PUT; `latest`: the latest in progress), "
            "Sentry's deprecated check-in API",
            "ingest",
            body='`{"status", "environment"?, "duration"? (ms), "monitor_config"? (POST, '
            "with a DSN)}`; see docs/crons.md",
            answers={
                (201 if method == "POST" else 200): "accepted and durable: the check-in "
                "`{id, status, duration, environment, dateCreated}`",
                **_FIELD_ERRORS,
                401: "no DSN or token, or not a valid one",
                403: "a disabled key, or a token without the scope or organization",
                **_NOT_FOUND,
                413: "over VIGIL_MAX_MESSAGE_BYTES",
                503: "the log is unavailable",
            },
            auth="dsn-or-token",
        )
        for base in ("/api/0/monitors/{monitor_slug}/checkins/", MONITOR + "/checkins/")
        for method in ("POST", "PUT")
    ),
    # --- organizations, projects, keys ---
    _op(
        "GET",
        "/api/0/",
        "Who the token is: `{version, auth: {scopes} | null, user: null}` (sentry-cli info)",
        "organizations",
        answers={200: "the token's scopes; `auth` null without a token", 401: "a bad token"},
        auth="none",
    ),
    _op(
        "GET",
        "/api/0/organizations/",
        "The token's organization, as a list",
        "organizations",
    ),
    _op("GET", ORG + "/", "The organization, with its features", "organizations"),
    _op("GET", ORG + "/projects/", "The organization's projects", "organizations"),
    _op("GET", PROJECT + "/keys/", "The project's DSN keys", "keys"),
    _op(
        "POST",
        PROJECT + "/keys/",
        "Make a DSN key",
        "keys",
        body='`{"name"}`',
        answers={201: "the key, with its DSN"},
    ),
    _op(
        "PUT",
        PROJECT + "/keys/{key_id}/",
        "Enable or disable a DSN key",
        "keys",
        body='`{"isActive"}`, `{"name"}`',
        answers={200: "the key", **_NOT_FOUND},
    ),
    # --- dynamic sampling ---
    _op(
        "GET",
        ORG + "/dynamic-sampling/custom-rules/",
        "Find the custom sampling rule of a query",
        "dynamic-sampling",
        query=(("query", "the rule's query"), ("project", "project ids, repeatable")),
        answers={200: "the rule", 204: "no such rule", **_FIELD_ERRORS},
    ),
    _op(
        "POST",
        ORG + "/dynamic-sampling/custom-rules/",
        "Create or extend a custom sampling rule",
        "dynamic-sampling",
        body='`{"query", "projects", "period"}`; see docs/dynamic-sampling.md',
        answers={200: "the rule", **_FIELD_ERRORS},
    ),
    # --- crons ---
    _op(
        "GET",
        ORG + "/monitors/",
        "List monitors",
        "monitors",
        query=(
            ("project", "project slug or id, repeatable; -1: all"),
            ("query", "words"),
            ("environment", "repeatable"),
            ("sort", "status (default), name or muted"),
            ("asc", "0: reversed"),
        ),
        paged=True,
        response="Monitor[]",
    ),
    _op(
        "POST",
        ORG + "/monitors/",
        "Create a monitor",
        "monitors",
        body='`{"project", "name", "slug"?, "config"}`; see docs/crons.md',
        answers={201: "the monitor", **_FIELD_ERRORS},
        response="Monitor",
        request="MonitorCreate",
    ),
    *(
        op
        for base in (MONITOR, PROJECT_MONITOR)
        for op in (
            _op(
                "GET",
                base + "/",
                "A monitor with its environments",
                "monitors",
                answers={200: "the monitor", **_NOT_FOUND},
                response="Monitor",
            ),
            _op(
                "PUT",
                base + "/",
                "Change a monitor (name, slug, config, isMuted, status)",
                "monitors",
                body='`{"name"?, "slug"?, "config"?, "isMuted"?, "status"?}`',
                answers={200: "the monitor", **_FIELD_ERRORS, **_NOT_FOUND},
                response="Monitor",
                request="MonitorUpdate",
            ),
            _op(
                "DELETE",
                base + "/",
                "Delete a monitor",
                "monitors",
                answers={202: "deleted", **_NOT_FOUND},
            ),
            _op(
                "PUT",
                base + "/environments/{environment}/",
                "Mute or unmute one of a monitor's environments",
                "monitors",
                body='`{"isMuted"}`',
                answers={200: "the monitor", **_FIELD_ERRORS, **_NOT_FOUND},
                response="Monitor",
            ),
            _op(
                "DELETE",
                base + "/environments/{environment}/",
                "Delete one of a monitor's environments, with its check-ins",
                "monitors",
                answers={202: "deleted", **_NOT_FOUND},
            ),
            _op(
                "GET",
                base + "/checkins/",
                "A monitor's check-ins, newest first",
                "monitors",
                query=(
                    ("environment", "repeatable"),
                    ("start", "ISO-8601"),
                    ("end", "ISO-8601"),
                ),
                paged=True,
                response="CheckIn[]",
            ),
            _op(
                "GET",
                base + "/processing-errors/",
                "A monitor's processing errors",
                "monitors",
                response="ProcessingError[]",
            ),
            _op(
                "DELETE",
                base + "/processing-errors/",
                "Delete a monitor's processing errors of a type",
                "monitors",
                query=(("errortype", "the error type id"),),
                answers={204: "deleted", **_FIELD_ERRORS},
            ),
        )
    ),
    _op(
        "GET",
        PROJECT + "/processing-errors/",
        "A project's processing errors",
        "monitors",
        response="ProcessingError[]",
    ),
    _op(
        "DELETE",
        PROJECT + "/processing-errors/",
        "Delete a project's processing errors of a type",
        "monitors",
        query=(("errortype", "the error type id"),),
        answers={204: "deleted", **_FIELD_ERRORS},
    ),
    _op(
        "DELETE",
        PROJECT + "/processing-errors/{error_id}/",
        "Delete one processing error record",
        "monitors",
        answers={204: "deleted", **_NOT_FOUND},
    ),
    _op("GET", ORG + "/monitors-clock/", "The crons clock", "monitors"),
    *(
        _op(
            "GET",
            path,
            "Releases seen in events, newest first",
            "issues",
            query=(
                ("project", "project slug or id, repeatable"),
                ("query", "text the version contains"),
            ),
            paged=True,
            answers={200: "the releases", **_FIELD_ERRORS, **_NOT_FOUND},
        )
        for path in (ORG + "/releases/", PROJECT + "/releases/")
    ),
    # --- webhooks ---
    _op(
        "GET",
        ORG + "/webhooks/",
        "The organization's issue webhooks, with their deliveries by status",
        "webhooks",
        response="Webhook[]",
    ),
    _op(
        "POST",
        ORG + "/webhooks/",
        "Add an issue webhook (the answer holds its signing secret, shown once)",
        "webhooks",
        request="WebhookCreate",
        response="Webhook",
        answers={201: "created", **_FIELD_ERRORS, **_NOT_FOUND},
    ),
    _op(
        "DELETE",
        ORG + "/webhooks/{webhook_id}/",
        "Remove an issue webhook and its deliveries",
        "webhooks",
        answers={204: "removed", **_NOT_FOUND},
    ),
    _op(
        "GET",
        ORG + "/webhooks/{webhook_id}/deliveries/",
        "A webhook's latest 50 deliveries, newest first",
        "webhooks",
        response="WebhookDelivery[]",
        answers={200: "the deliveries", **_NOT_FOUND},
    ),
    _op(
        "POST",
        ORG + "/webhooks/{webhook_id}/test/",
        "Send a webhook a test notification (action `test`, a sample issue) and answer "
        "how its receiver took it; nothing is recorded among its deliveries",
        "webhooks",
        response="WebhookTest",
        answers={200: "sent: `delivered` says whether the receiver took it", **_NOT_FOUND},
    ),
    *(
        _op(
            "POST",
            path,
            "Make a release (sentry-cli releases new): 201, or 208 when it exists",
            "issues",
            body='`{"version", "projects": [slug], "ref"?, "url"?, "dateReleased"?}`',
            answers={201: "made", 208: "it existed: its projects added", **_FIELD_ERRORS},
        )
        for path in (ORG + "/releases/", PROJECT + "/releases/")
    ),
    _op(
        "GET",
        ORG + "/releases/{version}/",
        "A release",
        "issues",
        answers={200: "the release", **_NOT_FOUND},
    ),
    _op(
        "PUT",
        ORG + "/releases/{version}/",
        "Change a release (sentry-cli releases finalize | archive | restore)",
        "issues",
        body='`{"dateReleased"?, "ref"?, "url"?, "projects"?, "status"?: "open"|"archived"}`',
        answers={200: "the release", **_FIELD_ERRORS, **_NOT_FOUND},
    ),
    _op(
        "DELETE",
        ORG + "/releases/{version}/",
        "Delete a release no issue was first seen in",
        "issues",
        answers={204: "deleted", **_FIELD_ERRORS, **_NOT_FOUND},
    ),
    _op(
        "GET",
        ORG + "/releases/{version}/deploys/",
        "A release's deploys, newest first (sentry-cli deploys list)",
        "issues",
        answers={200: "the deploys", **_NOT_FOUND},
    ),
    _op(
        "POST",
        ORG + "/releases/{version}/deploys/",
        "Record a deploy of a release (sentry-cli deploys new)",
        "issues",
        body='`{"environment", "name"?, "url"?, "dateStarted"?, "dateFinished"?}`',
        answers={201: "recorded", **_FIELD_ERRORS, **_NOT_FOUND},
    ),
    # --- issue platform ---
    _op(
        "POST",
        PROJECT + "/occurrences/",
        "Submit an occurrence or a status change",
        "issues",
        body="one ingest-occurrences message; see docs/issues-api.md",
        answers={
            202: "accepted and durable: `{id}`",
            **_FIELD_ERRORS,
            413: "too large",
            503: "the log is unavailable",
        },
    ),
    *(
        _op(
            "GET",
            path,
            "List issues",
            "issues",
            query=(
                ("project", "project slug or id, repeatable; -1: all"),
                ("query", "Sentry search; see docs/issues-api.md"),
                ("environment", "repeatable"),
                ("statsPeriod", "24h, 14d, …"),
                ("start", "ISO-8601"),
                ("end", "ISO-8601"),
                ("sort", "date, new, freq or priority"),
                ("limit", "results per page, 1-100"),
            ),
            answers={200: "the issues (`X-Hits`: how many match)", **_FIELD_ERRORS},
            paged=True,
            response="Issue[]",
        )
        for path in (ORG + "/issues/", PROJECT + "/issues/")
    ),
    *(
        _op(
            "PUT",
            path,
            "Change the status or priority of the issues named by id=, or found by a search",
            "issues",
            query=(
                ("id", "an issue id, repeatable"),
                ("status", "without id=: the issues of this status (muted: ignored)"),
                ("query", "without id= or status=: a search (default is:unresolved)"),
                ("project", "project slug or id, repeatable"),
                ("environment", "repeatable"),
            ),
            body='`{"status", "substatus"?, "statusDetails"?}` and/or `{"priority"}`',
            answers={
                200: "the change",
                204: "no issue selected",
                **_FIELD_ERRORS,
                **_NOT_FOUND,
            },
            request="IssueUpdate",
        )
        for path in (ORG + "/issues/", PROJECT + "/issues/")
    ),
    _op(
        "GET",
        ISSUE + "/",
        "An issue, with its activity",
        "issues",
        answers={200: "the issue", **_NOT_FOUND},
        response="IssueDetails",
    ),
    _op(
        "PUT",
        ISSUE + "/",
        "Resolve, unresolve, ignore, prioritise or unassign an issue",
        "issues",
        body='`{"status", "substatus"?, "statusDetails"?}`, `{"priority"}`, `{"assignedTo": null}`',
        answers={200: "the issue", **_FIELD_ERRORS, **_NOT_FOUND},
        response="IssueDetails",
        request="IssueUpdate",
    ),
    _op(
        "GET",
        ISSUE + "/events/",
        "An issue's events, newest first",
        "issues",
        query=(("environment", "repeatable"), ("full", "true: every field")),
        paged=True,
        response="Event[]",
    ),
    *(
        _op(
            "GET",
            ISSUE + f"/events/{which}/",
            summary,
            "issues",
            answers={200: "the event", **_NOT_FOUND},
            response="Event",
        )
        for which, summary in (
            ("latest", "An issue's latest event"),
            ("oldest", "An issue's oldest event"),
            ("{event_id}", "One of an issue's events"),
        )
    ),
    _op(
        "GET",
        PROJECT + "/events/",
        "A project's events, newest first (sentry-cli events list)",
        "issues",
        query=(
            ("environment", "repeatable"),
            ("statsPeriod", "24h, 14d, …"),
            ("start", "ISO-8601"),
            ("end", "ISO-8601"),
            ("full", "true: every field"),
        ),
        answers={200: "the events", **_FIELD_ERRORS, **_NOT_FOUND},
        paged=True,
        response="Event[]",
    ),
    # --- operations ---
    _op(
        "GET",
        "/_health/",
        "Liveness; with full=1, the database and the log too; with clock=1, the crons "
        "clock as well",
        "operations",
        query=(
            ("full", "1: check the database and the log"),
            ("clock", "1: and that the crons clock is at most clock_max_lag seconds behind"),
            ("clock_max_lag", "seconds (default 180)"),
        ),
        answers={200: "healthy", 400: "a bad clock_max_lag", 503: "a check failed"},
        auth="none",
    ),
    _op("GET", "/metrics", "Prometheus metrics", "operations", auth="none"),
    _op("GET", OPENAPI_PATH, "This document", "operations", auth="none"),
)


def _parameters(op: Operation) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "description": _PATH_PARAMS[name],
            "schema": {"type": "integer" if name in _INTEGER_PATH_PARAMS else "string"},
        }
        for name in _CONVERTOR.findall(op.path)
    ]
    query = op.query + (PAGINATION if op.paged else ())
    params += [
        {
            "name": name,
            "in": "query",
            "required": False,
            "description": text,
            "schema": {"type": "integer" if name in _INTEGER_QUERY else "string"},
        }
        for name, text in query
    ]
    return params


def _operation(op: Operation) -> dict[str, Any]:
    answers: dict[str, Any] = {}
    for status, text in sorted(op.answers.items()):
        answer: dict[str, Any] = {"description": text}
        if status not in (202, 204) and op.path != "/metrics":
            answer["content"] = {"application/json": {"schema": _answer_schema(op, status)}}
        answers[str(status)] = answer
    if op.auth == "token":
        for refusal, text in (
            ("401", "no token, or not a valid one"),
            ("403", "the token lacks the scope, or the organization"),
        ):
            answers.setdefault(refusal, {"description": text, "content": _json(ref("Error"))})
    document: dict[str, Any] = {
        "summary": op.summary,
        "operationId": f"{op.method.lower()} {op.path}",
        "tags": [op.tag],
        "parameters": _parameters(op),
        "responses": answers,
    }
    if op.body is not None:
        document["requestBody"] = {
            "description": op.body,
            "required": op.method != "GET",
            "content": _json(_named(op.request) if op.request else {}),
        }
    if op.auth == "token":
        document["security"] = [{"bearer": []}]
    elif op.auth == "dsn":
        document["security"] = [{"sentryAuth": []}, {"sentryKey": []}]
    elif op.auth == "dsn-or-token":
        document["security"] = [{"bearer": []}, {"dsnAuthorization": []}]
    else:
        document["security"] = []
    return document


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _named(name: str) -> dict[str, Any]:
    # "Issue[]": a list of Issue
    if name.endswith("[]"):
        return {"type": "array", "items": ref(name[:-2])}
    return ref(name)


def _answer_schema(op: Operation, status: int) -> dict[str, Any]:
    if 200 <= status < 300:
        return _named(op.response) if op.response else {}
    if status == 400 and op.answers.get(400) == _FIELD_ERRORS[400]:
        return ref("FieldErrors")
    return ref("Error")


def build_document(base_url: str) -> dict[str, Any]:
    """The OpenAPI document, with `base_url` as its server."""
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "vigil",
            "version": __version__,
            "description": "Sentry-compatible cron monitoring and issue ingestion. Bodies "
            "are Sentry's shapes: see README.md and docs/ for their fields.",
        },
        "servers": [{"url": base_url}],
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "an API token"},
                "sentryAuth": {"type": "apiKey", "in": "header", "name": "X-Sentry-Auth"},
                "sentryKey": {"type": "apiKey", "in": "query", "name": "sentry_key"},
                "dsnAuthorization": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "`DSN <the project's DSN>`",
                },
            },
        },
        "paths": paths,
    }


def openapi_endpoint(request: Request) -> JSONResponse:
    return JSONResponse(build_document(services(request).settings.base_url))


def routes() -> list[BaseRoute]:
    return [Route(OPENAPI_PATH, openapi_endpoint, methods=["GET"], name=OPENAPI_PATH)]
