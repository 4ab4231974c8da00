"""The throttled log of occurrences dropped by design (`vigil.issues.drop_log`)."""

from __future__ import annotations

import logging

import pytest

from vigil.issues.drop_log import DropLog


def test_one_line_a_minute_per_reason_project_and_type_with_the_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    drops = DropLog(every_s=60, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="vigil.issues"):
        for _ in range(3):
            drops.dropped("creation_quota", 1, "cron", "quota")
        drops.dropped("creation_quota", 2, "cron", "quota")  # another project: its own line
        drops.dropped("noise_reduction", 1, "cron", "gate")  # another reason: its own line
        now[0] = 59.9
        drops.dropped("creation_quota", 1, "cron", "quota")
        now[0] = 60.0
        drops.dropped("creation_quota", 1, "cron", "quota")  # the 3 held back, and this one
    lines = [
        (r.message, r.__dict__["project_id"], r.__dict__["reason"], r.__dict__["dropped"])
        for r in caplog.records
    ]
    assert lines == [
        ("occurrence dropped: quota", 1, "creation_quota", 1),
        ("occurrence dropped: quota", 2, "creation_quota", 1),
        ("occurrence dropped: gate", 1, "noise_reduction", 1),
        ("occurrence dropped: quota", 1, "creation_quota", 4),
    ]
