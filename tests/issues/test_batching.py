"""Splitting a batch by issue key and pruning status changes (spec A6)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from vigil.issues.batching import (
    DEDUPE_TTL_SECONDS,
    PRUNE_STATUS_CHANGES_ALIAS,
    PRUNE_STATUS_CHANGES_FEATURE,
    batch_key,
    deal_by_project,
    dedupe_key,
    is_status_change_payload,
    prune_status_changes,
    prunes_status_changes,
    split_batch,
    split_payloads,
)


def occ(name: str, fp: str = "a", project: int = 1) -> dict[str, Any]:
    return {"id": name, "fingerprint": [fp], "project_id": project}


def sc(name: str, fp: str = "a", project: int = 1) -> dict[str, Any]:
    return {**occ(name, fp, project), "payload_type": "status_change"}


def names(groups: Sequence[Sequence[Mapping[str, Any]]]) -> list[list[str]]:
    return [[item["id"] for item in group] for group in groups]


@pytest.mark.parametrize(
    ("payload", "key"),
    [
        ({"fingerprint": ["x", "y"], "project_id": 1}, ("x", 1)),
        ({"fingerprint": ["y", "x"], "project_id": 1}, ("y", 1)),
        ({"fingerprint": [], "project_id": 1}, ("", 1)),
        ({"project_id": 1}, ("", 1)),
        ({"fingerprint": "x", "project_id": 2}, ("", 2)),
        ({"fingerprint": [5], "project_id": 2}, ("", 2)),
        ({"fingerprint": ["x"]}, ("x", None)),
        ({"fingerprint": ["x"], "project_id": "1"}, ("x", None)),
        ({"fingerprint": ["x"], "project_id": True}, ("x", None)),
        (None, ("", None)),
        ([1, 2], ("", None)),
    ],
)
def test_batch_key(payload: Any, key: tuple[str, int | None]) -> None:
    assert batch_key(payload) == key


def test_split_by_raw_first_part_and_project_in_arrival_order() -> None:
    batch = [
        occ("1", "a"),
        occ("2", "b"),
        sc("3", "a"),
        occ("4", "a", project=2),
        occ("5", "b"),
        {"id": "6", "fingerprint": ["a", "zzz"], "project_id": 1},
        {"id": "7", "fingerprint": [], "project_id": 1},
    ]
    assert names(split_payloads(batch)) == [["1", "3", "6"], ["2", "5"], ["4"], ["7"]]


def test_split_empty_batch() -> None:
    assert split_batch([], lambda item: item) == []


def test_split_with_a_custom_key() -> None:
    assert split_batch([1, 2, 3, 4, 5], lambda n: n % 2) == [[1, 3, 5], [2, 4]]


def prune(group: list[dict[str, Any]]) -> tuple[list[str], int]:
    result = prune_status_changes(group, is_status_change_payload)
    return [item["id"] for item in result.items], result.dropped


@pytest.mark.parametrize(
    ("group", "kept", "dropped"),
    [
        # the reference's worked examples
        ([sc("SC1"), occ("OCC1"), sc("SC2"), occ("OCC2")], ["OCC1", "OCC2", "SC2"], 1),
        (
            [sc("SC1"), occ("OCC1"), sc("SC2"), occ("OCC2"), sc("SC3"), occ("OCC3")],
            ["OCC1", "OCC2", "OCC3", "SC3"],
            2,
        ),
        # a single status change still moves after the occurrences
        ([sc("SC1"), occ("OCC1")], ["OCC1", "SC1"], 0),
        ([occ("OCC1"), sc("SC1")], ["OCC1", "SC1"], 0),
        ([sc("SC1"), sc("SC2"), sc("SC3")], ["SC3"], 2),
        ([occ("OCC1"), occ("OCC2")], ["OCC1", "OCC2"], 0),
        ([], [], 0),
    ],
)
def test_prune_status_changes(group: list[dict[str, Any]], kept: list[str], dropped: int) -> None:
    assert prune(group) == (kept, dropped)


def test_pruning_does_not_touch_its_input() -> None:
    group = [sc("SC1"), occ("OCC1")]
    prune(group)
    assert [item["id"] for item in group] == ["SC1", "OCC1"]


@pytest.mark.parametrize(
    ("features", "enabled"),
    [
        (set(), False),
        ({"organizations:occurence-consumer-prune-status-changes"}, True),
        ({"organizations:occurrence-consumer-prune-status-changes"}, True),
        ({"occurence-consumer-prune-status-changes"}, True),
        ({"occurrence-consumer-prune-status-changes"}, True),
        ({"organizations:something-else"}, False),
    ],
)
def test_prune_feature_names(features: set[str], enabled: bool) -> None:
    assert prunes_status_changes(features) is enabled


def test_feature_spelling() -> None:
    assert PRUNE_STATUS_CHANGES_FEATURE == "organizations:occurence-consumer-prune-status-changes"
    assert PRUNE_STATUS_CHANGES_ALIAS == "organizations:occurrence-consumer-prune-status-changes"


@pytest.mark.parametrize(
    ("payload", "is_sc"),
    [
        (sc("x"), True),
        (occ("x"), False),
        ({"payload_type": "occurrence"}, False),
        (None, False),
    ],
)
def test_is_status_change_payload(payload: Any, is_sc: bool) -> None:
    assert is_status_change_payload(payload) is is_sc


def test_dedupe_key_uses_the_raw_id() -> None:
    assert dedupe_key("AB-cd") == "occurrence_consumer.process_occurrence_group.AB-cd"
    assert DEDUPE_TTL_SECONDS == 300


def _groups(*spec: tuple[int, int]) -> list[list[tuple[int, dict[str, Any]]]]:
    # (project, size) per group: `size` messages of that project.
    return [
        [(i, {"fingerprint": [f"fp-{n}"], "project_id": project}) for i in range(size)]
        for n, (project, size) in enumerate(spec)
    ]


@pytest.mark.parametrize(
    ("groups", "workers", "shares"),
    [
        (_groups(), 4, []),
        (_groups((1, 1), (1, 3), (1, 2)), 4, [[0, 1, 2]]),  # one project: one share
        (_groups((1, 1), (2, 3), (1, 2)), 1, [[0, 1, 2]]),
        # the largest project first, each to the least loaded share, batch order kept
        (_groups((1, 1), (2, 3), (1, 1), (3, 1)), 2, [[1], [0, 2, 3]]),
        (_groups((1, 2), (2, 2), (3, 2), (4, 1)), 4, [[0], [1], [2], [3]]),
        (_groups((1, 2), (2, 2), (3, 2)), 2, [[0, 2], [1]]),
    ],
)
def test_deal_by_project(
    groups: list[list[tuple[int, dict[str, Any]]]], workers: int, shares: list[list[int]]
) -> None:
    assert deal_by_project(groups, workers) == shares
