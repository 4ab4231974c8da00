"""Sentry's issue search and sort as values (no database): every supported term, value
lists, negation, free text, and the 400 reasons."""

from __future__ import annotations

import pytest

from vigil.api.issue_search import (
    Field,
    Filter,
    InvalidQuery,
    IssueSearch,
    Sort,
    parse_query,
    parse_sort,
)
from vigil.issues.group_types import registry

CRON_TYPES = frozenset(t.type_id for t in registry if t.category.label == "cron")


def f(field: Field, *values: int, negated: bool = False) -> Filter:
    return Filter(field, frozenset(values), negated)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", IssueSearch()),
        ("is:unresolved", IssueSearch((f(Field.STATUS, 0),))),
        ("is:resolved", IssueSearch((f(Field.STATUS, 1),))),
        ("is:ignored", IssueSearch((f(Field.STATUS, 2),))),
        ("is:archived", IssueSearch((f(Field.STATUS, 2),))),
        ("is:new", IssueSearch((f(Field.SUBSTATUS, 7),))),
        ("is:regressed", IssueSearch((f(Field.SUBSTATUS, 6),))),
        ("is:archived_forever", IssueSearch((f(Field.SUBSTATUS, 5),))),
        ("!is:resolved", IssueSearch((f(Field.STATUS, 1, negated=True),))),
        (
            "is:unresolved is:escalating",
            IssueSearch((f(Field.STATUS, 0), f(Field.SUBSTATUS, 2))),
        ),
        (
            "issue.category:cron",
            IssueSearch((Filter(Field.TYPE, CRON_TYPES),), names_type=True),
        ),
        (
            "issue.type:monitor_check_in_failure",
            IssueSearch((f(Field.TYPE, 4001),), names_type=True),
        ),
        (
            "issue.type:[monitor_check_in_failure, feedback]",
            IssueSearch((f(Field.TYPE, 4001, 6001),), names_type=True),
        ),
        ("issue.priority:[high, medium]", IssueSearch((f(Field.PRIORITY, 75, 50),))),
        ("priority:low", IssueSearch((f(Field.PRIORITY, 25),))),
        ("level:error,fatal", IssueSearch((f(Field.LEVEL, 40, 50),))),
        ("environment:production", IssueSearch(environments=("production",))),
        ("!environment:staging", IssueSearch(excluded_environments=("staging",))),
        ("disk full", IssueSearch(text=("disk", "full"))),
        ('"disk full" is:resolved', IssueSearch((f(Field.STATUS, 1),), text=("disk full",))),
        ("https://example.com/x", IssueSearch(text=("https://example.com/x",))),
    ],
)
def test_parse_query(query: str, expected: IssueSearch) -> None:
    assert parse_query(query) == expected


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("is:sleeping", "Invalid value 'sleeping' for is:"),
        ("issue.category:nope", "Invalid issue.category 'nope'"),
        ("issue.type:nope", "Invalid issue.type 'nope'"),
        ("priority:urgent", "Invalid priority 'urgent'"),
        ("level:loud", "Invalid level 'loud'"),
        ("browser:firefox", "Invalid search key 'browser'"),
        ("is:", "Empty value for search key 'is'"),
    ],
)
def test_invalid_queries_say_why(query: str, reason: str) -> None:
    with pytest.raises(InvalidQuery, match=reason):
        parse_query(query)


@pytest.mark.parametrize(
    ("raw", "sort"),
    [
        (None, Sort.DATE),
        ("", Sort.DATE),
        ("date", Sort.DATE),
        ("new", Sort.NEW),
        ("freq", Sort.FREQ),
        ("priority", Sort.PRIORITY),
    ],
)
def test_parse_sort(raw: str | None, sort: Sort) -> None:
    assert parse_sort(raw) is sort


def test_an_unknown_sort_is_refused() -> None:
    with pytest.raises(InvalidQuery, match="Invalid sort 'trends'"):
        parse_sort("trends")
