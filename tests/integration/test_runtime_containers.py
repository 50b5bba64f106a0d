"""Real containers on runc with a busybox rootfs: spec, monitor, logs, limits, exec, re-adoption.

Each test gets its own runc root, state dirs and cgroup parent, and checks at the end that no
runc state, monitor, mount or cgroup of its own is left.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import anyio
import pytest

from pycompose.engine.errors import InvalidArgument, NotFound
from pycompose.engine.runtime import cgroups, logs, monitor, oci, spec
from pycompose.engine.runtime.execproc import exec_process, run_exec

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(shutil.which("runc") is None, reason="needs runc"),
]
T = TypeVar("T")
BUSYBOX = "/bin/busybox"


def run(fn: Callable[[], Awaitable[T]]) -> T:
    return anyio.run(fn)


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A busybox rootfs: busybox-static, its applets as symlinks, a user and a group."""
    root = tmp_path_factory.mktemp("busybox") / "rootfs"
    (root / "bin").mkdir(parents=True)
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, check=True).stdout.split()
    for name in applets:
        if name.decode() != "busybox":
            os.symlink("busybox", root / "bin" / name.decode())
    for d in ("etc", "tmp", "work", "proc", "sys", "dev", "root"):
        (root / d).mkdir(exist_ok=True)
    (root / "tmp").chmod(0o1777)
    (root / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n"
    )
    (root / "etc" / "group").write_text("root:x:0:\napp:x:1000:\nstaff:x:50:app\n")
    return root


@dataclass
class Engine:
    """A miniature engine: a runc root, container dirs and a cgroup parent, all private."""

    base: Path
    rootfs: Path
    runtime: oci.RuncRuntime
    host: cgroups.HostCgroups
    parent: str
    started: list[tuple[str, Path]] = field(default_factory=list)

    def params(self, cid: str, args: tuple[str, ...], **kw: Any) -> spec.ContainerSpecParams:
        base = spec.ContainerSpecParams(
            container_id=cid, rootfs=self.rootfs, args=args, host=self.host, hostname=cid[:12],
            cgroup_parent=self.parent,
        )  # fmt: skip
        return replace(base, **kw)

    def prepare(self, args: tuple[str, ...], **kw: Any) -> tuple[str, Path, dict[str, Any]]:
        cid = f"t{os.urandom(6).hex()}"
        cdir = self.base / "containers" / cid
        cdir.mkdir(parents=True)
        config = spec.build_spec(self.params(cid, args, **kw))
        (cdir / "config.json").write_text(json.dumps(config))
        return cid, cdir, config

    def monitor_config(self, cid: str, cdir: Path, **kw: Any) -> monitor.MonitorConfig:
        return monitor.MonitorConfig(
            container_id=cid, bundle=cdir, state_dir=cdir, runtime_argv=tuple(self.runtime.argv()),
            cgroup_mode=self.host.mode, cgroups_path=cgroups.cgroups_path(cid, self.parent), **kw,
        )  # fmt: skip

    async def start(
        self, args: tuple[str, ...], mon: dict[str, Any] | None = None, **kw: Any
    ) -> tuple[str, Path, monitor.Running]:
        cid, cdir, _ = self.prepare(args, **kw)
        self.started.append((cid, cdir))
        running = await monitor.start_container(self.monitor_config(cid, cdir, **(mon or {})))
        return cid, cdir, running

    async def run(
        self, args: tuple[str, ...], **kw: Any
    ) -> tuple[monitor.ExitStatus, list[logs.LogRecord]]:
        _, cdir, _ = await self.start(args, **kw)
        status = await monitor.wait_exit(cdir, 30)
        return status, [r async for r in logs.read_logs(cdir)]


def _output(records: list[logs.LogRecord], stream: str = "stdout") -> bytes:
    return b"".join(r.data for r in records if r.stream == stream)


@pytest.fixture
def engine(tmp_path: Path, rootfs: Path) -> Iterator[Engine]:
    parent = f"pycompose-test-{os.getpid()}-{os.urandom(3).hex()}"
    eng = Engine(tmp_path, rootfs, oci.RuncRuntime("runc", tmp_path / "runc"),
                 cgroups.probe_host(), parent)  # fmt: skip
    try:
        yield eng
    finally:
        _cleanup(eng)


