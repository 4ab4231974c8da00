"""Monitor slugs, processing keys and Relay routing keys (B4.1, B4.2), as tables."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vigil.monitors.slugs import (
    MAX_SLUG_LENGTH,
    ROUTING_NAMESPACE,
    processing_key,
    routing_key,
    routing_uuid,
    slugify,
    valid_monitor_slug,
)


@pytest.mark.parametrize(
    ("slug", "expected"),
    [
        ("some/slug@with-weird|stuff", "someslugwith-weirdstuff"),
        ("my-monitor", "my-monitor"),
        ("My Monitor", "my-monitor"),
        ("  padded  ", "padded"),
        ("a  -  b", "a-b"),
        ("a---b", "a-b"),
        ("a\t\nb", "a-b"),
        ("snake_case_job", "snake_case_job"),
        ("_leading_and_trailing_", "leading_and_trailing"),
        ("--dashes--", "dashes"),
        ("Crème Brûlée", "creme-brulee"),
        ("日本語", ""),
        ("job日本", "job"),
        ("!!!", ""),
        ("", ""),
        ("UPPER", "upper"),
        ("every-minute-ok", "every-minute-ok"),
        ("x" * 60, "x" * 50),
        # the cut can leave a trailing dash, which is stripped after the cut
        ("a" * 49 + "-b", "a" * 49),
        ("a" * 49 + " b", "a" * 49),
    ],
)
def test_valid_monitor_slug(slug: str, expected: str) -> None:
    assert valid_monitor_slug(slug) == expected


def test_slugify_strips_underscores_but_the_cut_strips_only_dashes() -> None:
    assert slugify("_a_") == "a"
    assert valid_monitor_slug("a" * 49 + "_b") == "a" * 49 + "_"


@given(st.text())
def test_valid_monitor_slug_is_short_ascii_and_idempotent(slug: str) -> None:
    result = valid_monitor_slug(slug)
    assert len(result) <= MAX_SLUG_LENGTH
    assert result.isascii()
    assert result == result.lower()
    assert not result.startswith("-") and not result.endswith("-")
    assert "--" not in result
    assert all(c.isalnum() or c in "-_" for c in result)
    assert valid_monitor_slug(result) == result


@pytest.mark.parametrize(
    ("project_id", "slug", "environment", "expected"),
    [
        (1, "my-monitor", None, "1:my-monitor:None"),
        (1, "my-monitor", "production", "1:my-monitor:production"),
        (1, "my-monitor", "", "1:my-monitor:"),
        (42, "Some/Slug", "prod", "42:someslug:prod"),
    ],
)
def test_processing_key_uses_the_valid_slug_and_the_raw_environment(
    project_id: int, slug: str, environment: str | None, expected: str
) -> None:
    assert processing_key(project_id, slug, environment) == expected


def test_omitted_environment_and_production_are_different_processing_keys() -> None:
    assert processing_key(1, "job", None) != processing_key(1, "job", "production")


def test_routing_namespace_is_relays() -> None:
    relays = uuid.UUID("020e1c7e-46bd-5af5-aa41-e61757888484")
    assert relays == ROUTING_NAMESPACE


@pytest.mark.parametrize(
    ("project_id", "slug", "environment", "expected"),
    [
        (1, "my-monitor", None, "9aa99731-a8e3-5594-9f00-c3e8a62c2b11"),
        (1, "my-monitor", "", "9aa99731-a8e3-5594-9f00-c3e8a62c2b11"),
        (1, "my-monitor", "production", "9aa99731-a8e3-5594-9f00-c3e8a62c2b11"),
        (1, "my-monitor", "prod", "f97ad155-c5c6-57f4-b748-03a301a14e54"),
    ],
)
def test_routing_key_is_relays_current_form(
    project_id: int, slug: str, environment: str | None, expected: str
) -> None:
    assert routing_uuid(project_id, slug, environment) == uuid.UUID(expected)
    assert routing_key(project_id, slug, environment) == uuid.UUID(expected).bytes


def test_routing_key_differs_by_project_slug_and_environment() -> None:
    keys = {
        routing_key(1, "a", None),
        routing_key(2, "a", None),
        routing_key(1, "b", None),
        routing_key(1, "a", "staging"),
    }
    assert len(keys) == 4
