"""The garbage collector's settings for vigil's long-running processes (the web server
and the consumers).

They allocate many short-lived objects per request or message (decoded payloads, rows,
parameters). With CPython's default gen-0 threshold (700 allocations) the collector ran
every few messages and walked every object the process had made at start-up (modules,
SQLAlchemy's tables and compiled statements) on each older-generation pass. That was
about a seventh of the occurrences consumer's time; in the web server, each full pass
stopped every request in flight for 45-60 ms, a few times a second under load (the
check-in p99 at concurrency 64 went from 53 to 22 ms). No I/O here."""

from __future__ import annotations

import gc

GEN0_THRESHOLD = 50_000
"""Allocations (net of frees) between young-generation collections: cyclic garbage of a
few batches at most waits for it, which costs memory in kilobytes, not megabytes."""


def tune_for_throughput() -> None:
    """Call once, after start-up and before the work loop: what exists by then (imports,
    table definitions, compiled statements) lives as long as the process, so it is moved
    out of the collector's sight (`gc.freeze`), and young collections run less often.
    Older generations keep their default ratios."""
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, gen1, gen2)
