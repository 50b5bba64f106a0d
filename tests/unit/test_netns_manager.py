"""NetworkManager on the recording FakeKernel: what it asks of the kernel and what it keeps."""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from pycompose.engine.config import EngineConfig
from pycompose.engine.errors import Conflict, InvalidArgument, NotFound
from pycompose.netns import nat
from pycompose.netns.errors import NetworkError, PortInUse
from pycompose.netns.kernel import FakeKernel, VethSpec
from pycompose.netns.manager import NetworkManager, network_filter_match
from pycompose.netns.networks import NetworkSpec
from pycompose.netns.ports import PortBinding


class FakeReserver:
    """Port reservations without sockets on the host: ``busy`` ports fail with EADDRINUSE."""

    def __init__(self) -> None:
        self.busy: set[tuple[str, int]] = set()
        self.held: list[socket.socket] = []

    def __call__(self, protocol: str, host_ip: str, port: int) -> socket.socket:
        if (protocol, port) in self.busy:
            raise OSError(errno.EADDRINUSE, "Address already in use")
        sock = socket.socket()  # never bound: stands in for the reservation
        self.held.append(sock)
        return sock


@pytest.fixture
def config(tmp_path: Path) -> EngineConfig:
    return EngineConfig.load(
        root=tmp_path / "root", runtime_dir=tmp_path / "run", bridge_prefix="tu-",
        subnet_pool="10.77.0.0/16:24", environ={},
    )  # fmt: skip


@pytest.fixture
def kernel() -> FakeKernel:
    return FakeKernel(routes=["0.0.0.0/0", "10.77.0.0/24", "172.17.0.0/16"])


@pytest.fixture
def reserver() -> Iterator[FakeReserver]:
    r = FakeReserver()
    yield r
    for sock in r.held:
        sock.close()


@pytest.fixture
def manager(config: EngineConfig, kernel: FakeKernel, reserver: FakeReserver) -> NetworkManager:
    return NetworkManager(config, kernel, reserver=reserver,
                          holder=lambda proto, ip, port: f"process web (pid {port})")  # fmt: skip


def test_predefined_networks_exist_and_bridge_avoids_routes(manager: NetworkManager) -> None:
    names = {r.name: r for r in manager.networks()}
    assert set(names) == {"bridge", "host", "none"}
    bridge = names["bridge"]
    assert bridge.ipam[0].subnet == "10.77.1.0/24"  # 10.77.0.0/24 is routed on the host
    assert bridge.bridge == "tu-br0" and bridge.predefined
    assert names["none"].driver == "null" and names["none"].bridge == ""
    with pytest.raises(InvalidArgument, match="pre-defined"):
        manager.delete("host")


def test_create_makes_the_bridge_and_the_table(manager: NetworkManager, kernel: FakeKernel) -> None:
    record = manager.create(NetworkSpec(name="app"))
    assert record.bridge == "tu-" + record.id[:12]
    assert ("add_bridge", record.bridge, ("10.77.2.1/24",)) in kernel.calls
    assert ("inet", nat.table_name("tu-")) in kernel.tables
    with pytest.raises(Conflict, match="already exists"):
        manager.create(NetworkSpec(name="app"))
    assert manager.get(record.id[:6]) is record and manager.get("app") is record
    with pytest.raises(NotFound):
        manager.get("nope")


def test_user_subnet_overlap_and_static_addresses(manager: NetworkManager) -> None:
    manager.create(NetworkSpec(name="fixed", ipam=({"Subnet": "10.99.0.0/24"},)))
    with pytest.raises(InvalidArgument, match="overlaps"):
        manager.create(NetworkSpec(name="clash", ipam=({"Subnet": "10.99.0.128/25"},)))
    ns = manager.create_netns("c1")
    ep = manager.attach("c1", ns, "fixed", ipv4_address="10.99.0.50")
    assert ep.ipv4 == "10.99.0.50" and ep.mac == "02:42:0a:63:00:32"
    manager.create(NetworkSpec(name="auto"))
    with pytest.raises(InvalidArgument, match="user configured subnets"):
        manager.attach("c1", ns, "auto", ipv4_address="10.77.3.9")


def test_attach_configures_veths_in_order(manager: NetworkManager, kernel: FakeKernel) -> None:
    one = manager.create(NetworkSpec(name="one"))
    manager.create(NetworkSpec(name="two", internal=True))
    ns = manager.create_netns("c" * 64)
    ep1 = manager.attach("c" * 64, ns, "one", aliases=("web", "web", ""), name="/proj-web-1")
    ep2 = manager.attach("c" * 64, ns, "two")
    specs = [c[1] for c in kernel.calls if c[0] == "add_veth"]
    assert specs[0] == VethSpec(ep1.host_veth, one.bridge, str(ns), "eth0", ep1.mac,
                                (f"{ep1.ipv4}/24",), (ep1.gateway,))  # fmt: skip
    assert specs[1].ifname == "eth1" and specs[1].gateways == ()
    assert ep1.aliases == ("web",) and ep1.host_veth.startswith("tu-v")
    assert one.to_docker()["Containers"]["c" * 64]["Name"] == "proj-web-1"
    settings = ep1.settings("one")
    assert settings["IPAddress"] == ep1.ipv4 and settings["DNSNames"] == ["proj-web-1", "web",
                                                                            "c" * 12]  # fmt: skip
    assert [r.name for r, _ in manager.endpoints("c" * 64)] == ["one", "two"]
    with pytest.raises(Conflict, match="already exists in network one"):
        manager.attach("c" * 64, ns, "one", name="/proj-web-1")
    with pytest.raises(InvalidArgument, match="network mode"):
        manager.attach("c" * 64, ns, "host")
    with pytest.raises(Conflict, match="active endpoints"):
        manager.delete("two")
    assert ep2.gateway  # the network has a gateway; only the route is left out


