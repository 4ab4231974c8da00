"""`/api/0/organizations/{organization_slug}/webhooks/`: where the organization's issue
changes are POSTed (see `vigil.webhooks`). Listing, adding and removing them need
`org:write`: a webhook's URL is often a secret itself. `…/{id}/test/` sends one a
test notification and answers how the receiver took it. A webhook's signing secret is
shown once, in the answer to its creation (and to `vigil webhook list` on the
server)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from vigil.api.auth import Access, authorize_request
from vigil.api.http import body_string, json_object, read_body, route
from vigil.api.paging import format_date
from vigil.api.services import services
from vigil.tenancy import store as tenancy
from vigil.tenancy.public_url import public_base_url
from vigil.webhooks import sender, store
from vigil.webhooks.delivery import Outcome
from vigil.webhooks.store import DeliveryCounts, Webhook

# Listing needs the write scope too: a webhook's URL is often a secret of its own (a
# Slack incoming webhook's path), not for every token that may read issues.
ORG_WRITE = ("org:write", "org:admin")


def serialize_webhook(hook: Webhook, counts: DeliveryCounts | None) -> dict[str, Any]:
    return {
        "id": str(hook.id),
        "url": hook.url,
        "format": hook.format,
        "actions": list(hook.actions),
        "project": hook.project_slug,
        "dateCreated": format_date(hook.date_added),
        "deliveries": {
            "pending": counts.pending if counts else 0,
            "delivered": counts.delivered if counts else 0,
            "failed": counts.failed if counts else 0,
        },
        "lastError": hook.last_error,
        "lastErrorDate": format_date(hook.date_last_error),
    }


def serialize_delivery(row: Any) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "issueId": str(row.group_id),
        "action": row.action,
        "status": row.status,
        "attempts": row.attempts,
        "responseCode": row.response_code,
        "lastError": row.last_error,
        "dateCreated": format_date(row.date_added),
        "nextAttemptAt": None
        if row.status != store.PENDING or row.next_attempt_at is None
        else format_date(row.next_attempt_at),
        "dateDone": None if row.date_done is None else format_date(row.date_done),
    }


def _webhook(conn: Connection, access: Access, request: Request) -> Webhook:
    try:
        return store.get_webhook(conn, access.organization, request.path_params["webhook_id"])
    except tenancy.NotFound as exc:
        raise HTTPException(404, str(exc)) from None


def list_webhooks(request: Request) -> JSONResponse:
    with services(request).reading() as conn:
        access = authorize_request(conn, request, ORG_WRITE)
        hooks = store.list_webhooks(conn, access.organization)
        counts = store.delivery_counts(conn, [h.id for h in hooks])
    return JSONResponse([serialize_webhook(h, counts.get(h.id)) for h in hooks])


def _string_list(body: dict[str, Any], key: str) -> list[str] | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value) or not value:
        raise HTTPException(400, f"{key} must be a non-empty list of strings")
    return value


async def create_webhook(request: Request) -> JSONResponse:
    svc = services(request)
    body = json_object(await read_body(request, svc.settings.max_message_bytes))
    url = body_string(body, "url")
    if not url:
        raise HTTPException(400, "url is required")
    project_slug = body_string(body, "project")
    fmt = body_string(body, "format")
    actions = _string_list(body, "actions")

    def create() -> JSONResponse:
        with svc.writing() as conn:
            access = authorize_request(conn, request, ORG_WRITE)
            try:
                project = (
                    None
                    if project_slug is None
                    else tenancy.get_project(conn, access.organization, project_slug)
                )
                hook = store.create_webhook(
                    conn,
                    access.organization,
                    project,
                    url,
                    fmt=fmt,
                    actions=actions,
                    now=datetime.now(UTC),
                    mail_relay=bool(svc.settings.smtp_url),
                )
            except tenancy.NotFound as exc:
                raise HTTPException(404, str(exc)) from None
            except tenancy.TenancyError as exc:
                raise HTTPException(400, str(exc)) from None
        return JSONResponse({**serialize_webhook(hook, None), "secret": hook.secret}, 201)

    return await run_in_threadpool(create)


def list_deliveries(request: Request) -> JSONResponse:
    with services(request).reading() as conn:
        access = authorize_request(conn, request, ORG_WRITE)
        hook = _webhook(conn, access, request)
        rows = store.recent_deliveries(conn, hook.id)
    return JSONResponse([serialize_delivery(row) for row in rows])


async def delete_webhook(request: Request) -> Response:
    svc = services(request)

    def remove() -> Response:
        with svc.writing() as conn:
            access = authorize_request(conn, request, ORG_WRITE)
            hook = _webhook(conn, access, request)
            store.delete_webhook(conn, access.organization, str(hook.id))
        return Response(status_code=204)

    return await run_in_threadpool(remove)


def serialize_outcome(outcome: Outcome) -> dict[str, Any]:
    return {
        "delivered": outcome.delivered,
        "responseCode": outcome.code,
        "error": outcome.error,
    }


async def test_webhook(request: Request) -> JSONResponse:
    """Send the webhook a test notification now and answer how it went (200 either
    way: the request did what it was asked; `delivered` says whether the receiver took
    it). Nothing is recorded among its deliveries."""
    svc = services(request)

    def send() -> JSONResponse:
        with svc.reading() as conn:
            access = authorize_request(conn, request, ORG_WRITE)
            hook = _webhook(conn, access, request)
            project = store.sample_project(conn, hook)
            base_url = public_base_url(conn, svc.settings)
        # Outside the transaction: the receiver may take seconds to answer.
        outcome = sender.send_test(svc.settings, hook, project, base_url, datetime.now(UTC))
        return JSONResponse(serialize_outcome(outcome))

    return await run_in_threadpool(send)


def routes() -> list[BaseRoute]:
    hooks = "/api/0/organizations/{organization_slug}/webhooks/"
    return [
        *route(hooks, list_webhooks, ["GET"]),
        *route(hooks, create_webhook, ["POST"]),
        *route(hooks + "{webhook_id}/", delete_webhook, ["DELETE"]),
        *route(hooks + "{webhook_id}/deliveries/", list_deliveries, ["GET"]),
        *route(hooks + "{webhook_id}/test/", test_webhook, ["POST"]),
    ]
