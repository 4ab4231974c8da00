"""The crons' state on `/metrics`, read from the database at each scrape, so that a
Prometheus + Alertmanager already running can page someone when a job stops running:

- `vigil_monitor_environments{organization, project, status}`: how many monitor
  environments are `ok`, `error`, `active` (no outcome yet), `muted` (whatever their
  status) or `disabled` (the monitor is);
- `vigil_monitor_environment_failing{organization, project, monitor, environment}`: 1
  for each monitor environment whose latest outcome is a failure (an error, a missed or
  timed-out run), unless muted or disabled; at most MAX_FAILING_SERIES of them (the
  count above has them all), so an alert rule can name the job:
  `vigil_monitor_environment_failing == 1`.

A scrape whose query fails leaves these out (and logs why), never failing the scrape.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Final

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine, and_, func, not_, or_, select
from sqlalchemy.exc import SQLAlchemyError

from vigil.db.tables import environment as environment_table
from vigil.db.tables import monitor as monitor_table
from vigil.db.tables import monitor_environment as monitor_environment_table
from vigil.db.tables import organization as organization_table
from vigil.db.tables import project as project_table
from vigil.monitors.enums import MonitorStatus, ObjectStatus

log = logging.getLogger(__name__)

COUNT_NAME: Final = "vigil_monitor_environments"
COUNT_HELP: Final = (
    "Monitor environments by organization, project and status "
    "(ok, error, active: no outcome yet, muted, disabled)"
)
FAILING_NAME: Final = "vigil_monitor_environment_failing"
FAILING_HELP: Final = (
    "1 for each monitor environment whose latest outcome is a failure "
    "(error, missed or timed out), unless muted or disabled"
)
COUNT_LABELS: Final = ["organization", "project", "status"]
FAILING_LABELS: Final = ["organization", "project", "monitor", "environment"]
# Failing series beyond this many are left out (the count has them all): an outage of
# everything must not make each scrape huge.
MAX_FAILING_SERIES: Final = 1000
_SHOWN: Final = (ObjectStatus.ACTIVE, ObjectStatus.DISABLED)


def state_label(monitor_status: int, env_status: int, muted: bool) -> str:
    """What an environment counts as: disabled and muted first, then its own status."""
    if monitor_status == ObjectStatus.DISABLED or env_status == MonitorStatus.DISABLED:
        return "disabled"
    if muted:
        return "muted"
    return MonitorStatus(env_status).label


class MonitorStateCollector(Collector):
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def describe(self) -> list[GaugeMetricFamily]:
        # Naming the metrics here keeps registration from calling `collect` (and the DB).
        return [
            GaugeMetricFamily(COUNT_NAME, COUNT_HELP, labels=COUNT_LABELS),
            GaugeMetricFamily(FAILING_NAME, FAILING_HELP, labels=FAILING_LABELS),
        ]

    def collect(self) -> Iterator[GaugeMetricFamily]:
        counts = GaugeMetricFamily(COUNT_NAME, COUNT_HELP, labels=COUNT_LABELS)
        failing = GaugeMetricFamily(FAILING_NAME, FAILING_HELP, labels=FAILING_LABELS)
        try:
            totals, failures = self._read()
        except SQLAlchemyError as exc:
            log.warning("cannot read the monitors' state for /metrics", extra={"error": str(exc)})
            return
        for counted, value in sorted(totals.items()):
            counts.add_metric(list(counted), value)
        for failure in failures:
            failing.add_metric(list(failure), 1)
        yield counts
        yield failing

    def _read(self) -> tuple[dict[tuple[str, str, str], int], list[tuple[str, str, str, str]]]:
        o, p, m, me, env = (
            organization_table,
            project_table,
            monitor_table,
            monitor_environment_table,
            environment_table,
        )
        muted = or_(m.c.is_muted, me.c.is_muted)
        joined = (
            me.join(m, m.c.id == me.c.monitor_id)
            .join(p, p.c.id == m.c.project_id)
            .join(o, o.c.id == p.c.organization_id)
        )
        shown = m.c.status.in_([int(s) for s in _SHOWN])
        grouped = (
            select(o.c.slug, p.c.slug, m.c.status, me.c.status, muted, func.count())
            .select_from(joined)
            .where(shown)
            .group_by(o.c.slug, p.c.slug, m.c.status, me.c.status, muted)
        )
        failing = (
            select(o.c.slug, p.c.slug, m.c.slug, env.c.name)
            .select_from(joined.join(env, env.c.id == me.c.environment_id))
            .where(
                and_(
                    m.c.status == int(ObjectStatus.ACTIVE),
                    me.c.status == int(MonitorStatus.ERROR),
                    not_(muted),
                )
            )
            .order_by(o.c.slug, p.c.slug, m.c.slug, env.c.name)
            .limit(MAX_FAILING_SERIES)
        )
        totals: dict[tuple[str, str, str], int] = {}
        with self._engine.connect() as conn:
            for org, project, monitor_status, env_status, is_muted, count in conn.execute(grouped):
                key = (org, project, state_label(monitor_status, env_status, bool(is_muted)))
                totals[key] = totals.get(key, 0) + count
            failures = [(o_, p_, m_, e_) for o_, p_, m_, e_ in conn.execute(failing)]
        return totals, failures