def _cleanup(eng: Engine) -> None:
    leftovers = []
    for cid, cdir in eng.started:
        found = monitor.adopt(cdir)
        if isinstance(found, monitor.Running):
            leftovers.append(cid)
            subprocess.run(eng.runtime.argv("kill", cid, "KILL"), capture_output=True)
            run(lambda d=cdir: monitor.wait_exit(d, 20))  # type: ignore[misc]
        run(lambda d=cdir: monitor.wait_monitor_gone(d))  # type: ignore[misc]
    states = subprocess.run(eng.runtime.argv("list", "--format", "json"), capture_output=True)
    listed = json.loads(states.stdout or b"[]") or []
    for st in listed:
        subprocess.run(eng.runtime.argv("delete", "--force", st["id"]), capture_output=True)
    mounts = [line for line in Path("/proc/self/mountinfo").read_text().splitlines()
              if str(eng.base) in line]  # fmt: skip
    for ctrl in Path("/sys/fs/cgroup").iterdir():
        d = ctrl / eng.parent
        if d.is_dir():
            for sub in d.iterdir():
                if sub.is_dir():
                    sub.rmdir()
            d.rmdir()
    assert not leftovers, f"containers still running at the end of the test: {leftovers}"
    assert not listed, f"runc state left behind: {listed}"
    assert not mounts, f"mounts left behind: {mounts}"


def test_echo_hi_logs_and_exit_code(engine: Engine) -> None:
    before = time.time_ns()
    status, records = run(lambda: engine.run(("echo", "hi")))
    assert status.code == 0 and not status.oom_killed
    assert [(r.stream, r.data) for r in records] == [("stdout", b"hi\n")]
    assert before <= records[0].timestamp <= status.finished_at


def test_exit_codes_and_stderr(engine: Engine) -> None:
    status, records = run(lambda: engine.run(("sh", "-c", "echo out; echo err >&2; exit 7")))
    assert status.code == 7
    assert _output(records) == b"out\n" and _output(records, "stderr") == b"err\n"
    # PID 1 of a pid namespace cannot be SIGKILLed from inside: sh survives and exits 0.
    status, _ = run(lambda: engine.run(("sh", "-c", "kill -9 $$")))
    assert status.code == 0


def test_env_cwd_user_and_groups(engine: Engine) -> None:
    script = 'echo "$FOO|$(pwd)|$(id -u):$(id -g)|$(id -G)|$HOME|$HOSTNAME"'
    status, records = run(lambda: engine.run(
        ("sh", "-c", script), env=("FOO=bar",), cwd="/work", user="app"))  # fmt: skip
    assert status.code == 0
    out = _output(records).decode().strip().split("|")
    assert out[0:3] == ["bar", "/work", "1000:1000"]
    assert set(out[3].split()) == {"1000", "50"}
    assert out[4] == "/home/app" and out[5]


def test_unknown_user_and_relative_cwd_are_refused(engine: Engine) -> None:
    with pytest.raises(InvalidArgument, match="unable to find user nobody"):
        engine.prepare(("true",), user="nobody")
    with pytest.raises(InvalidArgument, match="WorkingDir"):
        engine.prepare(("true",), cwd="work")


def test_read_only_rootfs(engine: Engine) -> None:
    status, records = run(lambda: engine.run(
        ("sh", "-c", "touch /x || echo refused; touch /dev/shm/ok && echo shm"), read_only=True))
    assert status.code == 0
    assert _output(records) == b"refused\nshm\n"
    assert b"Read-only file system" in _output(records, "stderr")


def test_cap_drop_makes_a_privileged_op_fail(engine: Engine) -> None:
    script = "touch /tmp/f && chown 1 /tmp/f && echo chowned"
    status, records = run(lambda: engine.run(("sh", "-c", script)))
    assert status.code == 0 and _output(records) == b"chowned\n"
    status, records = run(lambda: engine.run(("sh", "-c", script), cap_drop=("CHOWN",)))
    assert status.code != 0
    assert b"Operation not permitted" in _output(records, "stderr")


