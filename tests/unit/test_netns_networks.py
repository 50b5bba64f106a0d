"""Network create requests: Docker's body checked field by field, records made from specs."""

from __future__ import annotations

from pathlib import Path

import pytest

from pycompose.cli.network_cmd import ipam_config, render_ls
from pycompose.engine.config import EngineConfig
from pycompose.engine.errors import InvalidArgument, NotFound
from pycompose.netns.networks import NetworkSpec, make_record
from pycompose.netns.records import NetworkRecord


def config(tmp_path: Path) -> EngineConfig:
    return EngineConfig.load(root=tmp_path, runtime_dir=tmp_path, bridge_prefix="abcdef",
                             subnet_pool="10.40.0.0/16:24", environ={})  # fmt: skip


def test_docker_cli_body_is_accepted() -> None:
    body = {"Name": "n", "CheckDuplicate": True, "Driver": "bridge", "Scope": "",
            "EnableIPv6": False,
            "IPAM": {"Driver": "default", "Options": {}, "Config": [{"Subnet": "10.9.0.0/24"}]},
            "Internal": True, "Attachable": False, "Ingress": False, "ConfigOnly": False,
            "ConfigFrom": None, "Options": {}, "Labels": {"a": "b"}}  # fmt: skip
    spec = NetworkSpec.from_docker(body)
    assert (
        spec.internal
        and spec.labels == {"a": "b"}
        and spec.subnets(4) == [{"Subnet": "10.9.0.0/24"}]
    )
    assert spec.subnets(6) == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"Name": "n", "Ingress": True}, "Ingress is not supported"),
        ({"Name": "n", "Colour": 1}, "unknown field Colour"),
        ({"Name": "n", "Scope": "swarm"}, "only local"),
        ({"Name": "n", "IPAM": {"Driver": "dhcp"}}, "IPAM.Driver"),
        (
            {"Name": "n", "IPAM": {"Config": [{"Subnet": "10.0.0.0/8", "X": 1}]}},
            r"IPAM.Config\[0\].X",
        ),
        ({"Name": "n", "EnableIPv4": False}, "EnableIPv4"),
    ],
)
def test_bad_bodies(body: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        NetworkSpec.from_docker(body)


def test_records(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    spec = NetworkSpec(name="web_1.x", options={"com.docker.network.driver.mtu": "1400"})
    rec = make_record(spec, "0123456789abcdef" * 4, "2024-01-01T00:00:00Z", cfg, ["10.40.0.0/23"])
    assert rec.bridge == "abcdef012345678" and len(rec.bridge) == 15
    assert rec.ipam[0].subnet == "10.40.2.0/24" and rec.mtu == 1400 and not rec.ipam_user
    assert NetworkRecord.from_json(rec.to_json()) == rec
    six = make_record(NetworkSpec(name="s", enable_ipv6=True), "f" * 64, "t", cfg, [])
    assert [c.version for c in six.ipam] == [4, 6] and six.to_docker()["EnableIPv6"]
    bridge = make_record(NetworkSpec(name="bridge"), "e" * 64, "t", cfg, [], predefined=True)
    assert (
        bridge.bridge == "abcdefbr0"
        and bridge.options["com.docker.network.bridge.name"] == "abcdefbr0"
    )


@pytest.mark.parametrize(
    ("spec", "error", "message"),
    [
        (NetworkSpec(name="-bad"), InvalidArgument, "invalid network name"),
        (NetworkSpec(name="h", driver="host"), InvalidArgument, "only one instance"),
        (NetworkSpec(name="m", driver="macvlan"), NotFound, "plugin"),
        (
            NetworkSpec(name="o", options={"com.docker.network.bridge.name": "br9"}),
            InvalidArgument,
            "derive from the network id",
        ),
        (
            NetworkSpec(name="o", options={"com.docker.network.bridge.enable_icc": "false"}),
            InvalidArgument,
            "not supported",
        ),
        (
            NetworkSpec(name="o", options={"com.docker.network.driver.mtu": "9"}),
            InvalidArgument,
            "MTU",
        ),
        (
            NetworkSpec(name="v", ipam=({"Subnet": "fd00::/64"},)),
            InvalidArgument,
            "EnableIPv6 is false",
        ),
        (
            NetworkSpec(name="v", ipam=({"Subnet": "10.1.0.0/24"}, {"Subnet": "10.2.0.0/24"})),
            InvalidArgument,
            "only one IPv4",
        ),
        (NetworkSpec(name="v", ipam=({"Gateway": "10.1.0.1"},)), InvalidArgument, "need a Subnet"),
    ],
)
def test_refused_specs(
    tmp_path: Path, spec: NetworkSpec, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        make_record(spec, "a" * 64, "t", config(tmp_path), [])


def test_cli_ipam_pairing_and_ls_rendering() -> None:
    assert ipam_config(("10.1.0.0/24", "fd00::/64"), ("10.1.0.254",), (), ()) == [
        {"Subnet": "10.1.0.0/24", "Gateway": "10.1.0.254"},
        {"Subnet": "fd00::/64"},
    ]
    from pycompose.cli import framework as fw

    with pytest.raises(fw.UsageError):
        ipam_config((), ("10.1.0.1",), (), ())
    nets = [{"Id": "b" * 64, "Name": "zeta", "Driver": "bridge", "Scope": "local"},
            {"Id": "a" * 64, "Name": "alpha", "Driver": "null", "Scope": "local"}]  # fmt: skip
    assert render_ls(nets, None, False, True).splitlines() == [
        "NETWORK ID     NAME      DRIVER    SCOPE",
        "aaaaaaaaaaaa   alpha     null      local",
        "bbbbbbbbbbbb   zeta      bridge    local",
    ]
    assert render_ls(nets, None, True, False).split() == ["a" * 64, "b" * 64]
    assert render_ls(nets, "{{.Name}}:{{.Internal}}", False, True) == "alpha:false\nzeta:false"
