"""Server options an operator can change while vigil runs (the reference's "options"),
kept in the `option` table as JSON values: `vigil option get|set KEY [JSON]`.

Readers that consult an option on a hot path cache it for a few seconds themselves; a
change therefore takes effect within that time, without a restart.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import Connection, select, update
from sqlalchemy.exc import IntegrityError

from vigil.db.tables import option as option_table

# Organizations whose check-ins are dropped (B4.3 step 1): [{"organization_id": N}, ...].
CRONS_DISABLE_CHECKIN: Final = "crons.organization.disable-check-in"

MAX_KEY_LENGTH: Final = 200


def get_option(conn: Connection, key: str, default: Any = None) -> Any:
    """The stored value of `key`, or `default` when it was never set."""
    row = conn.execute(select(option_table.c.value).where(option_table.c.key == key)).first()
    return default if row is None else row.value


def set_option(conn: Connection, key: str, value: Any, now: datetime | None = None) -> None:
    """Store `value` (anything JSON can hold) under `key`, replacing what was there.
    ValueError for an empty or over-long key."""
    if not key or len(key) > MAX_KEY_LENGTH:
        raise ValueError(f"an option key is 1-{MAX_KEY_LENGTH} characters, got {len(key)}")
    moment = datetime.now(UTC) if now is None else now
    changed = conn.execute(
        update(option_table)
        .where(option_table.c.key == key)
        .values(value=value, date_updated=moment)
    ).rowcount
    if changed:
        return
    try:
        with conn.begin_nested():
            conn.execute(option_table.insert().values(key=key, value=value, date_updated=moment))
    except IntegrityError:  # set by someone else meanwhile: the last write wins
        conn.execute(
            update(option_table)
            .where(option_table.c.key == key)
            .values(value=value, date_updated=moment)
        )


def list_options(conn: Connection) -> dict[str, Any]:
    """Every stored option, by key."""
    rows = conn.execute(select(option_table.c.key, option_table.c.value).order_by("key"))
    return {row.key: row.value for row in rows}


def killswitch_organizations(value: Any) -> frozenset[int]:
    """The organization ids a `crons.organization.disable-check-in` value names. Entries
    that are not {"organization_id": <int>} are ignored (an operator's typo must not stop
    every check-in)."""
    if not isinstance(value, list):
        return frozenset()
    found: set[int] = set()
    for entry in value:
        if isinstance(entry, dict):
            org = entry.get("organization_id")
            if isinstance(org, int) and not isinstance(org, bool):
                found.add(org)
    return frozenset(found)
