"""The embedded DNS resolver at 127.0.0.11: one daemon serves every container.

For each container namespace a short-lived helper thread joins the namespace, makes sure
``lo`` is up, binds a UDP and a TCP socket to 127.0.0.11:53 and hands them back. The
sockets stay in that namespace; the daemon serves them all from its own asyncio loop. An
endpoint (one container's pair of sockets) knows which networks its container is on, and
answers only ever come from those networks.

Wire format: the common query (one question, at most an OPT record) is decoded and its
answer encoded by hand here, because a round trip through dnspython costs about 150 us
per query and every getaddrinfo sends two. Anything unusual goes through dnspython, and
the unit tests check the hand-made messages with dnspython.
"""

from __future__ import annotations

import asyncio
import ctypes
import fcntl
import logging
import os
import socket
import struct
import threading
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path
from types import TracebackType
from typing import Protocol, TypeVar

from pycompose.netns.dns_forward import (
    EMBEDDED_ADDRESS,
    RESOLV_CONF,
    Forwarder,
    HostResolvers,
    Upstream,
)
from pycompose.netns.dns_records import DnsError, Entry, NameTable, normalise

log = logging.getLogger(__name__)
T = TypeVar("T")

TYPE_A, TYPE_PTR, TYPE_AAAA, TYPE_OPT = 1, 12, 28, 41
CLASS_IN = 1
NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 2, 3, 4, 5
BADVERS = 16
TTL = 600  # what Docker's resolver gives container names
EDNS_PAYLOAD = 1232  # what we advertise: the DNS flag day's safe UDP size
_HEADER = struct.Struct("!HHHHHH")
_RR_TAIL = struct.Struct("!HHIH")
_QR, _AA, _TC, _RD, _RA = 0x8000, 0x0400, 0x0200, 0x0100, 0x0080
_OPT_RR = b"\x00" + _RR_TAIL.pack(TYPE_OPT, EDNS_PAYLOAD, 0, 0)
_TCP_IDLE_SECONDS = 10.0
_TCP_MAX_CONNECTIONS = 64


# --- wire format -------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    """A decoded query: what the resolver needs to answer it."""

    ident: int
    flags: int
    name: str  # normalised
    qtype: int
    qclass: int
    question: bytes  # the question section as the client sent it, echoed back
    edns: int | None  # the client's UDP payload size, None without EDNS
    raw: bytes

    def udp_limit(self) -> int:
        """The largest UDP answer this client takes (RFC 6891: at least 512)."""
        return 512 if self.edns is None else max(512, self.edns)


Decoded = Query | bytes | None
"""A query to answer, a ready reply (FORMERR, NOTIMP, BADVERS), or None: drop it."""


def decode(data: bytes) -> Decoded:
    """Decode a query; never raises (malformed input gives None)."""
    try:
        fast = _decode_fast(data)
    except (IndexError, struct.error, UnicodeDecodeError):
        fast = None
    return fast if fast is not None else _decode_slow(data)


def _decode_fast(data: bytes) -> Query | None:
    ident, flags, qd, an, ns, ar = _HEADER.unpack_from(data)
    if flags & 0xF800 or qd != 1 or an or ns or ar > 1:
        return None  # responses, other opcodes and odd shapes: the careful path
    offset, labels = 12, []
    while (length := data[offset]) != 0:
        if length > 63:
            return None
        labels.append(data[offset + 1 : offset + 1 + length])
        offset += 1 + length
    qtype, qclass = struct.unpack_from("!HH", data, offset + 1)
    end = offset + 5
    edns = None
    if ar:
        if data[end] != 0:
            return None
        rtype, payload, ttl, rdlen = _RR_TAIL.unpack_from(data, end + 1)
        if rtype != TYPE_OPT or (ttl >> 16) & 0xFF != 0 or end + 11 + rdlen != len(data):
            return None
        edns = payload
    elif end != len(data):
        return None
    joined = b".".join(labels)
    if joined.count(b".") != max(len(labels) - 1, 0):
        return None  # a dot inside a label: dnspython escapes it properly
    name = joined.decode("ascii").lower()
    return Query(ident, flags, name, qtype, qclass, data[12:end], edns, data)


