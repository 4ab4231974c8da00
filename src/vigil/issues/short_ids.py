"""An issue's short id as Sentry writes it: the project slug in upper case, a dash, and
the issue's number in the project in base 32 over the digits and the letters without
I, L, O and U (`WEB-1`, … `WEB-Z` is 31, `WEB-10` is 32), which no one misreads for
1, 0 or V. Reading one back takes either case."""

from __future__ import annotations

import re
from typing import Final

ALPHABET: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_VALUES: Final = {c: i for i, c in enumerate(ALPHABET)}
# The slug, then the last dash and the number (a slug may hold dashes itself).
_QUALIFIED: Final = re.compile(r"^(.+)-([0-9A-Za-z]+)$")


def encode(number: int) -> str:
    """`number` (≥ 0) in the short-id alphabet."""
    if number <= 0:
        return "0"
    digits = []
    while number:
        number, rest = divmod(number, 32)
        digits.append(ALPHABET[rest])
    return "".join(reversed(digits))


def decode(text: str) -> int | None:
    """The number `text` writes in the short-id alphabet (either case); None if a
    character is not one of it."""
    number = 0
    for char in text.upper():
        value = _VALUES.get(char)
        if value is None:
            return None
        number = number * 32 + value
    return number if text else None


def qualified(project_slug: str, number: int) -> str:
    """`WEB-1A`: what the API shows as `shortId`."""
    return f"{project_slug.upper()}-{encode(number)}"


def parse_qualified(text: str) -> tuple[str, int] | None:
    """(project slug in lower case, number) of a short id; None if it is not one."""
    matched = _QUALIFIED.match(text)
    if matched is None:
        return None
    number = decode(matched.group(2))
    return None if number is None else (matched.group(1).lower(), number)
