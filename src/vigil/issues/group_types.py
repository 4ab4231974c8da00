"""The group-type registry: what kinds of issue exist, and the per-type rules (category,
released or behind a feature, default priority, noise gate, creation quota, auto-resolve,
escalation detection, default search).

`registry` holds every type of the reference's baseline (spec A8); `get_group_type_by_id`
is the lookup everything else uses. No I/O.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta

from vigil.issues.enums import GroupCategory, PriorityLevel


@dataclass(frozen=True)
class NoiseConfig:
    """A type's noise gate: a new group is only created once `ignore_limit` occurrences
    of its fingerprint arrived with no more than `expiry_time` between one and the next."""

    ignore_limit: int = 3
    expiry_time: timedelta = timedelta(hours=24)


@dataclass(frozen=True)
class Quota:
    """A sliding-window rate limit: at most `limit` units per `window_seconds`, counted in
    buckets of `granularity_seconds`."""

    window_seconds: int = 3600
    granularity_seconds: int = 60
    limit: int = 5


@dataclass(frozen=True)
class GroupType:
    """One kind of issue. `type_id` is what occurrences carry in `type`."""

    type_id: int
    slug: str
    description: str
    category: GroupCategory
    released: bool = False
    default_priority: PriorityLevel = PriorityLevel.MEDIUM
    noise_config: NoiseConfig | None = None
    creation_quota: Quota = field(default_factory=Quota)
    enable_auto_resolve: bool = True
    enable_escalation_detection: bool = True
    in_default_search: bool = True

    @property
    def feature_prefix(self) -> str:
        """`organizations:<slug with dashes>`, the stem of the type's features."""
        return "organizations:" + self.slug.replace("_", "-")


def ingest_feature(group_type: GroupType) -> str | None:
    """The organization feature needed to ingest occurrences of an unreleased type
    (`organizations:<slug-with-dashes>-ingest`); None for a released type, which needs
    none."""
    if group_type.released:
        return None
    return group_type.feature_prefix + "-ingest"


def type_features(group_type: GroupType) -> tuple[str, ...]:
    """The three features an unreleased type gets (visible, ingest, post-process-group);
    empty for a released type."""
    if group_type.released:
        return ()
    stem = group_type.feature_prefix
    return (f"{stem}-visible", f"{stem}-ingest", f"{stem}-post-process-group")


def may_ingest(group_type: GroupType, organization_features: frozenset[str] | set[str]) -> bool:
    """Whether an organization with these features may ingest occurrences of this type:
    released types always, unreleased ones only with their ingest feature."""
    feature = ingest_feature(group_type)
    return feature is None or feature in organization_features


class GroupTypeRegistry:
    """Group types by id and by slug. Registering a second type with a taken id or slug
    is an error, so a typo in the table cannot silently shadow a type."""

    def __init__(self) -> None:
        self._by_id: dict[int, GroupType] = {}
        self._by_slug: dict[str, GroupType] = {}

    def register(self, group_type: GroupType) -> GroupType:
        """Add a type; ValueError if its id or slug is already registered."""
        if group_type.type_id in self._by_id:
            raise ValueError(
                f"A group type with the id {group_type.type_id} is already registered."
            )
        if group_type.slug in self._by_slug:
            raise ValueError(f"A group type with the slug {group_type.slug} is already registered.")
        self._by_id[group_type.type_id] = group_type
        self._by_slug[group_type.slug] = group_type
        return group_type

    def get_by_id(self, type_id: int) -> GroupType:
        """The type with this id; ValueError("No group type with the id N is registered.")."""
        try:
            return self._by_id[type_id]
        except (KeyError, TypeError):
            raise ValueError(f"No group type with the id {type_id} is registered.") from None

    def get_by_slug(self, slug: str) -> GroupType:
        """The type with this slug; ValueError if there is none."""
        try:
            return self._by_slug[slug]
        except KeyError:
            raise ValueError(f"No group type with the slug {slug} is registered.") from None

    def __iter__(self) -> Iterator[GroupType]:
        return iter(sorted(self._by_id.values(), key=lambda gt: gt.type_id))

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, type_id: object) -> bool:
        return type_id in self._by_id


