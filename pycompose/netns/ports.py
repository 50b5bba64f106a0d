"""Published ports: ``-p`` in all its forms, Docker's ``PortBindings``, and who holds a port.

``parse_publish("127.0.0.1:8080:80/udp")`` gives :class:`PortBinding` values; a host port of
0 means "pick one"; ``host_range`` is set for ``8000-8010:80`` (any free port of the range).
``find_holder`` names the host process listening on a port, from /proc/net/{tcp,udp}{,6} and
the socket links in /proc/<pid>/fd (the proc root is a parameter, so tests can fake it).
"""

from __future__ import annotations

import ipaddress
import os
import random
import re
import socket
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pycompose.engine.errors import InvalidArgument

PROTOCOLS = ("tcp", "udp")
_PORT_RANGE_RE = re.compile(r"^(\d+)(?:-(\d+))?$")


@dataclass(frozen=True)
class PortBinding:
    """One published container port; ``host_ip`` "" means every host address."""

    container_port: int
    protocol: str = "tcp"
    host_ip: str = ""
    host_port: int = 0
    host_range: tuple[int, int] | None = None

    @property
    def key(self) -> str:
        """Docker's ``"80/tcp"``."""
        return f"{self.container_port}/{self.protocol}"


def _port(text: str, what: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise InvalidArgument(f"invalid {what} {text!r}: must be a number from 1 to 65535")
    return int(text)


def parse_range(text: str, what: str) -> tuple[int, int]:
    """``"8000-8010"`` -> (8000, 8010); ``"80"`` -> (80, 80)."""
    m = _PORT_RANGE_RE.match(text)
    if m is None:
        raise InvalidArgument(f"invalid {what} {text!r}")
    start = _port(m.group(1), what)
    end = _port(m.group(2), what) if m.group(2) else start
    if end < start:
        raise InvalidArgument(f"invalid {what} {text!r}: the range ends before it starts")
    return start, end


def _protocol(text: str) -> str:
    proto = text.lower() or "tcp"
    if proto not in PROTOCOLS:
        raise InvalidArgument(f"unsupported port protocol {text!r}: use tcp or udp")
    return proto


def _host_ip(text: str) -> str:
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if not text:
        return ""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError as err:
        raise InvalidArgument(f"invalid host IP {text!r} in port mapping") from err


def _split_publish(spec: str) -> tuple[str, str, str]:
    """``ip:host:container`` with IPv6 in brackets -> the three parts ("" when missing)."""
    if spec.startswith("["):
        close = spec.find("]")
        if close < 0 or spec[close + 1 : close + 2] != ":":
            raise InvalidArgument(f"invalid port mapping {spec!r}: bad IPv6 address")
        ip, rest = spec[: close + 1], spec[close + 2 :]
        host, sep, container = rest.partition(":")
        if not sep:
            raise InvalidArgument(f"invalid port mapping {spec!r}: no container port")
        return ip, host, container
    parts = spec.split(":")
    if len(parts) == 1:
        return "", "", parts[0]
    if len(parts) == 2:
        return "", parts[0], parts[1]
    if len(parts) == 3:
        return parts[0], parts[1], parts[2]
    raise InvalidArgument(f"invalid port mapping {spec!r}: put an IPv6 host address in brackets")


def parse_publish(spec: str) -> list[PortBinding]:
    """Every binding of one ``-p`` argument."""
    body, _, proto_s = spec.partition("/")
    proto = _protocol(proto_s)
    ip_s, host_s, container_s = _split_publish(body.strip())
    ip = _host_ip(ip_s)
    c_start, c_end = parse_range(container_s, "container port")
    if not host_s:
        return [PortBinding(p, proto, ip) for p in range(c_start, c_end + 1)]
    h_start, h_end = parse_range(host_s, "host port")
    count = c_end - c_start + 1
    if count == 1 and h_end > h_start:
        return [PortBinding(c_start, proto, ip, 0, (h_start, h_end))]
    if h_end - h_start + 1 != count:
        raise InvalidArgument(
            f"invalid port mapping {spec!r}: host and container port ranges differ in size"
        )
    return [PortBinding(c_start + i, proto, ip, h_start + i) for i in range(count)]


def from_port_bindings(bindings: Mapping[str, Any] | None) -> list[PortBinding]:
    """Docker's ``HostConfig.PortBindings`` (``{"80/tcp": [{"HostIp", "HostPort"}]}``)."""
    out: list[PortBinding] = []
    for key, entries in (bindings or {}).items():
        port_s, _, proto_s = str(key).partition("/")
        c_start, c_end = parse_range(port_s, "container port")
        proto = _protocol(proto_s)
        for entry in entries or [{}]:
            ip = _host_ip(str(entry.get("HostIp") or ""))
            host_s = str(entry.get("HostPort") or "")
            for i, port in enumerate(range(c_start, c_end + 1)):
                if not host_s:
                    out.append(PortBinding(port, proto, ip))
                    continue
                h_start, h_end = parse_range(host_s, "host port")
                if h_end > h_start and c_end == c_start:
                    out.append(PortBinding(port, proto, ip, 0, (h_start, h_end)))
                else:
                    out.append(PortBinding(port, proto, ip, h_start + i))
    return out


def to_docker_ports(bindings: Iterable[PortBinding]) -> dict[str, list[dict[str, str]]]:
    """``NetworkSettings.Ports``: ``{"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]}``."""
    out: dict[str, list[dict[str, str]]] = {}
    for b in bindings:
        ip = b.host_ip or "0.0.0.0"
        out.setdefault(b.key, []).append({"HostIp": ip, "HostPort": str(b.host_port)})
    return out


# -- who holds a port -------------------------------------------------------------------------

_TCP_LISTEN, _CLOSE = "0A", "07"


def _decode_addr(text: str) -> tuple[str, int]:
    addr_hex, port_hex = text.split(":")
    raw = bytes.fromhex(addr_hex)
    # The kernel prints each 32-bit word in host (little-endian) order.
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return str(ipaddress.ip_address(words)), int(port_hex, 16)


def _overlaps(ip_a: str, ip_b: str) -> bool:
    wild = ("", "0.0.0.0", "::")
    return ip_a in wild or ip_b in wild or ip_a == ip_b


def socket_inodes(proc: Path, protocol: str, host_ip: str, port: int) -> set[int]:
    """Inodes of sockets bound to ``port`` on an address overlapping ``host_ip``."""
    inodes: set[int] = set()
    for table in (protocol, protocol + "6"):
        try:
            lines = (proc / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10:
                continue
            ip, lport = _decode_addr(fields[1])
            state = fields[3]
            if protocol == "tcp" and state not in (_TCP_LISTEN, _CLOSE):
                continue
            if lport == port and _overlaps(ip, host_ip):
                inodes.add(int(fields[9]))
    return inodes


def find_holder(protocol: str, host_ip: str, port: int, proc: Path = Path("/proc")) -> str | None:
    """``"process nginx (pid 42)"`` holding the port, ``"a host process"`` if unknown, or None."""
    inodes = socket_inodes(proc, protocol, host_ip, port)
    if not inodes:
        return None
    wanted = {f"socket:[{i}]" for i in inodes}
    for pid_dir in proc.iterdir():
        if not pid_dir.name.isdigit():
            continue
        try:
            fds = list((pid_dir / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target in wanted:
                try:
                    comm = (pid_dir / "comm").read_text().strip()
                except OSError:
                    comm = "?"
                return f"process {comm} (pid {pid_dir.name})"
    return "a host process"


# -- reserving host ports ---------------------------------------------------------------------

Reserver = Callable[[str, str, int], socket.socket]


def reserve_port(protocol: str, host_ip: str, port: int) -> socket.socket:
    """Bind (not listen) ``port`` so no host process can take it while it is published.

    Raises ``OSError`` (EADDRINUSE) if something holds it. Port 0 binds a random free port.
    """
    family = socket.AF_INET6 if ":" in host_ip else socket.AF_INET
    kind = socket.SOCK_STREAM if protocol == "tcp" else socket.SOCK_DGRAM
    sock = socket.socket(family, kind)
    try:
        # No SO_REUSEADDR: a bound, non-listening socket with it would not stop another
        # SO_REUSEADDR socket (most servers set it) from binding the same port.
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host_ip or "0.0.0.0", port))
    except OSError:
        sock.close()
        raise
    return sock


def ephemeral_range(proc: Path = Path("/proc")) -> tuple[int, int]:
    """The host's ``ip_local_port_range`` (where random host ports come from)."""
    try:
        low, high = (proc / "sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def candidates(binding: PortBinding, proc: Path = Path("/proc")) -> list[int]:
    """Host ports to try for ``binding``, in order (shuffled when the choice is free)."""
    if binding.host_port:
        return [binding.host_port]
    low, high = binding.host_range or ephemeral_range(proc)
    ports = list(range(low, high + 1))
    random.shuffle(ports)
    return ports[:64] if binding.host_range is None else ports
