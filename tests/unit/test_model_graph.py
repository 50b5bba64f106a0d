"""The frozen model, the config hash and the dependency graph."""

from __future__ import annotations

from typing import Any

import pytest

from pycompose.compose.graph import dependency_graph, start_order
from pycompose.compose.hashing import service_hash
from pycompose.compose.model import build_project, thaw

DATA: dict[str, Any] = {
    "name": "demo",
    "services": {
        "web": {
            "image": "nginx",
            "command": ["nginx", "-g", "daemon off;"],
            "depends_on": {"api": {"condition": "service_healthy", "required": True}},
            "ports": [{"mode": "ingress", "target": 80, "published": "8080", "protocol": "tcp"}],
            "volumes": [{"type": "bind", "source": "/srv", "target": "/srv", "read_only": True}],
            "networks": {"default": {"aliases": ["www"]}},
            "environment": {"A": "1", "B": None},
        },
        "api": {"image": "api", "depends_on": {"db": {"condition": "service_started"}}},
        "db": {"image": "postgres", "deploy": {"replicas": 2}},
        "side": {"image": "x", "network_mode": "service:web", "command": None},
    },
    "networks": {"default": {"name": "demo_default"}},
}


def test_model_is_typed_and_frozen() -> None:
    proj = build_project(DATA, "/tmp/demo")
    web = proj.services["web"]
    assert web.command == ("nginx", "-g", "daemon off;")
    assert web.ports[0].target == 80 and web.ports[0].published == "8080"
    assert web.volumes[0].read_only and web.volumes[0].type == "bind"
    assert web.networks["default"].aliases == ("www",)
    assert web.depends_on["api"].condition == "service_healthy"
    assert web.environment["B"] is None
    assert proj.services["db"].replicas == 2 and web.replicas == 1
    with pytest.raises(TypeError):
        web.config["image"] = "other"  # type: ignore[index]
    with pytest.raises(AttributeError):
        web.image = "other"  # type: ignore[misc]
    assert thaw(proj.config) == DATA


def test_hash_ignores_scale_and_order_but_not_content() -> None:
    base = {"image": "x", "environment": {"A": "1"}}
    assert service_hash(base) == service_hash({"environment": {"A": "1"}, "image": "x"})
    assert service_hash(base) == service_hash({**base, "deploy": {"replicas": 3}, "depends_on": {}})
    assert service_hash(base) != service_hash({**base, "environment": {"A": "2"}})


def test_graph_edges_and_start_order() -> None:
    proj = build_project(DATA, "/tmp/demo")
    graph = dependency_graph(proj)
    assert graph.edges["web", "api"]["condition"] == "service_healthy"
    assert graph.edges["side", "web"]["kind"] == "network_mode"
    order = start_order(proj)
    assert order.index("db") < order.index("api") < order.index("web") < order.index("side")
