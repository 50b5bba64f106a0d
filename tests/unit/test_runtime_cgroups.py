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


def test_cgroup2_mounted_over_a_v1_tree_is_v2() -> None:
    """runc goes by the filesystem type of /sys/fs/cgroup: so does the probe."""
    shadowed = HYBRID + "40 30 0:29 /pctest /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"
    assert cgroups.detect_mode(shadowed) is CgroupMode.V2
    # The other way round: a tmpfs with v1 hierarchies mounted over a cgroup2 mount.
    hidden = V2 + "41 30 0:40 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n"
    hidden += "42 41 0:27 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
    assert cgroups.detect_mode(hidden) is CgroupMode.HYBRID
    elsewhere = "50 1 0:29 / /mnt/cg rw - cgroup2 cgroup2 rw\n"
    with pytest.raises(InvalidArgument, match="not on /sys/fs/cgroup"):
        cgroups.detect_mode(elsewhere)


def test_limits_of_host_config() -> None:
    limits = cgroups.limits_of({"Memory": 64 << 20, "NanoCpus": 10**9, "PidsLimit": -1,
                                "CpusetCpus": "0", "Privileged": True})  # fmt: skip
    assert limits == ResourceLimits(memory=64 << 20, nano_cpus=10**9, cpuset_cpus="0")
    assert cgroups.limits_of({"PidsLimit": 7}).pids_limit == 7
    assert cgroups.limits_of({}) == ResourceLimits()


def test_a_missing_controller_names_the_fields_set() -> None:
    bare = replace(HOST, mode=CgroupMode.V2, controllers=frozenset({"hugetlb"}))
    for limits, field in (
        (ResourceLimits(cpu_period=50_000), "CpuPeriod"),
        (ResourceLimits(cpu_quota=50_000, cpu_period=100_000), "CpuQuota/CpuPeriod"),
        (ResourceLimits(nano_cpus=10**9), "NanoCpus"),
        (ResourceLimits(memory_reservation=1 << 30), "MemoryReservation"),
        (ResourceLimits(cpuset_mems="0"), "CpusetMems"),
    ):
        with pytest.raises(InvalidArgument, match=f"^{field} cannot be honoured"):
            cgroups.resources(limits, bare)
    assert cgroups.resources(ResourceLimits(), bare) == {"devices": []}


def test_remove_container_cgroups(tmp_path: Path) -> None:
    left = tmp_path / "pycompose" / "c1"
    left.mkdir(parents=True)
    assert cgroups.remove_container_cgroups(CgroupMode.V2, "/pycompose/c1", tmp_path) == []
    assert not left.exists() and (tmp_path / "pycompose").is_dir()
    assert cgroups.remove_container_cgroups(CgroupMode.V2, "/pycompose/c1", tmp_path) == []
    for ctrl in ("memory", "pids", "unified"):
        (tmp_path / ctrl / "pycompose" / "c2").mkdir(parents=True)
    (tmp_path / "pids" / "pycompose" / "c2" / "not-a-cgroup").write_text("")
    busy = cgroups.remove_container_cgroups(CgroupMode.HYBRID, "/pycompose/c2", tmp_path)
    assert busy == [tmp_path / "pids" / "pycompose" / "c2"]  # ENOTEMPTY: not waited for
    assert not (tmp_path / "memory" / "pycompose" / "c2").exists()
    assert not (tmp_path / "unified" / "pycompose" / "c2").exists()
    assert cgroups.remove_container_cgroups(CgroupMode.V2, "/", tmp_path) == []


def test_info_fields() -> None:
    full = replace(HOST, controllers=frozenset({"memory", "cpu", "cpuset", "pids"}))
    assert cgroups.info_fields(replace(full, swap_accounting=True)) == {
        "MemoryLimit": True, "SwapLimit": True, "CpuCfsPeriod": True, "CpuCfsQuota": True,
        "CPUShares": True, "CPUSet": True, "PidsLimit": True, "Warnings": [],
    }  # fmt: skip
    # The unified hierarchy of a hybrid host: the warnings dockerd gives there.
    bare = HostCgroups(CgroupMode.V2, frozenset({"hugetlb"}), False, 2)
    info = cgroups.info_fields(bare)
    assert not any(v for k, v in info.items() if k != "Warnings")
    assert info["Warnings"] == [
        "WARNING: No memory limit support", "WARNING: No swap limit support",
        "WARNING: No cpu cfs quota support", "WARNING: No cpu cfs period support",
        "WARNING: No cpu shares support", "WARNING: No cpuset support",
    ]  # fmt: skip
