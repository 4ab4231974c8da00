"""Structured log lines: fields from `extra=` appear in both formats."""

from __future__ import annotations

import json
import logging

from vigil.logs import JsonFormatter, TextFormatter


def _record() -> logging.LogRecord:
    record = logging.makeLogRecord(
        {"name": "vigil.test", "levelname": "INFO", "msg": "batch applied %d", "args": (3,)}
    )
    record.consumer = "ingest-monitors"
    record.note = "two words"
    record.color_message = "\x1b[1mbatch applied\x1b[0m"
    return record


def test_json_lines_carry_the_fields() -> None:
    entry = json.loads(JsonFormatter().format(_record()))
    assert entry["msg"] == "batch applied 3"
    assert entry["level"] == "info"
    assert entry["logger"] == "vigil.test"
    assert entry["consumer"] == "ingest-monitors"
    assert "color_message" not in entry


def test_text_lines_are_key_value() -> None:
    line = TextFormatter().format(_record())
    assert "INFO    vigil.test batch applied 3" in line
    assert "consumer=ingest-monitors" in line
    assert "note='two words'" in line
    assert "\x1b" not in line
