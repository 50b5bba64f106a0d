"""What a network create request asks for (``NetworkSpec``) and the record it becomes.

``NetworkSpec.from_docker`` reads Docker's ``POST /networks/create`` body, refusing what we
cannot honour with a message naming the field; ``make_record`` picks the subnets (from the
pool, skipping ``taken``) and the bridge name.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from pycompose.engine.api.router import ZERO, check_fields
from pycompose.engine.config import EngineConfig
from pycompose.engine.errors import InvalidArgument, NotFound
from pycompose.netns import ipam
from pycompose.netns.bridge import bridge_name
from pycompose.netns.records import DRIVER_BRIDGE, DRIVER_HOST, DRIVER_NULL, NetworkRecord

_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
OPT_MTU = "com.docker.network.driver.mtu"
OPT_MASQ = "com.docker.network.bridge.enable_ip_masquerade"
OPT_ICC = "com.docker.network.bridge.enable_icc"
OPT_HOST_BINDING = "com.docker.network.bridge.host_binding_ipv4"
OPT_DEFAULT = "com.docker.network.bridge.default_bridge"
OPT_NAME = "com.docker.network.bridge.name"
# Options whose only accepted value is the default behaviour.
_FIXED_OPTIONS = {OPT_ICC: "true", OPT_HOST_BINDING: "0.0.0.0"}
_CREATE_FIELDS = {"Name", "Driver", "Internal", "Attachable", "EnableIPv6", "EnableIPv4", "IPAM",
                  "Options", "Labels", "CheckDuplicate", "Scope"}  # fmt: skip
_CREATE_UNSUPPORTED = {"Ingress": ZERO, "ConfigOnly": ZERO, "ConfigFrom": ZERO}


@dataclass(frozen=True)
class NetworkSpec:
    """A network to create. ``ipam`` holds Docker ``IPAM.Config`` entries."""

    name: str
    driver: str = DRIVER_BRIDGE
    internal: bool = False
    attachable: bool = False
    enable_ipv6: bool = False
    ipam: tuple[Mapping[str, Any], ...] = ()
    options: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)

    def subnets(self, version: int) -> list[Mapping[str, Any]]:
        """The user's IPAM entries of one IP version."""
        return [e for e in self.ipam if (":" in str(e.get("Subnet", ""))) == (version == 6)]

    @classmethod
    def from_docker(cls, body: Mapping[str, Any]) -> NetworkSpec:
        """Validate a ``POST /networks/create`` body."""
        check_fields(body, where="", known=_CREATE_FIELDS, unsupported=_CREATE_UNSUPPORTED)
        if body.get("EnableIPv4") is False:
            raise InvalidArgument("EnableIPv4=false is not supported")
        scope = body.get("Scope") or "local"
        if scope != "local":
            raise InvalidArgument(f"Scope {scope!r} is not supported: only local networks")
        ipam_body = body.get("IPAM") or {}
        check_fields(ipam_body, where="IPAM", known={"Config", "Options"},
                     unsupported={"Driver": "default"})  # fmt: skip
        if ipam_body.get("Options"):
            raise InvalidArgument("IPAM.Options are not supported")
        entries = []
        for i, entry in enumerate(ipam_body.get("Config") or []):
            if not isinstance(entry, dict):
                raise InvalidArgument(f"IPAM.Config[{i}] must be an object")
            check_fields(entry, where=f"IPAM.Config[{i}]",
                         known={"Subnet", "IPRange", "Gateway", "AuxiliaryAddresses"})  # fmt: skip
            entries.append(entry)
        return cls(
            name=str(body.get("Name") or ""),
            driver=str(body.get("Driver") or DRIVER_BRIDGE),
            internal=bool(body.get("Internal")),
            attachable=bool(body.get("Attachable")),
            enable_ipv6=bool(body.get("EnableIPv6")),
            ipam=tuple(entries),
            options={str(k): str(v) for k, v in (body.get("Options") or {}).items()},
            labels={str(k): str(v) for k, v in (body.get("Labels") or {}).items()},
        )


