"""cgroup layout detection (v1, hybrid, v2) and Docker's resource limits as OCI ``resources``.

runc applies the limits; this module decides which of them the host can honour and refuses
the rest by name instead of letting them be silently dropped. It also reads the OOM-kill
counter of a container's memory cgroup, which the monitor records as ``OOMKilled``.
"""

from __future__ import annotations

import enum
import errno
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pycompose.engine.errors import InvalidArgument

CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP_PARENT = "pycompose"
MIN_MEMORY = 6 * 1024 * 1024  # Docker's floor: below this a container cannot even start
CPU_PERIOD = 100_000  # microseconds, Docker's period for --cpus


class CgroupMode(enum.Enum):
    """How the host mounts cgroups."""

    V1 = "v1"
    HYBRID = "hybrid"  # v1 controllers plus a cgroup2 mount at /sys/fs/cgroup/unified
    V2 = "v2"


@dataclass(frozen=True)
class HostCgroups:
    """What the host's cgroups offer: mode, usable controllers, swap accounting, CPU count."""

    mode: CgroupMode
    controllers: frozenset[str]
    swap_accounting: bool
    cpu_count: int
    cfs_quota: bool = True
    blkio_weight: bool = False


@dataclass(frozen=True)
class ResourceLimits:
    """Docker's HostConfig resource fields; zero/None means "not set", as in the API."""

    memory: int = 0
    memory_reservation: int = 0
    memory_swap: int = 0  # -1: unlimited swap; 0: Docker's default of twice ``memory``
    memory_swappiness: int | None = None
    oom_kill_disable: bool = False
    nano_cpus: int = 0
    cpu_shares: int = 0
    cpu_period: int = 0
    cpu_quota: int = 0
    cpuset_cpus: str = ""
    cpuset_mems: str = ""
    pids_limit: int | None = None  # None/0: unlimited (-1 too, as Docker accepts)
    blkio_weight: int = 0
    devices: tuple[dict[str, Any], ...] = field(default=())


def limits_of(host_config: Mapping[str, Any]) -> ResourceLimits:
    """The resource limits of a (validated) Docker ``HostConfig``."""
    pids = host_config.get("PidsLimit")
    return ResourceLimits(
        memory=int(host_config.get("Memory") or 0),
        memory_reservation=int(host_config.get("MemoryReservation") or 0),
        memory_swap=int(host_config.get("MemorySwap") or 0),
        nano_cpus=int(host_config.get("NanoCpus") or 0),
        cpu_shares=int(host_config.get("CpuShares") or 0),
        cpu_period=int(host_config.get("CpuPeriod") or 0),
        cpu_quota=int(host_config.get("CpuQuota") or 0),
        cpuset_cpus=host_config.get("CpusetCpus") or "",
        cpuset_mems=host_config.get("CpusetMems") or "",
        pids_limit=int(pids) if pids and int(pids) > 0 else None,
    )


def detect_mode(mountinfo: str) -> CgroupMode:
    """Classify the cgroup layout from the text of ``/proc/self/mountinfo``.

    As runc does (it looks at the filesystem type of /sys/fs/cgroup), a cgroup2 filesystem
    mounted on /sys/fs/cgroup itself means v2, even over a v1 tree it hides.
    """
    mounts = []  # (mount id, parent id, mount point, filesystem type)
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        fields = left.split()
        if sep and len(fields) > 4 and right.split():
            mounts.append((fields[0], fields[1], fields[4], right.split()[0]))
    at_root = [m for m in mounts if m[2] == str(CGROUP_ROOT)]
    parents = {m[1] for m in at_root}
    top = [m for m in at_root if m[0] not in parents]  # the one mounted last, visible
    if top and top[-1][3] == "cgroup2":
        return CgroupMode.V2
    fstypes = {m[3] for m in mounts}
    if "cgroup" in fstypes:
        return CgroupMode.HYBRID if "cgroup2" in fstypes else CgroupMode.V1
    if "cgroup2" in fstypes:
        raise InvalidArgument(
            f"cgroup2 is mounted, but not on {CGROUP_ROOT}: the OCI runtime would not find it"
        )
    raise InvalidArgument("no cgroup filesystem is mounted: containers cannot be limited")


