"""Ports published on [::1] (the userland proxy) with real containers on a real daemon:
busybox httpd fetched through [::1], UDP through a python3 echo server in the Debian test
image, conflicts, release at removal, and the proxy recreated after a daemon SIGKILL.

Each test checks that no veth, namespace, DNAT rule or held port is left behind.
"""

from __future__ import annotations

import io
import pathlib
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

from pycompose.netns import nat
from tests.fixtures.docker_cli import clear_containers, fails, ok
from tests.fixtures.engine import (
    EngineProcess,
    load_busybox,
    respawn_engine,
    start_engine,
    stop_engine,
)
from tests.fixtures.images import layout_tarball
from tests.fixtures.network import HTTPD, UDP_ECHO, http_get, kernel_leftovers


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(shutil.which("nft") is None, reason="needs nftables"),
    pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback"),
]


def free_v6_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET6, kind) as s:
        s.bind(("::1", 0))
        return int(s.getsockname()[1])


def port_is_free(port: int, kind: int = socket.SOCK_STREAM) -> bool:
    """Whether a server (SO_REUSEADDR, as most set it) could bind [::1]:port now."""
    with socket.socket(socket.AF_INET6, kind) as s:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if kind == socket.SOCK_STREAM:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("::1", port))
        except OSError:
            return False
        return True


def dnat_rules(eng: EngineProcess) -> str:
    table = nat.table_name(eng.config.bridge_prefix)
    listing = subprocess.run(["nft", "list", "table", "inet", table], capture_output=True,
                             text=True).stdout  # fmt: skip
    return "\n".join(line for line in listing.splitlines() if "dnat" in line and "dport" in line)


@pytest.fixture(scope="module")
def module_engine(busybox_layout: pathlib.Path) -> Iterator[EngineProcess]:
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
    clear_containers(module_engine, kernel_leftovers)


def test_tcp_on_ipv6_loopback(eng: EngineProcess) -> None:
    port = free_v6_port()
    ok(eng, "run", "-d", "--name", "six", "-p", f"[::1]:{port}:80", "busybox", "sh", "-c", HTTPD)
    assert "hello-" in http_get("::1", port)
    assert ok(eng, "port", "six").strip() == f"80/tcp -> [::1]:{port}"
    assert f"dport {port}" not in dnat_rules(eng)  # proxied, not DNAT
    # Held: another container, or a host process, cannot have it.
    proc = fails(eng, "run", "-d", "--name", "clash", "-p", f"[::1]:{port}:80", "busybox",
                 "sleep", "9")  # fmt: skip
    assert "already allocated" in proc.stderr.decode()
    assert not port_is_free(port)
    # Several connections at once, each answered.
    bodies = [http_get("::1", port) for _ in range(5)]
    assert all("hello-" in b for b in bodies)
    ok(eng, "rm", "-f", "six", "clash")
    assert port_is_free(port)
    with pytest.raises(OSError), socket.create_connection(("::1", port), timeout=2):
        pass
    # Published again at once, though the proxy's last connections linger in TIME_WAIT.
    ok(eng, "run", "-d", "--name", "again", "-p", f"[::1]:{port}:80", "busybox", "sh", "-c",
       HTTPD)  # fmt: skip
    assert "hello-" in http_get("::1", port)
    ok(eng, "rm", "-f", "again")
    assert port_is_free(port)


def test_udp_on_ipv6_loopback(eng: EngineProcess, debian_layout: pathlib.Path) -> None:
    buf = io.BytesIO()
    layout_tarball(debian_layout, buf)
    with eng.client().stream("POST", "/images/load", data=buf.getvalue()) as resp:
        assert any("Loaded image" in str(e.get("stream")) for e in resp.iter_json())
    port = free_v6_port(socket.SOCK_DGRAM)
    ok(eng, "run", "-d", "--name", "echo6", "-p", f"[::1]:{port}:9999/udp", "debian:bookworm",
       "python3", "-c", UDP_ECHO)  # fmt: skip
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
        s.settimeout(0.3)
        deadline = time.monotonic() + 10
        while True:
            s.sendto(b"ping-six", ("::1", port))
            try:
                assert s.recvfrom(100)[0] == b"PING-SIX"
                break
            except OSError:
                assert time.monotonic() < deadline, f"no UDP answer through [::1]:{port}"
    assert not port_is_free(port, socket.SOCK_DGRAM)
    ok(eng, "rm", "-f", "echo6")
    assert port_is_free(port, socket.SOCK_DGRAM)


def test_proxy_recreated_after_daemon_sigkill(busybox_layout: pathlib.Path) -> None:
    eng = start_engine(components=())
    port = free_v6_port()
    try:
        load_busybox(eng, busybox_layout)
        ok(eng, "run", "-d", "--name", "keep6", "-p", f"[::1]:{port}:80", "busybox", "sh",
           "-c", HTTPD)  # fmt: skip
        assert "hello-" in http_get("::1", port)
        eng.process.send_signal(signal.SIGKILL)
        eng.process.wait(10)
        assert port_is_free(port)  # the proxy died with its daemon
        respawn_engine(eng)
        # Inspect waits until the components are loaded (the container re-adopted).
        assert ok(eng, "inspect", "-f", "{{.State.Status}}", "keep6").strip() == "running"
        assert "hello-" in http_get("::1", port)
        assert ok(eng, "port", "keep6").strip() == f"80/tcp -> [::1]:{port}"
    finally:
        stop_engine(eng)  # stops the container, and with it the proxy
    assert port_is_free(port)
    left = kernel_leftovers(eng, include_default=True)
    assert left == [], left
