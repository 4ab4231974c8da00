"""Search queries turned into rule conditions (the supported subset), and periods."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from vigil.sampling.period import InvalidPeriod, parse_period
from vigil.sampling.query import InvalidQuery, parse_query


def eq(name: str, value: str) -> dict[str, Any]:
    return {"op": "eq", "name": name, "value": value}


@pytest.mark.parametrize(
    ("query", "condition"),
    [
        ("transaction:/api/users", eq("event.transaction", "/api/users")),
        ('transaction:"GET /api/users"', eq("event.transaction", "GET /api/users")),
        ('transaction:"say \\"hi\\" \\\\ bye"', eq("event.transaction", 'say "hi" \\ bye')),
        ("environment:prod", eq("event.environment", "prod")),
        ("release:1.2.3", eq("event.release", "1.2.3")),
        ("platform:python", eq("event.platform", "python")),
        ("transaction.op:http.server", eq("event.contexts.trace.op", "http.server")),
        ("transaction.status:ok", eq("event.contexts.trace.status", "ok")),
        ("transaction.method:GET", eq("event.request.method", "GET")),
        ("http.method:POST", eq("event.request.method", "POST")),
        ("customer:acme", eq("event.tags.customer", "acme")),
        ("tags[customer.tier]:gold", eq("event.tags.customer.tier", "gold")),
        ("/api/users", eq("event.transaction", "/api/users")),
        ('"GET /api"', eq("event.transaction", "GET /api")),
        ("transaction:/api/*", {"op": "glob", "name": "event.transaction", "value": ["/api/*"]}),
        ("event.type:transaction", {"op": "and", "inner": []}),
        ("event.type:transaction transaction:/a", eq("event.transaction", "/a")),
        ("  transaction:/a  ", eq("event.transaction", "/a")),
        ('transaction:"a (b)"', eq("event.transaction", "a (b)")),
        ('transaction:""', eq("event.transaction", "")),
        (
            "transaction:/a environment:prod",
            {
                "op": "and",
                "inner": [eq("event.transaction", "/a"), eq("event.environment", "prod")],
            },
        ),
        (
            'event.type:transaction AND transaction:"/a b" AND environment:prod release:1',
            {
                "op": "and",
                "inner": [
                    eq("event.transaction", "/a b"),
                    eq("event.environment", "prod"),
                    eq("event.release", "1"),
                ],
            },
        ),
    ],
)
def test_supported_queries(query: str, condition: dict[str, Any]) -> None:
    assert parse_query(query) == condition


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("", "query is empty"),
        ("   ", "query is empty"),
        ("a:1 OR b:2", "OR is not supported"),
        ("NOT a:1", "NOT is not supported"),
        ("(a:1)", "parentheses are not supported"),
        ("a:1 (b:2)", "parentheses are not supported"),
        ("!a:1", "negation is not supported"),
        ("!word", "negation is not supported"),
        ("duration:>5", "comparisons are not supported"),
        ("duration:<=5", "comparisons are not supported"),
        ("a:[1,2]", "lists of values are not supported"),
        ("has:user", "has: is not supported"),
        ("a:", "filter a: has no value"),
        (":x", "a filter has no key"),
        ("AND a:1", "AND must stand between two filters"),
        ("a:1 AND", "AND must stand between two filters"),
        ("a:1 AND AND b:1", "AND must stand between two filters"),
        ("event.type:error", "event.type:error is not supported"),
        ("project:web", "project: is not supported"),
        ("user.email:a@b.c", "field 'user.email' is not supported"),
        ("measurements.lcp:1", "measurements are not supported"),
        ('transaction:"open', "unterminated quote"),
        ('"open', "unterminated quote"),
        ('a:"x"y', "expected a space after the quoted value"),
        ('"x"y', "expected a space after the quoted text"),
        ('a:x"y"', "unexpected '\"'"),
        ("a$b:1", "invalid field name 'a$b'"),
    ],
)
def test_unsupported_queries_name_what_is_not_supported(query: str, reason: str) -> None:
    with pytest.raises(InvalidQuery) as caught:
        parse_query(query)
    assert str(caught.value).startswith(reason), str(caught.value)


@pytest.mark.parametrize(
    ("text", "period"),
    [
        ("30m", timedelta(minutes=30)),
        ("1h", timedelta(hours=1)),
        ("2d", timedelta(days=2)),
        ("1w", timedelta(weeks=1)),
        ("90s", timedelta(seconds=90)),
        ("45", timedelta(seconds=45)),
        ("365d", timedelta(days=365)),
    ],
)
def test_periods(text: str, period: timedelta) -> None:
    assert parse_period(text) == period


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "use a whole number and a unit"),
        ("h", "use a whole number and a unit"),
        ("1y", "use a whole number and a unit"),
        ("-1h", "use a whole number and a unit"),
        ("1.5h", "use a whole number and a unit"),
        ("0h", "must be longer than zero"),
        ("366d", "must be at most 365d"),
        ("9999999999d", "use a whole number and a unit"),
    ],
)
def test_bad_periods(text: str, reason: str) -> None:
    with pytest.raises(InvalidPeriod) as caught:
        parse_period(text)
    assert reason in str(caught.value)
