"""Monitors, monitor environments and check-ins as plain, immutable values: what the
stores return and what the crons logic, the consumer and the API pass around. No I/O."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from vigil.monitors.enums import CheckInStatus, MonitorStatus, MonitorType, ObjectStatus


@dataclass(frozen=True)
class Monitor:
    """One monitor (B1). `config` is the stored, validated config (see monitor_config)."""

    id: int
    guid: uuid.UUID
    organization_id: int
    project_id: int
    slug: str
    name: str
    status: ObjectStatus
    type: MonitorType
    is_muted: bool
    owner_user_id: int | None
    owner_team_id: int | None
    config: dict[str, Any]
    date_added: datetime


@dataclass(frozen=True)
class MonitorEnvironment:
    """One monitor in one environment (B1), with the environment's name."""

    id: int
    monitor_id: int
    environment_id: int
    environment: str
    status: MonitorStatus
    is_muted: bool
    next_checkin: datetime | None
    next_checkin_latest: datetime | None
    last_checkin: datetime | None
    date_added: datetime


@dataclass(frozen=True)
class CheckIn:
    """One check-in of a monitor environment, as stored."""

    id: int
    guid: uuid.UUID
    project_id: int
    monitor_id: int
    monitor_environment_id: int
    status: CheckInStatus
    duration: int | None
    date_added: datetime
    date_updated: datetime
    timeout_at: datetime | None
    trace_id: uuid.UUID | None


@dataclass(frozen=True)
class MonitorWithEnvironments:
    """A monitor and its environments, ordered by environment name (API listings)."""

    monitor: Monitor
    environments: tuple[MonitorEnvironment, ...]
