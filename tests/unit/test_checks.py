"""Semantic checks on the canonical project."""

from __future__ import annotations

from typing import Any

import pytest

from pycompose.compose.checks import check_project, find_cycle
from pycompose.compose.errors import ComposeErrors


def project(**services: dict[str, Any]) -> dict[str, Any]:
    return {"name": "p", "services": services, "networks": {"default": {}}, "volumes": {"v": {}}}


def errors_of(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ComposeErrors) as info:
        check_project(data)
    return [str(e) for e in info.value.errors]


def test_valid_project_passes() -> None:
    check_project(
        project(
            a={"image": "x", "depends_on": {"b": {"condition": "service_started"}}},
            b={"build": {"context": "/x"}, "volumes": [{"type": "volume", "source": "v"}]},
        )
    )


def test_cycle_is_reported_with_its_path() -> None:
    data = project(
        a={"image": "x", "depends_on": {"b": {}}},
        b={"image": "x", "links": ["c:alias"]},
        c={"image": "x", "network_mode": "service:a"},
    )
    assert any("dependency cycle detected: a -> b -> c -> a" in e for e in errors_of(data))


def test_self_reference_is_a_cycle() -> None:
    assert errors_of(project(a={"image": "x", "volumes_from": ["a"]})) == [
        "services.a: dependency cycle detected: a -> a"
    ]


def test_undefined_references_all_reported() -> None:
    data = project(
        a={
            "image": "x",
            "depends_on": {"zz": {}},
            "networks": {"nope": None},
            "volumes": [{"type": "volume", "source": "missing", "target": "/m"}],
            "secrets": [{"source": "s"}],
            "configs": [{"source": "c"}],
            "volumes_from": ["container:ok", "yy:ro"],
        }
    )
    found = errors_of(data)
    assert 'services.a.depends_on.zz: service "a" depends on undefined service "zz"' in found
    assert any('undefined service "yy"' in e for e in found)
    assert any("undefined network nope" in e for e in found)
    assert any("undefined volume missing" in e for e in found)
    assert any("undefined secret s" in e for e in found)
    assert any("undefined config c" in e for e in found)
    assert len(found) == 6


def test_network_mode_with_networks() -> None:
    data = project(a={"image": "x", "network_mode": "host", "networks": {"default": None}})
    assert any("mutually exclusive" in e for e in errors_of(data))


def test_neither_image_nor_build() -> None:
    assert any("neither an image nor a build" in e for e in errors_of(project(a={})))


def test_duplicate_container_name_and_replicas() -> None:
    data = project(
        a={"image": "x", "container_name": "cc"},
        b={"image": "x", "container_name": "cc", "deploy": {"replicas": 2}},
    )
    found = errors_of(data)
    assert any('already used by service "a"' in e for e in found)
    assert any("more than one replica" in e for e in found)


def port(published: str, host_ip: str | None = None, protocol: str = "tcp") -> dict[str, Any]:
    out: dict[str, Any] = {"target": 80, "published": published, "protocol": protocol}
    if host_ip:
        out["host_ip"] = host_ip
    return out


def test_same_host_port_twice() -> None:
    data = project(
        a={"image": "x", "ports": [port("8080")]}, b={"image": "x", "ports": [port("8080")]}
    )
    assert any(
        'host port 8080/tcp is already published by service "a"' in e for e in errors_of(data)
    )


def test_ranges_overlap_and_wildcards() -> None:
    data = project(
        a={"image": "x", "ports": [port("8000-8010", "127.0.0.1")]},
        b={"image": "x", "ports": [port("8005")]},
    )
    assert len(errors_of(data)) == 1


def test_distinct_ips_protocols_and_random_ports_are_fine() -> None:
    check_project(
        project(
            a={"image": "x", "ports": [port("80", "127.0.0.1"), port("53", protocol="udp")]},
            b={"image": "x", "ports": [port("80", "127.0.0.2"), port("53")]},
            c={"image": "x", "ports": [{"target": 80}, {"target": 80}]},
        )
    )


def test_find_cycle_on_acyclic_graph() -> None:
    assert find_cycle({"a": ["b", "c"], "b": ["c"], "c": []}) is None
    assert find_cycle({"a": ["b"], "b": ["a"]}) == ["a", "b", "a"]
