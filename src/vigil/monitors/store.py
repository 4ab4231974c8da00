"""Reading and writing monitors and monitor environments (B1, B4.4). Every function
takes an open connection, so the caller owns the transaction; times are parameters
(defaulting to now) so tests need no clock.

`ensure_monitor_with_config` is the check-in consumer's monitor upsert; `ensure_environment`
finds or makes the monitor environment a check-in lands in. Both enforce the operator's
creation limits (`Settings.max_monitors_per_org`, `Settings.max_environments_per_monitor`),
serialising creation per organization or per monitor so that concurrent consumers can
never pass a limit together.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import ColumnElement, Connection, Row, Select, and_, case, func, select, update

from vigil.db.engine import serialize
from vigil.db.tables import environment as environment_table
from vigil.db.tables import monitor as monitor_table
from vigil.db.tables import monitor_environment as monitor_environment_table
from vigil.db.timestamps import aware_utc
from vigil.issues.environment_store import get_or_create_environment
from vigil.issues.rows import insert_new
from vigil.monitors.enums import MonitorStatus, MonitorType, ObjectStatus
from vigil.monitors.environment_name import environment_name, is_valid_environment_name
from vigil.monitors.models import Monitor, MonitorEnvironment, MonitorWithEnvironments
from vigil.monitors.monitor_config import (
    InvalidConfig,
    MonitorConfig,
    parse_owner,
    validate_monitor_config,
)
from vigil.monitors.processing_errors import ProcessingError, ProcessingErrorType
from vigil.tenancy.store import Project

log = logging.getLogger(__name__)

# The message of MonitorEnvironmentValidationFailed, as the reference words it (for any
# invalid name, not only a long one).
ENVIRONMENT_NAME_INVALID: Final = "Environment name too long"
# The keys a stored config can have that a check-in's config may set.
CONFIG_KEYS: Final = frozenset(MonitorConfig.__annotations__)
# Always taken from a check-in's validated config when it updates a monitor.
_ALWAYS_MERGED: Final = frozenset({"schedule", "schedule_type"})

# PostgreSQL advisory-lock key spaces: this prefix, then the organization or monitor id.
_ORG_MONITORS_LOCK: Final = 0x6D6F << 48
_MONITOR_ENVIRONMENTS_LOCK: Final = 0x6D65 << 48

# (kind, identifier) of "user:…" / "team:…" ⇒ that user's or team's id in the
# organization, or None when it is not one of the organization's.
OwnerResolver = Callable[[str, str], int | None]


class MonitorLimitsExceeded(Exception):
    """The organization already has as many monitors as it may have."""


class MonitorEnvironmentLimitsExceeded(Exception):
    """The monitor already has as many environments as it may have."""


class MonitorEnvironmentValidationFailed(Exception):
    """A check-in names an environment that cannot exist."""


@dataclass(frozen=True)
class EnsuredMonitor:
    """What the upsert found or made: the monitor (None when there is none), and the
    processing errors the caller is to raise (only ever MONITOR_INVALID_CONFIG, when a
    config was sent for a monitor that does not exist and it is invalid)."""

    monitor: Monitor | None
    errors: tuple[ProcessingError, ...] = ()


def no_owners(kind: str, identifier: str) -> int | None:
    """An owner resolver for installs without users or teams: nobody resolves."""
    return None


def _now(now: datetime | None) -> datetime:
    return datetime.now(UTC) if now is None else now.astimezone(UTC)


# --- monitors --------------------------------------------------------------------------


def _monitor(row: Row[Any]) -> Monitor:
    date_added = aware_utc(row.date_added)
    assert date_added is not None
    return Monitor(
        id=row.id,
        guid=row.guid,
        organization_id=row.organization_id,
        project_id=row.project_id,
        slug=row.slug,
        name=row.name,
        status=ObjectStatus(row.status),
        type=MonitorType(row.type),
        is_muted=row.is_muted,
        owner_user_id=row.owner_user_id,
        owner_team_id=row.owner_team_id,
        config=dict(row.config),
        date_added=date_added,
    )


def get_monitor(conn: Connection, project_id: int, slug: str) -> Monitor | None:
    """The project's monitor with this slug, or None."""
    row = conn.execute(
        select(monitor_table).where(
            and_(monitor_table.c.project_id == project_id, monitor_table.c.slug == slug)
        )
    ).first()
    return None if row is None else _monitor(row)


