"""The webhooks and their deliveries in the database. Every function takes an open
connection, so the caller decides the transaction."""

from __future__ import annotations

import secrets
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Connection, and_, delete, func, select, update
from sqlalchemy.exc import IntegrityError

from vigil.db.ids import parse_id
from vigil.db.tables import group, group_history, organization, project, webhook, webhook_delivery
from vigil.tenancy.store import NotFound, Organization, Project, TenancyError
from vigil.webhooks import mail
from vigil.webhooks.payloads import ACTIONS, FORMATS

MAX_URL_LENGTH: Final = 2000
MAX_WEBHOOKS_PER_ORGANIZATION: Final = 20

PENDING: Final = "pending"
DELIVERED: Final = "delivered"
FAILED: Final = "failed"


@dataclass(frozen=True)
class Webhook:
    id: int
    organization_id: int
    organization_slug: str
    project_id: int | None
    project_slug: str | None
    url: str
    format: str
    actions: tuple[str, ...]
    secret: str
    group_cursor: int
    history_cursor: int
    last_error: str | None
    date_last_error: datetime | None
    date_added: datetime


@dataclass(frozen=True)
class DeliveryCounts:
    pending: int
    delivered: int
    failed: int


def check_url(url: str) -> str:
    """The URL as given if vigil can deliver to it (http(s), or mailto: for email);
    TenancyError saying why not."""
    if len(url) > MAX_URL_LENGTH:
        raise TenancyError(f"url: at most {MAX_URL_LENGTH} characters")
    if url.startswith("mailto:"):
        try:
            mail.recipients(url)
        except ValueError as exc:
            raise TenancyError(f"url: {exc}") from None
        return url
    if any(c.isspace() or not c.isprintable() for c in url):
        raise TenancyError("url: no spaces or control characters (percent-encode them)")
    parts = urllib.parse.urlsplit(url)
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not one
    except ValueError:
        raise TenancyError("url: the port must be a number from 1 to 65535") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TenancyError("url: an http:// or https:// URL with a host, or mailto:")
    return url


def check_actions(actions: Iterable[str] | None) -> tuple[str, ...]:
    """The actions asked for, in the canonical order (all of them when none is named)."""
    wanted = set(actions or ACTIONS)
    unknown = sorted(wanted - set(ACTIONS))
    if unknown:
        raise TenancyError(f"actions: unknown {', '.join(unknown)} (known: {', '.join(ACTIONS)})")
    return tuple(a for a in ACTIONS if a in wanted)


def check_format(fmt: str | None, url: str) -> str:
    """The format for `url`: email for mailto:, else sentry unless told slack."""
    is_mail = url.startswith("mailto:")
    fmt = fmt or ("email" if is_mail else FORMATS[0])
    if fmt not in FORMATS:
        raise TenancyError(f"format: one of {', '.join(FORMATS)}")
    if (fmt == "email") != is_mail:
        raise TenancyError("format: email goes with a mailto: URL, and only email does")
    return fmt


def _select() -> Any:
    return (
        select(
            webhook,
            organization.c.slug.label("organization_slug"),
            project.c.slug.label("project_slug"),
        )
        .join(organization, organization.c.id == webhook.c.organization_id)
        .outerjoin(project, project.c.id == webhook.c.project_id)
    )


def _webhook(row: Any) -> Webhook:
    return Webhook(
        id=row.id,
        organization_id=row.organization_id,
        organization_slug=row.organization_slug,
        project_id=row.project_id,
        project_slug=row.project_slug,
        url=row.url,
        format=row.format,
        actions=tuple(row.actions),
        secret=row.secret,
        group_cursor=row.group_cursor,
        history_cursor=row.history_cursor,
        last_error=row.last_error,
        date_last_error=row.date_last_error,
        date_added=row.date_added,
    )


