"""Request bodies under `Content-Encoding`: identity, gzip, deflate and br. No I/O.

`decode_body` never produces more than `limit` bytes: each decoder is driven with an
output bound, so a small body that inflates to gigabytes (a decompression bomb) is
refused after `limit + 1` bytes of output, not after exhausting memory.
"""

from __future__ import annotations

import zlib

import brotli


class BodyTooLarge(ValueError):
    """The decoded body would exceed the limit; `str(err)` is the reason."""


class UnsupportedEncoding(ValueError):
    """A `Content-Encoding` this server does not decode; `str(err)` is the reason."""


class CorruptBody(ValueError):
    """The body is not valid data of its declared encoding; `str(err)` is the reason."""


SUPPORTED = ("identity", "gzip", "x-gzip", "deflate", "br")


def decode_body(body: bytes, content_encoding: str | None, limit: int) -> bytes:
    """The body with every listed encoding undone (last applied, first undone).

    Raises BodyTooLarge when any stage would yield more than `limit` bytes,
    UnsupportedEncoding for an encoding not in SUPPORTED, CorruptBody for bad data.
    """
    codings = [c.strip().lower() for c in (content_encoding or "").split(",") if c.strip()]
    unknown = [c for c in codings if c not in SUPPORTED]
    if unknown:
        raise UnsupportedEncoding(
            f"unsupported Content-Encoding {unknown[0]!r} (supported: gzip, deflate, br)"
        )
    data = body
    for coding in reversed(codings):
        if coding in ("gzip", "x-gzip"):
            data = _zlib(data, limit, wbits=16 + zlib.MAX_WBITS, name="gzip")
        elif coding == "deflate":
            data = _deflate(data, limit)
        elif coding == "br":
            data = _brotli(data, limit)
    if len(data) > limit:
        raise BodyTooLarge(f"request body exceeds the limit of {limit} bytes")
    return data


def _too_large(limit: int) -> BodyTooLarge:
    return BodyTooLarge(f"decompressed request body exceeds the limit of {limit} bytes")


def _zlib(data: bytes, limit: int, *, wbits: int, name: str) -> bytes:
    """Inflate every member (gzip allows several, concatenated) up to `limit` bytes."""
    out = bytearray()
    rest = data
    while True:
        decoder = zlib.decompressobj(wbits)
        try:
            out += decoder.decompress(rest, limit + 1 - len(out))
        except zlib.error as exc:
            raise CorruptBody(f"body is not valid {name} data: {exc}") from None
        if len(out) > limit:
            raise _too_large(limit)
        if not decoder.eof:
            raise CorruptBody(f"{name} body is truncated")
        rest = decoder.unused_data
        if not rest.strip(b"\0") or name != "gzip":
            return bytes(out)


def _deflate(data: bytes, limit: int) -> bytes:
    # HTTP's "deflate" is the zlib format; some clients send raw deflate instead.
    try:
        return _zlib(data, limit, wbits=zlib.MAX_WBITS, name="deflate")
    except CorruptBody:
        return _zlib(data, limit, wbits=-zlib.MAX_WBITS, name="deflate")


def _brotli(data: bytes, limit: int) -> bytes:
    decoder = brotli.Decompressor()
    out = bytearray()
    chunk = data
    try:
        while True:
            out += decoder.process(chunk, output_buffer_limit=limit + 1 - len(out))
            if len(out) > limit:
                raise _too_large(limit)
            if decoder.is_finished():
                return bytes(out)
            if decoder.can_accept_more_data():
                raise CorruptBody("br body is truncated")
            chunk = b""
    except brotli.error as exc:
        raise CorruptBody(f"body is not valid br data: {exc}") from None
