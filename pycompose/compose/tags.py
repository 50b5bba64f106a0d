"""Markers for compose's ``!reset`` and ``!override`` YAML tags.

The YAML stage leaves them in the raw dicts; the merge stage consumes them, and the
last stage removes any that remain (a ``!reset`` in a single file drops the key).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Reset:
    """``!reset``: drop whatever an earlier file set at this path."""


@dataclass(frozen=True)
class Override:
    """``!override value``: replace an earlier file's value instead of merging."""

    value: Any
