"""``pycompose port``: the public side of a container's published ports, as docker prints it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pycompose.cli import framework as fw
from pycompose.cli.container_base import CliError, engine_command

if TYPE_CHECKING:
    from pycompose.engine.client import EngineClient


def _address(binding: dict[str, Any]) -> str:
    host = str(binding.get("HostIp") or "0.0.0.0")
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{binding.get('HostPort', '')}"


def _key(port: str) -> tuple[int, str]:
    number, _, proto = port.partition("/")
    return (int(number) if number.isdigit() else 0, proto)


def port_lines(name: str, ports: dict[str, Any] | None, private: str | None) -> list[str]:
    """Docker's lines: ``80/tcp -> 0.0.0.0:8080`` for all, or ``0.0.0.0:8080`` for one."""
    published = {k: v for k, v in (ports or {}).items() if v}
    if private is None:
        return [
            f"{port} -> {_address(b)}"
            for port in sorted(published, key=_key)
            for b in published[port]
        ]
    wanted = private if "/" in private else f"{private}/tcp"
    number, _, proto = wanted.partition("/")
    if not number.isdigit() or proto not in ("tcp", "udp", "sctp"):
        raise CliError(f"Error: invalid port: {private}")
    if wanted not in published:
        raise CliError(f"Error: No public port '{wanted}' published for {name}")
    return [_address(b) for b in published[wanted]]


@fw.command("port")
@engine_command()
@fw.argument("container")
@fw.argument("private_port", required=False)
def port(client: EngineClient, container: str, private_port: str | None) -> None:
    """List port mappings or a specific mapping for the container."""
    data = client.get(f"/containers/{container}/json")
    ports = (data.get("NetworkSettings") or {}).get("Ports")
    for line in port_lines(container, ports, private_port):
        fw.echo(line)
