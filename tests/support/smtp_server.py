"""A real SMTP server (aiosmtpd) on a free loopback port, keeping the messages it
accepts; a recipient named in `refuse` is refused with a permanent 550. With a
`password`, it takes mail only after a login as `vigil` with it (AUTH PLAIN / LOGIN,
without TLS: loopback only; aiosmtpd warns of it on each connection)."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.support.services import free_port


@dataclass
class Mailbox:
    url: str  # VIGIL_SMTP_URL for it
    messages: list[tuple[list[str], EmailMessage]] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)


class _Handler:
    def __init__(self, box: Mailbox) -> None:
        self.box = box

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address in self.box.refuse:
            return "550 5.1.1 no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.box.messages.append((list(envelope.rcpt_tos), parsed))
        return "250 Message accepted"


def _authenticator(password: str) -> Any:
    def check(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and data == LoginPassword(b"vigil", password.encode())
        return AuthResult(success=ok, handled=False)  # the server answers 235 or 535

    return check


@contextmanager
def smtp_server(password: str | None = None) -> Iterator[Mailbox]:
    port = free_port()
    box = Mailbox(url=f"smtp://127.0.0.1:{port}")
    options: dict[str, Any] = {}
    if password is not None:
        options = {
            "authenticator": _authenticator(password),
            "auth_required": True,
            "auth_require_tls": False,
        }
    controller = Controller(_Handler(box), hostname="127.0.0.1", port=port, **options)
    controller.start()
    try:
        yield box
    finally:
        controller.stop()
