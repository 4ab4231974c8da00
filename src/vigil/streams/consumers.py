"""The named consumers `vigil consumer NAME` runs, and `vigil serve` supervises.

Each entry builds a `ConsumerDefinition` from the settings. The domain consumers
(check-ins, clock tasks, occurrences) register here as they are written; there is no
placeholder, since a consumer that only discarded messages would lose them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vigil.config import ConfigError, Settings
from vigil.issues.consumer import ingest_occurrences
from vigil.monitors.clock_consumers import clock_tasks_consumer, clock_tick
from vigil.monitors.clock_incident_occurrences import incident_occurrences
from vigil.monitors.consumer import ingest_monitors
from vigil.streams.runner import ConsumerDefinition

CONSUMERS: dict[str, Callable[[Settings], ConsumerDefinition[Any]]] = {
    "ingest-monitors": ingest_monitors,
    "monitors-clock-tick": clock_tick,
    "monitors-clock-tasks": clock_tasks_consumer,
    "monitors-incident-occurrences": incident_occurrences,
    "ingest-occurrences": ingest_occurrences,
}


class UnknownConsumer(ConfigError):
    """A consumer name that is not in `CONSUMERS` (a configuration error: the CLI
    reports it without a traceback)."""


def get_definition(name: str, settings: Settings) -> ConsumerDefinition[Any]:
    """The definition of consumer `name`; UnknownConsumer, listing the known names, if
    there is no such consumer."""
    factory = CONSUMERS.get(name)
    if factory is None:
        known = ", ".join(sorted(CONSUMERS)) or "none are defined yet"
        raise UnknownConsumer(f"unknown consumer {name!r} (known: {known})")
    return factory(settings)
