"""Server options on both databases: set, read back, replace; the crons killswitch
value read leniently; and `vigil option set` refusing keys and values vigil would not
read."""

from __future__ import annotations

import re
import subprocess
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine

from tests.conftest import run_vigil
from tests.support.tenants import make_tenant
from vigil.config import Settings
from vigil.monitors.consumer import KillswitchCache
from vigil.option_checks import check_option
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


# --- `vigil option set` checks what it stores ------------------------------------------


@pytest.mark.parametrize(
    ("key", "value"),
    [
        (CRONS_DISABLE_CHECKIN, [{"organization_id": 1}]),
        (CRONS_DISABLE_CHECKIN, []),
        ("issues.occurrence-consumer.rate-limit.enabled", True),
        ("issues.occurrence-consumer.rate-limit.quota", {"limit": 50}),
        ("crons.system_incidents.pct_deviation_anomaly_threshold", -12.5),
        ("crons.system_incidents.tick_decision_window", 5),
        ("crons.system_incidents.tick_decision_window", None),  # back to the default
    ],
)
def test_known_options_take_their_shape(key: str, value: Any) -> None:
    check_option(key, value)


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("crons.organisation.disable-check-in", [], "unknown option"),
        (CRONS_DISABLE_CHECKIN, {"organization_id": 1}, "takes a list of"),
        (CRONS_DISABLE_CHECKIN, [1, 2], "takes a list of"),
        ("issues.occurrence-consumer.rate-limit.enabled", "yes", "takes true or false"),
        ("issues.occurrence-consumer.rate-limit.quota", {"limit": 0}, "takes {"),
        ("issues.occurrence-consumer.rate-limit.quota", {"window": 60}, "takes {"),
        (
            "issues.occurrence-consumer.rate-limit.quota",
            {"window_seconds": 60, "granularity_seconds": 120},
            "takes {",
        ),
        ("crons.system_incidents.tick_decision_window", 0, "positive whole number"),
        ("crons.system_incidents.pct_deviation_anomaly_threshold", float("nan"), "a number"),
    ],
)
def test_unknown_keys_and_wrong_shapes_are_refused(key: str, value: Any, reason: str) -> None:
    with pytest.raises(ValueError, match=re.escape(reason)):
        check_option(key, value)


def test_the_command_refuses_a_typo_and_stores_a_good_value(
    stack: Settings, engine: Engine
) -> None:
    def vigil(*args: str) -> subprocess.CompletedProcess[str]:
        return run_vigil(stack, "option", *args)

    # A fresh install lists what it reads, none of it set; get says so.
    listed = vigil("list")
    assert listed.returncode == 0, listed.stderr
    assert f"{CRONS_DISABLE_CHECKIN}\t(not set: the default)" in listed.stdout.splitlines()
    unset = vigil("get", CRONS_DISABLE_CHECKIN)
    assert (unset.returncode, unset.stdout) == (0, "null\n")
    assert "is not set: vigil uses its default" in unset.stderr
    typo = vigil("get", "crons.organisation.disable-check-in")
    assert typo.returncode != 0
    assert "unknown option 'crons.organisation.disable-check-in'" in typo.stderr

    refused = vigil("set", CRONS_DISABLE_CHECKIN, '{"organization_id": 1}')
    assert refused.returncode != 0
    assert "takes a list of" in refused.stderr
    with engine.connect() as conn:
        assert get_option(conn, CRONS_DISABLE_CHECKIN) is None
    stored = vigil("set", CRONS_DISABLE_CHECKIN, '[{"organization_id": 1}]')
    assert stored.returncode == 0, stored.stderr
    forced = vigil("set", "my.own.note", '"kept"', "--force")
    assert forced.returncode == 0, forced.stderr
    with engine.connect() as conn:
        assert get_option(conn, CRONS_DISABLE_CHECKIN) == [{"organization_id": 1}]
        assert get_option(conn, "my.own.note") == "kept"
    listed = vigil("list").stdout.splitlines()
    assert f'{CRONS_DISABLE_CHECKIN}\t[{{"organization_id": 1}}]' in listed
    assert listed[-1] == 'my.own.note\t"kept"'
    assert vigil("get", "my.own.note").stdout == '"kept"\n'


def test_enabling_a_feature_vigil_does_not_read_warns(stack: Settings, engine: Engine) -> None:
    make_tenant(engine, "acme")

    def feature(*args: str) -> subprocess.CompletedProcess[str]:
        return run_vigil(stack, "feature", *args, "--org", "acme")

    known = feature("enable", "organizations:occurrence-consumer-prune-status-changes")
    assert known.returncode == 0, known.stderr
    assert known.stderr == ""
    typo = feature("enable", "organizations:occurrence-consumer-prune-status-change")
    assert typo.returncode == 0, typo.stderr  # stored all the same
    assert "warning: vigil reads no feature named" in typo.stderr
    assert "organizations:profile-file-io-main-thread-ingest" in typo.stderr
    listed = feature("list").stdout.splitlines()
    assert "organizations:occurrence-consumer-prune-status-change\ton" in listed
