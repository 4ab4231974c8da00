"""Issue short ids as Sentry writes them (`vigil.issues.short_ids`)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vigil.issues.short_ids import decode, encode, parse_qualified, qualified


@pytest.mark.parametrize(
    ("number", "text"),
    [
        (1, "1"),
        (9, "9"),
        (10, "A"),
        (18, "J"),
        (20, "M"),
        (21, "N"),
        (31, "Z"),
        (32, "10"),
        (1024, "100"),
    ],
)
def test_the_alphabet_has_no_i_l_o_or_u(number: int, text: str) -> None:
    assert encode(number) == text
    assert decode(text) == decode(text.lower()) == number


@given(st.integers(min_value=0, max_value=2**63 - 1))
def test_encode_and_decode_agree(number: int) -> None:
    text = encode(number)
    assert not set(text) & set("ILOU")
    assert decode(text) == number


def test_qualified_ids_name_the_project() -> None:
    assert qualified("web-app", 42) == "WEB-APP-1A"
    assert parse_qualified("WEB-APP-1A") == parse_qualified("web-app-1a") == ("web-app", 42)
    # letters outside the alphabet, no number, no dash: not a short id
    assert parse_qualified("WEB-I") is None
    assert parse_qualified("WEB-") is None
    assert parse_qualified("WEB") is None
    assert decode("") is None