_LOW = PriorityLevel.LOW
_MEDIUM = PriorityLevel.MEDIUM
_HIGH = PriorityLevel.HIGH
_PERF = GroupCategory.PERFORMANCE
_PROFILE = GroupCategory.PERFORMANCE  # profile-derived types are performance issues
_HOURLY_1000 = Quota(window_seconds=3600, granularity_seconds=60, limit=1000)
_CRON_QUOTA = Quota(window_seconds=3600, granularity_seconds=60, limit=60_000)


def _performance(
    type_id: int,
    slug: str,
    description: str,
    *,
    released: bool = True,
    ignore_limit: int = 3,
) -> GroupType:
    # The "performance defaults" most span-based detectors share: LOW priority and a
    # noise gate (3 unless the type raises it).
    return GroupType(
        type_id,
        slug,
        description,
        _PERF,
        released=released,
        default_priority=_LOW,
        noise_config=NoiseConfig(ignore_limit=ignore_limit),
    )


def _baseline_types() -> list[GroupType]:
    return [
        GroupType(1, "error", "Error", GroupCategory.ERROR, released=True),
        _performance(1001, "performance_slow_db_query", "Slow DB Query", ignore_limit=100),
        _performance(1004, "performance_render_blocking_asset_span", "Large Render Blocking Asset"),
        _performance(1006, "performance_n_plus_one_db_queries", "N+1 Query"),
        _performance(
            1007, "performance_consecutive_db_queries", "Consecutive DB Queries", ignore_limit=15
        ),
        _performance(1008, "performance_file_io_main_thread", "File IO on Main Thread"),
        _performance(1009, "performance_consecutive_http", "Consecutive HTTP", ignore_limit=5),
        # 1010 does not take the performance defaults: no noise gate.
        GroupType(
            1010,
            "performance_n_plus_one_api_calls",
            "N+1 API Call",
            _PERF,
            released=True,
            default_priority=_LOW,
        ),
        _performance(1011, "performance_m_n_plus_one_db_queries", "MN+1 Query"),
        _performance(
            1012, "performance_uncompressed_assets", "Uncompressed Asset", ignore_limit=100
        ),
        _performance(1013, "performance_db_main_thread", "DB on Main Thread"),
        _performance(1015, "performance_large_http_payload", "Large HTTP payload"),
        _performance(
            1016, "performance_http_overhead", "HTTP/1.1 Overhead", released=False, ignore_limit=20
        ),
        GroupType(
            1017,
            "performance_duration_regression",
            "Transaction Duration Regression (Experimental)",
            _PERF,
            default_priority=_LOW,
            enable_auto_resolve=False,
            enable_escalation_detection=False,
        ),
        GroupType(
            1018,
            "performance_p95_endpoint_regression",
            "Endpoint Regression",
            _PERF,
            released=True,
            default_priority=_MEDIUM,
            enable_auto_resolve=False,
            enable_escalation_detection=False,
        ),
        GroupType(
            1019,
            "performance_streamed_spans_exp",
            "Streamed Spans (Experimental)",
            _PERF,
            default_priority=_LOW,
            enable_auto_resolve=False,
            enable_escalation_detection=False,
        ),
        GroupType(
            2001,
            "profile_file_io_main_thread",
            "File I/O on Main Thread",
            _PROFILE,
            default_priority=_LOW,
        ),
        GroupType(
            2002,
            "profile_image_decode_main_thread",
            "Image Decoding on Main Thread",
            _PROFILE,
            default_priority=_LOW,
        ),
        GroupType(
            2003,
            "profile_json_decode_main_thread",
            "JSON Decoding on Main Thread",
            _PROFILE,
            default_priority=_LOW,
        ),
        GroupType(
            2004,
            "profile_core_data_main_exp",
            "Core Data on Main Thread",
            _PROFILE,
            default_priority=_LOW,
        ),
        GroupType(
            2006,
            "profile_view_is_slow_experimental",
            "View Render/Layout/Update is slow",
            _PROFILE,
            default_priority=_LOW,
        ),
        GroupType(
            2007,
            "profile_regex_main_thread",
            "Regex on Main Thread",
            _PROFILE,
            released=True,
            default_priority=_LOW,
        ),
        GroupType(
            2008,
            "profile_frame_drop_experimental",
            "Frame Drop",
            _PROFILE,
            default_priority=_LOW,
        ),
        GroupType(
            2009,
            "profile_frame_drop",
            "Frame Drop",
            _PROFILE,
            released=True,
            default_priority=_LOW,
            noise_config=NoiseConfig(ignore_limit=2000),
        ),
        GroupType(
            2010,
            "profile_function_regression_exp",
            "Function Duration Regression (Experimental)",
            _PROFILE,
            default_priority=_LOW,
            enable_auto_resolve=False,
        ),
        GroupType(
            2011,
            "profile_function_regression",
            "Function Regression",
            _PROFILE,
            released=True,
            default_priority=_MEDIUM,
            enable_auto_resolve=False,
        ),
        # 4002 and 4003 are deprecated forms of 4001, kept so their ids stay taken and
        # old occurrences still resolve; they share the monitor-failure settings.
        *(
            GroupType(
                type_id,
                slug,
                description,
                GroupCategory.CRON,
                released=True,
                default_priority=_HIGH,
                creation_quota=_CRON_QUOTA,
            )
            for type_id, slug, description in (
                (4001, "monitor_check_in_failure", "Crons Monitor Failed"),
                (4002, "monitor_check_in_timeout", "Crons Monitor Timed Out"),
                (4003, "monitor_check_in_missed", "Crons Monitor Missed"),
            )
        ),
        GroupType(5001, "replay_click_dead", "Dead Click Detected", GroupCategory.REPLAY),
        GroupType(
            5002, "replay_click_rage", "Rage Click Detected", GroupCategory.REPLAY, released=True
        ),
        GroupType(
            5003,
            "replay_hydration_error",
            "Hydration Error Detected",
            GroupCategory.REPLAY,
            released=True,
        ),
        GroupType(
            6001,
            "feedback",
            "Feedback",
            GroupCategory.FEEDBACK,
            released=True,
            creation_quota=_HOURLY_1000,
            in_default_search=False,
        ),
        GroupType(
            7001,
            "uptime_domain_failure",
            "Uptime Domain Monitor Failure",
            GroupCategory.UPTIME,
            default_priority=_HIGH,
            creation_quota=_HOURLY_1000,
            enable_auto_resolve=False,
            enable_escalation_detection=False,
        ),
        GroupType(
            8002,
            "metric_issue_poc",
            "Metric Issue POC",
            GroupCategory.METRIC_ALERT,
            default_priority=_HIGH,
            enable_auto_resolve=False,
            enable_escalation_detection=False,
        ),
    ]


def build_registry() -> GroupTypeRegistry:
    """A fresh registry holding every baseline type."""
    reg = GroupTypeRegistry()
    for group_type in _baseline_types():
        reg.register(group_type)
    return reg


registry: GroupTypeRegistry = build_registry()
"""The registry of the baseline types that the consumer and API use."""

MONITOR_CHECK_IN_FAILURE: GroupType = registry.get_by_id(4001)
"""The type of the issues crons opens for a failing monitor."""

FEEDBACK: GroupType = registry.get_by_id(6001)
"""User feedback: its issue metadata carries the sender's contact and message."""


def get_group_type_by_id(type_id: int) -> GroupType:
    """The baseline type with this id; ValueError("No group type with the id N is
    registered.") otherwise."""
    return registry.get_by_id(type_id)
