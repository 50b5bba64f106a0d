"""The engine-written /etc/hosts, /etc/resolv.conf and /etc/hostname."""

from __future__ import annotations

from pathlib import Path

import pytest

from pycompose.engine.errors import InvalidArgument
from pycompose.engine.runtime.etcfiles import (
    EtcParams,
    hosts_content,
    resolv_conf_content,
    write_etc_files,
)

HOST_RESOLV = "# generated\nnameserver 127.0.0.53\nnameserver 192.0.2.1\nsearch corp.example\n"


def test_hosts_has_localhost_extra_hosts_and_own_address() -> None:
    text = hosts_content(EtcParams(hostname="web", domainname="example.org",
                                   addresses=("10.0.0.2",), aliases=("app",),
                                   extra_hosts=(("db", "10.0.0.9"),)))  # fmt: skip
    lines = text.splitlines()
    assert lines[0] == "127.0.0.1\tlocalhost"
    assert "10.0.0.9\tdb" in lines
    assert lines[-1] == "10.0.0.2\tweb.example.org web app"


def test_hosts_refuses_bad_ip() -> None:
    with pytest.raises(InvalidArgument, match="extra host"):
        hosts_content(EtcParams(hostname="h", extra_hosts=(("db", "not-an-ip"),)))


def test_resolv_conf_drops_loopback_servers() -> None:
    text = resolv_conf_content(EtcParams(hostname="h", host_resolv_conf=HOST_RESOLV))
    assert text == "nameserver 192.0.2.1\nsearch corp.example\n"


def test_resolv_conf_falls_back_when_host_has_only_local_servers() -> None:
    text = resolv_conf_content(EtcParams(hostname="h", host_resolv_conf="nameserver 127.0.0.1\n"))
    assert text.splitlines()[:2] == ["nameserver 8.8.8.8", "nameserver 8.8.4.4"]


def test_resolv_conf_embedded_dns() -> None:
    params = EtcParams(
        hostname="h", embedded_dns=True, host_resolv_conf=HOST_RESOLV, dns_options=("ndots:5",)
    )
    text = resolv_conf_content(params)
    assert text == "nameserver 127.0.0.11\nsearch corp.example\noptions ndots:0\n"


def test_resolv_conf_explicit_and_host_network() -> None:
    text = resolv_conf_content(EtcParams(hostname="h", dns=("1.1.1.1",), dns_search=("a.b",)))
    assert text == "nameserver 1.1.1.1\nsearch a.b\n"
    host = resolv_conf_content(EtcParams(hostname="h", host_network=True,
                                         host_resolv_conf=HOST_RESOLV))  # fmt: skip
    assert host.startswith("nameserver 127.0.0.53\nnameserver 192.0.2.1\n")
    with pytest.raises(InvalidArgument, match="dns server"):
        resolv_conf_content(EtcParams(hostname="h", dns=("dns.example",)))


def test_write_etc_files(tmp_path: Path) -> None:
    files = write_etc_files(tmp_path, EtcParams(hostname="web", addresses=("10.0.0.2",)))
    assert set(files) == {"/etc/hosts", "/etc/resolv.conf", "/etc/hostname"}
    assert files["/etc/hostname"].read_text() == "web\n"
    assert "10.0.0.2\tweb" in files["/etc/hosts"].read_text()
    assert (files["/etc/hosts"].stat().st_mode & 0o777) == 0o644
    with pytest.raises(InvalidArgument, match="hostname"):
        write_etc_files(tmp_path, EtcParams(hostname=""))