def test_default_hardening_is_in_force(engine: Engine) -> None:
    script = (
        "grep CapEff /proc/self/status; grep Seccomp: /proc/self/status; "
        "cat /proc/kcore | wc -c; unshare -n true 2>&1 || echo unshare-refused; "
        "mount | grep ' /dev/shm ' ; echo x > /proc/sys/kernel/hostname || echo ro-sys"
    )
    status, records = run(lambda: engine.run(("sh", "-c", script)))
    assert status.code == 0
    out = _output(records).decode()
    assert "CapEff:\t00000000a80425fb" in out  # Docker's 14 capabilities
    assert "Seccomp:\t2" in out
    assert "unshare-refused" in out and "ro-sys" in out
    assert "nosuid,nodev,noexec" in out and "size=65536k" in out
    assert out.splitlines()[2].strip() == "0"  # /proc/kcore is masked


def test_privileged_can_mount_and_default_cannot(engine: Engine) -> None:
    script = "mkdir -p /tmp/m && mount -t tmpfs none /tmp/m && echo mounted"
    status, records = run(lambda: engine.run(("sh", "-c", script), privileged=True))
    assert status.code == 0 and _output(records) == b"mounted\n"
    status, records = run(lambda: engine.run(("sh", "-c", script)))
    assert status.code != 0 and _output(records) == b""


def test_pids_limit_stops_a_fork_bomb(engine: Engine) -> None:
    # busybox sh refuses ':' as a function name, so the classic bomb is spelled with 'f'.
    # PID 1 starts its sleep before the bomb, so it does not die of a failed fork itself.
    bomb = "sleep 30 & sh -c 'f(){ f|f& };f'; wait"

    async def scenario() -> None:
        limits = cgroups.ResourceLimits(pids_limit=40)
        cid, cdir, _ = await engine.start(("sh", "-c", bomb), limits=limits)
        pids_dir = Path("/sys/fs/cgroup/pids") / engine.parent / cid
        await anyio.sleep(1.5)
        assert int((pids_dir / "pids.max").read_text()) == 40
        assert int((pids_dir / "pids.current").read_text()) <= 40
        assert "max " in (pids_dir / "pids.events").read_text()
        assert int((pids_dir / "pids.events").read_text().split()[1]) > 0
        os.kill(os.getpid(), 0)  # the host can still do things
        status = await monitor.stop_container(engine.runtime, cid, cdir, signal.SIGKILL, 5)
        assert status.code == 137

    if engine.host.mode is cgroups.CgroupMode.V2:
        pytest.skip("this check reads the cgroup v1 pids hierarchy")
    run(scenario)


def test_memory_limit_is_visible_inside(engine: Engine) -> None:
    limit = 64 * 1024 * 1024
    path = ("/sys/fs/cgroup/memory.max" if engine.host.mode is cgroups.CgroupMode.V2
            else "/sys/fs/cgroup/memory/memory.limit_in_bytes")  # fmt: skip
    status, records = run(lambda: engine.run(
        ("cat", path), limits=cgroups.ResourceLimits(memory=limit)))
    assert status.code == 0 and _output(records).strip() == str(limit).encode()


def test_ulimits_above_the_host_are_clamped_and_the_container_runs(engine: Engine) -> None:
    warnings: list[str] = []
    cid = "tulimits"
    params = engine.params(cid, ("sh", "-c", "ulimit -n; ulimit -Hu"),
                           ulimits=(spec.Ulimit("nofile", 512, 512),
                                    spec.Ulimit("nproc", 2**40, 2**40)))  # fmt: skip
    config = spec.build_spec(params, warnings)
    assert len(warnings) == 1 and "nproc" in warnings[0]
    cdir = engine.base / "containers" / cid
    cdir.mkdir(parents=True)
    (cdir / "config.json").write_text(json.dumps(config))
    engine.started.append((cid, cdir))

    async def scenario() -> tuple[monitor.ExitStatus, list[logs.LogRecord]]:
        await monitor.start_container(engine.monitor_config(cid, cdir))
        return await monitor.wait_exit(cdir, 30), await _collect(cdir)

    status, records = run(scenario)
    assert status.code == 0
    nofile, nproc = _output(records).decode().split()
    host_hard = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    assert nofile == "512"
    assert nproc == ("unlimited" if host_hard == resource.RLIM_INFINITY else str(host_hard))


