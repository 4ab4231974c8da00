"""The web process's log writer: `write_async` awaited on an event loop (the ingest
endpoints' path) gives `write`'s order, errors and guarantee, on both logs."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace

import pytest

from tests.support.log_reader import read_messages
from vigil.config import Settings
from vigil.ingest.log_writer import KeyedValue, LogWriter, WriteTooLarge
from vigil.streams.backend import LogBackend, MessageTooLarge, get_backend
from vigil.streams.topics import Topic

LIMIT = 10_000


@pytest.fixture
def settings(stack: Settings) -> Settings:
    return replace(stack, max_message_bytes=LIMIT)


@pytest.fixture
def backend(settings: Settings) -> Iterator[LogBackend]:
    backend = get_backend(settings)
    yield backend
    backend.close()


@pytest.fixture
def writer(settings: Settings, backend: LogBackend) -> Iterator[LogWriter]:
    writer = LogWriter(backend, settings, Topic.INGEST_MONITORS)
    writer.open()
    yield writer
    writer.close()


def test_concurrent_async_writes_are_all_acknowledged_in_order(
    settings: Settings, backend: LogBackend, writer: LogWriter
) -> None:
    async def scenario() -> None:
        # The first write goes through a worker thread (the producer then knows the
        # topic); the rest are produced on the loop and awaited there.
        await writer.write_async([KeyedValue(b"k", b"0")])
        for start in range(1, 200, 40):
            await asyncio.gather(
                *(
                    writer.write_async([KeyedValue(b"k", str(n).encode())])
                    for n in range(start, start + 40)
                )
            )
        await writer.write_async([KeyedValue(b"k", b"201"), KeyedValue(b"k", b"202")])

    asyncio.run(scenario())
    found = read_messages(settings, backend, Topic.INGEST_MONITORS, 203)
    # One key, one partition: the order in which the writes were produced.
    assert [int(p.value) for p in found] == list(range(203))


def test_a_message_over_the_limit_is_refused_before_anything_of_it_is_written(
    settings: Settings, backend: LogBackend, writer: LogWriter
) -> None:
    async def scenario() -> None:
        await writer.write_async([KeyedValue(b"k", b"first")])
        with pytest.raises(MessageTooLarge):
            await writer.write_async([KeyedValue(b"k", b"x" * (LIMIT + 1))])
        await writer.write_async([KeyedValue(b"k", b"after")])

    asyncio.run(scenario())
    found = read_messages(settings, backend, Topic.INGEST_MONITORS, 2)
    assert [p.value for p in found] == [b"first", b"after"]


def test_a_write_with_one_message_over_the_limit_is_refused_whole(
    settings: Settings, backend: LogBackend, writer: LogWriter
) -> None:
    # The producers refuse message by message; the writer checks every message first, so
    # the small one before the large one is not written either, on either path.
    too_large = [KeyedValue(b"k", b"small"), KeyedValue(b"k", b"x" * LIMIT)]

    async def scenario() -> None:
        await writer.write_async([KeyedValue(b"k", b"first")])  # now produced on the loop
        with pytest.raises(WriteTooLarge) as on_loop:
            await writer.write_async(too_large)
        assert (on_loop.value.index, on_loop.value.size, on_loop.value.limit) == (
            1,
            LIMIT + 1,
            LIMIT,
        )
        await writer.write_async([KeyedValue(b"k", b"after")])

    asyncio.run(scenario())
    with pytest.raises(WriteTooLarge) as in_thread:
        writer.write(too_large)
    assert in_thread.value.index == 1
    writer.write([KeyedValue(b"k", b"last")])
    found = read_messages(settings, backend, Topic.INGEST_MONITORS, 3)
    assert [p.value for p in found] == [b"first", b"after", b"last"]
