"""The resolver's wire fast path against dnspython, and the service on loopback sockets.

The service runs with ``LoopbackOpener``, which binds 127.0.0.1:<random> in the test's own
namespace instead of 127.0.0.11:53 in a container's, so no root is needed here; the real
opener is exercised in tests/integration/test_dns_netns.py.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import struct
import threading
from collections.abc import Callable, Coroutine
from typing import Any

import dns.asyncquery
import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdatatype
import dns.reversename
import pytest

from pycompose.netns.dns import DnsService, Query, decode, encode, fit_udp
from pycompose.netns.dns_records import DnsError
from tests.unit.test_dns_forward import FakeUpstream, run


class LoopbackOpener:
    """Binds UDP and TCP on one random 127.0.0.1 port; remembers what it was asked.

    With ``gate`` set, each open waits until the gate opens (a slow namespace).
    """

    def __init__(self, fail: bool = False, gate: threading.Event | None = None) -> None:
        self.fail = fail
        self.gate = gate
        self.calls: list[tuple[str, str]] = []  # (netns path, thread name)
        self.ports: dict[str, int] = {}

    def open(self, netns_path: str) -> tuple[socket.socket, socket.socket]:
        self.calls.append((netns_path, threading.current_thread().name))
        if self.gate is not None:
            self.gate.wait(10)
        if self.fail:
            raise DnsError(f"cannot enter network namespace {netns_path}: test")
        while True:
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                tcp.bind(("127.0.0.1", port))
            except OSError:
                udp.close()
                tcp.close()
                continue
            tcp.listen(16)
            self.ports[netns_path] = port
            return udp, tcp


def populate(service: DnsService) -> None:
    names = service.records
    names.set("a" * 64, "proj-web-1", "a" * 12, "front", "10.1.0.2", "fd00::2", ["www"], "web")
    names.set("b" * 64, "proj-web-2", "b" * 12, "front", "10.1.0.3", None, [], "web")
    names.set("c" * 64, "proj-db-1", "c" * 12, "back", "10.2.0.2", None, [], "db")


Scenario = Callable[[DnsService, LoopbackOpener, FakeUpstream], Coroutine[Any, Any, None]]


def serve(scenario: Scenario, timeout: float = 0.5) -> None:
    async def main() -> None:
        opener = LoopbackOpener()
        async with FakeUpstream({"example.com": ["192.0.2.1"]}) as upstream:
            async with DnsService(
                opener=opener, upstreams=[upstream.upstream], timeout=timeout
            ) as service:
                populate(service)
                await scenario(service, opener, upstream)
            assert service.endpoints() == frozenset()

    run(main())


async def ask(
    port: int, name: str, rdtype: str = "A", tcp: bool = False, timeout: float = 2.0
) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype)
    if tcp:
        return await dns.asyncquery.tcp(query, "127.0.0.1", port=port, timeout=timeout)
    return await dns.asyncquery.udp(query, "127.0.0.1", port=port, timeout=timeout)


def texts(reply: dns.message.Message) -> list[str]:
    return sorted(str(rdata) for rrset in reply.answer for rdata in rrset)


# --- wire format ------------------------------------------------------------------


@pytest.mark.parametrize("edns", [None, 0])
def test_fast_decode_and_encode_agree_with_dnspython(edns: int | None) -> None:
    query = dns.message.make_query(
        "Web.Front.", "AAAA", use_edns=False if edns is None else edns, payload=1400
    )
    query.id = 777
    decoded = decode(query.to_wire())
    assert isinstance(decoded, Query)
    assert (decoded.ident, decoded.name, decoded.qtype) == (777, "web.front", 28)
    assert decoded.edns == (None if edns is None else 1400)
    wire = encode(decoded, 0, [(28, bytes(15) + b"\x02"), (28, bytes(15) + b"\x03")], True)
    reply = dns.message.from_wire(wire)
    assert reply.id == 777 and reply.rcode() == dns.rcode.NOERROR
    assert reply.flags & dns.flags.QR and reply.flags & dns.flags.AA and reply.flags & dns.flags.RD
    assert reply.question == query.question
    assert reply.question[0].name.to_text() == "Web.Front."  # the client's case, echoed
    assert texts(reply) == ["::2", "::3"]
    assert reply.answer[0].ttl == 600
    assert reply.edns == (-1 if edns is None else 0)
    if edns is not None:
        assert reply.payload == 1232


def test_unusual_queries_take_the_careful_path() -> None:
    notify = dns.message.make_query("example.com", "SOA")
    notify.set_opcode(dns.opcode.NOTIFY)
    reply = decode(notify.to_wire())
    assert isinstance(reply, bytes) and dns.message.from_wire(reply).rcode() == dns.rcode.NOTIMP

    two = dns.message.make_query("a.example", "A")
    two.question.append(dns.message.make_query("b.example", "A").question[0])
    reply = decode(two.to_wire())
    assert isinstance(reply, bytes) and dns.message.from_wire(reply).rcode() == dns.rcode.FORMERR

    future = dns.message.make_query("example.com", "A", use_edns=1)
    reply = decode(future.to_wire())
    assert isinstance(reply, bytes) and dns.message.from_wire(reply).rcode() == dns.rcode.BADVERS

    with_cookie = dns.message.make_query(
        "web",
        "A",
        use_edns=0,
        options=[dns.edns.GenericOption(dns.edns.OptionType.COOKIE, b"12345678")],
    )
    decoded = decode(with_cookie.to_wire())
    assert isinstance(decoded, Query) and decoded.name == "web" and decoded.edns == 1232


def test_a_dot_inside_a_label_is_not_a_name_separator() -> None:
    query = dns.message.make_query(dns.name.Name([b"web.front", b""]), "A")
    decoded = decode(query.to_wire())
    assert isinstance(decoded, Query) and decoded.name == "web\\.front"


def test_answers_and_junk_are_dropped() -> None:
    query = dns.message.make_query("web", "A")
    answer = dns.message.make_response(query).to_wire()
    assert decode(answer) is None
    assert decode(b"") is None
    assert decode(b"\x12\x34") is None
    assert decode(query.to_wire()[:-2]) is None
    assert decode(query.to_wire() + b"trailing") is None
    generator = random.Random(7)
    for _ in range(2000):
        junk = bytes(generator.randrange(256) for _ in range(generator.randrange(40)))
        decode(junk)  # must not raise, whatever comes out


def test_fit_udp_truncates_beyond_the_client_size() -> None:
    small = decode(dns.message.make_query("web", "A").to_wire())
    large = decode(dns.message.make_query("web", "A", use_edns=0, payload=4096).to_wire())
    assert isinstance(small, Query) and isinstance(large, Query)
    answers = [(1, bytes((10, 0, 0, index))) for index in range(40)]
    for query, truncated in ((small, True), (large, False)):
        reply = dns.message.from_wire(fit_udp(query, encode(query, 0, answers)))
        assert bool(reply.flags & dns.flags.TC) is truncated
        assert len(texts(reply)) == (0 if truncated else 40)


# --- the service ------------------------------------------------------------------


def test_names_aliases_services_ptr_and_nodata() -> None:
    async def scenario(service: DnsService, opener: LoopbackOpener, up: FakeUpstream) -> None:
        await service.add_endpoint("c1", "/ns/c1", frozenset({"front"}))
        port = opener.ports["/ns/c1"]
        assert opener.calls == [("/ns/c1", "pycompose-dns-netns")]
        assert texts(await ask(port, "proj-web-1")) == ["10.1.0.2"]
        assert texts(await ask(port, "WWW")) == ["10.1.0.2"]
        assert texts(await ask(port, "a" * 12)) == ["10.1.0.2"]
        assert texts(await ask(port, "web")) == ["10.1.0.2", "10.1.0.3"]
        assert texts(await ask(port, "web", "AAAA")) == ["fd00::2"]
        assert texts(await ask(port, "proj-web-1.front.")) == ["10.1.0.2"]
        nodata = await ask(port, "proj-web-2", "AAAA")
        assert nodata.rcode() == dns.rcode.NOERROR and nodata.answer == []
        mx = await ask(port, "web", "MX")
        assert mx.rcode() == dns.rcode.NOERROR and mx.answer == []
        ptr = await ask(port, dns.reversename.from_address("10.1.0.3").to_text(), "PTR")
        assert texts(ptr) == ["proj-web-2.front."]
        ptr6 = await ask(port, dns.reversename.from_address("fd00::2").to_text(), "PTR")
        assert texts(ptr6) == ["proj-web-1.front."]
        assert up.seen == []  # nothing of ours went upstream

    serve(scenario)


def test_service_names_round_robin() -> None:
    async def scenario(service: DnsService, opener: LoopbackOpener, up: FakeUpstream) -> None:
        await service.add_endpoint("c1", "/ns/c1", frozenset({"front"}))
        port = opener.ports["/ns/c1"]
        firsts = set()
        for _ in range(30):
            reply = await ask(port, "web")
            firsts.add(str(reply.answer[0][0]))
        assert firsts == {"10.1.0.2", "10.1.0.3"}

    serve(scenario)


def test_isolation_forwarding_and_internal_endpoints() -> None:
    async def scenario(service: DnsService, opener: LoopbackOpener, up: FakeUpstream) -> None:
        await service.add_endpoint("front", "/ns/front", frozenset({"front"}))
        await service.add_endpoint("inside", "/ns/inside", frozenset({"front"}), forward=False)
        front, inside = opener.ports["/ns/front"], opener.ports["/ns/inside"]
        assert (await ask(front, "proj-db-1")).rcode() == dns.rcode.NXDOMAIN
        assert up.seen == [("udp", "proj-db-1", "A")]  # it was not ours to answer
        assert texts(await ask(front, "example.com")) == ["192.0.2.1"]
        assert (await ask(front, "servfail.test")).rcode() == dns.rcode.SERVFAIL
        up.seen.clear()
        assert (await ask(inside, "example.com")).rcode() == dns.rcode.SERVFAIL
        assert (await ask(inside, "example.com", tcp=True)).rcode() == dns.rcode.SERVFAIL
        assert texts(await ask(inside, "proj-web-1")) == ["10.1.0.2"]
        assert up.seen == []  # internal: never forwarded
        service.update_endpoint("inside", networks=frozenset({"front", "back"}))
        assert texts(await ask(inside, "proj-db-1")) == ["10.2.0.2"]
        service.update_endpoint("front", networks=frozenset({"back"}))
        assert texts(await ask(front, "db")) == ["10.2.0.2"]
        assert (await ask(front, "www")).rcode() == dns.rcode.NXDOMAIN

    serve(scenario)


def test_per_endpoint_upstreams() -> None:
    async def scenario(service: DnsService, opener: LoopbackOpener, up: FakeUpstream) -> None:
        async with FakeUpstream({"example.com": ["198.51.100.9"]}) as own:
            await service.add_endpoint(
                "c1", "/ns/c1", frozenset({"front"}), upstreams=[own.upstream]
            )
            assert texts(await ask(opener.ports["/ns/c1"], "example.com")) == ["198.51.100.9"]
            assert up.seen == [] and len(own.seen) == 1
            await service.remove_endpoint("c1")

    serve(scenario)


def test_truncation_then_tcp_for_many_replicas_and_for_upstream_answers() -> None:
    async def scenario(service: DnsService, opener: LoopbackOpener, up: FakeUpstream) -> None:
        for index in range(40):
            service.records.set(
                f"{index:064x}", f"many-{index}", f"{index:012x}", "front", f"10.9.0.{index + 2}",
                service="many",
            )  # fmt: skip
        await service.add_endpoint("c1", "/ns/c1", frozenset({"front"}))
        port = opener.ports["/ns/c1"]
        udp = await ask(port, "many")
        assert udp.flags & dns.flags.TC and udp.answer == []
        assert len(texts(await ask(port, "many", tcp=True))) == 40
        big = dns.message.make_query("many", "A", use_edns=0, payload=4096)
        assert len(texts(await dns.asyncquery.udp(big, "127.0.0.1", port=port, timeout=2))) == 40
        upstream_udp = await ask(port, "big.test")
        assert upstream_udp.flags & dns.flags.TC
        assert len(texts(await ask(port, "big.test", tcp=True))) == 60

    serve(scenario)


def test_upstream_timeout_answers_servfail() -> None:
    async def scenario(service: DnsService, opener: LoopbackOpener, up: FakeUpstream) -> None:
        await service.add_endpoint("c1", "/ns/c1", frozenset({"front"}))
        loop = asyncio.get_running_loop()
        started = loop.time()
        reply = await ask(opener.ports["/ns/c1"], "slow.test")
        assert reply.rcode() == dns.rcode.SERVFAIL
        assert 0.25 <= loop.time() - started < 1.5

    serve(scenario, timeout=0.3)


def test_malformed_packets_are_dropped_and_service_goes_on() -> None:
    async def scenario(service: DnsService, opener: LoopbackOpener, up: FakeUpstream) -> None:
        await service.add_endpoint("c1", "/ns/c1", frozenset({"front"}))
        port = opener.ports["/ns/c1"]
        generator = random.Random(11)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
            raw.setblocking(False)
            good = dns.message.make_query("web", "A").to_wire()
            for _ in range(300):
                junk = bytearray(good)
                for _ in range(generator.randrange(1, 6)):
                    junk[generator.randrange(len(junk))] = generator.randrange(256)
                raw.sendto(bytes(junk[: generator.randrange(len(junk) + 1)]), ("127.0.0.1", port))
            raw.sendto(os.urandom(600), ("127.0.0.1", port))
            raw.sendto(dns.message.make_response(dns.message.from_wire(good)).to_wire(),
                       ("127.0.0.1", port))  # fmt: skip
        await asyncio.sleep(0.2)  # a flood can fill the socket buffer; let it drain
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(struct.pack("!H", 5) + b"\x00\x01junk")
        assert await reader.read() == b""  # the connection is dropped, nothing answered
        writer.close()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"\x00")  # half a length, then gone
        writer.close()
        assert texts(await ask(port, "proj-web-1")) == ["10.1.0.2"]
        assert texts(await ask(port, "proj-web-1", tcp=True)) == ["10.1.0.2"]

    serve(scenario)


def test_tcp_connection_serves_several_queries() -> None:
    async def scenario(service: DnsService, opener: LoopbackOpener, up: FakeUpstream) -> None:
        await service.add_endpoint("c1", "/ns/c1", frozenset({"front"}))
        reader, writer = await asyncio.open_connection("127.0.0.1", opener.ports["/ns/c1"])
        for name in ("proj-web-1", "proj-web-2", "example.com"):
            wire = dns.message.make_query(name, "A").to_wire()
            writer.write(struct.pack("!H", len(wire)) + wire)
            (length,) = struct.unpack("!H", await reader.readexactly(2))
            reply = dns.message.from_wire(await reader.readexactly(length))
            assert reply.question[0].name.to_text() == f"{name}."
            assert len(reply.answer) == 1
        writer.close()
        await writer.wait_closed()

    serve(scenario)


def test_changes_and_removal_take_effect_at_once() -> None:
    async def scenario(service: DnsService, opener: LoopbackOpener, up: FakeUpstream) -> None:
        await service.add_endpoint("c1", "/ns/c1", frozenset({"front"}))
        port = opener.ports["/ns/c1"]
        service.records.set("d" * 64, "late", "d" * 12, "front", "10.1.0.9")
        assert texts(await ask(port, "late")) == ["10.1.0.9"]
        service.records.remove("d" * 64)
        assert (await ask(port, "late")).rcode() == dns.rcode.NXDOMAIN
        assert await service.remove_endpoint("c1") is True
        assert await service.remove_endpoint("c1") is False
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", port))  # the port is free again: the socket is closed
        with pytest.raises(OSError):
            await dns.asyncquery.tcp(dns.message.make_query("late", "A"), "127.0.0.1", port=port)

    serve(scenario)


def test_removal_cancels_forwards_in_flight() -> None:
    async def scenario(service: DnsService, opener: LoopbackOpener, up: FakeUpstream) -> None:
        await service.add_endpoint("c1", "/ns/c1", frozenset({"front"}))
        port = opener.ports["/ns/c1"]
        pending = asyncio.create_task(ask(port, "slow.test", timeout=0.8))
        await asyncio.sleep(0.1)
        assert up.seen == [("udp", "slow.test", "A")]
        await service.remove_endpoint("c1")
        with pytest.raises(dns.exception.Timeout):
            await pending

    serve(scenario, timeout=5.0)


def test_endpoint_errors() -> None:
    async def scenario(service: DnsService, opener: LoopbackOpener, up: FakeUpstream) -> None:
        await service.add_endpoint("c1", "/ns/c1", frozenset({"front"}))
        with pytest.raises(DnsError, match="already exists"):
            await service.add_endpoint("c1", "/ns/other", frozenset({"front"}))
        with pytest.raises(DnsError, match="no DNS endpoint 'nope'"):
            service.update_endpoint("nope", networks=frozenset())

    serve(scenario)

    async def failing() -> None:
        async with DnsService(opener=LoopbackOpener(fail=True)) as service:
            with pytest.raises(DnsError, match="cannot enter network namespace /ns/x"):
                await service.add_endpoint("x", "/ns/x", frozenset({"front"}))
            assert service.endpoints() == frozenset()
        with pytest.raises(DnsError, match="closed"):
            await service.add_endpoint("y", "/ns/y", frozenset({"front"}))

    run(failing())


def test_removed_while_being_added_leaves_nothing_open() -> None:
    async def scenario() -> None:
        gate = threading.Event()
        opener = LoopbackOpener(gate=gate)
        async with DnsService(opener=opener, upstreams=[]) as service:
            adding = asyncio.create_task(service.add_endpoint("c1", "/ns/c1", frozenset({"f"})))
            await asyncio.sleep(0.05)
            assert service.endpoints() == frozenset({"c1"})
            assert await service.remove_endpoint("c1") is True
            gate.set()
            with pytest.raises(DnsError, match="removed while being added"):
                await adding
            assert service.endpoints() == frozenset()
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                probe.bind(("127.0.0.1", opener.ports["/ns/c1"]))  # closed again
            assert [t.name for t in threading.enumerate() if t.name.startswith("pycompose")] == []

    run(scenario())


def test_cancelled_add_closes_the_sockets_the_thread_made() -> None:
    async def scenario() -> None:
        gate = threading.Event()
        opener = LoopbackOpener(gate=gate)
        async with DnsService(opener=opener, upstreams=[]) as service:
            adding = asyncio.create_task(service.add_endpoint("c1", "/ns/c1", frozenset({"f"})))
            await asyncio.sleep(0.05)
            adding.cancel()
            with pytest.raises(asyncio.CancelledError):
                await adding
            assert service.endpoints() == frozenset()
            gate.set()
            for _ in range(100):  # the thread delivers to a cancelled future: it discards
                if not any(t.name == "pycompose-dns-netns" for t in threading.enumerate()):
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.01)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                probe.bind(("127.0.0.1", opener.ports["/ns/c1"]))

    run(scenario())
