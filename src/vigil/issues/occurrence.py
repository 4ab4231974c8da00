"""Issue occurrences: the value object, and the normalisation and validation of an
occurrence message from `ingest-occurrences` (spec A2.1, A2.2, A3.1, A3.5). No I/O: the
one thing that needs the database, resolving an assignee within the organization, is a
callable the caller passes in.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from vigil.issues.enums import DEFAULT_LOG_LEVEL
from vigil.issues.errors import InvalidEventPayloadError
from vigil.issues.event_data import (
    EventValidation,
    build_event_data,
    finish_event_data,
    validate_event_data,
)
from vigil.issues.fingerprint import hash_fingerprint
from vigil.issues.group_types import GroupType, GroupTypeRegistry, registry
from vigil.uuid_text import uuid_hex

AssigneeResolver = Callable[[str], str | None]
"""Given an assignee string from a payload, the canonical actor ("user:<id>" or
"team:<id>") if it names a user who is a member of, or a team that belongs to, the
occurrence's organization; None otherwise (the caller logs why)."""


def no_assignees(_assignee: str) -> None:
    """An AssigneeResolver that resolves nothing (for callers without an organization)."""
    return None


def parse_actor(text: str) -> tuple[str, int] | None:
    """("user", id) or ("team", id) for "user:<id>" / "team:<id>"; None for anything else.
    A helper for AssigneeResolver implementations."""
    kind, sep, ident = text.partition(":")
    if not sep or kind not in ("user", "team") or not ident.isascii() or not ident.isdigit():
        return None
    return kind, int(ident)


@dataclass(frozen=True)
class IssueEvidence:
    """One row of evidence shown with an occurrence. `important` rows are the ones a
    space-constrained view shows."""

    name: str
    value: str
    important: bool

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "important": self.important}


@dataclass(frozen=True, eq=False)
class IssueOccurrence:
    """One piece of evidence for an issue. Equal (and hashed) by `id` alone.

    After normalisation `id` and (usually) `event_id` are 32 lowercase hex digits and
    `fingerprint` holds the MD5 of each part; on the producer side `fingerprint` holds the
    parts as the detector made them. `detection_time` must be timezone-aware."""

    id: str
    project_id: int
    event_id: str
    fingerprint: tuple[str, ...]
    issue_title: str
    subtitle: str
    resource_id: str | None
    evidence_data: dict[str, Any]
    evidence_display: tuple[IssueEvidence, ...]
    type: GroupType
    detection_time: datetime
    level: str = DEFAULT_LOG_LEVEL
    culprit: str = ""
    initial_issue_priority: int | None = None
    assignee: str | None = None

    def __post_init__(self) -> None:
        if self.detection_time.tzinfo is None:
            raise ValueError("detection_time must be timezone-aware")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, IssueOccurrence):
            return NotImplemented
        return self.id == other.id

    def __hash__(self) -> int:
        return hash(self.id)

    @property
    def priority(self) -> int:
        """The priority a new group gets: the explicit one, else the type's default."""
        if self.initial_issue_priority is not None:
            return self.initial_issue_priority
        return int(self.type.default_priority)

    @property
    def important_evidence_display(self) -> IssueEvidence | None:
        """The first evidence row marked important, if any."""
        return next((row for row in self.evidence_display if row.important), None)

    def to_dict(self) -> dict[str, Any]:
        """The wire / stored form: detection_time as epoch seconds, type as its id."""
        return {
            "id": self.id,
            "project_id": self.project_id,
            "event_id": self.event_id,
            "fingerprint": list(self.fingerprint),
            "issue_title": self.issue_title,
            "subtitle": self.subtitle,
            "resource_id": self.resource_id,
            "evidence_data": self.evidence_data,
            "evidence_display": [row.to_dict() for row in self.evidence_display],
            "type": self.type.type_id,
            "detection_time": self.detection_time.timestamp(),
            "level": self.level,
            "culprit": self.culprit,
            "initial_issue_priority": self.initial_issue_priority,
            "assignee": self.assignee,
        }

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], types: GroupTypeRegistry = registry
    ) -> IssueOccurrence:
        """Read back the `to_dict` form (trusted: as stored by vigil). KeyError /
        ValueError if it is not that form."""
        return cls(
            id=data["id"],
            project_id=data["project_id"],
            event_id=data["event_id"],
            fingerprint=tuple(data["fingerprint"]),
            issue_title=data["issue_title"],
            subtitle=data["subtitle"],
            resource_id=data.get("resource_id"),
            evidence_data=dict(data["evidence_data"]),
            evidence_display=tuple(IssueEvidence(**row) for row in data["evidence_display"]),
            type=types.get_by_id(data["type"]),
            detection_time=datetime.fromtimestamp(data["detection_time"], UTC),
            level=data.get("level") or DEFAULT_LOG_LEVEL,
            culprit=data.get("culprit") or "",
            initial_issue_priority=data.get("initial_issue_priority"),
            assignee=data.get("assignee"),
        )


