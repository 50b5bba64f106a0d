"""One call to wire a container's network, one to unwire it: what the containers component uses.

For the bridge-like modes (``default``, ``bridge``, or a user network's name or id) the
container gets its own namespace, one endpoint per network (the mode's network first, as
``eth0``, then the other ``EndpointsConfig`` entries) and its published ports. ``host``,
``none`` and ``container:<id>`` make no namespace here: ``is_bridge_mode`` is False for them
and the caller handles them itself.

All functions block (netlink, nft): call them from a worker thread.

    net = connect_container(manager, ContainerNetworkRequest(cid, "/web-1", "mynet", ...))
    spec_params.network = net.netns_path          # the OCI spec joins this namespace
    EtcParams(addresses=net.addresses, embedded_dns=net.embedded_dns, ...)
    record.network_settings.update(network_settings(manager, cid, net.netns_path, exposed))
    ...
    disconnect_container(manager, cid)             # on stop/remove: ports, endpoints, netns
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pycompose.engine.errors import InvalidArgument, NotFound
from pycompose.netns.manager import NetworkManager
from pycompose.netns.ports import PortBinding, from_port_bindings, parse_range, to_docker_ports
from pycompose.netns.records import Endpoint, NetworkRecord

DEFAULT_NETWORK = "bridge"


def is_bridge_mode(mode: str) -> bool:
    """True when the mode needs a namespace and endpoints from us."""
    return mode not in ("host", "none") and not mode.startswith("container:")


@dataclass(frozen=True)
class ContainerNetworkRequest:
    """A container's networking, as Docker's create request gives it."""

    container_id: str
    name: str  # "/proj-web-1"
    network_mode: str = "default"  # HostConfig.NetworkMode
    endpoints_config: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    port_bindings: Mapping[str, Any] | None = None  # HostConfig.PortBindings
    publish_all: bool = False  # HostConfig.PublishAllPorts (-P)
    exposed_ports: Mapping[str, Any] | None = None  # Config.ExposedPorts
    mac_address: str = ""  # Config.MacAddress (older clients), for the first network


@dataclass(frozen=True)
class ContainerNetwork:
    """What the container's spec and /etc files need to know."""

    netns_path: str
    endpoints: tuple[Endpoint, ...]
    ports: tuple[PortBinding, ...]
    embedded_dns: bool  # user-defined network: resolv.conf names 127.0.0.11
    addresses: tuple[str, ...]  # the container's own IPs, for /etc/hosts
    aliases: tuple[str, ...]


def primary_network(mode: str) -> str:
    """The network a bridge-like mode names (``default`` is the ``bridge`` network)."""
    return DEFAULT_NETWORK if mode in ("", "default", DEFAULT_NETWORK) else mode


def _plan(
    manager: NetworkManager, req: ContainerNetworkRequest
) -> list[tuple[NetworkRecord, Mapping[str, Any]]]:
    primary = manager.get(primary_network(req.network_mode))
    configs: dict[str, Mapping[str, Any]] = {}
    for key, cfg in req.endpoints_config.items():
        record = manager.get(key)
        if record.id in configs:
            raise InvalidArgument(f"network {record.name} is given twice in EndpointsConfig")
        configs[record.id] = cfg or {}
    plan = [(primary, configs.pop(primary.id, {}))]
    plan += [(manager.get(nid), cfg) for nid, cfg in configs.items()]
    for record, cfg in plan:
        if record.driver != "bridge":
            raise InvalidArgument(
                f"container cannot be connected to network {record.name} "
                f"with mode {req.network_mode}"
            )
        if cfg.get("Aliases") and record.predefined:
            raise InvalidArgument(
                "network-scoped alias is supported only for containers in user defined networks"
            )
    return plan


def _exposed(exposed: Mapping[str, Any] | None) -> list[tuple[int, str]]:
    out = []
    for key in exposed or {}:
        port_s, _, proto = str(key).partition("/")
        start, end = parse_range(port_s, "exposed port")
        out += [(p, (proto or "tcp").lower()) for p in range(start, end + 1)]
    return out


