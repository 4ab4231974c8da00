"""A producer process for the runner's tests.

`python -m tests.support.keyed_producer INDEX COUNT KEYS` writes COUNT messages to the
sink consumer's topic, over KEYS keys of its own (`p{INDEX}-k{j}`), round robin. Each
message is `{"id": "p{INDEX}-{i}", "key": ..., "seq": n}` where n counts the messages of
that key, so the order per key can be checked on the other side. Settings come from
VIGIL_*; exits 0 once the log acknowledged every message.
"""

from __future__ import annotations

import sys
from concurrent.futures import Future
from typing import Any

import orjson
from arroyo.backends.kafka import KafkaPayload
from arroyo.types import Topic

from tests.support.sink_consumer import TOPIC
from vigil.config import load_settings
from vigil.streams.backend import get_backend


def main(argv: list[str]) -> int:
    index, count, keys = (int(a) for a in argv)
    settings = load_settings()
    backend = get_backend(settings)
    producer = backend.get_producer()
    topic = Topic(settings.topic(TOPIC))
    seqs = [0] * keys
    futures: list[Future[Any] | Any] = []
    for i in range(count):
        j = i % keys
        key = f"p{index}-k{j}"
        value = {"id": f"p{index}-{i}", "key": key, "seq": seqs[j]}
        seqs[j] += 1
        futures.append(producer.produce(topic, KafkaPayload(key.encode(), orjson.dumps(value), [])))
    for future in futures:
        future.result(timeout=60)
    producer.close().result(timeout=60)
    backend.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
