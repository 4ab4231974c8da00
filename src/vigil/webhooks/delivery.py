"""One webhook POST, and what its outcome means: delivered, try again later, or give
up. A receiver that answers 2xx has it. One that cannot be reached, times out, or
answers 408, 429 or 5xx is tried again after `retry_delay`; any other answer (a
redirect included: vigil does not follow one with the body) means the URL is wrong and
the delivery fails at once, with the reason kept for the operator."""

from __future__ import annotations

import http.client
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

TIMEOUT_S: Final = 10.0
# Waits before the 2nd, 3rd, ... attempt: about six hours in all, then the delivery fails.
RETRY_DELAYS: Final = (
    timedelta(seconds=10),
    timedelta(seconds=30),
    timedelta(minutes=2),
    timedelta(minutes=10),
    timedelta(minutes=30),
    timedelta(hours=1),
    timedelta(hours=4),
)
RETRYABLE_CODES: Final = frozenset({408, 429})
ERROR_TEXT_LIMIT: Final = 500


@dataclass(frozen=True)
class Outcome:
    delivered: bool
    retryable: bool
    code: int | None  # the receiver's HTTP status, if it answered
    error: str | None


def retry_delay(attempts: int) -> timedelta | None:
    """How long to wait after `attempts` failed attempts; None: give up."""
    if attempts < 1 or attempts > len(RETRY_DELAYS):
        return None
    return RETRY_DELAYS[attempts - 1]


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None  # the 3xx is then raised as an HTTPError


_opener = urllib.request.build_opener(_NoRedirects)


def post(
    url: str, body: bytes, headers: Mapping[str, str], *, timeout: float = TIMEOUT_S
) -> Outcome:
    """POST `body` to `url`; never raises for the receiver's or the network's failures."""
    request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")
    try:
        with _opener.open(request, timeout=timeout) as response:
            response.read(ERROR_TEXT_LIMIT)
            return Outcome(True, False, response.status, None)
    except urllib.error.HTTPError as exc:
        code = exc.code
        try:
            text = exc.read(ERROR_TEXT_LIMIT).decode("utf-8", "replace").strip()
        except OSError:
            text = ""
        reason = f"HTTP {code}" + (f": {text}" if text else "")
        if 300 <= code < 400:
            reason = f"HTTP {code}: redirected to {exc.headers.get('Location')!r}; give that URL"
        retryable = code >= 500 or code in RETRYABLE_CODES
        return Outcome(False, retryable, code, reason[:ERROR_TEXT_LIMIT])
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
        # (HTTPException: a receiver answering something that is not HTTP)
        cause = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        return Outcome(False, True, None, f"{type(exc).__name__}: {cause}"[:ERROR_TEXT_LIMIT])
