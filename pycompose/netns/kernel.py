"""The kernel as the networking layer sees it: links, namespaces, routes, sysctls, nftables.

``Kernel`` is the narrow interface; ``LinuxKernel`` does it with pyroute2 (netlink) and the
``nft`` binary (JSON); ``FakeKernel`` records every call and keeps just enough state (links,
namespace files, tables) for unit tests to assert on what the manager did.
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pycompose.netns import netnsfs
from pycompose.netns.errors import NetworkError


@dataclass(frozen=True)
class VethSpec:
    """One endpoint: a veth pair from ``bridge`` into the namespace at ``netns_path``.

    ``addresses`` are CIDRs given to ``ifname`` inside; ``gateways`` become default routes
    (none on internal networks).
    """

    host_name: str
    bridge: str
    netns_path: str
    ifname: str
    mac: str
    addresses: tuple[str, ...]
    gateways: tuple[str, ...] = ()
    mtu: int = 1500


class Kernel(Protocol):
    """What the networking layer needs from the host kernel."""

    def routed_networks(self) -> list[str]:
        """Destinations (CIDR) of every route in the host's main tables, IPv4 and IPv6."""
        ...

    def link_names(self) -> list[str]:
        """Names of every link in the host namespace."""
        ...

    def link_exists(self, name: str) -> bool:
        """True if the host namespace has a link called ``name`` (one lookup, no dump)."""
        ...

    def add_bridge(self, name: str, addresses: Sequence[str], mtu: int = 1500) -> None:
        """Create bridge ``name`` (accept_ra=0, route_localnet=1), give it ``addresses``, up."""
        ...

    def delete_link(self, name: str) -> bool:
        """Delete a link of the host namespace; False if it did not exist."""
        ...

    def add_veth(self, spec: VethSpec) -> None:
        """Create and configure the veth pair of ``spec``."""
        ...

    def create_netns(self, path: Path) -> None:
        """Create a namespace file."""
        ...

    def delete_netns(self, path: Path) -> bool:
        """Remove a namespace file; False if it did not exist."""
        ...

    def netns_in_use(self, paths: list[Path]) -> set[str]:
        """Names of the namespace files that some process is running in."""
        ...

    def nft(self, commands: list[dict[str, Any]]) -> None:
        """Apply nftables JSON commands in one transaction."""
        ...

    def nft_tables(self) -> list[tuple[str, str]]:
        """``(family, name)`` of every nftables table."""
        ...

    def nft_chains(self) -> dict[str, Any]:
        """``nft -j list chains``: every chain of every table."""
        ...


def _netlink_error(what: str, err: Exception) -> NetworkError:
    return NetworkError(f"{what}: {err}")


def _write_sysctl(path: str, value: str) -> None:
    try:
        with open(path, "w") as f:
            f.write(value)
    except FileNotFoundError:
        pass  # e.g. IPv6 disabled on the host: there is no such knob to set
    except OSError as err:
        raise NetworkError(f"cannot set {path} to {value}: {err}") from err


def random_mac() -> str:
    """A random locally administered unicast MAC."""
    raw = bytearray(os.urandom(6))
    raw[0] = (raw[0] & 0xFC) | 0x02
    return ":".join(f"{b:02x}" for b in raw)


def forward_blockers(ruleset: dict[str, Any], own_table: str) -> list[str]:
    """Base chains of other tables on the forward hook whose policy drops (Docker's
    iptables FORWARD chain, a host firewall): they drop our containers' forwarded traffic
    whatever our own table accepts."""
    out = []
    for item in ruleset.get("nftables", []):
        chain = item.get("chain")
        if not chain or chain.get("table") == own_table:
            continue
        if chain.get("hook") == "forward" and chain.get("policy") == "drop":
            out.append(f"table {chain['family']} {chain['table']} chain {chain['name']}")
    return out


def _split_cidr(cidr: str) -> tuple[str, int, int]:
    iface = ipaddress.ip_interface(cidr)
    family = 10 if iface.version == 6 else 2
    return str(iface.ip), iface.network.prefixlen, family


