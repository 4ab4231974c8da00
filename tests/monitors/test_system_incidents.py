"""The system-incident arithmetic and decision machine (B9), as tables of cases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vigil.monitors.system_incidents import (
    BACKFILL_LIMIT_MINUTES,
    Decision,
    Metric,
    Options,
    Step,
    Transition,
    backfill_run,
    classify,
    decide,
    evaluate,
    history_minutes,
    pct_deviation,
    window_minutes,
)

T = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
M = timedelta(minutes=1)
N, A, I = Metric.NORMAL, Metric.ABNORMAL, Metric.INCIDENT  # noqa: E741
DN, DA, DI, DR = Decision.NORMAL, Decision.ABNORMAL, Decision.INCIDENT, Decision.RECOVERING


# --- the metric -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "history", "expected"),
    [
        (165, [170, 150, 130, 210, 154] * 6, 1.3513513513513442),  # the reference's numbers
        (6000, [12500] * 30, -52.0),
        (1000, [1000] * 30, 0.0),
        (10, [10, 20], -33.33333333333333),
        (None, [1000] * 30, None),  # no count for the minute
        (1000, [1000], None),  # fewer than two historic points
        (1000, [], None),
        (5, [0, 0, 0], None),  # nothing to compare with
    ],
)
def test_pct_deviation(count: int | None, history: list[int], expected: float | None) -> None:
    assert pct_deviation(count, history) == expected


def test_history_is_the_same_minute_on_the_30_previous_days() -> None:
    minutes = history_minutes(T)
    assert len(minutes) == 30
    assert minutes[0] == T - timedelta(days=1)
    assert minutes[-1] == T - timedelta(days=30)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, N),
        (5.0, N),
        (-9.99, N),
        (-10.0, A),
        (-29.99, A),
        (-30.0, I),
        (-52.0, I),
    ],
)
def test_classify_with_default_thresholds(value: float | None, expected: Metric) -> None:
    assert classify(value, Options()) == expected


def test_classify_with_an_operators_thresholds() -> None:
    options = Options(anomaly_threshold=-5, incident_threshold=-50)
    assert [classify(v, options) for v in (-4, -5, -49, -50)] == [N, A, A, I]


# --- the decision machine -------------------------------------------------------------


@pytest.mark.parametrize(
    ("last", "metrics", "expected"),
    [
        # A
        (DN, [N, N, N, N, A], Step(DA, Transition.ABNORMALITY_STARTED)),
        # B
        (DA, [N, N, N, N, N], Step(DN, Transition.ABNORMALITY_RECOVERED, DA)),
        (DA, [A, N, N, N, N], Step(DA)),  # not yet all normal
        # C
        (DI, [I, I, I, I, N], Step(DR, Transition.INCIDENT_RECOVERING)),
        (DI, [I, I, I, I, A], Step(DI)),
        # D
        (DR, [N, N, N, N, N], Step(DN, Transition.INCIDENT_RECOVERED, DR)),
        (DR, [I, N, N, N, N], Step(DR)),  # recovering, not yet recovered
        # E
        (DR, [N, N, N, N, A], Step(DI, Transition.INCIDENT_RECOVERY_FAILED, DR)),
        (DR, [N, N, N, N, I], Step(DI, Transition.INCIDENT_RECOVERY_FAILED, DR)),
        # F
        (DN, [N, N, N, N, I], Step(DI, Transition.INCIDENT_STARTED, DA)),
        (DA, [A, A, A, A, I], Step(DI, Transition.INCIDENT_STARTED, DA)),
        # kept
        (DN, [N, N, N, N, N], Step(DN)),
        (DN, [I, A, A, I, N], Step(DN)),
        (DA, [A, A, A, A, A], Step(DA)),
        (DI, [I, I, I, I, I], Step(DI)),
    ],
)
def test_decide(last: Decision, metrics: list[Metric], expected: Step) -> None:
    assert decide(last, metrics) == expected


@given(st.sampled_from(list(Decision)), st.lists(st.sampled_from(list(Metric)), min_size=1))
def test_a_changed_decision_always_names_its_transition(
    last: Decision, metrics: list[Metric]
) -> None:
    step = decide(last, metrics)
    assert (step.transition is None) == (step.decision == last)
    if step.backfill_from is not None:
        assert step.backfill_from != step.decision


def test_backfill_stops_at_a_gap_or_another_decision() -> None:
    stored = {T - M * k: DA for k in range(1, 4)} | {T - M * 4: DN} | {T - M * 5: DA}
    assert backfill_run(stored, T - M, DA) == [T - M, T - 2 * M, T - 3 * M]
    gap = {T - M: DA, T - 3 * M: DA}
    assert backfill_run(gap, T - M, DA) == [T - M]
    assert backfill_run(stored, T - M, DR) == []


def test_backfill_walks_back_at_most_a_day() -> None:
    stored = {T - M * k: DA for k in range(1, 3000)}
    run = backfill_run(stored, T - M, DA)
    assert len(run) == BACKFILL_LIMIT_MINUTES
    assert run[-1] == T - M * BACKFILL_LIMIT_MINUTES


def test_window_is_the_minutes_ending_before_the_tick() -> None:
    assert window_minutes(T, Options()) == [T - M * k for k in (5, 4, 3, 2, 1)]
    assert window_minutes(T, Options(decision_window=1)) == [T - M]


# --- evaluate: a whole outage ------------------------------------------------------------


def test_an_outage_from_abnormal_to_incident_and_back() -> None:
    """Metrics drop to ABNORMAL, then INCIDENT, then recover: the decisions and their
    back-fills, tick by tick, as the clock-tick consumer would store them."""
    options = Options()
    values = [0.0, 0.0, -15.0, -15.0, -52.0, -52.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    start = T
    metrics = {start + M * i: v for i, v in enumerate(values)}
    stored: dict[datetime, Decision] = {}
    seen = []
    for i in range(1, len(values) + 1):
        tick = start + M * i
        result = evaluate(tick, metrics, stored, options)
        for minute in result.backfilled:
            stored[minute] = result.decision
        stored[tick] = result.decision
        seen.append((i, result.decision, result.transition, result.at))
    assert seen[2] == (3, DA, Transition.ABNORMALITY_STARTED, start + 3 * M)
    assert seen[4] == (5, DI, Transition.INCIDENT_STARTED, start + 3 * M)  # run began at 3
    assert seen[6] == (7, DR, Transition.INCIDENT_RECOVERING, start + 7 * M)
    assert seen[9] == (10, DR, None, start + 10 * M)  # minute 5 still in the window
    assert seen[10] == (11, DN, Transition.INCIDENT_RECOVERED, start + 7 * M)
    # the abnormal minutes became part of the incident, the recovering ones normal
    assert [stored[start + M * i] for i in range(1, 13)] == [
        DN, DN, DI, DI, DI, DI, DN, DN, DN, DN, DN, DN,
    ]  # fmt: skip


def test_evaluate_without_any_history_is_normal() -> None:
    result = evaluate(T, {}, {}, Options())
    assert (result.decision, result.transition, result.backfilled, result.at) == (DN, None, (), T)
