"""The UI's pages under `/ui/`, each drawn from the management API's answers for the
signed-in token (`subrequest.call_api`):

- `/ui/login` (a form taking an API token), `/ui/logout`;
- `/ui/monitors/`: every monitor with its state, schedule, last and next check-in and a
  timeline of its recent check-ins; `query=` and `sort=` as the API's (failing first);
- `/ui/monitors/{project}/{slug}/`: one monitor, its environments, its check-ins
  (paginated, `environment=`) and processing errors; mute, unmute (the monitor, or one
  environment);
- `/ui/issues/`: the issues a search finds (`query=`, `sort=`, as the API's), paginated;
- `/ui/issues/{issue_id}/`: one issue, its activity, its events with their evidence and
  tags; resolve, unresolve, ignore;
- `/ui/webhooks/`: the organization's issue webhooks with their deliveries by status;
  add one (its signing secret shown on the page that answers), remove one;
  `/ui/webhooks/{id}/`: its latest deliveries, and a button that sends it a test
  notification.

A refusal of the API is shown with its reason and status; a token that no longer signs
in (revoked) sends its holder to the sign-in page. Changes are forms POSTed by the
site's own pages (`session.same_origin`), answered by a redirect back (303)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import parse_qs, quote, urlencode

from jinja2 import Environment, PackageLoader
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from vigil.api.services import services
from vigil.monitors.processing_errors import ProcessingErrorType
from vigil.web import formatting, session
from vigil.web.session import Session, SignInRefused
from vigil.web.subrequest import Answer, call_api
from vigil.webhooks.payloads import ACTIONS as WEBHOOK_ACTIONS
from vigil.webhooks.payloads import FORMATS as WEBHOOK_FORMATS

MONITORS_PER_PAGE: Final = 25
TIMELINE_CHECKINS: Final = 30
CHECKINS_PER_PAGE: Final = 50
ISSUES_PER_PAGE: Final = 25
EVENTS_PER_PAGE: Final = 10
# The UI's forms hold a token and where to go next, or one choice: a body longer than
# this is none of them.
MAX_FORM_BYTES: Final = 4096
DEFAULT_ISSUE_QUERY: Final = "is:unresolved"
ISSUE_SORTS: Final = {"date": "Last seen", "new": "First seen", "freq": "Events"}
MONITOR_SORTS: Final = {"status": "Failing first", "name": "Name", "muted": "Muted last"}
STATUS_CHANGES: Final = {
    "resolved": "Resolve",
    "unresolved": "Unresolve",
    "ignored": "Ignore",
}
# Pages are not kept by caches (they show a signed-in person's data), not framed by other
# sites, and load and post nothing but this site's own (there is no script at all).
PAGE_HEADERS: Final = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
}
# What a redirect after a change may say on the next page, by name.
NOTICES: Final = {
    "muted": "Muted: no issues are opened for its failures.",
    "unmuted": "Unmuted.",
    "resolved": "Resolved.",
    "unresolved": "Unresolved.",
    "ignored": "Ignored.",
    "webhook-removed": "Webhook removed: it is sent nothing more.",
}
_LINK: Final = re.compile(r'<[^>]*>;\s*rel="(\w+)";\s*results="(\w+)";\s*cursor="([^"]*)"')

templates = Jinja2Templates(
    env=Environment(loader=PackageLoader("vigil.web", "templates"), autoescape=True)
)
templates.env.filters.update(
    exact=formatting.exact,
    duration=formatting.duration,
    schedule=formatting.schedule,
    tick=formatting.tick_status,
)


def _api(org: str, rest: str = "") -> str:
    return f"/api/0/organizations/{org}/{rest}"


def _monitor_api(s: Session, project: str, slug: str) -> str:
    return f"/api/0/projects/{s.organization.slug}/{project}/monitors/{slug}/"


def _cursors(answer: Answer) -> dict[str, str]:
    """The previous and next cursors of a paginated answer's Link header, where there
    are results that way."""
    found = {}
    for rel, results, cursor in _LINK.findall(answer.headers.get("link", "")):
        if results == "true":
            found[rel] = cursor
    return found


def _cursor(request: Request) -> dict[str, str]:
    """The page's `cursor`, passed on to the API as it came (none: the first page)."""
    cursor = request.query_params.get("cursor")
    return {"cursor": cursor} if cursor else {}


