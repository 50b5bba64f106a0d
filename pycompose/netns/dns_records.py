"""The embedded resolver's name table: which names mean which addresses, per network.

A container has one entry per network it is attached to (its address differs per
network). An entry answers to the container's name, its short id, its aliases and its
service name, and, qualified with the network, to ``<name>.<network>``. Lookups only see
the networks the asking container shares, so names never leak between networks.

Writers (the engine, on container start/stop/rename/connect) take a lock and replace
immutable tuples; readers (the resolver, on the event loop) never iterate a dict that a
writer changes, only ``get`` from it, so they need no lock and see every change at once.
"""

from __future__ import annotations

import ipaddress
import random
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from pycompose.netns.errors import NetworkError

IPAddress = IPv4Address | IPv6Address


class DnsError(NetworkError):
    """A problem of the embedded DNS resolver (bad record, namespace, socket)."""


@dataclass(frozen=True)
class Entry:
    """One container on one network, as the resolver knows it."""

    container_id: str
    network: str
    name: str
    short_id: str
    ipv4: IPv4Address | None
    ipv6: IPv6Address | None
    aliases: tuple[str, ...]
    service: str | None

    def names(self) -> frozenset[str]:
        """Every (normalised) name this entry answers to on its network."""
        raw = [self.name, self.short_id, *self.aliases]
        if self.service:
            raw.append(self.service)
        return frozenset(normalise(name) for name in raw if name)

    def ptr_name(self) -> str:
        """The name reverse lookups return, ``<name>.<network>`` as Docker does."""
        return f"{normalise(self.name)}.{normalise(self.network)}"


def normalise(name: str) -> str:
    """DNS names compare case-insensitively and without the trailing root dot."""
    return name.rstrip(".").lower()


def _check_name(what: str, name: str) -> None:
    bare = normalise(name)
    if not bare or len(bare) > 253 or any(not part or len(part) > 63 for part in bare.split(".")):
        raise DnsError(f"DNS {what} {name!r} is not a valid DNS name")


def reverse_name(address: IPAddress) -> str:
    """The PTR query name for an address (``4.3.2.1.in-addr.arpa``), normalised."""
    return normalise(address.reverse_pointer)


class NameTable:
    """Names to addresses, per network; safe to change from any thread while being read."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str], Entry] = {}
        # name -> network -> entries; reverse name -> network -> entries. Values immutable.
        self._by_name: dict[str, dict[str, tuple[Entry, ...]]] = {}
        self._by_reverse: dict[str, dict[str, tuple[Entry, ...]]] = {}
        self._rng = random.Random()

    def set(
        self,
        container_id: str,
        name: str,
        short_id: str,
        network: str,
        ipv4: IPv4Address | str | None = None,
        ipv6: IPv6Address | str | None = None,
        aliases: Iterable[str] = (),
        service: str | None = None,
    ) -> None:
        """Add or replace the entry of ``container_id`` on ``network``.

        ``network`` is the network's name: it qualifies names (``web.backend``) and ends
        PTR answers. Takes effect for the very next query.
        """
        entry = _make_entry(container_id, name, short_id, network, ipv4, ipv6, aliases, service)
        with self._lock:
            old = self._entries.get((container_id, network))
            if old is not None:
                self._unindex(old)
            self._entries[(container_id, network)] = entry
            self._index(entry)

    def remove(self, container_id: str, network: str | None = None) -> int:
        """Forget a container on one network, or on all; returns how many entries went."""
        with self._lock:
            keys = [
                key
                for key in self._entries
                if key[0] == container_id and (network is None or key[1] == network)
            ]
            for key in keys:
                self._unindex(self._entries.pop(key))
            return len(keys)

    def entries(self) -> list[Entry]:
        """A snapshot of every entry (for inspection and tests)."""
        with self._lock:
            return list(self._entries.values())

    def lookup(self, qname: str, networks: frozenset[str]) -> list[Entry] | None:
        """Entries named ``qname`` on the given networks; None if the name is unknown there.

        ``qname`` must already be normalised. ``name.network`` finds ``name`` on that
        network only. Several entries come back shuffled (round-robin over replicas).
        """
        found = self._gather(self._by_name.get(qname), networks)
        if not found and "." in qname:
            head, _, tail = qname.partition(".")
            if tail in networks:
                found = self._gather(self._by_name.get(head), frozenset((tail,)))
        if not found:
            return None
        if len(found) > 1:
            self._rng.shuffle(found)
        return found

    def reverse(self, qname: str, networks: frozenset[str]) -> list[Entry] | None:
        """Entries whose address has the PTR name ``qname`` on the given networks."""
        found = self._gather(self._by_reverse.get(qname), networks)
        return found or None

    @staticmethod
    def _gather(
        per_network: dict[str, tuple[Entry, ...]] | None, networks: frozenset[str]
    ) -> list[Entry]:
        if not per_network:
            return []
        found: list[Entry] = []
        for network in networks:
            found.extend(per_network.get(network, ()))
        return found

    def _index(self, entry: Entry) -> None:
        for name in entry.names():
            _add(self._by_name, name, entry)
        for address in (entry.ipv4, entry.ipv6):
            if address is not None:
                _add(self._by_reverse, reverse_name(address), entry)

    def _unindex(self, entry: Entry) -> None:
        for name in entry.names():
            _drop(self._by_name, name, entry)
        for address in (entry.ipv4, entry.ipv6):
            if address is not None:
                _drop(self._by_reverse, reverse_name(address), entry)


def _add(index: dict[str, dict[str, tuple[Entry, ...]]], key: str, entry: Entry) -> None:
    per_network = index.get(key)
    if per_network is None:
        index[key] = {entry.network: (entry,)}
        return
    per_network[entry.network] = (*per_network.get(entry.network, ()), entry)


def _drop(index: dict[str, dict[str, tuple[Entry, ...]]], key: str, entry: Entry) -> None:
    per_network = index.get(key)
    if per_network is None:
        return
    left = tuple(other for other in per_network.get(entry.network, ()) if other is not entry)
    if left:
        per_network[entry.network] = left
        return
    per_network.pop(entry.network, None)
    if not per_network:
        del index[key]


def _make_entry(
    container_id: str,
    name: str,
    short_id: str,
    network: str,
    ipv4: IPv4Address | str | None,
    ipv6: IPv6Address | str | None,
    aliases: Iterable[str],
    service: str | None,
) -> Entry:
    if not container_id:
        raise DnsError("a DNS entry needs a container id")
    alias_list = tuple(aliases)
    for what, value in [("name", name), ("short id", short_id), ("network", network)]:
        _check_name(what, value)
    for alias in alias_list:
        _check_name("alias", alias)
    if service is not None:
        _check_name("service name", service)
    v4 = _address(ipv4, 4, container_id)
    v6 = _address(ipv6, 6, container_id)
    if v4 is None and v6 is None:
        raise DnsError(f"container {container_id} on {network}: no IPv4 or IPv6 address given")
    assert v4 is None or isinstance(v4, IPv4Address)
    assert v6 is None or isinstance(v6, IPv6Address)
    return Entry(container_id, normalise(network), name, short_id, v4, v6, alias_list, service)


def _address(value: IPAddress | str | None, version: int, container_id: str) -> IPAddress | None:
    if value is None or value == "":
        return None
    try:
        address = ipaddress.ip_address(value)
    except ValueError as err:
        raise DnsError(f"container {container_id}: {value!r} is not an IP address") from err
    if address.version != version:
        raise DnsError(f"container {container_id}: {value} is not an IPv{version} address")
    return address
