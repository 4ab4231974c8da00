"""Fingerprint hashing: MD5 of the UTF-8 bytes of each part, lowercase hex."""

from __future__ import annotations

import pytest

from vigil.issues.fingerprint import hash_fingerprint, md5_hex


@pytest.mark.parametrize(
    ("text", "digest"),
    [
        ("", "d41d8cd98f00b204e9800998ecf8427e"),
        ("a", "0cc175b9c0f1b6a831c399e269772661"),
        ("\u00fc", "c03410a5204b21cd8229ff754688d743"),  # the UTF-8 bytes, not Latin-1
    ],
)
def test_md5_hex(text: str, digest: str) -> None:
    assert md5_hex(text) == digest


def test_hash_fingerprint_keeps_order_and_duplicates() -> None:
    assert hash_fingerprint(["b", "a", "b"]) == (md5_hex("b"), md5_hex("a"), md5_hex("b"))
    assert hash_fingerprint([]) == ()
