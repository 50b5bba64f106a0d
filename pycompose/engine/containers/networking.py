"""Containers on networks: namespace, endpoints, ports, DNS and /etc files around each run.

The runner asks :meth:`ContainerNetworking.before_start` for a container's network before
its /etc files and OCI spec are written: bridge-like modes get a namespace of their own with
one endpoint per network, their published ports (a port in use fails the start before any
process exists, and nothing is left wired), their embedded-DNS names and endpoint, and
/etc/hosts lines for their addresses, ``extra_hosts`` (``host-gateway`` resolved) and legacy
links. :meth:`after_exit` releases all of it when the process is gone (stop, crash, failed
start), so a stopped container holds no veth, namespace file, nft rule or DNS socket.

The same object is ``ctx.services["network_connector"]`` (``network connect|disconnect``)
and re-wires the DNS and published ports of containers a restarted daemon re-adopts.
The NetworkManager blocks (netlink, nft, its own loop in pyroute2): every call to it runs
in a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pycompose.engine.containers.dnswiring import DnsWiring, upstreams_from_env
from pycompose.engine.containers.links import check_links, link_env, resolve_links
from pycompose.engine.containers.record import ContainerRecord
from pycompose.engine.errors import Conflict, EngineError, InvalidArgument, NotFound
from pycompose.netns.container import (
    ContainerNetworkRequest,
    connect_container,
    disconnect_container,
    host_gateway,
    is_bridge_mode,
    network_settings,
    port_summary,
    primary_network,
)
from pycompose.netns.manager import NetworkManager
from pycompose.netns.ports import PortBinding
from pycompose.netns.records import NetworkRecord

if TYPE_CHECKING:
    from pycompose.engine.api.app import EngineContext
    from pycompose.engine.containers.manager import ContainerManager
    from pycompose.engine.containers.runner import Runner

log = logging.getLogger("pycompose.engine.containers")
HOST_GATEWAY = "host-gateway"


@dataclass(frozen=True)
class Wired:
    """What the spec and /etc files of a starting container need from its network."""

    netns_path: str = ""  # "" : the mode needs no namespace from us
    etc: Mapping[str, Any] = field(default_factory=dict)  # EtcParams fields to override
    env: tuple[str, ...] = ()  # legacy link variables

    def config_for(self, config: Mapping[str, Any]) -> Mapping[str, Any]:
        """The container's Config with the link variables its own Env does not set."""
        if not self.env:
            return config
        user = list(config.get("Env") or [])
        keys = {entry.partition("=")[0] for entry in user}
        return {**config, "Env": user + [e for e in self.env if e.partition("=")[0] not in keys]}


def _blank_endpoint(network_id: str = "") -> dict[str, Any]:
    return {"IPAMConfig": None, "Links": None, "Aliases": None, "NetworkID": network_id,
            "EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0,
            "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
            "MacAddress": "", "DriverOpts": None}  # fmt: skip


def endpoints_config(record_or_networking: Mapping[str, Any]) -> dict[str, Any]:
    """``EndpointsConfig`` with Docker's ``default`` key spelled as the ``bridge`` network."""
    raw = record_or_networking.get("EndpointsConfig") or {}
    return {("bridge" if k == "default" else k): (v or {}) for k, v in raw.items()}