def get_monitors(conn: Connection, project_id: int, slugs: Iterable[str]) -> dict[str, Monitor]:
    """The project's monitors with these slugs, by slug (the ones that exist)."""
    wanted = sorted(set(slugs))
    if not wanted:
        return {}
    rows = conn.execute(
        select(monitor_table).where(
            and_(monitor_table.c.project_id == project_id, monitor_table.c.slug.in_(wanted))
        )
    )
    return {row.slug: _monitor(row) for row in rows}


def get_monitor_by_id(conn: Connection, monitor_id: int) -> Monitor | None:
    """The monitor with this id, or None."""
    row = conn.execute(select(monitor_table).where(monitor_table.c.id == monitor_id)).first()
    return None if row is None else _monitor(row)


def get_monitor_by_guid(conn: Connection, guid: uuid.UUID, organization_id: int) -> Monitor | None:
    """The organization's monitor whose id (as the API shows it) is `guid`, or None."""
    row = conn.execute(
        select(monitor_table).where(
            and_(monitor_table.c.guid == guid, monitor_table.c.organization_id == organization_id)
        )
    ).first()
    return None if row is None else _monitor(row)


def get_monitors_by_ids(conn: Connection, monitor_ids: Iterable[int]) -> dict[int, Monitor]:
    """The monitors with these ids, by id (the ones that exist)."""
    wanted = sorted(set(monitor_ids))
    if not wanted:
        return {}
    rows = conn.execute(select(monitor_table).where(monitor_table.c.id.in_(wanted)))
    return {row.id: _monitor(row) for row in rows}


def get_organization_monitor(
    conn: Connection, organization_id: int, slug: str, project_ids: Iterable[int] | None = None
) -> Monitor | None:
    """The organization's monitor with this slug (limited to `project_ids` when given),
    or None. Slugs are unique per project only: when several projects have one, the
    oldest monitor is the answer, so the answer never changes while it exists."""
    query = select(monitor_table).where(
        and_(monitor_table.c.organization_id == organization_id, monitor_table.c.slug == slug)
    )
    if project_ids is not None:
        query = query.where(monitor_table.c.project_id.in_(list(project_ids)))
    row = conn.execute(query.order_by(monitor_table.c.id).limit(1)).first()
    return None if row is None else _monitor(row)


