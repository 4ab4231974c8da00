"""The enums of the issue platform: group status and substatus, priority, category, log
levels, activity and history kinds, inbox reasons and the two payload types of the
`ingest-occurrences` topic.

Integer values are the reference platform's (what the database stores and the wire
carries); the lower-case string forms are what the API shows. No I/O.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class GroupStatus(IntEnum):
    """The status of a group (issue)."""

    UNRESOLVED = 0
    RESOLVED = 1
    IGNORED = 2
    MUTED = 2  # the reference's older name for IGNORED: an alias, not a new member
    PENDING_DELETION = 3
    DELETION_IN_PROGRESS = 4
    PENDING_MERGE = 5
    REPROCESSING = 6

    @property
    def label(self) -> str:
        """The API name ("unresolved", "resolved", "ignored", ...)."""
        return self.name.lower()


class GroupSubStatus(IntEnum):
    """Refines UNRESOLVED and IGNORED; null for every other status."""

    UNTIL_ESCALATING = 1
    ESCALATING = 2
    ONGOING = 3
    UNTIL_CONDITION_MET = 4
    FOREVER = 5
    REGRESSED = 6
    NEW = 7

    @property
    def label(self) -> str:
        """The API / history name, e.g. "archived_until_escalating" or "new"."""
        return SUBSTATUS_NAMES[self]

    @classmethod
    def from_label(cls, label: str) -> GroupSubStatus:
        """The substatus with that API name; ValueError for anything else."""
        try:
            return _SUBSTATUS_BY_NAME[label]
        except KeyError:
            raise ValueError(f"{label!r} is not a group substatus") from None


UNRESOLVED_SUBSTATUSES: frozenset[GroupSubStatus] = frozenset(
    {
        GroupSubStatus.ONGOING,
        GroupSubStatus.ESCALATING,
        GroupSubStatus.REGRESSED,
        GroupSubStatus.NEW,
    }
)
"""The substatuses an UNRESOLVED group may have."""

IGNORED_SUBSTATUSES: frozenset[GroupSubStatus] = frozenset(
    {
        GroupSubStatus.UNTIL_ESCALATING,
        GroupSubStatus.FOREVER,
        GroupSubStatus.UNTIL_CONDITION_MET,
    }
)
"""The substatuses an IGNORED group may have."""

SUBSTATUS_NAMES: dict[GroupSubStatus, str] = {
    GroupSubStatus.UNTIL_ESCALATING: "archived_until_escalating",
    GroupSubStatus.UNTIL_CONDITION_MET: "archived_until_condition_met",
    GroupSubStatus.FOREVER: "archived_forever",
    GroupSubStatus.ESCALATING: "escalating",
    GroupSubStatus.ONGOING: "ongoing",
    GroupSubStatus.REGRESSED: "regressed",
    GroupSubStatus.NEW: "new",
}
_SUBSTATUS_BY_NAME = {name: sub for sub, name in SUBSTATUS_NAMES.items()}


class PriorityLevel(IntEnum):
    """Group priority. OK has no string form: it is never shown as a priority."""

    OK = 0
    LOW = 25
    MEDIUM = 50
    HIGH = 75

    @property
    def label(self) -> str:
        """ "low", "medium" or "high"; ValueError for OK, which has no string form."""
        try:
            return PRIORITY_NAMES[self]
        except KeyError:
            raise ValueError(f"{self!r} has no string form") from None

    @classmethod
    def from_label(cls, label: str) -> PriorityLevel:
        """The priority named "low", "medium" or "high"; ValueError for anything else."""
        for level, name in PRIORITY_NAMES.items():
            if name == label:
                return level
        raise ValueError(f"{label!r} is not a priority")


PRIORITY_NAMES: dict[PriorityLevel, str] = {
    PriorityLevel.LOW: "low",
    PriorityLevel.MEDIUM: "medium",
    PriorityLevel.HIGH: "high",
}


class GroupCategory(IntEnum):
    """The family a group type belongs to (what `issue.category:` searches on)."""

    ERROR = 1
    PERFORMANCE = 2
    PROFILE = 3  # deprecated in the reference; kept so the value is never reused
    CRON = 4
    REPLAY = 5
    FEEDBACK = 6
    UPTIME = 7
    METRIC_ALERT = 8

    @property
    def label(self) -> str:
        """The search / API name ("error", "cron", "metric_alert", ...)."""
        return self.name.lower()


LOG_LEVELS: dict[str, int] = {
    "debug": 10,
    "info": 20,
    "warning": 30,
    "error": 40,
    "fatal": 50,
}
"""Log level name → the integer stored as group.level (Python's logging values)."""

LOG_LEVEL_NAMES: dict[int, str] = {number: name for name, number in LOG_LEVELS.items()}
"""group.level integer → its name, for the API."""

DEFAULT_LOG_LEVEL = "info"
"""The level of an occurrence that names none."""


def log_level_int(name: str) -> int:
    """The integer for a log level name; ValueError for a name that is not one of
    debug, info, warning, error, fatal."""
    try:
        return LOG_LEVELS[name]
    except KeyError:
        raise ValueError(f"{name!r} is not a log level") from None


class ActivityType(IntEnum):
    """Kinds of entries in a group's activity log, with the reference's values (these
    are not in the spec's tables; they are the reference's public enum values, kept so
    that exported activity means the same thing)."""

    SET_RESOLVED = 1
    SET_UNRESOLVED = 2
    SET_IGNORED = 3
    SET_REGRESSION = 6
    CREATE_ISSUE = 7
    NOTE = 8
    FIRST_SEEN = 9
    ASSIGNED = 11
    UNASSIGNED = 12
    AUTO_SET_ONGOING = 24
    SET_ESCALATING = 25
    SET_PRIORITY = 26


class GroupHistoryStatus(StrEnum):
    """What a group-history row records. The reference stores integers; vigil stores
    these names, which are the ones the spec and the API use."""

    UNRESOLVED = "unresolved"
    RESOLVED = "resolved"
    UNIGNORED = "unignored"
    ONGOING = "ongoing"
    REGRESSED = "regressed"
    ESCALATING = "escalating"
    ARCHIVED_UNTIL_ESCALATING = "archived_until_escalating"
    ARCHIVED_UNTIL_CONDITION_MET = "archived_until_condition_met"
    ARCHIVED_FOREVER = "archived_forever"
    PRIORITY_HIGH = "priority_high"
    PRIORITY_MEDIUM = "priority_medium"
    PRIORITY_LOW = "priority_low"


class InboxReason(IntEnum):
    """Why a group is (back) in the inbox of issues to review."""

    NEW = 0
    UNIGNORED = 1
    REGRESSION = 2
    MANUAL = 3
    REPROCESSED = 4
    ESCALATING = 5
    ONGOING = 6


class InboxRemoval(StrEnum):
    """Why a group left the inbox."""

    RESOLVED = "resolved"
    IGNORED = "ignored"
    MARK_REVIEWED = "mark_reviewed"


class PayloadType(StrEnum):
    """The two kinds of message on `ingest-occurrences` (field `payload_type`)."""

    OCCURRENCE = "occurrence"
    STATUS_CHANGE = "status_change"