def _decode_slow(data: bytes) -> Decoded:
    import dns.message
    import dns.opcode
    import dns.rcode

    try:
        message = dns.message.from_wire(data)
    except Exception:  # whatever dnspython cannot parse is malformed: dropped, quietly
        return None
    if message.flags & _QR:
        return None  # never answer answers: two resolvers must not ping-pong
    rcode = None
    if message.opcode() != dns.opcode.QUERY:
        rcode = dns.rcode.NOTIMP
    elif len(message.question) != 1:
        rcode = dns.rcode.FORMERR
    elif message.edns > 0:
        rcode = dns.rcode.BADVERS
    if rcode is not None:
        reply = dns.message.make_response(message)
        reply.set_rcode(rcode)
        return reply.to_wire()
    rrset = message.question[0]
    name_wire = rrset.name.to_wire()
    assert name_wire is not None  # without a file, to_wire returns the bytes
    question = name_wire + struct.pack("!HH", rrset.rdtype, rrset.rdclass)
    name = normalise(rrset.name.to_text(omit_final_dot=True))
    edns = message.payload if message.edns >= 0 else None
    return Query(message.id, message.flags, name, rrset.rdtype, rrset.rdclass, question, edns, data)


def encode(
    query: Query,
    rcode: int,
    answers: Sequence[tuple[int, bytes]] = (),
    authoritative: bool = False,
    truncated: bool = False,
) -> bytes:
    """A reply echoing the question; each answer is (type, rdata) for the question's name."""
    flags = _QR | _RA | (query.flags & _RD) | rcode
    if authoritative:
        flags |= _AA
    if truncated:
        flags |= _TC
    parts = [
        _HEADER.pack(query.ident, flags, 1, len(answers), 0, int(query.edns is not None)),
        query.question,
    ]
    for rtype, rdata in answers:
        # 0xc00c: a pointer to the question's name, right after the 12-byte header.
        parts.append(b"\xc0\x0c" + _RR_TAIL.pack(rtype, CLASS_IN, TTL, len(rdata)) + rdata)
    if query.edns is not None:
        parts.append(_OPT_RR)
    return b"".join(parts)


def fit_udp(query: Query, reply: bytes) -> bytes:
    """``reply`` if the client takes it over UDP, else an empty reply with TC set."""
    if len(reply) <= query.udp_limit():
        return reply
    return encode(query, NOERROR, truncated=True)


def name_to_wire(name: str) -> bytes:
    """An uncompressed wire-format name."""
    out = bytearray()
    for label in normalise(name).split("."):
        raw = label.encode("ascii", errors="replace")
        out += bytes((len(raw),)) + raw
    return bytes(out) + b"\x00"


# --- answering ---------------------------------------------------------------------


def answer_locally(query: Query, records: NameTable, networks: frozenset[str]) -> bytes | None:
    """Our reply from the name table, or None when the name is not ours to answer."""
    if query.qclass != CLASS_IN:
        return None
    if query.qtype == TYPE_PTR:
        entries = records.reverse(query.name, networks)
        if entries is None:
            return None
        ptrs = {name_to_wire(entry.ptr_name()) for entry in entries}
        return encode(query, NOERROR, [(TYPE_PTR, rdata) for rdata in sorted(ptrs)], True)
    entries = records.lookup(query.name, networks)
    if entries is None:
        return None
    # A known name without this type (AAAA on an IPv4-only network, MX...) is NODATA.
    return encode(query, NOERROR, _address_answers(query.qtype, entries), True)


def _address_answers(qtype: int, entries: Sequence[Entry]) -> list[tuple[int, bytes]]:
    seen: set[bytes] = set()
    answers: list[tuple[int, bytes]] = []
    for entry in entries:
        address: IPv4Address | IPv6Address | None
        if qtype == TYPE_A:
            address = entry.ipv4
        elif qtype == TYPE_AAAA:
            address = entry.ipv6
        else:
            return []
        if address is not None and address.packed not in seen:
            seen.add(address.packed)
            answers.append((qtype, address.packed))
    return answers


# --- sockets inside a namespace ----------------------------------------------------


class SocketOpener(Protocol):
    """Makes the UDP and the listening TCP socket an endpoint is served on."""

    def open(self, netns_path: str) -> tuple[socket.socket, socket.socket]:
        """Called on a fresh thread that exits afterwards; returns (udp, tcp)."""
        ...


