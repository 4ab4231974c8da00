"""System incidents (B9): is the crons pipeline itself failing? No I/O.

Each minute's check-in volume is compared with the same minute on previous days. A drop
well below the usual volume means check-ins are being lost before they reach vigil (an
ingestion outage), not that every job stopped at once; while that lasts, synthetic
failures should not page anybody. This module holds the arithmetic and the decision
machine; `clock_store` keeps the volumes, metrics and decisions in the database.

Every minute is an aware UTC datetime truncated to the minute.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

HISTORY_DAYS: Final = 30
MIN_HISTORY_POINTS: Final = 2
BACKFILL_LIMIT_MINUTES: Final = 1440
MINUTE: Final = timedelta(minutes=1)


class Metric(StrEnum):
    """How one minute's volume compares with its history."""

    NORMAL = "normal"
    ABNORMAL = "abnormal"
    INCIDENT = "incident"


class Decision(StrEnum):
    """What the clock believes about ingestion at one tick."""

    NORMAL = "normal"
    ABNORMAL = "abnormal"
    INCIDENT = "incident"
    RECOVERING = "recovering"

    @property
    def is_pending(self) -> bool:
        """Not yet known whether this is an incident: hold synthetic failures (B8.2)."""
        return self in (Decision.ABNORMAL, Decision.RECOVERING)


class Transition(StrEnum):
    ABNORMALITY_STARTED = "abnormality_started"
    ABNORMALITY_RECOVERED = "abnormality_recovered"
    INCIDENT_STARTED = "incident_started"
    INCIDENT_RECOVERING = "incident_recovering"
    INCIDENT_RECOVERY_FAILED = "incident_recovery_failed"
    INCIDENT_RECOVERED = "incident_recovered"


@dataclass(frozen=True)
class Options:
    """The operator's options (D3), with the reference's defaults."""

    collect_metrics: bool = False
    use_decisions: bool = False
    anomaly_threshold: float = -10.0
    incident_threshold: float = -30.0
    decision_window: int = 5


@dataclass(frozen=True)
class Step:
    """The decision machine's answer for one tick: the new decision, the transition that
    led there (None when the decision is kept), and the back-fill to apply to the run of
    stored decisions ending at the previous minute (`backfill_from` -> `decision`)."""

    decision: Decision
    transition: Transition | None = None
    backfill_from: Decision | None = None


def history_minutes(minute: datetime) -> list[datetime]:
    """The same minute on each of the previous HISTORY_DAYS days, newest first."""
    return [minute - timedelta(days=day) for day in range(1, HISTORY_DAYS + 1)]


def pct_deviation(count: int | None, history: Sequence[int]) -> float | None:
    """How far `count` is from the mean of `history`, in percent of that mean; None
    when the minute has no count, fewer than MIN_HISTORY_POINTS historic points, or a
    historic mean of zero (nothing to compare with)."""
    if count is None or len(history) < MIN_HISTORY_POINTS:
        return None
    mean = sum(history) / len(history)
    if mean == 0:
        return None
    return (count - mean) / mean * 100


def classify(value: float | None, options: Options) -> Metric:
    """A missing metric is NORMAL: no evidence of an outage."""
    if value is None:
        return Metric.NORMAL
    if value <= options.incident_threshold:
        return Metric.INCIDENT
    if value <= options.anomaly_threshold:
        return Metric.ABNORMAL
    return Metric.NORMAL


def decide(last: Decision, metrics: Sequence[Metric]) -> Step:
    """Rules A-F of B9, in order. `last` is the decision stored at the previous minute;
    `metrics` the classifications of the window ending at the previous minute, oldest
    first (never empty)."""
    latest = metrics[-1]
    all_normal = all(m == Metric.NORMAL for m in metrics)
    if last == Decision.NORMAL and latest == Metric.ABNORMAL:
        return Step(Decision.ABNORMAL, Transition.ABNORMALITY_STARTED)
    if last == Decision.ABNORMAL and all_normal:
        return Step(Decision.NORMAL, Transition.ABNORMALITY_RECOVERED, Decision.ABNORMAL)
    if last == Decision.INCIDENT and latest == Metric.NORMAL:
        return Step(Decision.RECOVERING, Transition.INCIDENT_RECOVERING)
    if last == Decision.RECOVERING and all_normal:
        return Step(Decision.NORMAL, Transition.INCIDENT_RECOVERED, Decision.RECOVERING)
    if last == Decision.RECOVERING and latest != Metric.NORMAL:
        return Step(Decision.INCIDENT, Transition.INCIDENT_RECOVERY_FAILED, Decision.RECOVERING)
    if last != Decision.INCIDENT and latest == Metric.INCIDENT:
        return Step(Decision.INCIDENT, Transition.INCIDENT_STARTED, Decision.ABNORMAL)
    return Step(last)


def backfill_run(
    stored: Mapping[datetime, Decision],
    newest: datetime,
    decision: Decision,
    limit: int = BACKFILL_LIMIT_MINUTES,
) -> list[datetime]:
    """The minutes to back-fill: walking back from `newest` one minute at a time, at most
    `limit` minutes, those whose stored decision is `decision`; the walk stops at a
    minute with no decision (a gap) or another decision. Newest first."""
    run: list[datetime] = []
    minute = newest
    while len(run) < limit and stored.get(minute) == decision:
        run.append(minute)
        minute -= MINUTE
    return run


def result_ts(step: Step, tick: datetime, run: Sequence[datetime]) -> datetime:
    """When the transition happened: the start of the back-filled run for
    INCIDENT_STARTED and INCIDENT_RECOVERED (the incident began, or recovery began,
    when the run did), else the tick."""
    if step.transition in (Transition.INCIDENT_STARTED, Transition.INCIDENT_RECOVERED) and run:
        return run[-1]
    return tick


@dataclass(frozen=True)
class Evaluation:
    """The outcome of one tick: the decision to store at the tick, its transition, the
    minutes whose stored decision becomes `decision` too, and when the transition
    happened (`result_ts`)."""

    decision: Decision
    transition: Transition | None
    backfilled: tuple[datetime, ...]
    at: datetime


def window_minutes(tick: datetime, options: Options) -> list[datetime]:
    """The decision window: the `decision_window` minutes ending at the minute before
    the tick, oldest first."""
    previous = tick - MINUTE
    size = max(options.decision_window, 1)
    return [previous - MINUTE * back for back in range(size - 1, -1, -1)]


def evaluate(
    tick: datetime,
    metrics: Mapping[datetime, float],
    stored: Mapping[datetime, Decision],
    options: Options,
) -> Evaluation:
    """The decision at `tick` from the stored metrics (pct deviations by minute; absent
    minutes count as NORMAL) and the stored decisions (by minute, absent = none)."""
    previous = tick - MINUTE
    window = [classify(metrics.get(m), options) for m in window_minutes(tick, options)]
    last = stored.get(previous, Decision.NORMAL)
    step = decide(last, window)
    run: list[datetime] = []
    if step.backfill_from is not None:
        run = backfill_run(stored, previous, step.backfill_from)
    return Evaluation(step.decision, step.transition, tuple(run), result_ts(step, tick, run))
