"""The custom sampling rule store (spec Part C) on both databases: identity, extension,
id assignment and reuse, the organization and per-project limits, lookups and
deactivation. Time is a parameter: every call gets `now`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select

from tests.support.sampling_rules import count_rows, insert_rules
from vigil.db.tables import custom_dynamic_sampling_rule as rule_table
from vigil.sampling import rules
from vigil.sampling.rules import Rule, TooManyRules, UnknownProjects
from vigil.tenancy import store

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
COND: dict[str, Any] = {
    "op": "and",
    "inner": [
        {"op": "eq", "name": "event.transaction", "value": "/api"},
        {"op": "glob", "name": "event.release", "value": ["1.*", "2.*"]},
    ],
}
COND_REORDERED: dict[str, Any] = {
    "inner": [
        {"value": ["2.*", "1.*"], "op": "glob", "name": "event.release"},
        {"name": "event.transaction", "op": "eq", "value": "/api"},
    ],
    "op": "and",
}


class Org:
    def __init__(self, engine: Engine, slug: str, projects: int = 3) -> None:
        with engine.begin() as conn:
            self.org = store.create_organization(conn, slug)
            self.projects = [
                store.create_project(conn, self.org, f"p{i}").id for i in range(projects)
            ]
        self.id = self.org.id


@pytest.fixture
def org(engine: Engine) -> Org:
    return Org(engine, "acme")


def upsert(
    engine: Engine,
    org: Org,
    projects: list[int],
    condition: Any = COND,
    *,
    start: datetime = NOW,
    end: datetime = NOW + HOUR,
    samples: int = 100,
    rate: float = 0.5,
    query: str = "transaction:/api",
    now: datetime = NOW,
) -> Rule:
    with engine.begin() as conn:
        return rules.update_or_create(
            conn,
            condition=condition,
            start=start,
            end=end,
            project_ids=projects,
            organization_id=org.id,
            num_samples=samples,
            sample_rate=rate,
            query=query,
            now=now,
            created_by_id=7,
        )


def condition(n: int) -> dict[str, Any]:
    return {"op": "eq", "name": "event.transaction", "value": f"/t{n}"}


# --- create ----------------------------------------------------------------------------


def test_a_new_project_rule_gets_id_1_and_its_projects(engine: Engine, org: Org) -> None:
    p0, p1, _ = org.projects
    rule = upsert(engine, org, [p1, p0, p1])
    assert rule.rule_id == 1
    assert rule.external_rule_id == 3001
    assert rule.organization_id == org.id
    assert rule.projects == (p0, p1)
    assert rule.is_active and not rule.is_org_level and not rule.notification_sent
    assert rule.condition == COND
    assert (rule.start_date, rule.end_date, rule.date_added) == (NOW, NOW + HOUR, NOW)
    assert (rule.num_samples, rule.sample_rate) == (100, 0.5)
    assert (rule.query, rule.created_by_id) == ("transaction:/api", 7)
    assert len(rule.condition_hash) == 40
    assert count_rows(engine) == (1, 2)


def test_no_projects_make_an_organization_level_rule(engine: Engine, org: Org) -> None:
    rule = upsert(engine, org, [])
    assert rule.is_org_level and rule.projects == ()
    assert count_rows(engine) == (1, 0)


def test_unknown_project_or_another_orgs_project_is_refused(engine: Engine, org: Org) -> None:
    other = Org(engine, "other", projects=1)
    for bad in ([other.projects[0]], [org.projects[0], 999_999]):
        with pytest.raises(UnknownProjects) as caught:
            upsert(engine, org, bad)
        assert caught.value.project_ids == tuple(p for p in bad if p not in org.projects)
    assert count_rows(engine) == (0, 0)


# --- identity and extension ------------------------------------------------------------


def test_same_condition_and_projects_in_any_order_extend_one_rule(engine: Engine, org: Org) -> None:
    p0, p1, _ = org.projects
    first = upsert(engine, org, [p0, p1], samples=100, rate=0.5, end=NOW + HOUR)
    later = NOW + timedelta(minutes=10)
    second = upsert(
        engine,
        org,
        [p1, p0],
        COND_REORDERED,
        start=later,
        end=later + 3 * HOUR,
        samples=500,
        rate=0.9,
        query="something else",
        now=later,
    )
    assert second.id == first.id and second.rule_id == 1
    assert (second.end_date, second.num_samples, second.sample_rate) == (
        later + 3 * HOUR,
        500,
        0.9,
    )
    # start, query, projects and condition stay as first created
    assert (second.start_date, second.query, second.projects) == (NOW, "transaction:/api", (p0, p1))
    assert second.condition == COND
    assert count_rows(engine) == (1, 2)


@pytest.mark.parametrize("field", ["end", "samples", "rate"])
def test_extension_keeps_the_larger_of_each_value(engine: Engine, org: Org, field: str) -> None:
    upsert(engine, org, [], end=NOW + 5 * HOUR, samples=500, rate=0.9)
    smaller: dict[str, Any] = {"end": NOW + HOUR, "samples": 10, "rate": 0.1}
    larger: dict[str, Any] = {"end": NOW + 9 * HOUR, "samples": 900, "rate": 1.0}
    values = {**smaller, field: larger[field]}
    rule = upsert(engine, org, [], **values)
    expected = {"end": NOW + 5 * HOUR, "samples": 500, "rate": 0.9, field: larger[field]}
    assert (rule.end_date, rule.num_samples, rule.sample_rate) == (
        expected["end"],
        expected["samples"],
        expected["rate"],
    )
    assert count_rows(engine)[0] == 1


@pytest.mark.parametrize(
    ("first", "second"),
    [([], [0]), ([0], [1]), ([0], [0, 1]), ([0, 1], [0, 2])],
)
def test_other_project_sets_are_other_rules(
    engine: Engine, org: Org, first: list[int], second: list[int]
) -> None:
    a = upsert(engine, org, [org.projects[i] for i in first])
    b = upsert(engine, org, [org.projects[i] for i in second])
    assert a.id != b.id
    assert (a.rule_id, b.rule_id) == (1, 2)


def test_other_condition_is_another_rule(engine: Engine, org: Org) -> None:
    assert upsert(engine, org, [], condition(1)).rule_id == 1
    assert upsert(engine, org, [], condition(2)).rule_id == 2


def test_expired_or_inactive_rule_is_not_extended_and_its_id_is_reused(
    engine: Engine, org: Org
) -> None:
    old = upsert(engine, org, [], end=NOW + HOUR)
    after_end = NOW + HOUR  # end_date > now no longer holds
    renewed = upsert(engine, org, [], start=after_end, end=after_end + HOUR, now=after_end)
    assert renewed.id != old.id
    assert renewed.rule_id == old.rule_id == 1

    with engine.begin() as conn:
        rules.deactivate_expired_rules(conn, after_end + 2 * HOUR)
    later = after_end + 2 * HOUR
    again = upsert(engine, org, [], start=later, end=later + HOUR, now=later)
    # renewed was deactivated: a new rule again, with the smallest free id
    assert again.id not in (old.id, renewed.id)
    assert again.rule_id == 1


# --- ids -------------------------------------------------------------------------------


def test_new_rules_take_the_smallest_free_id(engine: Engine, org: Org) -> None:
    insert_rules(engine, org.id, [1, 2, 3, 5], start=NOW - HOUR, end=NOW + HOUR)
    assert upsert(engine, org, [], condition(1)).rule_id == 4
    assert upsert(engine, org, [], condition(2)).rule_id == 6


def test_ids_of_inactive_and_expired_rules_are_reused(engine: Engine, org: Org) -> None:
    insert_rules(engine, org.id, [1, 4], start=NOW - HOUR, end=NOW + HOUR)
    insert_rules(engine, org.id, [2], start=NOW - HOUR, end=NOW + HOUR, active=False)
    insert_rules(engine, org.id, [3], start=NOW - 2 * HOUR, end=NOW)  # expired, still active
    assert [upsert(engine, org, [], condition(n)).rule_id for n in range(3)] == [2, 3, 5]


def test_ids_are_per_organization(engine: Engine, org: Org) -> None:
    other = Org(engine, "other", projects=1)
    insert_rules(engine, org.id, [1, 2], start=NOW - HOUR, end=NOW + HOUR)
    assert upsert(engine, other, [], condition(1)).rule_id == 1
    assert upsert(engine, org, [], condition(1)).rule_id == 3


def test_rule_2000_is_made_and_2001_is_too_many(engine: Engine, org: Org) -> None:
    # rules that have not started yet hold ids but count against no project
    insert_rules(
        engine, org.id, range(1, rules.MAX_CUSTOM_RULES), start=NOW + HOUR, end=NOW + 2 * HOUR
    )
    last = upsert(engine, org, [org.projects[0]], condition(1))
    assert last.rule_id == rules.MAX_CUSTOM_RULES
    assert last.external_rule_id == 5000
    before = count_rows(engine)
    assert before == (rules.MAX_CUSTOM_RULES, 1)

    with pytest.raises(TooManyRules, match="2000 active custom sampling rules"):
        upsert(engine, org, [org.projects[0]], condition(2))
    with pytest.raises(TooManyRules):
        upsert(engine, org, [], condition(3))
    assert count_rows(engine) == before

    # extending an existing rule needs no new id
    assert upsert(engine, org, [org.projects[0]], condition(1), samples=200).num_samples == 200
    # once one expires, its id is free again
    with engine.begin() as conn:
        conn.execute(rule_table.update().where(rule_table.c.rule_id == 7).values(end_date=NOW))
    assert upsert(engine, org, [], condition(4)).rule_id == 7


# --- per-project limit -----------------------------------------------------------------


def test_49_rules_in_force_allow_a_50th_and_50_refuse_a_51st(engine: Engine, org: Org) -> None:
    p0, p1, _ = org.projects
    insert_rules(engine, org.id, range(1, 49), start=NOW - HOUR, end=NOW + HOUR, projects=[p0])
    assert upsert(engine, org, [p0], condition(49)).rule_id == 49
    with engine.connect() as conn:
        assert rules.num_active_rules_for_project(conn, p0, NOW) == 49
    assert upsert(engine, org, [p0], condition(50)).rule_id == 50
    with engine.connect() as conn:
        assert rules.num_active_rules_for_project(conn, p0, NOW) == 50
    before = count_rows(engine)
    with pytest.raises(TooManyRules, match=f"project {p0} already has 50"):
        upsert(engine, org, [p0], condition(51))
    # a rule that includes the full project is refused too; other projects are not full
    with pytest.raises(TooManyRules):
        upsert(engine, org, [p1, p0], condition(52))
    assert count_rows(engine) == before
    assert upsert(engine, org, [p1], condition(53)).rule_id == 51


def test_organization_rules_count_for_every_project(engine: Engine, org: Org) -> None:
    p0, p1, p2 = org.projects
    insert_rules(engine, org.id, range(1, 40), start=NOW - HOUR, end=NOW + HOUR, projects=[p1])
    insert_rules(engine, org.id, range(40, 50), start=NOW - HOUR, end=NOW + HOUR)  # org level
    with engine.connect() as conn:
        counts = [rules.num_active_rules_for_project(conn, p, NOW) for p in org.projects]
    assert counts == [10, 49, 10]
    # one more org rule is fine (p1 reaches 50) ...
    assert upsert(engine, org, [], condition(1)).rule_id == 50
    # ... then p1 is full: no org rule, no rule on p1; p0 and p2 still take rules
    with pytest.raises(TooManyRules, match=f"project {p1} already has 50"):
        upsert(engine, org, [], condition(2))
    with pytest.raises(TooManyRules):
        upsert(engine, org, [p1], condition(3))
    assert upsert(engine, org, [p0, p2], condition(4)).rule_id == 51


def test_only_rules_in_force_count_against_a_project(engine: Engine, org: Org) -> None:
    p0 = org.projects[0]
    insert_rules(engine, org.id, range(1, 50), start=NOW - HOUR, end=NOW + HOUR, projects=[p0])
    insert_rules(engine, org.id, range(50, 60), start=NOW + HOUR, end=NOW + 2 * HOUR, projects=[p0])
    insert_rules(
        engine, org.id, range(60, 70), start=NOW - 2 * HOUR, end=NOW - HOUR / 2, projects=[p0]
    )
    insert_rules(
        engine, org.id, range(70, 80), start=NOW - HOUR, end=NOW + HOUR, projects=[p0], active=False
    )
    insert_rules(engine, org.id, [80], start=NOW, end=NOW + HOUR, projects=[p0])  # starts now
    with engine.connect() as conn:
        assert rules.num_active_rules_for_project(conn, p0, NOW) == 50
    with pytest.raises(TooManyRules):
        upsert(engine, org, [p0], condition(1))
    # a minute before, the rule starting now was not in force yet (and the ids of the
    # expired and the inactive rules are free)
    earlier = NOW - timedelta(minutes=1)
    assert upsert(engine, org, [p0], condition(1), start=earlier, now=earlier).rule_id == 60


def test_an_organization_without_projects_takes_org_rules_up_to_the_id_limit(
    engine: Engine,
) -> None:
    empty = Org(engine, "empty", projects=0)
    insert_rules(engine, empty.id, range(1, 100), start=NOW - HOUR, end=NOW + HOUR)
    assert upsert(engine, empty, [], condition(1)).rule_id == 100


# --- lookups ---------------------------------------------------------------------------


def test_get_rule_for_org(engine: Engine, org: Org) -> None:
    p0, p1, _ = org.projects
    rule = upsert(engine, org, [p0, p1])
    other = Org(engine, "other", projects=1)
    with engine.connect() as conn:
        found = rules.get_rule_for_org(conn, COND_REORDERED, org.id, [p1, p0], NOW)
        assert found is not None and found.id == rule.id
        assert rules.get_rule_for_org(conn, COND, org.id, [p0], NOW) is None
        assert rules.get_rule_for_org(conn, COND, org.id, [], NOW) is None
        assert rules.get_rule_for_org(conn, condition(1), org.id, [p0, p1], NOW) is None
        assert rules.get_rule_for_org(conn, COND, other.id, [p0, p1], NOW) is None
        # expired at its end date
        assert rules.get_rule_for_org(conn, COND, org.id, [p0, p1], NOW + HOUR) is None
    with engine.begin() as conn:
        conn.execute(rule_table.update().values(is_active=False))
    with engine.connect() as conn:
        assert rules.get_rule_for_org(conn, COND, org.id, [p0, p1], NOW) is None


def test_find_covering_rule(engine: Engine, org: Org) -> None:
    p0, p1, p2 = org.projects
    project_rule = upsert(engine, org, [p0, p1])
    with engine.connect() as conn:
        for wanted in ([p0, p1], [p0], [p1]):
            found = rules.find_covering_rule(conn, COND_REORDERED, org.id, wanted, NOW)
            assert found is not None and found.id == project_rule.id, wanted
        assert rules.find_covering_rule(conn, COND, org.id, [p0, p2], NOW) is None
        assert rules.find_covering_rule(conn, COND, org.id, [], NOW) is None
    org_rule = upsert(engine, org, [])
    with engine.connect() as conn:
        found = rules.find_covering_rule(conn, COND, org.id, [p0, p2], NOW)
        assert found is not None and found.id == org_rule.id
        exact = rules.find_covering_rule(conn, COND, org.id, [p1, p0], NOW)
        assert exact is not None and exact.id == project_rule.id
        assert rules.find_covering_rule(conn, condition(1), org.id, [p0], NOW) is None


def test_get_project_rules(engine: Engine, org: Org) -> None:
    p0, p1, _ = org.projects
    other = Org(engine, "other", projects=1)
    org_rule = upsert(engine, org, [], condition(1))
    own = upsert(engine, org, [p0, p1], condition(2))
    upsert(engine, org, [p1], condition(3))  # another project's
    upsert(engine, other, [], condition(4))  # another organization's
    soon = NOW + timedelta(minutes=30)
    pending = upsert(engine, org, [p0], condition(5), start=soon, end=soon + HOUR)
    with engine.connect() as conn:
        later = NOW + timedelta(seconds=1)
        assert [r.id for r in rules.get_project_rules(conn, p0, later)] == [org_rule.id, own.id]
        # start_date < now < end_date: a rule starting exactly now is not applied yet
        assert rules.get_project_rules(conn, p0, NOW) == []
        at_soon = [r.id for r in rules.get_project_rules(conn, p0, soon + timedelta(seconds=1))]
        assert at_soon == [org_rule.id, own.id, pending.id]
        assert [r.id for r in rules.get_project_rules(conn, p0, NOW + HOUR)] == [pending.id]


def test_get_project_rules_returns_at_most_50(engine: Engine, org: Org) -> None:
    p0 = org.projects[0]
    pks = insert_rules(engine, org.id, range(1, 61), start=NOW - HOUR, end=NOW + HOUR)
    before = rules.PROJECT_RULES_OVERFLOW._value.get()
    with engine.connect() as conn:
        found = rules.get_project_rules(conn, p0, NOW)
    assert [r.id for r in found] == pks[:50]
    assert rules.PROJECT_RULES_OVERFLOW._value.get() == before + 1


# --- deactivation ----------------------------------------------------------------------


def _active(engine: Engine) -> dict[int, bool]:
    with engine.connect() as conn:
        rows = conn.execute(select(rule_table.c.rule_id, rule_table.c.is_active))
        return {rule_id: active for rule_id, active in rows}


def test_deactivate_old_rules_leaves_a_minute_of_grace(engine: Engine, org: Org) -> None:
    minute = timedelta(minutes=1)
    insert_rules(engine, org.id, [1], start=NOW - HOUR, end=NOW - minute - timedelta(seconds=1))
    insert_rules(engine, org.id, [2], start=NOW - HOUR, end=NOW - minute)
    insert_rules(engine, org.id, [3], start=NOW - HOUR, end=NOW - timedelta(seconds=30))
    insert_rules(engine, org.id, [4], start=NOW - HOUR, end=NOW + HOUR)
    with engine.begin() as conn:
        assert rules.deactivate_old_rules(conn, NOW) == 1
    assert _active(engine) == {1: False, 2: True, 3: True, 4: True}


def test_deactivate_expired_rules(engine: Engine, org: Org) -> None:
    insert_rules(engine, org.id, [1], start=NOW - HOUR, end=NOW - timedelta(microseconds=1))
    insert_rules(engine, org.id, [2], start=NOW - HOUR, end=NOW)
    insert_rules(engine, org.id, [3], start=NOW - HOUR, end=NOW + HOUR)
    insert_rules(engine, org.id, [4], start=NOW - HOUR, end=NOW - HOUR, active=False)
    with engine.begin() as conn:
        assert rules.deactivate_expired_rules(conn, NOW) == 1
        assert rules.deactivate_expired_rules(conn, NOW) == 0
    assert _active(engine) == {1: False, 2: True, 3: True, 4: False}


def test_run_maintenance_deactivates_what_has_expired(engine: Engine, org: Org) -> None:
    insert_rules(engine, org.id, [1, 2], start=NOW - HOUR, end=NOW - timedelta(minutes=5))
    insert_rules(engine, org.id, [3], start=NOW - HOUR, end=NOW - timedelta(seconds=5))
    insert_rules(engine, org.id, [4], start=NOW - HOUR, end=NOW + HOUR)
    assert rules.run_maintenance(engine, NOW) == 3
    assert rules.run_maintenance(engine, NOW) == 0
    assert _active(engine) == {1: False, 2: False, 3: False, 4: True}


def test_now_in_another_time_zone_means_the_same_instant(engine: Engine, org: Org) -> None:
    from zoneinfo import ZoneInfo

    rule = upsert(engine, org, [])
    elsewhere = NOW.astimezone(ZoneInfo("Asia/Kolkata"))
    with engine.connect() as conn:
        found = rules.get_rule_for_org(conn, COND, org.id, [], elsewhere + HOUR / 2)
    assert found is not None and found.id == rule.id
    assert found.start_date == NOW and found.start_date.tzinfo is UTC
