"""Bridge devices: one per network, named from the network id under the engine's prefix.

Names are at most 15 characters (IFNAMSIZ - 1). A user network's bridge is the prefix and
the start of its (hex) id; the predefined ``bridge`` network's is the prefix and ``br0``
(``r`` is not hex, so it never collides with an id). Veths use ``v`` after the prefix.
"""

from __future__ import annotations

from collections.abc import Sequence

from pycompose.netns.kernel import Kernel

IFNAME_MAX = 15
DEFAULT_BRIDGE_SUFFIX = "br0"


def bridge_name(prefix: str, network_id: str, *, default: bool = False) -> str:
    """The bridge device of a network."""
    suffix = DEFAULT_BRIDGE_SUFFIX if default else network_id
    return (prefix + suffix)[:IFNAME_MAX]


def is_bridge_name(prefix: str, name: str) -> bool:
    """True for names this engine gives bridges."""
    rest = name[len(prefix) :] if name.startswith(prefix) else None
    if rest is None or not rest:
        return False
    return rest == DEFAULT_BRIDGE_SUFFIX or all(c in "0123456789abcdef" for c in rest)


def ensure_bridge(kernel: Kernel, name: str, addresses: Sequence[str], mtu: int = 1500) -> bool:
    """Create the bridge unless it exists; True if it was created."""
    if kernel.link_exists(name):
        return False
    kernel.add_bridge(name, addresses, mtu)
    return True
