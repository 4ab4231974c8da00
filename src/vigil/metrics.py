"""Prometheus metrics. Under `vigil serve` every process writes to a shared directory
(`PROMETHEUS_MULTIPROC_DIR`, set by the supervisor) and the web process serves the sum;
a process run alone serves only its own."""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.registry import REGISTRY, Collector

MESSAGES_CONSUMED = Counter(
    "vigil_messages_consumed_total", "Messages consumed from the log", ["consumer"]
)
MESSAGES_PRODUCED = Counter("vigil_messages_produced_total", "Messages produced", ["topic"])
BATCH_DURATION = Histogram(
    "vigil_batch_duration_seconds",
    "Time to apply one batch, database transaction included",
    ["consumer"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
CONSUMER_ERRORS = Counter(
    "vigil_consumer_errors_total",
    "Errors while applying a batch (retried or dead-lettered)",
    ["consumer"],
)
DEAD_LETTERED = Counter(
    "vigil_dead_lettered_total", "Messages sent to a dead-letter topic", ["consumer"]
)
CLOCK_TICKS = Counter("vigil_crons_clock_ticks_total", "Crons clock ticks dispatched")
CLOCK_LAST_TICK = Gauge(
    "vigil_crons_clock_last_tick_seconds",
    "The crons clock's position: the minute last ticked (epoch seconds); lag is time() minus this",
    multiprocess_mode="max",
)
CLOCK_TICK_DELAY = Gauge(
    "vigil_crons_clock_tick_delay_seconds",
    "Wall time minus the minute of the tick just dispatched (how far the clock runs behind)",
    multiprocess_mode="mostrecent",
)
CLOCK_DECISION = Gauge(
    "vigil_crons_clock_decision",
    "The system-incident decision of the last tick: 0 normal, 1 abnormal, 2 recovering, 3 incident",
    multiprocess_mode="mostrecent",
)
HTTP_REQUESTS = Counter("vigil_http_requests_total", "HTTP requests answered", ["route", "status"])
ENVELOPE_ITEMS_DROPPED = Counter(
    "vigil_envelope_items_dropped_total",
    "Envelope items accepted but not processed (types vigil does not ingest)",
    ["item_type"],
)
ENVELOPE_ITEMS_INVALID = Counter(
    "vigil_envelope_items_invalid_total",
    "Envelope items dropped as invalid (the envelope itself is still accepted)",
    ["item_type", "reason"],
)

ISSUE_MESSAGES = Counter(
    "vigil_issue_messages_total",
    "ingest-occurrences messages by what became of them (applied, duplicate, dropped_*, "
    "invalid_*: see vigil.issues.consumer)",
    ["outcome"],
)
WEBHOOK_DELIVERIES = Counter(
    "vigil_webhook_deliveries_total",
    "Webhook delivery attempts, by outcome (delivered, retrying, failed)",
    ["outcome"],
)
ISSUE_CHUNKS_REDONE = Counter(
    "vigil_issue_chunks_redone_total",
    "ingest-occurrences chunks rolled back and applied again one message per transaction "
    "(a message of the chunk could not be applied, or a concurrent consumer wrote a row "
    "first)",
)


def render(extra: list[Collector] | None = None) -> tuple[bytes, str]:
    """The exposition text for /metrics and its content type."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry = REGISTRY
    for collector in extra or []:
        registry.register(collector)
    try:
        return generate_latest(registry), CONTENT_TYPE_LATEST
    finally:
        for collector in extra or []:
            registry.unregister(collector)