def create_webhook(
    conn: Connection,
    org: Organization,
    proj: Project | None,
    url: str,
    *,
    fmt: str | None = None,
    actions: Iterable[str] | None = None,
    now: datetime,
    mail_relay: bool = False,
) -> Webhook:
    """A webhook for the organization's issues (of one project, given `proj`). It hears
    of changes from now on: its cursors start at the newest group and history rows.
    An email webhook needs `mail_relay` (VIGIL_SMTP_URL set)."""
    url = check_url(url)
    fmt = check_format(fmt, url)
    if fmt == "email" and not mail_relay:
        raise TenancyError(
            "email needs an SMTP relay: set VIGIL_SMTP_URL (smtp://host:port) for vigil"
        )
    wanted = check_actions(actions)
    count = conn.execute(
        select(func.count()).select_from(webhook).where(webhook.c.organization_id == org.id)
    ).scalar_one()
    if count >= MAX_WEBHOOKS_PER_ORGANIZATION:
        raise TenancyError(
            f"{org.slug} has {count} webhooks, the most an organization may have; remove one"
        )
    group_cursor, history_cursor = highest_ids(conn)
    webhook_id = conn.execute(
        webhook.insert()
        .values(
            organization_id=org.id,
            project_id=None if proj is None else proj.id,
            url=url,
            format=fmt,
            actions=list(wanted),
            secret=secrets.token_hex(32),
            group_cursor=group_cursor,
            history_cursor=history_cursor,
            date_added=now,
        )
        .returning(webhook.c.id)
    ).scalar_one()
    return get_webhook(conn, org, str(webhook_id))


def get_webhook(conn: Connection, org: Organization, webhook_id: str) -> Webhook:
    parsed = parse_id(webhook_id)
    row = (
        None
        if parsed is None
        else conn.execute(
            _select().where(webhook.c.id == parsed, webhook.c.organization_id == org.id)
        ).first()
    )
    if row is None:
        raise NotFound(f"webhook {webhook_id!r} does not exist in {org.slug}")
    return _webhook(row)


def list_webhooks(conn: Connection, org: Organization | None = None) -> list[Webhook]:
    """The organization's webhooks (every organization's, without one), oldest first."""
    query = _select().order_by(webhook.c.id)
    if org is not None:
        query = query.where(webhook.c.organization_id == org.id)
    return [_webhook(row) for row in conn.execute(query)]


def delete_webhook(conn: Connection, org: Organization, webhook_id: str) -> None:
    hook = get_webhook(conn, org, webhook_id)
    conn.execute(delete(webhook).where(webhook.c.id == hook.id))


def delivery_counts(conn: Connection, webhook_ids: Sequence[int]) -> dict[int, DeliveryCounts]:
    """Per webhook: its deliveries by status (those kept: a week once done)."""
    if not webhook_ids:
        return {}
    d = webhook_delivery
    counts: dict[int, dict[str, int]] = {i: {} for i in webhook_ids}
    for webhook_id, status, n in conn.execute(
        select(d.c.webhook_id, d.c.status, func.count())
        .where(d.c.webhook_id.in_(webhook_ids))
        .group_by(d.c.webhook_id, d.c.status)
    ):
        counts[webhook_id][status] = n
    return {
        i: DeliveryCounts(c.get(PENDING, 0), c.get(DELIVERED, 0), c.get(FAILED, 0))
        for i, c in counts.items()
    }


def recent_deliveries(conn: Connection, webhook_id: int, limit: int = 50) -> list[Any]:
    d = webhook_delivery
    return list(
        conn.execute(
            select(d)
            .where(d.c.webhook_id == webhook_id)
            .order_by(d.c.date_added.desc(), d.c.id.desc())
            .limit(limit)
        )
    )


# --- what the dispatcher reads and writes ------------------------------------------------


def scope_projects(conn: Connection, hook: Webhook) -> frozenset[int]:
    """The ids of the projects whose issues the webhook hears of."""
    if hook.project_id is not None:
        return frozenset({hook.project_id})
    return frozenset(
        conn.execute(
            select(project.c.id).where(project.c.organization_id == hook.organization_id)
        ).scalars()
    )


def sample_project(conn: Connection, hook: Webhook) -> tuple[int, str]:
    """(id, slug) of the project a test notification names: the webhook's own, else the
    organization's first (the organization's slug for one without projects)."""
    if hook.project_id is not None and hook.project_slug is not None:
        return hook.project_id, hook.project_slug
    first = conn.execute(
        select(project.c.id, project.c.slug)
        .where(project.c.organization_id == hook.organization_id)
        .order_by(project.c.id)
        .limit(1)
    ).first()
    return (first.id, first.slug) if first is not None else (0, hook.organization_slug)


