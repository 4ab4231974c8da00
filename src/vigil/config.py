"""Server settings: read once from the environment and an optional TOML file.

Precedence: environment variable > config file > default. Every value is validated
here, so a bad one stops the process at start with a message naming the setting.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

# A century: more is no retention at all, and a date that far back does not exist.
MAX_RETENTION_DAYS = 36_500


class ConfigError(Exception):
    """An invalid setting; the message names the setting and what is wrong."""


@dataclass(frozen=True)
class Settings:
    home: Path = Path(".vigil")
    database_url: str = ""  # empty: SQLite file under `home`
    kafka_bootstrap_servers: str = ""  # empty: the embedded log under `home`
    bind: str = "127.0.0.1:9000"
    public_url: str = ""  # empty: http://{bind}
    max_message_bytes: int = 1024 * 1024
    partitions: int = 4
    batch_size: int = 500
    batch_time_ms: int = 1000
    log_level: str = "INFO"
    log_format: str = "text"
    sqlite_busy_timeout_ms: int = 30_000
    topic_prefix: str = ""  # prepended to every topic name, to share one Kafka cluster
    kafka_session_timeout_ms: int = 10_000
    # crons creation limits (the reference's MAX_MONITORS_PER_ORG / _ENVIRONMENTS_PER_MONITOR)
    max_monitors_per_org: int = 10_000
    max_environments_per_monitor: int = 1_000
    # threads applying check-in groups (different monitor environments) at once; 0: 1 on
    # SQLite, which serialises writers anyway, 4 on PostgreSQL
    checkin_workers: int = 0
    # threads applying occurrence groups (different fingerprints) at once; 0: 1 on SQLite,
    # 4 on PostgreSQL
    occurrence_workers: int = 0
    # "batched" (split by fingerprint, dedupe, pruning) or "single" (one message at a time)
    occurrence_mode: str = "batched"
    # days issues, events, occurrences and check-ins are kept (vigil.retention); 0: forever
    retention_days: int = 90
    # the relay email webhooks are sent through (vigil.webhooks.mail); empty: no email
    smtp_url: str = ""
    # the From of those emails; empty: vigil@ the public URL's host
    email_from: str = ""

    @property
    def host(self) -> str:
        return self.bind.rsplit(":", 1)[0]

    @property
    def port(self) -> int:
        return int(self.bind.rsplit(":", 1)[1])

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.bind}").rstrip("/")

    @property
    def uses_kafka(self) -> bool:
        return bool(self.kafka_bootstrap_servers)

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'vigil.sqlite3').resolve()}"

    def topic(self, name: str) -> str:
        """The name of a topic on the log (with the configured prefix)."""
        return f"{self.topic_prefix}{name}"

    @property
    def log_path(self) -> Path:
        """The embedded log's SQLite file."""
        return self.home / "log.sqlite3"


def _positive_int(name: str) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
        if value <= 0:
            raise ConfigError(f"{name} must be greater than zero, got {value}")
        return value

    return parse


def _non_negative_int(name: str, most: int | None = None) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
        if value < 0:
            raise ConfigError(f"{name} must not be negative, got {value}")
        if most is not None and value > most:
            raise ConfigError(f"{name} must be at most {most:,}, got {value:,}")
        return value

    return parse


def _bind(raw: str) -> str:
    host, sep, port = raw.rpartition(":")
    if not sep or not host:
        raise ConfigError(f"VIGIL_BIND must be HOST:PORT, got {raw!r}")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"VIGIL_BIND port must be 1-65535, got {port!r}")
    return raw


def normalize_database_url(raw: str) -> str:
    """A VIGIL_DATABASE_URL as the engine takes it (postgres:// and postgresql:// name
    psycopg); ConfigError for a scheme vigil does not know."""
    if raw and not raw.startswith(("sqlite:", "postgresql:", "postgresql+psycopg:", "postgres:")):
        raise ConfigError(
            "VIGIL_DATABASE_URL must be a sqlite:/// or postgresql:// URL, "
            f"got {raw.split('://', 1)[0]!r}"
        )
    if raw.startswith("postgres:"):  # the common short scheme
        raw = "postgresql:" + raw[len("postgres:") :]
    if raw.startswith("postgresql:"):
        raw = "postgresql+psycopg:" + raw[len("postgresql:") :]
    return raw