@dataclass(frozen=True)
class NormalisedOccurrence:
    """What the consumer processes: the occurrence, and the event to save (None when the
    event must be looked up by `occurrence.event_id`)."""

    occurrence: IssueOccurrence
    event_data: dict[str, Any] | None
    event_validation: EventValidation | None
    is_buffered_spans: bool


def normalise_occurrence(
    payload: Mapping[str, Any],
    *,
    resolve_assignee: AssigneeResolver,
    now: datetime,
    types: GroupTypeRegistry = registry,
) -> NormalisedOccurrence:
    """Validate and normalise an occurrence message (payload_type "occurrence" or none).

    Promises, as spec A3.1:
      * `id` (and `event_id`) parse as a UUID in any textual form and become 32 hex;
      * each fingerprint part becomes its MD5; the fingerprint must be a non-empty list
        of strings (an empty one could never be grouped);
      * `level` defaults to "info", `culprit` is taken only if truthy (else ""),
        `initial_issue_priority` (or its newer name `priority`) defaults to the type's
        default priority, which also means an unknown `type` is rejected;
      * `detection_time` is epoch seconds or ISO-8601; a naive time is UTC;
      * `assignee`, when truthy, is whatever `resolve_assignee` makes of it;
      * with an `event`: its project_id must equal the occurrence's, an event id must
        be somewhere (the top-level one wins; without one the occurrence takes the
        event's, as given), and the event data is built, validated and given its
        metadata title; without an `event`, `event_id` is required.
    A mismatch of the top-level and the event's event ids is kept: `check_event_ids`
    rejects it when the event is saved.

    Unlike the reference, a missing or null `evidence_data` / `evidence_display` is
    rejected here, before any event is saved, rather than failing half-way later.

    Raises InvalidEventPayloadError with the reason; EventPayloadValidationError when
    the embedded event fails both event schemas.
    """
    if not isinstance(payload, Mapping):
        raise InvalidEventPayloadError("payload must be a JSON object")

    occurrence_id = _uuid_hex(_required(payload, "id"), "id")
    project_id = _int(_required(payload, "project_id"), "project_id")
    fingerprint = hash_fingerprint(_fingerprint(_required(payload, "fingerprint")))
    issue_title = _str(_required(payload, "issue_title"), "issue_title")
    # The key must be there; the wire schema lets it be null, which shows as no subtitle.
    subtitle = _optional_str(_required(payload, "subtitle"), "subtitle") or ""
    group_type = _group_type(_required(payload, "type"), types)
    detection_time = parse_detection_time(_required(payload, "detection_time"))
    evidence_data = _evidence_data(payload.get("evidence_data"))
    evidence_display = _evidence_display(payload.get("evidence_display"))
    resource_id = _optional_str(payload.get("resource_id"), "resource_id")
    level = _optional_str(payload.get("level"), "level") or DEFAULT_LOG_LEVEL
    culprit = _optional_str(payload.get("culprit"), "culprit") or ""
    priority = payload.get("initial_issue_priority")
    if priority is None:
        priority = payload.get("priority")
    if priority is None:
        priority = int(group_type.default_priority)
    priority = _int(priority, "initial_issue_priority")

    assignee: str | None = None
    raw_assignee = payload.get("assignee")
    if raw_assignee and isinstance(raw_assignee, str):
        # An unparsable or foreign assignee is not an error: the issue is just unassigned.
        assignee = resolve_assignee(raw_assignee)

    top_event_id = payload.get("event_id")
    event_id = _uuid_hex(top_event_id, "event_id") if top_event_id else None
    is_buffered_spans = bool(payload.get("is_buffered_spans", payload.get("is_buffered_segment")))

    event = payload.get("event")
    event_data: dict[str, Any] | None = None
    validation: EventValidation | None = None
    if event is not None:
        if not isinstance(event, Mapping):
            raise InvalidEventPayloadError("event must be a JSON object")
        if event.get("project_id") != project_id:
            raise InvalidEventPayloadError(
                f"project_id in occurrence ({project_id}) is different from project_id in "
                f"event ({event.get('project_id')})"
            )
        inner_event_id = event.get("event_id")
        if not event_id and not inner_event_id:
            raise InvalidEventPayloadError("Payload must contain an event_id")
        data_event_id = _uuid_hex(inner_event_id or event_id, "event.event_id")
        if event_id is None:
            # Kept as given, as the reference does: a non-hex form then fails the
            # event-id check when the event is saved.
            event_id = _str(inner_event_id, "event.event_id")
        built = build_event_data(
            event, event_id=data_event_id, level=level, project_id=project_id, now=now
        )
        validation = validate_event_data(built)
        event_data = finish_event_data(built, issue_title)
    elif event_id is None:
        raise InvalidEventPayloadError("Payload must contain either event_id or event_data")

    occurrence = IssueOccurrence(
        id=occurrence_id,
        project_id=project_id,
        event_id=event_id,
        fingerprint=fingerprint,
        issue_title=issue_title,
        subtitle=subtitle,
        resource_id=resource_id,
        evidence_data=evidence_data,
        evidence_display=evidence_display,
        type=group_type,
        detection_time=detection_time,
        level=level,
        culprit=culprit,
        initial_issue_priority=priority,
        assignee=assignee,
    )
    return NormalisedOccurrence(occurrence, event_data, validation, is_buffered_spans)