def probe_host(root: Path = CGROUP_ROOT, mountinfo: str | None = None) -> HostCgroups:
    """Look at the running host (or a fake tree under ``root``)."""
    text = mountinfo if mountinfo is not None else Path("/proc/self/mountinfo").read_text()
    mode = detect_mode(text)
    if mode is CgroupMode.V2:
        ctrl = frozenset((root / "cgroup.controllers").read_text().split())
        swap = "memory" in ctrl and _v2_swap(root)
        return HostCgroups(mode, ctrl, swap, os.cpu_count() or 1, True, "io" in ctrl)
    names = {p.name for p in root.iterdir() if p.is_dir()} if root.is_dir() else set()
    ctrl = frozenset(n for n in names if n not in ("unified", "systemd"))
    return HostCgroups(
        mode,
        ctrl,
        (root / "memory" / "memory.memsw.limit_in_bytes").exists(),
        os.cpu_count() or 1,
        (root / "cpu" / "cpu.cfs_quota_us").exists(),
        (root / "blkio" / "blkio.weight").exists(),
    )


def info_fields(host: HostCgroups) -> dict[str, Any]:
    """Docker's ``/info`` capability flags and their warnings, from what the host offers."""
    ctrl = host.controllers
    quota = "cpu" in ctrl and host.cfs_quota
    flags = {"MemoryLimit": "memory" in ctrl, "SwapLimit": host.swap_accounting,
             "CpuCfsPeriod": quota, "CpuCfsQuota": quota, "CPUShares": "cpu" in ctrl,
             "CPUSet": "cpuset" in ctrl, "PidsLimit": "pids" in ctrl}  # fmt: skip
    named = (("memory limit", "MemoryLimit"), ("swap limit", "SwapLimit"),
             ("cpu cfs quota", "CpuCfsQuota"), ("cpu cfs period", "CpuCfsPeriod"),
             ("cpu shares", "CPUShares"), ("cpuset", "CPUSet"))  # fmt: skip
    warnings = [f"WARNING: No {what} support" for what, key in named if not flags[key]]
    return {**flags, "Warnings": warnings}


def host_info() -> dict[str, Any]:
    """``/info`` fields of the running host's cgroups (none when no cgroup fs is mounted)."""
    try:
        return info_fields(probe_host())
    except InvalidArgument:
        return {}


def _v2_swap(root: Path) -> bool:
    # memory.swap.max exists in every non-root cgroup when swap accounting is on.
    return any((p / "memory.swap.max").exists() for p in root.iterdir() if p.is_dir())


def cgroups_path(container_id: str, parent: str = CGROUP_PARENT) -> str:
    """The OCI ``linux.cgroupsPath`` (cgroupfs style) of a container."""
    return f"/{parent}/{container_id}"


def resources(limits: ResourceLimits, host: HostCgroups) -> dict[str, Any]:
    """Translate ``limits`` to OCI ``linux.resources``; unsupported values raise by name."""
    out: dict[str, Any] = {"devices": [dict(d) for d in limits.devices]}
    memory = _memory(limits, host)
    if memory:
        out["memory"] = memory
    cpu = _cpu(limits, host)
    if cpu:
        out["cpu"] = cpu
    if limits.pids_limit not in (None, 0, -1):
        assert limits.pids_limit is not None
        if limits.pids_limit < 0:
            raise InvalidArgument(f"invalid PidsLimit {limits.pids_limit}: must be positive")
        _need(host, "pids", "PidsLimit")
        out["pids"] = {"limit": limits.pids_limit}
    if limits.blkio_weight:
        if not 10 <= limits.blkio_weight <= 1000:
            raise InvalidArgument(f"invalid BlkioWeight {limits.blkio_weight}: range is 10-1000")
        if not host.blkio_weight:
            raise InvalidArgument("BlkioWeight is not supported: the host has no blkio weight")
        out["blockIO"] = {"weight": limits.blkio_weight}
    return out


