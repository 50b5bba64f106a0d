"""Forwarding the names the embedded resolver does not know to upstream resolvers.

Forwarding sockets are created by the daemon in its own (the host's) network namespace,
so a loopback upstream such as systemd-resolved's 127.0.0.53 works as it does for any
host process. Each query gets a fresh socket (a random source port) and a fresh random
id; the client's id is put back on the answer. Upstreams are tried in order, each with a
timeout; when none answers, the caller gets None and replies SERVFAIL.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import secrets
import socket
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pycompose.netns.dns_records import DnsError

EMBEDDED_ADDRESS = "127.0.0.11"
"""The resolver's own address inside containers: never an upstream (it would loop)."""

RESOLV_CONF = Path("/etc/resolv.conf")
_HEADER = struct.Struct("!HHHHHH")


@dataclass(frozen=True)
class Upstream:
    """One upstream resolver: an IP literal (IPv6 may carry ``%scope``) and a port."""

    host: str
    port: int = 53

    @property
    def family(self) -> socket.AddressFamily:
        """AF_INET6 for IPv6 literals, else AF_INET."""
        return socket.AF_INET6 if ":" in self.host else socket.AF_INET

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_upstream(text: str) -> Upstream:
    """``1.2.3.4``, ``1.2.3.4:5353``, ``::1``, ``[::1]:5353`` or ``fe80::1%eth0``."""
    host, port = text.strip(), 53
    if host.startswith("["):
        host, _, rest = host[1:].partition("]")
        if rest:
            port = _port(rest.removeprefix(":"), text)
    elif host.count(":") == 1:
        host, _, port_text = host.partition(":")
        port = _port(port_text, text)
    try:
        ipaddress.ip_address(host.partition("%")[0])
    except ValueError as err:
        raise DnsError(f"upstream DNS server {text!r} is not an IP address") from err
    return Upstream(host, port)


