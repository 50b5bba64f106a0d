"""Upstream forwarding: resolv.conf, reply matching, UDP and TCP, timeouts, errors.

``FakeUpstream`` (a tiny dnspython-based server on a loopback address) is also used by
tests/unit/test_dns_server.py and the integration tests.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
from collections.abc import Coroutine
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar, cast

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from pycompose.netns.dns_forward import (
    Forwarder,
    HostResolvers,
    Upstream,
    matches,
    parse_resolv_conf,
    parse_upstream,
    usable,
)
from pycompose.netns.dns_records import DnsError

T = TypeVar("T")
BIG_COUNT = 60


class FakeUpstream:
    """An upstream resolver for tests, on UDP and TCP of one loopback port.

    ``answers`` maps names to IPv4 addresses. ``slow.test`` never answers, ``servfail.test``
    fails, ``big.test`` has 60 A records (truncated over UDP), anything else is NXDOMAIN.
    Every question it sees is kept in ``seen`` as (protocol, name, type).
    """

    def __init__(self, answers: dict[str, list[str]] | None = None, host: str = "127.0.0.1"):
        self.answers = answers or {}
        self.host = host
        self.seen: list[tuple[str, str, str]] = []
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self.port = 0

    @property
    def upstream(self) -> Upstream:
        return Upstream(self.host, self.port)

    async def __aenter__(self) -> FakeUpstream:
        loop = asyncio.get_running_loop()
        for _ in range(20):  # the TCP port may be taken by someone else: pick another
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            udp.bind((self.host, 0))
            port = udp.getsockname()[1]
            try:
                self._tcp = await asyncio.start_server(self._on_tcp, self.host, port)
            except OSError:
                udp.close()
                continue
            self._udp, _ = await loop.create_datagram_endpoint(
                lambda: _UpstreamProtocol(self), sock=udp
            )
            self.port = port
            return self
        raise RuntimeError("no free port pair for the fake upstream")

    async def __aexit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
            await self._tcp.wait_closed()

    def reply(self, wire: bytes, protocol: str) -> bytes | None:
        query = dns.message.from_wire(wire)
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        self.seen.append((protocol, name, dns.rdatatype.to_text(question.rdtype)))
        if name == "slow.test":
            return None
        response = dns.message.make_response(query)
        response.flags |= dns.flags.RA
        addresses = self.answers.get(name)
        if name == "big.test":
            addresses = [f"192.0.2.{index}" for index in range(1, BIG_COUNT + 1)]
        if name == "servfail.test":
            response.set_rcode(dns.rcode.SERVFAIL)
        elif addresses is None:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif question.rdtype == dns.rdatatype.A:
            response.answer.append(
                dns.rrset.from_text_list(question.name, 60, "IN", "A", addresses)
            )
        out = response.to_wire()
        limit = max(512, query.payload) if query.edns >= 0 else 512
        if protocol == "udp" and len(out) > limit:
            response.answer.clear()
            response.flags |= dns.flags.TC
            out = response.to_wire()
        return out

    async def _on_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                (length,) = struct.unpack("!H", await reader.readexactly(2))
                out = self.reply(await reader.readexactly(length), "tcp")
                if out is not None:
                    writer.write(struct.pack("!H", len(out)) + out)
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


class _UpstreamProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: FakeUpstream) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        out = self.server.reply(data, "udp")
        if out is not None and self.transport is not None:
            self.transport.sendto(out, addr)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def query_wire(name: str, rdtype: str = "A", ident: int = 4242) -> bytes:
    query = dns.message.make_query(name, rdtype)
    query.id = ident
    return query.to_wire()


# --- parsing -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.2.3.4", Upstream("1.2.3.4", 53)),
        ("1.2.3.4:5353", Upstream("1.2.3.4", 5353)),
        ("::1", Upstream("::1", 53)),
        ("[::1]:5353", Upstream("::1", 5353)),
        ("fe80::1%eth0", Upstream("fe80::1%eth0", 53)),
    ],
)
def test_parse_upstream(text: str, expected: Upstream) -> None:
    assert parse_upstream(text) == expected


@pytest.mark.parametrize("text", ["dns.example.com", "1.2.3.4:0", "1.2.3.4:x", "[::1]:99999"])
def test_parse_upstream_rejects(text: str) -> None:
    with pytest.raises(DnsError, match="upstream DNS server"):
        parse_upstream(text)


def test_resolv_conf_nameservers_in_order_without_ourselves() -> None:
    text = (
        "# comment\nsearch example.com\nnameserver 127.0.0.53\n"
        "nameserver 127.0.0.11\nnameserver bogus\nnameserver ::1\nnameserver 127.0.0.53\n"
        "options ndots:0\n"
    )
    assert parse_resolv_conf(text) == (Upstream("127.0.0.53"), Upstream("::1"))
    assert usable([Upstream("127.0.0.11", 5353)]) == (Upstream("127.0.0.11", 5353),)


def test_host_resolvers_reread_the_file_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "resolv.conf"
    path.write_text("nameserver 10.0.0.1\n")
    host = HostResolvers(path, recheck_seconds=0)
    assert host.current() == (Upstream("10.0.0.1"),)
    path.write_text("nameserver 10.0.0.2\nnameserver 10.0.0.3\n")
    os.utime(path, ns=(1, 1))  # a different stamp even within one clock tick
    assert host.current() == (Upstream("10.0.0.2"), Upstream("10.0.0.3"))
    path.unlink()
    assert host.current() == ()


def test_matches_checks_id_qr_and_question() -> None:
    query = query_wire("Example.COM")
    response = dns.message.make_response(dns.message.from_wire(query)).to_wire()
    assert matches(query, response)
    assert matches(query, response.replace(b"Example", b"eXAMPLE"))
    assert not matches(query, query)  # QR unset
    assert not matches(query, b"\x00\x00" + response[2:])
    other = dns.message.make_response(dns.message.from_wire(query_wire("example.org"))).to_wire()
    assert not matches(query, other)
    aaaa = dns.message.make_response(dns.message.from_wire(query_wire("example.com", "AAAA")))
    assert not matches(query, aaaa.to_wire())
    no_question = response[:4] + b"\x00\x00" + response[6:12]
    assert not matches(query, no_question)  # NOERROR without a question: not ours
    assert matches(query, no_question[:3] + b"\x82" + no_question[4:])  # SERVFAIL may omit it


# --- forwarding ------------------------------------------------------------------


def test_forward_over_udp_and_tcp_restores_the_client_id() -> None:
    async def scenario() -> None:
        async with FakeUpstream({"example.com": ["192.0.2.7"]}) as upstream:
            forwarder = Forwarder(timeout=1.0)
            for tcp in (False, True):
                reply = await forwarder.forward(query_wire("example.com"), [upstream.upstream], tcp)
                assert reply is not None
                message = dns.message.from_wire(reply)
                assert message.id == 4242
                assert [str(r) for r in message.answer[0]] == ["192.0.2.7"]
            assert [seen[0] for seen in upstream.seen] == ["udp", "tcp"]

    run(scenario())


def test_nxdomain_and_servfail_pass_through() -> None:
    async def scenario() -> None:
        async with FakeUpstream() as upstream:
            forwarder = Forwarder(timeout=1.0)
            for name, rcode in (("nothing.test", "NXDOMAIN"), ("servfail.test", "SERVFAIL")):
                reply = await forwarder.forward(query_wire(name), [upstream.upstream], False)
                assert reply is not None
                assert dns.rcode.to_text(dns.message.from_wire(reply).rcode()) == rcode

    run(scenario())


def test_silent_or_dead_upstreams_give_none_and_the_next_one_is_tried() -> None:
    async def scenario() -> None:
        async with FakeUpstream({"example.com": ["192.0.2.8"]}) as upstream:
            dead = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            dead.bind(("127.0.0.1", 0))
            dead_port = dead.getsockname()[1]
            dead.close()  # nobody listens there now: ICMP port unreachable
            forwarder = Forwarder(timeout=0.3)
            assert (
                await forwarder.forward(query_wire("slow.test"), [upstream.upstream], False) is None
            )
            both = [Upstream("127.0.0.1", dead_port), upstream.upstream]
            reply = await forwarder.forward(query_wire("example.com"), both, False)
            assert reply is not None and dns.message.from_wire(reply).answer
            assert await forwarder.forward(query_wire("example.com"), [], False) is None

    run(scenario())


def test_truncated_upstream_udp_reply_passes_through_and_tcp_has_everything() -> None:
    async def scenario() -> None:
        async with FakeUpstream() as upstream:
            forwarder = Forwarder(timeout=1.0)
            udp = await forwarder.forward(query_wire("big.test"), [upstream.upstream], False)
            assert udp is not None
            assert dns.message.from_wire(udp).flags & dns.flags.TC
            tcp = await forwarder.forward(query_wire("big.test"), [upstream.upstream], True)
            assert tcp is not None
            assert len(dns.message.from_wire(tcp).answer[0]) == 60

    run(scenario())


def test_a_flood_beyond_the_in_flight_limit_fails_fast() -> None:
    async def scenario() -> None:
        async with FakeUpstream() as upstream:
            forwarder = Forwarder(timeout=0.5, max_in_flight=2)
            slow = [
                asyncio.create_task(
                    forwarder.forward(query_wire("slow.test"), [upstream.upstream], False)
                )
                for _ in range(2)
            ]
            await asyncio.sleep(0.05)
            started = asyncio.get_running_loop().time()
            third = await forwarder.forward(query_wire("slow.test"), [upstream.upstream], False)
            assert third is None
            assert asyncio.get_running_loop().time() - started < 0.2
            assert await asyncio.gather(*slow) == [None, None]

    run(scenario())
