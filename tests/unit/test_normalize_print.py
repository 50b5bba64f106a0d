"""Printing conventions of ``docker compose config`` applied to a canonical model."""

from __future__ import annotations

from typing import Any

from pycompose.compose.normalize_print import escape_dollars, json_view


def test_dollars_are_escaped_everywhere_keys_included() -> None:
    data = {"labels": {"a$b": "c$d"}, "command": ["x$y", 1, None], "n": 2}
    assert escape_dollars(data) == {"labels": {"a$$b": "c$$d"}, "command": ["x$$y", 1, None],
                                    "n": 2}


def test_json_view_drops_nested_extensions_and_models() -> None:
    project: dict[str, Any] = {
        "name": "p",
        "x-top": {"x-kept": 1},
        "models": {"m": {"model": "ai/x"}},
        "services": {"a": {
            "image": "x",
            "x-svc": 1,
            "labels": {"x-label": "data"},
            "environment": {"x-e": "1"},
            "volumes": [{"type": "volume", "source": "v", "target": "/v", "x-m": 1}],
            "networks": {"x-net": {"aliases": ["a"], "x-n": 1}},
            "depends_on": {"b": {"condition": "service_started", "x-d": 1}},
            "build": {"context": "/p", "args": {"x-a": "1"}, "x-b": 1},
            "logging": {"driver": "d", "options": {"x-o": "1"}},
        }},
        "networks": {"n": {"name": "p_n", "x-foo": 1, "driver_opts": {"x-do": "1"}}},
    }
    view = json_view(project)
    assert "models" not in view
    assert view["x-top"] == {"x-kept": 1}
    service = view["services"]["a"]
    assert "x-svc" not in service
    assert service["labels"] == {"x-label": "data"}
    assert service["environment"] == {"x-e": "1"}
    assert service["volumes"] == [{"type": "volume", "source": "v", "target": "/v"}]
    assert service["networks"] == {"x-net": {"aliases": ["a"]}}
    assert service["depends_on"] == {"b": {"condition": "service_started"}}
    assert service["build"] == {"context": "/p", "args": {"x-a": "1"}}
    assert service["logging"] == {"driver": "d", "options": {"x-o": "1"}}
    assert view["networks"] == {"n": {"name": "p_n", "driver_opts": {"x-do": "1"}}}
    assert project["services"]["a"]["x-svc"] == 1  # the input is left alone