def check_event_ids(occurrence: IssueOccurrence, event_data: Mapping[str, Any]) -> None:
    """Before saving an embedded event: the occurrence and the event must name the same
    event. ValueError (which the consumer turns into InvalidEventPayloadError) if not."""
    if occurrence.event_id != event_data.get("event_id"):
        raise ValueError(
            f"event_id in occurrence({occurrence.event_id}) is different from event_id in "
            f"event_data({event_data.get('event_id')})"
        )


def check_occurrence_event(occurrence: IssueOccurrence, event_id: str) -> None:
    """When storing an occurrence with its event: they must have the same event id."""
    if occurrence.event_id != event_id:
        raise ValueError("IssueOccurrence must have the same event_id as the passed Event")


def parse_detection_time(value: object) -> datetime:
    """An aware UTC datetime from epoch seconds or an ISO-8601 string (naive ⇒ UTC);
    InvalidEventPayloadError for anything else."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise InvalidEventPayloadError("detection_time must be a finite number")
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            raise InvalidEventPayloadError("detection_time is out of range") from None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidEventPayloadError(
                f"detection_time is not an ISO-8601 date-time: {value!r}"
            ) from None
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    raise InvalidEventPayloadError("detection_time must be epoch seconds or an ISO-8601 string")


def _required(payload: Mapping[str, Any], key: str) -> Any:
    if key not in payload:
        raise InvalidEventPayloadError(f"Missing required field: {key}")
    return payload[key]


def _uuid_hex(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise InvalidEventPayloadError(f"{name} must be a UUID string")
    try:
        return uuid_hex(value)
    except ValueError:
        raise InvalidEventPayloadError(f"{name} is not a valid UUID: {value!r}") from None


def _int(value: object, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidEventPayloadError(f"{name} must be an integer")
    return value


def _str(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise InvalidEventPayloadError(f"{name} must be a string")
    return value


def _optional_str(value: object, name: str) -> str | None:
    return None if value is None else _str(value, name)


def _fingerprint(value: object) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(part, str) for part in value):
        raise InvalidEventPayloadError("fingerprint must be a list of strings")
    if not value:
        raise InvalidEventPayloadError("fingerprint must be non-empty")
    return value


def _group_type(value: object, types: GroupTypeRegistry) -> GroupType:
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidEventPayloadError("type must be an integer")
    try:
        return types.get_by_id(value)
    except ValueError as exc:
        raise InvalidEventPayloadError(str(exc)) from None


def _evidence_data(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidEventPayloadError("evidence_data must be an object")
    return value


def _evidence_display(value: object) -> tuple[IssueEvidence, ...]:
    if not isinstance(value, list):
        raise InvalidEventPayloadError("evidence_display must be a list")
    rows = []
    for index, row in enumerate(value):
        if not (
            isinstance(row, dict)
            and isinstance(row.get("name"), str)
            and isinstance(row.get("value"), str)
            and isinstance(row.get("important"), bool)
        ):
            raise InvalidEventPayloadError(
                f"evidence_display[{index}] must be an object with name, value (strings) "
                "and important (a boolean)"
            )
        rows.append(IssueEvidence(row["name"], row["value"], row["important"]))
    return tuple(rows)
