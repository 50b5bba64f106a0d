"""Networks and endpoints as stored under ``<root>/networks/<id>.json``, and their Docker views.

Each network is one JSON file, written to a temp file and renamed into place, so a crash
leaves either the old or the new version. Endpoints live inside their network's record.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pycompose.netns.ipam import SubnetConfig

DRIVER_BRIDGE, DRIVER_HOST, DRIVER_NULL = "bridge", "host", "null"
PREDEFINED = {"bridge": DRIVER_BRIDGE, "host": DRIVER_HOST, "none": DRIVER_NULL}


@dataclass
class Endpoint:
    """A container's connection to one network."""

    endpoint_id: str
    network_id: str
    container_id: str
    container_name: str
    ifname: str
    host_veth: str
    netns_path: str
    mac: str
    ipv4: str = ""
    ipv4_prefix: int = 0
    gateway: str = ""
    ipv6: str = ""
    ipv6_prefix: int = 0
    gateway6: str = ""
    aliases: tuple[str, ...] = ()
    ipv4_requested: str = ""
    ipv6_requested: str = ""
    default_route: bool = False

    def settings(self, network_name: str) -> dict[str, Any]:
        """Docker's ``EndpointSettings`` (``NetworkSettings.Networks[name]`` of a container)."""
        ipam = None
        if self.ipv4_requested or self.ipv6_requested:
            ipam = {"IPv4Address": self.ipv4_requested, "IPv6Address": self.ipv6_requested}
        names = [self.container_name.lstrip("/"), *self.aliases] if self.container_name else []
        return {
            "IPAMConfig": ipam, "Links": None, "Aliases": list(self.aliases) or None,
            "MacAddress": self.mac, "DriverOpts": None, "NetworkID": self.network_id,
            "EndpointID": self.endpoint_id, "Gateway": self.gateway, "IPAddress": self.ipv4,
            "IPPrefixLen": self.ipv4_prefix, "IPv6Gateway": self.gateway6,
            "GlobalIPv6Address": self.ipv6, "GlobalIPv6PrefixLen": self.ipv6_prefix,
            "DNSNames": [*dict.fromkeys([*names, self.container_id[:12]])] if names else None,
        }  # fmt: skip

    def summary(self) -> dict[str, str]:
        """The entry under a network's ``Containers`` in ``GET /networks/{id}``."""
        return {
            "Name": self.container_name.lstrip("/"),
            "EndpointID": self.endpoint_id,
            "MacAddress": self.mac,
            "IPv4Address": f"{self.ipv4}/{self.ipv4_prefix}" if self.ipv4 else "",
            "IPv6Address": f"{self.ipv6}/{self.ipv6_prefix}" if self.ipv6 else "",
        }


@dataclass
class NetworkRecord:
    """One network: Docker's fields plus our bridge name and endpoints."""

    id: str
    name: str
    driver: str
    created: str
    bridge: str = ""
    internal: bool = False
    attachable: bool = False
    enable_ipv6: bool = False
    ipam: list[SubnetConfig] = field(default_factory=list)
    ipam_user: bool = False
    options: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    endpoints: dict[str, Endpoint] = field(default_factory=dict)  # by container id
    mtu: int = 1500

    @property
    def predefined(self) -> bool:
        """bridge, host and none: made by the engine, never removed."""
        return PREDEFINED.get(self.name) == self.driver and not self.labels

    @property
    def masquerade(self) -> bool:
        """Outbound NAT unless the option turns it off."""
        flag = self.options.get("com.docker.network.bridge.enable_ip_masquerade", "true")
        return flag.lower() != "false"

    def subnet(self, version: int) -> SubnetConfig | None:
        """The IPv4 or IPv6 pool, if any."""
        return next((c for c in self.ipam if c.version == version), None)

    def to_docker(self, *, with_containers: bool = True) -> dict[str, Any]:
        """Docker's ``Network`` object (``GET /networks/{id}``)."""
        containers = {cid: ep.summary() for cid, ep in self.endpoints.items()}
        return {
            "Name": self.name, "Id": self.id, "Created": self.created, "Scope": "local",
            "Driver": self.driver, "EnableIPv4": True, "EnableIPv6": self.enable_ipv6,
            "IPAM": {"Driver": "default", "Options": None,
                     "Config": [c.to_docker() for c in self.ipam]},
            "Internal": self.internal, "Attachable": self.attachable, "Ingress": False,
            "ConfigFrom": {"Network": ""}, "ConfigOnly": False,
            "Containers": containers if with_containers else {},
            "Options": dict(self.options), "Labels": dict(self.labels),
        }  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        """The stored form."""
        data = asdict(self)
        data["ipam"] = [c.to_docker() for c in self.ipam]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NetworkRecord:
        """Read the stored form back."""
        eps = {
            cid: Endpoint(**{**ep, "aliases": tuple(ep.get("aliases") or ())})
            for cid, ep in (data.get("endpoints") or {}).items()
        }
        ipam = [SubnetConfig.from_docker(c) for c in data.get("ipam") or []]
        return cls(**{**data, "ipam": ipam, "endpoints": eps})


class NetworkStore:
    """The directory of network records."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)

    def save(self, record: NetworkRecord) -> None:
        """Write one record crash-safely."""
        path = self.directory / f"{record.id}.json"
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w") as f:
            json.dump(record.to_json(), f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def delete(self, network_id: str) -> None:
        """Remove a record."""
        (self.directory / f"{network_id}.json").unlink(missing_ok=True)

    def load_all(self) -> Iterator[NetworkRecord]:
        """Every stored record (leftover temp files are removed)."""
        for path in sorted(self.directory.iterdir()):
            if path.name.endswith(".tmp"):
                path.unlink(missing_ok=True)
            elif path.suffix == ".json":
                yield NetworkRecord.from_json(json.loads(path.read_text()))
