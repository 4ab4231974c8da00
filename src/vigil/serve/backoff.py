"""When to restart a crashed child: pure arithmetic, no I/O."""

from __future__ import annotations

from dataclasses import dataclass

INITIAL_DELAY = 1.0
MAX_DELAY = 30.0
# A child that ran this long before crashing is considered to have been healthy, so its
# next crash starts the back-off again from the beginning.
HEALTHY_AFTER = 60.0


@dataclass
class Backoff:
    failures: int = 0

    def next_delay(self, ran_for: float) -> float:
        """Seconds to wait before restarting a child that ran `ran_for` seconds."""
        if ran_for >= HEALTHY_AFTER:
            self.failures = 0
        delay: float = min(MAX_DELAY, INITIAL_DELAY * 2.0**self.failures)
        self.failures += 1
        return delay