def test_rename_container_renames_its_endpoints_and_persists(
    config: EngineConfig, kernel: FakeKernel, manager: NetworkManager
) -> None:
    manager.create(NetworkSpec(name="one"))
    manager.create(NetworkSpec(name="two"))
    ns = manager.create_netns("c3")
    manager.attach("c3", ns, "one", aliases=("db",), name="/old")
    manager.attach("c3", ns, "two", name="/old")
    manager.attach("c4", manager.create_netns("c4"), "one", name="/other")
    pairs = manager.rename_container("c3", "/new")
    assert [(r.name, ep.container_name) for r, ep in pairs] == [("one", "/new"), ("two", "/new")]
    assert pairs[0][1].settings("one")["DNSNames"] == ["new", "db", "c3"]
    shown = NetworkManager(config, kernel).get("one").to_docker()["Containers"]
    assert {cid: c["Name"] for cid, c in shown.items()} == {"c3": "new", "c4": "other"}


def test_endpoints_survive_a_restart(config: EngineConfig, kernel: FakeKernel,
                                     manager: NetworkManager) -> None:  # fmt: skip
    manager.create(NetworkSpec(name="keep", labels={"x": "1"}))
    ep = manager.attach("c2", manager.create_netns("c2"), "keep", aliases=("a",))
    again = NetworkManager(config, kernel)
    record = again.get("keep")
    assert record.labels == {"x": "1"} and record.endpoints["c2"] == ep


def test_detach_removes_link_and_rules(manager: NetworkManager, kernel: FakeKernel) -> None:
    manager.create(NetworkSpec(name="d"))
    ns = manager.create_netns("c3")
    ep = manager.attach("c3", ns, "d")
    manager.publish("c3", [PortBinding(80, "tcp", "", 8080)])
    manager.detach("c3", "d")
    assert ep.host_veth not in kernel.links
    assert manager.get("d").endpoints == {}
    assert "8080" not in str(kernel.tables)
    with pytest.raises(NotFound, match="not connected"):
        manager.detach("c3", "d")


def test_release_leaves_veths_to_the_kernel_and_their_addresses_reserved(
    manager: NetworkManager, kernel: FakeKernel
) -> None:
    manager.create(NetworkSpec(name="r"))
    ns = manager.create_netns("c5")
    ep = manager.attach("c5", ns, "r")
    manager.publish("c5", [PortBinding(80, "tcp", "", 8081)])
    manager.release_container("c5")
    assert ("delete_link", ep.host_veth) not in kernel.calls  # no synchronous veth delete
    assert not ns.exists() and manager.get("r").endpoints == {}
    assert "8081" not in str(kernel.tables)
    kernel.links[ep.host_veth] = "veth"  # the kernel is still tearing the namespace down
    other = manager.attach("c6", manager.create_netns("c6"), "r")
    assert other.ipv4 != ep.ipv4
    assert manager.wait_drained(timeout=0.05) == [ep.host_veth]
    del kernel.links[ep.host_veth]
    assert manager.wait_drained(timeout=0.05) == []
    assert manager.attach("c7", manager.create_netns("c7"), "r").ipv4 == ep.ipv4


def test_publish_resolves_ports_and_writes_dnat(
    manager: NetworkManager, kernel: FakeKernel
) -> None:
    manager.create(NetworkSpec(name="p"))
    ep = manager.attach("c4", manager.create_netns("c4"), "p")
    wanted = [PortBinding(80, "tcp", "", 8080), PortBinding(53, "udp", "127.0.0.1", 0, (5300,) * 2)]
    bound = manager.publish("c4", wanted)
    assert [(b.host_port, b.host_range) for b in bound] == [(8080, None), (5300, None)]
    rules = kernel.tables[("inet", nat.table_name("tu-"))]
    dnat = [r["add"]["rule"] for r in rules if "rule" in r["add"] and
            any("dnat" in e for e in r["add"]["rule"]["expr"])]  # fmt: skip
    assert len(dnat) == 4  # prerouting + output for each port
    assert {"dnat": {"family": "ip", "addr": ep.ipv4, "port": 53}} in dnat[2]["expr"]
    assert manager.published("c4") == bound
    with pytest.raises(Conflict, match="already published"):
        manager.publish("c4", [])


