"""Environments and releases as the issue platform records them (spec A3.4 step 5): the
release an event names, the environment it ran in, and the per-group and per-release
bookkeeping. Creation races are settled by unique keys (see `rows.insert_if_absent`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, bindparam, select, update

from vigil.db.tables import (
    environment,
    group_environment,
    group_release,
    release,
    release_project,
    release_project_environment,
)
from vigil.issues.rows import increment, insert_if_absent

NO_ENVIRONMENT = ""
"""The name of the environment of events that name none (the reference's choice)."""

MAX_ENVIRONMENT_CHARS = 64
MAX_RELEASE_CHARS = 250


# Statements run for every occurrence are built once (building one costs more than
# running it on SQLite).
_ENVIRONMENT_ID = select(environment.c.id).where(
    environment.c.project_id == bindparam("p_project"), environment.c.name == bindparam("p_name")
)
_GROUP_ENVIRONMENT = select(group_environment.c.group_id).where(
    group_environment.c.group_id == bindparam("p_group"),
    group_environment.c.environment_id == bindparam("p_environment"),
)


def get_or_create_environment(conn: Connection, project_id: int, name: str, now: datetime) -> int:
    """The id of the project's environment `name`, created if new."""
    key = {"p_project": project_id, "p_name": name}
    found = conn.execute(_ENVIRONMENT_ID, key).scalar_one_or_none()
    if found is not None:
        return int(found)
    insert_if_absent(conn, environment, {"project_id": project_id, "name": name, "date_added": now})
    return int(conn.execute(_ENVIRONMENT_ID, key).scalar_one())


def get_or_create_release(
    conn: Connection, organization_id: int, project_id: int, version: str, now: datetime
) -> int:
    """The id of the organization's release `version`, created if new, and recorded as
    seen in the project."""
    query = select(release.c.id).where(
        release.c.organization_id == organization_id, release.c.version == version
    )
    found = conn.execute(query).scalar_one_or_none()
    if found is None:
        insert_if_absent(
            conn,
            release,
            {"organization_id": organization_id, "version": version, "date_added": now},
        )
        found = conn.execute(query).scalar_one()
    release_id = int(found)
    exists = conn.execute(
        select(release_project.c.release_id).where(
            release_project.c.release_id == release_id,
            release_project.c.project_id == project_id,
        )
    ).first()
    if exists is None:
        insert_if_absent(
            conn,
            release_project,
            {"release_id": release_id, "project_id": project_id, "new_groups": 0},
        )
    return release_id


def ensure_group_environment(
    conn: Connection,
    group_id: int,
    environment_id: int,
    release_id: int | None,
    seen: datetime,
    *,
    new_group: bool = False,
) -> bool:
    """Record that the group was seen in the environment; True if that is new.
    `new_group`: the group was created in this transaction, so it has no environment yet
    (the insert alone says so)."""
    if not new_group:
        exists = conn.execute(
            _GROUP_ENVIRONMENT, {"p_group": group_id, "p_environment": environment_id}
        ).first()
        if exists is not None:
            return False
    return insert_if_absent(
        conn,
        group_environment,
        {
            "group_id": group_id,
            "environment_id": environment_id,
            "first_release_id": release_id,
            "first_seen": seen,
        },
    )


def count_new_group(
    conn: Connection,
    project_id: int,
    release_id: int,
    environment_id: int,
    seen: datetime,
) -> None:
    """A new group first seen in a release: ReleaseProject.new_groups and
    ReleaseProjectEnvironment.new_issues_count grow by one."""
    increment(
        conn,
        release_project,
        {"release_id": release_id, "project_id": project_id},
        "new_groups",
    )
    increment(
        conn,
        release_project_environment,
        {"release_id": release_id, "project_id": project_id, "environment_id": environment_id},
        "new_issues_count",
        insert_values={"first_seen": seen, "last_seen": seen},
    )


def record_group_release(
    conn: Connection,
    project_id: int,
    group_id: int,
    release_id: int,
    environment_name: str,
    seen: datetime,
) -> None:
    """Get-or-create the group's row for (release, environment), moving last_seen on."""
    key = (
        group_release.c.group_id == group_id,
        group_release.c.release_id == release_id,
        group_release.c.environment == environment_name,
    )
    row = conn.execute(select(group_release.c.id, group_release.c.last_seen).where(*key)).first()
    if row is None and insert_if_absent(
        conn,
        group_release,
        {
            "project_id": project_id,
            "group_id": group_id,
            "release_id": release_id,
            "environment": environment_name,
            "first_seen": seen,
            "last_seen": seen,
        },
    ):
        return
    conn.execute(
        update(group_release).where(*key, group_release.c.last_seen < seen).values(last_seen=seen)
    )