def list_monitors(
    conn: Connection,
    organization_id: int,
    project_ids: Iterable[int] | None = None,
    *,
    terms: Sequence[str] = (),
    environments: Sequence[str] = (),
    sort: str = "name",
    ascending: bool = True,
    offset: int = 0,
    limit: int | None = None,
) -> list[MonitorWithEnvironments]:
    """The organization's monitors (of `project_ids` when given) in `sort` order (one of
    `MONITOR_SORTS`, reversed when not `ascending`), each with its environments ordered
    by name.

    `terms`: casefolded words that must each be in the name or the slug (Sentry's
    `query`). `environments`: only monitors with one of these, each shown with those
    only (Sentry's `environment`). `offset` / `limit` page the result: only that page's
    monitors and environments are read in full."""
    condition = monitor_table.c.organization_id == organization_id
    if project_ids is not None:
        condition = and_(condition, monitor_table.c.project_id.in_(list(project_ids)))
    if environments:
        me_t, env_t = monitor_environment_table, environment_table
        condition = and_(
            condition,
            select(me_t.c.id)
            .join(env_t, env_t.c.id == me_t.c.environment_id)
            .where(me_t.c.monitor_id == monitor_table.c.id, env_t.c.name.in_(list(environments)))
            .exists(),
        )
    order = _monitor_order(sort, ascending, environments)
    if terms:
        # Casefolded matching is Python's (SQLite's lower() knows only ASCII), so the
        # filter runs over names and slugs alone; the page is then read in full.
        ids = [
            r.id
            for r in conn.execute(
                select(monitor_table.c.id, monitor_table.c.name, monitor_table.c.slug)
                .where(condition)
                .order_by(*order)
            )
            if all(t in r.name.casefold() or t in r.slug.casefold() for t in terms)
        ]
        ids = ids[offset:] if limit is None else ids[offset : offset + limit]
        if not ids:
            return []
        condition = monitor_table.c.id.in_(ids)
        query = select(monitor_table).where(condition).order_by(*order)
    else:
        query = select(monitor_table).where(condition).order_by(*order).offset(offset)
        if limit is not None:
            query = query.limit(limit)
    monitors = [_monitor(r) for r in conn.execute(query)]
    if not monitors:
        return []
    page_ids = [m.id for m in monitors]
    env_query = _monitor_environment_query().where(
        monitor_environment_table.c.monitor_id.in_(page_ids)
    )
    if environments:
        env_query = env_query.where(environment_table.c.name.in_(list(environments)))
    by_monitor: dict[int, list[MonitorEnvironment]] = {m.id: [] for m in monitors}
    for row in conn.execute(env_query.order_by(environment_table.c.name)):
        env = _monitor_environment(row)
        by_monitor[env.monitor_id].append(env)
    return [MonitorWithEnvironments(m, tuple(by_monitor[m.id])) for m in monitors]


MONITOR_SORTS: Final = ("status", "name", "muted")
"""The orders monitors are listed in (Sentry's `sort`): `status`, the failing first, then
the ones whose last run went well, then those waiting for their first check-in, then
the muted, then the disabled, each by name; `name`; `muted`, the unmuted first."""


def _status_rank(environments: Sequence[str]) -> ColumnElement[int]:
    # The monitor's place in the `status` order: its best-placed environment (of
    # `environments`, when given) decides, as the worst news shows first; a muted one
    # ranks with the muted, and a monitor without one waits for its first check-in.
    me_t, env_t = monitor_environment_table, environment_table
    env_rank = case(
        (me_t.c.is_muted.is_(True), 3),
        (me_t.c.status == int(MonitorStatus.ERROR), 0),
        (me_t.c.status == int(MonitorStatus.OK), 1),
        else_=2,
    )
    best = select(func.min(env_rank)).where(me_t.c.monitor_id == monitor_table.c.id)
    if environments:
        named = select(env_t.c.id).where(env_t.c.name.in_(list(environments)))
        best = best.where(me_t.c.environment_id.in_(named))
    return case(
        (monitor_table.c.status != int(ObjectStatus.ACTIVE), 4),
        (monitor_table.c.is_muted.is_(True), 3),
        else_=func.coalesce(best.scalar_subquery(), 2),
    )


def _monitor_order(
    sort: str, ascending: bool, environments: Sequence[str]
) -> tuple[ColumnElement[Any], ...]:
    if sort not in MONITOR_SORTS:
        raise ValueError(f"sort: one of {', '.join(MONITOR_SORTS)}")
    keys: list[ColumnElement[Any]] = []
    if sort == "status":
        keys.append(_status_rank(environments))
    elif sort == "muted":
        keys.append(monitor_table.c.is_muted)
    keys += [monitor_table.c.name, monitor_table.c.id]
    return tuple(keys if ascending else [key.desc() for key in keys])


def count_monitors(conn: Connection, organization_id: int) -> int:
    """How many monitors the organization has (what its limit counts)."""
    return int(
        conn.execute(
            select(func.count())
            .select_from(monitor_table)
            .where(monitor_table.c.organization_id == organization_id)
        ).scalar_one()
    )


