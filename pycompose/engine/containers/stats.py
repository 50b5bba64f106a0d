"""``GET /containers/{id}/stats``: CPU, memory and pids figures from the container's cgroups.

Shapes follow Docker's ``StatsJSON`` for cgroup v1 (and hybrid) and v2 hosts. Figures of a
controller the container's cgroup lacks are left out rather than made up: ``memory_stats``
is then ``{}`` (as Docker answers when it cannot read them), while CPU time comes from v2's
``cpu.stat``, which every cgroup has, and the pid count from the cgroup's task list. As in
Docker, ``stream=false`` without ``one-shot`` takes two samples a second apart so that
clients can compute a CPU percentage from ``cpu_stats`` and ``precpu_stats``;
``one-shot=true`` answers at once with empty ``precpu_stats``. Containers have no network
interfaces besides ``lo`` until the networks issue lands, so there is no ``networks`` key,
as for Docker's ``--network none``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pycompose.engine.containers.record import ZERO_TIME, now_rfc3339
from pycompose.engine.runtime.cgroups import CGROUP_ROOT, CgroupMode

_NS_PER_TICK = 10**9 // os.sysconf("SC_CLK_TCK")


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _int(path: Path) -> int:
    text = _read(path).strip()
    return int(text) if text.isdigit() else 0


def _kv(path: Path) -> dict[str, int]:
    out = {}
    for line in _read(path).splitlines():
        key, _, value = line.partition(" ")
        if value.strip().isdigit():
            out[key] = int(value)
    return out


def system_cpu_ns(proc_stat: str | None = None) -> int:
    """Total host CPU time in ns (the first line of /proc/stat), Docker's system_cpu_usage."""
    text = proc_stat if proc_stat is not None else _read(Path("/proc/stat"))
    for line in text.splitlines():
        if line.startswith("cpu "):
            return sum(int(v) for v in line.split()[1:8]) * _NS_PER_TICK
    return 0


def empty_cpu() -> dict[str, Any]:
    """``precpu_stats`` before a first sample."""
    return {
        "cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
        "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
    }


def _v1(rel: str, root: Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    acct = root / "cpuacct" / rel
    percpu = [int(v) for v in _read(acct / "cpuacct.usage_percpu").split() if v.isdigit()]
    ticks = _kv(acct / "cpuacct.stat")
    throttle = _kv(root / "cpu" / rel / "cpu.stat")
    cpu = {
        "cpu_usage": {"total_usage": _int(acct / "cpuacct.usage"), "percpu_usage": percpu,
                      "usage_in_kernelmode": ticks.get("system", 0) * _NS_PER_TICK,
                      "usage_in_usermode": ticks.get("user", 0) * _NS_PER_TICK},
        "throttling_data": {"periods": throttle.get("nr_periods", 0),
                            "throttled_periods": throttle.get("nr_throttled", 0),
                            "throttled_time": throttle.get("throttled_time", 0)},
    }  # fmt: skip
    mem_dir = root / "memory" / rel
    memory: dict[str, Any] = {}
    if (mem_dir / "memory.usage_in_bytes").exists():
        memory = {"usage": _int(mem_dir / "memory.usage_in_bytes"),
                  "max_usage": _int(mem_dir / "memory.max_usage_in_bytes"),
                  "failcnt": _int(mem_dir / "memory.failcnt"),
                  "stats": _kv(mem_dir / "memory.stat"),
                  "limit": _int(mem_dir / "memory.limit_in_bytes")}  # fmt: skip
    pids_max = _read(root / "pids" / rel / "pids.max").strip()
    pids = {"current": _int(root / "pids" / rel / "pids.current")}
    if pids_max.isdigit():
        pids["limit"] = int(pids_max)
    return cpu, memory, pids


def _v2(rel: str, root: Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    d = root / rel
    stat = _kv(d / "cpu.stat")
    cpu = {
        "cpu_usage": {"total_usage": stat.get("usage_usec", 0) * 1000,
                      "usage_in_kernelmode": stat.get("system_usec", 0) * 1000,
                      "usage_in_usermode": stat.get("user_usec", 0) * 1000},
        "throttling_data": {"periods": stat.get("nr_periods", 0),
                            "throttled_periods": stat.get("nr_throttled", 0),
                            "throttled_time": stat.get("throttled_usec", 0) * 1000},
    }  # fmt: skip
    memory: dict[str, Any] = {}
    if (d / "memory.current").exists():  # only where the memory controller is enabled
        limit_s = _read(d / "memory.max").strip()
        memory = {"usage": _int(d / "memory.current"), "stats": _kv(d / "memory.stat"),
                  "limit": int(limit_s) if limit_s.isdigit() else 0}  # fmt: skip
    pids_max = _read(d / "pids.max").strip()
    if (d / "pids.current").exists():
        pids = {"current": _int(d / "pids.current")}
    else:  # no pids controller: count the tasks (cgroup.threads is always there)
        pids = {"current": len(_read(d / "cgroup.threads").split())}
    if pids_max.isdigit():
        pids["limit"] = int(pids_max)
    return cpu, memory, pids


def sample(mode: CgroupMode, cgroups_path: str, root: Path = CGROUP_ROOT) -> dict[str, Any]:
    """One reading of a container's cgroups, without ``precpu_stats``/``preread``."""
    rel = cgroups_path.lstrip("/")
    cpu, memory, pids = (_v2 if mode is CgroupMode.V2 else _v1)(rel, root)
    if memory and (memory["limit"] == 0 or memory["limit"] >= 2**62):
        memory["limit"] = _host_memory()
    cpu["system_cpu_usage"] = system_cpu_ns()
    cpu["online_cpus"] = os.cpu_count() or 1
    return {"read": now_rfc3339(), "cpu_stats": cpu, "memory_stats": memory,
            "pids_stats": pids, "num_procs": 0, "storage_stats": {},
            "blkio_stats": {k: None for k in (
                "io_service_bytes_recursive", "io_serviced_recursive", "io_queue_recursive",
                "io_service_time_recursive", "io_wait_time_recursive", "io_merged_recursive",
                "io_time_recursive", "sectors_recursive")}}  # fmt: skip


def stopped_sample() -> dict[str, Any]:
    """What Docker reports for a container that is not running: all zero."""
    return {"read": ZERO_TIME, "preread": ZERO_TIME, "pids_stats": {}, "blkio_stats": {},
            "num_procs": 0, "storage_stats": {}, "cpu_stats": empty_cpu(),
            "precpu_stats": empty_cpu(), "memory_stats": {}}  # fmt: skip


def _host_memory() -> int:
    for line in _read(Path("/proc/meminfo")).splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0
