"""The store of custom dynamic-sampling rules (spec Part C). Functions take an open
connection, so the caller decides the transaction, and `now`, so time is a parameter.

A rule is identified by its condition and project set (`condition_hash`). Creating a
rule that is already active extends it instead; a new rule takes the smallest
organization-scoped id not held by an active, unexpired rule, up to `MAX_CUSTOM_RULES`;
and no project may have more than `MAX_CUSTOM_RULES_PER_PROJECT` rules in force.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from prometheus_client import Counter
from sqlalchemy import Connection, Engine, Row, and_, func, or_, select, update

from vigil.db.engine import serialize
from vigil.db.tables import custom_dynamic_sampling_rule as rule_table
from vigil.db.tables import custom_dynamic_sampling_rule_project as link_table
from vigil.db.tables import project as project_table
from vigil.db.timestamps import as_utc
from vigil.sampling.condition_hash import canonical, condition_hash

log = logging.getLogger(__name__)

MAX_CUSTOM_RULES = 2000  # the organization's rule-id space: ids 1..2000
MAX_CUSTOM_RULES_PER_PROJECT = 50  # rules in force for one project (org rules included)
EXTERNAL_RULE_ID_OFFSET = 3000  # the id Relay sees is rule_id + 3000
DATE_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
# deactivate_old_rules leaves rules this long past their end before deactivating them
OLD_RULE_GRACE = timedelta(minutes=1)
# how often `vigil serve` should call run_maintenance
MAINTENANCE_INTERVAL_S = 60.0

# PostgreSQL advisory-lock key space of rule writes: this prefix, then the organization id
_LOCK_PREFIX = 0x7364 << 48

PROJECT_RULES_OVERFLOW = Counter(
    "vigil_sampling_project_rules_overflow_total",
    "Times a project had more custom sampling rules in force than are sent to it",
)


class TooManyRules(Exception):
    """No new rule can be made: the organization's id space or a project's rule limit is
    exhausted. The message says which."""


class UnknownProjects(ValueError):
    """Project ids that are not projects of the rule's organization."""

    def __init__(self, project_ids: Sequence[int]) -> None:
        self.project_ids = tuple(project_ids)
        names = ", ".join(str(p) for p in project_ids)
        super().__init__(f"invalid project id: {names}")


@dataclass(frozen=True)
class Rule:
    id: int
    organization_id: int
    rule_id: int
    is_active: bool
    is_org_level: bool
    condition: Any
    condition_hash: str
    query: str | None
    sample_rate: float
    num_samples: int
    start_date: datetime
    end_date: datetime
    created_by_id: int | None
    notification_sent: bool
    date_added: datetime
    projects: tuple[int, ...]

    @property
    def external_rule_id(self) -> int:
        return self.rule_id + EXTERNAL_RULE_ID_OFFSET


def format_date(value: datetime) -> str:
    return as_utc(value).strftime(DATE_FORMAT)


def smallest_free_id(used: Iterable[int]) -> int:
    """The smallest positive integer not in `used`."""
    taken = set(used)
    candidate = 1
    while candidate in taken:
        candidate += 1
    return candidate


def lock_key(organization_id: int) -> int:
    return _LOCK_PREFIX | organization_id


# --- reading ---------------------------------------------------------------------------


def _in_force(now: datetime) -> Any:
    """Active rules with start_date <= now < end_date."""
    return and_(
        rule_table.c.is_active.is_(True),
        rule_table.c.start_date <= now,
        rule_table.c.end_date > now,
    )


def _rules(conn: Connection, rows: Sequence[Row[Any]]) -> list[Rule]:
    ids = [row.id for row in rows]
    projects: dict[int, list[int]] = {i: [] for i in ids}
    if ids:
        links = conn.execute(
            select(link_table.c.custom_dynamic_sampling_rule_id, link_table.c.project_id)
            .where(link_table.c.custom_dynamic_sampling_rule_id.in_(ids))
            .order_by(link_table.c.project_id)
        )
        for rule_pk, project_id in links:
            projects[rule_pk].append(project_id)
    return [
        Rule(
            id=row.id,
            organization_id=row.organization_id,
            rule_id=row.rule_id,
            is_active=row.is_active,
            is_org_level=row.is_org_level,
            condition=orjson.loads(row.condition),
            condition_hash=row.condition_hash,
            query=row.query,
            sample_rate=row.sample_rate,
            num_samples=row.num_samples,
            start_date=as_utc(row.start_date),
            end_date=as_utc(row.end_date),
            created_by_id=row.created_by_id,
            notification_sent=row.notification_sent,
            date_added=as_utc(row.date_added),
            projects=tuple(projects[row.id]),
        )
        for row in rows
    ]


def get_rule(conn: Connection, rule_pk: int) -> Rule | None:
    rows = conn.execute(select(rule_table).where(rule_table.c.id == rule_pk)).all()
    found = _rules(conn, rows)
    return found[0] if found else None