def _need(host: HostCgroups, controller: str, field_name: str) -> None:
    if controller not in host.controllers:
        raise InvalidArgument(
            f"{field_name} cannot be honoured: the {controller} cgroup controller is not available"
        )


def _memory(limits: ResourceLimits, host: HostCgroups) -> dict[str, Any]:
    mem: dict[str, Any] = {}
    if limits.memory < 0 or limits.memory_reservation < 0:
        raise InvalidArgument("invalid Memory/MemoryReservation: must not be negative")
    if limits.memory:
        _need(host, "memory", "Memory")
        if limits.memory < MIN_MEMORY:
            raise InvalidArgument("invalid Memory: the minimum memory limit allowed is 6MB")
        mem["limit"] = limits.memory
    if limits.memory_reservation:
        _need(host, "memory", "MemoryReservation")
        mem["reservation"] = limits.memory_reservation
    swap = limits.memory_swap
    if swap > 0:
        if not limits.memory:
            raise InvalidArgument("MemorySwap needs Memory to be set as well")
        if swap < limits.memory:
            raise InvalidArgument("invalid MemorySwap: it must be at least Memory (memory+swap)")
        if not host.swap_accounting:
            raise InvalidArgument("MemorySwap cannot be honoured: swap accounting is off here")
        mem["swap"] = swap
    elif swap == 0 and limits.memory and host.swap_accounting:
        mem["swap"] = 2 * limits.memory  # Docker's default: as much swap as memory
    elif swap == -1 and limits.memory and host.swap_accounting:
        mem["swap"] = -1
    elif swap < -1:
        raise InvalidArgument(f"invalid MemorySwap {swap}")
    if limits.memory_swappiness is not None and limits.memory_swappiness != -1:
        if not 0 <= limits.memory_swappiness <= 100:
            raise InvalidArgument("invalid MemorySwappiness: range is 0-100")
        if host.mode is CgroupMode.V2:
            raise InvalidArgument("MemorySwappiness is not supported on cgroup v2")
        mem["swappiness"] = limits.memory_swappiness
    if limits.oom_kill_disable:
        if host.mode is CgroupMode.V2:
            raise InvalidArgument("OomKillDisable is not supported on cgroup v2")
        mem["disableOOMKiller"] = True
    return mem


def _cpu(limits: ResourceLimits, host: HostCgroups) -> dict[str, Any]:
    cpu: dict[str, Any] = {}
    if limits.nano_cpus and (limits.cpu_quota or limits.cpu_period):
        raise InvalidArgument("NanoCpus conflicts with CpuQuota/CpuPeriod: set one or the other")
    if limits.nano_cpus:
        if limits.nano_cpus < 0 or limits.nano_cpus > host.cpu_count * 10**9:
            raise InvalidArgument(
                f"invalid NanoCpus {limits.nano_cpus}: range of CPUs is from 0.01 to "
                f"{host.cpu_count}, as there are only {host.cpu_count} CPUs available"
            )
        cpu["period"] = CPU_PERIOD
        cpu["quota"] = limits.nano_cpus * CPU_PERIOD // 10**9
    if limits.cpu_quota or limits.cpu_period:
        if limits.cpu_period and not 1000 <= limits.cpu_period <= 1_000_000:
            raise InvalidArgument("invalid CpuPeriod: range is 1000-1000000 microseconds")
        if limits.cpu_quota and limits.cpu_quota != -1 and limits.cpu_quota < 1000:
            raise InvalidArgument("invalid CpuQuota: the minimum is 1000 microseconds")
        if limits.cpu_period:
            cpu["period"] = limits.cpu_period
        if limits.cpu_quota:
            cpu["quota"] = limits.cpu_quota
    if "quota" in cpu or "period" in cpu:
        named = (("NanoCpus", limits.nano_cpus), ("CpuQuota", limits.cpu_quota),
                 ("CpuPeriod", limits.cpu_period))  # fmt: skip
        _need(host, "cpu", "/".join(name for name, value in named if value))
        if not host.cfs_quota:
            raise InvalidArgument("CPU quotas cannot be honoured: the kernel has no CFS quota")
    if limits.cpu_shares:
        if limits.cpu_shares < 2:
            raise InvalidArgument("invalid CpuShares: the minimum is 2")
        _need(host, "cpu", "CpuShares")
        cpu["shares"] = limits.cpu_shares
    if limits.cpuset_cpus:
        _need(host, "cpuset", "CpusetCpus")
        cpu["cpus"] = _check_cpuset(limits.cpuset_cpus, "CpusetCpus")
    if limits.cpuset_mems:
        _need(host, "cpuset", "CpusetMems")
        cpu["mems"] = _check_cpuset(limits.cpuset_mems, "CpusetMems")
    return cpu


