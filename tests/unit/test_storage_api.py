"""Filters of the volume routes, and the CLI's argument helpers."""

from __future__ import annotations

import json

import pytest

from pycompose.cli import framework as fw
from pycompose.cli.volume_cmd import _filters, _pairs
from pycompose.engine.errors import InvalidArgument
from pycompose.storage.api import list_matcher, prune_matcher
from pycompose.storage.volumes import ANONYMOUS_LABEL, Volume


def vol(name: str, labels: dict[str, str] | None = None, users: tuple[str, ...] = ()) -> Volume:
    return Volume(name, "2026-01-01T00:00:00Z", labels or {}, {}, users)


VOLS = [
    vol("web-data", {"env": "prod"}, ("c1",)),
    vol("cache", {"env": "dev"}),
    vol("f" * 64, {ANONYMOUS_LABEL: ""}),
]


@pytest.mark.parametrize(
    ("filters", "names"),
    [
        ({}, ["web-data", "cache", "f" * 64]),
        ({"dangling": ["true"]}, ["cache", "f" * 64]),
        ({"dangling": ["0"]}, ["web-data"]),
        ({"name": ["ach"]}, ["cache"]),
        ({"label": ["env=prod"]}, ["web-data"]),
        ({"label": ["env"]}, ["web-data", "cache"]),
        ({"driver": ["other"]}, []),
    ],
)
def test_list_filters(filters: dict[str, list[str]], names: list[str]) -> None:
    match = list_matcher(filters)
    assert [v.name for v in VOLS if match(v)] == names


def test_bad_dangling_value() -> None:
    with pytest.raises(InvalidArgument, match="dangling=maybe"):
        list_matcher({"dangling": ["maybe"]})


def test_prune_label_filters() -> None:
    match = prune_matcher({"label": ["env"], "label!": ["env=prod"]})
    assert [v.name for v in VOLS if match(v)] == ["cache"]


def test_cli_helpers() -> None:
    assert _pairs(("type=tmpfs", "o=size=1m,uid=1", "flag"), "option") == {
        "type": "tmpfs",
        "o": "size=1m,uid=1",
        "flag": "",
    }
    assert json.loads(_filters(("label=a=b", "dangling=true")) or "") == {
        "label": ["a=b"],
        "dangling": ["true"],
    }
    assert _filters(()) is None
    with pytest.raises(fw.UsageError):
        _filters(("nokey",))