def wanted_ports(req: ContainerNetworkRequest) -> list[PortBinding]:
    """``PortBindings``, plus a random host port per exposed port with ``PublishAllPorts``."""
    bindings = from_port_bindings(req.port_bindings)
    if req.publish_all:
        bound = {(b.container_port, b.protocol) for b in bindings}
        bindings += [PortBinding(p, proto) for p, proto in _exposed(req.exposed_ports)
                     if (p, proto) not in bound]  # fmt: skip
    return bindings


def connect_container(manager: NetworkManager, req: ContainerNetworkRequest) -> ContainerNetwork:
    """Namespace, endpoints and published ports; on any failure nothing is left behind."""
    if not is_bridge_mode(req.network_mode):
        raise InvalidArgument(f"network mode {req.network_mode} needs no namespace from us")
    plan = _plan(manager, req)
    ports = wanted_ports(req)
    path = manager.create_netns(req.container_id)
    try:
        endpoints = []
        for index, (record, cfg) in enumerate(plan):
            ipam_cfg = cfg.get("IPAMConfig") or {}
            mac = str(cfg.get("MacAddress") or (req.mac_address if index == 0 else ""))
            endpoints.append(manager.attach(
                req.container_id, path, record.id, aliases=tuple(cfg.get("Aliases") or ()),
                ipv4_address=str(ipam_cfg.get("IPv4Address") or ""), mac=mac,
                ipv6_address=str(ipam_cfg.get("IPv6Address") or ""), name=req.name,
            ))  # fmt: skip
        bound = manager.publish(req.container_id, ports) if ports else []
    except BaseException:
        disconnect_container(manager, req.container_id)
        raise
    return ContainerNetwork(
        netns_path=str(path),
        endpoints=tuple(endpoints),
        ports=tuple(bound),
        embedded_dns=not plan[0][0].predefined,
        addresses=tuple(ip for ep in endpoints for ip in (ep.ipv4, ep.ipv6) if ip),
        aliases=tuple(dict.fromkeys(a for ep in endpoints for a in ep.aliases)),
    )


def disconnect_container(manager: NetworkManager, container_id: str) -> None:
    """Unpublish, detach from every network and remove the namespace (each step tolerant)."""
    manager.unpublish(container_id)
    manager.detach_all(container_id)
    manager.remove_netns(container_id)


def host_gateway(manager: NetworkManager) -> str:
    """What ``host-gateway`` in ``extra_hosts`` means: the default bridge's gateway."""
    record = manager.get(DEFAULT_NETWORK)
    v4 = record.subnet(4)
    if v4 is None:
        raise NotFound("the default bridge network has no IPv4 gateway")
    return v4.gateway


def network_settings(
    manager: NetworkManager,
    container_id: str,
    netns_path: str,
    exposed: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Docker's ``NetworkSettings`` of a running container, from the manager's state."""
    pairs = manager.endpoints(container_id)
    ports: dict[str, Any] = {f"{p}/{proto}": None for p, proto in _exposed(exposed)}
    ports.update(to_docker_ports(manager.published(container_id)))
    default = next((ep for rec, ep in pairs if rec.predefined), None)
    top = default.settings(DEFAULT_NETWORK) if default is not None else {}
    return {
        "Bridge": "", "SandboxID": container_id, "SandboxKey": netns_path,
        "HairpinMode": False, "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0,
        "Ports": ports, "SecondaryIPAddresses": None, "SecondaryIPv6Addresses": None,
        "EndpointID": top.get("EndpointID", ""), "Gateway": top.get("Gateway", ""),
        "GlobalIPv6Address": top.get("GlobalIPv6Address", ""),
        "GlobalIPv6PrefixLen": top.get("GlobalIPv6PrefixLen", 0),
        "IPAddress": top.get("IPAddress", ""), "IPPrefixLen": top.get("IPPrefixLen", 0),
        "IPv6Gateway": top.get("IPv6Gateway", ""), "MacAddress": top.get("MacAddress", ""),
        "Networks": {rec.name: ep.settings(rec.name) for rec, ep in pairs},
    }  # fmt: skip


def port_summary(bindings: Sequence[PortBinding]) -> list[dict[str, Any]]:
    """``Ports`` of ``GET /containers/json`` (one entry per published binding)."""
    return [
        {"IP": b.host_ip or "0.0.0.0", "PrivatePort": b.container_port,
         "PublicPort": b.host_port, "Type": b.protocol}
        for b in bindings
    ]  # fmt: skip
