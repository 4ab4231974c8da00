"""The rule for a monitor environment's name (B1). No I/O."""

from __future__ import annotations

import re
from typing import Final

from vigil.monitors.slugs import DEFAULT_ENVIRONMENT

MAX_ENVIRONMENT_NAME_LENGTH: Final = 64
# The reference's rule for environment names: no line breaks, form feeds or slashes.
_FORBIDDEN = re.compile(r"[\n\r\f/]")


def environment_name(name: str | None) -> str:
    """The environment a check-in's `environment` names: "production" when absent or
    empty, otherwise the name as sent (not trimmed or case-folded)."""
    return name or DEFAULT_ENVIRONMENT


def is_valid_environment_name(name: str) -> bool:
    """Whether `name` may name an environment: at most 64 characters and none of
    newline, carriage return, form feed or "/"."""
    return len(name) <= MAX_ENVIRONMENT_NAME_LENGTH and _FORBIDDEN.search(name) is None