def ensure_monitor_with_config(
    conn: Connection,
    project: Project,
    slug: str,
    raw_config: object,
    resolve_owner: OwnerResolver,
    max_monitors: int,
    *,
    now: datetime | None = None,
    existing: Monitor | None = None,
    absent: bool = False,
) -> EnsuredMonitor:
    """The monitor a check-in is for, created or updated from its config (B4.4).

    `slug` is the check-in's valid slug (`slugs.valid_monitor_slug`). Without a config
    (absent or empty) the monitor is only looked up. An invalid config yields
    MONITOR_INVALID_CONFIG when there is no monitor, and is ignored when there is one.
    A valid config creates the monitor (named after its slug, active, a cron job) or is
    merged into the existing one's. The config's `owner` is resolved with
    `resolve_owner`; one that does not resolve sets no owner on creation and never
    clears an existing owner.

    Raises MonitorLimitsExceeded when creating would give the organization more than
    `max_monitors` monitors. `existing`: the monitor as already read in this
    transaction (None: it is looked up); `absent`: the caller read the project's
    monitors of this slug in this transaction and found none (with a valid config, it
    is created without looking first; one made meanwhile is then updated).
    """
    monitor = existing
    if monitor is None and not (absent and raw_config):
        monitor = get_monitor(conn, project.id, slug)
    if not raw_config:
        return EnsuredMonitor(monitor)
    checked = validate_monitor_config(raw_config)
    if isinstance(checked, InvalidConfig):
        if monitor is None and absent:
            monitor = get_monitor(conn, project.id, slug)  # one made meanwhile keeps it
        if monitor is None:
            error = ProcessingError(
                ProcessingErrorType.MONITOR_INVALID_CONFIG, {"errors": checked.errors}
            )
            return EnsuredMonitor(None, (error,))
        log.info(
            "ignoring an invalid config sent for an existing monitor",
            extra={"monitor_id": monitor.id, "errors": checked.errors},
        )
        return EnsuredMonitor(monitor)
    assert isinstance(raw_config, Mapping)  # a valid config came from a mapping
    owner = _resolve_owner(checked.owner, resolve_owner)
    if monitor is None:
        monitor = _create_monitor(
            conn, project, slug, checked.config, owner, max_monitors, _now(now)
        )
        if monitor is not None:
            return EnsuredMonitor(monitor)
        # Someone else created it meanwhile: theirs is updated like any existing one.
        monitor = get_monitor(conn, project.id, slug)
        assert monitor is not None
    return EnsuredMonitor(_update_monitor(conn, monitor, raw_config, checked.config, owner))


@dataclass(frozen=True)
class _Owner:
    user_id: int | None
    team_id: int | None


def _resolve_owner(owner: str | None, resolve: OwnerResolver) -> _Owner | None:
    """The owner's ids, or None when there is no owner or it does not resolve (which the
    reference only logs)."""
    if owner is None:
        return None
    parsed = parse_owner(owner)
    resolved = None if parsed is None else resolve(*parsed)
    if parsed is None or resolved is None:
        log.info("monitor owner %r does not resolve; ignored", owner)
        return None
    kind, _ = parsed
    return _Owner(resolved, None) if kind == "user" else _Owner(None, resolved)


def _create_monitor(
    conn: Connection,
    project: Project,
    slug: str,
    config: MonitorConfig,
    owner: _Owner | None,
    max_monitors: int,
    now: datetime,
) -> Monitor | None:
    """A new monitor, or None when one with this slug appeared meanwhile."""
    # Count and insert one creator at a time per organization, or two consumers could
    # both see room for one more monitor.
    serialize(conn, _ORG_MONITORS_LOCK | project.organization_id)
    if count_monitors(conn, project.organization_id) >= max_monitors:
        if get_monitor(conn, project.id, slug) is not None:
            return None  # made meanwhile: it is updated, not refused
        raise MonitorLimitsExceeded(f"You may not exceed {max_monitors} monitors per organization")
    values = {
        "guid": uuid.uuid4(),
        "organization_id": project.organization_id,
        "project_id": project.id,
        "slug": slug,
        "name": slug,
        "status": int(ObjectStatus.ACTIVE),
        "type": int(MonitorType.CRON_JOB),
        "is_muted": False,
        "owner_user_id": owner.user_id if owner else None,
        "owner_team_id": owner.team_id if owner else None,
        "config": dict(config),
        "date_added": now,
    }
    row = insert_new(conn, monitor_table, values)
    if row is None:
        return None
    log.info(
        "monitor created",
        extra={"monitor_id": row.id, "slug": slug, "project_id": project.id},
    )
    return _monitor(row)