def _check_options(options: Mapping[str, str]) -> int:
    mtu = 1500
    for key, value in options.items():
        if key == OPT_MTU:
            if not value.isdigit() or not 68 <= int(value) <= 65535:
                raise InvalidArgument(f"invalid option {key}={value!r}: MTU must be 68..65535")
            mtu = int(value)
        elif key == OPT_MASQ:
            if value.lower() not in ("true", "false"):
                raise InvalidArgument(f"invalid option {key}={value!r}: use true or false")
        elif key in _FIXED_OPTIONS:
            if value.lower() != _FIXED_OPTIONS[key]:
                raise InvalidArgument(f"option {key}={value!r} is not supported")
        elif key == OPT_NAME:
            raise InvalidArgument(
                f"option {key} is not supported: bridge names derive from the network id"
            )
        else:
            raise InvalidArgument(f"unknown network option {key!r}")
    return mtu


def _user_config(entries: list[Mapping[str, Any]], version: int) -> ipam.SubnetConfig | None:
    if len(entries) > 1:
        raise InvalidArgument(f"only one IPv{version} subnet per network is supported")
    if not entries:
        return None
    e = entries[0]
    if not e.get("Subnet"):
        raise InvalidArgument("IPAM.Config entries need a Subnet")
    return ipam.make_config(
        str(e["Subnet"]), str(e.get("Gateway") or ""), str(e.get("IPRange") or ""),
        e.get("AuxiliaryAddresses") or {},
    )  # fmt: skip


def _check_overlap(config: ipam.SubnetConfig, taken: Collection[str]) -> None:
    for cidr in taken:
        other = ipaddress.ip_network(cidr, strict=False)
        same = other.version == config.version
        if other.prefixlen and same and other.overlaps(config.network):
            raise InvalidArgument(
                f"invalid pool request: Pool overlaps with other one on this address space "
                f"({config.subnet} and {cidr})"
            )


def make_record(
    spec: NetworkSpec,
    network_id: str,
    created: str,
    config: EngineConfig,
    taken: Collection[str],
    *,
    predefined: bool = False,
) -> NetworkRecord:
    """The record for ``spec``: subnets chosen or checked, bridge named."""
    if not _NAME_RE.match(spec.name):
        raise InvalidArgument(f"invalid network name {spec.name!r}: use [a-zA-Z0-9][a-zA-Z0-9_.-]*")
    if spec.driver in (DRIVER_HOST, DRIVER_NULL) and not predefined:
        raise InvalidArgument(f'only one instance of "{spec.driver}" network is allowed')
    if spec.driver not in (DRIVER_BRIDGE, DRIVER_HOST, DRIVER_NULL):
        raise NotFound(f'plugin "{spec.driver}" not found')
    record = NetworkRecord(network_id, spec.name, spec.driver, created,
                           internal=spec.internal, attachable=spec.attachable,
                           labels=dict(spec.labels), options=dict(spec.options))  # fmt: skip
    if spec.driver != DRIVER_BRIDGE:
        if spec.ipam or spec.enable_ipv6 or spec.internal:
            raise InvalidArgument(f"network driver {spec.driver} takes no IPAM, IPv6 or internal")
        return record
    record.mtu = _check_options(spec.options)
    v4 = _user_config(spec.subnets(4), 4)
    v6 = _user_config(spec.subnets(6), 6)
    if v6 is not None and not spec.enable_ipv6:
        raise InvalidArgument("an IPv6 subnet was given but EnableIPv6 is false")
    for user in (v4, v6):
        if user is not None:
            _check_overlap(user, taken)
    record.ipam_user = v4 is not None or v6 is not None
    if v4 is None:
        v4 = ipam.make_config(ipam.choose_subnet(config.subnet_pool, config.subnet_size, taken))
    record.ipam = [v4]
    if spec.enable_ipv6:
        record.ipam.append(v6 or ipam.make_config(ipam.choose_subnet6(config.bridge_prefix, taken)))
        record.enable_ipv6 = True
    default = predefined and spec.name == "bridge"
    record.bridge = bridge_name(config.bridge_prefix, network_id, default=default)
    if default:
        record.options = {OPT_DEFAULT: "true", OPT_ICC: "true", OPT_MASQ: "true",
                          OPT_HOST_BINDING: "0.0.0.0", OPT_NAME: record.bridge,
                          OPT_MTU: str(record.mtu)}  # fmt: skip
    return record