def _with(request: Request, **changes: str | None) -> str:
    """This page's URL with query parameters changed (None: removed)."""
    params = [(k, v) for k, v in request.query_params.multi_items() if k not in changes]
    params += [(k, v) for k, v in changes.items() if v is not None]
    return f"{request.url.path}?{urlencode(params)}" if params else request.url.path


def _render(
    request: Request, template: str, s: Session | None, status: int = 200, **context: Any
) -> Response:
    return templates.TemplateResponse(
        request,
        template,
        {
            "session": s,
            "now": datetime.now(UTC),
            "relative": formatting.relative,
            "with_params": lambda **changes: _with(request, **changes),
            # A notice is one of the UI's own sentences, named in the URL: never text a
            # link could put on vigil's page.
            "notice": NOTICES.get(request.query_params.get("notice", "")),
            **context,
        },
        status_code=status,
        headers=PAGE_HEADERS,
    )


def _refused(request: Request, s: Session, answer: Answer) -> Response:
    if answer.status == 401:  # the token stopped working since the cookie was read
        return _to_login(request)
    return _render(
        request,
        "error.html",
        s,
        status=answer.status if 400 <= answer.status < 600 else 502,
        status_code=answer.status,
        detail=answer.detail,
    )


def _to_login(request: Request) -> Response:
    """To the sign-in page, coming back here after it (to the page a form was posted
    from, for a POST: its action has no page). A cookie that no longer signs in is
    forgotten; without one there is nothing to forget."""
    if request.method == "POST":
        target = request.url.path.rstrip("/").rsplit("/", 1)[0] + "/"
    else:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    response = RedirectResponse(f"/ui/login?{urlencode({'next': target})}", status_code=303)
    if session.has_cookie(request):
        session.forget(response)
    return response


def _public_url(request: Request) -> str:
    return services(request).settings.base_url


