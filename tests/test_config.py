"""Settings: defaults, environment, config file, and clear errors for bad values."""

from __future__ import annotations

from pathlib import Path

import pytest

from vigil.config import ConfigError, load_settings


def test_defaults_are_the_embedded_install(tmp_path: Path) -> None:
    s = load_settings({"VIGIL_HOME": str(tmp_path)})
    assert s.bind == "127.0.0.1:9000"
    assert not s.uses_kafka
    assert s.resolved_database_url == f"sqlite:///{(tmp_path / 'vigil.sqlite3').resolve()}"
    assert s.log_path == tmp_path / "log.sqlite3"
    assert s.max_message_bytes == 1024 * 1024
    assert s.base_url == "http://127.0.0.1:9000"


def test_environment_overrides_file(tmp_path: Path) -> None:
    (tmp_path / "vigil.toml").write_text('bind = "0.0.0.0:8000"\npartitions = 8\n')
    s = load_settings({"VIGIL_HOME": str(tmp_path), "VIGIL_PARTITIONS": "2"})
    assert s.bind == "0.0.0.0:8000"
    assert s.partitions == 2


def test_postgres_urls_select_psycopg(tmp_path: Path) -> None:
    for url in ("postgres://u@h/db", "postgresql://u@h/db"):
        s = load_settings({"VIGIL_HOME": str(tmp_path), "VIGIL_DATABASE_URL": url})
        assert s.resolved_database_url == "postgresql+psycopg://u@h/db"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"VIGIL_BIND": "9000"}, "VIGIL_BIND must be HOST:PORT"),
        ({"VIGIL_BIND": "127.0.0.1:99999"}, "port must be 1-65535"),
        ({"VIGIL_MAX_MESSAGE_BYTES": "big"}, "VIGIL_MAX_MESSAGE_BYTES must be a whole number"),
        ({"VIGIL_PARTITIONS": "0"}, "VIGIL_PARTITIONS must be greater than zero"),
        ({"VIGIL_DATABASE_URL": "mysql://x/y"}, "VIGIL_DATABASE_URL must be a sqlite"),
        ({"VIGIL_LOG_FORMAT": "xml"}, "VIGIL_LOG_FORMAT must be one of text, json"),
        ({"VIGIL_PUBLIC_URL": "example.com"}, "VIGIL_PUBLIC_URL must start with http"),
        ({"VIGIL_TOPIC_PREFIX": "a b"}, "VIGIL_TOPIC_PREFIX may only hold"),
        ({"VIGIL_CONFIG": "/nonexistent/vigil.toml"}, "not a readable file"),
        (
            {"VIGIL_RETENTION_DAYS": "99999999999"},
            "VIGIL_RETENTION_DAYS must be at most 36,500, got 99,999,999,999",
        ),
    ],
)
def test_invalid_values_name_the_setting(tmp_path: Path, env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings({"VIGIL_HOME": str(tmp_path), **env})


def test_config_file_errors(tmp_path: Path) -> None:
    (tmp_path / "vigil.toml").write_text("bind = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings({"VIGIL_HOME": str(tmp_path)})
    (tmp_path / "vigil.toml").write_text('colour = "blue"\n')
    with pytest.raises(ConfigError, match="unknown setting 'colour'"):
        load_settings({"VIGIL_HOME": str(tmp_path)})
