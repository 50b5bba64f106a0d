"""The engine on cgroup v2, for real, on a hybrid host (tests/fixtures/cgroup2.py).

The daemon, its monitors and runc run in a private mount namespace where /sys/fs/cgroup is
a cgroup of the host's unified hierarchy, so runc works in unified mode and so does our
probe. On a hybrid host that hierarchy has none of the controllers bound to v1 (memory,
pids, cpu, cpuset, io): what is tested here is what v2 gives without them (the cgroup
itself, cgroup.freeze, cpu.stat, the eBPF device filter, killing the cgroup), and that
limits needing a missing controller are refused by name at create. Memory/pids/CPU limits,
OOM kills and memory figures on v2 stay covered by the unit tests' fake trees only.
Skipped on other hosts: on a pure v2 host every engine test already runs on v2.
"""

from __future__ import annotations

import json
import pathlib
import shutil
import time
from collections.abc import Iterator
from typing import Any

import pytest

from pycompose.engine.errors import InvalidArgument
from tests.fixtures.cgroup2 import Cgroup2Engine, cgroup2_busybox_engine, hybrid_unified
from tests.fixtures.docker_cli import clear_containers, leftovers, ok, run_docker
from tests.fixtures.engine import EngineProcess, respawn_engine

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(hybrid_unified() is None, reason="needs a hybrid cgroup v1/v2 host"),
    pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare(1)"),
]


@pytest.fixture(scope="module")
def module_v2(busybox_layout: pathlib.Path) -> Iterator[Cgroup2Engine]:
    with cgroup2_busybox_engine(busybox_layout) as v2:
        yield v2


@pytest.fixture
def v2(module_v2: Cgroup2Engine) -> Iterator[Cgroup2Engine]:
    """The module's engine, with every container, mount, process and cgroup gone after."""
    yield module_v2
    clear_containers(module_v2.engine, lambda _: _leftovers(module_v2))


def _leftovers(v2: Cgroup2Engine) -> list[str]:
    # The daemon's mounts are in its own namespace: look there, not in ours.
    found = leftovers(v2.engine, ids=set())
    found += [f"mount {line.split()[4]}" for line in v2.mountinfo().splitlines()
              if str(v2.engine.tmp) in line]  # fmt: skip
    parent = v2.cgroup / "pycompose"
    if parent.is_dir():
        found += [f"cgroup {p.name}" for p in parent.iterdir() if p.is_dir()]
    return found


def _cgroup_mounts(v2: Cgroup2Engine) -> list[str]:
    """Every cgroup mount the daemon sees, as "<fstype> <mount point>"."""
    return [line.split(" - ")[1].split()[0] + " " + line.split()[4]
            for line in v2.mountinfo().splitlines() if "cgroup" in line]  # fmt: skip


def _cgroup(v2: Cgroup2Engine, cid: str) -> pathlib.Path:
    return v2.cgroup / "pycompose" / cid


def _procs(cgroup: pathlib.Path) -> set[int]:
    return {int(pid) for pid in (cgroup / "cgroup.procs").read_text().split()}


def _inspect(eng: EngineProcess, name: str) -> dict[str, Any]:
    info: dict[str, Any] = json.loads(ok(eng, "inspect", name))[0]
    return info


def _gone(pid: int) -> bool:
    """The process no longer exists, or is a zombie waiting for its reaper."""
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rpartition(")")[2].split()[0] == "Z"


