"""The embedded log across processes: producer processes writing one file at once, a
producer killed mid-write, and a consumer group's lease held by a SIGKILLed process."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest
from arroyo.backends.kafka import KafkaPayload
from arroyo.types import BrokerValue, Partition, Topic

from vigil.config import Settings
from vigil.streams.embedded.backend import EmbeddedBackend
from vigil.streams.embedded.consumer import EmbeddedConsumer

WAIT_S = 120.0
TOPIC = Topic("ingest-occurrences")  # 4 partitions
TICKS = Topic("monitors-clock-tick")  # 1 partition

# argv: home, topic, index, count, keys, gate file. Waits for the gate file, then writes
# `count` messages "index:i" over `keys` keys of its own, waiting for the log's
# acknowledgement every 100 messages (so that processes interleave in many small
# transactions), and prints "acked N" after each acknowledgement.
PRODUCER = """
import os, sys, time
from pathlib import Path
from arroyo.backends.kafka import KafkaPayload
from arroyo.types import Topic
from vigil.config import Settings
from vigil.streams.embedded.backend import EmbeddedBackend

home, topic, index, count, keys, gate = sys.argv[1:]
index, count, keys = int(index), int(count), int(keys)
producer = EmbeddedBackend(Settings(home=Path(home))).get_producer()
print("ready", flush=True)
while not os.path.exists(gate):
    time.sleep(0.01)
pending = []
for i in range(count):
    key = f"p{index}-k{i % keys}".encode()
    pending.append(producer.produce(Topic(topic), KafkaPayload(key, f"{index}:{i}".encode(), [])))
    if len(pending) == 100 or i == count - 1:
        for future in pending:
            future.result(timeout=120)
        pending = []
        print(f"acked {i + 1}", flush=True)
producer.close().result(timeout=120)
"""

# argv: home, topic, group. Reads one message, commits past it, prints "holding", and
# keeps the group's lease until killed.
HOLDER = """
import sys, time
from pathlib import Path
from arroyo.types import Topic
from vigil.config import Settings
from vigil.streams.embedded.backend import EmbeddedBackend

home, topic, group = sys.argv[1:]
consumer = EmbeddedBackend(Settings(home=Path(home))).get_consumer(group)
consumer.subscribe([Topic(topic)])
message = None
while message is None:
    message = consumer.poll(1.0)
consumer.stage_offsets(message.committable)
consumer.commit_offsets()
print("holding", flush=True)
time.sleep(3600)
"""


# argv: home, gate file. Waits for the gate, then opens the log (creating it if it is
# not there yet) and creates vigil's topics.
OPENER = """
import os, sys, time
from pathlib import Path
from vigil.config import Settings
from vigil.streams.embedded.backend import EmbeddedBackend

home, gate = sys.argv[1:]
print("ready", flush=True)
while not os.path.exists(gate):
    time.sleep(0.001)