def merge_config(
    stored: Mapping[str, Any], payload: Mapping[str, Any], validated: MonitorConfig
) -> dict[str, Any]:
    """An existing monitor's config after a check-in sent `payload` (validated as
    `validated`): the keys the payload names, and always schedule and schedule_type,
    take their validated values (a key the validation dropped, such as an empty
    timezone, is removed); every other stored key is kept."""
    merged = dict(stored)
    named = (set(payload) & CONFIG_KEYS) | _ALWAYS_MERGED
    for key in named:
        if key in validated:
            merged[key] = validated[key]  # type: ignore[literal-required]
        else:
            merged.pop(key, None)
    return merged


def _update_monitor(
    conn: Connection,
    monitor: Monitor,
    payload: Mapping[str, Any],
    validated: MonitorConfig,
    owner: _Owner | None,
) -> Monitor:
    changes: dict[str, Any] = {}
    merged = merge_config(monitor.config, payload, validated)
    if merged != monitor.config:
        changes["config"] = merged
    if owner is not None and (owner.user_id, owner.team_id) != (
        monitor.owner_user_id,
        monitor.owner_team_id,
    ):
        changes["owner_user_id"] = owner.user_id
        changes["owner_team_id"] = owner.team_id
    if not changes:
        return monitor
    conn.execute(update(monitor_table).where(monitor_table.c.id == monitor.id).values(**changes))
    return replace(monitor, **changes)


# --- environments ----------------------------------------------------------------------


def _monitor_environment_query() -> Select[Any]:
    me, env = monitor_environment_table, environment_table
    return select(me, env.c.name.label("environment_name")).join(
        env, env.c.id == me.c.environment_id
    )


def _monitor_environment(row: Row[Any]) -> MonitorEnvironment:
    return _monitor_environment_named(row, row.environment_name)


def _monitor_environment_named(row: Row[Any], name: str) -> MonitorEnvironment:
    date_added = aware_utc(row.date_added)
    assert date_added is not None
    return MonitorEnvironment(
        id=row.id,
        monitor_id=row.monitor_id,
        environment_id=row.environment_id,
        environment=name,
        status=MonitorStatus(row.status),
        is_muted=row.is_muted,
        next_checkin=aware_utc(row.next_checkin),
        next_checkin_latest=aware_utc(row.next_checkin_latest),
        last_checkin=aware_utc(row.last_checkin),
        date_added=date_added,
    )


def get_monitor_environment(
    conn: Connection, monitor_id: int, name: str
) -> MonitorEnvironment | None:
    """The monitor's environment of this name, or None."""
    row = conn.execute(
        _monitor_environment_query().where(
            and_(
                monitor_environment_table.c.monitor_id == monitor_id,
                environment_table.c.name == name,
            )
        )
    ).first()
    return None if row is None else _monitor_environment(row)


def get_monitor_environment_by_id(
    conn: Connection, monitor_environment_id: int
) -> MonitorEnvironment | None:
    """The monitor environment with this id, or None."""
    row = conn.execute(
        _monitor_environment_query().where(monitor_environment_table.c.id == monitor_environment_id)
    ).first()
    return None if row is None else _monitor_environment(row)


def lock_monitor_environments(
    conn: Connection, monitor_ids: Iterable[int]
) -> list[MonitorEnvironment]:
    """The environments of these monitors, their rows locked until the transaction ends
    (PostgreSQL; SQLite's write transaction already excludes other writers), in id
    order so that two lockers never wait on each other."""
    wanted = sorted(set(monitor_ids))
    if not wanted:
        return []
    rows = conn.execute(
        _monitor_environment_query()
        .where(monitor_environment_table.c.monitor_id.in_(wanted))
        .order_by(monitor_environment_table.c.id)
        .with_for_update(of=monitor_environment_table)
    )
    return [_monitor_environment(r) for r in rows]


