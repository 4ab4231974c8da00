"""`vigil periodic`: the timer-driven jobs, run as the real command."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from tests.conftest import run_vigil
from tests.support.tenants import make_tenant
from vigil.config import Settings
from vigil.sampling import rules


def test_periodic_once_deactivates_expired_sampling_rules(stack: Settings, engine: Engine) -> None:
    tenant = make_tenant(engine, "acme")
    now = datetime.now(UTC)
    with engine.begin() as conn:
        common = dict(
            organization_id=tenant.org.id,
            num_samples=100,
            sample_rate=1.0,
            query=None,
        )
        expired = rules.update_or_create(
            conn,
            condition={"op": "eq", "name": "event.release", "value": "1.0"},
            start=now - timedelta(hours=3),
            end=now - timedelta(hours=2),
            project_ids=[tenant.project.id],
            now=now - timedelta(hours=3),
            **common,
        )
        current = rules.update_or_create(
            conn,
            condition={"op": "eq", "name": "event.release", "value": "2.0"},
            start=now - timedelta(minutes=5),
            end=now + timedelta(hours=1),
            project_ids=[tenant.project.id],
            now=now - timedelta(minutes=5),
            **common,
        )
    result = run_vigil(stack, "periodic", "--once")
    assert result.returncode == 0, result.stderr
    with engine.connect() as conn:
        after_expired = rules.get_rule(conn, expired.id)
        after_current = rules.get_rule(conn, current.id)
    assert after_expired is not None and not after_expired.is_active
    assert after_current is not None and after_current.is_active
