"""A search query (the Discover/search-bar syntax) turned into a rule condition in the
shape Relay evaluates. No I/O.

Supported subset:

- `key:value` and `key:"quoted value"` (inside quotes, `\\"` is a quote and `\\\\` a
  backslash) — `{"op": "eq", "name": <field>, "value": "value"}`;
- a value with `*` — `{"op": "glob", "name": <field>, "value": ["pattern*"]}`;
- a word or quoted text without a key — a transaction name (as `transaction:word`);
- filters separated by whitespace or `AND` — all must match;
- `event.type:transaction` — accepted and dropped: custom rules sample transactions only.

Fields: `transaction`, `environment`, `release`, `platform`, `transaction.op`,
`transaction.method` / `http.method`, `transaction.status`; `tags[name]`; any other
plain key is a tag (`event.tags.<key>`), as in Sentry.

One filter is the condition itself; several are `{"op": "and", "inner": [...]}`; none
(only `event.type:transaction`) is `{"op": "and", "inner": []}`, which matches every
transaction. Anything else — `OR`, `NOT`, parentheses, negation (`!key:value`),
comparisons (`key:>5`), value lists (`key:[a,b]`), `has:`, other event types,
`project:` (send project ids instead), measurements, and fields that are not tags —
raises `InvalidQuery` naming what is not supported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

Condition = dict[str, Any]

# search field -> the event protocol path Relay reads
FIELDS: dict[str, str] = {
    "transaction": "event.transaction",
    "environment": "event.environment",
    "release": "event.release",
    "platform": "event.platform",
    "transaction.op": "event.contexts.trace.op",
    "transaction.status": "event.contexts.trace.status",
    "transaction.method": "event.request.method",
    "http.method": "event.request.method",
}

# fields of the search syntax that are columns, not tags, and that a rule cannot test
NOT_RULE_FIELDS = frozenset(
    {
        "id",
        "issue",
        "issue.id",
        "message",
        "project.id",
        "project.name",
        "timestamp",
        "title",
        "trace",
        "transaction.duration",
        "user",
        "user.email",
        "user.id",
        "user.ip",
        "user.username",
    }
)

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
_TAG_KEY = re.compile(r"^tags\[([A-Za-z0-9_.:\-]+)\]$")
_SPACE = " \t\r\n"


class InvalidQuery(ValueError):
    """The query cannot become a rule condition; the message says what is not supported."""


@dataclass(frozen=True)
class _Filter:
    key: str | None  # None: free text
    value: str
    quoted: bool


def parse_query(query: str) -> Condition:
    """The rule condition of `query`; InvalidQuery if it is empty or unsupported."""
    if not query.strip():
        raise InvalidQuery("query is empty: give at least one filter, like transaction:/api/*")
    conditions: list[Condition] = []
    previous_and = True  # at the start, as after an AND: a filter must follow
    for token in _tokens(query):
        if token == "AND":
            if previous_and:
                raise InvalidQuery("AND must stand between two filters")
            previous_and = True
            continue
        assert isinstance(token, _Filter)
        previous_and = False
        condition = _condition(token)
        if condition is not None:
            conditions.append(condition)
    if previous_and:
        raise InvalidQuery("AND must stand between two filters")
    if len(conditions) == 1:
        return conditions[0]
    return {"op": "and", "inner": conditions}


def _condition(token: _Filter) -> Condition | None:
    """The condition of one filter; None for one every transaction matches."""
    key = "transaction" if token.key is None else token.key
    value = token.value
    if key == "event.type":
        if value == "transaction":
            return None
        raise InvalidQuery(
            f"event.type:{value} is not supported: custom rules sample transactions only"
        )
    name = _field(key)
    if not token.quoted and value[:1] in ("<", ">"):
        raise InvalidQuery(f"comparisons are not supported: {key}:{value}")
    if not token.quoted and value.startswith("["):
        raise InvalidQuery(f"lists of values are not supported: {key}:{value}")
    if "*" in value:
        return {"op": "glob", "name": name, "value": [value]}
    return {"op": "eq", "name": name, "value": value}


def _field(key: str) -> str:
    if key in FIELDS:
        return FIELDS[key]
    if key == "has":
        raise InvalidQuery("has: is not supported")
    if key == "project":
        raise InvalidQuery("project: is not supported in the query: send project ids in projects")
    if key.startswith("measurements."):
        raise InvalidQuery(f"measurements are not supported: {key}")
    if key in NOT_RULE_FIELDS:
        raise InvalidQuery(f"field {key!r} is not supported in a sampling rule")
    tag = _TAG_KEY.match(key)
    if tag is not None:
        return f"event.tags.{tag.group(1)}"
    if _KEY.match(key):
        return f"event.tags.{key}"
    raise InvalidQuery(f"invalid field name {key!r}")


def _tokens(query: str) -> list[_Filter | str]:
    tokens: list[_Filter | str] = []
    i, n = 0, len(query)
    while i < n:
        c = query[i]
        if c in _SPACE:
            i += 1
            continue
        if c in "()":
            raise InvalidQuery("parentheses are not supported: only filters joined by AND")
        if c == '"':
            text, i = _quoted(query, i)
            if i < n and query[i] not in _SPACE:
                raise InvalidQuery(f"expected a space after the quoted text ending at {i}")
            tokens.append(_Filter(None, text, quoted=True))
            continue
        start = i
        while i < n and query[i] not in _SPACE and query[i] not in ':"()':
            i += 1
        word = query[start:i]
        if i < n and query[i] == ":":
            tokens.append(_key_value(query, word, i + 1))
            i = _end_of_value(query, i + 1)
            continue
        if i < n and query[i] in '"()':
            raise InvalidQuery(f"unexpected {query[i]!r} after {word!r}")
        if word in ("OR", "NOT"):
            raise InvalidQuery(f"{word} is not supported: only filters joined by AND")
        if word == "AND":
            tokens.append("AND")
        else:
            if word.startswith("!"):
                raise InvalidQuery(f"negation is not supported: {word}")
            tokens.append(_Filter(None, word, quoted=False))
    return tokens


def _key_value(query: str, key: str, at: int) -> _Filter:
    if not key:
        raise InvalidQuery(f"a filter has no key at character {at}")
    if key.startswith("!"):
        raise InvalidQuery(f"negation is not supported: {key}:")
    if at < len(query) and query[at] == '"':
        value, _ = _quoted(query, at)
        return _Filter(key, value, quoted=True)
    end = _end_of_value(query, at)
    value = query[at:end]
    if not value:
        raise InvalidQuery(f"filter {key}: has no value")
    if '"' in value:
        raise InvalidQuery(f"unexpected '\"' in the value of {key}:{value}")
    return _Filter(key, value, quoted=False)


def _end_of_value(query: str, at: int) -> int:
    if at < len(query) and query[at] == '"':
        end = _quoted(query, at)[1]
        if end < len(query) and query[end] not in _SPACE:
            raise InvalidQuery(f"expected a space after the quoted value ending at {end}")
        return end
    while at < len(query) and query[at] not in _SPACE:
        at += 1
    return at


def _quoted(query: str, at: int) -> tuple[str, int]:
    """The unescaped text of the quoted string starting at `at`, and the index after it."""
    out: list[str] = []
    i = at + 1
    while i < len(query):
        c = query[i]
        if c == "\\" and i + 1 < len(query) and query[i + 1] in '"\\':
            out.append(query[i + 1])
            i += 2
            continue
        if c == '"':
            return "".join(out), i + 1
        out.append(c)
        i += 1
    raise InvalidQuery(f"unterminated quote starting at character {at}")
