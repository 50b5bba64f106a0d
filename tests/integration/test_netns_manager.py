"""The networking layer on the real kernel: namespaces, veths, bridges, NAT, published ports.

No containers: each "container" is a network namespace made by our own code, and programs run
in it through ``nsenter --net=<file>`` (busybox ping, python3 echo servers). Every test ends by
asserting that no link, namespace file, nft table or route of its engine is left.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pycompose.engine.config import EngineConfig
from pycompose.netns import nat
from pycompose.netns.errors import PortInUse
from pycompose.netns.kernel import LinuxKernel
from pycompose.netns.manager import NetworkManager
from pycompose.netns.networks import NetworkSpec
from pycompose.netns.ports import PortBinding
from tests.fixtures.engine import free_subnet_pool

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(shutil.which("nft") is None, reason="needs nftables"),
    pytest.mark.skipif(shutil.which("busybox") is None, reason="needs busybox"),
]

ECHO_SERVER = r"""
import socket, sys
proto, port = sys.argv[1], int(sys.argv[2])
if proto == "tcp":
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port)); s.listen(16); print("ready", flush=True)
    while True:
        c, peer = s.accept(); data = c.recv(1024)
        c.sendall(data.upper() + b" from " + peer[0].encode()); c.close()
else:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", port))
    print("ready", flush=True)
    while True:
        data, peer = s.recvfrom(1024)
        s.sendto(data.upper() + b" from " + peer[0].encode(), peer)
"""

CLIENT = r"""
import socket, sys
proto, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
s = socket.socket(socket.AF_INET, kind); s.settimeout(3)
s.connect((host, port)); s.send(b"hello"); print(s.recv(1024).decode())
"""


@dataclass
class Env:
    """One isolated networking setup: a manager and what the test made outside it."""

    manager: NetworkManager
    config: EngineConfig
    tmp: Path
    procs: list[subprocess.Popen[bytes]]

    def netns(self, name: str) -> Path:
        return self.manager.create_netns(name)

    def run(self, ns: Path, *cmd: str, timeout: float = 10) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["nsenter", f"--net={ns}", *cmd], capture_output=True, text=True, timeout=timeout
        )

    def ping(self, ns: Path, ip: str) -> bool:
        return self.run(ns, "busybox", "ping", "-c", "1", "-W", "2", ip).returncode == 0

    def serve(self, ns: Path, proto: str, port: int) -> None:
        proc = subprocess.Popen(
            ["nsenter", f"--net={ns}", sys.executable, "-c", ECHO_SERVER, proto, str(port)],
            stdout=subprocess.PIPE,
        )
        self.procs.append(proc)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"ready"

    def client(self, ns: Path | None, proto: str, host: str, port: int) -> str:
        cmd = [sys.executable, "-c", CLIENT, proto, host, str(port)]
        if ns is not None:
            cmd = ["nsenter", f"--net={ns}", *cmd]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()


def host_address() -> str:
    """The host's own address on its default route (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.123", 9))
        return str(s.getsockname()[0])


def leftovers(config: EngineConfig) -> list[str]:
    """Links, netns files, nft tables and routes of this engine still present."""
    kernel = LinuxKernel()
    found = [f"link {n}" for n in kernel.link_names() if n.startswith(config.bridge_prefix)]
    netns_dir = config.runtime_dir / "netns"
    if netns_dir.exists():
        found += [f"netns {p}" for p in netns_dir.iterdir()]
    table = nat.table_name(config.bridge_prefix)
    found += [f"nft {f} {n}" for f, n in kernel.nft_tables() if n == table]
    pool = ipaddress.ip_network(config.subnet_pool[0])
    found += [
        f"route {r}"
        for r in kernel.routed_networks()
        if ":" not in r and ipaddress.ip_network(r).overlaps(pool)
    ]
    return found