def get_rule_for_org(
    conn: Connection,
    condition: Any,
    organization_id: int,
    project_ids: Iterable[int],
    now: datetime,
) -> Rule | None:
    """The active, unexpired rule of the organization with this condition and exactly
    this project set (any order), or None."""
    now = as_utc(now)
    digest = condition_hash(condition, sorted(set(project_ids)))
    rows = conn.execute(
        select(rule_table)
        .where(
            rule_table.c.organization_id == organization_id,
            rule_table.c.condition_hash == digest,
            rule_table.c.is_active.is_(True),
            rule_table.c.end_date > now,
        )
        .order_by(rule_table.c.id)
        .limit(1)
    ).all()
    found = _rules(conn, rows)
    return found[0] if found else None


def find_covering_rule(
    conn: Connection,
    condition: Any,
    organization_id: int,
    project_ids: Iterable[int],
    now: datetime,
) -> Rule | None:
    """An active, unexpired rule of the organization with this condition that covers the
    projects: one with exactly this project set; else an organization-level rule (it
    covers every project); else, when projects are given, a project rule linked to all
    of them. None if there is none."""
    now = as_utc(now)
    wanted = sorted(set(project_ids))
    exact = get_rule_for_org(conn, condition, organization_id, wanted, now)
    if exact is not None:
        return exact
    rows = conn.execute(
        select(rule_table)
        .where(
            rule_table.c.organization_id == organization_id,
            rule_table.c.is_active.is_(True),
            rule_table.c.end_date > now,
        )
        .order_by(rule_table.c.id)
    ).all()
    key = canonical(condition)
    same = [r for r in _rules(conn, rows) if canonical(r.condition) == key]
    for rule in same:
        if rule.is_org_level:
            return rule
    if wanted:
        for rule in same:
            if set(wanted) <= set(rule.projects):
                return rule
    return None


def get_project_rules(conn: Connection, project_id: int, now: datetime) -> list[Rule]:
    """The rules Relay applies to a project: active with start_date < now < end_date,
    organization-level in the project's organization or linked to the project; at most
    `MAX_CUSTOM_RULES_PER_PROJECT`, oldest first (more is counted in a metric)."""
    now = as_utc(now)
    org_id = select(project_table.c.organization_id).where(project_table.c.id == project_id)
    linked = select(link_table.c.custom_dynamic_sampling_rule_id).where(
        link_table.c.project_id == project_id
    )
    rows = conn.execute(
        select(rule_table)
        .where(
            rule_table.c.is_active.is_(True),
            rule_table.c.start_date < now,
            rule_table.c.end_date > now,
            or_(
                and_(
                    rule_table.c.is_org_level.is_(True),
                    rule_table.c.organization_id == org_id.scalar_subquery(),
                ),
                rule_table.c.id.in_(linked),
            ),
        )
        .order_by(rule_table.c.id)
        .limit(MAX_CUSTOM_RULES_PER_PROJECT + 1)
    ).all()
    if len(rows) > MAX_CUSTOM_RULES_PER_PROJECT:
        PROJECT_RULES_OVERFLOW.inc()
        log.warning(
            "project has more custom sampling rules in force than are applied",
            extra={"project_id": project_id, "limit": MAX_CUSTOM_RULES_PER_PROJECT},
        )
        rows = rows[:MAX_CUSTOM_RULES_PER_PROJECT]
    return _rules(conn, rows)


def _active_counts(
    conn: Connection, organization_id: int, project_ids: Sequence[int], now: datetime
) -> dict[int, int]:
    """For each project: the organization's org-level rules plus the project's own rules
    that are active with start_date <= now < end_date."""
    now = as_utc(now)
    org_rules = conn.execute(
        select(func.count())
        .select_from(rule_table)
        .where(
            rule_table.c.organization_id == organization_id,
            rule_table.c.is_org_level.is_(True),
            _in_force(now),
        )
    ).scalar_one()
    counts = dict.fromkeys(project_ids, org_rules)
    if project_ids:
        linked = conn.execute(
            select(link_table.c.project_id, func.count())
            .select_from(
                link_table.join(
                    rule_table, rule_table.c.id == link_table.c.custom_dynamic_sampling_rule_id
                )
            )
            .where(link_table.c.project_id.in_(project_ids), _in_force(now))
            .group_by(link_table.c.project_id)
        )
        for project_id, count in linked:
            counts[project_id] += count
    return counts


def num_active_rules_for_project(conn: Connection, project_id: int, now: datetime) -> int:
    """Rules counted against the project's limit: the organization's org-level rules and
    the project's own, active with start_date <= now < end_date."""
    org_id = conn.execute(
        select(project_table.c.organization_id).where(project_table.c.id == project_id)
    ).scalar_one()
    return _active_counts(conn, org_id, [project_id], now)[project_id]


def _org_project_ids(conn: Connection, organization_id: int) -> list[int]:
    # vigil has no project status: every project of the organization is active
    return list(
        conn.execute(
            select(project_table.c.id).where(project_table.c.organization_id == organization_id)
        ).scalars()
    )


