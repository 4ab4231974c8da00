"""The envelope parser, as a table of bodies and what they parse to (or why not), and
a round-trip property over generated envelopes."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vigil.ingest.envelope_format import EnvelopeError, parse_envelope

EID = "9ec79c33ec9942ab8353589fcb2e04dc"


def items_of(body: bytes) -> list[tuple[str, bytes]]:
    return [(item.type, item.payload) for item in parse_envelope(body).items]


@pytest.mark.parametrize(
    ("body", "items"),
    [
        # sentry-sdk: event_id header, item with length
        (
            b'{"event_id":"' + EID.encode() + b'"}\n{"type":"check_in","length":2}\n{}\n',
            [("check_in", b"{}")],
        ),
        # sentry-cli: empty header, no length
        (b'{}\n{"type":"check_in"}\n{"a":1}\n', [("check_in", b'{"a":1}')]),
        # no final newline
        (b'{}\n{"type":"check_in"}\n{"a":1}', [("check_in", b'{"a":1}')]),
        (b'{}\n{"type":"check_in","length":7}\n{"a":1}', [("check_in", b'{"a":1}')]),
        # a payload with length may hold newlines
        (b'{}\n{"type":"attachment","length":3}\na\nb\n', [("attachment", b"a\nb")]),
        # an empty payload, with and without length
        (b'{}\n{"type":"a","length":0}\n\n{"type":"b"}\n', [("a", b""), ("b", b"")]),
        # CRLF line ends
        (b'{}\r\n{"type":"check_in"}\r\n{"a":1}\r\n', [("check_in", b'{"a":1}')]),
        (b'{}\r\n{"type":"check_in","length":2}\r\n{}\r\n', [("check_in", b"{}")]),
        # blank lines between items and at the end
        (
            b'{}\n\n{"type":"a","length":1}\nx\n\n\n{"type":"b"}\ny\n\n',
            [("a", b"x"), ("b", b"y")],
        ),
        # a header alone: no items
        (b"{}", []),
        (b"{}\n", []),
        # several items of several types
        (
            b'{}\n{"type":"event","length":2}\n{}\n{"type":"client_report"}\n{"x":[]}\n',
            [("event", b"{}"), ("client_report", b'{"x":[]}')],
        ),
    ],
)
def test_valid_envelopes(body: bytes, items: list[tuple[str, bytes]]) -> None:
    assert items_of(body) == items


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "empty envelope"),
        (b"\n\n", "empty envelope"),
        (b"{", "envelope header is not valid JSON"),
        (b"[]\n", "envelope header must be a JSON object"),
        (b"{}\nnope\n", "item 1 header is not valid JSON"),
        (b'{}\n"type"\n', "item 1 header must be a JSON object"),
        (b'{}\n{"length":0}\n\n', "item 1 header has no type"),
        (b'{}\n{"type":""}\n\n', "item 1 header has no type"),
        (b'{}\n{"type":7}\n\n', "item 1 header has no type"),
        (b'{}\n{"type":"a","length":5}\nabc', "item 1 declares 5 bytes but only 3 follow"),
        (b'{}\n{"type":"a","length":-1}\n', "item 1 length must be a non-negative integer"),
        (b'{}\n{"type":"a","length":"2"}\nab', "item 1 length must be a non-negative integer"),
        (b'{}\n{"type":"a","length":true}\nab', "item 1 length must be a non-negative integer"),
        (b'{}\n{"type":"a","length":1}\nab\n', "item 1 payload is not followed by a newline"),
        (b'{}\n{"type":"a"}\n{}\n{"type":1}\n', "item 2 header has no type"),
        (b'{"event_id":"xyz"}\n', "event_id 'xyz' is not a UUID"),
        (b'{"event_id":5}\n', "event_id must be a UUID string"),
    ],
)
def test_invalid_envelopes(body: bytes, reason: str) -> None:
    with pytest.raises(EnvelopeError) as caught:
        parse_envelope(body)
    assert str(caught.value).startswith(reason) or reason in str(caught.value)


@pytest.mark.parametrize(
    ("header", "event_id"),
    [
        ({}, None),
        ({"event_id": None}, None),
        ({"event_id": EID}, EID),
        ({"event_id": EID.upper()}, EID),
        ({"event_id": "9ec79c33-ec99-42ab-8353-589fcb2e04dc"}, EID),
    ],
)
def test_event_id_is_normalized_to_32_hex(header: dict[str, Any], event_id: str | None) -> None:
    assert parse_envelope(orjson.dumps(header)).event_id == event_id


def test_dsn_comes_from_the_header() -> None:
    assert parse_envelope(b'{"dsn":"http://k@h/1"}').dsn == "http://k@h/1"
    assert parse_envelope(b'{"dsn":""}').dsn is None
    assert parse_envelope(b'{"dsn":5}').dsn is None
    assert parse_envelope(b"{}").dsn is None


payloads = st.binary(max_size=200)
json_lines = st.dictionaries(st.text(max_size=5), st.integers(), max_size=3).map(orjson.dumps)


@given(
    st.lists(
        st.tuples(st.sampled_from(["check_in", "event", "attachment"]), payloads, st.booleans()),
        max_size=5,
    )
)
def test_written_envelopes_parse_back(items: list[tuple[str, bytes, bool]]) -> None:
    """Any envelope written by the spec parses back to its items: payloads with a length
    are taken verbatim; those without are one line (so they hold no newline)."""
    parts = [b"{}"]
    expected = []
    for item_type, payload, with_length in items:
        if with_length:
            parts += [orjson.dumps({"type": item_type, "length": len(payload)}), payload]
            expected.append((item_type, payload))
        else:
            # A CR at a line's end makes a CRLF ending: it is the end, not the payload.
            line = payload.replace(b"\n", b"").rstrip(b"\r") or b"{}"
            parts += [orjson.dumps({"type": item_type}), line]
            expected.append((item_type, line))
    assert items_of(b"\n".join(parts) + b"\n") == expected
