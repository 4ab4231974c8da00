"""UUIDs as text: any form `uuid.UUID` reads, as its 32 lower-case hex digits.

Most ids arrive already in that form (SDKs and vigil's own producers write it), and
parsing them with `uuid.UUID` cost several microseconds each, several times a message;
those are recognised and passed through instead."""

from __future__ import annotations

from uuid import UUID


def uuid_hex(text: str) -> str:
    """`text` as 32 lower-case hex digits; ValueError if `uuid.UUID` would refuse it, or
    if it is not ASCII."""
    if len(text) == 32 and text.isascii() and text.isalnum():
        # For 32 ASCII letters and digits, int(text, 16) accepts exactly the hex ones
        # (no sign, space or underscore can be among them), as UUID does.
        int(text, 16)
        return text.lower()
    if not text.isascii():
        # int(), under UUID, reads any Unicode digit: Arabic-Indic ones make no UUID a
        # client meant.
        raise ValueError(f"not a UUID: {text[:40]!r}")
    return UUID(text).hex


def parse_uuid_hex(value: object) -> str | None:
    """`value` as `uuid_hex` gives it, or None when it is not a string that parses."""
    if not isinstance(value, str):
        return None
    try:
        return uuid_hex(value)
    except ValueError:
        return None