def lock_monitor_environments_by_ids(
    conn: Connection, ids: Iterable[int]
) -> dict[int, MonitorEnvironment]:
    """The monitor environments with these ids, by id, their rows locked until the
    transaction ends (as `lock_monitor_environments`, in id order)."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    rows = conn.execute(
        _monitor_environment_query()
        .where(monitor_environment_table.c.id.in_(wanted))
        .order_by(monitor_environment_table.c.id)
        .with_for_update(of=monitor_environment_table)
    )
    return {r.id: _monitor_environment(r) for r in rows}


def list_monitor_environments(
    conn: Connection, monitor_ids: Sequence[int]
) -> list[MonitorEnvironment]:
    """The environments of these monitors, by monitor id, then environment name."""
    if not monitor_ids:
        return []
    rows = conn.execute(
        _monitor_environment_query()
        .where(monitor_environment_table.c.monitor_id.in_(list(monitor_ids)))
        .order_by(monitor_environment_table.c.monitor_id, environment_table.c.name)
    )
    return [_monitor_environment(r) for r in rows]


def count_monitor_environments(conn: Connection, monitor_id: int) -> int:
    """How many environments the monitor has (what its limit counts)."""
    return int(
        conn.execute(
            select(func.count())
            .select_from(monitor_environment_table)
            .where(monitor_environment_table.c.monitor_id == monitor_id)
        ).scalar_one()
    )


def ensure_environment(
    conn: Connection,
    project: Project,
    monitor: Monitor,
    name: str | None,
    max_environments: int,
    *,
    now: datetime | None = None,
    absent: bool = False,
    environment_ids: dict[tuple[int, str], int] | None = None,
) -> MonitorEnvironment:
    """The monitor's environment named `name` ("production" when absent or empty),
    created (status ACTIVE, not muted) with the project's environment if need be.

    `absent`: the caller read the monitor's environments in this transaction and this
    one was not among them (it is not looked for before taking the creation lock).
    `environment_ids`: the project environments' ids known to the caller, by (project
    id, name); one looked up here is added.

    Raises MonitorEnvironmentValidationFailed("Environment name too long") for a name
    that cannot be an environment's, and MonitorEnvironmentLimitsExceeded when creating
    would give the monitor more than `max_environments` environments.
    """
    name = environment_name(name)
    if not is_valid_environment_name(name):
        raise MonitorEnvironmentValidationFailed(ENVIRONMENT_NAME_INVALID)
    if not absent:
        found = get_monitor_environment(conn, monitor.id, name)
        if found is not None:
            return found
    moment = _now(now)
    known = environment_ids if environment_ids is not None else {}
    environment_id = known.get((project.id, name))
    if environment_id is None:
        environment_id = get_or_create_environment(conn, project.id, name, moment)
        known[(project.id, name)] = environment_id
    # One creator at a time per monitor, so the count below cannot be passed together.
    serialize(conn, _MONITOR_ENVIRONMENTS_LOCK | monitor.id)
    if count_monitor_environments(conn, monitor.id) >= max_environments:
        found = get_monitor_environment(conn, monitor.id, name)
        if found is not None:
            return found  # made meanwhile
        raise MonitorEnvironmentLimitsExceeded(
            f"You may not exceed {max_environments} environments per monitor"
        )
    row = insert_new(
        conn,
        monitor_environment_table,
        {
            "monitor_id": monitor.id,
            "environment_id": environment_id,
            "status": int(MonitorStatus.ACTIVE),
            # A muted monitor's new environment is muted too: the monitor shows muted
            # while all its environments are, and it alerts for none of them.
            "is_muted": monitor.is_muted,
            "date_added": moment,
            "next_checkin": None,
            "next_checkin_latest": None,
            "last_checkin": None,
        },
    )
    if row is None:  # made meanwhile
        found = get_monitor_environment(conn, monitor.id, name)
        assert found is not None
        return found
    return _monitor_environment_named(row, name)
