"""The identity of a custom rule: order-independent over condition keys, list items and
projects; a different project set ([] vs [p] included) is a different rule."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vigil.sampling.condition_hash import canonical, condition_hash

COND = {
    "op": "and",
    "inner": [
        {"op": "eq", "name": "event.transaction", "value": "/api"},
        {"op": "glob", "name": "event.release", "value": ["1.*", "2.*"]},
    ],
}
SHUFFLED = {
    "inner": [
        {"value": ["2.*", "1.*"], "name": "event.release", "op": "glob"},
        {"name": "event.transaction", "value": "/api", "op": "eq"},
    ],
    "op": "and",
}


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("x", "x"),
        (5, "5"),
        (True, "True"),
        (None, "None"),
        ([], ""),
        ({}, ""),
        ([3, 1, 2], "1-2-3-"),
        ({"b": 1, "a": 2}, "a:2-b:1-"),
        ({"a": [2, 1]}, "a:1-2--"),
        ({"op": "eq", "name": "n", "value": "v"}, "name:n-op:eq-value:v-"),
    ],
)
def test_canonical_string(value: object, text: str) -> None:
    assert canonical(value) == text


def test_hash_is_sha1_of_condition_dash_projects() -> None:
    cond = {"op": "eq", "name": "n", "value": "v"}
    expected = hashlib.sha1(b"name:n-op:eq-value:v--1-2-").hexdigest()
    assert condition_hash(cond, [2, 1]) == expected
    assert len(expected) == 40


def test_key_list_and_project_order_do_not_matter() -> None:
    assert condition_hash(COND, [1, 2, 3]) == condition_hash(SHUFFLED, [3, 1, 2])


@pytest.mark.parametrize(
    ("first", "second"),
    [([], [1]), ([1], [2]), ([1], [1, 2]), ([1, 2], [1, 3])],
)
def test_different_project_sets_are_different_rules(first: list[int], second: list[int]) -> None:
    assert condition_hash(COND, first) != condition_hash(COND, second)


def test_different_conditions_are_different_rules() -> None:
    other = {"op": "eq", "name": "event.transaction", "value": "/other"}
    assert condition_hash(COND, []) != condition_hash(other, [])


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=12,
)


def _shuffle(value: object, rnd: st.DataObject) -> object:
    if isinstance(value, dict):
        keys = rnd.draw(st.permutations(list(value)))
        return {k: _shuffle(value[k], rnd) for k in keys}
    if isinstance(value, list):
        return rnd.draw(st.permutations([_shuffle(v, rnd) for v in value]))
    return value


@given(json_values, st.lists(st.integers(min_value=1, max_value=10**6), max_size=6), st.data())
def test_any_reordering_keeps_the_hash(
    condition: object, projects: list[int], data: st.DataObject
) -> None:
    reordered = _shuffle(condition, data)
    assert condition_hash(reordered, data.draw(st.permutations(projects))) == condition_hash(
        condition, projects
    )
