"""The embedded resolver in real network namespaces, asked from inside them.

Each test makes its own namespaces (``unshare --net=<file>`` bind-mounts the new
namespace on a file in a temp dir, with ``lo`` down), serves them with the real opener
(127.0.0.11:53), and queries from inside with ``nsenter`` running busybox ``nslookup``, a
dnspython client or glibc's getaddrinfo. Names the table does not know go to a
``FakeUpstream`` on a host loopback address, never to the host's resolv.conf. At the end
nothing may be left: no namespace file or mount, no helper thread, no extra descriptor.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest

from pycompose.netns.dns import DnsService
from pycompose.netns.dns_records import DnsError
from tests.unit.test_dns_forward import FakeUpstream

pytestmark = pytest.mark.root

# Runs inside a namespace: each job is [name, type, "udp"|"tcp"|"raw"]; prints one JSON
# result per job: [rcode text, truncated?, sorted answers] or ["error", exception name].
CLIENT = r"""
import json, socket, sys
import dns.flags, dns.message, dns.query, dns.rcode
out = []
for name, rdtype, how in json.loads(sys.argv[1]):
    try:
        if how == "raw":
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.sendto(bytes.fromhex(name), ("127.0.0.11", 53))
            out.append(["sent"])
            continue
        q = dns.message.make_query(name, rdtype)
        ask = dns.query.tcp if how == "tcp" else dns.query.udp
        r = ask(q, "127.0.0.11", timeout=float(sys.argv[2]))
        answers = sorted(str(rd) for rrset in r.answer for rd in rrset)
        out.append([dns.rcode.to_text(r.rcode()), bool(r.flags & dns.flags.TC), answers])
    except Exception as err:
        out.append(["error", type(err).__name__])
print(json.dumps(out))
"""

GETADDRINFO = r"""
import socket, sys
for name in sys.argv[1:]:
    try:
        infos = socket.getaddrinfo(name, 80, type=socket.SOCK_STREAM)
        print(name, " ".join(sorted({info[4][0] for info in infos})))
    except socket.gaierror as err:
        print(name, "gaierror", err.errno)
"""


class Namespaces:
    """Creates namespace files under a temp dir; removes every one of them at the end."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.paths: list[Path] = []

    def make(self, name: str) -> str:
        path = self.root / name
        path.touch()
        subprocess.run(["unshare", f"--net={path}", "true"], check=True)
        self.paths.append(path)
        return str(path)

    def cleanup(self) -> None:
        for path in self.paths:
            subprocess.run(["umount", str(path)], check=False, capture_output=True)
            path.unlink(missing_ok=True)


def mounted(root: Path) -> list[str]:
    with open("/proc/self/mountinfo") as info:
        return [line for line in info if str(root) in line]


def helper_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("pycompose-dns")]


@pytest.fixture
def namespaces(tmp_path: Path) -> Iterator[Namespaces]:
    fds_before = len(os.listdir("/proc/self/fd"))
    made = Namespaces(tmp_path)
    try:
        yield made
    finally:
        made.cleanup()
    assert mounted(tmp_path) == []
    assert not any(tmp_path.iterdir())
    assert helper_threads() == []
    assert len(os.listdir("/proc/self/fd")) == fds_before  # no socket pins a namespace


