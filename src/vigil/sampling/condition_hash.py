"""The identity of a custom rule: its condition and its project set, order-independent.

Two calls with the same condition (dict keys in any order, list items in any order) and
the same projects (in any order) have the same hash; any other project set, `[]` (an
organization-level rule) against `[p]` included, has another. No I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any


def canonical(value: Any) -> str:
    """An order-independent string of `value`: a dict is "key:value-" per key in sorted
    key order, a list (or tuple) is "item-" per item sorted by the items' strings, and
    anything else is `str(value)`."""
    if isinstance(value, dict):
        return "".join(f"{key}:{canonical(value[key])}-" for key in sorted(value))
    if isinstance(value, list | tuple):
        return "".join(f"{item}-" for item in sorted(canonical(v) for v in value))
    return str(value)


def condition_hash(condition: Any, project_ids: Iterable[int]) -> str:
    """SHA-1 hex of the condition's canonical string, "-", the project ids' one."""
    text = f"{canonical(condition)}-{canonical(list(project_ids))}"
    return hashlib.sha1(text.encode("utf-8")).hexdigest()
