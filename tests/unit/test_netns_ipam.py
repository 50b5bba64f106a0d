"""IPAM: subnets from the pool around host routes, addresses, gateways, MACs."""

from __future__ import annotations

import pytest

from pycompose.engine.errors import Conflict, InvalidArgument
from pycompose.netns import ipam


def test_choose_subnet_skips_routed_and_ignores_default_route() -> None:
    taken = ["0.0.0.0/0", "10.89.0.0/24", "10.89.1.128/25", "172.17.0.0/16"]
    assert ipam.choose_subnet(["10.89.0.0/16"], 24, taken) == "10.89.2.0/24"


def test_choose_subnet_skips_a_docker_bridge_inside_the_pool() -> None:
    assert ipam.choose_subnet(["172.16.0.0/12"], 16, ["172.16.0.0/16", "172.17.0.0/16"]) == (
        "172.18.0.0/16"
    )


def test_choose_subnet_moves_to_the_next_pool_and_reports_exhaustion() -> None:
    assert ipam.choose_subnet(["10.1.0.0/24", "10.2.0.0/24"], 24, ["10.1.0.0/16"]) == "10.2.0.0/24"
    with pytest.raises(Conflict, match="fully subnetted"):
        ipam.choose_subnet(["10.1.0.0/24"], 24, ["10.0.0.0/8"])


def test_ipv6_subnets_depend_on_the_seed_and_skip_taken() -> None:
    first = ipam.choose_subnet6("pc-", [])
    assert first.startswith("fd") and first.endswith("/64")
    assert ipam.choose_subnet6("pc-", [first]) != first
    assert ipam.choose_subnet6("t1234", []) != first


def test_make_config_defaults_and_checks() -> None:
    cfg = ipam.make_config("10.5.0.0/24")
    assert (cfg.gateway, cfg.ip_range) == ("10.5.0.1", "")
    assert ipam.make_config("10.5.0.0/24", "10.5.0.254", "10.5.0.128/25").gateway == "10.5.0.254"
    with pytest.raises(InvalidArgument, match="invalid subnet"):
        ipam.make_config("10.5.0.1/24")
    with pytest.raises(InvalidArgument, match="not a usable address"):
        ipam.make_config("10.5.0.0/24", "10.6.0.1")
    with pytest.raises(InvalidArgument, match="not inside subnet"):
        ipam.make_config("10.5.0.0/24", "", "10.6.0.0/25")
    with pytest.raises(InvalidArgument, match="auxiliary"):
        ipam.make_config("10.5.0.0/24", aux={"r": "10.7.0.1"})


def test_config_round_trips_through_docker_shape() -> None:
    cfg = ipam.make_config("10.5.0.0/24", "", "10.5.0.128/25", {"router": "10.5.0.2"})
    assert ipam.SubnetConfig.from_docker(cfg.to_docker()) == cfg
    assert cfg.to_docker()["AuxiliaryAddresses"] == {"router": "10.5.0.2"}


def test_allocate_lowest_free_skipping_reserved_and_used() -> None:
    cfg = ipam.make_config("10.5.0.0/29", aux={"r": "10.5.0.3"})
    assert ipam.allocate(cfg, []) == "10.5.0.2"
    assert ipam.allocate(cfg, ["10.5.0.2"]) == "10.5.0.4"
    with pytest.raises(Conflict, match="no available"):
        ipam.allocate(cfg, ["10.5.0.2", "10.5.0.4", "10.5.0.5", "10.5.0.6"])


def test_allocate_in_range_and_requested() -> None:
    cfg = ipam.make_config("10.5.0.0/24", "", "10.5.0.128/25")
    assert ipam.allocate(cfg, []) == "10.5.0.128"
    assert ipam.allocate(cfg, [], "10.5.0.9") == "10.5.0.9"
    with pytest.raises(Conflict, match="already in use"):
        ipam.allocate(cfg, ["10.5.0.9"], "10.5.0.9")
    with pytest.raises(Conflict, match="already in use"):
        ipam.allocate(cfg, [], "10.5.0.1")
    with pytest.raises(InvalidArgument, match="not inside"):
        ipam.allocate(cfg, [], "10.9.0.9")


def test_ipv6_allocation_and_macs() -> None:
    cfg = ipam.make_config("fd00:1::/64")
    assert ipam.allocate(cfg, []) == "fd00:1::2"
    assert ipam.mac_for("10.5.0.2") == "02:42:0a:05:00:02"
    assert ipam.check_mac("02:AA:bb:cc:dd:ee") == "02:aa:bb:cc:dd:ee"
    for bad in ("01:00:00:00:00:00", "zz:00:00:00:00:00", "02:00:00:00:00"):
        with pytest.raises(InvalidArgument):
            ipam.check_mac(bad)
