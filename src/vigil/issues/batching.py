"""How the occurrence consumer orders a batch (spec A6): split by issue key, serial
within a key, and the optional pruning of status changes. No I/O.

Items are anything (decoded payloads, or the consumer's own wrappers around them); the
functions take a callable that gives each item's payload or kind, so the consumer keeps
its offsets and ids beside the payload.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from vigil.db.ids import in_range

T = TypeVar("T")

PRUNE_STATUS_CHANGES_FEATURE = "organizations:occurence-consumer-prune-status-changes"
"""The reference's name for the pruning feature, misspelling included: the name operators
already use."""

PRUNE_STATUS_CHANGES_ALIAS = "organizations:occurrence-consumer-prune-status-changes"
"""The correctly spelled name, accepted as well."""

DEDUPE_TTL_SECONDS = 300
"""How long a processed message id is remembered, so a re-delivered one is skipped."""

BatchKey = tuple[str, int | None]
"""(raw first fingerprint part, project id): the unit of serial processing."""


def batch_key(payload: object) -> BatchKey:
    """The key a decoded message is processed under: its first fingerprint part as the
    producer sent it (not hashed; "" when there is none) and its project id (None when
    missing or not a possible row id). Never raises: a malformed message still gets a
    key and fails later, in its own group's turn."""
    if not isinstance(payload, Mapping):
        return ("", None)
    fingerprint = payload.get("fingerprint")
    first = fingerprint[0] if isinstance(fingerprint, list) and fingerprint else ""
    raw_project = payload.get("project_id")
    # A project id beyond 64 bits names no project, and must not reach the database
    # (SQLite raises OverflowError for it, which would fail the whole batch's ordering).
    project_id = raw_project if isinstance(raw_project, int) else None
    if isinstance(raw_project, bool) or (project_id is not None and not in_range(project_id)):
        project_id = None
    return (first if isinstance(first, str) else "", project_id)


def split_batch(items: Iterable[T], key: Callable[[T], Hashable]) -> list[list[T]]:
    """The items grouped by `key`, each group in arrival order, the groups in the order
    their first item arrived. Groups may run concurrently; a group runs serially."""
    groups: dict[Hashable, list[T]] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    return list(groups.values())


def split_payloads(payloads: Iterable[Mapping[str, Any]]) -> list[list[Mapping[str, Any]]]:
    """`split_batch` for decoded payloads, keyed by `batch_key`."""
    return split_batch(payloads, batch_key)


PRUNE_STATUS_CHANGES_NAMES: frozenset[str] = frozenset(
    name
    for spelling in (PRUNE_STATUS_CHANGES_FEATURE, PRUNE_STATUS_CHANGES_ALIAS)
    for name in (spelling, spelling.removeprefix("organizations:"))
)
"""Every name the pruning feature is read under: either spelling, with or without the
"organizations:" prefix."""


def prunes_status_changes(organization_features: Collection[str]) -> bool:
    """Whether an organization has status-change pruning on (any of
    `PRUNE_STATUS_CHANGES_NAMES`)."""
    return any(feature in PRUNE_STATUS_CHANGES_NAMES for feature in organization_features)


@dataclass(frozen=True)
class Pruned(Generic[T]):
    """A group after pruning: the items to process, in order, and how many status
    changes were dropped (for the metric)."""

    items: list[T]
    dropped: int


def prune_status_changes(items: Sequence[T], is_status_change: Callable[[T], bool]) -> Pruned[T]:
    """Keep every occurrence in order, and of the status changes only the last, moved
    after all occurrences: [SC1, OCC1, SC2, OCC2] ⇒ [OCC1, OCC2, SC2]. A group without
    status changes is returned unchanged."""
    others = [item for item in items if not is_status_change(item)]
    changes = [item for item in items if is_status_change(item)]
    if not changes:
        return Pruned(list(items), 0)
    return Pruned([*others, changes[-1]], len(changes) - 1)


def is_status_change_payload(payload: object) -> bool:
    """Whether a decoded message is a status change (payload_type "status_change")."""
    return isinstance(payload, Mapping) and payload.get("payload_type") == "status_change"


def dedupe_key(message_id: object) -> str:
    """The key under which a processed message id is remembered for
    DEDUPE_TTL_SECONDS (the raw id as sent, not normalised)."""
    return f"occurrence_consumer.process_occurrence_group.{message_id}"


def deal_by_project(
    groups: Sequence[Sequence[tuple[int, Mapping[str, Any]]]], workers: int
) -> list[list[int]]:
    """The groups' positions dealt to at most `workers` shares, all the groups of a
    project in one share (in batch order), the largest project first to the least loaded
    share. A share is applied in chunk transactions on one thread; keeping a project on
    one thread means two threads never hold its counters, quota buckets and
    environments at once, which chunk transactions would otherwise make them wait for,
    or deadlock on."""
    by_project: dict[object, list[int]] = {}
    for number, group in enumerate(groups):
        project = batch_key(group[0][1])[1] if group else None
        by_project.setdefault(project, []).append(number)
    sizes = {key: sum(len(groups[n]) for n in numbers) for key, numbers in by_project.items()}
    shares: list[list[int]] = [[] for _ in range(max(1, min(workers, len(by_project))))]
    loads = [0] * len(shares)
    for key in sorted(by_project, key=lambda k: -sizes[k]):
        least = loads.index(min(loads))
        shares[least].extend(by_project[key])
        loads[least] += sizes[key]
    return [sorted(share) for share in shares if share]
