"""Sentry's issue search (`query=`) and sort (`sort=`) as plain values. No I/O: the
issues API turns an `IssueSearch` into SQL.

Supported, as Sentry writes them (terms are ANDed):

- `is:unresolved`, `is:resolved`, `is:ignored` (also `is:archived`, `is:muted`), and the
  substatuses `is:new`, `is:ongoing`, `is:regressed`, `is:escalating`,
  `is:archived_until_escalating`, `is:archived_until_condition_met`,
  `is:archived_forever`;
- `issue.category:cron` (any `GroupCategory` name), `issue.type:<type slug>`,
  `issue.priority:high` (also `priority:`), `level:error`, `environment:production`;
- a value list `key:[a, b]` or `key:a,b` matches any of them; `!key:value` excludes;
- any other word (or "quoted phrase") must appear in the issue's title (case-insensitive).

A `key:value` term with another key, a value that key does not know, or more than
`MAX_TERMS` terms is an `InvalidQuery` with the reason (the API answers 400).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from vigil.issues.enums import (
    LOG_LEVELS,
    PRIORITY_NAMES,
    SUBSTATUS_NAMES,
    GroupCategory,
    GroupStatus,
)
from vigil.issues.group_types import GroupTypeRegistry, registry

DEFAULT_QUERY: Final = "is:unresolved"
"""What Sentry searches when the request has no `query` at all."""


class InvalidQuery(ValueError):
    """A search or sort the API cannot run; the message is the reason for the client."""


class Field(StrEnum):
    """The group column a filter is on."""

    STATUS = "status"
    SUBSTATUS = "substatus"
    TYPE = "type"
    PRIORITY = "priority"
    LEVEL = "level"


@dataclass(frozen=True)
class Filter:
    """`field` in `values` (or not in them, when `negated`)."""

    field: Field
    values: frozenset[int]
    negated: bool = False


@dataclass(frozen=True)
class IssueSearch:
    """A parsed query: every filter must hold, every text term must be in the title, and
    the issue must have been seen in one of `environments` (when any are named).
    `names_type` says a category or type was asked for, so types hidden from the default
    search (feedback) are included."""

    filters: tuple[Filter, ...] = ()
    text: tuple[str, ...] = ()
    environments: tuple[str, ...] = ()
    excluded_environments: tuple[str, ...] = ()
    names_type: bool = False


class Sort(StrEnum):
    """`sort=`: date (last seen, the default), new (first seen), freq (times seen),
    priority (highest first, then last seen)."""

    DATE = "date"
    NEW = "new"
    FREQ = "freq"
    PRIORITY = "priority"


def parse_sort(raw: str | None) -> Sort:
    """The sort named `raw` (None or "" is DATE); InvalidQuery for another name."""
    if not raw:
        return Sort.DATE
    try:
        return Sort(raw)
    except ValueError:
        choices = ", ".join(s.value for s in Sort)
        raise InvalidQuery(f"Invalid sort {raw!r}: one of {choices}") from None


_STATUS_TERMS: Final[dict[str, Filter]] = {
    "unresolved": Filter(Field.STATUS, frozenset({GroupStatus.UNRESOLVED})),
    "resolved": Filter(Field.STATUS, frozenset({GroupStatus.RESOLVED})),
    "ignored": Filter(Field.STATUS, frozenset({GroupStatus.IGNORED})),
    "archived": Filter(Field.STATUS, frozenset({GroupStatus.IGNORED})),
    "muted": Filter(Field.STATUS, frozenset({GroupStatus.IGNORED})),
    **{
        name: Filter(Field.SUBSTATUS, frozenset({substatus}))
        for substatus, name in SUBSTATUS_NAMES.items()
    },
}

# Each term is a condition of the query: SQLite refuses an expression over 1,000 deep,
# and no person writes a hundred terms.
MAX_TERMS: Final = 100

# key:[a, b] | key:"a b" | "a phrase" | word
_TOKEN = re.compile(r'!?[\w.]+:\[[^\]]*\]|!?[\w.]+:"[^"]*"|"[^"]*"|\S+')
_KEY = re.compile(r"^(!?)([A-Za-z_][\w.]*):(?!//)(.*)$", re.DOTALL)  # not a URL


def parse_query(query: str, types: GroupTypeRegistry = registry) -> IssueSearch:
    """The search `query` describes (see the module doc); InvalidQuery with the reason."""
    filters: list[Filter] = []
    text: list[str] = []
    environments: list[str] = []
    excluded: list[str] = []
    names_type = False
    tokens = _TOKEN.findall(query)
    if len(tokens) > MAX_TERMS:
        raise InvalidQuery(f"Too many search terms: {len(tokens)} (at most {MAX_TERMS})")
    for token in tokens:
        matched = _KEY.match(token)
        if matched is None:
            word = token[1:-1] if len(token) >= 2 and token[0] == token[-1] == '"' else token
            if word:
                text.append(word)
            continue
        bang, key, raw = matched.groups()
        negated = bang == "!"
        values = _values(raw)
        if not values:
            raise InvalidQuery(f"Empty value for search key {key!r}")
        if key == "is":
            filters.extend(_is_filter(value, negated) for value in values)
        elif key == "issue.category":
            names_type = True
            ids = frozenset(t.type_id for c in values for t in types if t.category == _category(c))
            filters.append(Filter(Field.TYPE, ids, negated))
        elif key == "issue.type":
            names_type = True
            filters.append(
                Filter(Field.TYPE, frozenset(_type_id(v, types) for v in values), negated)
            )
        elif key in ("issue.priority", "priority"):
            filters.append(Filter(Field.PRIORITY, frozenset(_priority(v) for v in values), negated))
        elif key == "level":
            filters.append(Filter(Field.LEVEL, frozenset(_level(v) for v in values), negated))
        elif key == "environment":
            (excluded if negated else environments).extend(values)
        else:
            raise InvalidQuery(f"Invalid search key {key!r}")
    return IssueSearch(
        tuple(filters), tuple(text), tuple(environments), tuple(excluded), names_type
    )


def _values(raw: str) -> list[str]:
    if raw.startswith("[") and raw.endswith("]"):
        raw = raw[1:-1]
    elif len(raw) >= 2 and raw[0] == raw[-1] == '"':
        return [raw[1:-1]] if raw[1:-1] else []
    return [part.strip().strip('"') for part in raw.split(",") if part.strip().strip('"')]


def _is_filter(value: str, negated: bool) -> Filter:
    try:
        found = _STATUS_TERMS[value.lower()]
    except KeyError:
        raise InvalidQuery(f"Invalid value {value!r} for is:") from None
    return Filter(found.field, found.values, negated)


def _category(name: str) -> GroupCategory:
    try:
        return GroupCategory[name.upper()]
    except KeyError:
        names = ", ".join(c.label for c in GroupCategory)
        raise InvalidQuery(f"Invalid issue.category {name!r}: one of {names}") from None


def _type_id(slug: str, types: GroupTypeRegistry) -> int:
    try:
        return types.get_by_slug(slug).type_id
    except (KeyError, ValueError):
        raise InvalidQuery(f"Invalid issue.type {slug!r}") from None


def _priority(name: str) -> int:
    for level, label in PRIORITY_NAMES.items():
        if label == name.lower():
            return int(level)
    raise InvalidQuery(f"Invalid priority {name!r}: one of low, medium, high")


def _level(name: str) -> int:
    try:
        return LOG_LEVELS[name.lower()]
    except KeyError:
        raise InvalidQuery(f"Invalid level {name!r}: one of {', '.join(LOG_LEVELS)}") from None
