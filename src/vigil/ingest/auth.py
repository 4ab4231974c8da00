"""DSN key authentication for ingest.

A Sentry client presents its project's public key in one of these places, looked at in
this order (the first one present wins):

1. a `/{sentry_key}/` path segment (the crons HTTP endpoint);
2. `X-Sentry-Auth: Sentry sentry_key=<key>, ...` (sentry-sdk, sentry-cli);
3. `Authorization: Sentry sentry_key=<key>, ...`, `Authorization: Basic base64("<key>:")`
   or `Authorization: DSN <dsn>`;
4. the `sentry_key` query parameter (browsers, CSP reports);
5. the envelope header `dsn` (only consulted when none of the above is present).

`presented_key` and `check_key` are pure; `KeyCache` remembers looked-up keys for a
couple of seconds so a disabled key stops working within `KEY_CACHE_TTL_S` (and the time
one lookup takes), or at once when it is disabled through this process's API (which
calls `forget`). `find_key` answers from the cache on the event loop and hands only a
miss to a worker thread: one per expired key, the others answered meanwhile from the
expired entry.
"""

from __future__ import annotations

import base64
import binascii
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.concurrency import run_in_threadpool

from vigil.tenancy.credentials import is_public_key, parse_sentry_auth
from vigil.tenancy.store import ProjectKey

KEY_CACHE_TTL_S = 2.0
KEY_CACHE_MAX_ENTRIES = 10_000
MAX_CLIENT_CHARS = 200


class IngestAuthError(Exception):
    """Refused credentials: `status` (401 or 403) and `detail`, the reason for the client."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass(frozen=True)
class PresentedKey:
    """A public key as the client presented it (not yet checked), where it came from,
    and the client name sent alongside (`sentry_client`), if any."""

    public_key: str
    source: str
    client: str | None = None


MISSING = (
    "missing DSN key: send X-Sentry-Auth: Sentry sentry_key=<public key>, the sentry_key "
    'query parameter, Authorization: Basic base64("<public key>:"), or the DSN in the '
    "envelope header"
)


def presented_key(
    *,
    x_sentry_auth: str | None = None,
    authorization: str | None = None,
    query_key: str | None = None,
    query_client: str | None = None,
    path_key: str | None = None,
) -> PresentedKey | None:
    """The key the request presents outside its body, or None if it presents none.

    Raises IngestAuthError(401) for an `Authorization: Basic` header that does not decode.
    """
    if path_key:
        return PresentedKey(path_key, "path")
    if x_sentry_auth:
        fields = parse_sentry_auth(x_sentry_auth)
        if fields.get("sentry_key"):
            return PresentedKey(fields["sentry_key"], "x-sentry-auth", fields.get("sentry_client"))
    if authorization:
        found = _from_authorization(authorization)
        if found is not None:
            return found
    if query_key:
        return PresentedKey(query_key, "query", query_client or None)
    return None


def _from_authorization(header: str) -> PresentedKey | None:
    scheme, _, rest = header.strip().partition(" ")
    scheme = scheme.lower()
    if scheme == "sentry":
        fields = parse_sentry_auth(rest)
        if fields.get("sentry_key"):
            return PresentedKey(fields["sentry_key"], "authorization", fields.get("sentry_client"))
        return None
    if scheme == "basic":
        try:
            decoded = base64.b64decode(rest.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise IngestAuthError(
                401, 'Authorization: Basic must carry base64("<public key>:")'
            ) from None
        user = decoded.partition(":")[0]
        return PresentedKey(user, "authorization") if user else None
    if scheme == "dsn":
        dsn_key = key_from_dsn(rest.strip())
        return PresentedKey(dsn_key, "authorization") if dsn_key else None
    return None


def key_from_dsn(dsn: str) -> str | None:
    """The public key of a DSN (`scheme://<key>[:secret]@host/[path/]project_id`)."""
    try:
        user = urlsplit(dsn).username
    except ValueError:
        return None
    return user or None


def normalize_key(raw: str) -> str:
    """The key as stored (lowercase hex); IngestAuthError(401) if it cannot be one."""
    value = raw.strip().lower()
    if not is_public_key(value):
        raise IngestAuthError(401, "malformed DSN key: expected 32 hexadecimal characters")
    return value


def check_key(key: ProjectKey | None, project_id: int) -> ProjectKey:
    """`key` if it may write to `project_id`: 401 if unknown, 403 if disabled or if it
    belongs to another project."""
    if key is None:
        raise IngestAuthError(401, "unknown DSN key")
    if not key.is_active:
        raise IngestAuthError(403, "DSN key is disabled")
    if key.project_id != project_id:
        raise IngestAuthError(
            403, f"DSN key belongs to another project and cannot write to project {project_id}"
        )
    return key


def client_name(presented: PresentedKey | None, user_agent: str | None) -> str | None:
    """The client's name for the `sdk` field: `sentry_client` when sent, else User-Agent."""
    name = ((presented.client if presented else None) or user_agent or "").strip()
    return name[:MAX_CLIENT_CHARS] or None


