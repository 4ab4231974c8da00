"""Server options on both databases: set, read back, replace; and the crons killswitch
value read leniently."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine

from vigil.monitors.consumer import KillswitchCache
from vigil.options import (
    CRONS_DISABLE_CHECKIN,
    get_option,
    killswitch_organizations,
    list_options,
    set_option,
)


def test_set_get_replace_and_list(engine: Engine) -> None:
    with engine.begin() as conn:
        assert get_option(conn, "a.b") is None
        assert get_option(conn, "a.b", []) == []
        set_option(conn, "a.b", [{"organization_id": 1}])
        set_option(conn, "c", {"x": 1.5})
    with engine.begin() as conn:
        assert get_option(conn, "a.b") == [{"organization_id": 1}]
        set_option(conn, "a.b", False, now=datetime(2026, 1, 1, tzinfo=UTC))
    with engine.connect() as conn:
        assert list_options(conn) == {"a.b": False, "c": {"x": 1.5}}


def test_an_empty_key_is_refused(engine: Engine) -> None:
    with engine.begin() as conn, pytest.raises(ValueError):
        set_option(conn, "", 1)


@pytest.mark.parametrize(
    ("value", "organizations"),
    [
        ([], set()),
        (None, set()),
        ([{"organization_id": 3}, {"organization_id": 7}], {3, 7}),
        ([{"organization_id": "3"}, {"organization_id": True}, 4, {"org": 5}], set()),
        ({"organization_id": 3}, set()),
    ],
)
def test_killswitch_value(value: Any, organizations: set[int]) -> None:
    assert killswitch_organizations(value) == organizations


def test_killswitch_is_read_again_only_after_its_cache_time(engine: Engine) -> None:
    now = [0.0]
    cache = KillswitchCache(engine, ttl_s=5.0, clock=lambda: now[0])
    assert cache.get() == frozenset()
    with engine.begin() as conn:
        set_option(conn, CRONS_DISABLE_CHECKIN, [{"organization_id": 9}])
    now[0] = 4.9
    assert cache.get() == frozenset()
    now[0] = 5.0
    assert cache.get() == frozenset({9})
