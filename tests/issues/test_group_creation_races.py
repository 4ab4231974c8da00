"""Consumers racing to create groups (both databases): concurrent occurrences of one new
fingerprint make one group that counts them all, and concurrent new fingerprints get
distinct short ids. Each thread has its own connection and transactions."""

from __future__ import annotations

import threading
from collections.abc import Callable

from sqlalchemy import Engine

from tests.issues.occurrences import groups, make_project, occurrence, occurrences, process

THREADS = 4
PER_THREAD = 5


def race(work: Callable[[int], None]) -> None:
    barrier = threading.Barrier(THREADS)
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            barrier.wait()
            work(n)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_one_new_fingerprint_from_many_consumers_makes_one_group(engine: Engine) -> None:
    project = make_project(engine)

    def work(_n: int) -> None:
        for _ in range(PER_THREAD):
            process(engine, occurrence(project.id, "shared"))

    race(work)
    [grp] = groups(engine)
    assert grp.times_seen == THREADS * PER_THREAD
    assert grp.short_id == 1
    assert len(occurrences(engine)) == THREADS * PER_THREAD


def test_new_fingerprints_at_once_get_distinct_short_ids(engine: Engine) -> None:
    project = make_project(engine)

    def work(n: int) -> None:
        for i in range(PER_THREAD):
            process(engine, occurrence(project.id, f"fp-{n}-{i}"))

    race(work)
    short_ids = sorted(g.short_id for g in groups(engine))
    assert short_ids == list(range(1, THREADS * PER_THREAD + 1))
