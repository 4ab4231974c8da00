"""The project-level check-in quota (B11) with a clock of the test's own: the limit
formula, the window, the header, counting without refusing, and a failing lookup."""

from __future__ import annotations

import pytest

from vigil.ingest.monitor_quota import MonitorQuota, Verdict, project_limit, rate_limits_value


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("environments", "limit"), [(0, 50), (1, 56), (2, 62), (100, 650), (-1, 50)]
)
def test_project_limit(environments: int, limit: int) -> None:
    assert project_limit(environments) == limit


def test_rate_limits_value_scopes_the_monitor_category_to_the_project() -> None:
    assert rate_limits_value(42) == "42:monitor:project"


def quota(clock: Clock, environments: dict[int, int] | None = None) -> MonitorQuota:
    envs = environments or {}
    return MonitorQuota(lambda project_id: envs.get(project_id, 0), clock=clock)


class Environments:
    """The environments lookup: each project's count (0 unless set), and the projects
    looked up, in order."""

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.lookups: list[int] = []

    def __call__(self, project_id: int) -> int:
        self.lookups.append(project_id)
        return self.counts.get(project_id, 0)


def test_the_limit_admits_exactly_its_count_per_window() -> None:
    clock = Clock()
    limiter = quota(clock, {1: 2})
    assert [limiter.admit(1, 1) for _ in range(62)] == [None] * 62
    clock.now += 20.5
    assert limiter.admit(1, 1) == 40  # seconds left in the window, rounded up
    clock.now += 39.4
    assert limiter.admit(1, 1) == 1
    clock.now += 0.1  # the window is over: a new one starts
    assert limiter.admit(1, 1) is None


def test_a_batch_is_admitted_or_refused_whole_and_refusals_are_not_counted() -> None:
    clock = Clock()
    limiter = quota(clock)
    assert limiter.admit(1, 48) is None
    assert limiter.admit(1, 3) == 60
    assert limiter.admit(1, 3) == 60
    assert limiter.admit(1, 2) is None
    assert limiter.admit(1, 1) == 60


def test_admit_if_known_counts_as_admit_only_while_the_limit_is_remembered() -> None:
    clock = Clock()
    environments = Environments()
    limiter = MonitorQuota(environments, clock=clock, window_s=1000, environments_ttl_s=60)
    assert limiter.admit_if_known(1, 1) is None  # unknown limit: nothing counted
    assert limiter.admit(1, 48) is None
    assert limiter.admit_if_known(1, 2) == Verdict(None)
    assert limiter.admit_if_known(1, 1) == Verdict(1000)  # 50 counted: refused
    clock.now += 60  # the limit is due for a lookup again: only `admit` does it
    assert limiter.admit_if_known(1, 1) is None
    assert limiter.admit(1, 1) == 940
    assert environments.lookups == [1, 1]


def test_a_refusal_counts_the_environments_again_at_most_once_a_second() -> None:
    # A consumer creates environments in another process: the check-ins a new one
    # allows must not be refused on a count from before it (an SDK refused backs off).
    clock = Clock()
    environments = Environments()
    limiter = MonitorQuota(environments, clock=clock, window_s=60, environments_ttl_s=60)
    assert limiter.admit(1, 50) is None
    environments.counts[1] = 1  # created meanwhile
    assert limiter.admit(1, 1) == 60  # counted just now: refused on that count
    assert environments.lookups == [1]
    clock.now += 1
    assert limiter.admit_if_known(1, 1) is None  # a refusal on an old count: `admit` decides
    assert limiter.admit(1, 6) is None  # counted again: 56 now
    assert environments.lookups == [1, 1]
    assert limiter.admit_if_known(1, 1) == Verdict(59)  # fresh: refused on the loop
    assert limiter.admit(1, 1) == 59
    assert environments.lookups == [1, 1]


def test_an_expired_limit_is_counted_again_by_one_caller_the_others_judged_meanwhile() -> None:
    clock = Clock()
    environments = Environments()
    limiter = MonitorQuota(environments, clock=clock, window_s=1000, environments_ttl_s=60)
    assert limiter.admit(1, 10) is None
    clock.now += 60
    assert limiter.admit_if_known(1, 1) is None  # expired: this caller is to count again
    # Meanwhile the others are judged on the expired limit, without a lookup each...
    assert limiter.admit_if_known(1, 39) == Verdict(None)
    # ...except a refusal, which is never decided on an old count.
    assert limiter.admit_if_known(1, 2) is None
    assert limiter.admit(1, 1) is None  # the counting caller's own
    assert limiter.admit_if_known(1, 1) == Verdict(940)
    assert environments.lookups == [1, 1]


def test_projects_have_their_own_windows() -> None:
    clock = Clock()
    limiter = quota(clock)
    assert limiter.admit(1, 50) is None
    assert limiter.admit(1, 1) is not None
    assert limiter.admit(2, 50) is None


def test_recorded_check_ins_count_but_are_never_refused() -> None:
    clock = Clock()
    limiter = quota(clock)
    for _ in range(60):
        limiter.record(1, 1)
    assert limiter.admit(1, 1) == 60


def test_environments_are_looked_up_again_after_their_ttl() -> None:
    clock = Clock()
    environments = Environments()
    limiter = MonitorQuota(environments, clock=clock, window_s=1000, environments_ttl_s=60)
    assert limiter.admit(1, 50) is None
    environments.counts[1] = 1  # a consumer created a monitor environment
    assert limiter.admit(1, 1) is not None  # still the remembered limit
    clock.now += 60
    assert limiter.admit(1, 6) is None
    assert environments.lookups == [1, 1]


def test_a_failing_lookup_admits() -> None:
    def broken(_project_id: int) -> int:
        raise RuntimeError("database is down")

    limiter = MonitorQuota(broken, clock=Clock())
    assert [limiter.admit(1, 10) for _ in range(10)] == [None] * 10


def test_the_number_of_projects_remembered_is_bounded() -> None:
    clock = Clock()
    limiter = MonitorQuota(lambda _p: 0, clock=clock, max_projects=2)
    assert limiter.admit(1, 50) is None
    assert limiter.admit(2, 1) is None
    assert limiter.admit(3, 1) is None  # project 1 is forgotten: a fresh window
    assert limiter.admit(1, 1) is None


def test_refunded_check_ins_no_longer_count() -> None:
    clock = Clock()
    limiter = quota(clock)
    assert limiter.admit(1, 50) is None
    limiter.refund(1, 2)
    assert limiter.admit(1, 2) is None
    assert limiter.admit(1, 1) == 60
    limiter.refund(2, 5)  # a project without a window: nothing to refund
    assert limiter.admit(2, 50) is None
