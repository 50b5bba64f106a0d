"""connect_container / disconnect_container on the fake kernel: modes, endpoints, ports."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from pycompose.engine.errors import InvalidArgument, NotFound
from pycompose.netns.container import (
    ContainerNetworkRequest,
    connect_container,
    disconnect_container,
    host_gateway,
    is_bridge_mode,
    network_settings,
    port_summary,
    wanted_ports,
)
from pycompose.netns.errors import PortInUse
from pycompose.netns.kernel import FakeKernel
from pycompose.netns.manager import NetworkManager
from pycompose.netns.networks import NetworkSpec
from pycompose.netns.ports import PortBinding
from tests.fixtures.network import fake_network_manager

CID = "c" * 64


@pytest.fixture
def held() -> Iterator[list[socket.socket]]:
    socks: list[socket.socket] = []
    yield socks
    for s in socks:
        s.close()


@pytest.fixture
def kernel() -> FakeKernel:
    return FakeKernel()


@pytest.fixture
def manager(tmp_path: Path, kernel: FakeKernel, held: list[socket.socket]) -> NetworkManager:
    return fake_network_manager(tmp_path, kernel, held, prefix="tc-", pool="10.66.0.0/16:24")


def test_modes() -> None:
    assert is_bridge_mode("default") and is_bridge_mode("bridge") and is_bridge_mode("mynet")
    assert not any(is_bridge_mode(m) for m in ("host", "none", "container:abc"))


def test_default_mode_uses_the_bridge_network_without_embedded_dns(
    manager: NetworkManager, kernel: FakeKernel
) -> None:
    net = connect_container(manager, ContainerNetworkRequest(CID, "/web", port_bindings={
        "80/tcp": [{"HostPort": "8080"}]}))  # fmt: skip
    assert not net.embedded_dns and net.netns_path.endswith("/run/netns/" + CID)
    assert [ep.ifname for ep in net.endpoints] == ["eth0"]
    assert net.ports == (PortBinding(80, "tcp", "", 8080),)
    settings = network_settings(manager, CID, net.netns_path, {"80/tcp": {}, "443/tcp": {}})
    assert settings["IPAddress"] == net.addresses[0] and settings["SandboxKey"] == net.netns_path
    assert settings["Ports"] == {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}],
                                 "443/tcp": None}  # fmt: skip
    assert list(settings["Networks"]) == ["bridge"]
    assert host_gateway(manager) == manager.get("bridge").ipam[0].gateway
    disconnect_container(manager, CID)
    assert not [n for n in kernel.links if n.startswith("tc-v")] and not kernel.namespaces
    assert manager.published(CID) == []


def test_user_network_with_endpoints_config(manager: NetworkManager) -> None:
    manager.create(NetworkSpec(name="front"))
    back = manager.create(NetworkSpec(name="back", ipam=({"Subnet": "10.55.0.0/24"},)))
    req = ContainerNetworkRequest(CID, "/p-web-1", "front", endpoints_config={
        "front": {"Aliases": ["web"]},
        back.id: {"Aliases": ["api"], "IPAMConfig": {"IPv4Address": "10.55.0.9"},
                  "MacAddress": "02:00:00:00:00:09"},
    })  # fmt: skip
    net = connect_container(manager, req)
    assert net.embedded_dns and net.aliases == ("web", "api")
    assert [(ep.ifname, ep.ipv4) for ep in net.endpoints][1] == ("eth1", "10.55.0.9")
    assert net.endpoints[1].mac == "02:00:00:00:00:09"
    settings = network_settings(manager, CID, net.netns_path)
    assert set(settings["Networks"]) == {"front", "back"} and settings["IPAddress"] == ""


def test_failures_leave_nothing(manager: NetworkManager, kernel: FakeKernel) -> None:
    manager.create(NetworkSpec(name="n"))
    with pytest.raises(PortInUse, match="process x"):
        connect_container(manager, ContainerNetworkRequest(CID, "/a", "n", port_bindings={
            "80/tcp": [{"HostPort": "6666"}]}))  # fmt: skip
    assert not kernel.namespaces and manager.get("n").endpoints == {}
    with pytest.raises(InvalidArgument, match="user defined networks"):
        connect_container(manager, ContainerNetworkRequest(CID, "/a", endpoints_config={
            "bridge": {"Aliases": ["x"]}}))  # fmt: skip
    with pytest.raises(NotFound):
        connect_container(manager, ContainerNetworkRequest(CID, "/a", "missing"))
    with pytest.raises(InvalidArgument, match="needs no namespace"):
        connect_container(manager, ContainerNetworkRequest(CID, "/a", "host"))
    with pytest.raises(InvalidArgument, match="cannot be connected"):
        connect_container(
            manager, ContainerNetworkRequest(CID, "/a", endpoints_config={"none": {}})
        )
    assert not kernel.namespaces


def test_publish_all_and_summary() -> None:
    req = ContainerNetworkRequest(CID, "/a", publish_all=True,
                                  exposed_ports={"80/tcp": {}, "53/udp": {}, "90-91": {}},
                                  port_bindings={"80/tcp": [{"HostPort": "8000"}]})  # fmt: skip
    ports = wanted_ports(req)
    assert ports == [PortBinding(80, "tcp", "", 8000), PortBinding(53, "udp"),
                     PortBinding(90), PortBinding(91)]  # fmt: skip
    assert port_summary([PortBinding(80, "tcp", "", 8000)]) == [
        {"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8000, "Type": "tcp"}
    ]
