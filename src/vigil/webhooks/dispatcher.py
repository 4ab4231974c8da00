"""`vigil periodic`'s webhook job: find what the webhooks hear of, and send it.

Each run, on a thread of its own (the crons clock's jobs never wait for a slow receiver):

1. find: per webhook, the groups and group-history rows after its cursors, in its
   scope, become pending deliveries (the issue as the REST API shows it at that moment);
   the cursors then move past the rows found, but not past a row younger than `SETTLE`:
   on PostgreSQL a transaction may commit a lower id after a higher one was seen, and a
   row is looked at again until it is old enough that none can still be coming. The
   delivery's unique source keeps a change looked at twice from being sent twice.
2. send: each webhook's pending deliveries in the order they were found; a delivery
   that must wait for a retry holds back the webhook's later ones, so a receiver sees
   an issue's changes in order. Webhooks are served side by side.
3. once an hour, deliveries done more than `KEEP` ago are deleted.

Nothing is written on the consumers' paths: the job reads what they wrote, so an install
without webhooks pays nothing.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import Connection, Engine

from vigil import metrics
from vigil.config import Settings
from vigil.db.timestamps import as_utc
from vigil.tenancy.public_url import public_base_url
from vigil.webhooks import delivery, payloads, sender, store
from vigil.webhooks.store import Webhook

log = logging.getLogger(__name__)

EVERY_S: Final = 2.0
SETTLE: Final = timedelta(seconds=60)
SCAN_LIMIT: Final = 500
SEND_LIMIT: Final = 200  # per webhook and run
SEND_THREADS: Final = 4
# How long one run may spend on one webhook's deliveries: a slow receiver with a backlog
# must not hold back the next run, which finds the next changes for every webhook.
SEND_BUDGET_S: Final = 15.0
KEEP: Final = timedelta(days=7)
PRUNE_EVERY: Final = timedelta(hours=1)

Clock = Callable[[], datetime]


def _wall_clock() -> datetime:
    return datetime.now(UTC)


@dataclass
class Report:
    found: int = 0
    delivered: int = 0
    retrying: int = 0
    failed: int = 0


@dataclass(frozen=True)
class _Change:
    source: str
    group_id: int
    action: str
    word: str


def settled_cursor(cursor: int, rows: Sequence[Any], now: datetime) -> int:
    """How far a cursor may move past `rows` (ascending ids with their `date_added`):
    to the last of the leading rows older than SETTLE."""
    for row in rows:
        if as_utc(row.date_added) > now - SETTLE:
            break
        cursor = row.id
    return cursor


def _changes(
    hook: Webhook, projects: frozenset[int], groups: Sequence[Any], history: Sequence[Any]
) -> list[_Change]:
    changes = []
    if "created" in hook.actions:
        changes += [
            _Change(f"group:{row.id}", row.id, "created", payloads.CREATED_WORD)
            for row in groups
            if row.project_id in projects
        ]
    for row in history:
        if row.project_id not in projects:
            continue
        mapped = payloads.history_action(row.status)
        if mapped is not None and mapped[0] in hook.actions:
            changes.append(_Change(f"history:{row.id}", row.group_id, *mapped))
    return changes


def find_changes(conn: Connection, hook: Webhook, base_url: str, now: datetime) -> int:
    """Turn what the webhook has not looked at yet into pending deliveries; move its
    cursors. How many deliveries were added."""
    # Imported here: the API's serializer brings the web framework with it.
    from vigil.api.issues import issue_rows, serialize_issue

    groups = store.groups_after(conn, hook.group_cursor, SCAN_LIMIT)
    history = store.history_after(conn, hook.history_cursor, SCAN_LIMIT)
    changes = _changes(hook, store.scope_projects(conn, hook), groups, history)
    known = store.known_sources(conn, hook.id, [c.source for c in changes])
    changes = [c for c in changes if c.source not in known]
    rows = issue_rows(conn, [c.group_id for c in changes])
    added = 0
    for change in changes:
        row = rows.get(change.group_id)
        if row is None:
            continue  # deleted since (or being deleted): nothing to tell
        issue = serialize_issue(row)
        issue.update(payloads.issue_links(issue, base_url, hook.organization_slug))
        body = payloads.build_body(
            fmt=hook.format,
            action=change.action,
            word=change.word,
            issue=issue,
            webhook_id=hook.id,
            org_slug=hook.organization_slug,
        )
        added += store.add_delivery(
            conn, hook.id, change.group_id, change.source, change.action, body, now
        )
    store.set_cursors(
        conn,
        hook.id,
        settled_cursor(hook.group_cursor, groups, now),
        settled_cursor(hook.history_cursor, history, now),
    )
    return added


class WebhookDispatcher:
    """The periodic job (see the module). The links a delivery carries start with
    vigil's public URL (the `system.url-prefix` option, else the settings')."""

    def __init__(
        self,
        settings: Settings,
        *,
        background: bool = True,
        post: sender.Post = delivery.post,
        clock: Clock = _wall_clock,
    ) -> None:
        self.settings = settings
        self.background = background
        self._post = post
        self._clock = clock
        self._thread: threading.Thread | None = None
        self._last_prune: datetime | None = None

    def __call__(self, engine: Engine, now: datetime) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        if not self.background:
            self.run_once(engine, now)
            return
        self._thread = threading.Thread(
            target=self._run, args=(engine, now), name="vigil-webhooks", daemon=True
        )
        self._thread.start()

    def _run(self, engine: Engine, now: datetime) -> None:
        try:
            self.run_once(engine, now)
        except Exception:
            log.exception("webhook run failed; the next one tries again")

    def run_once(self, engine: Engine, now: datetime) -> Report:
        report = Report()
        with engine.connect() as conn:
            hooks = store.list_webhooks(conn)
            base_url = public_base_url(conn, self.settings) if hooks else ""
        for hook in hooks:
            with engine.begin() as conn:
                report.found += find_changes(conn, hook, base_url, now)
        self._send(engine, hooks, report)
        if self._last_prune is None or now - self._last_prune >= PRUNE_EVERY:
            with engine.begin() as conn:
                store.prune_deliveries(conn, now - KEEP)
            self._last_prune = now
        return report

    def _send(self, engine: Engine, hooks: Sequence[Webhook], report: Report) -> None:
        if not hooks:
            return
        with ThreadPoolExecutor(SEND_THREADS, thread_name_prefix="vigil-webhook-send") as pool:
            for outcome in pool.map(lambda hook: self._send_hook(engine, hook), hooks):
                report.delivered += outcome.delivered
                report.retrying += outcome.retrying
                report.failed += outcome.failed

    def _deliver(self, hook: Webhook, row: Any, now: datetime) -> delivery.Outcome:
        return sender.send(
            self.settings,
            hook,
            row.payload,
            request_id=request_id(row.id),
            now=now,
            post=self._post,
        )

    def _send_hook(self, engine: Engine, hook: Webhook) -> Report:
        # Each webhook's own first deliveries: one receiver's backlog never keeps
        # another's from being read.
        with engine.connect() as conn:
            rows = store.pending_deliveries(conn, hook.id, SEND_LIMIT)
        report = Report()
        deadline = time.monotonic() + SEND_BUDGET_S
        for row in rows:
            now = self._clock()
            if row.next_attempt_at is not None and as_utc(row.next_attempt_at) > now:
                break  # waiting for a retry: the webhook's later deliveries wait too
            try:
                outcome = self._deliver(hook, row, now)
            except Exception as exc:
                # A bug, not the receiver: said, and tried again later like an outage.
                log.exception("webhook delivery raised", extra={"webhook": hook.id})
                outcome = delivery.Outcome(False, True, None, f"{type(exc).__name__}: {exc}")
            attempts = row.attempts + 1
            delay = None if outcome.delivered else retry_after(outcome, attempts)
            if outcome.delivered:
                status, report.delivered = store.DELIVERED, report.delivered + 1
            elif delay is not None:
                status, report.retrying = store.PENDING, report.retrying + 1
            else:
                status, report.failed = store.FAILED, report.failed + 1
                log.warning(
                    "webhook delivery failed for good",
                    extra={"webhook": hook.id, "attempts": attempts, "error": outcome.error},
                )
            metrics.WEBHOOK_DELIVERIES.labels(
                "delivered" if outcome.delivered else "retrying" if delay else "failed"
            ).inc()
            with engine.begin() as conn:
                store.finish_attempt(
                    conn,
                    hook.id,
                    row.id,
                    status=status,
                    attempts=attempts,
                    next_attempt_at=None if delay is None else now + delay,
                    response_code=outcome.code,
                    error=outcome.error,
                    now=now,
                )
            if status == store.PENDING or time.monotonic() > deadline:
                break  # waiting for a retry, or the rest next run
        return report


def request_id(delivery_id: int) -> str:
    """The Request-ID of every attempt of a delivery: a receiver that got it before
    (its answer lost) can tell."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"vigil-webhook-delivery:{delivery_id}").hex


def retry_after(outcome: delivery.Outcome, attempts: int) -> timedelta | None:
    """When a failed attempt is tried again; None: never."""
    return delivery.retry_delay(attempts) if outcome.retryable else None
