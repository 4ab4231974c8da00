"""Monitor config validation and normalisation (B2), and the derived values, as tables."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vigil.monitors.monitor_config import (
    CRONTAB_ALIASES,
    InvalidConfig,
    MonitorConfig,
    ValidConfig,
    available_timezones,
    failure_issue_threshold,
    margin,
    max_runtime,
    normalise_crontab,
    parse_owner,
    recovery_threshold,
    validate_monitor_config,
)

CRONTAB = {"schedule_type": "crontab", "schedule": "0 * * * *"}


def valid(raw: object) -> MonitorConfig:
    result = validate_monitor_config(raw)
    assert isinstance(result, ValidConfig), result
    return result.config


def errors(raw: object) -> dict[str, list[str]]:
    result = validate_monitor_config(raw)
    assert isinstance(result, InvalidConfig), result
    return result.errors


def config(**fields: Any) -> MonitorConfig:
    """A normalised config: the given fields over the all-null defaults."""
    base: dict[str, Any] = {
        "checkin_margin": None,
        "max_runtime": None,
        "failure_issue_threshold": None,
        "recovery_threshold": None,
    }
    base.update(fields)
    return base  # type: ignore[return-value]


# --- the spec's example and the always-present keys ---------------------------------


def test_the_spec_example() -> None:
    assert valid({"schedule_type": "crontab", "schedule": "@daily"}) == {
        "schedule_type": 1,
        "schedule": "0 0 * * *",
        "checkin_margin": None,
        "max_runtime": None,
        "failure_issue_threshold": None,
        "recovery_threshold": None,
    }


def test_a_full_sdk_config_is_kept() -> None:
    raw = {
        "schedule": {"type": "crontab", "value": "0 3 * * *"},
        "checkin_margin": 5,
        "max_runtime": 30,
        "timezone": "Europe/Berlin",
        "failure_issue_threshold": 2,
        "recovery_threshold": 3,
    }
    assert valid(raw) == config(
        schedule_type=1,
        schedule="0 3 * * *",
        checkin_margin=5,
        max_runtime=30,
        timezone="Europe/Berlin",
        failure_issue_threshold=2,
        recovery_threshold=3,
    )


def test_unknown_keys_are_dropped() -> None:
    assert valid({**CRONTAB, "alert_rule_id": 5, "colour": "red"}) == config(
        schedule_type=1, schedule="0 * * * *"
    )


# --- schedule_type and the schedule forms ----------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"schedule_type": "crontab", "schedule": "* * * * *"}, (1, "* * * * *")),
        ({"schedule_type": 1, "schedule": "* * * * *"}, (1, "* * * * *")),
        ({"schedule_type": "interval", "schedule": [10, "minute"]}, (2, [10, "minute"])),
        ({"schedule_type": 2, "schedule": [10, "minute"]}, (2, [10, "minute"])),
        ({"schedule_type": 2, "schedule": (10, "minute")}, (2, [10, "minute"])),
        ({"schedule": {"type": "crontab", "value": "0 3 * * *"}}, (1, "0 3 * * *")),
        ({"schedule": {"type": "interval", "value": 10, "unit": "minute"}}, (2, [10, "minute"])),
        # the object's type wins over schedule_type
        (
            {
                "schedule_type": "crontab",
                "schedule": {"type": "interval", "value": 1, "unit": "day"},
            },
            (2, [1, "day"]),
        ),
        # an object without a type takes schedule_type's
        ({"schedule_type": "interval", "schedule": {"value": 2, "unit": "hour"}}, (2, [2, "hour"])),
        ({"schedule_type": "crontab", "schedule": {"value": "@hourly"}}, (1, "0 * * * *")),
        # a null schedule_type is as good as absent next to a typed object
        (
            {"schedule_type": None, "schedule": {"type": "crontab", "value": "0 0 * * *"}},
            (1, "0 0 * * *"),
        ),
        ({"schedule": {"type": 2, "value": 3, "unit": "week"}}, (2, [3, "week"])),
    ],
)
def test_schedule_forms(raw: dict[str, Any], expected: tuple[int, object]) -> None:
    result = valid(raw)
    assert (result["schedule_type"], result["schedule"]) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"schedule": "* * * * *"}, {"schedule_type": ["Missing or invalid schedule type"]}),
        ({"schedule": [1, "minute"]}, {"schedule_type": ["Missing or invalid schedule type"]}),
        (
            {"schedule": {"value": "* * * * *"}},
            {"schedule_type": ["Missing or invalid schedule type"]},
        ),
        (
            {"schedule": {"type": "weekly", "value": "* * * * *"}},
            {"schedule_type": ["Missing or invalid schedule type"]},
        ),
        (
            {"schedule_type": "cron", "schedule": "* * * * *"},
            {"schedule_type": ['"cron" is not a valid choice.']},
        ),
        (
            {"schedule_type": 0, "schedule": "* * * * *"},
            {"schedule_type": ['"0" is not a valid choice.']},
        ),
        (
            {"schedule_type": 3, "schedule": "* * * * *"},
            {"schedule_type": ['"3" is not a valid choice.']},
        ),
        (
            {"schedule_type": True, "schedule": "* * * * *"},
            {"schedule_type": ['"True" is not a valid choice.']},
        ),
        ({"schedule_type": "crontab"}, {"schedule": ["This field is required."]}),
        ({}, {"schedule": ["This field is required."]}),
        (
            {"schedule_type": "crontab", "schedule": None},
            {"schedule": ["This field may not be null."]},
        ),
    ],
)
def test_schedule_type_errors(raw: dict[str, Any], expected: dict[str, list[str]]) -> None:
    assert errors(raw) == expected


@pytest.mark.parametrize("raw", [None, "0 * * * *", 5, [1, "minute"], True])
def test_a_config_that_is_not_an_object(raw: object) -> None:
    assert list(errors(raw)) == ["non_field_errors"]
    assert errors(raw)["non_field_errors"][0].startswith("Invalid data. Expected a dictionary")


# --- intervals --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        ([1, "minute"], [1, "minute"]),
        ([1, "hour"], [1, "hour"]),
        ([1, "day"], [1, "day"]),
        ([1, "week"], [1, "week"]),
        ([1, "month"], [1, "month"]),
        ([1, "year"], [1, "year"]),
        ([525_600, "minute"], [525_600, "minute"]),
        ([1000, "year"], [1000, "year"]),
        # lenient with the count, as real clients are sloppy (clients.md): "1", 2.0
        (["1", "minute"], [1, "minute"]),
        ([" 7 ", "day"], [7, "day"]),
        ([2.0, "hour"], [2, "hour"]),
    ],
)
def test_valid_intervals(schedule: list[object], expected: list[object]) -> None:
    assert valid({"schedule_type": "interval", "schedule": schedule})["schedule"] == expected


def test_an_interval_object_with_a_string_value_is_accepted() -> None:
    # sentry-python #6386: Relay refuses "1"; the HTTP docs show "value": "2". Accept it.
    raw = {"schedule": {"type": "interval", "value": "2", "unit": "minute"}}
    assert valid(raw)["schedule"] == [2, "minute"]


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ("* * * * *", "Invalid schedule for for 'interval' type"),
        (5, "Invalid schedule for for 'interval' type"),
        ({"unit": "minute"}, "Invalid schedule for schedule unit count"),  # object, no value
        ([], "Invalid schedule for for 'interval' type"),
        ([1], "Invalid schedule for for 'interval' type"),
        ([1, "minute", 2], "Invalid schedule for for 'interval' type"),
        (["one", "minute"], "Invalid schedule for schedule unit count"),
        ([1.5, "minute"], "Invalid schedule for schedule unit count"),
        ([None, "minute"], "Invalid schedule for schedule unit count"),
        ([True, "minute"], "Invalid schedule for schedule unit count"),
        (["", "minute"], "Invalid schedule for schedule unit count"),
        ([float("inf"), "minute"], "Invalid schedule for schedule unit count"),
        ([float("nan"), "minute"], "Invalid schedule for schedule unit count"),
        ([0, "minute"], "Interval must be greater than zero"),
        ([-2, "minute"], "Interval must be greater than zero"),
        (["-1", "hour"], "Interval must be greater than zero"),
        ([1, "second"], "Invalid schedule for schedule unit name"),
        ([1, "fortnight"], "Invalid schedule for schedule unit name"),
        ([3, "minutes"], "Invalid schedule for schedule unit name"),  # as written (B2)
        ([3, "Minute"], "Invalid schedule for schedule unit name"),
        ([1, None], "Invalid schedule for schedule unit name"),
        ([1, 5], "Invalid schedule for schedule unit name"),
        ([1, ""], "Invalid schedule for schedule unit name"),
        # so long its next run is not a date: it has none
        ([1001, "year"], "Schedule is invalid"),
        ([10**30, "minute"], "Schedule is invalid"),
    ],
)
def test_invalid_intervals(schedule: object, message: str) -> None:
    assert errors({"schedule_type": "interval", "schedule": schedule}) == {"schedule": [message]}


# --- crontabs ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        ("* * * * *", "* * * * *"),
        ("  *\t* *     * * ", "* * * * *"),
        ("0\n3 * * *", "0 3 * * *"),
        ("*/5 * * * *", "*/5 * * * *"),
        ("0 0 29 2 *", "0 0 29 2 *"),
        ("0 9-17 * * mon-fri", "0 9-17 * * mon-fri"),
        ("0 0 L * *", "0 0 L * *"),
        ("0 0 31 2 MON", "0 0 31 2 MON"),  # day-of-month OR day-of-week: Mondays in Feb
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        ("@monthly", "0 0 1 * *"),
        ("@weekly", "0 0 * * 0"),
        ("@daily", "0 0 * * *"),
        ("@hourly", "0 * * * *"),
        ("  @daily  ", "0 0 * * *"),
    ],
)
def test_valid_crontabs(schedule: str, expected: str) -> None:
    assert valid({"schedule_type": "crontab", "schedule": schedule})["schedule"] == expected


def test_every_alias_is_a_valid_crontab() -> None:
    for expression in CRONTAB_ALIASES.values():
        assert normalise_crontab(expression).error is None


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        (5, "Invalid schedule for 'crontab' type"),
        ([1, "minute"], "Invalid schedule for 'crontab' type"),
        (True, "Invalid schedule for 'crontab' type"),
        ("@reboot", "Schedule was not parseable"),
        ("@every 5m", "Schedule was not parseable"),
        ("@", "Schedule was not parseable"),
        ("@midnight", "Schedule was not parseable"),
        ("@DAILY", "Schedule was not parseable"),  # aliases as written (B2)
        ("@Annually", "Schedule was not parseable"),
        ("0 * * * * *", "Only 5 field crontab syntax is supported"),
        ("0 0 * * * * 2024", "Only 5 field crontab syntax is supported"),
        ("* * * *", "Schedule is invalid"),
        ("", "Schedule is invalid"),
        ("   ", "Schedule is invalid"),
        ("* * 31 2 *", "Schedule is invalid"),
        ("0 0 31 2 *", "Schedule is invalid"),
        ("0 0 30 2 *", "Schedule is invalid"),
        ("0 0 31 4,6,9,11 *", "Schedule is invalid"),
        ("61 * * * *", "Schedule is invalid"),
        ("* 24 * * *", "Schedule is invalid"),
        ("* * 0 * *", "Schedule is invalid"),
        ("* * * 13 *", "Schedule is invalid"),
        ("* * * * 8", "Schedule is invalid"),
        ("*/0 * * * *", "Schedule is invalid"),
        ("a b c d e", "Schedule is invalid"),
        ("5-1 * * * *", "Schedule is invalid"),
    ],
)
def test_invalid_crontabs(schedule: object, message: str) -> None:
    assert errors({"schedule_type": "crontab", "schedule": schedule}) == {"schedule": [message]}


def test_an_object_crontab_is_checked_the_same() -> None:
    raw = {"schedule": {"type": "crontab", "value": "@reboot"}}
    assert errors(raw) == {"schedule": ["Schedule was not parseable"]}
    raw = {"schedule": {"type": "crontab"}}
    assert errors(raw) == {"schedule": ["Invalid schedule for 'crontab' type"]}


# --- checkin_margin, max_runtime, thresholds -----------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        (0, 1),  # silently the smallest margin
        ("0", 1),
        (1, 1),
        (5, 5),
        ("5", 5),
        (5.0, 5),
        (40_320, 40_320),
    ],
)
def test_checkin_margin(value: object, expected: int | None) -> None:
    assert valid({**CRONTAB, "checkin_margin": value})["checkin_margin"] == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        (1, 1),
        (30, 30),
        ("30", 30),
        (40_320, 40_320),
    ],
)
def test_max_runtime(value: object, expected: int | None) -> None:
    assert valid({**CRONTAB, "max_runtime": value})["max_runtime"] == expected


GE_1 = "Ensure this value is greater than or equal to 1."
NOT_INT = "A valid integer is required."


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("checkin_margin", -1, GE_1),
        ("checkin_margin", 40_321, "Ensure this value is less than or equal to 40320."),
        ("checkin_margin", 10**30, "Ensure this value is less than or equal to 40320."),
        ("checkin_margin", 1.5, NOT_INT),
        ("checkin_margin", "five", NOT_INT),
        ("checkin_margin", True, NOT_INT),
        ("checkin_margin", [5], NOT_INT),
        ("checkin_margin", {"minutes": 5}, NOT_INT),
        ("checkin_margin", "1" * 1001, "String value too large."),
        ("max_runtime", 0, GE_1),
        ("max_runtime", -30, GE_1),
        ("max_runtime", 40_321, "Ensure this value is less than or equal to 40320."),
        ("max_runtime", "abc", NOT_INT),
        ("max_runtime", False, NOT_INT),
        ("failure_issue_threshold", 0, GE_1),
        ("failure_issue_threshold", 721, "Ensure this value is less than or equal to 720."),
        ("failure_issue_threshold", "x", NOT_INT),
        ("recovery_threshold", 0, GE_1),
        ("recovery_threshold", -5, GE_1),
        ("recovery_threshold", 721, "Ensure this value is less than or equal to 720."),
        ("recovery_threshold", 2.5, NOT_INT),
    ],
)
def test_number_field_errors(field: str, value: object, message: str) -> None:
    assert errors({**CRONTAB, field: value}) == {field: [message]}


@pytest.mark.parametrize("field", ["failure_issue_threshold", "recovery_threshold"])
@pytest.mark.parametrize(
    ("value", "expected"), [(None, None), ("", None), (1, 1), ("720", 720), (720, 720)]
)
def test_thresholds(field: str, value: object, expected: int | None) -> None:
    assert dict(valid({**CRONTAB, field: value}))[field] == expected


# --- timezone ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "America/Los_Angeles"]
)
def test_timezone_is_kept(name: str) -> None:
    assert valid({**CRONTAB, "timezone": name})["timezone"] == name


def test_an_empty_timezone_is_accepted_and_removed() -> None:
    assert "timezone" not in valid({**CRONTAB, "timezone": ""})
    assert "timezone" not in valid(CRONTAB)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("Mars/Olympus_Mons", '"Mars/Olympus_Mons" is not a valid choice.'),
        ("europe/berlin", '"europe/berlin" is not a valid choice.'),
        ("localtime", '"localtime" is not a valid choice.'),
        ("+02:00", '"+02:00" is not a valid choice.'),
        (5, '"5" is not a valid choice.'),
        (None, "This field may not be null."),
    ],
)
def test_timezone_errors(value: object, message: str) -> None:
    assert errors({**CRONTAB, "timezone": value}) == {"timezone": [message]}


def test_available_timezones_are_the_iana_names() -> None:
    zones = available_timezones()
    assert {"UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe"} <= zones
    assert "localtime" not in zones


# --- owner and error collection ----------------------------------------------------


def test_owner_is_popped_out_of_the_config() -> None:
    result = validate_monitor_config({**CRONTAB, "owner": "team:backend"})
    assert isinstance(result, ValidConfig)
    assert result.owner == "team:backend"
    assert "owner" not in result.config


def test_owner_comes_back_with_an_invalid_config_too() -> None:
    result = validate_monitor_config({"schedule": "x", "owner": "user:someone@example.com"})
    assert isinstance(result, InvalidConfig)
    assert result.owner == "user:someone@example.com"


def test_an_owner_that_is_not_a_string_is_none() -> None:
    result = validate_monitor_config({**CRONTAB, "owner": 42})
    assert isinstance(result, ValidConfig)
    assert result.owner is None


@pytest.mark.parametrize(
    ("owner", "expected"),
    [
        ("user:42", ("user", "42")),
        ("user:x@y.com", ("user", "x@y.com")),
        ("team:backend", ("team", "backend")),
        ("team:", None),
        ("group:backend", None),
        ("backend", None),
        ("", None),
    ],
)
def test_parse_owner(owner: str, expected: tuple[str, str] | None) -> None:
    assert parse_owner(owner) == expected


def test_field_errors_are_all_reported_together() -> None:
    raw = {
        "schedule_type": "foo",
        "schedule": "* * * * *",
        "checkin_margin": -1,
        "max_runtime": 0,
        "timezone": "Nowhere",
        "failure_issue_threshold": 0,
        "recovery_threshold": 1000,
    }
    assert errors(raw) == {
        "schedule_type": ['"foo" is not a valid choice.'],
        "checkin_margin": [GE_1],
        "max_runtime": [GE_1],
        "timezone": ['"Nowhere" is not a valid choice.'],
        "failure_issue_threshold": [GE_1],
        "recovery_threshold": ["Ensure this value is less than or equal to 720."],
    }


def test_schedule_rules_run_only_when_every_field_is_valid() -> None:
    raw = {"schedule_type": "crontab", "schedule": "@reboot", "max_runtime": 0}
    assert errors(raw) == {"max_runtime": [GE_1]}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
config_keys = st.sampled_from(
    [
        "schedule_type",
        "schedule",
        "checkin_margin",
        "max_runtime",
        "timezone",
        "failure_issue_threshold",
        "recovery_threshold",
        "owner",
    ]
)


@given(st.dictionaries(config_keys, json_values))
def test_any_json_gets_an_answer_never_an_exception(raw: dict[str, Any]) -> None:
    result = validate_monitor_config(raw)
    if isinstance(result, ValidConfig):
        assert result.config["schedule_type"] in (1, 2)
        assert valid(result.config) == result.config  # validated configs stay valid
    else:
        assert result.errors
        assert all(isinstance(m, str) for ms in result.errors.values() for m in ms)


@given(st.text(max_size=40))
def test_any_crontab_text_gets_an_answer(text: str) -> None:
    result = validate_monitor_config({"schedule_type": "crontab", "schedule": text})
    if isinstance(result, ValidConfig):
        assert result.config["schedule"] == " ".join(str(result.config["schedule"]).split())


# --- derived values -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        ({}, 1),
        ({"checkin_margin": None}, 1),
        ({"checkin_margin": 0}, 1),
        ({"checkin_margin": 5}, 5),
        ({"checkin_margin": 40_320}, 40_320),
        ({"checkin_margin": 10**9}, 40_320),
        ({"checkin_margin": -3}, 1),
        ({"checkin_margin": "5"}, 1),
    ],
)
def test_margin(stored: dict[str, Any], expected: int) -> None:
    assert margin(stored) == timedelta(minutes=expected)


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        ({}, 30),
        ({"max_runtime": None}, 30),
        ({"max_runtime": 0}, 30),
        ({"max_runtime": 1}, 1),
        ({"max_runtime": 120}, 120),
        ({"max_runtime": 40_320}, 40_320),
        ({"max_runtime": 40_321}, 40_320),
        ({"max_runtime": 10**12}, 40_320),
        ({"max_runtime": True}, 30),
    ],
)
def test_max_runtime_derived(stored: dict[str, Any], expected: int) -> None:
    assert max_runtime(stored) == timedelta(minutes=expected)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, 1), (3, 3), (720, 720), (0, 1), (5000, 720), ("3", 1)],
)
def test_thresholds_derived(value: object, expected: int) -> None:
    assert failure_issue_threshold({"failure_issue_threshold": value}) == expected
    assert recovery_threshold({"recovery_threshold": value}) == expected


def test_thresholds_default_to_one() -> None:
    assert failure_issue_threshold({}) == recovery_threshold({}) == 1
