"""The URL clients reach vigil at, from which DSNs are built (the reference's
`system.url-prefix` option).

Each process knows its own `VIGIL_PUBLIC_URL` (else `http://VIGIL_BIND`), and a CLI
command run from another shell usually has neither of the server's: `vigil project
create` then printed a DSN for 127.0.0.1. The option is kept in the database, so the
server, the API and every CLI command build the same DSNs from it once it is set."""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import urlsplit

from sqlalchemy import Connection

from vigil.config import Settings
from vigil.options import get_option

URL_PREFIX_OPTION: Final = "system.url-prefix"
MAX_LENGTH: Final = 200


def is_url_prefix(value: Any) -> bool:
    """An http(s) URL with a host, and no user, query, fragment or white space."""
    if not isinstance(value, str) or len(value) > MAX_LENGTH:
        return False
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return False
    return bool(
        parts.scheme in ("http", "https")
        and parts.hostname
        and parts.username is None  # a DSN's user part is the key
        and parts.password is None
        and not parts.query
        and not parts.fragment
        and not any(char.isspace() for char in value)
    )


def public_base_url(conn: Connection, settings: Settings) -> str:
    """The option when set, else this process's own `settings.base_url`."""
    value = get_option(conn, URL_PREFIX_OPTION)
    if is_url_prefix(value):
        return str(value).rstrip("/")
    return settings.base_url
