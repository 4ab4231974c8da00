"""What a webhook delivery sends: the body, in Sentry's integration-platform shape or as
a Slack message, and the headers that sign it. Pure: no I/O.

Sentry's shape, so that a receiver written for Sentry's issue webhooks takes vigil's:
`{"action", "installation": {"uuid"}, "data": {"issue": {...}}, "actor"}` with the
headers `Sentry-Hook-Resource: issue`, `Sentry-Hook-Timestamp` (Unix seconds),
`Sentry-Hook-Signature` (HMAC-SHA256 of the body, hex, keyed by the webhook's secret)
and `Request-ID`. The issue is the one the REST API serves, with `url` (its API URL),
and `web_url` (vigil's page for it).
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from vigil import __version__
from vigil.issues.enums import (
    GroupHistoryStatus,
    GroupStatus,
    GroupSubStatus,
    PriorityLevel,
    log_level_int,
)
from vigil.issues.group_types import MONITOR_CHECK_IN_FAILURE

ACTIONS: Final = ("created", "resolved", "unresolved", "archived")
FORMATS: Final = ("sentry", "slack", "email")

# A group-history status → the webhook action it is, and the word a message uses.
_HISTORY: Final[dict[str, tuple[str, str]]] = {
    GroupHistoryStatus.RESOLVED: ("resolved", "Resolved"),
    GroupHistoryStatus.REGRESSED: ("unresolved", "Regressed"),
    GroupHistoryStatus.UNRESOLVED: ("unresolved", "Unresolved"),
    GroupHistoryStatus.UNIGNORED: ("unresolved", "Unignored"),
    GroupHistoryStatus.ESCALATING: ("unresolved", "Escalating"),
    GroupHistoryStatus.ARCHIVED_UNTIL_ESCALATING: ("archived", "Archived until escalating"),
    GroupHistoryStatus.ARCHIVED_UNTIL_CONDITION_MET: ("archived", "Archived until a condition"),
    GroupHistoryStatus.ARCHIVED_FOREVER: ("archived", "Archived forever"),
}
CREATED_WORD: Final = "New issue"
TEST_ACTION: Final = "test"
TEST_WORD: Final = "Test notification"
TEST_TITLE: Final = "Test notification from vigil: this webhook works"

_NAMESPACE: Final = uuid.UUID("8f4a7f0e-3c1e-4d52-9a4b-6f1d2c9e7b10")


def history_action(status: str) -> tuple[str, str] | None:
    """(action, word) for a group-history status, None for one no webhook hears of
    (priority changes, an issue becoming ongoing)."""
    return _HISTORY.get(status)


def installation_uuid(webhook_id: int) -> str:
    """A stable id for the webhook, where Sentry puts its app installation's."""
    return str(uuid.uuid5(_NAMESPACE, f"webhook:{webhook_id}"))


def sample_issue_row(project_id: int, project_slug: str, now: datetime) -> dict[str, Any]:
    """The columns of the issue a test notification shows (as `serialize_issue` takes
    them): a cron failure, id 0, found now, nothing a real issue could be mistaken for."""
    return {
        "id": 0,
        "short_id": 0,
        "project_id": project_id,
        "project_slug": project_slug,
        "project_name": project_slug,
        "type": MONITOR_CHECK_IN_FAILURE.type_id,
        "title": TEST_TITLE,
        "culprit": "vigil webhook test",
        "level": log_level_int("info"),
        "status": int(GroupStatus.UNRESOLVED),
        "substatus": int(GroupSubStatus.NEW),
        "priority": int(PriorityLevel.LOW),
        "priority_locked": False,
        "first_seen": now,
        "last_seen": now,
        "times_seen": 0,
        "platform": None,
        "data": {"metadata": {"title": TEST_TITLE}},
        "first_release_version": None,
        "assignee": None,
    }


def issue_links(issue: Mapping[str, Any], base_url: str, org_slug: str) -> dict[str, str]:
    """The issue's API URL and its page in vigil's UI."""
    return {
        "url": f"{base_url}/api/0/organizations/{org_slug}/issues/{issue['id']}/",
        "web_url": f"{base_url}/ui/issues/{issue['id']}/",
    }


def build_body(
    *,
    fmt: str,
    action: str,
    word: str,
    issue: Mapping[str, Any],
    webhook_id: int,
    org_slug: str,
) -> dict[str, Any]:
    """The JSON body of one delivery (`issue`: as the REST API serves it, with
    `issue_links` added)."""
    if fmt == "slack":
        return {"text": slack_text(word, issue, org_slug)}
    if fmt == "email":
        return email_body(word, issue, org_slug)
    return {
        "action": action,
        "installation": {"uuid": installation_uuid(webhook_id)},
        "data": {"issue": dict(issue)},
        "actor": {"type": "application", "id": "vigil", "name": "vigil"},
    }


def _escape(text: str) -> str:
    # Slack's mrkdwn treats these three as markup.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_text(word: str, issue: Mapping[str, Any], org_slug: str) -> str:
    """One Slack message: what happened, where, the issue (linked) and its culprit."""
    project = issue["project"]["slug"]
    title = _escape(str(issue.get("title") or ""))
    link = f"<{issue.get('web_url', '')}|{_escape(str(issue.get('shortId', '')))}>"
    text = f"*{word}* in {_escape(org_slug)}/{_escape(project)}: {link} {title}"
    culprit = issue.get("culprit")
    if culprit:
        text += f"\n{_escape(str(culprit))}"
    return text


def email_body(word: str, issue: Mapping[str, Any], org_slug: str) -> dict[str, Any]:
    """An email's subject and plain text."""
    where = f"{org_slug}/{issue['project']['slug']}"
    title = str(issue.get("title") or "")
    short_id = str(issue.get("shortId", ""))
    lines = [f"{word} in {where}", "", f"{short_id}  {title}"]
    if issue.get("culprit"):
        lines.append(str(issue["culprit"]))
    # No status line: the issue is as it was when the change was found, which may be
    # after a later change (a new issue resolved within seconds); the word says what
    # happened.
    lines += [
        "",
        f"Level: {issue.get('level')} · Events: {issue.get('count')}",
        f"First seen: {issue.get('firstSeen')} · Last seen: {issue.get('lastSeen')}",
        "",
        str(issue.get("web_url", "")),
    ]
    # One line: a title may hold anything a detector put there.
    subject = " ".join(f"[vigil] {word} in {where}: {short_id} {title}".split())
    return {"subject": subject[:200], "text": "\n".join(lines) + "\n"}


def signature(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def headers(*, secret: str, body: bytes, timestamp: int, request_id: str) -> dict[str, str]:
    """The headers of one POST of `body`."""
    return {
        "Content-Type": "application/json",
        "User-Agent": f"vigil/{__version__}",
        "Request-ID": request_id,
        "Sentry-Hook-Resource": "issue",
        "Sentry-Hook-Timestamp": str(timestamp),
        "Sentry-Hook-Signature": signature(secret, body),
    }
