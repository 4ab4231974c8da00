"""Trimming the embedded log: deleting the messages every known group has committed past.

A partition whose topic no group has ever subscribed to keeps everything (its readers
may not have come yet: dead-letter topics are read by people, much later). Deletion goes
in bounded transactions so that producers waiting for the write lock wait little.
"""

from __future__ import annotations

import sqlite3

from vigil.streams.embedded.storage import messages_table, write_transaction

# Messages deleted per transaction, at most.
TRIM_CHUNK = 20_000


def trim(conn: sqlite3.Connection, topic: str, chunk: int = TRIM_CHUNK) -> int:
    """Delete the messages of `topic` below the lowest offset committed by any group
    registered on their partition; return how many were deleted."""
    ids = [
        r[0]
        for r in conn.execute(
            "SELECT id FROM partitions WHERE topic = ? ORDER BY partition", (topic,)
        ).fetchall()
    ]
    deleted = 0
    for partition_id in ids:
        while True:
            with write_transaction(conn):
                # Read the floor under the write lock: a group subscribing meanwhile
                # registers at the low offset, and must find its messages there.
                low, floor = _low_and_floor(conn, partition_id)
                if floor is None or floor <= low:
                    break
                upto = min(floor, low + chunk)
                cur = conn.execute(
                    f"DELETE FROM {messages_table(partition_id)} WHERE offset >= ? AND offset < ?",
                    (low, upto),
                )
                conn.execute(
                    "UPDATE partitions SET low_offset = ? WHERE id = ?", (upto, partition_id)
                )
                deleted += cur.rowcount
    return deleted


def _low_and_floor(conn: sqlite3.Connection, partition_id: int) -> tuple[int, int | None]:
    """The partition's low offset, and the offset below which every group is done (None
    if no group is known; never beyond the partition's end)."""
    low, next_offset, floor = conn.execute(
        """SELECT p.low_offset, p.next_offset,
                  (SELECT min(c.offset) FROM committed_offsets c
                    WHERE c.topic = p.topic AND c.partition = p.partition)
             FROM partitions p WHERE p.id = ?""",
        (partition_id,),
    ).fetchone()
    return int(low), None if floor is None else min(int(floor), int(next_offset))
