"""The tutorial's network section, typed as written but with ``pycompose`` for ``docker``:
the default bridge, ``--net host``, ``--net none``, ``--net container:pause`` showing the same
``ip addr``, ``--link``, a user-defined network with embedded DNS, and ``-p 5000:80``.
"""

from __future__ import annotations

import json
import pathlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tests.fixtures.engine import EngineProcess, busybox_engine
from tests.fixtures.network import HTTPD, http_get, kernel_leftovers

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def engine(busybox_layout: pathlib.Path) -> Iterator[EngineProcess]:
    with busybox_engine(busybox_layout) as eng:
        yield eng


def pc(eng: EngineProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pycompose.cli.main", *args],
                          capture_output=True, text=True, env=eng.env(), timeout=60)  # fmt: skip


def ok(eng: EngineProcess, *args: str) -> str:
    out = pc(eng, *args)
    assert out.returncode == 0, (args, out.stderr)
    return out.stdout


@pytest.fixture
def tut(engine: EngineProcess) -> Iterator[EngineProcess]:
    yield engine
    for cid in ok(engine, "ps", "-aq").split():
        pc(engine, "rm", "-f", cid)
    for net in ok(engine, "network", "ls", "-q", "--filter", "type=custom").split():
        pc(engine, "network", "rm", net)
    assert kernel_leftovers(engine) == []


def links_of(ip_addr: str) -> list[str]:
    return [line.split(":")[1].strip().split("@")[0]
            for line in ip_addr.splitlines() if line[:1].isdigit()]  # fmt: skip


def test_default_bridge_host_and_none(tut: EngineProcess) -> None:
    default = ok(tut, "run", "--rm", "busybox", "ip", "addr")
    assert links_of(default) == ["lo", "eth0"]
    bridge = json.loads(ok(tut, "network", "inspect", "bridge"))[0]
    subnet = bridge["IPAM"]["Config"][0]["Subnet"].rsplit(".", 1)[0]
    assert f"inet {subnet}." in default
    before = links_of(subprocess.run(["ip", "addr"], capture_output=True, text=True).stdout)
    inside = links_of(ok(tut, "run", "--rm", "--net", "host", "busybox", "ip", "addr"))
    after = links_of(subprocess.run(["ip", "addr"], capture_output=True, text=True).stdout)
    # Other tests on this host add and remove links meanwhile: the stable ones must all show.
    stable = [name for name in before if name in after]
    assert len(stable) > 1 and [name for name in inside if name in stable] == stable
    assert links_of(ok(tut, "run", "--rm", "--net", "none", "busybox", "ip", "addr")) == ["lo"]


def test_container_mode_shows_the_same_ip_addr(tut: EngineProcess) -> None:
    ok(tut, "run", "-d", "--name", "pause", "busybox", "sleep", "1000")
    theirs = ok(tut, "exec", "pause", "ip", "addr")
    assert ok(tut, "run", "--rm", "--net", "container:pause", "busybox", "ip", "addr") == theirs


def test_link_and_user_network(tut: EngineProcess) -> None:
    ok(tut, "run", "-d", "--name", "web", "busybox", "sh", "-c", HTTPD)
    out = ok(tut, "run", "--rm", "--link", "web:webapp", "busybox", "wget", "-qO-",
             "http://webapp/")  # fmt: skip
    assert out.startswith("hello-")
    ok(tut, "network", "create", "mynet")
    ok(tut, "run", "-d", "--name", "api", "--network", "mynet", "busybox", "sh", "-c", HTTPD)
    out = ok(tut, "run", "--rm", "--network", "mynet", "busybox", "sh", "-c",
             "nslookup api && wget -qO- http://api/")  # fmt: skip
    assert "Server:\t\t127.0.0.11" in out and "hello-" in out


def _port_5000_free() -> bool:
    with socket.socket() as s:
        try:
            s.bind(("0.0.0.0", 5000))
        except OSError:
            return False
    return True


def test_publish_5000_to_80(tut: EngineProcess) -> None:
    port = 5000 if _port_5000_free() else 0
    if not port:
        pytest.skip("port 5000 is held by another process on this host")
    ok(tut, "run", "-d", "--name", "pub", "-p", f"{port}:80", "busybox", "sh", "-c", HTTPD)
    assert "hello-" in http_get("127.0.0.1", port)
    listing = ok(tut, "ps")
    assert "0.0.0.0:5000->80/tcp" in listing
    ok(tut, "rm", "-f", "pub")
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        with socket.socket() as s:
            s.settimeout(0.3)
            if s.connect_ex(("127.0.0.1", port)) != 0:
                return
        time.sleep(0.1)
    pytest.fail("port 5000 still answers after the container was removed")
