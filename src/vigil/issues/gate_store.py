"""The state of the gates before a group is created, kept in the database (the reference
keeps it in Redis): the noise counter per fingerprint hash and the sliding-window quota
buckets. The rules are in `grouping.noise_gate` and `quota`; this only reads and writes."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection, bindparam, delete, select, update

from vigil.db.tables import issue_noise_counter, quota_bucket
from vigil.db.timestamps import as_utc
from vigil.issues import quota as quota_rules
from vigil.issues.group_types import NoiseConfig, Quota
from vigil.issues.grouping import CounterAction, NoiseDecision, noise_gate
from vigil.issues.rows import increment, insert_if_absent


def pass_noise_gate(
    conn: Connection,
    project_id: int,
    hashed_fingerprint: str,
    config: NoiseConfig | None,
    now: datetime,
) -> NoiseDecision:
    """Apply the noise gate to one occurrence of a fingerprint that has no group yet:
    read its counter (an expired one counts as 0), decide, and store or reset it."""
    if config is None:
        return noise_gate(0, None)
    key = (
        issue_noise_counter.c.project_id == project_id,
        issue_noise_counter.c.hash == hashed_fingerprint,
    )
    row = conn.execute(
        select(issue_noise_counter.c.count, issue_noise_counter.c.expires_at).where(*key)
    ).first()
    stored = int(row[0]) if row is not None and as_utc(row.expires_at) > now else 0
    decision = noise_gate(stored, config)
    if decision.action is CounterAction.RESET:
        conn.execute(delete(issue_noise_counter).where(*key))
    elif decision.action is CounterAction.STORE:
        assert decision.expiry is not None
        values = {"count": decision.count, "expires_at": now + decision.expiry}
        if row is None and insert_if_absent(
            conn,
            issue_noise_counter,
            {"project_id": project_id, "hash": hashed_fingerprint, **values},
        ):
            return decision
        conn.execute(update(issue_noise_counter).where(*key).values(**values))
    return decision


# Built once (building a statement costs more than running it on SQLite).
_DROP_OLD_BUCKETS = delete(quota_bucket).where(
    quota_bucket.c.key == bindparam("p_key"), quota_bucket.c.bucket <= bindparam("p_oldest")
)
_BUCKETS = select(quota_bucket.c.bucket, quota_bucket.c.count).where(
    quota_bucket.c.key == bindparam("p_key")
)


def take_quota(conn: Connection, key: str, quota: Quota, now: datetime, units: int = 1) -> bool:
    """Whether `units` fit in the quota `key` at `now`; if they do, they are used up.
    Buckets that left the window are deleted on the way."""
    buckets = read_quota(conn, key, quota, now)
    timestamp = now.timestamp()
    if not quota_rules.is_granted(buckets, timestamp, quota, units):
        return False
    current = quota_rules.bucket_of(timestamp, quota)
    increment(conn, quota_bucket, {"key": key, "bucket": current}, "count", units)
    return True


def read_quota(conn: Connection, key: str, quota: Quota, now: datetime) -> dict[int, int]:
    """The quota `key`'s buckets (start → units), deleting those that left the window."""
    oldest = quota_rules.bucket_of(now.timestamp(), quota) - quota.window_seconds
    conn.execute(_DROP_OLD_BUCKETS, {"p_key": key, "p_oldest": oldest})
    rows = conn.execute(_BUCKETS, {"p_key": key})
    return {int(bucket): int(count) for bucket, count in rows}


QUOTA_BUCKET_RETENTION = timedelta(days=1)
"""Buckets older than this are deleted by `forget_expired`: longer than any quota window
vigil uses (an hour by default; a configured rate-limit window should stay below it)."""


def forget_expired(conn: Connection, now: datetime) -> int:
    """Delete expired noise counters and quota buckets no window can still count (those
    of keys still in use are also pruned by `take_quota`); returns how many rows."""
    counters = conn.execute(
        delete(issue_noise_counter).where(issue_noise_counter.c.expires_at <= now)
    )
    oldest = int((now - QUOTA_BUCKET_RETENTION).timestamp())
    buckets = conn.execute(delete(quota_bucket).where(quota_bucket.c.bucket < oldest))
    return int(counters.rowcount) + int(buckets.rowcount)
