"""A worker process's garbage-collector settings, checked in a process of its own (they
are process-wide)."""

from __future__ import annotations

import json
import subprocess
import sys

from vigil.gc_tuning import GEN0_THRESHOLD

_PROBE = """
import gc, json
from vigil import gc_tuning
import vigil.db.tables  # what start-up makes: lives as long as the process
defaults = gc.get_threshold()
gc_tuning.tune_for_throughput()
print(json.dumps({"defaults": defaults, "now": gc.get_threshold(),
                  "frozen": gc.get_freeze_count()}))
"""


def test_start_up_objects_are_frozen_and_young_collections_are_rarer() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    seen = json.loads(out)
    assert seen["now"] == [GEN0_THRESHOLD, *seen["defaults"][1:]]
    assert seen["now"][0] > seen["defaults"][0]
    assert seen["frozen"] > 10_000  # the modules and tables made at start-up
