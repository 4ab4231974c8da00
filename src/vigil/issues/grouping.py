"""The pure rules of turning an occurrence into an issue (spec A4): the values a new group
is created with, how an existing group absorbs another occurrence, when a group
regresses, and the noise gate before a group is created. The caller does the lookups
and writes. No I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any

from vigil.issues.enums import LOG_LEVELS, GroupStatus, GroupSubStatus
from vigil.issues.group_types import FEEDBACK, NoiseConfig
from vigil.issues.occurrence import IssueOccurrence

UNLABELED_EVENT_TITLE = "<unlabeled event>"
"""The title of an event that has neither a metadata title nor a message."""

PLACEHOLDER_TITLES: frozenset[str] = frozenset(
    {"<untitled>", "<unknown>", UNLABELED_EVENT_TITLE, "Error"}
)
"""Titles that stand in for a missing one; they never replace a real title."""

TRANSACTION_EVENT_TYPE = "transaction"

DEFAULT_GROUP_LEVEL = LOG_LEVELS["error"]
"""group.level for an occurrence whose level is not a known log level (the column's
default: such a level is not rejected on ingest, and the group needs some level)."""

REGRESSION_MARGIN = timedelta(seconds=5)
"""A group only regresses if it was last made active more than this before the event,
so an event racing the resolution that it belongs to does not reopen the issue."""

_FEEDBACK_METADATA_KEYS = ("contact_email", "message", "name", "source")
_FEEDBACK_OPTIONAL_METADATA_KEYS = ("summary", "associated_event_id")


@dataclass(frozen=True)
class EventFacts:
    """What grouping needs of the occurrence's event. `metadata` is the event's metadata
    already merged over its event type's own; `title` is the event's title."""

    event_id: str
    datetime: datetime
    platform: str | None = None
    event_type: str = "generic"
    title: str = UNLABELED_EVENT_TITLE
    message: str = ""
    location: str | None = None
    metadata: Mapping[str, Any] | None = None


def event_facts(data: Mapping[str, Any], *, default_type: str = "default") -> EventFacts:
    """EventFacts of stored event data: type from `type` (else `default_type`), time from
    `timestamp` (epoch seconds or ISO; naive ⇒ UTC), message from `message` or
    `logentry`, title from the metadata title, else the message, else
    "<unlabeled event>". ValueError if the timestamp is missing or unreadable."""
    return stored_event_facts(
        data,
        event_type=data.get("type") or default_type,
        at=event_datetime(data.get("timestamp")),
    )


def stored_event_facts(data: Mapping[str, Any], *, event_type: str, at: datetime) -> EventFacts:
    """EventFacts of a stored event's data, whose type and time the event already has
    (as `event_facts` otherwise)."""
    metadata = data.get("metadata") or {}
    logentry = data.get("logentry") or {}
    message = data.get("message") or logentry.get("formatted") or logentry.get("message") or ""
    title = metadata.get("title") or message or UNLABELED_EVENT_TITLE
    return EventFacts(
        event_id=str(data["event_id"]),
        datetime=at,
        platform=data.get("platform"),
        event_type=event_type,
        title=str(title),
        message=str(message),
        location=data.get("location"),
        metadata=metadata,
    )


def event_datetime(timestamp: object) -> datetime:
    """An aware UTC datetime from an event timestamp (epoch seconds or ISO-8601, naive ⇒
    UTC); ValueError otherwise."""
    if isinstance(timestamp, int | float) and not isinstance(timestamp, bool):
        return datetime.fromtimestamp(timestamp, UTC)
    if isinstance(timestamp, str):
        parsed = datetime.fromisoformat(timestamp)
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    raise ValueError(f"not an event timestamp: {timestamp!r}")


def search_message(event: EventFacts) -> str:
    """The event's searchable text: its message, then its title unless already in it."""
    return _append_missing(event.message, [event.title])


def issue_message(event: EventFacts, occurrence: IssueOccurrence) -> str:
    """The group message: the event's search message, then the occurrence's title,
    subtitle and culprit, each only if non-empty and not already in it. E.g.
    "<unlabeled event> something bad happened it was bad api/123"."""
    return _append_missing(
        search_message(event), [occurrence.issue_title, occurrence.subtitle, occurrence.culprit]
    )


def _append_missing(text: str, parts: list[str]) -> str:
    message = text.strip()
    for part in parts:
        if part and part not in message:
            message = f"{message} {part}" if message else part
    return message


def level_int(level: str) -> int:
    """group.level for an occurrence level name (DEFAULT_GROUP_LEVEL if unknown)."""
    return LOG_LEVELS.get(level, DEFAULT_GROUP_LEVEL)


