"""Sending one body to one webhook: an HTTP POST signed with its secret, or an email
through the SMTP relay (`mailto:` webhooks). Used by the dispatcher for issue changes
and by "send a test" (`send_test`), so that a test takes exactly the path a real
delivery takes."""

from __future__ import annotations

import urllib.parse
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from types import SimpleNamespace
from typing import Any

import orjson

from vigil.config import Settings
from vigil.webhooks import delivery, mail, payloads
from vigil.webhooks.store import Webhook

Post = Callable[[str, bytes, Mapping[str, str]], delivery.Outcome]


def send(
    settings: Settings,
    hook: Webhook,
    body: Mapping[str, Any],
    *,
    request_id: str,
    now: datetime,
    post: Post = delivery.post,
) -> delivery.Outcome:
    """Send `body` (made by `payloads.build_body` for the webhook's format)."""
    if hook.format == "email":
        return _email(settings, hook, body)
    data = orjson.dumps(body)
    return post(
        hook.url,
        data,
        payloads.headers(
            secret=hook.secret, body=data, timestamp=int(now.timestamp()), request_id=request_id
        ),
    )


def _email(settings: Settings, hook: Webhook, body: Mapping[str, Any]) -> delivery.Outcome:
    relay = settings.smtp_url
    if not relay:
        # Checked where the webhook was added, not here: it may be set on the next start.
        return delivery.Outcome(False, True, None, "VIGIL_SMTP_URL is not set: no relay")
    host = urllib.parse.urlsplit(settings.base_url).hostname or "localhost"
    sender = settings.email_from or f"vigil@{host}"
    to = mail.recipients(hook.url)
    return mail.send(relay, mail.message(sender, to, body["subject"], body["text"]))


def send_test(
    settings: Settings,
    hook: Webhook,
    project: tuple[int, str],
    base_url: str,
    now: datetime,
    *,
    post: Post = delivery.post,
) -> delivery.Outcome:
    """Send the webhook a test notification now (action `test`, a sample issue of
    `project` (id, slug) in the REST API's shape), once, without retrying: the outcome
    is the answer."""
    # Imported here: the API's serializer brings the web framework with it.
    from vigil.api.issues import serialize_issue

    row = payloads.sample_issue_row(project[0], project[1], now)
    issue = serialize_issue(SimpleNamespace(**row))
    # Its links lead to the webhook (there is no issue 0 to open).
    issue["url"] = f"{base_url}/api/0/organizations/{hook.organization_slug}/webhooks/{hook.id}/"
    issue["web_url"] = f"{base_url}/ui/webhooks/{hook.id}/"
    body = payloads.build_body(
        fmt=hook.format,
        action=payloads.TEST_ACTION,
        word=payloads.TEST_WORD,
        issue=issue,
        webhook_id=hook.id,
        org_slug=hook.organization_slug,
    )
    return send(settings, hook, body, request_id=uuid.uuid4().hex, now=now, post=post)