def _port(text: str, whole: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise DnsError(f"upstream DNS server {whole!r}: bad port {text!r}")
    return int(text)


def usable(upstreams: Sequence[Upstream]) -> tuple[Upstream, ...]:
    """Drop the embedded resolver's own address, and duplicates, keeping the order."""
    seen: list[Upstream] = []
    for upstream in upstreams:
        if upstream.host == EMBEDDED_ADDRESS and upstream.port == 53:
            continue
        if upstream not in seen:
            seen.append(upstream)
    return tuple(seen)


def parse_resolv_conf(text: str) -> tuple[Upstream, ...]:
    """The ``nameserver`` lines of a resolv.conf, in order (bad lines are skipped as libc does)."""
    found: list[Upstream] = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            with contextlib.suppress(DnsError):
                found.append(parse_upstream(fields[1]))
    return usable(found)


class HostResolvers:
    """The host's resolvers from resolv.conf, re-read when the file changes."""

    def __init__(self, path: Path = RESOLV_CONF, recheck_seconds: float = 1.0) -> None:
        self._path = path
        self._recheck = recheck_seconds
        self._stamp: tuple[int, int, int] | None = None
        self._checked = -1e9
        self._upstreams: tuple[Upstream, ...] = ()

    def current(self) -> tuple[Upstream, ...]:
        """The upstreams now; stats the file at most once per ``recheck_seconds``."""
        now = time.monotonic()
        if now - self._checked < self._recheck:
            return self._upstreams
        self._checked = now
        try:
            info = os.stat(self._path)
        except OSError:
            self._stamp, self._upstreams = None, ()
            return self._upstreams
        stamp = (info.st_ino, info.st_mtime_ns, info.st_size)
        if stamp != self._stamp:
            try:
                text = self._path.read_text(errors="replace")
            except OSError:
                text = ""
            self._stamp, self._upstreams = stamp, parse_resolv_conf(text)
        return self._upstreams


def _with_id(message: bytes, ident: int) -> bytes:
    return struct.pack("!H", ident) + message[2:]


def _question_end(message: bytes) -> int:
    """Offset just past the first question (name, type, class); raises ValueError."""
    offset = 12
    while True:
        length = message[offset]
        if length & 0xC0:
            raise ValueError("compressed name in question")
        offset += 1 + length
        if length == 0:
            break
    end = offset + 4
    if end > len(message):
        raise ValueError("short question")
    return end


def matches(query: bytes, reply: bytes) -> bool:
    """True if ``reply`` is a response to ``query``: same id, QR set, same question.

    Names compare case-insensitively (label length bytes are below 64, so lower()
    cannot touch them); servers that send no question are accepted only with an error.
    """
    if len(reply) < 12 or reply[:2] != query[:2] or not reply[2] & 0x80:
        return False
    qdcount = _HEADER.unpack_from(reply)[2]
    if qdcount == 0:
        return bool(reply[3] & 0x0F)
    try:
        end = _question_end(query)
    except (ValueError, IndexError):
        return False
    theirs = reply[12:end]
    ours = query[12:end]
    return theirs[:-4].lower() == ours[:-4].lower() and theirs[-4:] == ours[-4:]


class Forwarder:
    """Sends one query to the first upstream that answers, over UDP or TCP."""

    def __init__(self, timeout: float = 2.0, max_in_flight: int = 512) -> None:
        self._timeout = timeout
        self._in_flight = 0
        self._max_in_flight = max_in_flight

    async def forward(self, query: bytes, upstreams: Sequence[Upstream], tcp: bool) -> bytes | None:
        """The upstream's reply with the client's id restored, or None if none answered.

        Too many queries in flight (a flood) also gives None rather than queueing.
        """
        if self._in_flight >= self._max_in_flight or len(query) < 12:
            return None
        self._in_flight += 1
        try:
            for upstream in usable(upstreams):
                ident = secrets.randbits(16)
                outgoing = _with_id(query, ident)
                try:
                    reply = await asyncio.wait_for(
                        self._ask(outgoing, upstream, tcp), timeout=self._timeout
                    )
                except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError):
                    continue
                if reply is not None:
                    return query[:2] + reply[2:]
            return None
        finally:
            self._in_flight -= 1

    async def _ask(self, query: bytes, upstream: Upstream, tcp: bool) -> bytes | None:
        if tcp:
            return await _ask_tcp(query, upstream)
        return await _ask_udp(query, upstream)


class _OneAnswer(asyncio.DatagramProtocol):
    """Waits for the first datagram that answers our query; ignores anything else."""

    def __init__(self, query: bytes, upstream: Upstream) -> None:
        self.query = query
        self.upstream = upstream
        self.done: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        # The socket is connected to the upstream: the kernel drops other senders.
        if self.done.done():
            return
        if matches(self.query, data):
            self.done.set_result(data)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and the like: this upstream is down, try the next.
        if not self.done.done():
            self.done.set_exception(exc)


async def _ask_udp(query: bytes, upstream: Upstream) -> bytes:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: _OneAnswer(query, upstream),
        remote_addr=(upstream.host, upstream.port),
        family=upstream.family,
    )
    try:
        transport.sendto(query)
        return await protocol.done
    finally:
        transport.close()


async def _ask_tcp(query: bytes, upstream: Upstream) -> bytes | None:
    reader, writer = await asyncio.open_connection(upstream.host, upstream.port)
    try:
        writer.write(struct.pack("!H", len(query)) + query)
        await writer.drain()
        while True:
            (length,) = struct.unpack("!H", await reader.readexactly(2))
            reply = await reader.readexactly(length)
            if matches(query, reply):
                return reply
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


__all__ = [
    "EMBEDDED_ADDRESS",
    "RESOLV_CONF",
    "Forwarder",
    "HostResolvers",
    "Upstream",
    "matches",
    "parse_resolv_conf",
    "parse_upstream",
    "usable",
]
