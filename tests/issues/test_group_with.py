"""`group_with` makes what `dataclasses.replace` makes, and refuses what it refuses."""

from __future__ import annotations

from dataclasses import FrozenInstanceError, replace
from datetime import UTC, datetime

import pytest

from vigil.issues.group_store import Group, group_with

AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
GROUP = Group(
    id=1,
    project_id=2,
    short_id=3,
    type=4001,
    title="t",
    culprit="c",
    level=40,
    message="m",
    platform=None,
    status=0,
    substatus=None,
    priority=75,
    priority_locked=False,
    first_seen=AT,
    last_seen=AT,
    active_at=AT,
    resolved_at=None,
    times_seen=1,
    first_release_id=None,
    assignee=None,
    data={"k": "v"},
)


def test_group_with_is_replace() -> None:
    changes = {"times_seen": 5, "last_seen": AT.replace(hour=13), "data": {"k": "w"}}
    made = group_with(GROUP, changes)
    assert made == replace(GROUP, **changes)
    assert GROUP.times_seen == 1 and GROUP.data == {"k": "v"}  # the original is untouched
    with pytest.raises(FrozenInstanceError):
        made.times_seen = 6  # type: ignore[misc]


def test_group_with_refuses_a_field_the_group_does_not_have() -> None:
    with pytest.raises(TypeError, match="date_added"):
        group_with(GROUP, {"date_added": AT})
