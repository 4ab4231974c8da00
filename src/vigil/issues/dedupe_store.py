"""The consumer's record of applied message ids (the reference's 300 s dedupe cache, kept
in the database): a message id seen again within the window is skipped."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection, bindparam, delete, select

from vigil.db.tables import processed_message
from vigil.issues.batching import DEDUPE_TTL_SECONDS
from vigil.issues.fingerprint import md5_hex
from vigil.issues.rows import insert_if_absent

WINDOW = timedelta(seconds=DEDUPE_TTL_SECONDS)
MAX_ID_CHARS = 200


def stored_id(message_id: str) -> str:
    """The key a message id is recorded under."""
    # A status change's id is any string the producer chose; a long one (or one with a
    # NUL, which PostgreSQL text cannot hold) is kept as its digest, so that it fits the
    # column and still dedupes.
    if len(message_id) <= MAX_ID_CHARS and "\x00" not in message_id:
        return message_id
    return "md5:" + md5_hex(message_id)


# Built once (building a statement costs more than running it on SQLite).
_WAS_PROCESSED = select(processed_message.c.processed_at).where(
    processed_message.c.project_id == bindparam("p_project"),
    processed_message.c.message_id == bindparam("p_message"),
    processed_message.c.processed_at > bindparam("p_after"),
)


def was_processed(conn: Connection, project_id: int, message_id: str, now: datetime) -> bool:
    """Whether the message id was applied for the project within the window."""
    found = conn.execute(
        _WAS_PROCESSED,
        {"p_project": project_id, "p_message": stored_id(message_id), "p_after": now - WINDOW},
    ).first()
    return found is not None


def mark_processed(conn: Connection, project_id: int, message_id: str, now: datetime) -> None:
    """Remember that the message id was applied at `now` (in the applying transaction)."""
    key = stored_id(message_id)
    values = {"project_id": project_id, "message_id": key, "processed_at": now}
    if not insert_if_absent(conn, processed_message, values):
        conn.execute(
            processed_message.update()
            .where(
                processed_message.c.project_id == project_id,
                processed_message.c.message_id == key,
            )
            .values(processed_at=now)
        )


def forget_expired(conn: Connection, now: datetime) -> int:
    """Delete the ids older than the window; returns how many."""
    result = conn.execute(
        delete(processed_message).where(processed_message.c.processed_at <= now - WINDOW)
    )
    return int(result.rowcount)
