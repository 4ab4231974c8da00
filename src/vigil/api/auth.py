"""Bearer-token authentication and authorization for the management API (`/api/0/`).

A token belongs to one organization and holds scopes (`org:read`, `project:write`, ...).
A request is refused, with a `detail` reason:

- 401 when it has no `Authorization: Bearer <token>`, or the token is unknown or revoked;
- 403 when the token belongs to another organization (also when the organization in the
  URL does not exist, so a token cannot probe other organizations' slugs), or lacks the
  scope the endpoint needs. A scope of the same family at a higher level counts:
  `project:admin` satisfies `project:write`, which satisfies `project:read`.

`bearer_token`, `scope_satisfied` and `check_access` are pure; `authorize` reads the
token and organization in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Connection
from starlette.exceptions import HTTPException
from starlette.requests import Request

from vigil.tenancy import store
from vigil.tenancy.store import ApiToken, Organization

_LEVELS = {"read": 0, "write": 1, "admin": 2}

NO_CREDENTIALS = "authentication credentials were not provided: send Authorization: Bearer <token>"


@dataclass(frozen=True)
class Access:
    """A request's authenticated token and the organization it may act on."""

    token: ApiToken
    organization: Organization


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header (scheme case-insensitive)."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip() or None


def scope_satisfied(held: Iterable[str], required: str) -> bool:
    """Whether scopes `held` grant `required` (`family:level`)."""
    family, _, level = required.partition(":")
    needed = _LEVELS[level]
    for scope in held:
        held_family, _, held_level = scope.partition(":")
        if held_family == family and _LEVELS.get(held_level, -1) >= needed:
            return True
    return False


def check_token(token: ApiToken | None) -> ApiToken:
    """`token` if it can authenticate: HTTPException(401) if unknown or revoked."""
    if token is None:
        raise HTTPException(401, "invalid token")
    if not token.is_active:
        raise HTTPException(401, "token has been revoked")
    return token


def check_access(
    token: ApiToken,
    organization: Organization | None,
    org_slug: str,
    required: str | tuple[str, ...],
) -> Organization:
    """The organization `token` may act on with scope `required` (or any one of several):
    HTTPException(403) unless `organization` (None: no such slug) is the token's and the
    scope is held."""
    if organization is None or organization.id != token.organization_id:
        raise HTTPException(403, f"this token has no access to organization {org_slug!r}")
    options = (required,) if isinstance(required, str) else required
    if not any(scope_satisfied(token.scopes, scope) for scope in options):
        raise HTTPException(403, f"this token lacks the {' or '.join(options)} scope")
    return organization


def authorize(
    conn: Connection,
    authorization: str | None,
    org_slug: str,
    required: str | tuple[str, ...],
) -> Access:
    """Authenticate the bearer token and authorize it for `org_slug` and `required`
    (a scope, or several of which any one will do)."""
    secret = bearer_token(authorization)
    if secret is None:
        raise HTTPException(401, NO_CREDENTIALS)
    token = check_token(store.find_token(conn, secret))
    try:
        organization: Organization | None = store.get_organization(conn, org_slug)
    except store.NotFound:
        organization = None
    return Access(token, check_access(token, organization, org_slug, required))


def authorize_request(
    conn: Connection, request: Request, required: str | tuple[str, ...]
) -> Access:
    """`authorize` for a request whose path names the organization
    (`{organization_slug}`), with its Authorization header."""
    return authorize(
        conn,
        request.headers.get("authorization"),
        request.path_params["organization_slug"],
        required,
    )
