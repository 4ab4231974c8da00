"""A rule's period, as the API receives it: a whole number and a unit, "30m", "1h",
"2d" ("s" seconds, "m" minutes, "h" hours, "d" days, "w" weeks; no unit: seconds). No I/O.
"""

from __future__ import annotations

import re
from datetime import timedelta

DEFAULT_PERIOD = "1h"
# Sentry caps an investigation rule at 6 hours, then applies 2 days whatever was asked;
# vigil applies the period asked for, up to this.
MAX_PERIOD = timedelta(days=365)

_PERIOD = re.compile(r"^(\d{1,9})([smhdw]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class InvalidPeriod(ValueError):
    """The period cannot be used; the message says why."""


def parse_period(text: str) -> timedelta:
    match = _PERIOD.match(text.strip())
    if match is None:
        raise InvalidPeriod(
            f"invalid period {text!r}: use a whole number and a unit, like 30m, 1h, 2d "
            "(units s, m, h, d, w)"
        )
    seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if seconds == 0:
        raise InvalidPeriod(f"invalid period {text!r}: must be longer than zero")
    period = timedelta(seconds=seconds)
    if period > MAX_PERIOD:
        raise InvalidPeriod(f"invalid period {text!r}: must be at most {MAX_PERIOD.days}d")
    return period
