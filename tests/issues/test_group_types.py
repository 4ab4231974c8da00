"""The group-type registry holds the reference's baseline types with their settings
(spec A8)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from vigil.issues.enums import GroupCategory, PriorityLevel
from vigil.issues.group_types import (
    GroupType,
    GroupTypeRegistry,
    NoiseConfig,
    Quota,
    build_registry,
    get_group_type_by_id,
    ingest_feature,
    may_ingest,
    registry,
    type_features,
)

P = GroupCategory.PERFORMANCE
LOW, MEDIUM, HIGH = PriorityLevel.LOW, PriorityLevel.MEDIUM, PriorityLevel.HIGH

# id, slug, category, released, default priority, noise ignore_limit (None = no gate)
TABLE = [
    (1, "error", GroupCategory.ERROR, True, MEDIUM, None),
    (1001, "performance_slow_db_query", P, True, LOW, 100),
    (1004, "performance_render_blocking_asset_span", P, True, LOW, 3),
    (1006, "performance_n_plus_one_db_queries", P, True, LOW, 3),
    (1007, "performance_consecutive_db_queries", P, True, LOW, 15),
    (1008, "performance_file_io_main_thread", P, True, LOW, 3),
    (1009, "performance_consecutive_http", P, True, LOW, 5),
    (1010, "performance_n_plus_one_api_calls", P, True, LOW, None),
    (1011, "performance_m_n_plus_one_db_queries", P, True, LOW, 3),
    (1012, "performance_uncompressed_assets", P, True, LOW, 100),
    (1013, "performance_db_main_thread", P, True, LOW, 3),
    (1015, "performance_large_http_payload", P, True, LOW, 3),
    (1016, "performance_http_overhead", P, False, LOW, 20),
    (1017, "performance_duration_regression", P, False, LOW, None),
    (1018, "performance_p95_endpoint_regression", P, True, MEDIUM, None),
    (1019, "performance_streamed_spans_exp", P, False, LOW, None),
    (2001, "profile_file_io_main_thread", P, False, LOW, None),
    (2002, "profile_image_decode_main_thread", P, False, LOW, None),
    (2003, "profile_json_decode_main_thread", P, False, LOW, None),
    (2004, "profile_core_data_main_exp", P, False, LOW, None),
    (2006, "profile_view_is_slow_experimental", P, False, LOW, None),
    (2007, "profile_regex_main_thread", P, True, LOW, None),
    (2008, "profile_frame_drop_experimental", P, False, LOW, None),
    (2009, "profile_frame_drop", P, True, LOW, 2000),
    (2010, "profile_function_regression_exp", P, False, LOW, None),
    (2011, "profile_function_regression", P, True, MEDIUM, None),
    (4001, "monitor_check_in_failure", GroupCategory.CRON, True, HIGH, None),
    (4002, "monitor_check_in_timeout", GroupCategory.CRON, True, HIGH, None),
    (4003, "monitor_check_in_missed", GroupCategory.CRON, True, HIGH, None),
    (5001, "replay_click_dead", GroupCategory.REPLAY, False, MEDIUM, None),
    (5002, "replay_click_rage", GroupCategory.REPLAY, True, MEDIUM, None),
    (5003, "replay_hydration_error", GroupCategory.REPLAY, True, MEDIUM, None),
    (6001, "feedback", GroupCategory.FEEDBACK, True, MEDIUM, None),
    (7001, "uptime_domain_failure", GroupCategory.UPTIME, False, HIGH, None),
    (8002, "metric_issue_poc", GroupCategory.METRIC_ALERT, False, HIGH, None),
]


@pytest.mark.parametrize(("type_id", "slug", "category", "released", "priority", "limit"), TABLE)
def test_baseline_type(
    type_id: int,
    slug: str,
    category: GroupCategory,
    released: bool,
    priority: PriorityLevel,
    limit: int | None,
) -> None:
    gt = get_group_type_by_id(type_id)
    assert (gt.type_id, gt.slug, gt.category, gt.released) == (type_id, slug, category, released)
    assert gt.default_priority is priority
    assert gt.description
    if limit is None:
        assert gt.noise_config is None
    else:
        assert gt.noise_config == NoiseConfig(ignore_limit=limit, expiry_time=timedelta(hours=24))
    assert registry.get_by_slug(slug) is gt


def test_registry_holds_exactly_the_baseline_types() -> None:
    assert [gt.type_id for gt in registry] == [row[0] for row in TABLE]
    assert len(registry) == len(TABLE)


# id: (auto-resolve, escalation detection, in default search, creation quota)
DEFAULT_QUOTA = Quota(window_seconds=3600, granularity_seconds=60, limit=5)
FLAGS = {
    1001: (True, True, True, DEFAULT_QUOTA),
    1017: (False, False, True, DEFAULT_QUOTA),
    1018: (False, False, True, DEFAULT_QUOTA),
    1019: (False, False, True, DEFAULT_QUOTA),
    2010: (False, True, True, DEFAULT_QUOTA),
    2011: (False, True, True, DEFAULT_QUOTA),
    4001: (True, True, True, Quota(3600, 60, 60_000)),
    6001: (True, True, False, Quota(3600, 60, 1000)),
    7001: (False, False, True, Quota(3600, 60, 1000)),
    8002: (False, False, True, DEFAULT_QUOTA),
}


@pytest.mark.parametrize(("type_id", "flags"), sorted(FLAGS.items()))
def test_type_flags_and_quota(type_id: int, flags: tuple[bool, bool, bool, Quota]) -> None:
    gt = get_group_type_by_id(type_id)
    assert (
        gt.enable_auto_resolve,
        gt.enable_escalation_detection,
        gt.in_default_search,
        gt.creation_quota,
    ) == flags


def test_monitor_failure_type() -> None:
    gt = get_group_type_by_id(4001)
    assert gt.description == "Crons Monitor Failed"
    assert ingest_feature(gt) is None


def test_defaults_of_a_new_type() -> None:
    gt = GroupType(9999, "some_thing", "Some thing", GroupCategory.ERROR)
    assert gt.released is False
    assert gt.default_priority is PriorityLevel.MEDIUM
    assert gt.noise_config is None
    assert gt.creation_quota == DEFAULT_QUOTA
    assert (gt.enable_auto_resolve, gt.enable_escalation_detection, gt.in_default_search) == (
        True,
        True,
        True,
    )
    assert NoiseConfig() == NoiseConfig(3, timedelta(hours=24))


@pytest.mark.parametrize("type_id", [0, 3, 1002, 4000, 99999, -1])
def test_unknown_id(type_id: int) -> None:
    with pytest.raises(ValueError) as info:
        get_group_type_by_id(type_id)
    assert str(info.value) == f"No group type with the id {type_id} is registered."


def test_unknown_slug() -> None:
    with pytest.raises(ValueError, match="No group type with the slug nope"):
        registry.get_by_slug("nope")


def test_duplicate_id_is_an_error() -> None:
    reg = build_registry()
    with pytest.raises(ValueError, match="id 4001 is already registered"):
        reg.register(GroupType(4001, "another", "Another", GroupCategory.CRON))


def test_duplicate_slug_is_an_error() -> None:
    reg = GroupTypeRegistry()
    reg.register(GroupType(10, "thing", "Thing", GroupCategory.ERROR))
    with pytest.raises(ValueError, match="slug thing is already registered"):
        reg.register(GroupType(11, "thing", "Thing again", GroupCategory.ERROR))
    assert 10 in reg and 11 not in reg


@pytest.mark.parametrize(
    ("type_id", "feature"),
    [
        (2001, "organizations:profile-file-io-main-thread-ingest"),
        (1016, "organizations:performance-http-overhead-ingest"),
        (7001, "organizations:uptime-domain-failure-ingest"),
        (8002, "organizations:metric-issue-poc-ingest"),
        (1, None),
        (4001, None),
        (6001, None),
    ],
)
def test_ingest_feature(type_id: int, feature: str | None) -> None:
    assert ingest_feature(get_group_type_by_id(type_id)) == feature


def test_unreleased_type_features() -> None:
    assert type_features(get_group_type_by_id(5001)) == (
        "organizations:replay-click-dead-visible",
        "organizations:replay-click-dead-ingest",
        "organizations:replay-click-dead-post-process-group",
    )
    assert type_features(get_group_type_by_id(5002)) == ()


@pytest.mark.parametrize(
    ("type_id", "features", "allowed"),
    [
        (4001, set(), True),
        (2001, set(), False),
        (2001, {"organizations:profile-file-io-main-thread-visible"}, False),
        (2001, {"organizations:profile-file-io-main-thread-ingest"}, True),
    ],
)
def test_may_ingest(type_id: int, features: set[str], allowed: bool) -> None:
    assert may_ingest(get_group_type_by_id(type_id), features) is allowed