def test_init_and_etc_files(engine: Engine, tmp_path: Path) -> None:
    from pycompose.engine.runtime.etcfiles import EtcParams, write_etc_files

    etc = tmp_path / "etc-files"
    etc.mkdir()
    files = write_etc_files(etc, EtcParams(hostname="web", addresses=("10.1.2.3",),
                                           dns=("192.0.2.53",)))  # fmt: skip
    mounts = tuple(spec.MountSpec("bind", target, str(src)) for target, src in files.items())
    script = "cat /proc/1/cmdline | tr '\\0' ' '; echo; hostname; cat /etc/hosts /etc/resolv.conf"
    status, records = run(lambda: engine.run(("sh", "-c", script), init=True, mounts=mounts,
                                             hostname="web"))  # fmt: skip
    assert status.code == 0
    out = _output(records).decode()
    assert out.startswith("/sbin/docker-init -- sh -c")
    assert "\nweb\n" in out and "10.1.2.3\tweb" in out and "nameserver 192.0.2.53" in out


def test_oom_kill_is_recorded(engine: Engine) -> None:
    limit = 16 * 1024 * 1024  # no swap beyond it: the allocation must be killed
    hog = "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived"
    status, records = run(lambda: engine.run(
        ("sh", "-c", hog), limits=cgroups.ResourceLimits(memory=limit, memory_swap=limit)))
    assert status.oom_killed
    assert b"survived" not in _output(records)


def test_pid1_ignoring_sigterm_is_killed_after_grace(engine: Engine) -> None:
    async def scenario() -> None:
        cid, cdir, _ = await engine.start(("sleep", "300"))  # PID 1 without a TERM handler
        t0 = time.monotonic()
        status = await monitor.stop_container(engine.runtime, cid, cdir, signal.SIGTERM, 1.0)
        elapsed = time.monotonic() - t0
        assert status.code == 137
        assert elapsed >= 1.0

    run(scenario)


def test_start_failure_is_reported_and_cleaned(engine: Engine) -> None:
    with pytest.raises(oci.OciError, match="no such file or directory"):
        run(lambda: engine.start(("/bin/does-not-exist",)))
    cdir = engine.started[-1][1]
    assert monitor.adopt(cdir) is None


DAEMON = """
import anyio, json, sys
from pathlib import Path
from pycompose.engine.runtime import monitor
a = json.loads(sys.argv[1])
cfg = monitor.MonitorConfig(a["id"], Path(a["dir"]), Path(a["dir"]), tuple(a["argv"]))
async def main():
    r = await monitor.start_container(cfg)
    print(r.pid, flush=True)
    await anyio.sleep(3600)
anyio.run(main)
"""


def test_container_outlives_a_sigkilled_daemon(engine: Engine) -> None:
    lines = 40
    script = f"i=0; while [ $i -lt {lines} ]; do echo line$i; i=$((i+1)); sleep 0.05; done"
    cid, cdir, _ = engine.prepare(("sh", "-c", script))
    engine.started.append((cid, cdir))
    args = {"id": cid, "dir": str(cdir), "argv": engine.runtime.argv()}
    daemon = subprocess.Popen([sys.executable, "-c", DAEMON, json.dumps(args)],
                              stdout=subprocess.PIPE)  # fmt: skip
    assert daemon.stdout is not None
    pid = int(daemon.stdout.readline())
    daemon.kill()
    daemon.wait()
    daemon.stdout.close()
    found = monitor.adopt(cdir)
    assert isinstance(found, monitor.Running) and found.pid == pid
    status = run(lambda: monitor.wait_exit(cdir, 30))
    assert status.code == 0
    records = run(lambda: _collect(cdir))
    assert _output(records).decode().split() == [f"line{i}" for i in range(lines)]


async def _collect(cdir: Path, **kw: Any) -> list[logs.LogRecord]:
    return [r async for r in logs.read_logs(cdir, **kw)]


def test_follow_logs_until_exit(engine: Engine) -> None:
    async def scenario() -> None:
        _, cdir, _ = await engine.start(("sh", "-c", "echo a; sleep 0.3; echo b"))
        got = [r.data async for r in logs.read_logs(cdir, follow=True)]
        assert got == [b"a\n", b"b\n"]

    run(scenario)


