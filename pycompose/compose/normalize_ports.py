"""Published ports: short syntax (``[ip:][host:]container[/proto]``) to compose's long form.

The short syntax follows docker's ``nat.ParsePortSpec``: ranges expand to one entry per
container port (``8000-8001:80-81`` gives two), a host range against a single container
port stays one entry with ``published: "9000-9001"``, entries from one range are ordered by
their ``"port/proto"`` text as compose orders them, and ``published`` is always a string.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from pycompose.compose.errors import ComposeError
from pycompose.compose.normalize_values import omit_empty, to_int, to_str, type_name

PROTOCOLS = ("tcp", "udp", "sctp")
_PORT_KEYS = ("name", "mode", "host_ip", "target", "published", "protocol", "app_protocol")


def _port_range(text: str) -> tuple[int, int]:
    """``"80"`` or ``"8000-8010"`` as (start, end); like Go, ``1-2-3`` reads as ``1-2``."""
    if not text:
        raise ValueError("empty port")
    parts = text.split("-")
    start = _port_number(parts[0])
    end = start if len(parts) == 1 else _port_number(parts[1])
    if end < start:
        raise ValueError("range ends before it starts")
    return start, end


def _port_number(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) > 65535:
        raise ValueError(text)
    return int(text)


def _split_spec(spec: str) -> tuple[str, str, str]:
    parts = spec.split(":")
    if len(parts) == 1:
        return "", "", parts[0]
    if len(parts) == 2:
        return "", parts[0], parts[1]
    return ":".join(parts[:-2]), parts[-2], parts[-1]


def _split_proto(text: str) -> tuple[str, str]:
    parts = text.split("/")
    if not text or not parts[0]:
        return "", ""
    if len(parts) == 1 or not parts[1]:
        return "tcp", parts[0]
    return parts[1], parts[0]


def check_host_ip(ip: str) -> None:
    """Raise unless ``ip`` is a literal IPv4 or IPv6 address (no zone, no brackets)."""
    try:
        if "%" in ip:
            raise ValueError(ip)
        ipaddress.ip_address(ip)
    except ValueError:
        raise ComposeError(f"invalid IP address: {ip}") from None


def parse_port_spec(spec: str) -> list[dict[str, Any]]:
    """Parse one short-syntax port into long-form entries (several for a range)."""
    ip, host, container = _split_spec(spec)
    proto, container = _split_proto(container)
    if ip.startswith("["):
        if not ip.endswith("]"):
            raise ComposeError(f"invalid IP address {ip}: missing ']' in address")
        ip = ip[1:-1]
    if ip:
        check_host_ip(ip)
    if proto.lower() not in PROTOCOLS:
        raise ComposeError(f"invalid protocol {proto!r} in port {spec!r} (use tcp, udp or sctp)")
    try:
        start, end = _port_range(container)
    except ValueError:
        raise ComposeError(f"invalid container port {container!r} in {spec!r}") from None
    host_start = host_end = 0
    if host:
        try:
            host_start, host_end = _port_range(host)
        except ValueError:
            raise ComposeError(f"invalid host port {host!r} in {spec!r}") from None
        if end - start != host_end - host_start and end != start:
            raise ComposeError(
                f"invalid port ranges in {spec!r}: container {container} and host {host} "
                "have different lengths"
            )
    entries = []
    for offset in range(end - start + 1):
        published = str(host_start + offset) if host else ""
        if host and start == end and host_start != host_end:
            published = f"{host_start}-{host_end}"
        entry = {"mode": "ingress", "host_ip": ip, "target": start + offset,
                 "published": published, "protocol": proto.lower()}
        entries.append((f"{start + offset}/{proto.lower()}", omit_empty(entry)))
    entries.sort(key=lambda pair: pair[0])
    for _, entry in entries:
        if not entry.get("target"):
            raise ComposeError(f"port {spec!r} is missing a target port")
    return [entry for _, entry in entries]


def normalize_port(entry: Any) -> list[dict[str, Any]]:
    """One item of ``ports``: a short spec (string or number) or a long-form mapping."""
    if isinstance(entry, bool):
        raise ComposeError(f"invalid type boolean for a port: {entry}")
    if isinstance(entry, int):
        return parse_port_spec(str(entry))
    if isinstance(entry, str):
        return parse_port_spec(entry)
    if not isinstance(entry, dict):
        raise ComposeError(f"invalid type {type_name(entry)} for a port")
    out = {k: v for k, v in entry.items() if k not in _PORT_KEYS or k.startswith("x-")}
    for key in _PORT_KEYS:
        if entry.get(key) is not None:
            out[key] = to_str(entry[key])
    if "target" in out:
        out["target"] = to_int(out["target"])
    if "host_ip" in out:
        check_host_ip(out["host_ip"])
    out.setdefault("mode", "ingress")
    out.setdefault("protocol", "tcp")
    return [omit_empty(out)]


def port_key(entry: dict[str, Any], raw: Any) -> str:
    """The identity compose dedupes ports by: ``host_ip:published:target/protocol``.

    As in compose, ``raw`` (the long-syntax mapping as written) decides ``published``: a
    number there never equals a string, so ``published: 8080`` and ``"8080:80"`` stay two
    entries while ``published: "8080"`` replaces ``"8080:80"``.
    """
    source = raw if isinstance(raw, dict) else entry
    host = source.get("host_ip") if isinstance(source.get("host_ip"), str) else "0.0.0.0"
    published = source.get("published")
    if not isinstance(published, str):
        published = "" if published is None else f"#{published}"
    protocol = source.get("protocol") if isinstance(source.get("protocol"), str) else "tcp"
    return f"{host}:{published}:{entry.get('target', 0)}/{protocol}"


def normalize_expose(value: Any) -> list[str]:
    """``expose``: ports or ranges, printed as strings."""
    if not isinstance(value, list):
        raise ComposeError(f"must be a list, not {type_name(value)}")
    return [to_str(v) for v in value]
