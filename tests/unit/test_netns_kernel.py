"""Kernel helpers that need no root: firewall diagnosis, MACs, names, namespace liveness."""

from __future__ import annotations

import os
from pathlib import Path

from pycompose.netns import netnsfs
from pycompose.netns.bridge import bridge_name, is_bridge_name
from pycompose.netns.kernel import FakeKernel, forward_blockers, random_mac
from pycompose.netns.veth import is_veth_name, next_ifname, veth_name


def test_forward_blockers_names_foreign_drop_policies() -> None:
    ruleset = {"nftables": [
        {"metainfo": {"version": "1.0.6"}},
        {"chain": {"family": "ip", "table": "filter", "name": "FORWARD", "hook": "forward",
                   "policy": "drop"}},
        {"chain": {"family": "inet", "table": "pycompose_pc_", "name": "forward",
                   "hook": "forward", "policy": "drop"}},
        {"chain": {"family": "ip", "table": "filter", "name": "INPUT", "hook": "input",
                   "policy": "drop"}},
        {"chain": {"family": "inet", "table": "fw", "name": "fwd", "hook": "forward",
                   "policy": "accept"}},
    ]}  # fmt: skip
    assert forward_blockers(ruleset, "pycompose_pc_") == ["table ip filter chain FORWARD"]
    fake = FakeKernel(chains=[ruleset["nftables"][1]["chain"]])
    assert forward_blockers(fake.nft_chains(), "x") == ["table ip filter chain FORWARD"]


def test_random_mac_is_local_unicast() -> None:
    for _ in range(50):
        first = int(random_mac().split(":")[0], 16)
        assert first & 0x02 and not first & 0x01


def test_names_fit_ifnamsiz_and_are_told_apart() -> None:
    ident = "0123456789abcdef" * 4
    assert bridge_name("abcdef", ident) == "abcdef012345678"
    assert bridge_name("pc-", ident, default=True) == "pc-br0"
    assert is_bridge_name("pc-", "pc-0123456789ab") and is_bridge_name("pc-", "pc-br0")
    assert not is_bridge_name("pc-", "pc-v01234567") and not is_bridge_name("pc-", "pc-")
    assert not is_bridge_name("pc-", "docker0")
    assert veth_name("pc-", "deadbeef") == "pc-vdeadbeef" and is_veth_name("pc-", "pc-vdeadbeef")
    assert len(veth_name("abcdef", ident)) == 15
    assert next_ifname({"eth0", "eth2"}) == "eth1"


def test_namespaces_in_use_compares_inodes(tmp_path: Path) -> None:
    alive, dead = tmp_path / "alive", tmp_path / "dead"
    alive.touch()
    dead.touch()
    proc = tmp_path / "proc"
    (proc / "42" / "ns").mkdir(parents=True)
    os.symlink(alive, proc / "42" / "ns" / "net")
    (proc / "self").mkdir()
    (proc / "43").mkdir()  # a process that went away mid-scan
    assert netnsfs.namespaces_in_use([alive, dead, tmp_path / "gone"], proc) == {"alive"}
    assert netnsfs.namespaces_in_use([], proc) == set()
