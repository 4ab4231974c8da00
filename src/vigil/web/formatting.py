"""How the UI words what the API returns: moments relative to now, durations,
schedules, and a monitor's recent check-ins as a timeline. Pure functions of API
values (ISO dates, a monitor's `config`, check-in dicts)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from vigil.monitors.enums import CheckInStatus

# The API's check-in status labels (`CheckInStatus`); one it may add later is drawn as
# "unknown".
CHECKIN_STATUSES: Final = frozenset(status.label for status in CheckInStatus)
_UNITS: Final = (("d", 86400), ("h", 3600), ("min", 60), ("s", 1))


def parse_date(value: Any) -> datetime | None:
    """An API date ("2026-12-07T02:00:00.123456Z"), or None for anything else."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def relative(value: Any, now: datetime) -> str:
    """ "3 min ago", "in 2 h", "just now"; "never" for no date."""
    moment = parse_date(value)
    if moment is None:
        return "never"
    seconds = (now - moment).total_seconds()
    if abs(seconds) < 5:
        return "just now"
    for unit, size in _UNITS:
        if abs(seconds) >= size:
            amount = int(abs(seconds) // size)
            return f"{amount} {unit} ago" if seconds > 0 else f"in {amount} {unit}"
    return "just now"


def exact(value: Any) -> str:
    """A date as "2026-12-07 02:00:03 UTC" (for titles and tables)."""
    moment = parse_date(value)
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(milliseconds: Any) -> str:
    """A check-in's duration: "350 ms", "1.2 s", "2 min 3 s", "1 h 5 min"; "" for none."""
    if not isinstance(milliseconds, int | float) or isinstance(milliseconds, bool):
        return ""
    if milliseconds < 1000:
        return f"{milliseconds:.0f} ms"
    seconds = milliseconds / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60)} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"


def schedule(config: Mapping[str, Any] | None) -> str:
    """A monitor's schedule as people read it: "*/5 * * * * (Europe/Paris)",
    "every 2 hours"."""
    if not config:
        return ""
    raw = config.get("schedule")
    zone = config.get("timezone") or "UTC"
    if config.get("schedule_type") == "interval" and isinstance(raw, list) and len(raw) == 2:
        count, unit = raw
        unit_text = str(unit) if count == 1 else f"{unit}s"
        return f"every {unit_text}" if count == 1 else f"every {count} {unit_text}"
    if isinstance(raw, str):
        return raw if zone == "UTC" else f"{raw} ({zone})"
    return ""


def tick_status(status: Any) -> str:
    """A check-in status as the CSS class its tick is drawn with."""
    return status if status in CHECKIN_STATUSES else "unknown"


@dataclass(frozen=True)
class Tick:
    """One check-in on a timeline: its status (a CSS class) and what hovering tells."""

    status: str
    title: str


def timeline(checkins: Sequence[Mapping[str, Any]]) -> list[Tick]:
    """Check-ins (as the API lists them, newest first) as ticks, oldest first."""
    ticks = []
    for checkin in reversed(checkins):
        shown = tick_status(checkin.get("status"))
        parts = [shown.replace("_", " "), exact(checkin.get("dateCreated"))]
        if checkin.get("environment"):
            parts.append(str(checkin["environment"]))
        if took := duration(checkin.get("duration")):
            parts.append(took)
        ticks.append(Tick(shown, " · ".join(p for p in parts if p)))
    return ticks


def monitor_state(monitor: Mapping[str, Any]) -> str:
    """One word for a monitor's list row: "disabled", "muted", else the worst state of
    its environments ("error" over "ok"; "waiting" before the first check-in)."""
    if monitor.get("status") == "disabled":
        return "disabled"
    if monitor.get("isMuted"):
        return "muted"
    statuses = {e.get("status") for e in monitor.get("environments") or []}
    if "error" in statuses:
        return "error"
    if "ok" in statuses:
        return "ok"
    return "waiting"
