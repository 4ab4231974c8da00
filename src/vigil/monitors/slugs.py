"""Monitor slugs and the two keys derived from them: the consumer's processing key and
Relay's routing key (the `ingest-monitors` message key). No I/O.

Slugs are cut and cleaned in two places: the edge only truncates (as Relay does) so the
routing key is Relay's, and the consumer makes the stored slug with `valid_monitor_slug`.
"""

from __future__ import annotations

import re
import unicodedata
import uuid

# The longest slug a monitor can have (characters).
MAX_SLUG_LENGTH = 50
# What an absent or empty check-in environment means.
DEFAULT_ENVIRONMENT = "production"
# UUIDv5(NAMESPACE_URL, "https://sentry.io/crons/#did"): the namespace of Relay's routing
# keys, so a vigil ingest and a Relay put a monitor's check-ins on the same partition.
ROUTING_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://sentry.io/crons/#did")

_NOT_SLUG_CHARS = re.compile(r"[^\w\s-]", re.ASCII)
_DASHES_AND_SPACES = re.compile(r"[-\s]+", re.ASCII)


def slugify(value: str) -> str:
    """Django-style slugify: accents folded to ASCII and other non-ASCII dropped, lower
    case, only letters, digits, "_" and "-" kept, runs of spaces and dashes made one "-",
    and leading/trailing "-" and "_" stripped."""
    ascii_only = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode("ascii")
    kept = _NOT_SLUG_CHARS.sub("", ascii_only.lower())
    return _DASHES_AND_SPACES.sub("-", kept).strip("-_")


def valid_monitor_slug(slug: str) -> str:
    """The slug a check-in's `monitor_slug` names: slugified, cut to 50 characters, and
    stripped of the "-" the cut may leave at the end. Idempotent; may be empty (a slug
    of only punctuation), which the caller must refuse."""
    return slugify(slug)[:MAX_SLUG_LENGTH].strip("-")


def processing_key(project_id: int, slug: str, environment: object) -> str:
    """The key the check-in consumer orders and rate-limits by:
    "{project_id}:{valid slug}:{environment as sent}". The environment is the raw payload
    value on purpose (as the reference does): an omitted environment ("None") and
    "production" are different keys although they reach the same monitor environment."""
    return f"{project_id}:{valid_monitor_slug(slug)}:{environment}"


def routing_uuid(project_id: int, slug: str, environment: str | None) -> uuid.UUID:
    """Relay's routing UUID for a check-in: UUIDv5 of "{project_id}:{slug}:{environment}"
    with an absent or empty environment read as "production". `slug` is the slug as the
    edge holds it (truncated to 50 characters, not slugified)."""
    name = f"{project_id}:{slug}:{environment or DEFAULT_ENVIRONMENT}"
    return uuid.uuid5(ROUTING_NAMESPACE, name)


def routing_key(project_id: int, slug: str, environment: str | None) -> bytes:
    """The `ingest-monitors` message key: the 16 bytes of `routing_uuid`, so every
    check-in of one monitor environment lands on one partition, in order."""
    return routing_uuid(project_id, slug, environment).bytes
