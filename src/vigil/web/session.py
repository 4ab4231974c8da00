"""Who is signed in to the web UI: the API token they gave, kept in a cookie that only
the server reads (HttpOnly), that another site's forms and scripts never carry
(SameSite=Lax: a link followed from elsewhere still arrives signed in), and that travels
over HTTPS only when the UI is served over HTTPS (the request's scheme, or the public
URL's behind a proxy). The token is checked on every request, so revoking it (`vigil
token revoke`) signs its holder out at once.

A form must also come from this site, sign-in included: `same_origin` checks the
`Origin` (or `Referer`) a browser sends with a POST against the host asked for and the
server's public URL (a proxy may pass on a Host of its own)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from sqlalchemy import Connection
from starlette.requests import Request
from starlette.responses import Response

from vigil.tenancy import store

COOKIE: Final = "vigil_session"
# A token is hex; a cookie holding anything longer is not one of ours.
MAX_TOKEN_CHARS: Final = 200
# Signed in for a working week at most; the token itself may be revoked sooner.
MAX_AGE_S: Final = 7 * 24 * 3600


@dataclass(frozen=True)
class Session:
    token: str
    organization: store.Organization
    scopes: tuple[str, ...]


class SignInRefused(Exception):
    """Why a token cannot sign in (unknown or revoked). Any scope reads something (a
    write or admin scope holds its family's read), so any live token signs in and each
    page shows what its scopes allow."""


def session_for(conn: Connection, token: str) -> Session:
    """The session `token` opens; SignInRefused with the reason if none."""
    found = store.find_token(conn, token) if 0 < len(token) <= MAX_TOKEN_CHARS else None
    if found is None:
        raise SignInRefused("this is not a vigil API token (or it was deleted)")
    if not found.is_active:
        raise SignInRefused("this token has been revoked")
    org = store.get_organization_by_id(conn, found.organization_id)
    return Session(token, org, found.scopes)


def current(conn: Connection, request: Request) -> Session | None:
    """The session of the request's cookie, if it still opens one."""
    token = request.cookies.get(COOKIE, "")
    try:
        return session_for(conn, token.strip())
    except SignInRefused:
        return None


def has_cookie(request: Request) -> bool:
    return COOKIE in request.cookies


def remember(response: Response, request: Request, token: str, public_url: str) -> None:
    response.set_cookie(
        COOKIE,
        token,
        max_age=MAX_AGE_S,
        path="/ui",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https" or public_url.startswith("https:"),
    )


def forget(response: Response) -> None:
    response.delete_cookie(COOKIE, path="/ui", httponly=True, samesite="lax")


def same_origin(request: Request, public_url: str) -> bool:
    """Whether a form was posted by this site's own page: its Origin (else Referer)
    names the host asked for (`Host`, or a proxy's `X-Forwarded-Host`) or the server's
    public URL. A browser sends one of them with every POST; their absence means a
    client that is no browser, which holds no cookie to abuse."""
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source:
        return True
    netloc = urlsplit(source).netloc
    if not netloc:  # "null": a sandboxed or privacy-stripped origin, not this site's
        return False
    ours = {request.headers.get("host", ""), urlsplit(public_url).netloc}
    forwarded = request.headers.get("x-forwarded-host")
    if forwarded:
        ours.add(forwarded.split(",")[0].strip())
    return netloc in ours - {""}