class ContainerNetworking:
    """Wires containers to the NetworkManager and the embedded DNS."""

    def __init__(self, mgr: ContainerManager, networks: NetworkManager, dns: DnsWiring) -> None:
        self.mgr = mgr
        self.networks = networks
        self.dns = dns

    # -- create ---------------------------------------------------------------------------

    def check_create(
        self, config: Mapping[str, Any], host: Mapping[str, Any], networking: Mapping[str, Any]
    ) -> list[str]:
        """Refuse at create what cannot start (unknown networks, links, conflicting modes)."""
        mode = str(host.get("NetworkMode") or "default")
        ports = bool(host.get("PortBindings")) or bool(host.get("PublishAllPorts"))
        warnings: list[str] = []
        if is_bridge_mode(mode):
            for name in [primary_network(mode), *endpoints_config(networking)]:
                self._check_network(name)
        else:
            if mode == "host" and ports:
                warnings.append("Published ports are discarded when using host network mode")
            elif ports:
                raise InvalidArgument(
                    "conflicting options: port publishing and the container type network mode"
                )
            if config.get("MacAddress"):
                raise InvalidArgument(
                    f"conflicting options: mac-address and the network mode {mode}"
                )
            if host.get("Links"):
                raise InvalidArgument(
                    "conflicting options: container type network can't be used with links"
                )
        check_links(host.get("Links"), self.mgr.get)
        return warnings

    def _check_network(self, name: str) -> None:
        # A 400, not a 404: clients read a 404 from create as "no such image" and try a pull.
        try:
            self.networks.get(name)
        except NotFound as err:
            raise InvalidArgument(str(err)) from None

    # -- start and exit -------------------------------------------------------------------

    def _extra_hosts(self, record: ContainerRecord) -> list[tuple[str, str]]:
        out = []
        for entry in record.host_config.get("ExtraHosts") or []:
            name, sep, ip = str(entry).partition(":")
            if not sep or not name:
                raise InvalidArgument(f"invalid HostConfig.ExtraHosts entry {entry!r}")
            out.append((name, ip))
        if any(ip == HOST_GATEWAY for _, ip in out):
            gateway = host_gateway(self.networks)
            out = [(n, gateway if ip == HOST_GATEWAY else ip) for n, ip in out]
        return out

    def _request(self, record: ContainerRecord) -> ContainerNetworkRequest:
        host, config = record.host_config, record.config
        return ContainerNetworkRequest(
            container_id=record.id, name="/" + record.name,
            network_mode=str(host.get("NetworkMode") or "default"),
            endpoints_config=endpoints_config(record.networking_config),
            port_bindings=host.get("PortBindings") or None,
            publish_all=bool(host.get("PublishAllPorts")),
            exposed_ports=config.get("ExposedPorts") or None,
            mac_address=str(config.get("MacAddress") or ""),
        )  # fmt: skip

    async def before_start(self, record: ContainerRecord) -> Wired:
        """Wire the container's network (bridge-like modes); see the module docstring."""
        mode = str(record.host_config.get("NetworkMode") or "default")
        extra = await asyncio.to_thread(self._extra_hosts, record)
        if mode.startswith("container:"):
            return Wired("", {"extra_hosts": tuple(extra), **await self._shared(mode)})
        if not is_bridge_mode(mode):
            return Wired("", {"extra_hosts": tuple(extra)})
        net = await asyncio.to_thread(connect_container, self.networks, self._request(record))
        try:
            settings, pairs = await asyncio.to_thread(self._state, record, net.netns_path)
            links = await asyncio.to_thread(
                resolve_links, record, pairs, self.mgr.get, self.networks.endpoints
            )
            await self.dns.container_up(record, pairs, net.netns_path)
        except BaseException:
            await self.after_exit(record)
            raise
        record.network_settings.update(settings)
        record.network_settings["PortSummary"] = port_summary(net.ports)
        # Not saved here: the runner saves the record once the process runs (or failed).
        hosts = [(" ".join(dict.fromkeys([alias, other.name, other.short_id])), ip)
                 for alias, other, ip in links]  # fmt: skip
        # Link variables are the legacy bridge's; on user networks a link is only a name.
        env = [] if net.embedded_dns else [
            v for alias, other, ip in links for v in link_env(record.name, alias, other, ip)
        ]  # fmt: skip
        return Wired(net.netns_path, {
            "extra_hosts": tuple(extra + hosts), "addresses": net.addresses,
            "embedded_dns": net.embedded_dns,
        }, tuple(env))  # fmt: skip

    async def _shared(self, mode: str) -> dict[str, Any]:
        # container:<ref> lives in the other container's namespace: its addresses name this
        # hostname too, and its embedded DNS (if on a user network) is this one's resolver.
        other = self.mgr.get(mode.partition(":")[2])
        pairs = await asyncio.to_thread(self.networks.endpoints, other.id)
        return {
            "addresses": tuple(ip for _, ep in pairs for ip in (ep.ipv4, ep.ipv6) if ip),
            "embedded_dns": any(not rec.predefined for rec, _ in pairs),
        }

    def renamed(self, record: ContainerRecord) -> None:
        """A rename reaches the networks at once, as with dockerd: their ``Containers``,
        the embedded DNS (the new name answers, the old one no longer) and the container's
        ``DNSNames``."""
        pairs = self.networks.rename_container(record.id, "/" + record.name)
        self.dns.renamed(record, pairs)
        nets = record.network_settings.get("Networks") or {}
        for rec, ep in pairs:
            if rec.name in nets:
                nets[rec.name]["DNSNames"] = ep.settings(rec.name)["DNSNames"]
        self.mgr.store.save(record)

    def _state(self, record: ContainerRecord, netns_path: str) -> tuple[dict[str, Any], Any]:
        exposed = record.config.get("ExposedPorts") or None
        settings = network_settings(self.networks, record.id, netns_path, exposed)
        return settings, self.networks.endpoints(record.id)

    async def after_exit(self, record: ContainerRecord) -> None:
        """Release the container's DNS endpoint, ports, endpoints and namespace."""
        with contextlib.suppress(Exception):
            await self.dns.container_down(record.id)
        try:
            if self._joined(record):
                await asyncio.to_thread(disconnect_container, self.networks, record.id)
            else:  # nobody is left in the namespace: the kernel deletes the veths later
                await asyncio.to_thread(self.networks.release_container, record.id)
        except Exception:  # the daemon's start-up gc removes what is left
            log.exception("container %s: releasing its network failed", record.short_id)
        ns = record.network_settings
        ns["Networks"] = {name: _blank_endpoint(ep.get("NetworkID", ""))
                          for name, ep in (ns.get("Networks") or {}).items()}  # fmt: skip
        exposed = record.config.get("ExposedPorts") or {}
        ns.update({"Ports": {k: None for k in exposed}, "PortSummary": [], "SandboxKey": "",
                   "SandboxID": "", "IPAddress": "", "Gateway": "", "MacAddress": "",
                   "EndpointID": "", "IPPrefixLen": 0})  # fmt: skip
        # The caller (exit or failed start) saves the record right after.

    def _joined(self, record: ContainerRecord) -> bool:
        """Whether a running container shares this one's network namespace
        (``--network container:<this>``), so that it must lose its interfaces now."""
        for other in self.mgr.store.all():
            mode = str(other.host_config.get("NetworkMode") or "")
            if other is record or not other.state.running or not mode.startswith("container:"):
                continue
            with contextlib.suppress(NotFound):
                if self.mgr.get(mode.partition(":")[2]) is record:
                    return True
        return False

    async def readopt(self, record: ContainerRecord) -> None:
        """A restarted daemon found the container running: DNS and published ports again."""
        pairs = await asyncio.to_thread(self.networks.endpoints, record.id)
        if not pairs:
            return
        path = pairs[0][1].netns_path
        bindings = [
            PortBinding(int(p["PrivatePort"]), str(p["Type"]),
                        "" if p.get("IP") in ("", "0.0.0.0") else str(p["IP"]),
                        int(p["PublicPort"]))
            for p in record.network_settings.get("PortSummary") or []
        ]  # fmt: skip
        await self.dns.container_up(record, pairs, path)
        if bindings:
            try:
                bound = await asyncio.to_thread(self.networks.publish, record.id, bindings)
            except EngineError as err:  # a host process took the port while we were down
                log.warning("container %s: its ports are not published again: %s",
                            record.short_id, err)  # fmt: skip
                bound = []
            record.network_settings["PortSummary"] = port_summary(bound)
            self.mgr.store.save(record)

    # -- network connect / disconnect (ContainerConnector) ---------------------------------

    async def connect_network(
        self, container: str, network: NetworkRecord, endpoint_config: dict[str, Any]
    ) -> str:
        """Connect now if running (eth1, ...), else remember it for the next start."""
        record = self.mgr.get(container)
        mode = str(record.host_config.get("NetworkMode") or "default")
        if not is_bridge_mode(mode):
            raise InvalidArgument(
                "container sharing network namespace with another container or host cannot "
                "be connected to any other network"
            )
        async with self.mgr.live_of(record).lock:
            stored = record.networking_config.setdefault("EndpointsConfig", {})
            known = set(endpoints_config(record.networking_config)) | {primary_network(mode)}
            if network.name in known or network.id in known:
                raise Conflict(
                    f"endpoint with name {record.name} already exists in network {network.name}"
                )
            if record.state.status in ("running", "paused"):
                await self._attach(record, network, endpoint_config)
            stored[network.name] = endpoint_config
            record.network_settings.setdefault("Networks", {}).setdefault(
                network.name, _blank_endpoint(network.id)
            )
            self.mgr.store.save(record)
        return record.id

    async def _attach(
        self, record: ContainerRecord, network: NetworkRecord, cfg: Mapping[str, Any]
    ) -> None:
        path = self.networks.netns_path(record.id)
        ipam = cfg.get("IPAMConfig") or {}
        await asyncio.to_thread(
            self.networks.attach, record.id, path, network.id,
            tuple(cfg.get("Aliases") or ()), str(ipam.get("IPv4Address") or ""),
            str(cfg.get("MacAddress") or ""), ipv6_address=str(ipam.get("IPv6Address") or ""),
            name="/" + record.name,
        )  # fmt: skip
        settings, pairs = await asyncio.to_thread(self._state, record, str(path))
        await self.dns.network_added(record, pairs, str(path))
        record.network_settings.update(settings)

    async def disconnect_network(self, container: str, network: NetworkRecord, force: bool) -> str:
        """Disconnect now if running; forget the network for the next start."""
        record = self.mgr.get(container)
        async with self.mgr.live_of(record).lock:
            stored = record.networking_config.setdefault("EndpointsConfig", {})
            names = {k for k in stored if k in (network.name, network.id)}
            running = record.state.status in ("running", "paused")
            attached = running and any(
                rec.id == network.id for rec, _ in self.networks.endpoints(record.id)
            )
            mode = str(record.host_config.get("NetworkMode") or "default")
            if not names and not attached:
                if primary_network(mode) in (network.name, network.id) and not running:
                    raise Conflict(f"container {record.name} is stopped: its network mode "
                                   f"{network.name} is re-joined at its next start")  # fmt: skip
                raise NotFound(f"container {record.id[:12]} is not connected to the "
                               f"network {network.name}")  # fmt: skip
            if attached:
                await asyncio.to_thread(self.networks.detach, record.id, network.id)
                pairs = await asyncio.to_thread(self.networks.endpoints, record.id)
                await self.dns.network_removed(record, network.name, pairs)
                path = str(self.networks.netns_path(record.id))
                settings, _ = await asyncio.to_thread(self._state, record, path)
                record.network_settings.update(settings)
            for name in names:
                del stored[name]
            if network.name in (record.network_settings.get("Networks") or {}) and not running:
                del record.network_settings["Networks"][network.name]
            self.mgr.store.save(record)
        return record.id


async def setup_networking(ctx: EngineContext, mgr: ContainerManager, runner: Runner) -> None:
    """Start the embedded DNS and plug the wiring into the runner and the networks routes.

    Call before the manager's own cleanup is registered: the resolver then closes after
    the containers have stopped.
    """
    networks = ctx.services.get("networks")
    if networks is None:
        return  # no networks component: containers keep the private-namespace behaviour
    from pycompose.netns.dns import DnsService

    service = DnsService(upstreams=upstreams_from_env())
    ctx.cleanup.push_async_callback(service.aclose)
    wiring = ContainerNetworking(mgr, networks, DnsWiring(service))
    ctx.services["dns"] = service
    ctx.services["network_connector"] = wiring
    runner.network = wiring


__all__ = ["ContainerNetworking", "Wired", "endpoints_config", "setup_networking"]