# --- writing ---------------------------------------------------------------------------


def update_or_create(
    conn: Connection,
    *,
    condition: Any,
    start: datetime,
    end: datetime,
    project_ids: Iterable[int],
    organization_id: int,
    num_samples: int,
    sample_rate: float,
    query: str | None,
    now: datetime,
    created_by_id: int | None = None,
) -> Rule:
    """Extend the active rule with this condition and project set, or create one, and
    return it.

    Call it in a write transaction, before anything else in it reads this
    organization's rules: it first serialises the transaction with every other one
    writing rules of the organization, so concurrent calls behave as if one at a time
    (two calls with the same identity end with one rule; new rules never share an id).

    - An active rule with the same identity and end_date > now is extended: end_date,
      num_samples and sample_rate become the larger of old and new; start_date, query
      and projects stay.
    - Otherwise, TooManyRules if any target project (every project of the organization
      for an organization-level rule) already has `MAX_CUSTOM_RULES_PER_PROJECT` rules in
      force, or if the smallest free id is over `MAX_CUSTOM_RULES`; nothing is written.
    - UnknownProjects if a project id is not a project of the organization.
    """
    serialize(conn, lock_key(organization_id))
    now = as_utc(now)
    projects = sorted(set(project_ids))
    digest = condition_hash(condition, projects)

    existing = get_rule_for_org(conn, condition, organization_id, projects, now)
    if existing is not None:
        new_end = max(existing.end_date, as_utc(end))
        new_samples = max(existing.num_samples, num_samples)
        new_rate = max(existing.sample_rate, sample_rate)
        conn.execute(
            update(rule_table)
            .where(rule_table.c.id == existing.id)
            .values(end_date=new_end, num_samples=new_samples, sample_rate=new_rate)
        )
        extended = get_rule(conn, existing.id)
        assert extended is not None
        return extended

    org_projects = _org_project_ids(conn, organization_id)
    unknown = [p for p in projects if p not in set(org_projects)]
    if unknown:
        raise UnknownProjects(unknown)

    targets = projects or org_projects
    counts = _active_counts(conn, organization_id, targets, now)
    full = sorted(p for p, count in counts.items() if count >= MAX_CUSTOM_RULES_PER_PROJECT)
    if full:
        raise TooManyRules(
            f"project {full[0]} already has {MAX_CUSTOM_RULES_PER_PROJECT} custom sampling "
            "rules in force; wait until some expire"
        )

    used = conn.execute(
        select(rule_table.c.rule_id).where(
            rule_table.c.organization_id == organization_id,
            rule_table.c.is_active.is_(True),
            rule_table.c.end_date > now,
        )
    ).scalars()
    rule_id = smallest_free_id(used)
    if rule_id > MAX_CUSTOM_RULES:
        raise TooManyRules(
            f"the organization already has {MAX_CUSTOM_RULES} active custom sampling rules; "
            "wait until some expire"
        )

    rule_pk = conn.execute(
        rule_table.insert()
        .values(
            organization_id=organization_id,
            rule_id=rule_id,
            is_active=True,
            is_org_level=not projects,
            condition=orjson.dumps(condition).decode(),
            condition_hash=digest,
            query=query,
            sample_rate=sample_rate,
            num_samples=num_samples,
            start_date=as_utc(start),
            end_date=as_utc(end),
            created_by_id=created_by_id,
            notification_sent=False,
            date_added=as_utc(now),
        )
        .returning(rule_table.c.id)
    ).scalar_one()
    if projects:
        conn.execute(
            link_table.insert(),
            [{"custom_dynamic_sampling_rule_id": rule_pk, "project_id": p} for p in projects],
        )
    created = get_rule(conn, rule_pk)
    assert created is not None
    return created


def deactivate_old_rules(conn: Connection, now: datetime) -> int:
    """Deactivate rules that ended more than `OLD_RULE_GRACE` ago. Returns how many."""
    now = as_utc(now)
    result = conn.execute(
        update(rule_table)
        .where(rule_table.c.is_active.is_(True), rule_table.c.end_date < now - OLD_RULE_GRACE)
        .values(is_active=False)
    )
    return result.rowcount


def deactivate_expired_rules(conn: Connection, now: datetime) -> int:
    """Deactivate active rules whose end_date has passed. Returns how many."""
    now = as_utc(now)
    result = conn.execute(
        update(rule_table)
        .where(rule_table.c.is_active.is_(True), rule_table.c.end_date < now)
        .values(is_active=False)
    )
    return result.rowcount


def run_maintenance(engine: Engine, now: datetime) -> int:
    """The periodic job of `vigil serve` (every `MAINTENANCE_INTERVAL_S`): deactivate the
    rules that have expired, in one short transaction. Returns how many. Harmless to run
    from several processes at once, or late: it only ever turns expired rules off."""
    with engine.begin() as conn:
        count = deactivate_old_rules(conn, now) + deactivate_expired_rules(conn, now)
    if count:
        log.info("deactivated expired custom sampling rules", extra={"count": count})
    return count