def test_port_conflicts_name_the_holder_and_roll_back(
    manager: NetworkManager, reserver: FakeReserver
) -> None:
    manager.create(NetworkSpec(name="q"))
    manager.attach("a" * 64, manager.create_netns("a" * 64), "q")
    manager.attach("b" * 64, manager.create_netns("b" * 64), "q")
    manager.publish("a" * 64, [PortBinding(80, "tcp", "", 8080)])
    with pytest.raises(PortInUse, match="allocated to container aaaaaaaaaaaa"):
        manager.publish("b" * 64, [PortBinding(81, "tcp", "", 9090),
                                   PortBinding(80, "tcp", "127.0.0.1", 8080)])  # fmt: skip
    assert manager.published("b" * 64) == []
    assert all(s.fileno() == -1 for s in reserver.held[1:])  # 9090's reservation released
    reserver.busy.add(("udp", 5353))
    with pytest.raises(PortInUse, match=r"in use by process web \(pid 5353\)"):
        manager.publish("b" * 64, [PortBinding(53, "udp", "", 5353)])
    assert manager.publish("b" * 64, [PortBinding(80, "udp", "", 8080)])[0].host_port == 8080


def test_publish_needs_a_bridge_endpoint_and_ipv6(manager: NetworkManager) -> None:
    with pytest.raises(InvalidArgument, match="no bridge network"):
        manager.publish("nobody", [PortBinding(80)])
    manager.create(NetworkSpec(name="v4"))
    manager.attach("c5", manager.create_netns("c5"), "v4")
    with pytest.raises(InvalidArgument, match="no IPv6 address"):
        manager.publish("c5", [PortBinding(80, "tcp", "fd00::1", 80)])
    # ::1 needs no IPv6 address: the userland proxy serves it (test_netns_userproxy.py).


def test_ipv6_network(manager: NetworkManager, kernel: FakeKernel) -> None:
    manager.create(NetworkSpec(name="six", enable_ipv6=True))
    ep = manager.attach("c6", manager.create_netns("c6"), "six")
    assert ep.ipv6.startswith("fd") and ep.ipv6_prefix == 64 and ep.gateway6
    spec = next(c[1] for c in kernel.calls if c[0] == "add_veth")
    assert len(spec.addresses) == 2 and spec.gateways == (ep.gateway, ep.gateway6)


def test_gc_removes_dead_endpoints_and_strays(
    config: EngineConfig, manager: NetworkManager, kernel: FakeKernel
) -> None:
    manager.create(NetworkSpec(name="g"))
    dead = manager.attach("dead", manager.create_netns("dead"), "g")
    live = manager.attach("live", manager.create_netns("live"), "g")
    kernel.links["tu-v0badbad"] = "veth"  # a veth nobody knows
    kernel.links["eth9"] = "veth"  # not ours
    report = NetworkManager(config, kernel).gc(live={"live"})
    assert report.endpoints == (dead.endpoint_id,)
    assert dead.host_veth not in kernel.links and "tu-v0badbad" not in kernel.links
    assert live.host_veth in kernel.links and "eth9" in kernel.links
    assert [Path(p).name for p in report.namespaces] == ["dead"]


def test_close_removes_idle_bridges_and_the_table(
    manager: NetworkManager, kernel: FakeKernel
) -> None:
    idle = manager.create(NetworkSpec(name="idle"))
    busy = manager.create(NetworkSpec(name="busy"))
    ns = manager.create_netns("c7")
    manager.attach("c7", ns, "busy")
    manager.close()
    assert idle.bridge not in kernel.links and busy.bridge in kernel.links
    assert kernel.tables
    manager.detach_all("c7")
    manager.remove_netns("c7")
    manager.close()
    assert not kernel.tables and not [n for n in kernel.links if n.startswith("tu-")]


def test_kernel_failure_leaves_no_endpoint(manager: NetworkManager, kernel: FakeKernel) -> None:
    manager.create(NetworkSpec(name="f"))
    ns = manager.create_netns("c8")
    kernel.fail = lambda op: NetworkError("boom") if op == "add_veth" else None
    with pytest.raises(NetworkError):
        manager.attach("c8", ns, "f")
    assert manager.get("f").endpoints == {}


def test_prune_and_filters(manager: NetworkManager) -> None:
    manager.create(NetworkSpec(name="used", labels={"team": "a"}))
    manager.create(NetworkSpec(name="unused", labels={"team": "b"}))
    manager.attach("c9", manager.create_netns("c9"), "used")
    used = manager.get("used")
    assert network_filter_match(used, {"label": ["team=a"], "driver": ["bridge"]})
    assert not network_filter_match(used, {"label": ["team=b"]})
    assert network_filter_match(manager.get("bridge"), {"type": ["builtin"]})
    assert network_filter_match(manager.get("unused"), {"dangling": ["true"]})
    with pytest.raises(InvalidArgument, match="invalid filter"):
        network_filter_match(used, {"color": ["red"]})
    assert manager.prune() == ["unused"]
    assert {r.name for r in manager.networks()} == {"bridge", "host", "none", "used"}


def test_netns_paths_are_checked(manager: NetworkManager) -> None:
    for bad in ("", "../x", ".hidden", "a/b"):
        with pytest.raises(InvalidArgument):
            manager.netns_path(bad)
