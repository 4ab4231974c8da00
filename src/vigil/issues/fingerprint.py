"""Fingerprint hashing: producers send fingerprints as free-form strings; the consumer
stores and groups by the MD5 of each part. No I/O."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def md5_hex(text: str) -> str:
    """The lowercase 32-hex MD5 digest of the UTF-8 bytes of `text`."""
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def hash_fingerprint(parts: Iterable[str]) -> tuple[str, ...]:
    """Each fingerprint part hashed, in order (duplicates are kept, as sent)."""
    return tuple(md5_hex(part) for part in parts)
