"""The Sentry envelope format: bytes to an `Envelope` of headers and items. No I/O.

An envelope is a JSON header line, then items; each item is a JSON header line and a
payload. A payload is exactly `length` bytes when the item header says so (then an
optional newline), otherwise everything up to the next newline or the end. This parser
accepts what real clients send: an empty header `{}` (sentry-cli, client reports),
items with or without `length`, CRLF line ends, blank lines between items and a missing
final newline. Anything else raises `EnvelopeError` whose message says what is wrong
and where, for a 400 answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from vigil.uuid_text import uuid_hex


class EnvelopeError(ValueError):
    """The body is not a valid envelope; `str(err)` is the reason, fit for a client."""


@dataclass(frozen=True)
class Item:
    """One envelope item: its type (from the item header), the header and the payload."""

    type: str
    headers: Mapping[str, Any]
    payload: bytes


@dataclass(frozen=True)
class Envelope:
    headers: Mapping[str, Any]
    items: tuple[Item, ...]
    event_id: str | None  # 32 lowercase hex characters, when the header has one

    @property
    def dsn(self) -> str | None:
        """The DSN the header names (Relay accepts it as authentication), if any."""
        value = self.headers.get("dsn")
        return value if isinstance(value, str) and value else None


def parse_envelope(data: bytes) -> Envelope:
    """Parse a whole (already decompressed) envelope body."""
    if not data.strip():
        raise EnvelopeError("empty envelope: expected a JSON header line")
    line, pos = _line(data, 0)
    headers = _json_object(line, "envelope header")
    items: list[Item] = []
    while True:
        pos = _skip_blank_lines(data, pos)
        if pos >= len(data):
            break
        number = len(items) + 1
        line, pos = _line(data, pos)
        item_headers = _json_object(line, f"item {number} header")
        item_type = item_headers.get("type")
        if not isinstance(item_type, str) or not item_type:
            raise EnvelopeError(f"item {number} header has no type")
        payload, pos = _payload(data, pos, item_headers.get("length"), number)
        items.append(Item(item_type, item_headers, payload))
    return Envelope(headers, tuple(items), _event_id(headers.get("event_id")))


def _line(data: bytes, pos: int) -> tuple[bytes, int]:
    """The line starting at `pos` (without its end) and the position after its end."""
    end = data.find(b"\n", pos)
    if end < 0:
        return data[pos:], len(data)
    return data[pos:end], end + 1


def _skip_blank_lines(data: bytes, pos: int) -> int:
    while pos < len(data):
        line, after = _line(data, pos)
        if line.strip():
            return pos
        pos = after
    return pos


def _json_object(line: bytes, what: str) -> dict[str, Any]:
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise EnvelopeError(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise EnvelopeError(f"{what} must be a JSON object")
    return value


def _payload(data: bytes, pos: int, length: Any, number: int) -> tuple[bytes, int]:
    if length is None:
        line, after = _line(data, pos)
        return line.removesuffix(b"\r"), after
    if isinstance(length, bool) or not isinstance(length, int) or length < 0:
        raise EnvelopeError(f"item {number} length must be a non-negative integer")
    end = pos + length
    if end > len(data):
        raise EnvelopeError(
            f"item {number} declares {length} bytes but only {len(data) - pos} follow"
        )
    payload = data[pos:end]
    for terminator in (b"\n", b"\r\n"):
        if data.startswith(terminator, end):
            return payload, end + len(terminator)
    if end < len(data):
        raise EnvelopeError(f"item {number} payload is not followed by a newline")
    return payload, end


def _event_id(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise EnvelopeError("envelope header event_id must be a UUID string")
    try:
        return uuid_hex(value)
    except ValueError:
        raise EnvelopeError(f"envelope header event_id {value[:64]!r} is not a UUID") from None
