"""`pycompose port` output, as docker prints it."""

from __future__ import annotations

import pytest

from pycompose.cli.container_base import CliError
from pycompose.cli.container_port import port_lines

PORTS = {
    "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}, {"HostIp": "::", "HostPort": "8080"}],
    "53/udp": [{"HostIp": "127.0.0.1", "HostPort": "5353"}],
    "9000/tcp": None,
}


def test_all_mappings_sorted_by_port() -> None:
    assert port_lines("web", PORTS, None) == [
        "53/udp -> 127.0.0.1:5353",
        "80/tcp -> 0.0.0.0:8080",
        "80/tcp -> [::]:8080",
    ]


def test_one_port_defaults_to_tcp() -> None:
    assert port_lines("web", PORTS, "80") == ["0.0.0.0:8080", "[::]:8080"]
    assert port_lines("web", PORTS, "53/udp") == ["127.0.0.1:5353"]


def test_unpublished_and_invalid_ports() -> None:
    with pytest.raises(CliError, match="No public port '9000/tcp' published for web"):
        port_lines("web", PORTS, "9000")
    with pytest.raises(CliError, match="invalid port"):
        port_lines("web", PORTS, "eighty")
    assert port_lines("web", None, None) == []
