"""cgroup layout detection and Docker resource limits as OCI resources."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from pycompose.engine.errors import InvalidArgument
from pycompose.engine.runtime import cgroups
from pycompose.engine.runtime.cgroups import CgroupMode, HostCgroups, ResourceLimits

V1 = """\
30 25 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory
32 30 0:28 / /sys/fs/cgroup/pids rw,nosuid - cgroup cgroup rw,pids
"""
HYBRID = V1 + "33 30 0:29 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw\n"
V2 = "30 25 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n"
HOST = HostCgroups(CgroupMode.V1, frozenset({"memory", "cpu", "cpuset", "pids"}), True, 2)


def test_detect_mode() -> None:
    assert cgroups.detect_mode(V1) is CgroupMode.V1
    assert cgroups.detect_mode(HYBRID) is CgroupMode.HYBRID
    assert cgroups.detect_mode(V2) is CgroupMode.V2
    with pytest.raises(InvalidArgument, match="no cgroup filesystem"):
        cgroups.detect_mode("1 0 8:1 / / rw - ext4 /dev/sda rw\n")


def test_probe_host_v1_tree(tmp_path: Path) -> None:
    for ctrl in ("memory", "pids", "cpu", "unified", "systemd"):
        (tmp_path / ctrl).mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    host = cgroups.probe_host(tmp_path, HYBRID)
    assert host.mode is CgroupMode.HYBRID
    assert host.controllers == frozenset({"memory", "pids", "cpu"})
    assert not host.swap_accounting and host.cfs_quota and not host.blkio_weight


def test_probe_host_v2_tree(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpu io memory pids\n")
    (tmp_path / "system.slice").mkdir()
    (tmp_path / "system.slice" / "memory.swap.max").write_text("max\n")
    host = cgroups.probe_host(tmp_path, V2)
    assert host.mode is CgroupMode.V2 and host.swap_accounting and host.blkio_weight
    assert "memory" in host.controllers


def test_memory_limits() -> None:
    res = cgroups.resources(ResourceLimits(memory=64 << 20), HOST)
    assert res["memory"] == {"limit": 64 << 20, "swap": 128 << 20}
    res = cgroups.resources(ResourceLimits(memory=64 << 20, memory_swap=-1), HOST)
    assert res["memory"]["swap"] == -1
    no_swap = replace(HOST, swap_accounting=False)
    assert cgroups.resources(ResourceLimits(memory=64 << 20), no_swap)["memory"] == {
        "limit": 64 << 20
    }
    with pytest.raises(InvalidArgument, match="swap accounting"):
        cgroups.resources(ResourceLimits(memory=64 << 20, memory_swap=128 << 20), no_swap)
    with pytest.raises(InvalidArgument, match="minimum memory limit allowed is 6MB"):
        cgroups.resources(ResourceLimits(memory=1 << 20), HOST)
    with pytest.raises(InvalidArgument, match="at least Memory"):
        cgroups.resources(ResourceLimits(memory=64 << 20, memory_swap=32 << 20), HOST)


def test_cpu_limits() -> None:
    res = cgroups.resources(ResourceLimits(nano_cpus=500_000_000, cpu_shares=512), HOST)
    assert res["cpu"] == {"period": 100_000, "quota": 50_000, "shares": 512}
    with pytest.raises(InvalidArgument, match=r"range of CPUs is from 0\.01 to 2"):
        cgroups.resources(ResourceLimits(nano_cpus=3_000_000_000), HOST)
    with pytest.raises(InvalidArgument, match="conflicts"):
        cgroups.resources(ResourceLimits(nano_cpus=10**9, cpu_quota=50_000), HOST)
    assert cgroups.resources(ResourceLimits(cpuset_cpus="0-1,3"), HOST)["cpu"]["cpus"] == "0-1,3"
    with pytest.raises(InvalidArgument, match="CpusetCpus"):
        cgroups.resources(ResourceLimits(cpuset_cpus="2-1"), HOST)


def test_pids_and_missing_controllers() -> None:
    assert cgroups.resources(ResourceLimits(pids_limit=50), HOST)["pids"] == {"limit": 50}
    assert "pids" not in cgroups.resources(ResourceLimits(pids_limit=-1), HOST)
    bare = replace(HOST, controllers=frozenset())
    with pytest.raises(InvalidArgument, match="pids cgroup controller is not available"):
        cgroups.resources(ResourceLimits(pids_limit=50), bare)
    with pytest.raises(InvalidArgument, match="BlkioWeight"):
        cgroups.resources(ResourceLimits(blkio_weight=500), HOST)


def test_v2_refuses_v1_only_knobs() -> None:
    v2 = replace(HOST, mode=CgroupMode.V2)
    with pytest.raises(InvalidArgument, match="MemorySwappiness"):
        cgroups.resources(ResourceLimits(memory_swappiness=10), v2)
    assert cgroups.resources(ResourceLimits(memory_swappiness=10), HOST)["memory"] == {
        "swappiness": 10
    }


def test_read_oom_kills(tmp_path: Path) -> None:
    d = tmp_path / "memory" / "pycompose" / "c1"
    d.mkdir(parents=True)
    (d / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    assert cgroups.read_oom_kills(CgroupMode.V1, "/pycompose/c1", tmp_path) == 2
    assert cgroups.read_oom_kills(CgroupMode.V1, "/pycompose/gone", tmp_path) == 0
    v2 = tmp_path / "pycompose" / "c2"
    v2.mkdir(parents=True)
    (v2 / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    assert cgroups.read_oom_kills(CgroupMode.V2, "/pycompose/c2", tmp_path) == 1


def test_remove_parent_if_empty_keeps_busy_hierarchies(tmp_path: Path) -> None:
    from pycompose.engine.runtime.cgroups import remove_parent_if_empty

    for controller in ("memory", "pids", "cpu,cpuacct"):
        (tmp_path / controller / "pycompose").mkdir(parents=True)
    (tmp_path / "pids" / "pycompose" / "still-running").mkdir()
    (tmp_path / "pycompose").mkdir()  # the unified (v2) hierarchy
    removed = remove_parent_if_empty("pycompose", tmp_path)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in removed) == [
        "cpu,cpuacct/pycompose",
        "memory/pycompose",
        "pycompose",
    ]
    assert (tmp_path / "pids" / "pycompose" / "still-running").is_dir()
    assert remove_parent_if_empty("pycompose", tmp_path) == []
