"""The embedded DNS resolver as the containers component drives it.

Containers on user-defined networks get a name-table entry per such network and an
endpoint (127.0.0.11:53 inside their namespace) before their process starts, so their
peers resolve from its first instant; both go when the container stops. The predefined
``bridge`` network has no embedded DNS, as in Docker.

Upstreams: ``PYCOMPOSE_DNS_UPSTREAMS`` (comma-separated ``ip[:port]``) replaces the host's
resolv.conf for every container (tests point it at a resolver of their own on loopback);
a container's ``--dns`` servers become its own upstreams.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from pycompose.engine.containers.record import ContainerRecord
from pycompose.netns.dns import DnsService
from pycompose.netns.dns_forward import Upstream, parse_upstream
from pycompose.netns.records import Endpoint, NetworkRecord

UPSTREAMS_ENV = "PYCOMPOSE_DNS_UPSTREAMS"
SERVICE_LABEL = "com.docker.compose.service"

Pairs = Sequence[tuple[NetworkRecord, Endpoint]]


def upstreams_from_env(environ: Mapping[str, str] | None = None) -> list[Upstream] | None:
    """The upstreams ``PYCOMPOSE_DNS_UPSTREAMS`` names, or None to follow the host."""
    text = (os.environ if environ is None else environ).get(UPSTREAMS_ENV, "").strip()
    if not text:
        return None
    return [parse_upstream(part) for part in text.split(",") if part.strip()]


class DnsWiring:
    """Keeps the resolver's names and endpoints in step with the containers."""

    def __init__(self, service: DnsService) -> None:
        self.service = service

    def _set(self, record: ContainerRecord, network: NetworkRecord, ep: Endpoint) -> None:
        self.service.records.set(
            record.id, record.name, record.short_id, network.name,
            ep.ipv4 or None, ep.ipv6 or None, ep.aliases,
            record.labels.get(SERVICE_LABEL) or None,
        )  # fmt: skip

    @staticmethod
    def _user(pairs: Pairs) -> list[tuple[NetworkRecord, Endpoint]]:
        return [(rec, ep) for rec, ep in pairs if not rec.predefined]

    @staticmethod
    def _container_upstreams(record: ContainerRecord) -> list[Upstream] | None:
        servers = record.host_config.get("Dns") or []
        return [parse_upstream(str(s)) for s in servers] or None

    async def container_up(self, record: ContainerRecord, pairs: Pairs, netns_path: str) -> None:
        """Names of the container on its user networks, then its endpoint (before start)."""
        user = self._user(pairs)
        if not user:
            return
        for rec, ep in user:
            self._set(record, rec, ep)
        try:
            await self.service.add_endpoint(
                record.id, netns_path, frozenset(rec.name for rec, _ in user),
                forward=any(not rec.internal for rec, _ in user),
                upstreams=self._container_upstreams(record),
            )  # fmt: skip
        except BaseException:
            self.service.records.remove(record.id)
            raise

    async def container_down(self, container_id: str) -> None:
        """Forget the container's names and stop serving its namespace."""
        self.service.records.remove(container_id)
        await self.service.remove_endpoint(container_id)

    def renamed(self, record: ContainerRecord, pairs: Pairs) -> None:
        """Re-enter the container's entries under its new name (on every user network)."""
        for rec, ep in self._user(pairs):
            self._set(record, rec, ep)

    async def network_added(self, record: ContainerRecord, pairs: Pairs, netns_path: str) -> None:
        """After ``network connect`` of a running container: its names there, at once."""
        user = self._user(pairs)
        if not user:
            return
        for rec, ep in user:
            self._set(record, rec, ep)
        networks = frozenset(rec.name for rec, _ in user)
        forward = any(not rec.internal for rec, _ in user)
        if record.id in self.service.endpoints():
            self.service.update_endpoint(record.id, networks, forward)
        else:
            await self.service.add_endpoint(
                record.id, netns_path, networks, forward=forward,
                upstreams=self._container_upstreams(record),
            )  # fmt: skip

    async def network_removed(self, record: ContainerRecord, network: str, pairs: Pairs) -> None:
        """After ``network disconnect``: gone from that network, the others still seen."""
        self.service.records.remove(record.id, network)
        user = self._user(pairs)
        if not user:
            await self.service.remove_endpoint(record.id)
        elif record.id in self.service.endpoints():
            self.service.update_endpoint(
                record.id, frozenset(rec.name for rec, _ in user),
                any(not rec.internal for rec, _ in user),
            )  # fmt: skip
