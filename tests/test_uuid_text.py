"""`uuid_hex` gives what `uuid.UUID(text).hex` gives, or refuses what it refuses, and
refuses text that is not ASCII (which `uuid.UUID` may read: its int() takes any
Unicode digit)."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vigil.uuid_text import uuid_hex

SAMPLE = uuid.UUID("6f2c4a4e-8d39-4c5a-9a1e-3f0d2b7c9e10")


def _expected(text: str) -> str | None:
    if not text.isascii():
        return None
    try:
        return uuid.UUID(text).hex
    except ValueError:
        return None


def _got(text: str) -> str | None:
    try:
        return uuid_hex(text)
    except ValueError:
        return None


@pytest.mark.parametrize(
    "text",
    [
        SAMPLE.hex,
        SAMPLE.hex.upper(),
        str(SAMPLE),
        "{" + str(SAMPLE) + "}",
        "urn:uuid:" + str(SAMPLE),
        "0" * 32,
        "g" * 32,  # letters, not hex
        "0" * 31 + "_",
        "0" * 15 + "_" + "0" * 16,  # int() takes underscores between digits
        " " + "0" * 31,
        "+" + "0" * 31,
        "٣" * 32,  # digits int() and so UUID read, but not ASCII: refused
        str(SAMPLE)[:-1] + "٣",
        "0" * 33,
        "",
        "not a uuid",
    ],
)
def test_uuid_hex_agrees_with_uuid(text: str) -> None:
    assert _got(text) == _expected(text)


@given(st.text(alphabet="0123456789abcdefABCDEF_-{}:urnid +xg٣", max_size=46))
def test_uuid_hex_agrees_with_uuid_on_any_text(text: str) -> None:
    assert _got(text) == _expected(text)


@given(st.uuids())
def test_every_uuid_in_every_form(value: uuid.UUID) -> None:
    for text in (value.hex, value.hex.upper(), str(value), "{" + str(value) + "}"):
        assert uuid_hex(text) == value.hex