_CLONE_NEWNET = 0x40000000
_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1
_IFREQ = struct.Struct("16sH14x")


class NetnsSocketOpener:
    """The real opener: setns into the namespace file, lo up, bind 127.0.0.11:53."""

    def __init__(self, address: str = EMBEDDED_ADDRESS, port: int = 53) -> None:
        self.address = address
        self.port = port

    def open(self, netns_path: str) -> tuple[socket.socket, socket.socket]:
        """Bind both sockets inside ``netns_path``; the thread goes back home after."""
        libc = ctypes.CDLL(None, use_errno=True)
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            target = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as err:
            os.close(home)
            raise DnsError(f"cannot open network namespace {netns_path}: {err}") from err
        try:
            if libc.setns(target, _CLONE_NEWNET) != 0:
                code = ctypes.get_errno()
                raise DnsError(f"cannot enter network namespace {netns_path}: {os.strerror(code)}")
            try:
                return self._bind_here(netns_path)
            finally:
                # The thread exits next anyway; going home keeps it harmless if reused.
                libc.setns(home, _CLONE_NEWNET)
        finally:
            os.close(target)
            os.close(home)

    def _bind_here(self, netns_path: str) -> tuple[socket.socket, socket.socket]:
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            _loopback_up(udp)
            udp.bind((self.address, self.port))
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            tcp.bind((self.address, self.port))
            tcp.listen(128)
        except OSError as err:
            udp.close()
            tcp.close()
            where = f"{self.address}:{self.port} in {netns_path}"
            raise DnsError(f"cannot serve DNS on {where}: {err.strerror or err}") from err
        return udp, tcp


def _loopback_up(sock: socket.socket) -> None:
    request = _IFREQ.pack(b"lo", 0)
    _, flags = _IFREQ.unpack(fcntl.ioctl(sock, _SIOCGIFFLAGS, request))
    if not flags & _IFF_UP:
        fcntl.ioctl(sock, _SIOCSIFFLAGS, _IFREQ.pack(b"lo", flags | _IFF_UP))


