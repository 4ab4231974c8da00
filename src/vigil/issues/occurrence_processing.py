"""Occurrence messages through the database (spec A3, A4): validate and normalise, pass
the ingest gate and the optional rate limit, get the event by one of three paths, store
the occurrence, and group it into an issue (create, update, regress), with releases,
environments and group environments.

Everything one message does happens in the caller's transaction, so a message is
applied wholly or not at all. An occurrence whose id the project already has is not
applied again (a replayed batch makes no second event, occurrence or times_seen)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, update

from vigil import metrics
from vigil.db.tables import group as group_table
from vigil.issues import event_store, group_store
from vigil.issues.drop_log import drops
from vigil.issues.enums import (
    ActivityType,
    GroupHistoryStatus,
    GroupStatus,
    GroupSubStatus,
    InboxReason,
)
from vigil.issues.environment_store import (
    NO_ENVIRONMENT,
    count_new_group,
    get_or_create_release,
    record_group_release,
)
from vigil.issues.errors import InvalidEventPayloadError
from vigil.issues.event_data import EventSchema
from vigil.issues.event_store import StoredEvent
from vigil.issues.gate_store import pass_noise_gate
from vigil.issues.group_store import Group
from vigil.issues.group_types import GroupTypeRegistry, Quota, may_ingest, registry
from vigil.issues.grouping import (
    REGRESSION_MARGIN,
    GroupSnapshot,
    IssueKwargs,
    creation_quota_key,
    issue_kwargs,
    occurrence_rate_limit_key,
    regression,
    should_regress,
    stored_event_facts,
    update_existing_group,
)
from vigil.issues.occurrence import (
    IssueOccurrence,
    NormalisedOccurrence,
    check_event_ids,
    check_occurrence_event,
    normalise_occurrence,
)
from vigil.issues.occurrence_store import MAX_LEVEL_CHARS
from vigil.issues.projects import ProjectContext, ProjectLoader, load_project
from vigil.issues.snooze_processing import awaits_condition, process_snooze
from vigil.issues.writes import IssueWrites

log = logging.getLogger(__name__)

OrgAssigneeResolver = Callable[[Connection, int, str], str | None]
"""(connection, organization id, assignee as sent) → "user:<id>" / "team:<id>" when the
actor exists in that organization, else None."""

SMALLINT_RANGE = range(-32768, 32768)
MAX_NESTING = 100
"""How deeply objects and lists may nest in a message: deeper ones could not be stored
(JSON encoders recurse), and no detector needs them."""


def no_org_assignees(_conn: Connection, _organization_id: int, _assignee: str) -> None:
    """The default resolver: vigil has no users or teams, so nobody resolves."""
    return None


class EventLookupError(Exception):
    """An occurrence without an event names an event the project does not have."""


@dataclass(frozen=True)
class OccurrenceProcessing:
    """How occurrences are processed: the assignee resolver, the optional per-fingerprint
    rate limit (the reference's `issues.occurrence-consumer.rate-limit.*`, off when
    None), the group-type registry and how projects are loaded."""

    resolve_assignee: OrgAssigneeResolver = no_org_assignees
    rate_limit: Quota | None = None
    types: GroupTypeRegistry = registry
    load_project: ProjectLoader = load_project


DEFAULT_PROCESSING = OccurrenceProcessing()


@dataclass(frozen=True)
class GroupInfo:
    """The group an occurrence went to."""

    group: Group
    is_new: bool
    is_regression: bool
    is_new_group_environment: bool = False


@dataclass(frozen=True)
class OccurrenceResult:
    """A processed occurrence and its group (None when none resulted: noise gate,
    creation quota, a hash without group, a category mismatch). `duplicate` when the
    occurrence was already stored and nothing was done."""

    occurrence: IssueOccurrence
    group_info: GroupInfo | None
    duplicate: bool = False


def process_occurrence_message(
    conn: Connection,
    payload: Mapping[str, Any],
    *,
    now: datetime,
    processing: OccurrenceProcessing = DEFAULT_PROCESSING,
    writes: IssueWrites | None = None,
) -> OccurrenceResult | None:
    """Process one occurrence message (spec A3.1-A3.4). None when it is dropped (type
    not released for the organization, rate limited). InvalidEventPayloadError for a
    malformed one, UnknownProjectError, EventLookupError, EventPayloadValidationError.
    `writes`: how rows are read and written (default: at once, in `conn`)."""
    w = IssueWrites(conn) if writes is None else writes
    project_id = payload.get("project_id") if isinstance(payload, Mapping) else None
    if not isinstance(project_id, int) or isinstance(project_id, bool):
        raise InvalidEventPayloadError("project_id must be an integer")
    check_nesting(payload)
    ctx = processing.load_project(conn, project_id)
    normalised = normalise_occurrence(
        payload,
        resolve_assignee=lambda actor: processing.resolve_assignee(
            conn, ctx.organization_id, actor
        ),
        now=now,
        types=processing.types,
    )
    occurrence = normalised.occurrence
    check_storable(occurrence)
    validation = normalised.event_validation
    if validation is not None and validation.schema is EventSchema.LEGACY:
        metrics.ISSUE_MESSAGES.labels("event_payload_invalid").inc()
        log.error(
            "Error validating event payload, falling back to legacy validation",
            extra={"errors": list(validation.current_errors), "project_id": project_id},
        )
    if not may_ingest(occurrence.type, ctx.features):
        metrics.ISSUE_MESSAGES.labels("dropped_feature_disabled").inc()
        return None
    if processing.rate_limit is not None:
        key = occurrence_rate_limit_key(project_id, occurrence.fingerprint[0])
        if not w.take_quota(key, processing.rate_limit, now):
            metrics.ISSUE_MESSAGES.labels("dropped_rate_limited").inc()
            drops.dropped(
                "rate_limited",
                project_id,
                occurrence.type.slug,
                "its fingerprint is over the occurrence rate limit "
                "(option issues.occurrence-consumer.rate-limit.quota)",
            )
            return None
    if w.occurrence_exists(occurrence.id, project_id):
        metrics.ISSUE_MESSAGES.labels("duplicate").inc()
        return OccurrenceResult(occurrence, None, duplicate=True)
    event_data = normalised.event_data
    if event_data is None:
        return lookup_event_and_process_issue_occurrence(conn, ctx, occurrence, now=now, writes=w)
    if normalised.is_buffered_spans:
        return create_event_and_issue_occurrence(
            conn, ctx, occurrence, event_data, now=now, writes=w
        )
    return process_event_and_issue_occurrence(conn, ctx, occurrence, event_data, now=now, writes=w)


_SCALARS = frozenset({str, int, float, bool, type(None)})


def check_nesting(payload: Mapping[str, Any]) -> None:
    """InvalidEventPayloadError if the payload nests deeper than MAX_NESTING."""
    # Iterative, so that a hostile payload cannot exhaust the stack here either; only
    # containers are visited (most values are not, and this runs for every message:
    # exact types first, as decoded JSON has them, which is cheaper than isinstance).
    pending: list[tuple[Iterable[object], int]] = [(payload.values(), 1)]
    while pending:
        children, depth = pending.pop()
        for value in children:
            kind = type(value)
            if kind in _SCALARS:
                continue
            if kind is dict:
                children_of: Iterable[object] = value.values()  # type: ignore[attr-defined]
            elif kind is list:
                children_of = value  # type: ignore[assignment]
            elif isinstance(value, Mapping):
                children_of = value.values()
            elif isinstance(value, list):
                children_of = value
            else:
                continue
            if depth + 1 > MAX_NESTING:
                raise InvalidEventPayloadError(f"payload nests deeper than {MAX_NESTING} levels")
            pending.append((children_of, depth + 1))


def check_storable(occurrence: IssueOccurrence) -> None:
    """InvalidEventPayloadError if the occurrence has a value its columns cannot hold."""
    # Values the columns cannot hold are the payload's fault: rejected, not a crash.
    if len(occurrence.level) > MAX_LEVEL_CHARS:
        raise InvalidEventPayloadError(f"level is longer than {MAX_LEVEL_CHARS} characters")
    if occurrence.initial_issue_priority not in SMALLINT_RANGE:
        raise InvalidEventPayloadError("initial_issue_priority is out of range")
    texts = {
        "issue_title": occurrence.issue_title,
        "subtitle": occurrence.subtitle,
        "culprit": occurrence.culprit,
        "level": occurrence.level,
        "resource_id": occurrence.resource_id or "",
    }
    for name, text in texts.items():
        if "\x00" in text:
            # PostgreSQL text cannot hold it; refused on both databases alike.
            raise InvalidEventPayloadError(f"{name} contains a NUL character")


def process_event_and_issue_occurrence(
    conn: Connection,
    ctx: ProjectContext,
    occurrence: IssueOccurrence,
    event_data: Mapping[str, Any],
    *,
    now: datetime,
    writes: IssueWrites | None = None,
) -> OccurrenceResult:
    """The embedded event is saved as a generic event, then the occurrence (A3.3 row
    1). ValueError if the occurrence and the event name different events."""
    w = IssueWrites(conn) if writes is None else writes
    check_event_ids(occurrence, event_data)
    saved = w.save_event(ctx.project_id, event_data, now, occurrence.id)
    result = save_issue_occurrence(conn, ctx, occurrence, saved, now=now, writes=w)
    if result.group_info is not None:
        w.link_event_to_group(ctx.project_id, saved.event_id, result.group_info.group.id)
    return result


def create_event_and_issue_occurrence(
    conn: Connection,
    ctx: ProjectContext,
    occurrence: IssueOccurrence,
    event_data: Mapping[str, Any],
    *,
    now: datetime,
    writes: IssueWrites | None = None,
) -> OccurrenceResult:
    """Buffered-span producers (A3.3 row 2): a lightweight event with event_id,
    project_id, timestamp, release, environment, platform and tags is built and not
    stored; then the occurrence is saved against it."""
    check_event_ids(occurrence, event_data)
    built = event_store.event_of(ctx.project_id, _lightweight(event_data), now)
    lightweight = replace(built, stored=False)
    return save_issue_occurrence(conn, ctx, occurrence, lightweight, now=now, writes=writes)


def _lightweight(event_data: Mapping[str, Any]) -> dict[str, Any]:
    light = {
        key: event_data.get(key)
        for key in ("event_id", "project_id", "timestamp", "release", "environment", "platform")
    }
    light["tags"] = event_store.tag_pairs(event_data.get("tags"))
    light["type"] = event_data.get("type")
    light["metadata"] = event_data.get("metadata")
    return light


def check_embedded_event(normalised: NormalisedOccurrence, project_id: int, now: datetime) -> None:
    """What the embedded-event paths refuse in an occurrence's event whatever the
    database holds: an event id other than the occurrence's (ValueError), and a
    timestamp, platform, environment or release that cannot be stored
    (InvalidEventPayloadError). Nothing to check without an embedded event."""
    event_data = normalised.event_data
    if event_data is None:
        return
    check_event_ids(normalised.occurrence, event_data)
    stored = _lightweight(event_data) if normalised.is_buffered_spans else event_data
    event_store.event_of(project_id, stored, now)


def lookup_event_and_process_issue_occurrence(
    conn: Connection,
    ctx: ProjectContext,
    occurrence: IssueOccurrence,
    *,
    now: datetime,
    writes: IssueWrites | None = None,
) -> OccurrenceResult:
    """No embedded event (A3.3 row 3): the event must already be stored for the project
    (it keeps its own type); EventLookupError otherwise."""
    w = IssueWrites(conn) if writes is None else writes
    found = w.get_event(ctx.project_id, occurrence.event_id)
    if found is None:
        raise EventLookupError(
            f"Failed to lookup event({occurrence.event_id}) for project_id({ctx.project_id})"
        )
    return save_issue_occurrence(conn, ctx, occurrence, found, now=now, writes=w)


def save_issue_occurrence(
    conn: Connection,
    ctx: ProjectContext,
    occurrence: IssueOccurrence,
    ev: StoredEvent,
    *,
    now: datetime,
    writes: IssueWrites | None = None,
) -> OccurrenceResult:
    """Store the occurrence (retrievable by id and project) and group it (A3.4): the
    release the event names, `save_issue_from_occurrence`, then, when a group results,
    its environment, group environment, release counters and group release. The
    occurrence is stored even when no group results."""
    w = IssueWrites(conn) if writes is None else writes
    check_occurrence_event(occurrence, ev.event_id)
    release_id = None
    if ev.release:
        release_id = get_or_create_release(
            conn, ctx.organization_id, ctx.project_id, ev.release, now
        )
    info = save_issue_from_occurrence(conn, ctx, occurrence, ev, release_id, now=now, writes=w)
    # Stored once its group is known (one write instead of an insert and an update; the
    # transaction makes the order invisible).
    w.store_occurrence(occurrence, now, None if info is None else info.group.id, ev.timestamp)
    if info is None:
        return OccurrenceResult(occurrence, None)
    grp = info.group
    if awaits_condition(grp):
        # Ignored until a condition: it is judged on the stored state, this occurrence
        # included, and an unignore writes the group by other means than held updates.
        w.flush()
        w.forget_groups()
        if process_snooze(conn, w.reload_group(grp.id), now):
            grp = w.reload_group(grp.id)
            info = GroupInfo(grp, info.is_new, info.is_regression)
    env_name = ev.environment or NO_ENVIRONMENT
    env_id = w.environment_id(ctx.project_id, env_name, now)
    new_env = w.ensure_group_environment(
        grp.id, env_id, release_id, ev.timestamp, new_group=info.is_new
    )
    if release_id is not None:
        w.before_group_write(grp.id)  # the group release refers to it
        if info.is_new:
            count_new_group(conn, ctx.project_id, release_id, env_id, ev.timestamp)
        record_group_release(conn, ctx.project_id, grp.id, release_id, env_name, ev.timestamp)
    info = GroupInfo(grp, info.is_new, info.is_regression, new_env)
    return OccurrenceResult(occurrence, info)


def save_issue_from_occurrence(
    conn: Connection,
    ctx: ProjectContext,
    occurrence: IssueOccurrence,
    ev: StoredEvent,
    release_id: int | None,
    *,
    now: datetime,
    writes: IssueWrites | None = None,
) -> GroupInfo | None:
    """Find or create the occurrence's group by its first fingerprint hash (A4): a new
    hash passes the noise gate and the type's creation quota and creates the group
    (unresolved, new, in the inbox, assigned if the occurrence has an assignee); a hash
    with a group of the same category updates it and may regress it; a hash without a
    group, or a category mismatch, gives None."""
    w = IssueWrites(conn) if writes is None else writes
    facts = stored_event_facts(ev.data, event_type=ev.type, at=ev.timestamp)
    kwargs = issue_kwargs(occurrence, facts, ev.release)
    hashed = occurrence.fingerprint[0]
    found = w.find_hash(ctx.project_id, hashed)
    if not found.exists:
        created = _create_group(conn, ctx, occurrence, kwargs, release_id, now=now, writes=w)
        if created is None or created.is_new:
            return created
        found = group_store.HashLookup(True, created.group.id)
    if found.group_id is None:
        return None
    grp = w.get_group_for_update(found.group_id)
    if grp is None:
        return None
    expected = occurrence.type.category
    actual = _category(grp.type)
    if actual != expected:
        log.warning(
            "save_issue_from_occurrence.category_mismatch",
            extra={
                "group_id": grp.id,
                "issue_type": grp.type,
                "occurrence_type": occurrence.type.type_id,
            },
        )
        metrics.ISSUE_MESSAGES.labels("dropped_category_mismatch").inc()
        return None
    snapshot = GroupSnapshot(
        message=grp.message,
        level=grp.level,
        culprit=grp.culprit,
        first_seen=grp.first_seen,
        last_seen=grp.last_seen,
        data=grp.data,
    )
    change = update_existing_group(snapshot, kwargs, facts)
    columns = change.columns()
    title = columns["data"].get("title")
    if isinstance(title, str) and title != grp.title:
        columns["title"] = title
    updated = w.update_group(grp, change.times_seen, columns)
    if _regress(conn, grp, ev, now=now, writes=w):
        return GroupInfo(w.reload_group(grp.id), is_new=False, is_regression=True)
    return GroupInfo(updated, is_new=False, is_regression=False)


def _category(type_id: int) -> object:
    try:
        return registry.get_by_id(type_id).category
    except ValueError:
        return None


def _create_group(
    conn: Connection,
    ctx: ProjectContext,
    occurrence: IssueOccurrence,
    kwargs: IssueKwargs,
    release_id: int | None,
    *,
    now: datetime,
    writes: IssueWrites,
) -> GroupInfo | None:
    hashed = occurrence.fingerprint[0]
    group_type = occurrence.type
    noise = pass_noise_gate(conn, ctx.project_id, hashed, group_type.noise_config, now)
    if not noise.create:
        metrics.ISSUE_MESSAGES.labels("dropped_noise_reduction").inc()
        drops.dropped(
            "noise_reduction",
            ctx.project_id,
            group_type.slug,
            "its fingerprint has not yet been seen often enough for a new issue of its type "
            "(the type's noise gate)",
        )
        return None
    quota_key = creation_quota_key(ctx.project_id, group_type.slug)
    quota = group_type.creation_quota
    if not writes.take_quota(quota_key, quota, now):
        metrics.ISSUE_MESSAGES.labels("dropped_creation_quota").inc()
        drops.dropped(
            "creation_quota",
            ctx.project_id,
            group_type.slug,
            f"the project has created {quota.limit:,} new issues of this type in the last "
            f"{quota.window_seconds:,} s, its creation quota",
        )
        return None
    values = {
        "type": kwargs.type,
        "title": occurrence.issue_title,
        "culprit": kwargs.culprit,
        "level": kwargs.level,
        "message": kwargs.message,
        "platform": kwargs.platform,
        "status": int(GroupStatus.UNRESOLVED),
        "substatus": int(GroupSubStatus.NEW),
        "priority": kwargs.priority,
        "priority_locked": False,
        "first_seen": kwargs.first_seen,
        "last_seen": kwargs.last_seen,
        "active_at": kwargs.active_at,
        "resolved_at": None,
        "times_seen": 1,
        "first_release_id": release_id,
        "assignee": occurrence.assignee,
        "data": kwargs.data,
    }
    grp, is_new = writes.create_group(ctx.project_id, hashed, values, now)
    if not is_new:
        # A concurrent consumer created it first: the caller updates it instead.
        return GroupInfo(grp, is_new=False, is_regression=False)
    writes.put_new_group_in_inbox(grp.id, now)
    if occurrence.assignee:
        writes.before_group_write(grp.id)  # the activity refers to it
        group_store.add_activity(
            conn, grp, ActivityType.ASSIGNED, {"assignee": occurrence.assignee}, now
        )
    return GroupInfo(grp, is_new=True, is_regression=False)


def _regress(
    conn: Connection, grp: Group, ev: StoredEvent, *, now: datetime, writes: IssueWrites
) -> bool:
    """Reopen a resolved group for a newer event (never an ignored one): a conditional
    update, so that a concurrent resolution or regression is not overwritten."""
    if not should_regress(
        status=grp.status,
        active_at=grp.active_at,
        last_seen=grp.last_seen,
        event_datetime=ev.timestamp,
        now=now,
    ):
        return False
    change = regression(ev.event_id, ev.timestamp, ev.release)
    writes.before_group_write(grp.id)
    result = conn.execute(
        update(group_table)
        .where(
            group_table.c.id == grp.id,
            group_table.c.status.in_([int(GroupStatus.RESOLVED), int(GroupStatus.UNRESOLVED)]),
            group_table.c.active_at < ev.timestamp - REGRESSION_MARGIN,
        )
        .values(
            status=int(change.status),
            substatus=int(change.substatus),
            active_at=change.active_at,
            last_seen=change.last_seen,
            resolved_at=None,
        )
    )
    if not result.rowcount:
        return False
    group_store.add_activity(conn, grp, ActivityType.SET_REGRESSION, change.activity_data, now)
    group_store.add_history(conn, grp, GroupHistoryStatus.REGRESSED, now)
    group_store.put_in_inbox(conn, grp.id, InboxReason.REGRESSION, now)
    return True