class KeyCache:
    """Project keys by public key. A looked-up key (present or not) is reused for at
    most `ttl_s` seconds; `forget` drops one at once. Safe to use from many threads."""

    def __init__(
        self,
        lookup: Callable[[str], ProjectKey | None],
        *,
        ttl_s: float = KEY_CACHE_TTL_S,
        max_entries: int = KEY_CACHE_MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lookup = lookup
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[float, ProjectKey | None]] = OrderedDict()
        # Bumped by `forget`, so a lookup that raced with it does not store a stale key.
        self._generation = 0
        # Keys whose expired entry one caller is looking up again; meanwhile the others
        # are answered from it, so that every request in flight when an entry expires
        # does not queue its own lookup (64 of them every 2 s under load). By when each
        # was claimed: a claim older than the TTL (its caller gone) is taken over.
        self._refreshing: dict[str, float] = {}

    def cached(self, public_key: str) -> tuple[ProjectKey | None] | None:
        """`(key,)` when an entry answers for `public_key` (the key, or None for a key
        known not to exist): a fresh one, or an expired one while another caller looks it
        up again; None when only a lookup (`get`) can, which the caller is then to make.
        Never does the lookup, so an event loop may call it."""
        now = self._clock()
        with self._lock:
            entry = self._entries.get(public_key)
            if entry is None:
                return None
            if now - entry[0] < self._ttl_s:
                return (entry[1],)
            claimed = self._refreshing.get(public_key)
            if claimed is not None and now - claimed < self._ttl_s:
                return (entry[1],)
            self._refreshing[public_key] = now  # this caller's `get` looks it up
        return None

    def get(self, public_key: str) -> ProjectKey | None:
        now = self._clock()
        with self._lock:
            entry = self._entries.get(public_key)
            if entry is not None and now - entry[0] < self._ttl_s:
                return entry[1]
            generation = self._generation
        try:
            key = self._lookup(public_key)
        finally:
            with self._lock:
                self._refreshing.pop(public_key, None)
        with self._lock:
            if generation != self._generation:
                return key
            self._entries[public_key] = (now, key)
            self._entries.move_to_end(public_key)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
        return key

    def forget(self, public_key: str) -> None:
        with self._lock:
            self._entries.pop(public_key, None)
            self._refreshing.pop(public_key, None)
            self._generation += 1


async def find_key(keys: KeyCache, public_key: str) -> ProjectKey | None:
    """The stored key for `public_key` (None if there is none): a fresh cache entry is
    answered at once, on the event loop; only a miss waits for the database in a worker
    thread (a thread handoff costs more than the whole cached answer)."""
    hit = keys.cached(public_key)
    if hit is not None:
        return hit[0]
    return await run_in_threadpool(keys.get, public_key)


async def authenticate(keys: KeyCache, presented: PresentedKey, project_id: int) -> None:
    """Admit the presented key for `project_id` (`find_key`, then `check_key`), or raise
    IngestAuthError (401/403) with the reason."""
    check_key(await find_key(keys, normalize_key(presented.public_key)), project_id)
