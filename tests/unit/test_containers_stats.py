"""Stats figures from fake cgroup trees: v1, v2, and v2 without memory/pids controllers."""

from __future__ import annotations

from pathlib import Path

from pycompose.engine.containers import stats
from pycompose.engine.runtime.cgroups import CgroupMode

CPU_STAT = "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n"


def test_v2_with_every_controller(tmp_path: Path) -> None:
    d = tmp_path / "pycompose" / "c1"
    d.mkdir(parents=True)
    (d / "cpu.stat").write_text(CPU_STAT + "nr_periods 4\nnr_throttled 1\nthrottled_usec 7\n")
    (d / "memory.current").write_text("4096\n")
    (d / "memory.max").write_text("67108864\n")
    (d / "memory.stat").write_text("anon 1024\ninactive_file 0\n")
    (d / "pids.current").write_text("2\n")
    (d / "pids.max").write_text("50\n")
    (d / "cgroup.threads").write_text("11\n12\n13\n")
    out = stats.sample(CgroupMode.V2, "/pycompose/c1", tmp_path)
    assert out["cpu_stats"]["cpu_usage"] == {"total_usage": 1_500_000,
                                             "usage_in_kernelmode": 500_000,
                                             "usage_in_usermode": 1_000_000}  # fmt: skip
    assert out["cpu_stats"]["throttling_data"] == {"periods": 4, "throttled_periods": 1,
                                                   "throttled_time": 7000}  # fmt: skip
    assert out["memory_stats"] == {"usage": 4096, "limit": 64 << 20,
                                   "stats": {"anon": 1024, "inactive_file": 0}}  # fmt: skip
    assert out["pids_stats"] == {"current": 2, "limit": 50}


def test_v2_without_memory_and_pids_controllers(tmp_path: Path) -> None:
    """What a cgroup of a hybrid host's unified hierarchy has: no made-up memory figures,
    the pid count from the task list."""
    d = tmp_path / "pycompose" / "c1"
    d.mkdir(parents=True)
    (d / "cpu.stat").write_text(CPU_STAT)
    (d / "cgroup.threads").write_text("11\n12\n13\n")
    out = stats.sample(CgroupMode.V2, "/pycompose/c1", tmp_path)
    assert out["cpu_stats"]["cpu_usage"]["total_usage"] == 1_500_000
    assert out["cpu_stats"]["throttling_data"]["periods"] == 0
    assert out["memory_stats"] == {}
    assert out["pids_stats"] == {"current": 3}


def test_v1_unlimited_memory_reports_the_host_memory(tmp_path: Path) -> None:
    mem = tmp_path / "memory" / "pycompose" / "c1"
    mem.mkdir(parents=True)
    (mem / "memory.usage_in_bytes").write_text("8192\n")
    (mem / "memory.limit_in_bytes").write_text(f"{2**63 - 4096}\n")
    out = stats.sample(CgroupMode.HYBRID, "/pycompose/c1", tmp_path)
    assert out["memory_stats"]["usage"] == 8192
    assert 0 < out["memory_stats"]["limit"] < 2**62
    assert stats.sample(CgroupMode.V1, "/pycompose/gone", tmp_path)["memory_stats"] == {}