# The two scans below read every row after the cursor, whatever its project or status,
# and the caller picks: a filter in SQL would leave the cursor behind the rows it skips,
# to be read again on every run (another organization's issues, priority changes).


def groups_after(conn: Connection, cursor: int, limit: int) -> list[Any]:
    """Groups after `cursor`, oldest first: (id, project_id, date_added)."""
    return list(
        conn.execute(
            select(group.c.id, group.c.project_id, group.c.date_added)
            .where(group.c.id > cursor)
            .order_by(group.c.id)
            .limit(limit)
        )
    )


def history_after(conn: Connection, cursor: int, limit: int) -> list[Any]:
    """Group-history rows after `cursor`, oldest first: (id, project_id, group_id,
    status, date_added)."""
    h = group_history
    return list(
        conn.execute(
            select(h.c.id, h.c.project_id, h.c.group_id, h.c.status, h.c.date_added)
            .where(h.c.id > cursor)
            .order_by(h.c.id)
            .limit(limit)
        )
    )


def highest_ids(conn: Connection) -> tuple[int, int]:
    """The newest group id and group-history id (0 for none)."""
    return (
        conn.execute(select(func.coalesce(func.max(group.c.id), 0))).scalar_one(),
        conn.execute(select(func.coalesce(func.max(group_history.c.id), 0))).scalar_one(),
    )


def known_sources(conn: Connection, webhook_id: int, sources: Sequence[str]) -> set[str]:
    d = webhook_delivery
    if not sources:
        return set()
    return set(
        conn.execute(
            select(d.c.source).where(d.c.webhook_id == webhook_id, d.c.source.in_(sources))
        ).scalars()
    )


def add_delivery(
    conn: Connection,
    webhook_id: int,
    group_id: int,
    source: str,
    action: str,
    payload: dict[str, Any],
    now: datetime,
) -> bool:
    """A pending delivery, due now; False if the webhook already has one from `source`."""
    try:
        with conn.begin_nested():
            conn.execute(
                webhook_delivery.insert().values(
                    webhook_id=webhook_id,
                    group_id=group_id,
                    source=source,
                    action=action,
                    payload=payload,
                    status=PENDING,
                    attempts=0,
                    next_attempt_at=now,
                    date_added=now,
                )
            )
    except IntegrityError:
        return False
    return True


def set_cursors(conn: Connection, webhook_id: int, group_cursor: int, history_cursor: int) -> None:
    conn.execute(
        update(webhook)
        .where(webhook.c.id == webhook_id)
        .values(group_cursor=group_cursor, history_cursor=history_cursor)
    )


def pending_deliveries(conn: Connection, webhook_id: int, limit: int) -> list[Any]:
    """The webhook's first pending deliveries, in the order they were found."""
    d = webhook_delivery
    return list(
        conn.execute(
            select(d.c.id, d.c.payload, d.c.attempts, d.c.next_attempt_at)
            .where(d.c.webhook_id == webhook_id, d.c.status == PENDING)
            .order_by(d.c.id)
            .limit(limit)
        )
    )


def finish_attempt(
    conn: Connection,
    webhook_id: int,
    delivery_id: int,
    *,
    status: str,
    attempts: int,
    next_attempt_at: datetime | None,
    response_code: int | None,
    error: str | None,
    now: datetime,
) -> None:
    conn.execute(
        update(webhook_delivery)
        .where(webhook_delivery.c.id == delivery_id, webhook_delivery.c.status == PENDING)
        .values(
            status=status,
            attempts=attempts,
            next_attempt_at=next_attempt_at,
            response_code=response_code,
            last_error=error,
            date_done=None if status == PENDING else now,
        )
    )
    if status != DELIVERED:
        conn.execute(
            update(webhook)
            .where(webhook.c.id == webhook_id)
            .values(last_error=error, date_last_error=now)
        )


def prune_deliveries(conn: Connection, before: datetime) -> int:
    """Delete deliveries done (delivered or failed) before `before`."""
    d = webhook_delivery
    result = conn.execute(delete(d).where(and_(d.c.status != PENDING, d.c.date_done < before)))
    return result.rowcount or 0
