"""`GET /metrics` (Prometheus text) and the request counter behind it.

Besides the counters of `vigil.metrics`, a scrape reports `vigil_consumer_lag`: messages
not yet committed, per consumer group, topic and partition, read from the log for every
consumer in `vigil.streams.consumers`. A consumer whose lag cannot be read is left out
of that scrape (and logged), never failing the scrape. It also reports the crons' state
from the database (`monitor_metrics`).
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vigil import metrics
from vigil.api.monitor_metrics import MonitorStateCollector
from vigil.config import Settings
from vigil.streams.backend import LogBackend

log = logging.getLogger(__name__)

LAG_NAME = "vigil_consumer_lag"
LAG_HELP = "Messages not yet committed by a consumer group, per topic partition"
UNMATCHED_ROUTE = "unmatched"


def consumer_topics(settings: Settings) -> list[tuple[str, str]]:
    """(group, topic) on the log for each defined consumer; none while the consumers
    module does not exist."""
    try:
        consumers = importlib.import_module("vigil.streams.consumers")
    except ImportError:
        return []
    pairs: list[tuple[str, str]] = []
    for name in sorted(consumers.CONSUMERS):
        try:
            definition = consumers.get_definition(name, settings)
        except Exception as exc:
            log.warning(
                "cannot read consumer definition", extra={"consumer": name, "error": str(exc)}
            )
            continue
        pairs.append((settings.topic(definition.name), settings.topic(definition.topic)))
    return pairs


class ConsumerLagCollector(Collector):
    def __init__(self, backend: LogBackend, pairs: list[tuple[str, str]]) -> None:
        self._backend = backend
        self._pairs = pairs

    def describe(self) -> list[GaugeMetricFamily]:
        # Naming the metric here keeps registration from calling `collect` (and the log).
        return [GaugeMetricFamily(LAG_NAME, LAG_HELP, labels=["group", "topic", "partition"])]

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(LAG_NAME, LAG_HELP, labels=["group", "topic", "partition"])
        for group, topic in self._pairs:
            try:
                lag = self._backend.lag(group, topic)
            except Exception as exc:
                log.warning(
                    "cannot read consumer lag",
                    extra={"group": group, "topic": topic, "error": str(exc)},
                )
                continue
            for partition, value in sorted(lag.items()):
                family.add_metric([group, topic, str(partition)], value)
        yield family


class MetricsEndpoint:
    """Renders the exposition text; one scrape at a time (the lag collector is
    registered for the duration of a render)."""

    def __init__(self, settings: Settings, backend: LogBackend, engine: Engine) -> None:
        self._settings = settings
        self._backend = backend
        self._monitors = MonitorStateCollector(engine)
        self._lock = threading.Lock()
        self._pairs: list[tuple[str, str]] | None = None

    def render(self) -> tuple[bytes, str]:
        with self._lock:
            if self._pairs is None:
                self._pairs = consumer_topics(self._settings)
            lag = ConsumerLagCollector(self._backend, self._pairs)
            return metrics.render([lag, self._monitors])


async def metrics_endpoint(request: Request) -> Response:
    endpoint: MetricsEndpoint = request.state.metrics
    body, content_type = await run_in_threadpool(endpoint.render)
    return Response(body, headers={"Content-Type": content_type})


def routes() -> list[BaseRoute]:
    return [Route("/metrics", metrics_endpoint, methods=["GET"], name="/metrics")]


class RequestCounter:
    """ASGI middleware counting answered HTTP requests in `HTTP_REQUESTS` by route
    template (the route's name; `unmatched` for unknown paths) and status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def send_counted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_counted)
        finally:
            matched = scope.get("route")
            name = getattr(matched, "name", None) if matched is not None else None
            metrics.HTTP_REQUESTS.labels(name or UNMATCHED_ROUTE, str(status)).inc()
