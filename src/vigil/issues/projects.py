"""The project a message names, with its organization's features: what the consumer
loads before processing (spec A3.2, A5 step 2, A6 step 1)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, select

from vigil.db.tables import organization_feature, project
from vigil.issues.batching import PRUNE_STATUS_CHANGES_NAMES
from vigil.issues.group_types import ingest_feature, registry

FEATURE_PREFIX = "organizations:"


def features_read() -> frozenset[str]:
    """The organization features vigil reads, each with and without its prefix (both
    are read): status-change pruning, and the ingest feature of each unreleased type."""
    ingest = {feature for t in registry if (feature := ingest_feature(t)) is not None}
    ingest |= {name.removeprefix(FEATURE_PREFIX) for name in ingest}
    return PRUNE_STATUS_CHANGES_NAMES | ingest


class UnknownProjectError(Exception):
    """A message names a project vigil does not have: it is dead-lettered."""


@dataclass(frozen=True)
class ProjectContext:
    """A project, its organization, and the organization's enabled features (names as
    stored, and each also with the "organizations:" prefix when stored without it)."""

    project_id: int
    organization_id: int
    features: frozenset[str]


def load_project(conn: Connection, project_id: int) -> ProjectContext:
    """The project with its organization's features; UnknownProjectError if none."""
    org_id = conn.execute(
        select(project.c.organization_id).where(project.c.id == project_id)
    ).scalar_one_or_none()
    if org_id is None:
        raise UnknownProjectError(f"project {project_id} does not exist")
    rows = conn.execute(
        select(organization_feature.c.feature).where(
            organization_feature.c.organization_id == org_id,
            organization_feature.c.enabled.is_(True),
        )
    )
    names = {r.feature for r in rows}
    # Operators may name a feature with or without the "organizations:" prefix.
    names |= {f"{FEATURE_PREFIX}{n}" for n in names if not n.startswith(FEATURE_PREFIX)}
    return ProjectContext(project_id, int(org_id), frozenset(names))


ProjectLoader = Callable[[Connection, int], ProjectContext]
"""`load_project`, or a memo of it (see `memo_loader`)."""


def memo_loader() -> ProjectLoader:
    """A `load_project` that remembers what it loaded: for one batch, so that its
    messages do not each read the same project and features again (a feature changed
    meanwhile is seen from the next batch on). Unknown projects are not remembered."""
    cache: dict[int, ProjectContext] = {}

    def load(conn: Connection, project_id: int) -> ProjectContext:
        found = cache.get(project_id)
        if found is None:
            found = cache[project_id] = load_project(conn, project_id)
        return found

    return load