def _check_cpuset(text: str, field_name: str) -> str:
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        if not lo.isdigit() or (hi and (not hi.isdigit() or int(hi) < int(lo))):
            raise InvalidArgument(f"invalid {field_name} {text!r}: expected a list like 0-2,4")
    return text


def memory_cgroup_dir(mode: CgroupMode, path: str, root: Path = CGROUP_ROOT) -> Path:
    """Directory of a container's memory cgroup for ``linux.cgroupsPath`` ``path``."""
    rel = path.lstrip("/")
    return root / rel if mode is CgroupMode.V2 else root / "memory" / rel


def read_oom_kills(mode: CgroupMode, path: str, root: Path = CGROUP_ROOT) -> int:
    """The number of OOM kills in a container's memory cgroup (0 when unknown)."""
    d = memory_cgroup_dir(mode, path, root)
    name, key = (
        ("memory.events", "oom_kill")
        if mode is CgroupMode.V2
        else ("memory.oom_control", "oom_kill")
    )
    try:
        text = (d / name).read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        k, _, v = line.partition(" ")
        if k == key and v.strip().isdigit():
            return int(v)
    return 0


def remove_container_cgroups(
    mode: CgroupMode, path: str, root: Path = CGROUP_ROOT, timeout: float = 2.0
) -> list[Path]:
    """Remove what is left of a container's cgroups once the runtime deleted it.

    runc 1.1 on cgroup v2 SIGKILLs the processes left in the cgroup (those of a container
    sharing the host's pid namespace outlive its init) and removes the directory at once,
    without waiting for them to die: the rmdir fails with EBUSY and the cgroup stays. Here
    the rmdir is retried until they are gone. Returns the directories that could not be
    removed (still busy after ``timeout`` seconds, or not a cgroup).
    """
    rel = path.lstrip("/")
    if not rel:
        return []
    dirs = [root / rel] if mode is CgroupMode.V2 else [root / rel, *(
        d / rel for d in sorted(root.iterdir()) if d.is_dir())]  # fmt: skip
    deadline = time.monotonic() + timeout
    busy = []
    for d in dirs:
        while True:
            try:
                d.rmdir()
            except FileNotFoundError:
                break
            except OSError as err:
                if err.errno == errno.EBUSY and time.monotonic() < deadline:
                    time.sleep(0.01)
                    continue
                busy.append(d)
            break
    return busy


def remove_parent_if_empty(parent: str = CGROUP_PARENT, root: Path = CGROUP_ROOT) -> list[Path]:
    """Remove the shared ``parent`` cgroup in every hierarchy where it has no children left.

    runc creates it (``mkdir -p``) for the first container and never removes it. Called when
    a daemon stops; another engine still using it keeps it busy, and rmdir then just fails.
    Returns the directories removed.
    """
    removed = []
    candidates = [root / parent, *(d / parent for d in sorted(root.iterdir()) if d.is_dir())]
    for path in candidates:
        try:
            path.rmdir()
        except OSError:  # absent, busy, or still holding containers' cgroups
            continue
        removed.append(path)
    return removed
