"""Address management: subnets for networks and addresses for endpoints (pure functions).

Subnets come from the engine's pool, skipping every subnet already routed on the host (a
Docker daemon's 172.17.0.0/16 included) and those of our other networks; or the user gives
one, with an optional gateway and ``ip_range``. IPv6 subnets, when not given, are /64s of a
unique-local /48 derived from the engine's bridge prefix, so two engines pick different ones.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pycompose.engine.errors import Conflict, InvalidArgument

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class SubnetConfig:
    """One IPAM pool of a network: subnet, gateway and the range endpoints are drawn from."""

    subnet: str
    gateway: str
    ip_range: str = ""
    aux_addresses: tuple[tuple[str, str], ...] = ()

    @property
    def network(self) -> IPNetwork:
        """The subnet as an ``ipaddress`` network."""
        return ipaddress.ip_network(self.subnet)

    @property
    def version(self) -> int:
        """4 or 6."""
        return self.network.version

    def to_docker(self) -> dict[str, Any]:
        """Docker's ``IPAM.Config[]`` entry."""
        out: dict[str, Any] = {"Subnet": self.subnet, "Gateway": self.gateway}
        if self.ip_range:
            out["IPRange"] = self.ip_range
        if self.aux_addresses:
            out["AuxiliaryAddresses"] = dict(self.aux_addresses)
        return out

    @classmethod
    def from_docker(cls, entry: Mapping[str, Any]) -> SubnetConfig:
        """Read back what ``to_docker`` wrote (already validated)."""
        aux = entry.get("AuxiliaryAddresses") or {}
        return cls(
            str(entry["Subnet"]),
            str(entry["Gateway"]),
            str(entry.get("IPRange") or ""),
            tuple(sorted(aux.items())),
        )


def _network(value: str, what: str) -> IPNetwork:
    try:
        return ipaddress.ip_network(value, strict=True)
    except ValueError as err:
        raise InvalidArgument(f"invalid {what} {value!r}: {err}") from err


def _address(value: str, what: str) -> IPAddress:
    try:
        return ipaddress.ip_address(value)
    except ValueError as err:
        raise InvalidArgument(f"invalid {what} {value!r}: not an IP address") from err


def _host_ip(net: IPNetwork, index: int) -> IPAddress:
    return net.network_address + index


def _taken_networks(taken: Iterable[str]) -> list[IPNetwork]:
    out: list[IPNetwork] = []
    for cidr in taken:
        net = ipaddress.ip_network(cidr, strict=False)
        if net.prefixlen:  # a default route overlaps everything and says nothing
            out.append(net)
    return out


def choose_subnet(pools: Sequence[str], size: int, taken: Iterable[str]) -> str:
    """The first ``/size`` subnet of ``pools`` overlapping none of ``taken``."""
    busy = [n for n in _taken_networks(taken) if n.version == 4]
    for pool in pools:
        for candidate in ipaddress.IPv4Network(pool).subnets(new_prefix=size):
            if not any(candidate.overlaps(b) for b in busy):
                return str(candidate)
    raise Conflict(
        f"all predefined address pools have been fully subnetted ({', '.join(pools)} /{size})"
    )


def ula_prefix(seed: str) -> ipaddress.IPv6Network:
    """A unique-local /48 (fdxx:xxxx:xxxx::/48) derived from ``seed``."""
    digest = hashlib.sha256(seed.encode()).digest()
    return ipaddress.IPv6Network((b"\xfd" + digest[:5] + bytes(10), 48))


def choose_subnet6(seed: str, taken: Iterable[str]) -> str:
    """A free /64 of the ULA /48 for ``seed``."""
    busy = [n for n in _taken_networks(taken) if n.version == 6]
    for candidate in ula_prefix(seed).subnets(new_prefix=64):
        if not any(candidate.overlaps(b) for b in busy):
            return str(candidate)
    raise Conflict("no free IPv6 /64 left in the engine's unique-local prefix")


def make_config(
    subnet: str, gateway: str = "", ip_range: str = "", aux: Mapping[str, str] | None = None
) -> SubnetConfig:
    """Validate a user's (or chosen) subnet, gateway, ip_range and auxiliary addresses."""
    net = _network(subnet, "subnet")
    if net.num_addresses < 4:
        raise InvalidArgument(f"subnet {subnet} is too small for a network")
    if ip_range:
        rng = _network(ip_range, "ip_range")
        if not rng.subnet_of(net):  # type: ignore[arg-type]
            raise InvalidArgument(f"ip_range {ip_range} is not inside subnet {subnet}")
    gw = _address(gateway, "gateway") if gateway else _host_ip(net, 1)
    if gw not in net or gw in (net.network_address, net.broadcast_address):
        raise InvalidArgument(f"gateway {gw} is not a usable address of subnet {subnet}")
    aux_pairs: list[tuple[str, str]] = []
    for name, value in (aux or {}).items():
        ip = _address(str(value), f"auxiliary address {name}")
        if ip not in net:
            raise InvalidArgument(f"auxiliary address {name}={ip} is not inside subnet {subnet}")
        aux_pairs.append((str(name), str(ip)))
    return SubnetConfig(str(net), str(gw), ip_range, tuple(sorted(aux_pairs)))


def reserved(config: SubnetConfig) -> set[IPAddress]:
    """Addresses no endpoint may get: network, broadcast, gateway, auxiliary addresses."""
    net = config.network
    out: set[IPAddress] = {net.network_address, ipaddress.ip_address(config.gateway)}
    if net.version == 4:
        out.add(net.broadcast_address)
    out.update(ipaddress.ip_address(ip) for _, ip in config.aux_addresses)
    return out


def allocate(config: SubnetConfig, used: Collection[str], requested: str = "") -> str:
    """An address for an endpoint: ``requested`` if free, else the lowest free of the range.

    ``used`` are addresses other endpoints hold. Returns the bare address.
    """
    net = config.network
    busy = reserved(config) | {ipaddress.ip_address(u) for u in used}
    if requested:
        ip = _address(requested, "address")
        if ip not in net:
            raise InvalidArgument(f"address {ip} is not inside subnet {config.subnet}")
        if ip in busy:
            raise Conflict(f"Address already in use: {ip} on subnet {config.subnet}")
        return str(ip)
    pool = ipaddress.ip_network(config.ip_range) if config.ip_range else net
    # Walk lazily: a /64 has far too many hosts to list.
    limit = min(pool.num_addresses, 1 << 20)
    for offset in range(limit):
        ip = pool.network_address + offset
        if ip not in busy and ip in net:
            return str(ip)
    raise Conflict(f"no available IPv{net.version} addresses on subnet {config.subnet}")


def with_prefix(config: SubnetConfig, address: str) -> str:
    """``10.1.2.3`` -> ``10.1.2.3/24`` for this subnet."""
    return f"{address}/{config.network.prefixlen}"


def mac_for(address: str) -> str:
    """Docker's MAC for an IPv4 endpoint: 02:42 followed by the address bytes."""
    packed = ipaddress.IPv4Address(address).packed
    return "02:42:" + ":".join(f"{b:02x}" for b in packed)


def check_mac(mac: str) -> str:
    """Validate a unicast MAC address, returned lowercase."""
    parts = mac.split(":")
    try:
        ok = len(parts) == 6 and all(len(p) == 2 for p in parts) and not int(parts[0], 16) & 1
    except ValueError:
        ok = False
    if not ok:
        raise InvalidArgument(f"invalid MAC address {mac!r}: expected six hex pairs, unicast")
    return mac.lower()
