"""NetworkManager: networks, container endpoints and published ports of one engine.

The containers component calls, per container (all blocking; run them in a worker thread):

    path = manager.create_netns(cid)                     # <runtime>/netns/<cid>
    ep = manager.attach(cid, path, "mynet", aliases=("web",), name="/proj-web-1")
    bound = manager.publish(cid, [PortBinding(80, "tcp", "", 8080)])   # host ports resolved
    ...
    manager.unpublish(cid); manager.detach_all(cid); manager.remove_netns(cid)
    manager.release_container(cid)   # instead, once no process is left in the namespace

``release_container`` is the quick way out for a container that exited: deleting a veth
waits for the kernel's RCU grace periods (16-40 ms measured here, on every exit), while
dropping the namespace's last reference lets the kernel delete the namespace and its veth
pairs on its own, in the background. Until such a pair is gone its addresses stay taken
(``_draining``), so a new container never gets an address a dying interface still holds.

At daemon start ``gc(live_container_ids)`` removes what a crashed daemon left behind; at
shutdown ``close()`` removes bridges nobody uses and, when no endpoint is left, our table.
"""

from __future__ import annotations

import contextlib
import datetime
import secrets
import threading
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pycompose.engine.config import EngineConfig
from pycompose.engine.errors import Conflict, InvalidArgument, NotFound
from pycompose.netns import ipam, nat
from pycompose.netns.bridge import ensure_bridge, is_bridge_name
from pycompose.netns.kernel import Kernel, VethSpec
from pycompose.netns.networks import NetworkSpec, make_record
from pycompose.netns.ports import PortBinding, Reserver, find_holder, reserve_port
from pycompose.netns.publish import PortTable, Proxier
from pycompose.netns.records import (
    DRIVER_BRIDGE,
    PREDEFINED,
    Endpoint,
    NetworkRecord,
    NetworkStore,
)
from pycompose.netns.userproxy import UserProxy
from pycompose.netns.veth import is_veth_name, next_ifname, veth_name

Listener = Callable[[str, Endpoint], None]


@dataclass(frozen=True)
class GcReport:
    """What ``gc`` removed."""

    links: tuple[str, ...] = ()
    namespaces: tuple[str, ...] = ()
    endpoints: tuple[str, ...] = ()


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z")


