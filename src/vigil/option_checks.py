"""What each server option takes (`vigil option set`): a key vigil does not know, or a
value of the wrong shape, is refused with what is expected, instead of being stored and
then silently ignored by the process that reads it. No I/O."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, Final

from vigil.issues.quota import DEFAULT_OCCURRENCE_RATE_LIMIT, MAX_LIMIT, MAX_WINDOW_SECONDS
from vigil.issues.quota import RATE_LIMIT_ENABLED_OPTION as OCCURRENCE_RATE_LIMIT_ENABLED
from vigil.issues.quota import RATE_LIMIT_QUOTA_OPTION as OCCURRENCE_RATE_LIMIT_QUOTA
from vigil.monitors import clock_store
from vigil.options import CRONS_DISABLE_CHECKIN
from vigil.tenancy.public_url import URL_PREFIX_OPTION, is_url_prefix

Check = Callable[[Any], bool]


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def _is_number(value: Any) -> bool:
    # (json.loads reads NaN and Infinity, which PostgreSQL's JSON cannot store)
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _is_organization_list(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(entry, dict)
        and set(entry) == {"organization_id"}
        and _is_positive_int(entry["organization_id"])
        for entry in value
    )


def _is_quota(value: Any) -> bool:
    # Keys left out keep the default's values, as the consumer reads them.
    names = ("window_seconds", "granularity_seconds", "limit")
    if not isinstance(value, Mapping) or not set(value) <= set(names):
        return False
    if not all(_is_positive_int(v) for v in value.values()):
        return False
    merged = {name: value.get(name, getattr(DEFAULT_OCCURRENCE_RATE_LIMIT, name)) for name in names}
    return bool(
        merged["window_seconds"] <= MAX_WINDOW_SECONDS
        and merged["granularity_seconds"] <= merged["window_seconds"]
        and merged["limit"] <= MAX_LIMIT
    )


# key: (what it takes, in words; the check)
OPTIONS: Final[Mapping[str, tuple[str, Check]]] = {
    CRONS_DISABLE_CHECKIN: (
        'a list of {"organization_id": N}: those organizations\' check-ins are dropped',
        _is_organization_list,
    ),
    OCCURRENCE_RATE_LIMIT_ENABLED: (
        "true or false: limit occurrences per fingerprint",
        _is_bool,
    ),
    OCCURRENCE_RATE_LIMIT_QUOTA: (
        '{"window_seconds": N, "granularity_seconds": N, "limit": N}, any of them '
        f"(positive whole numbers; a window of at most {MAX_WINDOW_SECONDS} s, a "
        "granularity no longer than it)",
        _is_quota,
    ),
    clock_store.COLLECT_METRICS: ("true or false: collect check-in volume metrics", _is_bool),
    clock_store.COLLECT_METRICS_OLD: (
        "true or false: the older name of crons.system_incidents.collect_metrics",
        _is_bool,
    ),
    clock_store.USE_DECISIONS: ("true or false: act on system-incident decisions", _is_bool),
    clock_store.ANOMALY_THRESHOLD: ("a number: the anomaly deviation threshold (%)", _is_number),
    clock_store.INCIDENT_THRESHOLD: ("a number: the incident deviation threshold (%)", _is_number),
    clock_store.DECISION_WINDOW: ("a positive whole number of minutes", _is_positive_int),
    clock_store.DISPATCH_OCCURRENCES: (
        "true or false: send incident occurrences through monitors-incident-occurrences",
        _is_bool,
    ),
    URL_PREFIX_OPTION: (
        'the URL clients reach vigil at, as a JSON string ("https://vigil.example.com"): '
        "DSNs are built from it (default: VIGIL_PUBLIC_URL, else http://VIGIL_BIND)",
        is_url_prefix,
    ),
}


def check_option(key: str, value: Any) -> None:
    """ValueError, saying what is expected, unless `key` is an option vigil reads and
    `value` has the shape it takes, or is null (which its readers take as unset)."""
    known = OPTIONS.get(key)
    if known is None:
        names = ", ".join(sorted(OPTIONS))
        raise ValueError(f"unknown option {key!r}; vigil reads: {names}")
    expected, check = known
    if value is not None and not check(value):  # null: back to the default
        raise ValueError(f"{key} takes {expected} (or null for the default)")
