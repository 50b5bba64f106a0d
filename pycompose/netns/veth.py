"""Veth pairs: the host end is named ``<prefix>v<endpoint id>``, the container end ``eth<n>``."""

from __future__ import annotations

from pycompose.netns.bridge import IFNAME_MAX

VETH_MARK = "v"


def veth_name(prefix: str, endpoint_id: str) -> str:
    """The host-side name of an endpoint's veth."""
    return (prefix + VETH_MARK + endpoint_id)[:IFNAME_MAX]


def is_veth_name(prefix: str, name: str) -> bool:
    """True for host-side veth names this engine gives."""
    return name.startswith(prefix + VETH_MARK) and len(name) > len(prefix) + 1


def container_ifname(index: int) -> str:
    """``eth0`` for the first network a container joins, ``eth1`` for the next..."""
    return f"eth{index}"


def next_ifname(taken: set[str]) -> str:
    """The lowest ``eth<n>`` not in ``taken``."""
    index = 0
    while container_ifname(index) in taken:
        index += 1
    return container_ifname(index)
