"""Containers on networks in a real daemon, driven by the docker CLI: embedded DNS by name,
alias and compose service name, isolation between networks, internal networks, a test
upstream resolver, published TCP and UDP ports, port conflicts, host/none/container: modes,
legacy links, network connect/disconnect, and what is left after removal and a SIGKILL.

The engine's DNS upstream is a resolver this module starts on a loopback address
(``PYCOMPOSE_DNS_UPSTREAMS``), so no query leaves the machine. Every test checks that its
containers left no veth, namespace file or DNAT rule behind.
"""

from __future__ import annotations

import io
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest

from pycompose.netns.kernel import LinuxKernel
from tests.fixtures.docker_cli import fails, ok, remove_all_containers, run_docker, settled
from tests.fixtures.engine import (
    EngineProcess,
    load_busybox,
    respawn_engine,
    start_engine,
    stop_engine,
)
from tests.fixtures.images import layout_tarball
from tests.fixtures.network import HTTPD, UDP_ECHO, http_get, kernel_leftovers

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(shutil.which("nft") is None, reason="needs nftables"),
]
OUTSIDE_NAME = "outside.pycompose.test"
OUTSIDE_ADDR = "192.0.2.77"  # TEST-NET-1: only ever resolved, never contacted


class LoopbackUpstream:
    """A tiny UDP resolver on 127.0.0.1: one known name, NXDOMAIN for the rest."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.seen: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        import dns.message
        import dns.rcode
        import dns.rrset

        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(4096)
            except OSError:
                continue
            query = dns.message.from_wire(data)
            name = query.question[0].name.to_text(omit_final_dot=True).lower()
            self.seen.append(name)
            reply = dns.message.make_response(query)
            if name == OUTSIDE_NAME and query.question[0].rdtype == 1:
                reply.answer.append(dns.rrset.from_text(name + ".", 60, "IN", "A", OUTSIDE_ADDR))
            elif name != OUTSIDE_NAME:
                reply.set_rcode(dns.rcode.NXDOMAIN)
            self.sock.sendto(reply.to_wire(), addr)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


@pytest.fixture(scope="module")
def upstream() -> Iterator[LoopbackUpstream]:
    server = LoopbackUpstream()
    yield server
    server.close()


@pytest.fixture(scope="module")
def module_engine(
    busybox_layout: pathlib.Path, upstream: LoopbackUpstream
) -> Iterator[EngineProcess]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYCOMPOSE_DNS_UPSTREAMS", f"127.0.0.1:{upstream.port}")
        eng = start_engine(components=())
    try:
        load_busybox(eng, busybox_layout)
        yield eng
    finally:
        stop_engine(eng)
        left = kernel_leftovers(eng, include_default=True)
        assert left == [], f"engine left behind: {left}"


@pytest.fixture
def eng(module_engine: EngineProcess) -> Iterator[EngineProcess]:
    yield module_engine
    remove_all_containers(module_engine)
    for line in ok(module_engine, "network", "ls", "-q", "--filter", "type=custom").split():
        run_docker(module_engine, "network", "rm", line)
    assert settled(lambda: kernel_leftovers(module_engine)) == []


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("0.0.0.0", 0))
        return int(s.getsockname()[1])


def host_address(eng: EngineProcess) -> str:
    """A non-loopback IPv4 address of the host that is not on one of our bridges."""
    out = subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"],
                         capture_output=True, text=True).stdout  # fmt: skip
    for line in out.splitlines():
        words = line.split()
        if not words[1].startswith(eng.config.bridge_prefix):
            return words[3].split("/")[0]
    pytest.skip("the host has no global IPv4 address")


def ip_of(eng: EngineProcess, name: str, network: str) -> str:
    info = json.loads(ok(eng, "inspect", name))[0]
    return str(info["NetworkSettings"]["Networks"][network]["IPAddress"])


def test_user_network_name_alias_service_and_short_id(eng: EngineProcess) -> None:
    ok(eng, "network", "create", "mynet")
    label = "com.docker.compose.service=websvc"
    ok(eng, "run", "-d", "--name", "web", "--network", "mynet", "--network-alias", "www",
       "-l", label, "busybox", "sh", "-c", HTTPD)  # fmt: skip
    ok(eng, "run", "-d", "--name", "web2", "--network", "mynet", "-l", label,
       "busybox", "sh", "-c", HTTPD)  # fmt: skip
    web, web2 = ip_of(eng, "web", "mynet"), ip_of(eng, "web2", "mynet")
    short = ok(eng, "inspect", "-f", "{{.Id}}", "web")[:12]
    script = (
        "set -e; cat /etc/resolv.conf; nslookup web; ping -c1 -W2 www; nslookup " + short
        + "; nslookup websvc; wget -qO- http://web/; wget -qO- http://websvc/"
    )  # fmt: skip
    out = ok(eng, "run", "--rm", "--network", "mynet", "busybox", "sh", "-c", script)
    assert "nameserver 127.0.0.11" in out and "options ndots:0" in out
    assert f"Address: {web}" in out and f"Address: {web2}" in out
    assert f"64 bytes from {web}" in out
    assert "hello-" in out
    # The real docker CLI, as a user types it.
    assert f"Address: {web}" in ok(eng, "run", "--rm", "--network", "mynet", "busybox",
                                   "nslookup", "web")  # fmt: skip
    # The service name answers with every replica, shuffled.
    seen = set()
    for _ in range(6):
        text = ok(eng, "run", "--rm", "--network", "mynet", "busybox", "nslookup", "websvc")
        first = next(line for line in text.splitlines() if line.startswith("Address: 10."))
        seen.add(first)
    assert {f"Address: {web}", f"Address: {web2}"} >= seen


def test_other_network_neither_resolves_nor_reaches(eng: EngineProcess) -> None:
    ok(eng, "network", "create", "neta")
    ok(eng, "network", "create", "netb")
    ok(eng, "run", "-d", "--name", "a1", "--network", "neta", "busybox", "sh", "-c", HTTPD)
    addr = ip_of(eng, "a1", "neta")
    assert f"Address: {addr}" in ok(eng, "run", "--rm", "--network", "neta", "busybox",
                                    "nslookup", "a1")  # fmt: skip
    fails(eng, "run", "--rm", "--network", "netb", "busybox", "nslookup", "a1")
    fails(eng, "run", "--rm", "--network", "netb", "busybox", "ping", "-c1", "-W1", addr)
    fails(eng, "run", "--rm", "--network", "netb", "busybox", "nc", "-w", "1", addr, "80")


def test_upstream_and_internal_network(eng: EngineProcess, upstream: LoopbackUpstream) -> None:
    ok(eng, "network", "create", "outnet")
    ok(eng, "network", "create", "--internal", "innet")
    out = ok(eng, "run", "--rm", "--network", "outnet", "busybox", "nslookup", OUTSIDE_NAME)
    assert f"Address: {OUTSIDE_ADDR}" in out and OUTSIDE_NAME in upstream.seen
    before = len(upstream.seen)
    fails(eng, "run", "--rm", "--network", "innet", "busybox", "nslookup", OUTSIDE_NAME)
    assert OUTSIDE_NAME not in upstream.seen[before:]
    # Reaching out: a TCP server of the host, on its own address.
    host = host_address(eng)
    server = socket.socket()
    server.bind((host, 0))
    server.listen(8)
    server.settimeout(0.2)
    port = server.getsockname()[1]
    greeted: list[bytes] = []
    done = threading.Event()

    def answer() -> None:  # read the greeting and hang up, so the client's nc ends
        while not done.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(2)
                greeted.append(conn.recv(100))

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        reach = ["busybox", "sh", "-c", f"echo hi | nc -w 2 {host} {port}"]
        assert run_docker(eng, "run", "--rm", "--network", "outnet", *reach).returncode == 0
        assert greeted == [b"hi\n"]
        fails(eng, "run", "--rm", "--network", "innet", *reach)
        assert greeted == [b"hi\n"]
        route = ok(eng, "run", "--rm", "--network", "innet", "busybox", "ip", "route")
        assert "default" not in route
    finally:
        done.set()
        thread.join(5)
        server.close()


def test_published_tcp_and_udp_ports(eng: EngineProcess) -> None:
    host = host_address(eng)
    tcp = free_port()
    ok(eng, "run", "-d", "--name", "pt", "-p", f"{tcp}:80", "busybox", "sh", "-c", HTTPD)
    assert "hello-" in http_get("127.0.0.1", tcp)
    assert "hello-" in http_get(host, tcp)
    assert ok(eng, "port", "pt").strip() == f"80/tcp -> 0.0.0.0:{tcp}"
    assert ok(eng, "ps", "-q", "--filter", f"publish={tcp}").strip()
    # -P: every exposed port on a random host port.
    ok(eng, "run", "-d", "--name", "all", "-P", "--expose", "80", "busybox", "sh", "-c", HTTPD)
    mapped = ok(eng, "port", "all", "80/tcp").splitlines()[0]
    assert mapped.startswith("0.0.0.0:")
    assert "hello-" in http_get("127.0.0.1", int(mapped.rsplit(":", 1)[1]))


def test_published_udp_port(eng: EngineProcess, debian_layout: pathlib.Path) -> None:
    """busybox has no UDP server: a python3 echo server in the Debian test image."""
    buf = io.BytesIO()
    layout_tarball(debian_layout, buf)
    with eng.client().stream("POST", "/images/load", data=buf.getvalue()) as resp:
        assert any("Loaded image" in str(e.get("stream")) for e in resp.iter_json())
    udp = free_port(socket.SOCK_DGRAM)
    ok(eng, "run", "-d", "--name", "echo", "-p", f"{udp}:9999/udp", "debian:bookworm",
       "python3", "-c", UDP_ECHO)  # fmt: skip
    for target in ("127.0.0.1", host_address(eng)):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.3)
            deadline = time.monotonic() + 10
            while True:
                s.sendto(b"ping-udp", (target, udp))
                try:
                    assert s.recvfrom(100)[0] == b"PING-UDP"
                    break
                except OSError:
                    assert time.monotonic() < deadline, f"no UDP answer through {target}:{udp}"


def test_port_conflicts_leave_nothing_wired(eng: EngineProcess) -> None:
    holder = socket.socket()
    holder.bind(("0.0.0.0", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    try:
        proc = fails(eng, "run", "-d", "--name", "clash", "-p", f"{port}:80", "busybox",
                     "sleep", "100")  # fmt: skip
        assert f"{port}" in proc.stderr.decode() and "python" in proc.stderr.decode()
        assert kernel_leftovers(eng) == []
        status = ok(eng, "inspect", "-f", "{{.State.Status}}", "clash").strip()
        assert status in ("created", "exited")
    finally:
        holder.close()
    ours = free_port()
    ok(eng, "run", "-d", "--name", "first", "-p", f"{ours}:80", "busybox", "sleep", "100")
    proc = fails(eng, "run", "-d", "--name", "second", "-p", f"{ours}:80", "busybox", "sleep", "9")
    first = ok(eng, "inspect", "-f", "{{.Id}}", "first")[:12]
    assert "already allocated" in proc.stderr.decode() and first in proc.stderr.decode()
    veths = [n for n in LinuxKernel().link_names()
             if n.startswith(eng.config.bridge_prefix + "v")]  # fmt: skip
    assert len(os.listdir(eng.config.runtime_dir / "netns")) == 1, veths


def test_host_none_and_container_modes(eng: EngineProcess) -> None:
    host_links = {line.split(":")[1].strip().split("@")[0]
                  for line in subprocess.run(["ip", "-o", "link"], capture_output=True,
                                             text=True).stdout.splitlines()}  # fmt: skip
    inside = ok(eng, "run", "--rm", "--net", "host", "busybox", "ip", "-o", "link")
    inside_links = {line.split(":")[1].strip().split("@")[0] for line in inside.splitlines()}
    assert "lo" in inside_links and inside_links & (host_links - {"lo"})
    none = ok(eng, "run", "--rm", "--net", "none", "busybox", "ip", "-o", "link")
    assert [line.split(":")[1].strip() for line in none.splitlines()] == ["lo"]
    ok(eng, "run", "-d", "--name", "pause", "busybox", "sleep", "100")
    theirs = ok(eng, "exec", "pause", "ip", "addr")
    mine = ok(eng, "run", "--rm", "--net", "container:pause", "busybox", "ip", "addr")
    assert mine == theirs and "eth0" in mine
    fails(eng, "run", "--rm", "--net", "none", "-p", "80", "busybox", "true")


def test_links_on_the_default_bridge(eng: EngineProcess) -> None:
    ok(eng, "run", "-d", "--name", "db", "-e", "DB_SECRET=s3", "--expose", "5432", "busybox",
       "sleep", "100")  # fmt: skip
    db_ip = ip_of(eng, "db", "bridge")
    env = ok(eng, "run", "--rm", "--name", "linker", "--link", "db:database", "busybox", "env")
    assert "DATABASE_NAME=/linker/database" in env.splitlines()
    assert f"DATABASE_PORT=tcp://{db_ip}:5432" in env.splitlines()
    assert f"DATABASE_PORT_5432_TCP_ADDR={db_ip}" in env.splitlines()
    assert "DATABASE_ENV_DB_SECRET=s3" in env.splitlines()
    short = ok(eng, "inspect", "-f", "{{.Id}}", "db")[:12]
    out = ok(eng, "run", "--rm", "--link", "db:database", "busybox", "sh", "-c",
             "cat /etc/hosts; ping -c1 -W2 database")  # fmt: skip
    assert f"{db_ip}\tdatabase db {short}" in out and f"64 bytes from {db_ip}" in out
    assert "database" not in ok(eng, "exec", "db", "cat", "/etc/hosts")
    # No embedded DNS on the default bridge: names do not resolve without a link.
    resolv = ok(eng, "run", "--rm", "busybox", "cat", "/etc/resolv.conf")
    assert "127.0.0.11" not in resolv
    fails(eng, "run", "--rm", "busybox", "ping", "-c1", "-W1", "db")
    fails(eng, "run", "--rm", "--link", "nosuch:x", "busybox", "true")


def test_extra_hosts_hostname_dns_options_and_mac(eng: EngineProcess) -> None:
    ok(eng, "network", "create", "optnet")
    gateway = json.loads(ok(eng, "network", "inspect", "bridge"))[0]["IPAM"]["Config"][0]
    out = ok(eng, "run", "--rm", "--network", "optnet", "--hostname", "box", "--domainname",
             "example.test", "--add-host", "gw:host-gateway", "--add-host", "fixed:192.0.2.9",
             "--dns-search", "corp.test", "--dns-option", "timeout:2", "--mac-address",
             "02:42:ac:11:00:99", "busybox", "sh", "-c",
             "hostname; cat /etc/hosts /etc/resolv.conf; ip link show eth0")  # fmt: skip
    assert out.startswith("box\n")
    assert f"{gateway['Gateway']}\tgw" in out and "192.0.2.9\tfixed" in out
    assert "box.example.test box" in out
    assert "search corp.test" in out and "timeout:2" in out and "ndots:0" in out
    assert "02:42:ac:11:00:99" in out
    # On the default bridge --dns servers go into resolv.conf itself.
    plain = ok(eng, "run", "--rm", "--dns", "192.0.2.53", "busybox", "cat", "/etc/resolv.conf")
    assert "nameserver 192.0.2.53" in plain and "127.0.0.11" not in plain


def test_connect_and_disconnect_a_running_container(eng: EngineProcess) -> None:
    ok(eng, "network", "create", "cnet")
    ok(eng, "run", "-d", "--name", "roamer", "busybox", "sleep", "100")
    ok(eng, "network", "connect", "--alias", "rover", "cnet", "roamer")
    assert "eth1" in ok(eng, "exec", "roamer", "ip", "addr")
    addr = ip_of(eng, "roamer", "cnet")
    for name in ("roamer", "rover"):
        out = ok(eng, "run", "--rm", "--network", "cnet", "busybox", "nslookup", name)
        assert f"Address: {addr}" in out
    ok(eng, "network", "disconnect", "cnet", "roamer")
    assert "eth1" not in ok(eng, "exec", "roamer", "ip", "addr")
    fails(eng, "run", "--rm", "--network", "cnet", "busybox", "nslookup", "roamer")
    # A stopped container remembers a connect for its next start.
    ok(eng, "create", "--name", "later", "busybox", "sleep", "100")
    ok(eng, "network", "connect", "cnet", "later")
    ok(eng, "start", "later")
    assert "eth1" in ok(eng, "exec", "later", "ip", "addr")


def test_daemon_sigkill_then_restart_leaves_nothing(
    busybox_layout: pathlib.Path, upstream: LoopbackUpstream
) -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYCOMPOSE_DNS_UPSTREAMS", f"127.0.0.1:{upstream.port}")
        eng = start_engine(components=())
        try:
            load_busybox(eng, busybox_layout)
            ok(eng, "network", "create", "knet")
            port = free_port()
            ok(eng, "run", "-d", "--name", "keeper", "--network", "knet", "-p", f"{port}:80",
               "busybox", "sh", "-c", HTTPD)  # fmt: skip
            ok(eng, "run", "-d", "--name", "quitter", "--network", "knet", "busybox",
               "sleep", "1")  # fmt: skip
            assert "hello-" in http_get("127.0.0.1", port)
            eng.process.send_signal(signal.SIGKILL)
            eng.process.wait(10)
            time.sleep(1.5)  # the quitter exits while no daemon runs
            respawn_engine(eng)
            keeper = ip_of(eng, "keeper", "knet")
            out = ok(eng, "run", "--rm", "--network", "knet", "busybox", "nslookup", "keeper")
            assert f"Address: {keeper}" in out
            assert "hello-" in http_get("127.0.0.1", port)
            assert len(os.listdir(eng.config.runtime_dir / "netns")) == 1
            ok(eng, "rm", "-f", "keeper", "quitter")
            ok(eng, "network", "rm", "knet")
            assert kernel_leftovers(eng) == []
            # And a SIGKILL with a container running, then a clean stop: nothing at all.
            ok(eng, "run", "-d", "--name", "last", "-p", f"{port}:80", "busybox", "sleep", "100")
            eng.process.send_signal(signal.SIGKILL)
            eng.process.wait(10)
            respawn_engine(eng)
            # Inspect waits until the components are loaded (the container re-adopted).
            assert ok(eng, "inspect", "-f", "{{.State.Status}}", "last").strip() == "running"
        finally:
            stop_engine(eng)
    left = kernel_leftovers(eng, include_default=True)
    assert left == [], left


def test_rename_and_container_mode_resolve_at_once(eng: EngineProcess) -> None:
    ok(eng, "network", "create", "rnet")
    ok(eng, "run", "-d", "--name", "before", "--network", "rnet", "busybox", "sleep", "100")
    addr = ip_of(eng, "before", "rnet")
    ok(eng, "rename", "before", "after")
    assert f"Address: {addr}" in ok(eng, "run", "--rm", "--network", "rnet", "busybox",
                                    "nslookup", "after")  # fmt: skip
    fails(eng, "run", "--rm", "--network", "rnet", "busybox", "nslookup", "before")
    # A container in another's namespace uses that one's embedded DNS.
    out = ok(eng, "run", "--rm", "--net", "container:after", "busybox", "sh", "-c",
             "cat /etc/resolv.conf; nslookup after")  # fmt: skip
    assert "nameserver 127.0.0.11" in out and f"Address: {addr}" in out


def test_rename_reaches_network_inspect_and_the_peers_dns(
    eng: EngineProcess, upstream: LoopbackUpstream
) -> None:
    ok(eng, "network", "create", "renet")
    ok(eng, "run", "-d", "--name", "first", "--network", "renet", "busybox", "sleep", "100")
    ok(eng, "run", "-d", "--name", "peer", "--network", "renet", "busybox", "sleep", "100")
    addr = ip_of(eng, "first", "renet")
    ok(eng, "rename", "first", "second")

    shown = json.loads(ok(eng, "network", "inspect", "renet"))[0]["Containers"]
    assert sorted(c["Name"] for c in shown.values()) == ["peer", "second"]
    assert f"Address: {addr}" in ok(eng, "exec", "peer", "nslookup", "second")
    gone = run_docker(eng, "exec", "peer", "nslookup", "first")
    assert gone.returncode != 0 and addr.encode() not in gone.stdout
    networks = json.loads(ok(eng, "inspect", "second"))[0]["NetworkSettings"]["Networks"]
    dns_names = networks["renet"]["DNSNames"]
    assert "second" in dns_names and "first" not in dns_names
    # The network's record keeps the new name: a daemon killed and started again (which
    # re-adopts the running containers) still shows and answers it.
    eng.process.send_signal(signal.SIGKILL)
    eng.process.wait(10)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYCOMPOSE_DNS_UPSTREAMS", f"127.0.0.1:{upstream.port}")
        respawn_engine(eng)
    assert ok(eng, "inspect", "-f", "{{.State.Status}}", "second").strip() == "running"
    shown = json.loads(ok(eng, "network", "inspect", "renet"))[0]["Containers"]
    assert sorted(c["Name"] for c in shown.values()) == ["peer", "second"]
    assert f"Address: {addr}" in ok(eng, "exec", "peer", "nslookup", "second")
