"""Row ids as clients write them: only ASCII digits within the range of a 64-bit
column name a row. A longer number names nothing, and must not reach the database,
where SQLite refuses it outright (an overflow, not an empty answer)."""

from __future__ import annotations

from typing import Final

MAX_ID: Final = 2**63 - 1  # the largest BIGINT (and SQLite INTEGER)


def in_range(value: int) -> bool:
    """Whether `value` can be a row id (positive and within 64 bits)."""
    return 0 < value <= MAX_ID


def parse_id(text: str) -> int | None:
    """`text` as a row id, or None when it cannot be one (not ASCII digits, 0, or beyond
    64 bits). `str.isdigit` alone admits '²' and other digits `int` refuses."""
    if not text.isascii() or not text.isdigit() or len(text) > len(str(MAX_ID)):
        return None
    value = int(text)
    return value if in_range(value) else None