class NetworkManager:
    """Owns ``<root>/networks``, the bridges, veths and netns files, and our nft table."""

    def __init__(
        self,
        config: EngineConfig,
        kernel: Kernel,
        *,
        reserver: Reserver = reserve_port,
        holder: Callable[[str, str, int], str | None] = find_holder,
        proxier: Proxier | None = None,
    ) -> None:
        self.config = config
        self.kernel = kernel
        self.prefix = config.bridge_prefix
        self.netns_dir = config.runtime_dir / "netns"
        # Ports on ::1 (no DNAT for IPv6 loopback) go through the userland proxy.
        self.ports = PortTable(reserver, holder, proxier or UserProxy().start)
        self._store = NetworkStore(config.root / "networks")
        self._lock = threading.RLock()
        self._networks: dict[str, NetworkRecord] = {r.id: r for r in self._store.load_all()}
        # Bridges known to exist, and the nft commands last applied: attach and detach then
        # need no link dump and no nft run when nothing about the table changes.
        links = set(kernel.link_names())
        self._up = {r.bridge for r in self._networks.values() if r.bridge in links}
        self._applied: list[dict[str, Any]] | None = None
        # Released endpoints whose veth the kernel is still deleting: network id -> {host
        # veth: its addresses}.
        self._draining: dict[str, dict[str, tuple[str, ...]]] = {}
        self.listeners: list[Listener] = []
        self._ensure_predefined()

    # -- networks -----------------------------------------------------------------------------

    def _ensure_predefined(self) -> None:
        for name, driver in PREDEFINED.items():
            if any(r.name == name and r.predefined for r in self._networks.values()):
                continue
            spec = NetworkSpec(name=name, driver=driver)
            record = self._make(spec, predefined=True)
            self._networks[record.id] = record
            self._store.save(record)

    def _make(self, spec: NetworkSpec, *, predefined: bool = False) -> NetworkRecord:
        taken = [c.subnet for r in self._networks.values() for c in r.ipam]
        if spec.driver == DRIVER_BRIDGE and not spec.subnets(4):
            taken += self.kernel.routed_networks()
        return make_record(
            spec, secrets.token_hex(32), _now(), self.config, taken, predefined=predefined
        )

    def create(self, spec: NetworkSpec) -> NetworkRecord:
        """Create a network and its bridge; a taken name is a Conflict."""
        with self._lock:
            if any(r.name == spec.name for r in self._networks.values()):
                raise Conflict(f"network with name {spec.name} already exists")
            record = self._make(spec)
            if record.bridge:
                self._bring_up(record)
            self._networks[record.id] = record
            self._store.save(record)
            self._sync_nat()
            return record

    def _bring_up(self, record: NetworkRecord) -> None:
        if record.bridge in self._up:
            return
        addresses = [f"{c.gateway}/{c.network.prefixlen}" for c in record.ipam]
        ensure_bridge(self.kernel, record.bridge, addresses, record.mtu)
        self._up.add(record.bridge)

    def _bring_down(self, bridge: str) -> None:
        self.kernel.delete_link(bridge)
        self._up.discard(bridge)

    def get(self, name_or_id: str) -> NetworkRecord:
        """By full id, exact name, or unique id prefix (Docker's order)."""
        with self._lock:
            if name_or_id in self._networks:
                return self._networks[name_or_id]
            by_name = [r for r in self._networks.values() if r.name == name_or_id]
            if by_name:
                return by_name[0]
            by_prefix = [r for r in self._networks.values() if r.id.startswith(name_or_id)]
            if len(by_prefix) == 1 and name_or_id:
                return by_prefix[0]
            if len(by_prefix) > 1:
                raise InvalidArgument(
                    f"network {name_or_id} is ambiguous ({len(by_prefix)} matches)"
                )
            raise NotFound(f"network {name_or_id} not found")

    def networks(self) -> list[NetworkRecord]:
        """Every network, predefined ones included."""
        with self._lock:
            return sorted(self._networks.values(), key=lambda r: (r.created, r.name))

    def delete(self, name_or_id: str) -> None:
        """Remove a network that has no endpoints; predefined ones cannot be removed."""
        with self._lock:
            record = self.get(name_or_id)
            if record.predefined:
                raise InvalidArgument(
                    f"{record.name} is a pre-defined network and cannot be removed"
                )
            if record.endpoints:
                raise Conflict(
                    f"error while removing network: network {record.name} id {record.id} "
                    "has active endpoints"
                )
            if record.bridge:
                self._bring_down(record.bridge)
            del self._networks[record.id]
            self._store.delete(record.id)
            self._sync_nat()

    def prune(self, keep: Callable[[NetworkRecord], bool] = lambda r: False) -> list[str]:
        """Remove unused user networks (those ``keep`` does not protect); their names."""
        removed = []
        with self._lock:
            for record in self.networks():
                if record.predefined or record.endpoints or keep(record):
                    continue
                self.delete(record.id)
                removed.append(record.name)
        return removed

    # -- namespaces ---------------------------------------------------------------------------

    def netns_path(self, container_id: str) -> Path:
        """Where a container's namespace file lives."""
        if not container_id or "/" in container_id or container_id.startswith("."):
            raise InvalidArgument(f"invalid container id {container_id!r}")
        return self.netns_dir / container_id

    def create_netns(self, container_id: str) -> Path:
        """Create a container's network namespace (loopback up); returns its path."""
        path = self.netns_path(container_id)
        self.kernel.create_netns(path)
        return path

    def remove_netns(self, container_id: str) -> bool:
        """Remove a container's namespace file (after ``detach_all``)."""
        return self.kernel.delete_netns(self.netns_path(container_id))

    # -- endpoints ----------------------------------------------------------------------------

    def endpoints(self, container_id: str) -> list[tuple[NetworkRecord, Endpoint]]:
        """The container's endpoints, in the order they were attached (eth0 first)."""
        with self._lock:
            pairs = [
                (r, r.endpoints[container_id])
                for r in self._networks.values()
                if container_id in r.endpoints
            ]
        return sorted(pairs, key=lambda p: int(p[1].ifname[3:] or 0))

    def rename_container(
        self, container_id: str, name: str
    ) -> list[tuple[NetworkRecord, Endpoint]]:
        """Record a renamed container's new name on its endpoints (as network inspect's
        ``Containers`` shows it); returns its endpoints."""
        with self._lock:
            for record in self._networks.values():
                ep = record.endpoints.get(container_id)
                if ep is not None and ep.container_name != name:
                    ep.container_name = name
                    self._store.save(record)
        return self.endpoints(container_id)

    def attach(
        self,
        container_id: str,
        netns_path: str | Path,
        network: str,
        aliases: Sequence[str] = (),
        ipv4_address: str = "",
        mac: str = "",
        *,
        ipv6_address: str = "",
        name: str = "",
    ) -> Endpoint:
        """Connect a container's namespace to a bridge network; returns the endpoint."""
        with self._lock:
            record = self.get(network)
            if record.driver != DRIVER_BRIDGE:
                raise InvalidArgument(
                    f"container cannot be connected to network {record.name} "
                    f"(driver {record.driver}): use it as the network mode instead"
                )
            if container_id in record.endpoints:
                raise Conflict(
                    f"endpoint with name {name.lstrip('/') or container_id[:12]} "
                    f"already exists in network {record.name}"
                )
            if (ipv4_address or ipv6_address) and not record.ipam_user:
                raise InvalidArgument(
                    "user specified IP address is supported only when connecting to "
                    "networks with user configured subnets"
                )
            endpoint = self._plan_endpoint(
                record, container_id, str(netns_path), aliases, ipv4_address, ipv6_address,
                mac, name,
            )  # fmt: skip
            self._bring_up(record)
            self.kernel.add_veth(self._veth_spec(endpoint))
            record.endpoints[container_id] = endpoint
            self._store.save(record)
            self._sync_nat()
        self._notify("attach", endpoint)
        return endpoint

    def _plan_endpoint(
        self,
        record: NetworkRecord,
        container_id: str,
        netns_path: str,
        aliases: Sequence[str],
        want4: str,
        want6: str,
        mac: str,
        name: str,
    ) -> Endpoint:
        mine = [ep for _, ep in self.endpoints(container_id)]
        endpoint_id = secrets.token_hex(32)
        ep = Endpoint(
            endpoint_id=endpoint_id, network_id=record.id, container_id=container_id,
            container_name=name, ifname=next_ifname({e.ifname for e in mine}),
            host_veth=veth_name(self.prefix, endpoint_id[:8]), netns_path=netns_path, mac="",
            aliases=tuple(dict.fromkeys(a for a in aliases if a)),
            ipv4_requested=want4, ipv6_requested=want6,
            default_route=not record.internal and not any(e.default_route for e in mine),
        )  # fmt: skip
        v4, v6 = record.subnet(4), record.subnet(6)
        draining = [ip for ips in self._still_draining(record.id).values() for ip in ips]
        if v4 is not None:
            used = [e.ipv4 for e in record.endpoints.values()] + draining
            ep.ipv4 = ipam.allocate(v4, used, want4)
            ep.ipv4_prefix, ep.gateway = v4.network.prefixlen, v4.gateway
        if v6 is not None:
            used6 = [e.ipv6 for e in record.endpoints.values()] + draining
            ep.ipv6 = ipam.allocate(v6, used6, want6)
            ep.ipv6_prefix, ep.gateway6 = v6.network.prefixlen, v6.gateway
        elif want6:
            raise InvalidArgument(f"network {record.name} has no IPv6 subnet for {want6}")
        ep.mac = ipam.check_mac(mac) if mac else ipam.mac_for(ep.ipv4 or "0.0.0.0")
        if not mac and not ep.ipv4:
            ep.mac = "02:42:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(4))
        return ep

    def _veth_spec(self, ep: Endpoint) -> VethSpec:
        record = self._networks[ep.network_id]
        addresses = tuple(
            f"{ip}/{plen}" for ip, plen in ((ep.ipv4, ep.ipv4_prefix), (ep.ipv6, ep.ipv6_prefix))
            if ip
        )  # fmt: skip
        gateways = tuple(g for g in (ep.gateway, ep.gateway6) if g) if ep.default_route else ()
        return VethSpec(ep.host_veth, record.bridge, ep.netns_path, ep.ifname, ep.mac,
                        addresses, gateways, record.mtu)  # fmt: skip

    def detach(self, container_id: str, network: str) -> None:
        """Disconnect a container from one network (its ports there are unpublished)."""
        with self._lock:
            record = self.get(network)
            ep = record.endpoints.get(container_id)
            if ep is None:
                raise NotFound(f"container {container_id[:12]} is not connected to {record.name}")
            # Deleting the host end (no namespace switch) takes the container's end with it.
            self.kernel.delete_link(ep.host_veth)
            del record.endpoints[container_id]
            self._store.save(record)
            self.ports.drop_rules_to(container_id, (ep.ipv4, ep.ipv6))
            self._sync_nat()
        self._notify("detach", ep)

    def detach_all(self, container_id: str) -> None:
        """Disconnect a container from every network it is on."""
        for record, _ in self.endpoints(container_id):
            self.detach(container_id, record.id)

    def release_container(self, container_id: str) -> None:
        """Unpublish, detach and drop the namespace of a container none of whose processes
        is left in it, leaving the kernel to delete the veths (see the module docstring)."""
        with self._lock:
            self.ports.unpublish(container_id)
            pairs = self.endpoints(container_id)
            for record, ep in pairs:
                del record.endpoints[container_id]
                self._store.save(record)
                self.ports.drop_rules_to(container_id, (ep.ipv4, ep.ipv6))
                ips = tuple(ip for ip in (ep.ipv4, ep.ipv6) if ip)
                self._draining.setdefault(record.id, {})[ep.host_veth] = ips
            self._sync_nat()
            self.remove_netns(container_id)
        for _, ep in pairs:
            self._notify("detach", ep)

    def _still_draining(self, network_id: str) -> dict[str, tuple[str, ...]]:
        """The released veths of a network the kernel has not deleted yet."""
        veths = self._draining.get(network_id, {})
        for name in [n for n in veths if not self.kernel.link_exists(n)]:
            del veths[name]
        return veths

    def wait_drained(self, timeout: float = 5.0) -> list[str]:
        """Wait until the kernel has deleted every released veth; returns those left."""
        import time

        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                left = [n for nid in list(self._draining) for n in self._still_draining(nid)]
            if not left or time.monotonic() >= deadline:
                return left
            time.sleep(0.01)

    def _notify(self, event: str, endpoint: Endpoint) -> None:
        for listener in list(self.listeners):
            listener(event, endpoint)

    # -- published ports ----------------------------------------------------------------------

    def publish(self, container_id: str, ports: Iterable[PortBinding]) -> list[PortBinding]:
        """DNAT host ports to the container; returns the bindings with host ports resolved.

        Every port is checked (and reserved) before any rule is written: a port held by one
        of our containers or by a host process raises ``PortInUse`` naming the holder, and
        nothing of this call is left behind. The target is the container's first endpoint
        on a non-internal network.
        """
        with self._lock:
            wanted = list(ports)
            target = next(
                (ep for rec, ep in self.endpoints(container_id) if not rec.internal), None
            )
            if target is None:
                if not wanted:
                    return []
                raise InvalidArgument(
                    f"container {container_id[:12]} has no bridge network to publish ports on"
                )
            bridge = self._networks[target.network_id].bridge
            bound = self.ports.publish(container_id, wanted, target, bridge)
            self._sync_nat()
            return bound

    def unpublish(self, container_id: str) -> None:
        """Remove a container's published ports (nothing if it had none)."""
        with self._lock:
            if self.ports.unpublish(container_id):
                self._sync_nat()

    def published(self, container_id: str) -> list[PortBinding]:
        """The container's published ports, host ports resolved."""
        with self._lock:
            return self.ports.bindings(container_id)

    # -- nftables, gc and shutdown ------------------------------------------------------------

    def _sync_nat(self) -> None:
        """Make our nft table match the state (removed when no bridge is up)."""
        active = [r for r in self._networks.values() if r.bridge and r.bridge in self._up]
        if active:
            nets = [
                nat.NatNetwork(r.bridge, tuple(c.subnet for c in r.ipam), r.internal, r.masquerade)
                for r in active
            ]
            commands = nat.build_table(self.prefix, nets, self.ports.rules())
        else:
            commands = nat.delete_table(self.prefix)
        if commands != self._applied:
            self.kernel.nft(commands)
            self._applied = commands

    def gc(self, live: Collection[str] = ()) -> GcReport:
        """Remove endpoints, veths, bridges, netns files and rules nobody owns any more."""
        with self._lock:
            dropped = self._drop_dead_endpoints(set(live))
            keep_links = {
                ep.host_veth for r in self._networks.values() for ep in r.endpoints.values()
            }
            keep_links |= {r.bridge for r in self._networks.values() if r.endpoints}
            links = []
            for link in self.kernel.link_names():
                ours = is_veth_name(self.prefix, link) or is_bridge_name(self.prefix, link)
                if ours and link not in keep_links and self.kernel.delete_link(link):
                    self._up.discard(link)
                    links.append(link)
            namespaces = []
            if self.netns_dir.is_dir():
                for path in sorted(self.netns_dir.iterdir()):
                    if path.name not in live and self.kernel.delete_netns(path):
                        namespaces.append(str(path))
            self._sync_nat()
        return GcReport(tuple(links), tuple(namespaces), tuple(dropped))

    def _drop_dead_endpoints(self, live: set[str]) -> list[str]:
        dropped = []
        for record in self._networks.values():
            dead = [cid for cid in record.endpoints if cid not in live]
            for cid in dead:
                dropped.append(record.endpoints.pop(cid).endpoint_id)
            if dead:
                self._store.save(record)
        self.ports.keep_only(live)
        return dropped

    def close(self) -> None:
        """At shutdown: remove bridges without endpoints, our table when nothing is left."""
        self.wait_drained()
        with self._lock:
            for record in self._networks.values():
                if record.bridge and not record.endpoints:
                    self._bring_down(record.bridge)
            self.ports.release_all()
            self._sync_nat()
            with contextlib.suppress(OSError):
                self.netns_dir.rmdir()  # only when empty: containers may still run


def network_filter_match(record: NetworkRecord, filters: Mapping[str, list[str]]) -> bool:
    """Docker's ``GET /networks`` filters: driver, id, label, name, scope, type, dangling."""
    checks: dict[str, Callable[[str], bool]] = {
        "driver": lambda v: record.driver == v,
        "id": lambda v: record.id.startswith(v),
        "name": lambda v: v in record.name,
        "scope": lambda v: v == "local",
        "type": lambda v: (v == "builtin") == record.predefined,
        "label": lambda v: _label_match(record.labels, v),
        "dangling": lambda v: (
            (v.lower() in ("1", "true")) == (not record.endpoints and not record.predefined)
        ),
    }
    for key, values in filters.items():
        check = checks.get(key)
        if check is None:
            raise InvalidArgument(f"invalid filter '{key}'")
        if key == "label":
            if not all(check(v) for v in values):
                return False
        elif not any(check(v) for v in values):
            return False
    return True


def _label_match(labels: Mapping[str, str], expr: str) -> bool:
    key, sep, value = expr.partition("=")
    return key in labels and (not sep or labels[key] == value)