def _choice(name: str, options: tuple[str, ...]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip()
        normalized = value.upper() if name == "VIGIL_LOG_LEVEL" else value.lower()
        if normalized not in options:
            raise ConfigError(f"{name} must be one of {', '.join(options)}, got {raw!r}")
        return normalized

    return parse


def _topic_prefix(raw: str) -> str:
    if raw and not all(c.isalnum() or c in "._-" for c in raw):
        raise ConfigError(
            f"VIGIL_TOPIC_PREFIX may only hold letters, digits, '.', '_' and '-', got {raw!r}"
        )
    return raw


def _url(raw: str) -> str:
    if raw and not raw.startswith(("http://", "https://")):
        raise ConfigError(f"VIGIL_PUBLIC_URL must start with http:// or https://, got {raw!r}")
    return raw


def _smtp_url(raw: str) -> str:
    raw = raw.strip()
    if not raw:
        return raw
    parts = urlsplit(raw)
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise ConfigError(f"VIGIL_SMTP_URL has a bad port: {raw!r}") from None
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ConfigError(
            "VIGIL_SMTP_URL must be smtp://[user:password@]host[:port][?starttls=true] or "
            f"smtps://…, got {redact_url(raw)!r}"
        )
    return raw


def _email(raw: str) -> str:
    raw = raw.strip()
    if raw and (raw.count("@") != 1 or any(c.isspace() for c in raw)):
        raise ConfigError(f"VIGIL_EMAIL_FROM must be an email address, got {raw!r}")
    return raw


def redact_url(url: str) -> str:
    """`url` with the password of its user part replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


# setting name -> (environment variable, parser)
_PARSERS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "home": ("VIGIL_HOME", Path),
    "database_url": ("VIGIL_DATABASE_URL", normalize_database_url),
    "kafka_bootstrap_servers": ("VIGIL_KAFKA_BOOTSTRAP_SERVERS", str.strip),
    "bind": ("VIGIL_BIND", _bind),
    "public_url": ("VIGIL_PUBLIC_URL", _url),
    "max_message_bytes": ("VIGIL_MAX_MESSAGE_BYTES", _positive_int("VIGIL_MAX_MESSAGE_BYTES")),
    "partitions": ("VIGIL_PARTITIONS", _positive_int("VIGIL_PARTITIONS")),
    "batch_size": ("VIGIL_BATCH_SIZE", _positive_int("VIGIL_BATCH_SIZE")),
    "batch_time_ms": ("VIGIL_BATCH_TIME_MS", _positive_int("VIGIL_BATCH_TIME_MS")),
    "log_level": (
        "VIGIL_LOG_LEVEL",
        _choice("VIGIL_LOG_LEVEL", ("DEBUG", "INFO", "WARNING", "ERROR")),
    ),
    "log_format": ("VIGIL_LOG_FORMAT", _choice("VIGIL_LOG_FORMAT", ("text", "json"))),
    "sqlite_busy_timeout_ms": (
        "VIGIL_SQLITE_BUSY_TIMEOUT_MS",
        _positive_int("VIGIL_SQLITE_BUSY_TIMEOUT_MS"),
    ),
    "topic_prefix": ("VIGIL_TOPIC_PREFIX", _topic_prefix),
    "kafka_session_timeout_ms": (
        "VIGIL_KAFKA_SESSION_TIMEOUT_MS",
        _positive_int("VIGIL_KAFKA_SESSION_TIMEOUT_MS"),
    ),
    "max_monitors_per_org": (
        "VIGIL_MAX_MONITORS_PER_ORG",
        _positive_int("VIGIL_MAX_MONITORS_PER_ORG"),
    ),
    "max_environments_per_monitor": (
        "VIGIL_MAX_ENVIRONMENTS_PER_MONITOR",
        _positive_int("VIGIL_MAX_ENVIRONMENTS_PER_MONITOR"),
    ),
    "checkin_workers": ("VIGIL_CHECKIN_WORKERS", _non_negative_int("VIGIL_CHECKIN_WORKERS")),
    "occurrence_workers": (
        "VIGIL_OCCURRENCE_WORKERS",
        _non_negative_int("VIGIL_OCCURRENCE_WORKERS"),
    ),
    "occurrence_mode": (
        "VIGIL_OCCURRENCE_MODE",
        _choice("VIGIL_OCCURRENCE_MODE", ("batched", "single")),
    ),
    "retention_days": (
        "VIGIL_RETENTION_DAYS",
        _non_negative_int("VIGIL_RETENTION_DAYS", most=MAX_RETENTION_DAYS),
    ),
    "smtp_url": ("VIGIL_SMTP_URL", _smtp_url),
    "email_from": ("VIGIL_EMAIL_FROM", _email),
}

ENV_VARS = {env: name for name, (env, _) in _PARSERS.items()}


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from `environ` (default: os.environ) and the config file it names.

    The file is `VIGIL_CONFIG` if set, else `$VIGIL_HOME/vigil.toml` if it exists. Its keys
    are the setting names in lower case without the prefix (`database_url = "..."`).
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    home = Path(env.get("VIGIL_HOME") or ".vigil")
    config_path = env.get("VIGIL_CONFIG")
    path = Path(config_path) if config_path else home / "vigil.toml"
    if config_path and not path.is_file():
        raise ConfigError(f"VIGIL_CONFIG names {path}, which is not a readable file")
    if path.is_file():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
        known = {f.name for f in fields(Settings)}
        for key, raw in data.items():
            if key not in known:
                raise ConfigError(
                    f"config file {path}: unknown setting {key!r} "
                    f"(known: {', '.join(sorted(known))})"
                )
            values[key] = _PARSERS[key][1](str(raw))
    for name, (var, parse) in _PARSERS.items():
        raw_env = env.get(var)
        if raw_env is not None and raw_env != "":
            values[name] = parse(raw_env)
    settings = replace(Settings(), **values)
    if settings.database_url.startswith("sqlite") and settings.database_url.count("/") < 3:
        raise ConfigError("VIGIL_DATABASE_URL: a SQLite URL needs a file path (sqlite:///path)")
    return settings