def make_config(tmp: Path) -> EngineConfig:
    return EngineConfig.load(
        root=tmp / "root",
        runtime_dir=tmp / "run",
        bridge_prefix=f"t{secrets.token_hex(2)}",
        subnet_pool=f"{free_subnet_pool()}:24",
        environ={},
    )


def teardown(manager: NetworkManager) -> None:
    for record in manager.networks():
        for cid in list(record.endpoints):
            manager.unpublish(cid)
            manager.detach_all(cid)
    for record in manager.networks():
        if not record.predefined:
            manager.delete(record.id)
    manager.gc()
    manager.close()


@pytest.fixture
def env() -> Iterator[Env]:
    tmp = Path(tempfile.mkdtemp(prefix="pcnet-"))
    config = make_config(tmp)
    manager = NetworkManager(config, LinuxKernel())
    e = Env(manager, config, tmp, [])
    try:
        yield e
    finally:
        for proc in e.procs:
            proc.kill()
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        try:
            teardown(manager)
            left = leftovers(config)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        assert not left, f"left behind: {left}"


@pytest.fixture
def outside(env: Env) -> Iterator[tuple[Path, str]]:
    """A namespace outside our networks, reachable from the host through its own veth pair.

    It routes nothing back to container subnets, so a reply reaches a container only if the
    container's traffic was masqueraded.
    """
    ns = env.tmp / "outside-ns"
    from pycompose.netns import netnsfs

    netnsfs.create_netns(ns)
    host_if = f"zo{secrets.token_hex(3)}"
    link = list(ipaddress.IPv4Network(env.config.subnet_pool[0]).subnets(new_prefix=30))[-1]
    host_ip, out_ip = str(link.network_address + 1), str(link.network_address + 2)
    subprocess.run(["ip", "link", "add", host_if, "type", "veth", "peer", "name", "eth0",
                    "netns", str(ns)], check=True)  # fmt: skip
    subprocess.run(["ip", "addr", "add", f"{host_ip}/30", "dev", host_if], check=True)
    subprocess.run(["ip", "link", "set", host_if, "up"], check=True)
    env.run(ns, "busybox", "ip", "addr", "add", f"{out_ip}/30", "dev", "eth0")
    env.run(ns, "busybox", "ip", "link", "set", "eth0", "up")
    try:
        yield ns, out_ip
    finally:
        subprocess.run(["ip", "link", "del", host_if], check=False)
        netnsfs.delete_netns(ns)


def bridge_mac(name: str) -> str:
    return Path(f"/sys/class/net/{name}/address").read_text().strip()


def test_ping_across_bridge_and_endpoint_settings(env: Env) -> None:
    net = env.manager.create(NetworkSpec(name="front"))
    mac = bridge_mac(net.bridge)
    a, b = env.netns("a" * 64), env.netns("b" * 64)
    ep_a = env.manager.attach("a" * 64, a, "front", aliases=("web",), name="/a")
    ep_b = env.manager.attach("b" * 64, b, net.id, name="/b")
    assert ep_a.ifname == ep_b.ifname == "eth0"
    assert ipaddress.ip_address(ep_b.ipv4) in ipaddress.ip_network(net.ipam[0].subnet)
    assert env.ping(a, ep_b.ipv4) and env.ping(b, ep_a.ipv4)
    assert env.ping(a, ep_a.gateway)
    links = json.loads(env.run(a, "ip", "-j", "addr", "show", "eth0").stdout)
    assert links[0]["address"] == ep_a.mac
    assert f"default via {ep_a.gateway}" in env.run(a, "ip", "route").stdout
    bridge = net.bridge
    assert Path(f"/proc/sys/net/ipv6/conf/{bridge}/accept_ra").read_text().strip() == "0"
    assert Path(f"/proc/sys/net/ipv4/conf/{bridge}/route_localnet").read_text().strip() == "1"
    assert bridge_mac(net.bridge) == mac, "the bridge keeps its own MAC as ports join"
    inspect = env.manager.get("front").to_docker()
    assert inspect["Containers"]["a" * 64]["IPv4Address"] == f"{ep_a.ipv4}/24"