@dataclass(frozen=True)
class IssueKwargs:
    """The values a new group is created with; an existing group takes some of them (see
    `update_existing_group`)."""

    platform: str | None
    message: str
    level: int
    culprit: str
    first_seen: datetime
    last_seen: datetime
    active_at: datetime
    type: int
    first_release: str | None
    priority: int
    data: dict[str, Any]


def issue_kwargs(
    occurrence: IssueOccurrence, event: EventFacts, release: str | None
) -> IssueKwargs:
    """The group values for an occurrence and its event, released in `release` (a version,
    or None). The metadata is the event's, with title = issue title, value = subtitle and
    initial_priority = the occurrence's priority written over it (other event keys are
    kept); feedback issues also carry the sender's details from the evidence data."""
    priority = occurrence.priority
    metadata: dict[str, Any] = dict(event.metadata or {})
    metadata.update(
        title=occurrence.issue_title, value=occurrence.subtitle, initial_priority=priority
    )
    if occurrence.type.type_id == FEEDBACK.type_id:
        evidence = occurrence.evidence_data
        for key in _FEEDBACK_METADATA_KEYS:
            metadata[key] = evidence.get(key)
        for key in _FEEDBACK_OPTIONAL_METADATA_KEYS:
            if key in evidence:
                metadata[key] = evidence[key]
    seen = event.datetime
    return IssueKwargs(
        platform=event.platform,
        message=issue_message(event, occurrence),
        level=level_int(occurrence.level),
        culprit=occurrence.culprit,
        first_seen=seen,
        last_seen=seen,
        active_at=seen,
        type=occurrence.type.type_id,
        first_release=release,
        priority=priority,
        data={
            "type": event.event_type,
            "title": occurrence.issue_title,
            "culprit": occurrence.culprit,
            "location": event.location,
            "last_received": seen.isoformat(),
            "metadata": metadata,
        },
    )


@dataclass(frozen=True)
class GroupSnapshot:
    """The fields of an existing group that absorbing an occurrence reads."""

    message: str
    level: int
    culprit: str
    first_seen: datetime
    last_seen: datetime
    data: Mapping[str, Any]


@dataclass(frozen=True)
class GroupUpdate:
    """What to write to an existing group. None means "leave as it is"; `times_seen` is
    an increment."""

    last_seen: datetime
    data: dict[str, Any]
    first_seen: datetime | None = None
    message: str | None = None
    level: int | None = None
    culprit: str | None = None
    times_seen: int = 1

    def columns(self) -> dict[str, Any]:
        """The changed columns (times_seen excluded: it is an increment)."""
        values: dict[str, Any] = {"last_seen": self.last_seen, "data": self.data}
        for name in ("first_seen", "message", "level", "culprit"):
            value = getattr(self, name)
            if value is not None:
                values[name] = value
        return values


def is_placeholder_title(title: object) -> bool:
    """Whether a title stands in for a missing one (see PLACEHOLDER_TITLES)."""
    return title in PLACEHOLDER_TITLES


def update_existing_group(
    group: GroupSnapshot, kwargs: IssueKwargs, event: EventFacts
) -> GroupUpdate:
    """How an existing group absorbs an occurrence:
    * last_seen = the later of the event's time and the group's; first_seen moves
      back if the event is older;
    * the message changes if the new one is non-empty and different, the event's title
      is not a placeholder, and the event is not a transaction;
    * level and culprit take the new values when they differ;
    * data and its metadata are merged, incoming keys winning, except that a
      placeholder title never replaces a real one;
    * times_seen grows by one."""
    message = None
    if (
        kwargs.message
        and kwargs.message != group.message
        and not is_placeholder_title(event.title)
        and event.event_type != TRANSACTION_EVENT_TYPE
    ):
        message = kwargs.message
    return GroupUpdate(
        last_seen=max(event.datetime, group.last_seen),
        first_seen=event.datetime if event.datetime < group.first_seen else None,
        message=message,
        level=kwargs.level if kwargs.level != group.level else None,
        culprit=kwargs.culprit if kwargs.culprit != group.culprit else None,
        data=merge_group_data(group.data, kwargs.data),
    )


def merge_group_data(existing: Mapping[str, Any], incoming: Mapping[str, Any]) -> dict[str, Any]:
    """Incoming keys win, at the top level and in `metadata`, except that a placeholder
    title (top-level or metadata) does not replace a real one."""
    existing_metadata: Mapping[str, Any] = existing.get("metadata") or {}
    incoming_metadata: Mapping[str, Any] = incoming.get("metadata") or {}
    metadata = {**existing_metadata, **incoming_metadata}
    data = {**existing, **incoming, "metadata": metadata}
    for holder, before in ((metadata, existing_metadata), (data, existing)):
        old_title = before.get("title")
        if (
            is_placeholder_title(holder.get("title"))
            and old_title
            and not is_placeholder_title(old_title)
        ):
            holder["title"] = old_title
    return data