def _wait_for(predicate: Any, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_the_whole_engine_sees_cgroup_v2(v2: Cgroup2Engine) -> None:
    eng = v2.engine
    assert _cgroup_mounts(v2) == ["cgroup2 /sys/fs/cgroup"]
    assert ok(eng, "info", "--format", "{{.CgroupVersion}} {{.CgroupDriver}}") == "2 cgroupfs\n"
    # What dockerd reports in the same namespace: no limit can be honoured here.
    info = eng.client().get("/info")
    assert [k for k in ("MemoryLimit", "SwapLimit", "CpuCfsQuota", "CPUShares", "CPUSet",
                        "PidsLimit") if info[k]] == []  # fmt: skip
    assert "WARNING: No memory limit support" in info["Warnings"]
    cid = ok(eng, "run", "-d", "--name", "v2box", "busybox", "sleep", "100").strip()
    pid = _inspect(eng, "v2box")["State"]["Pid"]
    assert _procs(_cgroup(v2, cid)) == {pid}
    own = pathlib.Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    assert f"0::/{v2.cgroup.name}/pycompose/{cid}" in own
    # A private cgroup namespace, as Docker gives on v2: the container is at its root.
    assert ok(eng, "exec", "v2box", "sh", "-c", "grep ^0:: /proc/self/cgroup") == "0::/\n"
    magic = ok(eng, "exec", "v2box", "stat", "-f", "-c", "%t", "/sys/fs/cgroup")
    assert magic == "63677270\n"  # CGROUP2_SUPER_MAGIC
    ok(eng, "rm", "-f", "v2box")
    assert _wait_for(lambda: not _cgroup(v2, cid).exists())


def test_exec_top_pause_and_unpause(v2: Cgroup2Engine) -> None:
    eng = v2.engine
    cid = ok(eng, "run", "-d", "--name", "frosty", "busybox", "sleep", "100").strip()
    cgroup = _cgroup(v2, cid)
    ok(eng, "exec", "-d", "frosty", "sleep", "77")
    assert _wait_for(lambda: len(_procs(cgroup)) == 2)
    top = ok(eng, "top", "frosty").splitlines()
    assert [line.split()[-2:] for line in top[1:]] == [["sleep", "100"], ["sleep", "77"]]
    assert {int(line.split()[1]) for line in top[1:]} == _procs(cgroup)

    ok(eng, "pause", "frosty")
    assert (cgroup / "cgroup.freeze").read_text() == "1\n"
    assert _wait_for(lambda: "frozen 1" in (cgroup / "cgroup.events").read_text())
    state = _inspect(eng, "frosty")["State"]
    assert (state["Status"], state["Paused"]) == ("paused", True)
    refused = run_docker(eng, "exec", "frosty", "true")
    assert refused.returncode != 0 and b"is paused" in refused.stderr
    assert len(ok(eng, "top", "frosty").splitlines()) == 3

    ok(eng, "unpause", "frosty")
    assert (cgroup / "cgroup.freeze").read_text() == "0\n"
    assert "frozen 0" in (cgroup / "cgroup.events").read_text()
    assert ok(eng, "exec", "frosty", "echo", "thawed") == "thawed\n"
    assert _inspect(eng, "frosty")["State"]["Status"] == "running"


def test_stats_report_what_v2_has_here(v2: Cgroup2Engine) -> None:
    eng = v2.engine
    cid = ok(eng, "run", "-d", "--name", "busy", "busybox", "sh", "-c",
             "sleep 100 & sleep 100 & while :; do :; done").strip()  # fmt: skip
    cgroup = _cgroup(v2, cid)
    assert _wait_for(lambda: len(_procs(cgroup)) == 3)
    with eng.client().stream("GET", f"/containers/{cid}/stats",
                             query={"stream": 0}) as resp:  # fmt: skip
        (stats,) = list(resp.iter_json())
    cpu, pre = stats["cpu_stats"], stats["precpu_stats"]
    # cpu.stat is in every v2 cgroup: a busy loop shows, without the cpu controller.
    used = cpu["cpu_usage"]["total_usage"] - pre["cpu_usage"]["total_usage"]
    system = cpu["system_cpu_usage"] - pre["system_cpu_usage"]
    # One spinning thread over the second between the samples: some CPU (the machine may
    # be busy), never more than one CPU.
    assert used > 10**7 and used / system * cpu["online_cpus"] < 1.1
    assert cpu["cpu_usage"]["usage_in_usermode"] > 0
    assert cpu["throttling_data"] == {"periods": 0, "throttled_periods": 0, "throttled_time": 0}
    # No pids controller: the tasks of the cgroup are counted; no memory controller: no
    # memory figures rather than a usage of 0 against the host's memory.
    assert stats["pids_stats"] == {"current": 3}
    assert stats["memory_stats"] == {}
    line = ok(eng, "stats", "--no-stream", "--format", "{{.MemUsage}} {{.PIDs}}", "busy")
    assert line == "0B / 0B 3\n"


LIMITS = [
    (["-m", "64m"], "Memory", "memory"),
    (["--memory-reservation", "32m"], "MemoryReservation", "memory"),
    (["--pids-limit", "10"], "PidsLimit", "pids"),
    (["--cpus", "0.5"], "NanoCpus", "cpu"),
    (["--cpu-quota", "50000"], "CpuQuota", "cpu"),
    (["--cpu-period", "50000"], "CpuPeriod", "cpu"),
    (["--cpu-shares", "512"], "CpuShares", "cpu"),
    (["--cpuset-cpus", "0"], "CpusetCpus", "cpuset"),
    (["--cpuset-mems", "0"], "CpusetMems", "cpuset"),
]


@pytest.mark.parametrize(("flags", "field", "controller"), LIMITS)
def test_limits_without_their_controller_are_refused_by_name(
    v2: Cgroup2Engine, flags: list[str], field: str, controller: str
) -> None:
    eng = v2.engine
    proc = run_docker(eng, "run", "--rm", *flags, "busybox", "true")
    want = f"{field} cannot be honoured: the {controller} cgroup controller is not available"
    assert (proc.returncode, proc.stdout) == (125, b"")
    assert want in proc.stderr.decode()
    assert ok(eng, "ps", "-aq") == ""  # refused at create: nothing was made


def test_a_limit_is_a_400_at_create(v2: Cgroup2Engine) -> None:
    client = v2.engine.client()
    body = {"Image": "busybox", "Cmd": ["true"], "HostConfig": {"Memory": 64 << 20}}
    with pytest.raises(InvalidArgument, match="memory cgroup controller is not available"):
        client.post("/containers/create", body)
    assert client.get("/containers/json", query={"all": 1}) == []


def test_the_device_allowlist_is_enforced_by_ebpf(v2: Cgroup2Engine) -> None:
    eng = v2.engine
    # mknod of any device is allowed (as in Docker); opening one off the list is not.
    proc = run_docker(eng, "run", "--rm", "busybox", "sh", "-c",
                      "mknod /tmp/mem c 1 1 && head -c1 /tmp/mem")  # fmt: skip
    assert proc.returncode == 1 and b"Operation not permitted" in proc.stderr
    proc = run_docker(eng, "run", "--rm", "busybox", "sh", "-c",
                      "mknod /tmp/null c 1 3 && echo x > /tmp/null && echo ok")  # fmt: skip
    assert (proc.returncode, proc.stdout) == (0, b"ok\n")


def test_processes_left_in_the_cgroup_are_killed(v2: Cgroup2Engine) -> None:
    """With the host's pid namespace, a child outlives the container's init; removing the
    cgroup at exit must kill it, as it does on v1."""
    eng = v2.engine
    cid = ok(eng, "run", "-d", "--name", "orphans", "--pid", "host", "busybox", "sh", "-c",
             "sleep 300 & echo $!; exec sleep 200").strip()  # fmt: skip
    cgroup = _cgroup(v2, cid)
    assert _wait_for(lambda: ok(eng, "logs", "orphans").strip().isdigit())
    orphan = int(ok(eng, "logs", "orphans"))
    assert orphan in _procs(cgroup) and not _gone(orphan)
    ok(eng, "stop", "-t", "1", "orphans")  # sh dies; the sleep is still in the cgroup
    assert _wait_for(lambda: _gone(orphan)), "the orphan survived its container"
    assert _wait_for(lambda: not cgroup.exists())
    assert _inspect(eng, "orphans")["State"]["Status"] == "exited"

    cid = ok(eng, "run", "-d", "--name", "orphans2", "--pid", "host", "busybox", "sh", "-c",
             "sleep 300 & echo $!; exec sleep 200").strip()  # fmt: skip
    assert _wait_for(lambda: ok(eng, "logs", "orphans2").strip().isdigit())
    orphan = int(ok(eng, "logs", "orphans2"))
    ok(eng, "rm", "-f", "orphans2")
    assert _wait_for(lambda: _gone(orphan)), "the orphan survived rm -f"
    assert _wait_for(lambda: not _cgroup(v2, cid).exists())


def test_no_cgroup_is_left_once_the_daemon_stops(busybox_layout: pathlib.Path) -> None:
    """A daemon stopped with a running container: its cgroup, the parent and the probe's
    are all removed (stop_cgroup2_engine fails on any cgroup left under the root)."""
    with cgroup2_busybox_engine(busybox_layout) as other:
        cid = ok(other.engine, "run", "-d", "busybox", "sleep", "100").strip()
        assert _cgroup(other, cid).is_dir()
        root = other.cgroup
    assert not root.exists()


def test_a_killed_daemon_readopts_its_containers_on_v2(busybox_layout: pathlib.Path) -> None:
    """The respawned daemon gets a new namespace with the same cgroup view; the container,
    kept by its monitor in the old one, is re-adopted and still paused, stopped, removed."""
    with cgroup2_busybox_engine(busybox_layout) as v2:
        eng = v2.engine
        cid = ok(eng, "run", "-d", "--name", "survivor", "busybox", "sleep", "100").strip()
        pid = _inspect(eng, "survivor")["State"]["Pid"]
        eng.process.kill()
        eng.process.wait()
        assert not _gone(pid)
        respawn_engine(eng)
        assert _cgroup_mounts(v2) == ["cgroup2 /sys/fs/cgroup"]  # not the host's view
        state = _inspect(eng, "survivor")["State"]
        assert (state["Status"], state["Pid"]) == ("running", pid)
        ok(eng, "pause", "survivor")
        assert (_cgroup(v2, cid) / "cgroup.freeze").read_text() == "1\n"
        ok(eng, "unpause", "survivor")
        ok(eng, "stop", "-t", "1", "survivor")
        assert _gone(pid) and _wait_for(lambda: not _cgroup(v2, cid).exists())
        ok(eng, "rm", "survivor")
