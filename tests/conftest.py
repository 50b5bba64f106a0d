"""Shared pytest configuration: the root marker and fixtures from tests/fixtures."""

from __future__ import annotations

import os

import pytest

# Real images, a real registry and isolated engines, for every test that asks for them.
pytest_plugins = ["tests.fixtures.images", "tests.fixtures.registry", "tests.fixtures.engine"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root (namespaces, overlayfs, runc)")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)
