"""Our nftables table: masquerade, isolation, internal networks and published-port DNAT.

One ``inet`` table per engine, named after its bridge prefix (``pycompose_pc_``), that only
we write. It is rebuilt whole from the manager's state in one transaction (add, delete, add:
atomic, and correct whatever was there before), so there is no rule bookkeeping to get wrong.

Chains and why:
- ``prerouting``/``output`` (nat): DNAT of published ports for traffic from outside and from
  the host itself (127.0.0.1 and the host's addresses; route_localnet on the bridge lets the
  kernel route 127.0.0.1 out of it);
- ``postrouting`` (nat): masquerade outbound traffic of non-internal networks, masquerade
  loopback-sourced DNAT'd traffic (a container cannot answer 127.0.0.1) and hairpin traffic
  (a container reaching a published port of its own network through a host address);
- ``forward`` (filter): internal networks neither leave nor are entered from outside their
  bridge; our networks cannot reach each other.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

FAMILY = "inet"


@dataclass(frozen=True)
class NatNetwork:
    """What NAT needs to know of one network."""

    bridge: str
    subnets: tuple[str, ...]
    internal: bool = False
    masquerade: bool = True


@dataclass(frozen=True)
class PortRule:
    """One published port: host side -> container side."""

    protocol: str
    host_ip: str
    host_port: int
    container_ip: str
    container_port: int
    bridge: str


def table_name(bridge_prefix: str) -> str:
    """``pc-`` -> ``pycompose_pc_``."""
    return "pycompose_" + bridge_prefix.replace("-", "_")


def _match(left: Any, right: Any, op: str = "==") -> dict[str, Any]:
    return {"match": {"op": op, "left": left, "right": right}}


def _meta(key: str) -> dict[str, Any]:
    return {"meta": {"key": key}}


def _ip_field(version: int, field: str) -> dict[str, Any]:
    return {"payload": {"protocol": "ip" if version == 4 else "ip6", "field": field}}


def _prefix(cidr: str) -> dict[str, Any]:
    net = ipaddress.ip_network(cidr, strict=False)
    return {"prefix": {"addr": str(net.network_address), "len": net.prefixlen}}


class _Builder:
    def __init__(self, table: str) -> None:
        self.table = table
        self.commands: list[dict[str, Any]] = []

    def chain(self, name: str, kind: str, hook: str, prio: int) -> None:
        body = {"family": FAMILY, "table": self.table, "name": name, "type": kind,
                "hook": hook, "prio": prio, "policy": "accept"}  # fmt: skip
        self.commands.append({"add": {"chain": body}})

    def rule(self, chain: str, *expr: dict[str, Any]) -> None:
        body = {"family": FAMILY, "table": self.table, "chain": chain, "expr": list(expr)}
        self.commands.append({"add": {"rule": body}})


def _masquerade_rules(b: _Builder, net: NatNetwork) -> None:
    oif = _meta("oifname")
    if not net.internal and net.masquerade:
        for cidr in net.subnets:
            version = ipaddress.ip_network(cidr).version
            b.rule("postrouting", _match(_ip_field(version, "saddr"), _prefix(cidr)),
                   _match(oif, net.bridge, "!="), {"masquerade": None})  # fmt: skip
    b.rule("postrouting", _match(_ip_field(4, "saddr"), _prefix("127.0.0.0/8")),
           _match(oif, net.bridge), {"masquerade": None})  # fmt: skip
    # Hairpin: DNAT'd from the network back into it. Matched on addresses, not devices: with
    # br_netfilter the packet is bridged (not routed) back and has no input device here.
    for cidr in net.subnets:
        version = ipaddress.ip_network(cidr).version
        b.rule("postrouting", _match(_ip_field(version, "saddr"), _prefix(cidr)),
               _match(_ip_field(version, "daddr"), _prefix(cidr)),
               _match({"ct": {"key": "status"}}, "dnat", "in"), {"masquerade": None})  # fmt: skip


def _filter_rules(b: _Builder, net: NatNetwork, prefix: str) -> None:
    iif, oif = _meta("iifname"), _meta("oifname")
    if net.internal:
        b.rule("forward", _match(iif, net.bridge), _match(oif, net.bridge, "!="), {"drop": None})
        b.rule("forward", _match(oif, net.bridge), _match(iif, net.bridge, "!="), {"drop": None})
    # Isolation: our networks do not route to each other (Docker's DOCKER-ISOLATION).
    b.rule("forward", _match(iif, net.bridge), _match(oif, net.bridge, "!="),
           _match(oif, prefix + "*"), {"drop": None})  # fmt: skip


def _dnat_rule(b: _Builder, chain: str, port: PortRule) -> None:
    version = ipaddress.ip_address(port.container_ip).version
    expr: list[dict[str, Any]] = []
    if port.host_ip and port.host_ip not in ("0.0.0.0", "::"):
        expr.append(_match(_ip_field(version, "daddr"), port.host_ip))
    else:
        expr.append(_match(_meta("nfproto"), "ipv4" if version == 4 else "ipv6"))
        expr.append(_match({"fib": {"result": "type", "flags": ["daddr"]}}, "local"))
    expr.append(_match({"payload": {"protocol": port.protocol, "field": "dport"}}, port.host_port))
    family = "ip" if version == 4 else "ip6"
    expr.append({"dnat": {"family": family, "addr": port.container_ip,
                          "port": port.container_port}})  # fmt: skip
    b.rule(chain, *expr)


def build_table(
    bridge_prefix: str, networks: Sequence[NatNetwork], ports: Iterable[PortRule]
) -> list[dict[str, Any]]:
    """The nft JSON commands that replace our table with one for this state."""
    name = table_name(bridge_prefix)
    b = _Builder(name)
    table = {"table": {"family": FAMILY, "name": name}}
    # "add" first so that "delete" never fails on a missing table: one atomic replacement.
    b.commands += [{"add": table}, {"delete": table}, {"add": table}]
    b.chain("prerouting", "nat", "prerouting", -100)
    b.chain("output", "nat", "output", -100)
    b.chain("postrouting", "nat", "postrouting", 100)
    b.chain("forward", "filter", "forward", 0)
    for net in networks:
        _masquerade_rules(b, net)
        _filter_rules(b, net, bridge_prefix)
    for port in ports:
        _dnat_rule(b, "prerouting", port)
        _dnat_rule(b, "output", port)
    return b.commands


def delete_table(bridge_prefix: str) -> list[dict[str, Any]]:
    """Commands that remove our table whether or not it exists."""
    table = {"table": {"family": FAMILY, "name": table_name(bridge_prefix)}}
    return [{"add": table}, {"delete": table}]
