"""The enums crons share with the reference platform: their integer values are what the
database stores and the Kafka messages carry; their lower-case names are what the API
shows and what check-ins send. No I/O."""

from __future__ import annotations

from enum import IntEnum, StrEnum
from typing import Self


class _Labelled(IntEnum):
    """An int enum whose wire name is the lower-case member name."""

    @property
    def label(self) -> str:
        """The name the API and check-in payloads use ("in_progress", "cron_job", ...)."""
        return self.name.lower()

    @classmethod
    def from_label(cls, label: str) -> Self:
        """The member named `label`; ValueError for anything else (case-sensitive, as
        the wire names are)."""
        for member in cls:
            if member.label == label:
                return member
        raise ValueError(f"{label!r} is not a {cls.__name__}")


class ObjectStatus(_Labelled):
    """The status of a monitor (Monitor.status)."""

    ACTIVE = 0
    DISABLED = 1
    PENDING_DELETION = 2
    DELETION_IN_PROGRESS = 3


class MonitorStatus(_Labelled):
    """The status of a monitor environment: the ObjectStatus values plus the outcome of
    its latest check-ins."""

    ACTIVE = 0
    DISABLED = 1
    PENDING_DELETION = 2
    DELETION_IN_PROGRESS = 3
    OK = 4
    ERROR = 5


class CheckInStatus(_Labelled):
    """The status of one check-in. MISSED, TIMEOUT and UNKNOWN are only ever set by vigil
    itself (synthetic); a client can send OK, ERROR and IN_PROGRESS."""

    UNKNOWN = 0
    OK = 1
    ERROR = 2
    IN_PROGRESS = 3
    MISSED = 4
    TIMEOUT = 5


# What a client closes a run with.
USER_TERMINAL_STATUSES: frozenset[CheckInStatus] = frozenset(
    {CheckInStatus.OK, CheckInStatus.ERROR}
)
# What vigil closes a run with when the client did not.
SYNTHETIC_TERMINAL_STATUSES: frozenset[CheckInStatus] = frozenset(
    {CheckInStatus.MISSED, CheckInStatus.TIMEOUT, CheckInStatus.UNKNOWN}
)
# A run that is over and counted towards thresholds (UNKNOWN is over but not counted).
FINISHED_STATUSES: frozenset[CheckInStatus] = frozenset(
    {CheckInStatus.OK, CheckInStatus.ERROR, CheckInStatus.MISSED, CheckInStatus.TIMEOUT}
)


class MonitorType(_Labelled):
    """The kind of monitor; crons are CRON_JOB ("cron_job")."""

    UNKNOWN = 0
    CRON_JOB = 3


class ScheduleType(_Labelled):
    """How a monitor's `schedule` is to be read: a crontab string or [count, unit]."""

    UNKNOWN = 0
    CRONTAB = 1
    INTERVAL = 2


class IntervalUnit(StrEnum):
    """The units of an interval schedule, longest first."""

    YEAR = "year"
    MONTH = "month"
    WEEK = "week"
    DAY = "day"
    HOUR = "hour"
    MINUTE = "minute"