def test_second_network_is_eth1_and_networks_are_isolated(env: Env) -> None:
    env.manager.create(NetworkSpec(name="one"))
    env.manager.create(NetworkSpec(name="two"))
    a, b = env.netns("a1"), env.netns("b1")
    ep_a = env.manager.attach("a1", a, "one")
    ep_b = env.manager.attach("b1", b, "two")
    assert not env.ping(a, ep_b.ipv4), "networks must not route to each other"
    ep_a2 = env.manager.attach("a1", a, "two")
    assert ep_a2.ifname == "eth1"
    assert env.ping(a, ep_b.ipv4)
    env.manager.detach("a1", "two")
    assert not env.ping(a, ep_b.ipv4)
    assert "eth1" not in env.run(a, "ip", "link").stdout
    assert ep_a.default_route and not ep_a2.default_route


def test_outbound_nat_and_internal_network(env: Env, outside: tuple[Path, str]) -> None:
    _, out_ip = outside
    env.manager.create(NetworkSpec(name="public"))
    env.manager.create(NetworkSpec(name="private", internal=True))
    a, b, c = env.netns("pa"), env.netns("pb"), env.netns("pc")
    env.manager.attach("pa", a, "public")
    ep_b = env.manager.attach("pb", b, "private")
    ep_c = env.manager.attach("pc", c, "private")
    assert env.ping(a, out_ip), "masqueraded traffic reaches the outside"
    assert not env.ping(b, out_ip), "an internal network cannot reach out"
    assert "default" not in env.run(b, "ip", "route").stdout
    assert env.ping(b, ep_c.ipv4), "members of an internal network reach each other"
    assert ep_b.gateway


def test_published_tcp_and_udp_on_loopback_and_host_address(env: Env) -> None:
    env.manager.create(NetworkSpec(name="pub"))
    a = env.netns("srv")
    env.manager.attach("srv", a, "pub")
    env.serve(a, "tcp", 80)
    env.serve(a, "udp", 5353)
    bound = env.manager.publish(
        "srv", [PortBinding(80, "tcp"), PortBinding(5353, "udp", "", 0, (40000, 40100))]
    )
    tcp_port, udp_port = bound[0].host_port, bound[1].host_port
    assert tcp_port and 40000 <= udp_port <= 40100
    for host in ("127.0.0.1", host_address()):
        assert env.client(None, "tcp", host, tcp_port).startswith("HELLO from ")
        assert env.client(None, "udp", host, udp_port).startswith("HELLO from ")
    env.manager.unpublish("srv")
    with pytest.raises(AssertionError):
        env.client(None, "tcp", "127.0.0.1", tcp_port)


def test_port_bound_to_loopback_only(env: Env) -> None:
    env.manager.create(NetworkSpec(name="lo"))
    a = env.netns("lo1")
    env.manager.attach("lo1", a, "lo")
    env.serve(a, "tcp", 8000)
    (bound,) = env.manager.publish("lo1", [PortBinding(8000, "tcp", "127.0.0.1")])
    assert env.client(None, "tcp", "127.0.0.1", bound.host_port).startswith("HELLO")
    with pytest.raises(AssertionError):
        env.client(None, "tcp", host_address(), bound.host_port)


def test_hairpin_from_the_same_network(env: Env) -> None:
    env.manager.create(NetworkSpec(name="hp"))
    a, b = env.netns("hpa"), env.netns("hpb")
    env.manager.attach("hpa", a, "hp")
    env.manager.attach("hpb", b, "hp")
    env.serve(a, "tcp", 80)
    (bound,) = env.manager.publish("hpa", [PortBinding(80, "tcp")])
    assert env.client(b, "tcp", host_address(), bound.host_port).startswith("HELLO")
    assert env.client(a, "tcp", host_address(), bound.host_port).startswith("HELLO")


