"""`/api/0/organizations/{organization_slug}/dynamic-sampling/custom-rules/`: custom
dynamic-sampling ("investigation") rules, shaped like Sentry's endpoint.

`POST` with `{"query": "...", "projects": [ids], "period": "1h"}` creates the rule for
that query and project set (no projects, or `[-1]`: an organization-level rule), or
extends the active one (its end, samples and rate become the larger of old and new).
Like Sentry, it answers 200 with the rule in both cases. The rule starts now and ends
after `period` (default 1h; Sentry caps the period at 6h and then applies 2 days, vigil
applies it, up to 365d). Every rule collects `NUM_SAMPLES` samples at `SAMPLE_RATE`:
Sentry's endpoint uses these same fixed values.

`GET ?query=...&project=1&project=2` answers 200 with the active rule for that query
that covers the projects (one with exactly those projects, else an organization-level
rule, else a rule linked to all of them), 204 when there is none.

Errors are `{"detail": reason}` as everywhere in vigil, plus Sentry's shape: a 400 names
its field (`{"query": [reason]}`, `"projects"`, `"period"`); too many rules is 429 with
`{"error": [reason]}`, the status Sentry answers. Any organization or project scope at
read level or higher is enough, as in Sentry (rules are how readers investigate).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from vigil.api.auth import Access, authorize
from vigil.api.http import json_object, read_body, route
from vigil.api.services import services
from vigil.sampling import rules
from vigil.sampling.period import DEFAULT_PERIOD, InvalidPeriod, parse_period
from vigil.sampling.query import Condition, InvalidQuery, parse_query
from vigil.tenancy import store

NUM_SAMPLES = 100  # samples each rule collects (Sentry's NUM_SAMPLES_PER_CUSTOM_RULE)
SAMPLE_RATE = 1.0  # keep every matching transaction while the rule is in force
ALL_PROJECTS = -1  # `projects: [-1]` is Sentry's way to say "the whole organization"
TOO_MANY_RULES_STATUS = 429  # what Sentry answers on TooManyRules

PATH = "/api/0/organizations/{organization_slug}/dynamic-sampling/custom-rules/"


class FieldError(Exception):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


def field_error(field: str, reason: str) -> JSONResponse:
    return JSONResponse({"detail": reason, field: [reason]}, status_code=400)


def serialize_rule(rule: rules.Rule) -> dict[str, Any]:
    return {
        "ruleId": rule.external_rule_id,
        "condition": rule.condition,
        "startDate": rules.format_date(rule.start_date),
        "endDate": rules.format_date(rule.end_date),
        "numSamples": rule.num_samples,
        "sampleRate": rule.sample_rate,
        "dateAdded": rules.format_date(rule.date_added),
        "projects": list(rule.projects),
        "orgId": rule.organization_id,
    }


def parse_condition(query: Any) -> Condition:
    if not isinstance(query, str):
        raise FieldError("query", "query must be a string")
    try:
        return parse_query(query)
    except InvalidQuery as exc:
        raise FieldError("query", str(exc)) from None


def parse_project_ids(values: Any) -> list[int]:
    """Project ids from a JSON list or repeated query parameters (numbers or digit
    strings); `[-1]` means none (the whole organization)."""
    if values is None:
        return []
    if not isinstance(values, list):
        raise FieldError("projects", "projects must be a list of project ids")
    ids: list[int] = []
    for value in values:
        if isinstance(value, int) and not isinstance(value, bool):
            ids.append(value)
        elif isinstance(value, str) and _is_integer(value.strip()):
            ids.append(int(value.strip()))
        else:
            raise FieldError("projects", f"invalid project id: {value!r}")
    if ids == [ALL_PROJECTS]:
        return []
    return sorted(set(ids))


def parse_period_field(value: Any) -> timedelta:
    if value is None:
        value = DEFAULT_PERIOD
    if not isinstance(value, str):
        raise FieldError("period", "period must be a string like 1h")
    try:
        return parse_period(value)
    except InvalidPeriod as exc:
        raise FieldError("period", str(exc)) from None


def _is_integer(text: str) -> bool:
    # ASCII only: `str.isdigit` admits '²', which int() refuses.
    digits = text.removeprefix("-")
    return digits.isascii() and digits.isdigit()


def check_projects(conn: Connection, org: store.Organization, project_ids: list[int]) -> None:
    known = {p.id for p in store.list_projects(conn, org)}
    unknown = [p for p in project_ids if p not in known]
    if unknown:
        raise FieldError("projects", "; ".join(f"invalid project id: {p}" for p in unknown))


def _authorize(conn: Connection, request: Request) -> Access:
    """Any org or project scope at read level or higher."""
    header = request.headers.get("authorization")
    slug = request.path_params["organization_slug"]
    return authorize(conn, header, slug, ("org:read", "project:read"))


async def create_or_extend(request: Request) -> Response:
    svc = services(request)
    body = json_object(await read_body(request, svc.settings.max_message_bytes))
    try:
        condition = parse_condition(body.get("query"))
        project_ids = parse_project_ids(body.get("projects"))
        period = parse_period_field(body.get("period"))
    except FieldError as exc:
        # the token is checked first, so a caller without access learns nothing
        def check() -> None:
            with svc.reading() as conn:
                _authorize(conn, request)

        await run_in_threadpool(check)
        return field_error(exc.field, exc.reason)
    query = body["query"]

    def write() -> Response:
        now = datetime.now(UTC)
        with svc.writing() as conn:
            access = _authorize(conn, request)
            try:
                check_projects(conn, access.organization, project_ids)
                rule = rules.update_or_create(
                    conn,
                    condition=condition,
                    start=now,
                    end=now + period,
                    project_ids=project_ids,
                    organization_id=access.organization.id,
                    num_samples=NUM_SAMPLES,
                    sample_rate=SAMPLE_RATE,
                    query=query,
                    now=now,
                )
            except FieldError as exc:
                return field_error(exc.field, exc.reason)
            except rules.UnknownProjects as exc:
                return field_error("projects", str(exc))
            except rules.TooManyRules as exc:
                reason = f"too many custom sampling rules: {exc}"
                return JSONResponse(
                    {"detail": reason, "error": [reason]}, status_code=TOO_MANY_RULES_STATUS
                )
        return JSONResponse(serialize_rule(rule))

    return await run_in_threadpool(write)


def get_rule(request: Request) -> Response:
    svc = services(request)
    now = datetime.now(UTC)
    with svc.reading() as conn:
        access = _authorize(conn, request)
        try:
            project_ids = parse_project_ids(request.query_params.getlist("project"))
            check_projects(conn, access.organization, project_ids)
            condition = parse_condition(request.query_params.get("query", ""))
        except FieldError as exc:
            return field_error(exc.field, exc.reason)
        rule = rules.find_covering_rule(conn, condition, access.organization.id, project_ids, now)
    if rule is None:
        return Response(status_code=204)
    return JSONResponse(serialize_rule(rule))


def routes() -> list[BaseRoute]:
    return [*route(PATH, get_rule, ["GET"]), *route(PATH, create_or_extend, ["POST"])]
