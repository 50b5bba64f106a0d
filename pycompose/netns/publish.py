"""The published ports of every container: reservations, conflicts, and their DNAT rules.

A published port is reserved by binding (not listening on) a host socket, so no host process
can take it while the kernel forwards it; the rules themselves are nftables DNAT, written by
the manager from :meth:`PortTable.rules`. Where DNAT cannot work (``::1``), the table starts
a userland proxy on the reservation instead (:mod:`pycompose.netns.userproxy`). A port that
is taken is reported naming its holder: one of our containers, or the host process that has
it open.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field, replace

from pycompose.engine.errors import Conflict, InvalidArgument
from pycompose.netns import nat
from pycompose.netns.errors import PortInUse
from pycompose.netns.ports import PortBinding, Reserver, candidates
from pycompose.netns.records import Endpoint
from pycompose.netns.userproxy import Stop, needs_proxy, reserve_proxied

Holder = Callable[[str, str, int], "str | None"]
# (protocol, reservation socket, target ip, target port) -> how to stop the proxy
Proxier = Callable[[str, socket.socket, str, int], Stop]
_ANY = ("", "0.0.0.0", "::")


@dataclass
class Published:
    """One container's published ports and the sockets that reserve them."""

    bindings: list[PortBinding] = field(default_factory=list)
    rules: list[nat.PortRule] = field(default_factory=list)
    sockets: list[socket.socket] = field(default_factory=list)
    proxies: list[tuple[str, Stop]] = field(default_factory=list)  # (target ip, stop)

    def close(self) -> None:
        """Stop the userland proxies and release the reservations."""
        for _, stop in self.proxies:
            stop()
        self.proxies.clear()
        for sock in self.sockets:
            sock.close()
        self.sockets.clear()


def _same_address(a: str, b: str) -> bool:
    return a in _ANY or b in _ANY or a == b


class PortTable:
    """Published ports by container id. Not thread-safe: the manager holds its lock."""

    def __init__(self, reserver: Reserver, holder: Holder, proxier: Proxier | None = None) -> None:
        self._reserve = reserver
        self._holder = holder
        self._proxy = proxier
        self._by_container: dict[str, Published] = {}

    def publish(
        self, container_id: str, wanted: Iterable[PortBinding], target: Endpoint, bridge: str
    ) -> list[PortBinding]:
        """Reserve every port, then record the DNAT rules to ``target``; all or nothing."""
        if container_id in self._by_container:
            raise Conflict(f"ports of container {container_id[:12]} are already published")
        pub = Published()
        try:
            for binding in wanted:
                self._publish_one(container_id, binding, target, bridge, pub)
        except BaseException:
            pub.close()
            raise
        self._by_container[container_id] = pub
        return list(pub.bindings)

    def _publish_one(
        self, cid: str, binding: PortBinding, ep: Endpoint, bridge: str, pub: Published
    ) -> None:
        proxied = needs_proxy(binding.host_ip)
        if proxied and self._proxy is None:
            raise InvalidArgument("publishing on ::1 is not supported: the kernel cannot "
                                  "forward IPv6 loopback traffic; use 127.0.0.1")  # fmt: skip
        if ":" in binding.host_ip and not ep.ipv6 and not proxied:
            raise InvalidArgument(
                f"cannot publish on {binding.host_ip}: the container has no IPv6 address"
            )
        taken = False
        for port in candidates(binding):
            owner = self._owner(cid, binding, port, pub)
            if owner is not None:
                if binding.host_port:
                    raise PortInUse(
                        f"Bind for {binding.host_ip or '0.0.0.0'}:{port}/{binding.protocol} "
                        f"failed: port is already allocated to container {owner[:12]}"
                    )
                continue
            reserve = reserve_proxied if proxied else self._reserve
            try:
                sock = reserve(binding.protocol, binding.host_ip, port)
            except OSError as err:
                if err.errno != errno.EADDRINUSE:
                    raise
                taken = True
                continue
            pub.sockets.append(sock)
            resolved = replace(binding, host_port=port, host_range=None)
            pub.bindings.append(resolved)
            if proxied and self._proxy is not None:
                ip = ep.ipv4 or ep.ipv6
                stop = self._proxy(binding.protocol, sock, ip, binding.container_port)
                pub.proxies.append((ip, stop))
            else:
                pub.rules += _rules(resolved, ep, bridge)
            return
        if binding.host_port and taken:
            who = self._holder(binding.protocol, binding.host_ip, binding.host_port)
            raise PortInUse(
                f"Bind for {binding.host_ip or '0.0.0.0'}:{binding.host_port}/{binding.protocol}"
                f" failed: port is already in use by {who or 'another socket'}"
            )
        raise PortInUse(f"no free host port for {binding.key} ({binding.host_range or 'random'})")

    def _owner(self, cid: str, binding: PortBinding, port: int, pub: Published) -> str | None:
        for owner, other in [(cid, pub), *self._by_container.items()]:
            for b in other.bindings:
                if (b.protocol == binding.protocol and b.host_port == port
                        and _same_address(b.host_ip, binding.host_ip)):  # fmt: skip
                    return owner
        return None

    def unpublish(self, container_id: str) -> bool:
        """Forget a container's ports; False if it had none."""
        pub = self._by_container.pop(container_id, None)
        if pub is None:
            return False
        pub.close()
        return True

    def drop_rules_to(self, container_id: str, addresses: Collection[str]) -> None:
        """Stop forwarding to ``addresses`` (the container left that network).

        A userland proxy to them stops, and with it goes its reservation of the port.
        """
        pub = self._by_container.get(container_id)
        if pub is not None:
            pub.rules = [r for r in pub.rules if r.container_ip not in addresses]
            for ip, stop in [p for p in pub.proxies if p[0] in addresses]:
                stop()
                pub.proxies.remove((ip, stop))

    def bindings(self, container_id: str) -> list[PortBinding]:
        """The container's published ports, host ports resolved."""
        pub = self._by_container.get(container_id)
        return list(pub.bindings) if pub else []

    def rules(self) -> list[nat.PortRule]:
        """Every DNAT rule, for the nft table."""
        return [rule for pub in self._by_container.values() for rule in pub.rules]

    def keep_only(self, live: Collection[str]) -> None:
        """Forget the ports of containers not in ``live``."""
        for cid in [c for c in self._by_container if c not in live]:
            self.unpublish(cid)

    def release_all(self) -> None:
        """Close every reservation (daemon shutdown)."""
        for pub in self._by_container.values():
            pub.close()


def _rules(b: PortBinding, ep: Endpoint, bridge: str) -> list[nat.PortRule]:
    if ":" in b.host_ip:
        targets = [ep.ipv6]
    elif b.host_ip and b.host_ip != "0.0.0.0":
        targets = [ep.ipv4]
    else:
        targets = [ep.ipv4, ep.ipv6]
    return [nat.PortRule(b.protocol, b.host_ip, b.host_port, ip, b.container_port, bridge)
            for ip in targets if ip]  # fmt: skip
