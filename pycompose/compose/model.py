"""The frozen, typed project model: the loader's last stage.

Built from the canonical dict that ``normalize`` produces (the same data ``config``
prints). Everything is immutable: mappings are read-only proxies, sequences are tuples.
Each object also keeps its full canonical configuration in ``config`` so nothing a user
wrote is lost between the loader and the engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from pycompose.compose.hashing import service_hash


def freeze(value: Any) -> Any:
    """Deep-freeze plain data: dicts become read-only mappings, lists become tuples."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """The inverse of :func:`freeze`, for serialising."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    return value


@dataclass(frozen=True)
class Port:
    target: int | None
    published: str | None
    host_ip: str | None
    protocol: str
    mode: str
    app_protocol: str | None = None
    name: str | None = None


@dataclass(frozen=True)
class Mount:
    type: str
    target: str
    source: str | None
    read_only: bool
    options: Mapping[str, Any]


@dataclass(frozen=True)
class Dependency:
    condition: str
    required: bool
    restart: bool


@dataclass(frozen=True)
class ServiceNetwork:
    aliases: tuple[str, ...]
    ipv4_address: str | None
    ipv6_address: str | None
    config: Mapping[str, Any]


@dataclass(frozen=True)
class Service:
    name: str
    image: str | None
    build: Mapping[str, Any] | None
    command: tuple[str, ...] | None
    entrypoint: tuple[str, ...] | None
    environment: Mapping[str, str | None]
    labels: Mapping[str, str]
    ports: tuple[Port, ...]
    volumes: tuple[Mount, ...]
    networks: Mapping[str, ServiceNetwork]
    network_mode: str | None
    depends_on: Mapping[str, Dependency]
    restart: str | None
    profiles: tuple[str, ...]
    config_hash: str
    config: Mapping[str, Any]

    @property
    def replicas(self) -> int:
        """How many containers ``up`` runs: ``deploy.replicas``, else ``scale``, else 1."""
        deploy = self.config.get("deploy") or {}
        value = deploy.get("replicas", self.config.get("scale", 1))
        return int(value) if value is not None else 1


@dataclass(frozen=True)
class Project:
    name: str
    working_dir: str
    services: Mapping[str, Service]
    networks: Mapping[str, Mapping[str, Any]]
    volumes: Mapping[str, Mapping[str, Any]]
    secrets: Mapping[str, Mapping[str, Any]]
    configs: Mapping[str, Mapping[str, Any]]
    config: Mapping[str, Any]


def _port(data: Mapping[str, Any]) -> Port:
    published = data.get("published")
    return Port(
        target=int(data["target"]) if data.get("target") is not None else None,
        published=None if published is None else str(published),
        host_ip=data.get("host_ip"),
        protocol=str(data.get("protocol") or "tcp"),
        mode=str(data.get("mode") or "ingress"),
        app_protocol=data.get("app_protocol"),
        name=data.get("name"),
    )


def _mount(data: Mapping[str, Any]) -> Mount:
    options = {k: v for k, v in data.items() if k in ("bind", "volume", "tmpfs", "image")}
    return Mount(
        type=str(data["type"]),
        target=str(data["target"]),
        source=data.get("source"),
        read_only=bool(data.get("read_only", False)),
        options=freeze(options),
    )


def _network(data: Mapping[str, Any] | None) -> ServiceNetwork:
    data = data or {}
    return ServiceNetwork(
        aliases=tuple(data.get("aliases") or ()),
        ipv4_address=data.get("ipv4_address"),
        ipv6_address=data.get("ipv6_address"),
        config=freeze(data),
    )


def _dependency(data: Mapping[str, Any] | None) -> Dependency:
    data = data or {}
    return Dependency(
        condition=str(data.get("condition") or "service_started"),
        required=bool(data.get("required", True)),
        restart=bool(data.get("restart", False)),
    )


def _args(value: Any) -> tuple[str, ...] | None:
    return None if value is None else tuple(str(v) for v in value)


def build_service(name: str, data: Mapping[str, Any]) -> Service:
    """One service from its canonical dict."""
    return Service(
        name=name,
        image=data.get("image"),
        build=freeze(data["build"]) if data.get("build") else None,
        command=_args(data.get("command")),
        entrypoint=_args(data.get("entrypoint")),
        environment=freeze(data.get("environment") or {}),
        labels=freeze(data.get("labels") or {}),
        ports=tuple(_port(p) for p in data.get("ports") or ()),
        volumes=tuple(_mount(v) for v in data.get("volumes") or ()),
        networks=MappingProxyType(
            {net: _network(cfg) for net, cfg in (data.get("networks") or {}).items()}
        ),
        network_mode=data.get("network_mode"),
        depends_on=MappingProxyType(
            {dep: _dependency(cfg) for dep, cfg in (data.get("depends_on") or {}).items()}
        ),
        restart=data.get("restart"),
        profiles=tuple(data.get("profiles") or ()),
        config_hash=service_hash(data),
        config=freeze(data),
    )


def build_project(data: Mapping[str, Any], working_dir: str) -> Project:
    """The frozen project from the canonical dict."""
    return Project(
        name=str(data["name"]),
        working_dir=working_dir,
        services=MappingProxyType(
            {name: build_service(name, svc) for name, svc in (data.get("services") or {}).items()}
        ),
        networks=freeze(data.get("networks") or {}),
        volumes=freeze(data.get("volumes") or {}),
        secrets=freeze(data.get("secrets") or {}),
        configs=freeze(data.get("configs") or {}),
        config=freeze(data),
    )
