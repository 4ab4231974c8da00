"""Decoding request bodies: each supported encoding, the limit on what they inflate to
(decompression bombs), and the reasons for refusing the rest."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable

import brotli
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vigil.ingest.content_encoding import (
    BodyTooLarge,
    CorruptBody,
    UnsupportedEncoding,
    decode_body,
)

DATA = b'{}\n{"type":"check_in"}\n{"monitor_slug":"job"}\n' * 20


def raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


ENCODERS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "x-gzip": gzip.compress,
    "deflate": zlib.compress,
    "br": lambda d: brotli.compress(d, quality=4),
}


@pytest.mark.parametrize("encoding", [None, "", "identity", "IDENTITY"])
def test_identity_is_the_body_itself(encoding: str | None) -> None:
    assert decode_body(DATA, encoding, len(DATA)) == DATA


@pytest.mark.parametrize("encoding", sorted(ENCODERS))
def test_each_encoding_decodes(encoding: str) -> None:
    assert decode_body(ENCODERS[encoding](DATA), encoding, len(DATA)) == DATA
    assert decode_body(ENCODERS[encoding](DATA), encoding.upper(), len(DATA)) == DATA


def test_raw_deflate_is_accepted_too() -> None:
    assert decode_body(raw_deflate(DATA), "deflate", len(DATA)) == DATA


def test_concatenated_gzip_members_decode_to_their_concatenation() -> None:
    assert decode_body(gzip.compress(b"ab") + gzip.compress(b"cd"), "gzip", 10) == b"abcd"


def test_stacked_encodings_are_undone_last_first() -> None:
    body = brotli.compress(gzip.compress(DATA))
    assert decode_body(body, "gzip, br", len(DATA)) == DATA


@pytest.mark.parametrize("encoding", [None, *sorted(ENCODERS)])
def test_output_over_the_limit_is_refused(encoding: str | None) -> None:
    encode = ENCODERS[encoding] if encoding else (lambda d: d)
    with pytest.raises(BodyTooLarge):
        decode_body(encode(DATA), encoding, len(DATA) - 1)


@pytest.mark.parametrize("encoding", sorted(ENCODERS))
def test_a_bomb_is_refused_without_inflating_it(encoding: str) -> None:
    bomb = ENCODERS[encoding](b"\0" * 200_000_000)  # 200 MB of zeros, a few hundred KB
    with pytest.raises(BodyTooLarge, match="decompressed request body exceeds the limit"):
        decode_body(bomb, encoding, 1024 * 1024)


@pytest.mark.parametrize(
    ("body", "encoding", "error", "reason"),
    [
        (b"x", "zstd", UnsupportedEncoding, "unsupported Content-Encoding 'zstd'"),
        (b"x", "gzip, compress", UnsupportedEncoding, "unsupported Content-Encoding 'compress'"),
        (b"not gzip", "gzip", CorruptBody, "body is not valid gzip data"),
        (gzip.compress(DATA)[:-20], "gzip", CorruptBody, "gzip body is truncated"),
        (b"not deflate", "deflate", CorruptBody, "body is not valid deflate data"),
        (b"not brotli", "br", CorruptBody, "body is not valid br data"),
        (brotli.compress(DATA)[:-5], "br", CorruptBody, "br body is truncated"),
    ],
)
def test_refusals_say_why(body: bytes, encoding: str, error: type[Exception], reason: str) -> None:
    with pytest.raises(error) as caught:
        decode_body(body, encoding, 10 * len(DATA))
    assert str(caught.value).startswith(reason)


@given(st.binary(max_size=2000), st.sampled_from(sorted(ENCODERS)), st.integers(0, 2500))
def test_decoding_gives_the_data_or_refuses_it_as_too_large(
    data: bytes, encoding: str, limit: int
) -> None:
    body = ENCODERS[encoding](data)
    if len(data) <= limit:
        assert decode_body(body, encoding, limit) == data
    else:
        with pytest.raises(BodyTooLarge):
            decode_body(body, encoding, limit)
