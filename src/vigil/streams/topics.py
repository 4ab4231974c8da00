"""The topics vigil uses, their partition counts and dead-letter topics."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Topic(StrEnum):
    INGEST_MONITORS = "ingest-monitors"
    INGEST_OCCURRENCES = "ingest-occurrences"
    MONITORS_CLOCK_TICK = "monitors-clock-tick"
    MONITORS_CLOCK_TASKS = "monitors-clock-tasks"
    MONITORS_INCIDENT_OCCURRENCES = "monitors-incident-occurrences"


# Ticks must be totally ordered, so their topic has exactly one partition.
FIXED_PARTITIONS: dict[Topic, int] = {Topic.MONITORS_CLOCK_TICK: 1}

DLQ_SUFFIX = "-dlq"
DLQ_PARTITIONS = 1


def dlq_topic(consumer_name: str) -> str:
    """The dead-letter topic of a consumer: what it could not process, with the reason."""
    return f"{consumer_name}{DLQ_SUFFIX}"


@dataclass(frozen=True)
class TopicLayout:
    name: str
    partitions: int


def partitions_for(topic: str, default: int) -> int:
    if topic.endswith(DLQ_SUFFIX):
        return DLQ_PARTITIONS
    try:
        return FIXED_PARTITIONS.get(Topic(topic), default)
    except ValueError:
        return default


def layout(default_partitions: int, consumer_names: list[str]) -> list[TopicLayout]:
    """Every topic vigil needs: the pipeline's topics and one dead-letter topic per consumer."""
    names = [t.value for t in Topic] + [dlq_topic(n) for n in consumer_names]
    return [TopicLayout(n, partitions_for(n, default_partitions)) for n in names]
