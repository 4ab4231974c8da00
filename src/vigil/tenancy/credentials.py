"""Pure helpers for credentials: key and token generation, hashing, DSN formatting,
parsing of the ways a Sentry client presents its DSN key. No I/O."""

from __future__ import annotations

import hashlib
import re
import secrets
from urllib.parse import urlsplit

TOKEN_PREFIX = "vgl_"

# Sentry's scope names; a token holds a subset.
ALL_SCOPES: tuple[str, ...] = (
    "org:read",
    "org:write",
    "org:admin",
    "project:read",
    "project:write",
    "project:admin",
    "event:read",
    "event:write",
    "event:admin",
)

_PUBLIC_KEY = re.compile(r"^[0-9a-f]{32}$")
_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,49}$")


def new_public_key() -> str:
    return secrets.token_hex(16)


def is_public_key(value: str) -> bool:
    return bool(_PUBLIC_KEY.match(value))


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_hex(32)


def hash_token(token: str) -> str:
    # Tokens carry 256 random bits, so a plain digest is enough to make a stored
    # hash useless to whoever reads the database.
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def token_prefix(token: str) -> str:
    return token[: len(TOKEN_PREFIX) + 6]


def valid_slug(value: str) -> bool:
    """Organization and project slugs: lowercase letters, digits, '-' and '_', ≤ 50."""
    return bool(_SLUG.match(value)) and not value.isdigit()


def format_dsn(base_url: str, public_key: str, project_id: int) -> str:
    parts = urlsplit(base_url)
    path = parts.path.rstrip("/")
    return f"{parts.scheme}://{public_key}@{parts.netloc}{path}/{project_id}"


def parse_sentry_auth(header: str) -> dict[str, str]:
    """Parse `Sentry sentry_key=..., sentry_version=7, ...` (the prefix is optional)."""
    value = header.strip()
    if value[:7].lower() == "sentry ":
        value = value[7:]
    result: dict[str, str] = {}
    for part in value.split(","):
        key, sep, val = part.strip().partition("=")
        if sep:
            result[key.strip()] = val.strip()
    return result


def validate_scopes(scopes: list[str]) -> list[str]:
    unknown = sorted(set(scopes) - set(ALL_SCOPES))
    if unknown:
        raise ValueError(f"unknown scope(s): {', '.join(unknown)} (known: {', '.join(ALL_SCOPES)})")
    return sorted(set(scopes), key=ALL_SCOPES.index)