def test_port_conflicts_name_the_holder(env: Env) -> None:
    env.manager.create(NetworkSpec(name="cf"))
    a, b = env.netns("cfa" + "0" * 20), env.netns("cfb")
    env.manager.attach("cfa" + "0" * 20, a, "cf")
    env.manager.attach("cfb", b, "cf")
    listener = socket.socket()
    listener.bind(("0.0.0.0", 0))
    listener.listen(1)
    held = listener.getsockname()[1]
    try:
        with pytest.raises(PortInUse, match=rf"process .* \(pid {os.getpid()}\)"):
            env.manager.publish("cfb", [PortBinding(80, "tcp", "", held)])
    finally:
        listener.close()
    (first,) = env.manager.publish("cfa" + "0" * 20, [PortBinding(80, "tcp")])
    probe = socket.socket()
    probe.bind(("0.0.0.0", 0))
    free = probe.getsockname()[1]
    probe.close()
    with pytest.raises(PortInUse, match="container cfa000000000"):
        env.manager.publish("cfb", [PortBinding(81, "tcp", "", free),
                                    PortBinding(80, "tcp", "", first.host_port)])  # fmt: skip
    # Nothing of the failed call stays: its first port is free again.
    again = socket.socket()
    again.bind(("0.0.0.0", free))
    again.close()
    assert env.manager.published("cfb") == []


def test_gc_after_a_simulated_crash(tmp_path: Path) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="pcgc-"))
    config = make_config(tmp)
    try:
        crashed = NetworkManager(config, LinuxKernel())
        crashed.create(NetworkSpec(name="left"))
        ns = crashed.create_netns("dead")
        crashed.attach("dead", ns, "left")
        crashed.attach("dead", ns, "bridge")
        crashed.publish("dead", [PortBinding(80, "tcp")])
        crashed.ports.release_all()  # the process dies: its reservations close
        assert leftovers(config)
        fresh = NetworkManager(config, LinuxKernel())
        report = fresh.gc(live=())
        assert len(report.endpoints) == 2 and report.namespaces
        assert leftovers(config) == []
        assert fresh.get("left").endpoints == {}
        fresh.delete("left")
        fresh.close()
        assert leftovers(config) == []
    finally:
        time.sleep(0)
        teardown(NetworkManager(config, LinuxKernel()))
        shutil.rmtree(tmp, ignore_errors=True)


def test_ipv6_network(env: Env) -> None:
    env.manager.create(NetworkSpec(name="six", enable_ipv6=True))
    a, b = env.netns("v6a"), env.netns("v6b")
    ep_a = env.manager.attach("v6a", a, "six")
    ep_b = env.manager.attach("v6b", b, "six")
    assert ep_a.ipv6 and ep_b.ipv6
    assert env.run(a, "busybox", "ping", "-6", "-c", "1", "-W", "2", ep_b.ipv6).returncode == 0
    assert env.ping(a, ep_b.ipv4)


def test_connect_container_end_to_end(env: Env) -> None:
    from pycompose.netns.container import (
        ContainerNetworkRequest,
        connect_container,
        disconnect_container,
    )

    env.manager.create(NetworkSpec(name="proj"))
    req = ContainerNetworkRequest("e" * 64, "/proj-web-1", "proj",
                                  endpoints_config={"proj": {"Aliases": ["web"]}},
                                  port_bindings={"80/tcp": [{"HostIp": "127.0.0.1"}]})  # fmt: skip
    net = connect_container(env.manager, req)
    ns = Path(net.netns_path)
    env.serve(ns, "tcp", 80)
    assert env.client(None, "tcp", "127.0.0.1", net.ports[0].host_port).startswith("HELLO")
    disconnect_container(env.manager, "e" * 64)
    assert not ns.exists()