async def _on_fresh_thread(fn: Callable[[], T], discard: Callable[[T], None]) -> T:
    """Run ``fn`` on a new thread that exits after; ``discard`` undoes it if we gave up."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def deliver(value: T | None, error: BaseException | None) -> None:
        if future.cancelled():
            if error is None:
                discard(value)  # type: ignore[arg-type]
        elif error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)  # type: ignore[arg-type]

    def main() -> None:
        value: T | None = None
        error: BaseException | None = None
        try:
            value = fn()
        except BaseException as err:  # handed to the awaiting task
            error = err
        try:
            loop.call_soon_threadsafe(deliver, value, error)
        except RuntimeError:  # the loop closed: nobody waits for the result
            if error is None:
                discard(value)  # type: ignore[arg-type]

    thread = threading.Thread(target=main, name="pycompose-dns-netns", daemon=True)
    thread.start()
    value = await future
    thread.join()  # it delivered and is returning: no thread is left behind
    return value


# --- the service -------------------------------------------------------------------


@dataclass
class _Endpoint:
    """One container's pair of sockets and what it may see."""

    key: str
    netns_path: str
    networks: frozenset[str]
    forward: bool
    upstreams: tuple[Upstream, ...] | None
    udp: asyncio.DatagramTransport | None = None
    tcp: asyncio.Server | None = None
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    connections: int = 0


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, service: DnsService, endpoint: _Endpoint) -> None:
        self.service = service
        self.endpoint = endpoint

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.service._on_datagram(self.endpoint, data, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("dns %s: %s", self.endpoint.key, exc)  # e.g. the client went away


class DnsService:
    """The embedded resolver: an async context manager serving any number of endpoints.

    ``records`` is the name table (change it at any time, from any thread). ``upstreams``
    replaces the host's resolv.conf (tests, ``--dns``); by default the resolv.conf at
    ``resolv_conf`` is read and re-read when it changes. ``timeout`` is per upstream.

    For a container's peers to resolve from its first instant, the engine calls
    ``records.set`` for it and ``add_endpoint`` for its namespace before its process
    starts, and ``records.remove`` and ``remove_endpoint`` when it stops (the sockets
    keep the namespace alive until then). Endpoints are not persisted: after a daemon
    restart, add them again for the containers it re-adopts.
    """

    def __init__(
        self,
        records: NameTable | None = None,
        *,
        opener: SocketOpener | None = None,
        upstreams: Sequence[Upstream] | None = None,
        resolv_conf: Path = RESOLV_CONF,
        timeout: float = 2.0,
    ) -> None:
        self.records = records if records is not None else NameTable()
        self._opener: SocketOpener = opener if opener is not None else NetnsSocketOpener()
        self._upstreams = tuple(upstreams) if upstreams is not None else None
        self._host = HostResolvers(resolv_conf)
        self._forwarder = Forwarder(timeout=timeout)
        self._endpoints: dict[str, _Endpoint] = {}
        self._closed = False

    async def __aenter__(self) -> DnsService:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop serving every endpoint; the service cannot be used afterwards."""
        self._closed = True
        for key in list(self._endpoints):
            await self.remove_endpoint(key)

    def endpoints(self) -> frozenset[str]:
        """The keys of the endpoints being served."""
        return frozenset(self._endpoints)

    async def add_endpoint(
        self,
        key: str,
        netns_path: str,
        networks: frozenset[str],
        *,
        forward: bool = True,
        upstreams: Sequence[Upstream] | None = None,
    ) -> None:
        """Start answering on 127.0.0.11:53 inside ``netns_path`` for ``networks``.

        ``forward=False`` (internal networks) answers unknown names with SERVFAIL instead
        of asking upstream; ``upstreams`` overrides the service's upstreams for this
        endpoint (a container's ``dns:``). Returns once queries are being served.
        """
        if self._closed:
            raise DnsError("the DNS service is closed")
        if key in self._endpoints:
            raise DnsError(f"DNS endpoint {key!r} already exists")
        endpoint = _Endpoint(
            key,
            netns_path,
            _normalised(networks),
            forward,
            tuple(upstreams) if upstreams is not None else None,
        )
        self._endpoints[key] = endpoint  # reserve the key while the thread works
        try:
            udp, tcp = await _on_fresh_thread(lambda: self._opener.open(netns_path), _close_pair)
        except BaseException:
            self._forget(endpoint)
            raise
        try:
            self._check_still_wanted(endpoint)
            await self._serve(endpoint, udp, tcp)
            self._check_still_wanted(endpoint)  # not removed while we were setting up
        except BaseException:
            self._forget(endpoint)
            await self._shutdown(endpoint)
            _close_pair((udp, tcp))  # a second close of a socket is harmless
            raise

    async def _serve(self, endpoint: _Endpoint, udp: socket.socket, tcp: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        udp.setblocking(False)
        endpoint.udp, _ = await loop.create_datagram_endpoint(
            lambda: _UdpProtocol(self, endpoint), sock=udp
        )
        endpoint.tcp = await asyncio.start_server(
            lambda reader, writer: self._on_connection(endpoint, reader, writer),
            sock=tcp,
        )

    def _check_still_wanted(self, endpoint: _Endpoint) -> None:
        if self._endpoints.get(endpoint.key) is not endpoint:
            raise DnsError(f"DNS endpoint {endpoint.key!r} was removed while being added")

    def _forget(self, endpoint: _Endpoint) -> None:
        if self._endpoints.get(endpoint.key) is endpoint:
            del self._endpoints[endpoint.key]

    def update_endpoint(
        self, key: str, networks: frozenset[str] | None = None, forward: bool | None = None
    ) -> None:
        """Change what an endpoint sees (network connect/disconnect); immediate."""
        endpoint = self._endpoint(key)
        if networks is not None:
            endpoint.networks = _normalised(networks)
        if forward is not None:
            endpoint.forward = forward

    async def remove_endpoint(self, key: str) -> bool:
        """Stop answering for ``key`` and close its sockets; False if there was none."""
        endpoint = self._endpoints.pop(key, None)
        if endpoint is None:
            return False
        await self._shutdown(endpoint)
        return True

    async def _shutdown(self, endpoint: _Endpoint) -> None:
        if endpoint.udp is not None:
            endpoint.udp.close()
        if endpoint.tcp is not None:
            endpoint.tcp.close()
        tasks = list(endpoint.tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if endpoint.tcp is not None:
            await endpoint.tcp.wait_closed()
        # Let the transports' close callbacks run: the sockets (which pin the
        # namespace) are really closed when we return.
        await asyncio.sleep(0)

    def _endpoint(self, key: str) -> _Endpoint:
        try:
            return self._endpoints[key]
        except KeyError:
            raise DnsError(f"no DNS endpoint {key!r}") from None

    # --- queries ---

    def _on_datagram(self, endpoint: _Endpoint, data: bytes, addr: tuple[str | int, ...]) -> None:
        try:
            decoded = decode(data)
            if decoded is None:
                return
            transport = endpoint.udp
            if transport is None:
                return
            if isinstance(decoded, bytes):
                transport.sendto(decoded, addr)
                return
            local = self._local(endpoint, decoded)
            if local is not None:
                transport.sendto(fit_udp(decoded, local), addr)
                return
            self._spawn(endpoint, self._forward_udp(endpoint, decoded, addr))
        except Exception:  # one bad packet must never stop the others
            log.exception("dns %s: dropped a query", endpoint.key)

    def _local(self, endpoint: _Endpoint, query: Query) -> bytes | None:
        """The reply that needs no upstream, or None to forward."""
        reply = answer_locally(query, self.records, endpoint.networks)
        if reply is not None:
            return reply
        if not endpoint.forward or not self._upstreams_for(endpoint):
            # Docker does the same: no way out means the server failed, not NXDOMAIN.
            return encode(query, SERVFAIL)
        return None

    def _upstreams_for(self, endpoint: _Endpoint) -> tuple[Upstream, ...]:
        if endpoint.upstreams is not None:
            return endpoint.upstreams
        if self._upstreams is not None:
            return self._upstreams
        return self._host.current()

    async def _forward(self, endpoint: _Endpoint, query: Query, tcp: bool) -> bytes:
        reply = await self._forwarder.forward(query.raw, self._upstreams_for(endpoint), tcp)
        return reply if reply is not None else encode(query, SERVFAIL)

    async def _forward_udp(
        self, endpoint: _Endpoint, query: Query, addr: tuple[str | int, ...]
    ) -> None:
        reply = fit_udp(query, await self._forward(endpoint, query, tcp=False))
        if endpoint.udp is not None and not endpoint.udp.is_closing():
            endpoint.udp.sendto(reply, addr)

    def _spawn(self, endpoint: _Endpoint, work: Coroutine[object, object, None]) -> None:
        task = asyncio.create_task(work)
        endpoint.tasks.add(task)
        task.add_done_callback(lambda done: _finished(endpoint, done))

    async def _on_connection(
        self, endpoint: _Endpoint, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if task is None or endpoint.connections >= _TCP_MAX_CONNECTIONS:
            writer.close()
            return
        endpoint.tasks.add(task)
        endpoint.connections += 1
        try:
            await self._serve_stream(endpoint, reader, writer)
        except (OSError, asyncio.IncompleteReadError, TimeoutError):
            pass  # the client hung up or went quiet
        finally:
            endpoint.tasks.discard(task)
            endpoint.connections -= 1
            writer.close()

    async def _serve_stream(
        self, endpoint: _Endpoint, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        while True:
            head = await asyncio.wait_for(reader.readexactly(2), _TCP_IDLE_SECONDS)
            (length,) = struct.unpack("!H", head)
            data = await asyncio.wait_for(reader.readexactly(length), _TCP_IDLE_SECONDS)
            decoded = decode(data)
            if decoded is None:
                return  # malformed: drop the connection, as for a bad datagram
            if isinstance(decoded, bytes):
                reply = decoded
            else:
                local = self._local(endpoint, decoded)
                reply = local if local is not None else await self._forward(endpoint, decoded, True)
            writer.write(struct.pack("!H", len(reply)) + reply)
            await writer.drain()


def _finished(endpoint: _Endpoint, task: asyncio.Task[None]) -> None:
    endpoint.tasks.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.error("dns %s: forwarding failed", endpoint.key, exc_info=task.exception())


def _normalised(networks: frozenset[str]) -> frozenset[str]:
    return frozenset(normalise(network) for network in networks)


def _close_pair(pair: tuple[socket.socket, socket.socket]) -> None:
    for sock in pair:
        sock.close()


__all__ = [
    "DnsService",
    "NetnsSocketOpener",
    "Query",
    "SocketOpener",
    "answer_locally",
    "decode",
    "encode",
    "fit_udp",
]