class LinuxKernel:
    """The real thing: pyroute2 in the host namespace and on helper threads, ``nft -j``."""

    def __init__(self, nft_binary: str = "nft") -> None:
        self.nft_binary = nft_binary

    def _ipr(self) -> Any:
        from pyroute2 import IPRoute

        return IPRoute()

    def routed_networks(self) -> list[str]:
        out: list[str] = []
        with self._ipr() as ipr:
            for family in (2, 10):
                for route in ipr.get_routes(family=family, table=254):
                    dst = route.get("RTA_DST")
                    if dst:
                        out.append(f"{dst}/{route['dst_len']}")
        return out

    def link_names(self) -> list[str]:
        with self._ipr() as ipr:
            return [str(link.get("IFLA_IFNAME")) for link in ipr.get_links()]

    def link_exists(self, name: str) -> bool:
        with self._ipr() as ipr:
            return bool(ipr.link_lookup(ifname=name))

    def add_bridge(self, name: str, addresses: Sequence[str], mtu: int = 1500) -> None:
        from pyroute2.netlink.exceptions import NetlinkError

        try:
            with self._ipr() as ipr:
                # A MAC of its own: otherwise the bridge takes the lowest of its ports' and
                # changes it as containers come and go (stale ARP entries in containers).
                ipr.link("add", ifname=name, kind="bridge", mtu=mtu, address=random_mac())
                _write_sysctl(f"/proc/sys/net/ipv6/conf/{name}/accept_ra", "0")
                # DNAT of connections to 127.0.0.1 must be routable out of the bridge.
                _write_sysctl(f"/proc/sys/net/ipv4/conf/{name}/route_localnet", "1")
                index = ipr.link_lookup(ifname=name)[0]
                for cidr in addresses:
                    _add_address(ipr, index, cidr)
                ipr.link("set", index=index, state="up")
        except NetlinkError as err:
            raise _netlink_error(f"cannot create bridge {name}", err) from err

    def delete_link(self, name: str) -> bool:
        from pyroute2.netlink.exceptions import NetlinkError

        try:
            with self._ipr() as ipr:
                ipr.link("del", ifname=name)
            return True
        except NetlinkError as err:
            if err.code == 19:  # ENODEV
                return False
            raise _netlink_error(f"cannot delete link {name}", err) from err

    def add_veth(self, spec: VethSpec) -> None:
        from pyroute2.netlink.exceptions import NetlinkError

        fd = os.open(spec.netns_path, os.O_RDONLY)
        try:
            with self._ipr() as ipr:
                peer = {"ifname": spec.ifname, "net_ns_fd": fd, "mtu": spec.mtu}
                if spec.mac:
                    peer["address"] = spec.mac
                ipr.link("add", ifname=spec.host_name, kind="veth", mtu=spec.mtu, peer=peer)
                master = ipr.link_lookup(ifname=spec.bridge)[0]
                index = ipr.link_lookup(ifname=spec.host_name)[0]
                _write_sysctl(f"/proc/sys/net/ipv6/conf/{spec.host_name}/accept_ra", "0")
                ipr.link("set", index=index, master=master)
                # A container reaching its own published port through a host address comes
                # back in on the port it left by (bridged DNAT): needs hairpin mode.
                _write_sysctl(f"/sys/class/net/{spec.host_name}/brport/hairpin_mode", "1")
                ipr.link("set", index=index, state="up")
            netnsfs.run_in_netns(spec.netns_path, lambda: _configure_inside(spec))
        except (NetlinkError, OSError) as err:
            self.delete_link(spec.host_name)
            raise _netlink_error(f"cannot connect {spec.netns_path} to {spec.bridge}", err) from err
        finally:
            os.close(fd)

    def create_netns(self, path: Path) -> None:
        netnsfs.create_netns(path)

    def delete_netns(self, path: Path) -> bool:
        return netnsfs.delete_netns(path)

    def netns_in_use(self, paths: list[Path]) -> set[str]:
        return netnsfs.namespaces_in_use(paths)

    def _run_nft(self, args: list[str], stdin: str | None = None) -> str:
        try:
            proc = subprocess.run(
                [self.nft_binary, *args], input=stdin, capture_output=True, text=True, check=False
            )
        except FileNotFoundError as err:
            raise NetworkError(f"{self.nft_binary} not found: install nftables") from err
        if proc.returncode != 0:
            raise NetworkError(f"nft {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc.stdout

    def nft(self, commands: list[dict[str, Any]]) -> None:
        self._run_nft(["-j", "-f", "-"], json.dumps({"nftables": commands}))

    def nft_chains(self) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(self._run_nft(["-j", "list", "chains"]) or "{}")
        return doc

    def nft_tables(self) -> list[tuple[str, str]]:
        doc = json.loads(self._run_nft(["-j", "list", "tables"]) or '{"nftables": []}')
        return [
            (item["table"]["family"], item["table"]["name"])
            for item in doc.get("nftables", [])
            if "table" in item
        ]


_IFA_F_NODAD = 0x02


def _add_address(ipr: Any, index: int, cidr: str) -> None:
    """Add an address; IPv6 ones skip duplicate address detection (usable at once, and the
    engine's IPAM already guarantees uniqueness)."""
    ip, plen, family = _split_cidr(cidr)
    if family == 10:
        ipr.addr("add", index=index, address=ip, prefixlen=plen, family=family, flags=_IFA_F_NODAD)
    else:
        ipr.addr("add", index=index, address=ip, prefixlen=plen, family=family)


def _configure_inside(spec: VethSpec) -> None:
    """Addresses, link up and default routes, run inside the container's namespace."""
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        index = ipr.link_lookup(ifname=spec.ifname)[0]
        for cidr in spec.addresses:
            _add_address(ipr, index, cidr)
        ipr.link("set", index=index, state="up")
        for gateway in spec.gateways:
            family = 10 if ":" in gateway else 2
            dst = "::/0" if family == 10 else "0.0.0.0/0"
            ipr.route("replace", dst=dst, gateway=gateway, oif=index, family=family)


@dataclass
class FakeKernel:
    """A recording kernel: ``calls`` lists ``(method, args...)``; state is kept in memory."""

    routes: list[str] = field(default_factory=list)
    links: dict[str, str] = field(default_factory=dict)  # name -> kind ("bridge", "veth")
    namespaces: dict[str, dict[str, VethSpec]] = field(default_factory=dict)
    tables: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    chains: list[dict[str, Any]] = field(default_factory=list)  # other tables' chains
    busy: set[str] = field(default_factory=set)  # namespace file names with a live process
    calls: list[tuple[Any, ...]] = field(default_factory=list)
    fail: Callable[[str], Exception | None] = field(default=lambda op: None)

    def _record(self, *call: Any) -> None:
        self.calls.append(call)
        err = self.fail(str(call[0]))
        if err is not None:
            raise err

    def routed_networks(self) -> list[str]:
        return list(self.routes)

    def link_names(self) -> list[str]:
        return ["lo", *self.links]

    def link_exists(self, name: str) -> bool:
        return name == "lo" or name in self.links

    def add_bridge(self, name: str, addresses: Sequence[str], mtu: int = 1500) -> None:
        self._record("add_bridge", name, tuple(addresses))
        if name in self.links:
            raise NetworkError(f"cannot create bridge {name}: File exists")
        self.links[name] = "bridge"
        self.routes += [str(ipaddress.ip_interface(a).network) for a in addresses]

    def delete_link(self, name: str) -> bool:
        self._record("delete_link", name)
        kind = self.links.pop(name, None)
        if kind == "veth":
            for ns in self.namespaces.values():
                for ifname, spec in list(ns.items()):
                    if spec.host_name == name:
                        del ns[ifname]
        return kind is not None

    def add_veth(self, spec: VethSpec) -> None:
        self._record("add_veth", spec)
        if spec.netns_path not in self.namespaces:
            raise NetworkError(f"no namespace {spec.netns_path}")
        if self.links.get(spec.bridge) != "bridge":
            raise NetworkError(f"no bridge {spec.bridge}")
        self.links[spec.host_name] = "veth"
        self.namespaces[spec.netns_path][spec.ifname] = spec

    def create_netns(self, path: Path) -> None:
        self._record("create_netns", str(path))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()  # the file is real so that directory scans (gc) see it
        self.namespaces[str(path)] = {}

    def delete_netns(self, path: Path) -> bool:
        self._record("delete_netns", str(path))
        path.unlink(missing_ok=True)
        ns = self.namespaces.pop(str(path), None)
        if ns is None:
            return False
        for spec in ns.values():
            self.links.pop(spec.host_name, None)
        return True

    def netns_in_use(self, paths: list[Path]) -> set[str]:
        return {p.name for p in paths if p.name in self.busy}

    def nft(self, commands: list[dict[str, Any]]) -> None:
        self._record("nft", commands)
        for command in commands:
            verb, obj = next(iter(command.items()))
            if "table" in obj:
                key = (obj["table"]["family"], obj["table"]["name"])
                if verb == "delete":
                    self.tables.pop(key, None)
                elif verb == "add":
                    self.tables.setdefault(key, [])
            elif verb == "add":
                body = next(iter(obj.values()))
                self.tables.setdefault((body["family"], body["table"]), []).append(command)

    def nft_tables(self) -> list[tuple[str, str]]:
        return list(self.tables)

    def nft_chains(self) -> dict[str, Any]:
        return {"nftables": [{"chain": c} for c in self.chains]}
