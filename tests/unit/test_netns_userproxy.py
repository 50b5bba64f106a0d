"""The userland proxy for ports published on ::1: TCP and UDP relays on loopback sockets,
the proxy thread's life, and the port table's hook (no root, no containers)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest

from pycompose.engine.config import EngineConfig
from pycompose.engine.errors import InvalidArgument
from pycompose.netns.errors import NetworkError, PortInUse
from pycompose.netns.kernel import FakeKernel
from pycompose.netns.manager import NetworkManager
from pycompose.netns.networks import NetworkSpec
from pycompose.netns.ports import PortBinding, reserve_port
from pycompose.netns.publish import PortTable
from pycompose.netns.records import Endpoint
from pycompose.netns.userproxy import (
    Stop,
    TcpProxy,
    UdpProxy,
    UserProxy,
    needs_proxy,
    open_proxy,
    reserve_proxied,
)


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


pytestmark = pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback")


async def _tcp_echo() -> tuple[asyncio.Server, int]:
    """An upper-casing echo server on 127.0.0.1 (the container's stand-in)."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data.upper())
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


class _UdpEcho(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.transport.sendto(data.upper(), addr)


async def _udp_echo() -> tuple[asyncio.DatagramTransport, int]:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(_UdpEcho, local_addr=("127.0.0.1", 0))
    return transport, transport.get_extra_info("sockname")[1]


def _port(sock: socket.socket) -> int:
    return int(sock.getsockname()[1])


def test_needs_proxy_only_on_ipv6_loopback() -> None:
    assert needs_proxy("::1")
    assert not any(needs_proxy(ip) for ip in ("", "0.0.0.0", "::", "127.0.0.1", "fd00::1"))


def test_tcp_relays_both_ways_with_half_close_and_stops() -> None:
    async def main() -> None:
        server, target = await _tcp_echo()
        sock = reserve_port("tcp", "::1", 0)
        port = _port(sock)
        proxy = await open_proxy("tcp", sock, ("127.0.0.1", target))
        reader, writer = await asyncio.open_connection("::1", port)
        writer.write(b"hello " * 50000)  # more than one chunk
        writer.write_eof()
        assert await reader.read() == b"HELLO " * 50000
        writer.close()
        await proxy.aclose()
        assert sock.fileno() == -1  # the proxy owned it
        with pytest.raises(OSError):
            await asyncio.open_connection("::1", port)
        server.close()
        await server.wait_closed()

    asyncio.run(main())


def test_tcp_unreachable_target_ends_the_connection() -> None:
    async def main() -> None:
        dead = reserve_port("tcp", "127.0.0.1", 0)  # bound, never listening: refuses
        sock = reserve_port("tcp", "::1", 0)
        proxy = await open_proxy("tcp", sock, ("127.0.0.1", _port(dead)))
        reader, writer = await asyncio.open_connection("::1", _port(sock))
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
        await proxy.aclose()
        dead.close()

    asyncio.run(main())


def test_tcp_close_ends_open_connections_and_their_tasks() -> None:
    async def main() -> None:
        server, target = await _tcp_echo()
        sock = reserve_port("tcp", "::1", 0)
        proxy = await open_proxy("tcp", sock, ("127.0.0.1", target))
        assert isinstance(proxy, TcpProxy)
        reader, writer = await asyncio.open_connection("::1", _port(sock))
        writer.write(b"x")
        assert await reader.readexactly(1) == b"X"
        before = len(asyncio.all_tasks())
        await proxy.aclose()
        with contextlib.suppress(ConnectionResetError):  # a reset is as good as an EOF
            assert await asyncio.wait_for(reader.read(), 5) == b""
        assert len(asyncio.all_tasks()) < before  # the connection's handler is gone
        writer.close()
        server.close()
        await server.wait_closed()

    asyncio.run(main())


def test_udp_relays_per_client_and_expires_idle_flows() -> None:
    async def main() -> None:
        echo, target = await _udp_echo()
        sock = reserve_port("udp", "::1", 0)
        port = _port(sock)
        proxy = UdpProxy(("127.0.0.1", target), idle=0.2, max_flows=2)
        await proxy.start(sock)
        loop = asyncio.get_running_loop()
        clients = [socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) for _ in range(3)]
        for c in clients:
            c.setblocking(False)
        for i, c in enumerate(clients[:2]):
            await loop.sock_sendto(c, f"ping{i}".encode(), ("::1", port))
        for i, c in enumerate(clients[:2]):
            data = await asyncio.wait_for(loop.sock_recv(c, 100), 5)
            assert data == f"PING{i}".encode()
        assert len(proxy.flows) == 2
        # A third client: the oldest flow gives way, the limit holds.
        await loop.sock_sendto(clients[2], b"third", ("::1", port))
        assert await asyncio.wait_for(loop.sock_recv(clients[2], 100), 5) == b"THIRD"
        assert len(proxy.flows) == 2
        first = clients[0].getsockname()
        assert not any(f.client[:2] == first[:2] for f in proxy.flows.values())
        # Silence: every flow expires and its socket closes.
        held = [f.sock for f in proxy.flows.values()]
        await asyncio.sleep(0.5)
        assert proxy.flows == {}
        assert all(s.fileno() == -1 for s in held)
        await proxy.aclose()
        await asyncio.sleep(0)
        assert sock.fileno() == -1
        for c in clients:
            c.close()
        echo.close()

    asyncio.run(main())


def test_open_proxy_refuses_an_unknown_protocol() -> None:
    async def main() -> None:
        sock = reserve_port("tcp", "::1", 0)
        with pytest.raises(ValueError, match="sctp"):
            await open_proxy("sctp", sock, ("127.0.0.1", 1))
        sock.close()

    asyncio.run(main())


# -- the proxy thread -------------------------------------------------------------------------


class _EchoThread:
    """A blocking TCP echo server on 127.0.0.1, for the threaded proxy."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = _port(self.sock)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn:
            while data := conn.recv(4096):
                conn.sendall(data.upper())

    def close(self) -> None:
        self.sock.close()
        self.thread.join(5)


@pytest.fixture
def echo() -> Iterator[_EchoThread]:
    server = _EchoThread()
    yield server
    server.close()


def _proxy_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "pycompose-userproxy"]


def test_user_proxy_thread_lives_as_long_as_its_proxies(echo: _EchoThread) -> None:
    assert _proxy_threads() == []
    runner = UserProxy()
    reserved = reserve_port("tcp", "::1", 0)
    port = _port(reserved)
    stop = runner.start("tcp", reserved, "127.0.0.1", echo.port)
    assert runner.active == 1 and len(_proxy_threads()) == 1
    with socket.create_connection(("::1", port), timeout=5) as c:
        c.sendall(b"abc")
        assert c.recv(10) == b"ABC"
    stop()
    stop()  # twice is harmless
    assert runner.active == 0 and _proxy_threads() == []
    # Stopping closed the reservation: nothing listens and the port is free again.
    assert reserved.fileno() == -1
    with pytest.raises(OSError), socket.create_connection(("::1", port), timeout=2):
        pass
    reserve_port("tcp", "::1", port).close()


def test_user_proxy_start_failure_is_a_network_error_and_leaves_no_thread() -> None:
    runner = UserProxy()
    reserved = reserve_port("tcp", "::1", 0)
    with pytest.raises(NetworkError, match="userland proxy"):
        runner.start("sctp", reserved, "127.0.0.1", 80)
    assert runner.active == 0 and _proxy_threads() == []
    assert reserved.fileno() != -1  # left to the caller
    reserved.close()


# -- the port table's hook --------------------------------------------------------------------


class RecordingProxier:
    def __init__(self) -> None:
        self.started: list[tuple[str, int, str, int]] = []
        self.stopped: list[int] = []

    def __call__(self, protocol: str, sock: socket.socket, ip: str, port: int) -> Stop:
        host_port = _port(sock)
        self.started.append((protocol, host_port, ip, port))
        return lambda: self.stopped.append(host_port)


def _endpoint(ipv6: str = "") -> Endpoint:
    return Endpoint("e" * 64, "n" * 64, "c" * 64, "/web", "eth0", "pcv1", "/ns",
                    "02:42:00:00:00:02", ipv4="10.9.0.2", ipv4_prefix=24, ipv6=ipv6)  # fmt: skip


def test_port_table_proxies_ipv6_loopback_instead_of_dnat() -> None:
    proxier = RecordingProxier()
    table = PortTable(reserve_port, lambda *a: None, proxier)
    bound = table.publish("c1", [PortBinding(80, "tcp", "::1"), PortBinding(53, "udp", "::1")],
                          _endpoint(), "pcb0")  # fmt: skip
    ports = [b.host_port for b in bound]
    assert all(ports) and [b.host_ip for b in bound] == ["::1", "::1"]
    assert proxier.started == [("tcp", ports[0], "10.9.0.2", 80), ("udp", ports[1], "10.9.0.2", 53)]
    assert table.rules() == []  # no DNAT rule for ::1
    # The port is held: another container cannot have it, on ::1 or on every address.
    for ip in ("::1", ""):
        with pytest.raises(PortInUse, match="already allocated"):
            table.publish("c2", [PortBinding(80, "tcp", ip, ports[0])], _endpoint(), "pcb0")
    # Leaving the network stops the proxy to it; unpublishing releases the reservation.
    table.drop_rules_to("c1", ("10.9.0.2",))
    assert sorted(proxier.stopped) == sorted(ports)
    assert table.unpublish("c1")
    assert sorted(proxier.stopped) == sorted(ports)  # stopped once only
    reserve_port("tcp", "::1", ports[0]).close()


def test_port_table_stops_proxies_on_unpublish_and_without_proxier_refuses() -> None:
    proxier = RecordingProxier()
    table = PortTable(reserve_port, lambda *a: None, proxier)
    [b] = table.publish("c1", [PortBinding(80, "tcp", "::1")], _endpoint(), "pcb0")
    table.keep_only(())
    assert proxier.stopped == [b.host_port]
    plain = PortTable(reserve_port, lambda *a: None)
    with pytest.raises(InvalidArgument, match="::1"):
        plain.publish("c1", [PortBinding(80, "tcp", "::1")], _endpoint(), "pcb0")
    # Other IPv6 addresses still need the container's IPv6 address (DNAT there works).
    with pytest.raises(InvalidArgument, match="no IPv6 address"):
        table.publish("c1", [PortBinding(80, "tcp", "::")], _endpoint(), "pcb0")


def test_manager_publishes_ipv6_loopback_through_the_proxy(tmp_path: Path) -> None:
    config = EngineConfig.load(
        root=tmp_path / "root", runtime_dir=tmp_path / "run", bridge_prefix="tu-",
        subnet_pool="10.77.0.0/16:24", environ={},
    )  # fmt: skip
    kernel = FakeKernel(routes=["0.0.0.0/0"])
    proxier = RecordingProxier()
    manager = NetworkManager(config, kernel, holder=lambda *a: None, proxier=proxier)
    manager.create(NetworkSpec(name="v4"))
    ep = manager.attach("c1", manager.create_netns("c1"), "v4")
    [bound] = manager.publish("c1", [PortBinding(80, "tcp", "::1")])
    assert proxier.started == [("tcp", bound.host_port, ep.ipv4, 80)]
    assert manager.published("c1") == [bound]
    assert manager.ports.rules() == []  # no DNAT rule written for it
    manager.unpublish("c1")
    assert proxier.stopped == [bound.host_port]
    manager.publish("c1", [PortBinding(80, "tcp", "::1", bound.host_port)])
    manager.detach_all("c1")
    manager.remove_netns("c1")
    manager.close()  # stops the proxies still running
    assert proxier.stopped == [bound.host_port, bound.host_port]


def test_reserve_proxied_listens_at_once_and_survives_time_wait() -> None:
    sock = reserve_proxied("tcp", "::1", 0)
    port = _port(sock)
    # Listening from the start: no other socket, SO_REUSEADDR or not, can bind it.
    with socket.socket(socket.AF_INET6) as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        with pytest.raises(OSError):
            other.bind(("::1", port))
    # A connection the server side closes first leaves a TIME_WAIT on the port.
    client = socket.create_connection(("::1", port), timeout=5)
    conn, _ = sock.accept()
    conn.close()
    assert client.recv(1) == b""
    client.close()
    sock.close()
    again = reserve_proxied("tcp", "::1", port)  # at once, TIME_WAIT or not
    again.close()
    udp = reserve_proxied("udp", "::1", 0)
    with pytest.raises(OSError):
        reserve_proxied("udp", "::1", _port(udp))
    udp.close()


def test_port_held_by_a_host_process_names_it() -> None:
    host = socket.create_server(("::1", 0), family=socket.AF_INET6)
    port = _port(host)
    table = PortTable(reserve_port, lambda proto, ip, p: f"process x (pid {p})", RecordingProxier())
    try:
        with pytest.raises(PortInUse, match=f"in use by process x \\(pid {port}\\)"):
            table.publish("c1", [PortBinding(80, "tcp", "::1", port)], _endpoint(), "pcb0")
    finally:
        host.close()
    assert table.bindings("c1") == []
