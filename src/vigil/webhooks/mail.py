"""Email deliveries: a webhook whose URL is `mailto:` is sent through the SMTP relay of
`VIGIL_SMTP_URL`, and the outcome read as `delivery` reads an HTTP answer: accepted
(delivered), a passing refusal (4xx) or no connection (tried again), or a permanent
refusal (5xx: a recipient the relay does not take; failed at once).

    smtp://[user:password@]host[:port]           plain SMTP, port 25
    smtp://…?starttls=true                       STARTTLS before anything else, port 587
    smtps://[user:password@]host[:port]          TLS from the start, port 465
"""

from __future__ import annotations

import smtplib
import ssl
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Final

from vigil.webhooks.delivery import ERROR_TEXT_LIMIT, TIMEOUT_S, Outcome

MAX_RECIPIENTS: Final = 10


@dataclass(frozen=True)
class Relay:
    host: str
    port: int
    tls: bool  # from the start (smtps)
    starttls: bool
    user: str | None
    password: str | None


def parse_relay(url: str) -> Relay:
    """VIGIL_SMTP_URL read (the settings checked its shape)."""
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qs(parts.query)
    tls = parts.scheme == "smtps"
    starttls = not tls and query.get("starttls", ["false"])[0].lower() in ("1", "true", "yes")
    port = parts.port or (465 if tls else 587 if starttls else 25)
    return Relay(
        host=parts.hostname or "",
        port=port,
        tls=tls,
        starttls=starttls,
        user=urllib.parse.unquote(parts.username) if parts.username else None,
        password=urllib.parse.unquote(parts.password) if parts.password else None,
    )


def recipients(url: str) -> list[str]:
    """The addresses of a `mailto:` URL (comma-separated), or ValueError saying why not."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "mailto" or parts.query or parts.fragment:
        raise ValueError("a mailto: URL is mailto:one@example.com[,two@example.com]")
    found = [urllib.parse.unquote(a).strip() for a in parts.path.split(",") if a.strip()]
    if not found:
        raise ValueError("a mailto: URL needs an address")
    if len(found) > MAX_RECIPIENTS:
        raise ValueError(f"a mailto: URL may name at most {MAX_RECIPIENTS} addresses")
    for address in found:
        local, _, domain = address.partition("@")
        if not local or "." not in domain or any(c.isspace() or c in "<>" for c in address):
            raise ValueError(f"{address!r} is not an email address")
    return found


def message(sender: str, to: Sequence[str], subject: str, text: str) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = ", ".join(to)
    mail["Subject"] = subject
    mail["Date"] = formatdate(localtime=False)
    mail["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    mail["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to it
    mail.set_content(text)
    return mail


def send(relay_url: str, mail: EmailMessage, *, timeout: float = TIMEOUT_S) -> Outcome:
    """Send `mail` through the relay; never raises for the relay's or the network's
    failures."""
    relay = parse_relay(relay_url)
    try:
        client: smtplib.SMTP
        if relay.tls:
            client = smtplib.SMTP_SSL(
                relay.host, relay.port, timeout=timeout, context=ssl.create_default_context()
            )
        else:
            client = smtplib.SMTP(relay.host, relay.port, timeout=timeout)
        with client:
            if relay.starttls:
                client.starttls(context=ssl.create_default_context())
            if relay.user is not None:
                client.login(relay.user, relay.password or "")
            refused = client.send_message(mail)
    except smtplib.SMTPRecipientsRefused as exc:
        return _refusal(min(code for code, _ in exc.recipients.values()), str(exc.recipients))
    except smtplib.SMTPResponseException as exc:
        text = (
            exc.smtp_error.decode("utf-8", "replace")
            if isinstance(exc.smtp_error, bytes)
            else str(exc.smtp_error)
        )
        return _refusal(exc.smtp_code, text)
    except (smtplib.SMTPException, OSError) as exc:
        return Outcome(False, True, None, f"{type(exc).__name__}: {exc}"[:ERROR_TEXT_LIMIT])
    if refused:
        # Some recipients took it: delivered to them; the others are said.
        return Outcome(True, False, 250, f"refused by the relay: {refused}"[:ERROR_TEXT_LIMIT])
    return Outcome(True, False, 250, None)


# The relay refusing vigil itself (authentication required, or failed): the settings
# are wrong, not the message, and the message waits until they are fixed.
_REFUSES_VIGIL = frozenset({530, 534, 535})


def _refusal(code: int, text: str) -> Outcome:
    # 4xx: try again later; 5xx: the relay will not take this message.
    retry = 400 <= code < 500 or code in _REFUSES_VIGIL
    return Outcome(False, retry, code, f"SMTP {code}: {text}"[:ERROR_TEXT_LIMIT])
