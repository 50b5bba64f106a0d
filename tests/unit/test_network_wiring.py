"""The containers' networking wiring on the fake kernel and a loopback DNS opener: what a start
wires, what an exit releases, create-time checks, links, extra hosts and connect/disconnect."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from pycompose.engine.containers.dnswiring import DnsWiring, upstreams_from_env
from pycompose.engine.containers.links import link_env, parse_link
from pycompose.engine.containers.networking import ContainerNetworking, endpoints_config
from pycompose.engine.containers.record import ContainerRecord
from pycompose.engine.errors import Conflict, InvalidArgument, NotFound
from pycompose.netns.dns import DnsService
from pycompose.netns.dns_forward import Upstream
from pycompose.netns.errors import PortInUse
from pycompose.netns.kernel import FakeKernel
from pycompose.netns.manager import NetworkManager
from pycompose.netns.networks import NetworkSpec
from tests.fixtures.network import fake_network_manager
from tests.unit.test_dns_server import LoopbackOpener

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@dataclass
class FakeLive:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class FakeStore:
    def __init__(self, records: dict[str, ContainerRecord]) -> None:
        self.saved: list[str] = []
        self.records = records

    def save(self, record: ContainerRecord) -> None:
        self.saved.append(record.id)

    def all(self) -> list[ContainerRecord]:
        return list(self.records.values())


class FakeManager:
    """What the wiring needs of the ContainerManager: lookup, save, per-container lock."""

    def __init__(self) -> None:
        self.records: dict[str, ContainerRecord] = {}
        self.store = FakeStore(self.records)
        self.live: dict[str, FakeLive] = {}

    def get(self, ref: str) -> ContainerRecord:
        for record in self.records.values():
            if ref in (record.id, record.name):
                return record
        raise NotFound(f"No such container: {ref}")

    def live_of(self, record: ContainerRecord) -> FakeLive:
        return self.live.setdefault(record.id, FakeLive())


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
def networks(tmp_path: Path, kernel: FakeKernel, held: list[socket.socket]) -> NetworkManager:
    mgr = fake_network_manager(tmp_path, kernel, held, prefix="tw-", pool="10.67.0.0/16:24")
    mgr.create(NetworkSpec(name="mynet"))
    mgr.create(NetworkSpec(name="other"))
    mgr.create(NetworkSpec(name="closed", internal=True))
    return mgr


@dataclass
class Rig:
    wiring: ContainerNetworking
    mgr: FakeManager
    dns: DnsService
    networks: NetworkManager
    kernel: FakeKernel


@pytest.fixture
def rig(networks: NetworkManager, kernel: FakeKernel) -> Rig:
    dns = DnsService(opener=LoopbackOpener(), upstreams=[])
    mgr = FakeManager()
    wiring = ContainerNetworking(mgr, networks, DnsWiring(dns))  # type: ignore[arg-type]
    return Rig(wiring, mgr, dns, networks, kernel)


def container(rig: Rig, name: str, mode: str = "default", running: bool = False,
              **host: Any) -> ContainerRecord:  # fmt: skip
    cid = (name * 64)[:64].replace("-", "0")
    record = ContainerRecord(
        id=cid, name=name, created="", image_id="", image_name="busybox",
        config={"Labels": {"com.docker.compose.service": "svc"}, "ExposedPorts": {"80/tcp": {}}},
        host_config={"NetworkMode": mode, **host},
    )  # fmt: skip
    if running:
        record.state.status = "running"
    rig.mgr.records[cid] = record
    return record


def test_user_network_start_and_exit(rig: Rig) -> None:
    async def scenario() -> None:
        web = container(rig, "web", "mynet", PortBindings={"80/tcp": [{"HostPort": "8080"}]})
        wired = await rig.wiring.before_start(web)
        assert wired.netns_path.endswith("/netns/" + web.id)
        assert wired.etc["embedded_dns"] is True and len(wired.etc["addresses"]) == 1
        addr = wired.etc["addresses"][0]
        names = {(e.name, e.network, e.service) for e in rig.dns.records.entries()}
        assert names == {("web", "mynet", "svc")}
        assert rig.dns.endpoints() == {web.id}
        settings = web.network_settings
        assert settings["Networks"]["mynet"]["IPAddress"] == addr
        assert settings["PortSummary"] == [
            {"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"}
        ]
        assert settings["Ports"]["80/tcp"] == [{"HostIp": "0.0.0.0", "HostPort": "8080"}]
        await rig.wiring.after_exit(web)
        assert rig.dns.endpoints() == frozenset() and rig.dns.records.entries() == []
        assert rig.networks.endpoints(web.id) == [] and rig.kernel.namespaces == {}
        assert web.network_settings["Networks"]["mynet"]["IPAddress"] == ""
        assert web.network_settings["PortSummary"] == [] and web.network_settings["Ports"] == {
            "80/tcp": None
        }
        await rig.dns.aclose()

    run(scenario())


def test_exit_deletes_veths_at_once_only_while_another_container_shares_the_namespace(
    rig: Rig,
) -> None:
    async def scenario() -> None:
        web = container(rig, "web", "mynet")
        first = (await rig.wiring.before_start(web)).netns_path
        await rig.wiring.after_exit(web)  # nobody left inside: the kernel deletes the veth
        assert not [c for c in rig.kernel.calls if c[0] == "delete_link"]
        await rig.wiring.before_start(web)
        container(rig, "side", f"container:{web.name}", running=True)
        await rig.wiring.after_exit(web)  # "side" still runs in it: detached right away
        assert [c[0] for c in rig.kernel.calls if c[0] == "delete_link"] == ["delete_link"]
        assert rig.networks.endpoints(web.id) == [] and first not in rig.kernel.namespaces
        await rig.dns.aclose()

    run(scenario())


def test_a_port_in_use_leaves_nothing_wired(rig: Rig) -> None:
    async def scenario() -> None:
        web = container(rig, "web", "mynet", PortBindings={"80/tcp": [{"HostPort": "6666"}]})
        with pytest.raises(PortInUse, match="6666"):
            await rig.wiring.before_start(web)
        assert rig.kernel.namespaces == {} and rig.networks.endpoints(web.id) == []
        assert rig.dns.endpoints() == frozenset() and rig.dns.records.entries() == []
        await rig.dns.aclose()

    run(scenario())


def test_default_bridge_has_no_embedded_dns_and_links_write_hosts(rig: Rig) -> None:
    async def scenario() -> None:
        db = container(rig, "db", running=True)
        await rig.wiring.before_start(db)
        app = container(rig, "app", Links=["/db:/app/database"], ExtraHosts=["gw:host-gateway"])
        wired = await rig.wiring.before_start(app)
        assert wired.etc["embedded_dns"] is False and rig.dns.endpoints() == frozenset()
        db_ip = db.network_settings["Networks"]["bridge"]["IPAddress"]
        gateway = rig.networks.get("bridge").subnet(4)
        assert gateway is not None
        assert list(wired.etc["extra_hosts"]) == [
            ("gw", gateway.gateway), (f"database db {db.short_id}", db_ip),
        ]  # fmt: skip
        env = wired.config_for({"Env": ["DATABASE_NAME=mine"]})["Env"]
        assert env == [
            "DATABASE_NAME=mine", f"DATABASE_PORT=tcp://{db_ip}:80",
            f"DATABASE_PORT_80_TCP=tcp://{db_ip}:80", f"DATABASE_PORT_80_TCP_ADDR={db_ip}",
            "DATABASE_PORT_80_TCP_PORT=80", "DATABASE_PORT_80_TCP_PROTO=tcp",
        ]  # fmt: skip
        db.state.status = "exited"
        await rig.wiring.after_exit(app)
        with pytest.raises(Conflict, match="non running"):
            await rig.wiring.before_start(app)
        assert rig.networks.endpoints(app.id) == []
        await rig.wiring.after_exit(db)
        await rig.dns.aclose()

    run(scenario())


def test_create_time_checks(rig: Rig) -> None:
    check = rig.wiring.check_create
    with pytest.raises(InvalidArgument, match="network nosuch not found"):
        check({}, {"NetworkMode": "nosuch"}, {})
    with pytest.raises(InvalidArgument, match="nosuch"):
        check({}, {"NetworkMode": "mynet"}, {"EndpointsConfig": {"nosuch": {}}})
    ports: dict[str, Any] = {"PortBindings": {"80/tcp": [{}]}}
    with pytest.raises(InvalidArgument, match="port publishing"):
        check({}, {"NetworkMode": "none", **ports}, {})
    assert check({}, {"NetworkMode": "host", **ports}, {}) == [
        "Published ports are discarded when using host network mode"
    ]
    with pytest.raises(InvalidArgument, match="mac-address"):
        check({"MacAddress": "02:42:00:00:00:01"}, {"NetworkMode": "host"}, {})
    with pytest.raises(InvalidArgument, match="could not get container for ghost"):
        check({}, {"NetworkMode": "default", "Links": ["ghost:g"]}, {})
    # Docker creates it; the start fails naming the missing container.
    assert check({}, {"NetworkMode": "container:ghost"}, {}) == []
    assert check({}, {"NetworkMode": "default"}, {"EndpointsConfig": {"default": {}}}) == []


def test_connect_and_disconnect(rig: Rig) -> None:
    async def scenario() -> None:
        idle = container(rig, "idle")
        other = rig.networks.get("other")
        await rig.wiring.connect_network("idle", other, {"Aliases": ["spare"]})
        assert idle.networking_config["EndpointsConfig"] == {"other": {"Aliases": ["spare"]}}
        with pytest.raises(Conflict):
            await rig.wiring.connect_network("idle", other, {})
        await rig.wiring.disconnect_network("idle", other, False)
        assert idle.networking_config["EndpointsConfig"] == {}
        with pytest.raises(NotFound):
            await rig.wiring.disconnect_network("idle", other, False)

        live = container(rig, "live", "mynet")
        await rig.wiring.before_start(live)
        live.state.status = "running"
        await rig.wiring.connect_network("live", other, {"Aliases": ["roam"]})
        eps = rig.networks.endpoints(live.id)
        assert [(rec.name, ep.ifname) for rec, ep in eps] == [("mynet", "eth0"), ("other", "eth1")]
        entries = {(e.network, e.aliases) for e in rig.dns.records.entries()}
        assert entries == {("mynet", ()), ("other", ("roam",))}
        assert live.network_settings["Networks"]["other"]["Aliases"] == ["roam"]
        await rig.wiring.disconnect_network("live", other, False)
        assert {e.network for e in rig.dns.records.entries()} == {"mynet"}
        assert [rec.name for rec, _ in rig.networks.endpoints(live.id)] == ["mynet"]
        host_mode = container(rig, "hostly", "host")
        with pytest.raises(InvalidArgument, match="cannot be connected"):
            await rig.wiring.connect_network(host_mode.name, other, {})
        await rig.wiring.after_exit(live)
        await rig.dns.aclose()

    run(scenario())


def test_internal_network_does_not_forward(rig: Rig) -> None:
    async def scenario() -> None:
        box = container(rig, "box", "closed")
        await rig.wiring.before_start(box)
        endpoint = rig.dns._endpoints[box.id]
        assert endpoint.forward is False and endpoint.networks == frozenset({"closed"})
        await rig.wiring.after_exit(box)
        await rig.dns.aclose()

    run(scenario())


def test_readopt_restores_dns_and_ports(rig: Rig) -> None:
    async def scenario() -> None:
        web = container(rig, "web", "mynet", PortBindings={"80/tcp": [{}]})
        await rig.wiring.before_start(web)
        port = web.network_settings["PortSummary"][0]["PublicPort"]
        # What a restarted daemon has: endpoints on disk, no ports, no DNS.
        rig.networks.unpublish(web.id)
        await rig.wiring.dns.container_down(web.id)
        await rig.wiring.readopt(web)
        assert [b.host_port for b in rig.networks.published(web.id)] == [port]
        assert rig.dns.endpoints() == {web.id}
        await rig.wiring.after_exit(web)
        await rig.dns.aclose()

    run(scenario())


def test_small_parsers() -> None:
    assert parse_link("web") == ("web", "web")
    assert parse_link("web:db") == ("web", "db")
    assert parse_link("/web:/app/db") == ("web", "db")
    with pytest.raises(InvalidArgument):
        parse_link(":x")
    assert endpoints_config({"EndpointsConfig": {"default": None, "n": {"A": 1}}}) == {
        "bridge": {}, "n": {"A": 1},
    }  # fmt: skip
    assert upstreams_from_env({}) is None
    assert upstreams_from_env({"PYCOMPOSE_DNS_UPSTREAMS": "127.0.0.1:5353, ::1"}) == [
        Upstream("127.0.0.1", 5353), Upstream("::1", 53),
    ]  # fmt: skip


def test_rename_and_container_mode_share_dns(rig: Rig) -> None:
    async def scenario() -> None:
        web = container(rig, "web", "mynet")
        wired = await rig.wiring.before_start(web)
        web.state.status = "running"
        web.name = "front"
        rig.wiring.renamed(web)
        assert [e.name for e in rig.dns.records.entries()] == ["front"]
        side = container(rig, "side", "container:front")
        shared = await rig.wiring.before_start(side)
        assert shared.netns_path == "" and shared.etc["embedded_dns"] is True
        assert shared.etc["addresses"] == wired.etc["addresses"]
        await rig.wiring.after_exit(web)
        await rig.dns.aclose()

    run(scenario())


def test_list_filters_see_networks_and_published_ports(rig: Rig) -> None:
    from pycompose.engine.containers.views import matches

    async def scenario() -> None:
        web = container(rig, "web", "mynet", PortBindings={"80/tcp": [{"HostPort": "8088"}]})
        await rig.wiring.before_start(web)
        web.state.status = "running"
        await rig.wiring.connect_network("web", rig.networks.get("other"), {})
        other_id = rig.networks.get("other").id
        for wanted, expected in [({"network": ["other"]}, True), ({"network": [other_id]}, True),
                                 ({"network": ["closed"]}, False), ({"publish": ["8088"]}, True),
                                 ({"publish": ["8088/udp"]}, False),
                                 ({"publish": ["8000-8090/tcp"]}, True)]:  # fmt: skip
            assert matches(web, wanted) is expected, wanted
        await rig.wiring.after_exit(web)
        assert matches(web, {"publish": ["8088"]}) is False
        await rig.dns.aclose()

    run(scenario())


def test_link_env_matches_docker() -> None:
    db = ContainerRecord(
        id="d" * 64, name="db", created="", image_id="", image_name="x",
        config={"ExposedPorts": {"5432/tcp": {}, "53/udp": {}},
                "Env": ["PATH=/bin", "POSTGRES_USER=app", "EMPTY="]},
        host_config={},
    )  # fmt: skip
    assert link_env("web", "my-db", db, "10.0.0.5") == [
        "MY_DB_NAME=/web/my-db",
        "MY_DB_PORT=udp://10.0.0.5:53",
        "MY_DB_PORT_53_UDP=udp://10.0.0.5:53", "MY_DB_PORT_53_UDP_ADDR=10.0.0.5",
        "MY_DB_PORT_53_UDP_PORT=53", "MY_DB_PORT_53_UDP_PROTO=udp",
        "MY_DB_PORT_5432_TCP=tcp://10.0.0.5:5432", "MY_DB_PORT_5432_TCP_ADDR=10.0.0.5",
        "MY_DB_PORT_5432_TCP_PORT=5432", "MY_DB_PORT_5432_TCP_PROTO=tcp",
        "MY_DB_ENV_POSTGRES_USER=app", "MY_DB_ENV_EMPTY=",
    ]  # fmt: skip


def test_readopt_with_a_port_taken_meanwhile_still_serves_dns(rig: Rig) -> None:
    async def scenario() -> None:
        web = container(rig, "web", "mynet")
        await rig.wiring.before_start(web)
        await rig.wiring.dns.container_down(web.id)
        web.network_settings["PortSummary"] = [
            {"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 6666, "Type": "tcp"}
        ]
        await rig.wiring.readopt(web)
        assert rig.dns.endpoints() == {web.id}
        assert web.network_settings["PortSummary"] == []
        await rig.wiring.after_exit(web)
        await rig.dns.aclose()

    run(scenario())
