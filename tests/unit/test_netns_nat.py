"""The nftables table we write: its chains, masquerade, isolation, internal, DNAT."""

from __future__ import annotations

from typing import Any

from pycompose.netns import nat

PUBLIC = nat.NatNetwork("tu-aaa", ("10.1.0.0/24", "fd00:1::/64"))
INTERNAL = nat.NatNetwork("tu-bbb", ("10.2.0.0/24",), internal=True)


def rules(commands: list[dict[str, Any]], chain: str) -> list[list[dict[str, Any]]]:
    return [c["add"]["rule"]["expr"] for c in commands
            if "rule" in c.get("add", {}) and c["add"]["rule"]["chain"] == chain]  # fmt: skip


def test_table_is_replaced_atomically_with_our_chains() -> None:
    cmds = nat.build_table("tu-", [], [])
    table = {"table": {"family": "inet", "name": "pycompose_tu_"}}
    assert cmds[:3] == [{"add": table}, {"delete": table}, {"add": table}]
    chains = {
        c["add"]["chain"]["name"]: c["add"]["chain"] for c in cmds if "chain" in c.get("add", {})
    }
    assert set(chains) == {"prerouting", "output", "postrouting", "forward"}
    assert chains["postrouting"]["prio"] == 100 and chains["forward"]["type"] == "filter"
    assert nat.delete_table("tu-") == [{"add": table}, {"delete": table}]


def test_masquerade_only_for_networks_that_reach_out() -> None:
    post = rules(nat.build_table("tu-", [PUBLIC, INTERNAL], []), "postrouting")
    out = [r for r in post if {"match": {"op": "!=", "left": {"meta": {"key": "oifname"}},
                                         "right": "tu-aaa"}} in r]  # fmt: skip
    assert len(out) == 2  # IPv4 and IPv6 subnets of the public network
    assert not any("tu-bbb" in str(r) and "!=" in str(r) for r in post)
    nomasq = nat.NatNetwork("tu-ccc", ("10.3.0.0/24",), masquerade=False)
    post = rules(nat.build_table("tu-", [nomasq], []), "postrouting")
    assert not any("10.3.0.0" in str(r) and "!=" in str(r) for r in post)


def test_internal_and_isolation_rules() -> None:
    fwd = rules(nat.build_table("tu-", [PUBLIC, INTERNAL], []), "forward")
    assert all(r[-1] == {"drop": None} for r in fwd)
    internal = [r for r in fwd if "tu-bbb" in str(r)]
    assert len(internal) == 3  # out, in, and isolation
    assert any({"match": {"op": "==", "left": {"meta": {"key": "oifname"}}, "right": "tu-*"}} in r
               for r in fwd)  # fmt: skip


def test_dnat_for_any_address_and_for_one() -> None:
    ports = [nat.PortRule("tcp", "", 8080, "10.1.0.2", 80, "tu-aaa"),
             nat.PortRule("udp", "127.0.0.1", 53, "10.1.0.2", 5353, "tu-aaa")]  # fmt: skip
    cmds = nat.build_table("tu-", [PUBLIC], ports)
    pre, out = rules(cmds, "prerouting"), rules(cmds, "output")
    assert pre == out and len(pre) == 2
    wild, one = pre
    assert {"match": {"op": "==", "left": {"fib": {"result": "type", "flags": ["daddr"]}},
                      "right": "local"}} in wild  # fmt: skip
    assert wild[-1] == {"dnat": {"family": "ip", "addr": "10.1.0.2", "port": 80}}
    assert {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}},
                      "right": "127.0.0.1"}} in one  # fmt: skip
    assert {"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}},
                      "right": 53}} in one  # fmt: skip
    v6 = nat.build_table("tu-", [PUBLIC], [nat.PortRule("tcp", "", 80, "fd00:1::2", 80, "tu-aaa")])
    assert rules(v6, "prerouting")[0][-1]["dnat"]["family"] == "ip6"
