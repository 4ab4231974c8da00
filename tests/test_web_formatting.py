"""How the web UI words API values (`vigil.web.formatting`): pure functions."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from vigil.web.formatting import duration, exact, monitor_state, relative, schedule, timeline

NOW = datetime(2026, 12, 7, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("2026-12-07T11:59:58Z", "just now"),
        ("2026-12-07T11:59:30Z", "30 s ago"),
        ("2026-12-07T11:57:00.123456Z", "2 min ago"),
        ("2026-12-07T09:00:00Z", "3 h ago"),
        ("2026-12-01T12:00:00Z", "6 d ago"),
        ("2026-12-07T12:05:00Z", "in 5 min"),
        (None, "never"),
        ("", "never"),
        ("not a date", "never"),
        (17, "never"),
    ],
)
def test_relative(value: object, shown: str) -> None:
    assert relative(value, NOW) == shown


def test_exact() -> None:
    assert exact("2026-12-07T02:00:03.5Z") == "2026-12-07 02:00:03 UTC"
    assert exact(None) == exact("garbage") == ""


@pytest.mark.parametrize(
    ("ms", "shown"),
    [
        (350, "350 ms"),
        (1500, "1.5 s"),
        (123_000, "2 min 3 s"),
        (3_900_000, "1 h 5 min"),
        (None, ""),
        (True, ""),
        ("12", ""),
    ],
)
def test_duration(ms: object, shown: str) -> None:
    assert duration(ms) == shown


def test_schedule() -> None:
    assert schedule({"schedule_type": "crontab", "schedule": "0 3 * * *", "timezone": "UTC"}) == (
        "0 3 * * *"
    )
    assert schedule(
        {"schedule_type": "crontab", "schedule": "@daily", "timezone": "Asia/Tokyo"}
    ) == ("@daily (Asia/Tokyo)")
    assert schedule({"schedule_type": "interval", "schedule": [1, "day"]}) == "every day"
    assert schedule({"schedule_type": "interval", "schedule": [10, "minute"]}) == "every 10 minutes"
    assert schedule(None) == schedule({}) == schedule({"schedule": {"odd": 1}}) == ""


def test_timeline_is_oldest_first_and_tells_each_checkin() -> None:
    newest_first = [
        {
            "status": "ok",
            "dateCreated": "2026-12-07T11:00:00Z",
            "environment": "prod",
            "duration": 1500,
        },
        {
            "status": "missed",
            "dateCreated": "2026-12-07T10:00:00Z",
            "environment": "prod",
            "duration": None,
        },
        {"status": "<b>", "dateCreated": None},
    ]
    ticks = timeline(newest_first)
    assert [t.status for t in ticks] == ["unknown", "missed", "ok"]
    assert ticks[2].title == "ok · 2026-12-07 11:00:00 UTC · prod · 1.5 s"
    assert ticks[1].title == "missed · 2026-12-07 10:00:00 UTC · prod"
    assert ticks[0].title == "unknown"


@pytest.mark.parametrize(
    ("monitor", "state"),
    [
        (
            {"status": "disabled", "isMuted": True, "environments": [{"status": "error"}]},
            "disabled",
        ),
        ({"status": "active", "isMuted": True, "environments": [{"status": "error"}]}, "muted"),
        ({"status": "active", "environments": [{"status": "ok"}, {"status": "error"}]}, "error"),
        ({"status": "active", "environments": [{"status": "ok"}, {"status": "active"}]}, "ok"),
        ({"status": "active", "environments": []}, "waiting"),
    ],
)
def test_monitor_state(monitor: dict[str, object], state: str) -> None:
    assert monitor_state(monitor) == state