async def inside(netns: str, *argv: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        "nsenter", f"--net={netns}", *argv,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def nslookup(netns: str, name: str) -> tuple[int, str]:
    return await inside(netns, "busybox", "nslookup", name, "127.0.0.11")


async def client(netns: str, jobs: list[list[str]], timeout: float = 2.0) -> list[list[Any]]:
    code, out = await inside(netns, sys.executable, "-c", CLIENT, json.dumps(jobs), str(timeout))
    assert code == 0, out
    result: list[list[Any]] = json.loads(out)
    return result


Scenario = Callable[[DnsService, Namespaces, FakeUpstream], Coroutine[Any, Any, None]]


def serve(namespaces: Namespaces, scenario: Scenario, timeout: float = 1.0) -> None:
    async def main() -> None:
        upstream = FakeUpstream({"example.com": ["192.0.2.1"]})
        async with upstream, DnsService(upstreams=[upstream.upstream], timeout=timeout) as service:
            names = service.records
            names.set("a" * 64, "web-1", "a" * 12, "front", "10.1.0.2", "fd00::2", ["www"], "web")
            names.set("b" * 64, "web-2", "b" * 12, "front", "10.1.0.3", None, [], "web")
            names.set("c" * 64, "db-1", "c" * 12, "back", "10.2.0.2", None, [], "db")
            await scenario(service, namespaces, upstream)

    asyncio.run(main())


def test_busybox_nslookup_names_aliases_services_and_ptr(namespaces: Namespaces) -> None:
    async def scenario(service: DnsService, ns: Namespaces, up: FakeUpstream) -> None:
        netns = ns.make("c1")
        await service.add_endpoint("c1", netns, frozenset({"front"}))
        code, out = await inside(netns, "ip", "-o", "link", "show", "lo")
        assert code == 0 and "UP" in out.split("<")[1].split(">")[0]  # we brought lo up
        code, out = await nslookup(netns, "web-1")
        assert code == 0 and "10.1.0.2" in out and "fd00::2" in out, out
        code, out = await nslookup(netns, "www")
        assert code == 0 and "10.1.0.2" in out, out
        code, out = await nslookup(netns, "web")
        assert code == 0 and "10.1.0.2" in out and "10.1.0.3" in out, out
        code, out = await nslookup(netns, "10.1.0.3")
        assert code == 0 and "name = web-2.front" in out, out
        code, out = await nslookup(netns, "db-1")
        assert code != 0 and "NXDOMAIN" in out, out
        assert ("udp", "db-1", "A") in up.seen  # not ours: the upstream said NXDOMAIN

    serve(namespaces, scenario)


def test_dnspython_inside_isolation_forwarding_and_internal(namespaces: Namespaces) -> None:
    async def scenario(service: DnsService, ns: Namespaces, up: FakeUpstream) -> None:
        front, back, internal = ns.make("front"), ns.make("back"), ns.make("internal")
        await asyncio.gather(
            service.add_endpoint("front", front, frozenset({"front"})),
            service.add_endpoint("back", back, frozenset({"back"})),
            service.add_endpoint("internal", internal, frozenset({"front"}), forward=False),
        )
        jobs = [["db-1", "A", "udp"], ["web", "A", "udp"], ["web-1", "AAAA", "tcp"],
                ["example.com", "A", "udp"], ["servfail.test", "A", "udp"],
                ["2.0.1.10.in-addr.arpa", "PTR", "udp"]]  # fmt: skip
        assert await client(front, jobs) == [
            ["NXDOMAIN", False, []],
            ["NOERROR", False, ["10.1.0.2", "10.1.0.3"]],
            ["NOERROR", False, ["fd00::2"]],
            ["NOERROR", False, ["192.0.2.1"]],
            ["SERVFAIL", False, []],
            ["NOERROR", False, ["web-1.front."]],
        ]
        assert await client(back, [["db", "A", "udp"], ["web", "A", "udp"]]) == [
            ["NOERROR", False, ["10.2.0.2"]],
            ["NXDOMAIN", False, []],
        ]
        up.seen.clear()
        assert await client(internal, [["example.com", "A", "udp"], ["web-2", "A", "tcp"]]) == [
            ["SERVFAIL", False, []],
            ["NOERROR", False, ["10.1.0.3"]],
        ]
        assert up.seen == []

    serve(namespaces, scenario)


def test_truncation_then_tcp_and_upstream_timeout(namespaces: Namespaces) -> None:
    async def scenario(service: DnsService, ns: Namespaces, up: FakeUpstream) -> None:
        for index in range(40):
            cid = f"{index:064x}"
            service.records.set(cid, f"r{index}", cid[:12], "front", f"10.3.0.{index + 2}",
                                service="many")  # fmt: skip
        netns = ns.make("c1")
        await service.add_endpoint("c1", netns, frozenset({"front"}))
        udp, tcp, big_udp, big_tcp, slow = await client(
            netns,
            [["many", "A", "udp"], ["many", "A", "tcp"], ["big.test", "A", "udp"],
             ["big.test", "A", "tcp"], ["slow.test", "A", "udp"]],
            timeout=3.0,
        )  # fmt: skip
        assert udp == ["NOERROR", True, []]
        assert tcp[:2] == ["NOERROR", False] and len(tcp[2]) == 40
        assert big_udp[:2] == ["NOERROR", True]
        assert big_tcp[:2] == ["NOERROR", False] and len(big_tcp[2]) == 60
        assert slow == ["SERVFAIL", False, []]

    serve(namespaces, scenario, timeout=0.5)


def test_malformed_packets_from_inside_change_nothing(namespaces: Namespaces) -> None:
    async def scenario(service: DnsService, ns: Namespaces, up: FakeUpstream) -> None:
        netns = ns.make("c1")
        await service.add_endpoint("c1", netns, frozenset({"front"}))
        junk = ["00", "ffff" * 20, "1234010000010000000000000377656200", os.urandom(700).hex(),
                "abcd81000001000000000000037765620000010001"]  # fmt: skip
        results = await client(
            netns, [[hexed, "", "raw"] for hexed in junk] + [["web-1", "A", "udp"]]
        )
        assert results[-1] == ["NOERROR", False, ["10.1.0.2"]]
        assert all(result == ["sent"] for result in results[:-1])

    serve(namespaces, scenario)


def test_getaddrinfo_through_127_0_0_11(namespaces: Namespaces, tmp_path: Path) -> None:
    resolv = tmp_path.parent / f"{tmp_path.name}-resolv.conf"
    resolv.write_text("nameserver 127.0.0.11\noptions ndots:0\n")

    async def scenario(service: DnsService, ns: Namespaces, up: FakeUpstream) -> None:
        for index in range(40):  # more than fit in 512 bytes: glibc must retry over TCP
            cid = f"{index:064x}"
            service.records.set(cid, f"r{index}", cid[:12], "front", f"10.3.0.{index + 2}",
                                service="many")  # fmt: skip
        netns = ns.make("c1")
        await service.add_endpoint("c1", netns, frozenset({"front"}))
        script = f'mount --bind {resolv} /etc/resolv.conf && exec {sys.executable} -c "$0" "$@"'
        code, out = await inside(
            netns,
            "unshare",
            "--mount",
            "sh",
            "-c",
            script,
            GETADDRINFO,
            "web-1",
            "www",
            "nope",
            "many",
        )
        assert code == 0, out
        lines = dict(line.split(" ", 1) for line in out.splitlines())
        assert lines["web-1"] == "10.1.0.2 fd00::2"
        assert lines["www"] == "10.1.0.2 fd00::2"
        assert lines["nope"].startswith("gaierror")
        assert len(lines["many"].split()) == 40

    try:
        serve(namespaces, scenario)
    finally:
        resolv.unlink()


def test_removal_stops_answers_at_once(namespaces: Namespaces) -> None:
    async def scenario(service: DnsService, ns: Namespaces, up: FakeUpstream) -> None:
        netns = ns.make("c1")
        await service.add_endpoint("c1", netns, frozenset({"front"}))
        service.records.set("d" * 64, "late", "d" * 12, "front", "10.1.0.9")
        assert await client(netns, [["late", "A", "udp"]]) == [["NOERROR", False, ["10.1.0.9"]]]
        service.records.remove("d" * 64)
        assert await client(netns, [["late", "A", "udp"]]) == [["NXDOMAIN", False, []]]
        assert await service.remove_endpoint("c1")
        gone = await client(netns, [["web-1", "A", "udp"], ["web-1", "A", "tcp"]], timeout=0.5)
        assert gone[0][0] == "error" and gone[1] == ["error", "ConnectionRefusedError"]
        await service.add_endpoint("c1", netns, frozenset({"front"}))  # the address is free again
        assert await client(netns, [["web-1", "A", "tcp"]]) == [["NOERROR", False, ["10.1.0.2"]]]

    serve(namespaces, scenario)


def test_endpoint_errors_from_the_real_opener(namespaces: Namespaces, tmp_path: Path) -> None:
    async def scenario(service: DnsService, ns: Namespaces, up: FakeUpstream) -> None:
        netns = ns.make("c1")
        await service.add_endpoint("c1", netns, frozenset({"front"}))
        with pytest.raises(DnsError, match=r"cannot serve DNS on 127\.0\.0\.11:53 in"):
            await service.add_endpoint("again", netns, frozenset({"front"}))
        plain = tmp_path / "plain"
        plain.touch()
        try:
            with pytest.raises(DnsError, match="cannot enter network namespace"):
                await service.add_endpoint("plain", str(plain), frozenset({"front"}))
        finally:
            plain.unlink()
        with pytest.raises(DnsError, match="cannot open network namespace"):
            await service.add_endpoint("missing", str(tmp_path / "missing"), frozenset())
        assert service.endpoints() == frozenset({"c1"})

    serve(namespaces, scenario)