async def _form(request: Request) -> dict[str, str] | None:
    """A small urlencoded form's fields (the first value of each); None past
    MAX_FORM_BYTES, read no further."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return None
    pairs = parse_qs(body.decode("utf-8", errors="replace"))
    return {key: values[0] for key, values in pairs.items()}


def _foreign_form(request: Request, s: Session | None) -> Response:
    return _render(request, "error.html", s, 403, status_code=403, detail="a form of another site")


Page = Callable[[Request, Session], Awaitable[Response]]


def signed_in(page: Page) -> Callable[[Request], Awaitable[Response]]:
    """`page` for a signed-in request; others go to the sign-in page and come back."""

    async def endpoint(request: Request) -> Response:
        svc = services(request)

        def load() -> Session | None:
            with svc.reading() as conn:
                return session.current(conn, request)

        s = await run_in_threadpool(load)
        if s is None:
            return _to_login(request)
        if request.method == "POST" and not session.same_origin(request, _public_url(request)):
            return _foreign_form(request, s)
        return await page(request, s)

    return endpoint


# --- signing in ------------------------------------------------------------------------


def _next(raw: str | None) -> str:
    # Only a page of this UI: never another site ("//host", "https://…").
    if raw and raw.startswith("/ui/") and not raw.startswith("//") and "\\" not in raw:
        return raw
    return "/ui/monitors/"


async def login_form(request: Request) -> Response:
    return _render(request, "login.html", None, next=_next(request.query_params.get("next")))


async def login(request: Request) -> Response:
    # Another site's form signing a visitor in with a token of its own (login CSRF).
    if not session.same_origin(request, _public_url(request)):
        return _foreign_form(request, None)
    form = await _form(request)
    if form is None:
        return _render(request, "login.html", None, 413, error="That is no token.")
    token = form.get("token", "").strip()
    target = _next(form.get("next"))
    svc = services(request)

    def check() -> str | None:
        with svc.reading() as conn:
            try:
                session.session_for(conn, token)
            except SignInRefused as exc:
                return str(exc)
        return None

    refusal = await run_in_threadpool(check) if token else "Paste an API token."
    if refusal is not None:
        return _render(request, "login.html", None, 401, error=refusal, next=target)
    response = RedirectResponse(target, status_code=303)
    session.remember(response, request, token, _public_url(request))
    return response


async def logout(request: Request) -> Response:
    if not session.same_origin(request, _public_url(request)):
        return _foreign_form(request, None)
    response = RedirectResponse("/ui/login", status_code=303)
    session.forget(response)
    return response


async def home(_request: Request) -> Response:
    return RedirectResponse("/ui/monitors/", status_code=302)


# --- monitors --------------------------------------------------------------------------


@signed_in
async def monitors(request: Request, s: Session) -> Response:
    org = s.organization.slug
    query = request.query_params.get("query", "")
    sort = request.query_params.get("sort", "status")
    params = {"per_page": str(MONITORS_PER_PAGE), "query": query, "sort": sort}
    params.update(_cursor(request))
    answer = await call_api(request, s.token, _api(org, "monitors/"), query=params)
    if not answer.ok:
        return _refused(request, s, answer)
    rows = []
    for monitor in answer.body:
        checkins = await call_api(
            request,
            s.token,
            _monitor_api(s, monitor["project"]["slug"], monitor["slug"]) + "checkins/",
            query={"per_page": str(TIMELINE_CHECKINS)},
        )
        environments = monitor.get("environments") or []
        rows.append(
            {
                "monitor": monitor,
                "state": formatting.monitor_state(monitor),
                "ticks": formatting.timeline(checkins.body if checkins.ok else []),
                "last": max((e["lastCheckIn"] or "" for e in environments), default=""),
                "next": min((e["nextCheckIn"] or "~" for e in environments), default="~"),
            }
        )
    return _render(
        request,
        "monitors.html",
        s,
        rows=rows,
        query=query,
        sort=sort,
        sorts=MONITOR_SORTS,
        cursors=_cursors(answer),
    )


@signed_in
async def monitor(request: Request, s: Session) -> Response:
    project, slug = request.path_params["project_slug"], request.path_params["monitor_slug"]
    path = _monitor_api(s, project, slug)
    found = await call_api(request, s.token, path)
    if not found.ok:
        return _refused(request, s, found)
    environment = request.query_params.get("environment")
    params = {"per_page": str(CHECKINS_PER_PAGE)}
    if environment:
        params["environment"] = environment
    params.update(_cursor(request))
    checkins = await call_api(request, s.token, path + "checkins/", query=params)
    if not checkins.ok:
        return _refused(request, s, checkins)
    errors = await call_api(request, s.token, path + "processing-errors/")
    return _render(
        request,
        "monitor.html",
        s,
        monitor=found.body,
        state=formatting.monitor_state(found.body),
        ticks=formatting.timeline(checkins.body[:TIMELINE_CHECKINS]),
        checkins=checkins.body,
        cursors=_cursors(checkins),
        environment=environment,
        errors=[_processing_error(e) for e in (errors.body if errors.ok else [])],
    )


def _processing_error(record: dict[str, Any]) -> dict[str, Any]:
    reasons = []
    for error in record.get("errors") or []:
        try:
            name = ProcessingErrorType(error.get("type")).name.replace("_", " ").capitalize()
        except ValueError:
            name = f"Error {error.get('type')}"
        extra = ", ".join(f"{k}: {v}" for k, v in error.items() if k != "type")
        reasons.append(f"{name} ({extra})" if extra else name)
    payload = (record.get("checkin") or {}).get("payload") or {}
    return {"ts": (record.get("checkin") or {}).get("ts"), "reasons": reasons, "payload": payload}


@signed_in
async def monitor_mute(request: Request, s: Session) -> Response:
    project, slug = request.path_params["project_slug"], request.path_params["monitor_slug"]
    form = await _form(request)
    if form is None:
        return _render(request, "error.html", s, 413, status_code=413, detail="form too large")
    muted = form.get("muted") == "true"
    # With an environment, only that one (the monitor is muted once all of its are).
    environment = form.get("environment")
    path = _monitor_api(s, project, slug)
    if environment:
        path += f"environments/{environment}/"
    answer = await call_api(request, s.token, path, method="PUT", body={"isMuted": muted})
    if not answer.ok:
        return _refused(request, s, answer)
    back = f"/ui/monitors/{quote(project)}/{quote(slug)}/?notice={'muted' if muted else 'unmuted'}"
    return RedirectResponse(back, status_code=303)


# --- issues ----------------------------------------------------------------------------


@signed_in
async def issues(request: Request, s: Session) -> Response:
    query = request.query_params.get("query", DEFAULT_ISSUE_QUERY)
    sort = request.query_params.get("sort", "date")
    params = {"limit": str(ISSUES_PER_PAGE), "query": query, "sort": sort}
    params.update(_cursor(request))
    answer = await call_api(request, s.token, _api(s.organization.slug, "issues/"), query=params)
    searched = answer.ok or answer.status == 400  # a search the API cannot read: say why
    if not searched:
        return _refused(request, s, answer)
    found = answer.body if answer.ok else []
    return _render(
        request,
        "issues.html",
        s,
        answer.status,
        issues=found,
        query=query,
        sort=sort,
        sorts=ISSUE_SORTS,
        cursors=_cursors(answer),
        hits=int(answer.headers.get("x-hits", len(found))),
        error=None if answer.ok else answer.detail,
    )


@signed_in
async def issue(request: Request, s: Session) -> Response:
    path = _api(s.organization.slug, f"issues/{request.path_params['issue_id']}/")
    found = await call_api(request, s.token, path)
    if not found.ok:
        return _refused(request, s, found)
    params = {"per_page": str(EVENTS_PER_PAGE), "full": "1"}
    params.update(_cursor(request))
    events = await call_api(request, s.token, path + "events/", query=params)
    if not events.ok:
        return _refused(request, s, events)
    return _render(
        request,
        "issue.html",
        s,
        issue=found.body,
        events=events.body,
        cursors=_cursors(events),
        changes={k: v for k, v in STATUS_CHANGES.items() if k != found.body.get("status")},
    )


@signed_in
async def issue_status(request: Request, s: Session) -> Response:
    issue_id = request.path_params["issue_id"]
    form = await _form(request)
    if form is None:
        return _render(request, "error.html", s, 413, status_code=413, detail="form too large")
    status = form.get("status", "")
    if status not in STATUS_CHANGES:
        return _render(
            request, "error.html", s, 400, status_code=400, detail=f"no such status {status!r}"
        )
    path = _api(s.organization.slug, f"issues/{issue_id}/")
    answer = await call_api(request, s.token, path, method="PUT", body={"status": status})
    if not answer.ok:
        return _refused(request, s, answer)
    return RedirectResponse(f"/ui/issues/{quote(issue_id)}/?notice={status}", status_code=303)


# --- webhooks --------------------------------------------------------------------------


async def _webhooks_page(
    request: Request, s: Session, status: int = 200, **context: Any
) -> Response:
    hooks = await call_api(request, s.token, _api(s.organization.slug, "webhooks/"))
    if not hooks.ok:
        return _refused(request, s, hooks)
    projects = await call_api(request, s.token, _api(s.organization.slug, "projects/"))
    if not projects.ok:
        return _refused(request, s, projects)
    return _render(
        request,
        "webhooks.html",
        s,
        status,
        webhooks=hooks.body,
        projects=[p["slug"] for p in projects.body],
        actions=WEBHOOK_ACTIONS,
        formats=WEBHOOK_FORMATS,
        **context,
    )


@signed_in
async def webhooks(request: Request, s: Session) -> Response:
    return await _webhooks_page(request, s, created=None, error=None, form={})


@signed_in
async def webhook_add(request: Request, s: Session) -> Response:
    form = await _form(request)
    if form is None:
        return _render(request, "error.html", s, 413, status_code=413, detail="form too large")
    body: dict[str, Any] = {"url": form.get("url", "").strip()}
    if form.get("project"):
        body["project"] = form["project"]
    if form.get("format"):
        body["format"] = form["format"]
    chosen = [action for action in WEBHOOK_ACTIONS if form.get(f"on_{action}")]
    if chosen:
        body["actions"] = chosen
    answer = await call_api(
        request, s.token, _api(s.organization.slug, "webhooks/"), method="POST", body=body
    )
    if answer.status in (400, 404):  # the form's mistake: shown above the form, kept
        return await _webhooks_page(
            request, s, answer.status, created=None, error=answer.detail, form=form
        )
    if not answer.ok:
        return _refused(request, s, answer)
    # Shown here and never again: the secret is not in any URL or later page.
    return await _webhooks_page(request, s, 201, created=answer.body, error=None, form={})


@signed_in
async def webhook_remove(request: Request, s: Session) -> Response:
    path = _api(s.organization.slug, f"webhooks/{request.path_params['webhook_id']}/")
    answer = await call_api(request, s.token, path, method="DELETE")
    if not answer.ok:
        return _refused(request, s, answer)
    return RedirectResponse("/ui/webhooks/?notice=webhook-removed", status_code=303)


async def _webhook_page(
    request: Request, s: Session, tested: dict[str, Any] | None = None
) -> Response:
    webhook_id = request.path_params["webhook_id"]
    hooks = await call_api(request, s.token, _api(s.organization.slug, "webhooks/"))
    if not hooks.ok:
        return _refused(request, s, hooks)
    path = _api(s.organization.slug, f"webhooks/{webhook_id}/deliveries/")
    found = await call_api(request, s.token, path)
    if not found.ok:
        return _refused(request, s, found)
    [hook] = [h for h in hooks.body if h["id"] == webhook_id] or [None]
    return _render(request, "webhook.html", s, webhook=hook, deliveries=found.body, tested=tested)


@signed_in
async def webhook_deliveries(request: Request, s: Session) -> Response:
    return await _webhook_page(request, s)


@signed_in
async def webhook_test(request: Request, s: Session) -> Response:
    path = _api(s.organization.slug, f"webhooks/{request.path_params['webhook_id']}/test/")
    answer = await call_api(request, s.token, path, method="POST")
    if not answer.ok:
        return _refused(request, s, answer)
    return await _webhook_page(request, s, tested=answer.body)


# --- routes ----------------------------------------------------------------------------


def routes() -> list[BaseRoute]:
    monitor_path = "/ui/monitors/{project_slug}/{monitor_slug}/"
    return [
        Route("/", home, methods=["GET"]),
        Route("/ui", home, methods=["GET"]),
        Route("/ui/", home, methods=["GET"]),
        Route("/ui/login", login_form, methods=["GET"]),
        Route("/ui/login", login, methods=["POST"]),
        Route("/ui/logout", logout, methods=["POST"]),
        Route("/ui/monitors/", monitors, methods=["GET"]),
        Route(monitor_path, monitor, methods=["GET"]),
        Route(monitor_path + "mute", monitor_mute, methods=["POST"]),
        Route("/ui/issues/", issues, methods=["GET"]),
        Route("/ui/issues/{issue_id}/", issue, methods=["GET"]),
        Route("/ui/issues/{issue_id}/status", issue_status, methods=["POST"]),
        Route("/ui/webhooks/", webhooks, methods=["GET"]),
        Route("/ui/webhooks/add", webhook_add, methods=["POST"]),
        Route("/ui/webhooks/{webhook_id}/", webhook_deliveries, methods=["GET"]),
        Route("/ui/webhooks/{webhook_id}/remove", webhook_remove, methods=["POST"]),
        Route("/ui/webhooks/{webhook_id}/test", webhook_test, methods=["POST"]),
        Mount("/ui/static", StaticFiles(packages=[("vigil.web", "static")]), name="static"),
    ]