def is_resolved(
    status: int, last_seen: datetime | None, *, now: datetime, resolve_age_hours: int | None
) -> bool:
    """Whether a group counts as resolved: status RESOLVED, or an UNRESOLVED group not
    seen for `resolve_age_hours` (the project's auto-resolve age; None or 0 = off)."""
    if status == GroupStatus.RESOLVED:
        return True
    if status != GroupStatus.UNRESOLVED or not resolve_age_hours or last_seen is None:
        return False
    return last_seen < now - timedelta(hours=resolve_age_hours)


def should_regress(
    *,
    status: int,
    active_at: datetime | None,
    last_seen: datetime | None,
    event_datetime: datetime,
    now: datetime,
    resolve_age_hours: int | None = None,
    resolved_in_newer_release: bool = False,
    has_pending_commit_resolution: bool = False,
) -> bool:
    """Whether an event regresses its group. The group must count as resolved
    (`is_resolved`), must not be resolved in a release newer than the event's nor by a
    commit not yet released, and must have been made active more than REGRESSION_MARGIN
    before the event (an event from before, or from just around, the resolution does not
    reopen it). An ignored group never regresses."""
    if status == GroupStatus.IGNORED:
        return False
    if not is_resolved(status, last_seen, now=now, resolve_age_hours=resolve_age_hours):
        return False
    if resolved_in_newer_release or has_pending_commit_resolution:
        return False
    if active_at is None:
        return False
    return active_at < event_datetime - REGRESSION_MARGIN


@dataclass(frozen=True)
class Regression:
    """The conditional update a regression makes, and its activity data."""

    status: GroupStatus
    substatus: GroupSubStatus
    active_at: datetime
    last_seen: datetime
    activity_data: dict[str, str]


def regression(event_id: str, event_datetime: datetime, release: str | None) -> Regression:
    """What a regressing event writes: UNRESOLVED / REGRESSED, active_at and last_seen =
    the event's time, and Activity SET_REGRESSION data {event_id, version ("" when the
    event has no release)}. The caller applies it only where the group row still has
    status RESOLVED or UNRESOLVED and active_at < event time - REGRESSION_MARGIN."""
    return Regression(
        status=GroupStatus.UNRESOLVED,
        substatus=GroupSubStatus.REGRESSED,
        active_at=event_datetime,
        last_seen=event_datetime,
        activity_data={"event_id": event_id, "version": release or ""},
    )


class CounterAction(Enum):
    """What to do with a fingerprint's noise counter."""

    KEEP = "keep"  # leave it as it is (the type has no noise gate)
    STORE = "store"  # store `count`, expiring `expiry` from now
    RESET = "reset"  # delete it: the group is being created


@dataclass(frozen=True)
class NoiseDecision:
    """The noise gate's verdict for one occurrence of a fingerprint with no group."""

    create: bool
    action: CounterAction
    count: int = 0
    expiry: timedelta | None = None


def noise_gate(stored_count: int, config: NoiseConfig | None) -> NoiseDecision:
    """Whether an occurrence whose fingerprint has no group yet creates one.

    `stored_count` is the fingerprint's counter (0 when absent or expired). Without a
    noise config the group is created and no counter is kept. Otherwise the count goes
    up by one: reaching `ignore_limit` creates the group and resets the counter (the
    reference deletes the wrong key and leaves it; vigil resets it, so a group deleted
    later must again clear the gate); below it, the occurrence is dropped and the
    counter stored with `expiry_time` to live, renewed by every dropped occurrence."""
    if config is None:
        return NoiseDecision(create=True, action=CounterAction.KEEP)
    count = stored_count + 1
    if count >= config.ignore_limit:
        return NoiseDecision(create=True, action=CounterAction.RESET)
    return NoiseDecision(
        create=False, action=CounterAction.STORE, count=count, expiry=config.expiry_time
    )


def noise_counter_key(hashed_fingerprint: str, project_id: int) -> str:
    """The name of a fingerprint's noise counter."""
    return f"grouphash:{hashed_fingerprint}:{project_id}"


def creation_quota_key(project_id: int, type_slug: str) -> str:
    """The name of a project's issue-creation quota for one group type."""
    return f"issue-platform-issues:{project_id}:{type_slug}"


def occurrence_rate_limit_key(project_id: int, hashed_fingerprint: str) -> str:
    """The name of the optional per-fingerprint occurrence rate limit (spec A3.2)."""
    return f"occurrence_rate_limit:{project_id}-{hashed_fingerprint}"
