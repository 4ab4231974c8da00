"""Setup helpers for custom sampling rule tests: rows inserted in bulk, where a test is
not about creating them one by one."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import Engine, func, select

from vigil.db.tables import custom_dynamic_sampling_rule as rule_table
from vigil.db.tables import custom_dynamic_sampling_rule_project as link_table


def insert_rules(
    engine: Engine,
    organization_id: int,
    rule_ids: Iterable[int],
    *,
    start: datetime,
    end: datetime,
    active: bool = True,
    projects: Sequence[int] = (),
) -> list[int]:
    """Insert one rule per id (each with a condition of its own), organization-level
    unless `projects` are given (then linked to all of them). Returns their row ids."""
    rows = [
        {
            "organization_id": organization_id,
            "rule_id": rule_id,
            "is_active": active,
            "is_org_level": not projects,
            "condition": f'{{"op":"eq","name":"event.tags.bulk","value":"{rule_id}"}}',
            "condition_hash": hashlib.sha1(f"bulk-{rule_id}-{start}".encode()).hexdigest(),
            "query": f"bulk:{rule_id}",
            "sample_rate": 1.0,
            "num_samples": 100,
            "start_date": start,
            "end_date": end,
            "notification_sent": False,
            "date_added": start,
        }
        for rule_id in rule_ids
    ]
    if not rows:
        return []
    with engine.begin() as conn:
        pks = list(conn.execute(rule_table.insert().returning(rule_table.c.id), rows).scalars())
        if projects:
            conn.execute(
                link_table.insert(),
                [
                    {"custom_dynamic_sampling_rule_id": pk, "project_id": p}
                    for pk in pks
                    for p in projects
                ],
            )
    return pks


def count_rows(engine: Engine) -> tuple[int, int]:
    """(rules, project links) in the database."""
    with engine.connect() as conn:
        rules = conn.execute(select(func.count()).select_from(rule_table)).scalar_one()
        links = conn.execute(select(func.count()).select_from(link_table)).scalar_one()
    return rules, links