EmbeddedBackend(Settings(home=Path(home), partitions=4)).ensure_topics(["sink"])
"""


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", partitions=4)


@pytest.fixture
def backend(settings: Settings) -> Iterator[EmbeddedBackend]:
    backend = EmbeddedBackend(settings)
    backend.ensure_topics()
    yield backend
    backend.close()


def spawn(program: str, *args: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", program, *(str(a) for a in args)],
        stdout=subprocess.PIPE,
        text=True,
    )


def read_line(stdout: IO[str] | None) -> str:
    assert stdout is not None
    return stdout.readline().strip()


def consume_all(backend: EmbeddedBackend, topic: Topic) -> list[BrokerValue[KafkaPayload]]:
    """Every message of `topic`, read by a fresh group until none is left."""
    c = backend.get_consumer("reader")
    c.subscribe([topic])
    got: list[BrokerValue[KafkaPayload]] = []
    deadline = time.monotonic() + WAIT_S
    while (message := c.poll(1.0)) is not None or not got:
        assert time.monotonic() < deadline
        if message is not None:
            got.append(message)
    c.close()
    return got


def test_producer_processes_write_one_log_at_once(
    tmp_path: Path, settings: Settings, backend: EmbeddedBackend
) -> None:
    processes, count, keys = 4, 3000, 10
    gate = tmp_path / "go"
    children = [
        spawn(PRODUCER, settings.home, TOPIC.name, i, count, keys, gate) for i in range(processes)
    ]
    for child in children:
        assert read_line(child.stdout) == "ready"
    gate.touch()  # all start writing together
    for child in children:
        assert child.wait(WAIT_S) == 0

    messages = consume_all(backend, TOPIC)
    values = sorted(m.payload.value.decode() for m in messages)
    assert values == sorted(f"{p}:{i}" for p in range(processes) for i in range(count))
    by_partition: dict[Partition, list[BrokerValue[KafkaPayload]]] = {}
    for m in messages:
        by_partition.setdefault(m.partition, []).append(m)
    for in_partition in by_partition.values():
        assert [m.offset for m in in_partition] == list(range(len(in_partition)))
        stamps = [m.timestamp for m in in_partition]
        assert stamps == sorted(stamps)
    # Each key's messages are in one partition, in the order its process produced them.
    order: dict[bytes, list[int]] = {}
    for m in messages:
        order.setdefault(m.payload.key or b"", []).append(int(m.payload.value.split(b":")[1]))
    for sequence in order.values():
        assert sequence == sorted(sequence)
    assert backend.lag("reader", TOPIC.name) == {
        p: len(by_partition[Partition(TOPIC, p)]) for p in range(4)
    }


def test_acknowledged_messages_survive_a_killed_producer(
    tmp_path: Path, settings: Settings, backend: EmbeddedBackend
) -> None:
    gate = tmp_path / "go"
    gate.touch()
    child = spawn(PRODUCER, settings.home, TICKS.name, 0, 1_000_000, 5, gate)
    assert read_line(child.stdout) == "ready"
    acked = 0
    while acked < 2000:
        acked = int(read_line(child.stdout).split()[1])
    child.kill()  # SIGKILL, most likely mid-transaction
    child.wait(WAIT_S)

    # The log is intact and a new producer goes on after what the dead one wrote.
    after = backend.get_producer()
    last = after.produce(TICKS, KafkaPayload(None, b"after", [])).result(timeout=WAIT_S)
    after.close().result(timeout=WAIT_S)
    messages = consume_all(backend, TICKS)
    assert [m.offset for m in messages] == list(range(len(messages)))
    assert messages[-1].offset == last.offset
    written = [m.payload.value for m in messages[:-1]]
    assert written[:acked] == [f"0:{i}".encode() for i in range(acked)]
    assert written == [f"0:{i}".encode() for i in range(len(written))]  # no gap, no tear


def test_a_sigkilled_members_lease_is_taken_over_at_once(
    settings: Settings, backend: EmbeddedBackend
) -> None:
    producer = backend.get_producer()
    for text in ("a", "b", "c"):
        producer.produce(TICKS, KafkaPayload(None, text.encode(), []))
    producer.close().result(timeout=WAIT_S)

    holder = spawn(HOLDER, settings.home, TICKS.name, "g")
    try:
        assert read_line(holder.stdout) == "holding"
        # A lease timeout longer than the test: only the holder's death can free it.
        waiting = EmbeddedConsumer(
            settings.log_path, "g", settings.sqlite_busy_timeout_ms, lease_timeout=3600
        )
        waiting.subscribe([TICKS])
        assert waiting.poll(0.2) is None  # the holder lives: its lease stands

        holder.kill()  # SIGKILL; not reaped yet, so a zombie for now
        message = waiting.poll(WAIT_S)
        assert message is not None
        assert (message.offset, message.payload.value) == (1, b"b")  # from its commit
        waiting.close()
    finally:
        holder.kill()
        holder.wait(WAIT_S)


def test_processes_creating_one_log_at_once_agree(tmp_path: Path) -> None:
    home, gate = tmp_path / "home", tmp_path / "go"
    children = [spawn(OPENER, home, gate) for _ in range(4)]
    for child in children:
        assert read_line(child.stdout) == "ready"
    gate.touch()  # all open the missing file together
    assert [child.wait(WAIT_S) for child in children] == [0, 0, 0, 0]
    backend = EmbeddedBackend(Settings(home=home))
    assert backend.partition_count("ingest-monitors") == 4
    assert backend.partition_count("sink-dlq") == 1
    backend.close()
