"""-p parsing in all its forms, PortBindings, and naming who holds a port (fake /proc)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from pycompose.engine.errors import InvalidArgument
from pycompose.netns import ports
from pycompose.netns.ports import PortBinding


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("80", [PortBinding(80)]),
        ("8080:80", [PortBinding(80, "tcp", "", 8080)]),
        ("127.0.0.1:8080:80", [PortBinding(80, "tcp", "127.0.0.1", 8080)]),
        ("127.0.0.1::80", [PortBinding(80, "tcp", "127.0.0.1", 0)]),
        ("8080:80/udp", [PortBinding(80, "udp", "", 8080)]),
        ("[::1]:8080:80", [PortBinding(80, "tcp", "::1", 8080)]),
        ("[::]:53:53/UDP", [PortBinding(53, "udp", "::", 53)]),
        ("8000-8001:80-81", [PortBinding(80, "tcp", "", 8000), PortBinding(81, "tcp", "", 8001)]),
        ("8000-8010:80", [PortBinding(80, "tcp", "", 0, (8000, 8010))]),
        ("90-91", [PortBinding(90), PortBinding(91)]),
    ],
)
def test_parse_publish(spec: str, expected: list[PortBinding]) -> None:
    assert ports.parse_publish(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("0", "1 to 65535"),
        ("70000", "1 to 65535"),
        ("80/sctp", "unsupported port protocol"),
        ("8000-8002:80-81", "differ in size"),
        ("81-80", "ends before"),
        ("::1:8080:80", "brackets"),
        ("bad:8080:80", "invalid host IP"),
        ("[::1]8080:80", "bad IPv6"),
        ("x:80", "invalid host port"),
    ],
)
def test_parse_publish_errors(spec: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        ports.parse_publish(spec)


def test_port_bindings_from_docker_and_back() -> None:
    bindings = ports.from_port_bindings({
        "80/tcp": [{"HostIp": "", "HostPort": "8080"}],
        "53/udp": [{"HostIp": "127.0.0.1", "HostPort": ""}],
        "90/tcp": [{"HostPort": "9000-9010"}],
        "81/tcp": None,
    })  # fmt: skip
    assert bindings == [PortBinding(80, "tcp", "", 8080), PortBinding(53, "udp", "127.0.0.1"),
                        PortBinding(90, "tcp", "", 0, (9000, 9010)), PortBinding(81)]  # fmt: skip
    assert ports.to_docker_ports([PortBinding(80, "tcp", "", 8080)]) == {
        "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]
    }


def _row(addresses_and_state: str, inode: int) -> str:
    return f"   0: {addresses_and_state} 00000000:00000000 00:00000000 00000000  0  0 {inode}"


def _fake_proc(tmp_path: Path, table: str, line: str, pid: int, inode: int) -> Path:
    proc = tmp_path / "proc"
    (proc / "net").mkdir(parents=True)
    header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt uid ...\n"
    (proc / "net" / table).write_text(header + line + "\n")
    (proc / str(pid) / "fd").mkdir(parents=True)
    (proc / str(pid) / "comm").write_text("nginx\n")
    os.symlink(f"socket:[{inode}]", proc / str(pid) / "fd" / "7")
    (proc / "self").mkdir()
    return proc


def test_find_holder_names_the_listening_process(tmp_path: Path) -> None:
    # 127.0.0.1:8080 listening (0A), inode 4242.
    line = _row("0100007F:1F90 00000000:0000 0A", 4242)
    proc = _fake_proc(tmp_path, "tcp", line, 321, 4242)
    assert ports.find_holder("tcp", "", 8080, proc) == "process nginx (pid 321)"
    assert ports.find_holder("tcp", "127.0.0.1", 8080, proc) == "process nginx (pid 321)"
    assert ports.find_holder("tcp", "10.0.0.1", 8080, proc) is None
    assert ports.find_holder("tcp", "", 8081, proc) is None
    assert ports.find_holder("udp", "", 8080, proc) is None


def test_find_holder_ignores_connected_tcp_and_reads_ipv6(tmp_path: Path) -> None:
    est = _row("00000000:1F90 0100007F:D431 01", 77)
    proc = _fake_proc(tmp_path, "tcp", est, 5, 77)
    assert ports.find_holder("tcp", "", 8080, proc) is None
    v6 = ("   0: 00000000000000000000000000000000:0035 00000000000000000000000000000000:0000 07 "
          "00000000:00000000 00:00000000 00000000     0        0 99")  # fmt: skip
    (proc / "net" / "udp6").write_text("header\n" + v6 + "\n")
    os.symlink("socket:[99]", proc / "5" / "fd" / "8")
    assert ports.find_holder("udp", "", 53, proc) == "process nginx (pid 5)"


def test_find_holder_on_this_host_finds_this_process() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        assert ports.find_holder("tcp", "127.0.0.1", port) == (
            f"process {Path('/proc/self/comm').read_text().strip()} (pid {os.getpid()})"
        )


def test_reserve_port_conflicts_and_candidates(tmp_path: Path) -> None:
    sock = ports.reserve_port("tcp", "127.0.0.1", 0)
    try:
        port = sock.getsockname()[1]
        with pytest.raises(OSError):
            ports.reserve_port("tcp", "127.0.0.1", port)
    finally:
        sock.close()
    assert ports.candidates(PortBinding(80, host_port=8080)) == [8080]
    assert sorted(ports.candidates(PortBinding(80, host_range=(9000, 9002)))) == [9000, 9001, 9002]
    (tmp_path / "sys/net/ipv4").mkdir(parents=True)
    (tmp_path / "sys/net/ipv4/ip_local_port_range").write_text("40000\t40009\n")
    assert set(ports.candidates(PortBinding(80), tmp_path)) <= set(range(40000, 40010))