def test_log_rotation(engine: Engine) -> None:
    script = "i=0; while [ $i -lt 300 ]; do echo line$i; i=$((i+1)); done"
    status, _ = run(lambda: engine.run(
        ("sh", "-c", script), mon={"log": logs.LogConfig(max_size=4096, max_file=3)}))
    assert status.code == 0
    cdir = engine.started[-1][1]
    files = logs.log_files(cdir)
    assert [f.name for f in files] == ["json.log.2", "json.log.1", "json.log"]
    assert all(f.stat().st_size <= 4096 for f in files)
    kept = _output(run(lambda: _collect(cdir))).decode().split()
    assert kept[-1] == "line299" and kept == [f"line{i}" for i in range(300 - len(kept), 300)]
    tail = run(lambda: _collect(cdir, tail=2))
    assert [r.data for r in tail] == [b"line298\n", b"line299\n"]


def test_exec_with_and_without_tty(engine: Engine) -> None:
    async def scenario() -> None:
        cid, cdir, _ = await engine.start(("sleep", "300"))
        config = json.loads((cdir / "config.json").read_text())
        proc = spec.exec_process(config, engine.rootfs, ("tty",), tty=True)
        code, out, _ = await run_exec(engine.runtime.argv(), cid, proc, cdir)
        assert code == 0 and out.strip() == b"/dev/pts/0"
        proc = spec.exec_process(config, engine.rootfs, ("sh", "-c", "echo o; echo e >&2; exit 4"),
                                 user="app")  # fmt: skip
        code, out, err = await run_exec(engine.runtime.argv(), cid, proc, cdir)
        assert (code, out, err) == (4, b"o\n", b"e\n")
        proc = spec.exec_process(config, engine.rootfs, ("sh",), tty=True)
        async with exec_process(engine.runtime.argv(), cid, proc, cdir, open_stdin=True) as ex:
            await ex.resize(30, 100)
            await ex.write(b"stty size; exit 5\n")
            seen = b"".join([d async for _, d in ex.output()])
            assert b"30 100" in seen
            assert await ex.wait() == 5
        await monitor.stop_container(engine.runtime, cid, cdir, signal.SIGKILL, 5)

    run(scenario)


def test_runtime_verbs_on_a_running_container(engine: Engine) -> None:
    async def scenario() -> None:
        cid, cdir, running = await engine.start(("sleep", "300"))
        rt = engine.runtime
        assert (await rt.state(cid)).status == "running"
        assert running.pid in await rt.ps(cid)
        await rt.pause(cid)
        assert (await rt.state(cid)).status == "paused"
        await rt.resume(cid)
        assert cid in [s.id for s in await rt.list()]
        config = json.loads((cdir / "config.json").read_text())
        proc_file = cdir / "health.json"
        proc_file.write_text(json.dumps(spec.exec_process(config, engine.rootfs, ("echo", "ok"))))
        assert await rt.exec(cid, proc_file) == oci.ExecResult(0, b"ok\n", b"")
        status = await monitor.stop_container(rt, cid, cdir, signal.SIGKILL, 5)
        assert status.code == 137
        await monitor.wait_monitor_gone(cdir)
        with pytest.raises(NotFound):
            await rt.state(cid)

    run(scenario)


def test_tty_container_and_attach_stdin(engine: Engine) -> None:
    async def scenario() -> None:
        script = "tty; read line; echo got:$line"
        _, cdir, running = await engine.start(
            ("sh", "-c", script), tty=True, mon={"tty": True, "open_stdin": True}
        )
        async with await anyio.connect_unix(monitor.attach_address(running)) as conn:
            await monitor.send_attach_frame(conn, monitor.FRAME_STDIN, b"hello\n")
            data = b""
            with anyio.fail_after(10):
                while b"got:hello" not in data:
                    data += await conn.receive()
        status = await monitor.wait_exit(cdir, 10)
        assert status.code == 0
        out = _output(await _collect(cdir))
        assert b"/dev/pts/0" in out and b"got:hello" in out
        assert struct.unpack(">BxxxI", data[:8])[0] == 1  # Docker's stdout stream id

    run(scenario)


def test_probe_picks_a_working_runtime(tmp_path: Path) -> None:
    info = oci.probe_runtime(work_dir=tmp_path)
    assert info.name in ("runc", "crun") and info.version
    if info.name == "runc" and shutil.which("crun"):
        reasons = dict(info.rejected)
        assert reasons["crun"], "crun was rejected without a reason"
    with pytest.raises(Exception, match="not installed"):
        oci.probe_runtime("no-such-runtime", work_dir=tmp_path)
    assert not list(tmp_path.iterdir())
    assert not list(Path("/sys/fs/cgroup").glob(f"*/{oci.PROBE_CGROUP_PARENT}"))
