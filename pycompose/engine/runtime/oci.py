"""The OCI runtime (runc or crun) behind a small interface, and the start-up probe.

``RuncRuntime`` drives either binary: both speak the same CLI. Every call passes
``--root`` under our own runtime dir, so our containers never show up in (or collide with)
another engine's runc state. ``probe_runtime`` decides which runtime works on this host by
really starting a trivial container; a runtime that is installed but cannot run containers
(Debian's crun 1.8.1 on a hybrid cgroup host) is reported with its own error message.
``FakeRuntime`` records calls for unit tests.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal as signal_mod
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pycompose.engine.errors import Conflict, EngineError, NotFound

CANDIDATES = ("crun", "runc")
PROBE_CGROUP_PARENT = "pycompose-probe"
_TIMEOUT = 30.0


class OciError(EngineError):
    """The OCI runtime failed; the message carries its own words."""

    status = 500


@dataclass(frozen=True)
class ContainerState:
    """``runc state``: ``status`` is created, running, paused or stopped."""

    id: str
    status: str
    pid: int
    bundle: str


@dataclass(frozen=True)
class ExecResult:
    """Outcome of a non-interactive exec (health checks, probes)."""

    exit_code: int
    stdout: bytes
    stderr: bytes


@dataclass(frozen=True)
class RuntimeInfo:
    """The runtime chosen by the probe, and why the others were not."""

    name: str
    path: str
    version: str
    rejected: tuple[tuple[str, str], ...] = ()


class OciRuntime(Protocol):
    """The verbs of the OCI runtime CLI that the engine uses."""

    name: str

    def argv(self, *args: str) -> list[str]:
        """Full command line for ``args`` (the monitor spawns ``run`` itself)."""
        ...

    async def create(
        self, container_id: str, bundle: Path, *, pid_file: Path | None = None
    ) -> None: ...
    async def start(self, container_id: str) -> None: ...
    async def state(self, container_id: str) -> ContainerState: ...
    async def kill(self, container_id: str, sig: int, *, all_processes: bool = False) -> None: ...
    async def delete(self, container_id: str, *, force: bool = False) -> None: ...
    async def exec(
        self, container_id: str, process: Path, *, stdin: bytes = b"", timeout: float | None = None
    ) -> ExecResult: ...
    async def pause(self, container_id: str) -> None: ...
    async def resume(self, container_id: str) -> None: ...
    async def ps(self, container_id: str) -> list[int]: ...
    async def list(self) -> list[ContainerState]: ...


def _error(verb: str, container_id: str, stderr: bytes) -> EngineError:
    text = stderr.decode("utf-8", "replace").strip()
    msg = last_message(text)
    low = msg.lower()
    if "does not exist" in low or "not found" in low or "no such file" in low:
        return NotFound(f"container {container_id} has no runtime state: {msg}")
    if "not running" in low or "not stopped" in low or "already" in low or "paused" in low:
        return Conflict(f"{verb} {container_id}: {msg}")
    return OciError(f"{verb} {container_id} failed: {msg or 'no message from the runtime'}")


def last_message(text: str) -> str:
    """The runtime's own error message out of its stderr.

    runc prints logrus lines (``level=error msg="..."``) or plain text; keep the message."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return ""
    last = lines[-1]
    if last.lstrip().startswith("{"):
        try:
            return str(json.loads(last).get("msg", last))
        except ValueError:
            return last
    key = 'msg="'
    if key in last:
        return last.split(key, 1)[1].rsplit('"', 1)[0].replace('\\"', '"')
    return last


class RuncRuntime:
    """runc or crun through its CLI, with state under ``root``."""

    def __init__(self, binary: str, root: Path, name: str | None = None) -> None:
        self.binary = binary
        self.root = root
        self.name = name or Path(binary).name

    def argv(self, *args: str) -> list[str]:
        """``[binary, --root, root, *args]``."""
        return [self.binary, "--root", str(self.root), *args]

    async def _run(
        self, verb: str, container_id: str, *args: str, stdin: bytes = b"",
        timeout: float | None = _TIMEOUT,
    ) -> subprocess.CompletedProcess[bytes]:  # fmt: skip
        import anyio

        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        with anyio.fail_after(timeout):
            result = await anyio.run_process(self.argv(*args), input=stdin, check=False)
        if result.returncode != 0 and verb != "exec":
            raise _error(verb, container_id, result.stderr)
        return result

    async def create(
        self, container_id: str, bundle: Path, *, pid_file: Path | None = None
    ) -> None:
        """``create --bundle``: namespaces and cgroup made, process not yet started."""
        extra = ["--pid-file", str(pid_file)] if pid_file else []
        await self._run("create", container_id, "create", "--bundle", str(bundle), *extra,
                        container_id)  # fmt: skip

    async def start(self, container_id: str) -> None:
        """Run the user process of a created container."""
        await self._run("start", container_id, "start", container_id)

    async def state(self, container_id: str) -> ContainerState:
        """The runtime's view of one container."""
        result = await self._run("state", container_id, "state", container_id)
        return _parse_state(json.loads(result.stdout))

    async def kill(self, container_id: str, sig: int, *, all_processes: bool = False) -> None:
        """Send ``sig`` to the init process (or every process with ``all_processes``)."""
        extra = ["--all"] if all_processes else []
        await self._run("kill", container_id, "kill", *extra, container_id, str(int(sig)))

    async def delete(self, container_id: str, *, force: bool = False) -> None:
        """Remove the runtime state (and cgroup) of a stopped container."""
        extra = ["--force"] if force else []
        await self._run("delete", container_id, "delete", *extra, container_id)

    async def exec(
        self, container_id: str, process: Path, *, stdin: bytes = b"", timeout: float | None = None
    ) -> ExecResult:
        """Run ``process`` (an OCI process JSON file) in the container and collect output."""
        result = await self._run("exec", container_id, "exec", "--process", str(process),
                                 container_id, stdin=stdin, timeout=timeout)  # fmt: skip
        return ExecResult(result.returncode, result.stdout, result.stderr)

    async def pause(self, container_id: str) -> None:
        """Freeze every process of the container."""
        await self._run("pause", container_id, "pause", container_id)

    async def resume(self, container_id: str) -> None:
        """Thaw a paused container."""
        await self._run("resume", container_id, "resume", container_id)

    async def ps(self, container_id: str) -> list[int]:
        """Host pids of the container's processes."""
        result = await self._run("ps", container_id, "ps", "--format", "json", container_id)
        pids = json.loads(result.stdout or b"[]") or []
        return [int(p) for p in pids]

    async def list(self) -> list[ContainerState]:
        """Every container in our runtime root."""
        result = await self._run("list", "", "list", "--format", "json")
        return [_parse_state(s) for s in json.loads(result.stdout or b"[]") or []]


def runtime_for(info: RuntimeInfo, runtime_dir: Path) -> RuncRuntime:
    """The runtime the probe chose, with its state under ``<runtime_dir>/<name>``."""
    return RuncRuntime(info.path, runtime_dir / info.name, info.name)


def _parse_state(data: dict[str, Any]) -> ContainerState:
    return ContainerState(
        id=str(data.get("id", "")),
        status=str(data.get("status", "")),
        pid=int(data.get("pid") or 0),
        bundle=str(data.get("bundle", "")),
    )


@dataclass
class FakeRuntime:
    """A recording runtime for unit tests: keeps states in memory, records every call."""

    name: str = "fake"
    calls: list[tuple[str, ...]] = field(default_factory=list)
    states: dict[str, ContainerState] = field(default_factory=dict)
    exec_results: list[ExecResult] = field(default_factory=list)
    next_pid: int = 1000

    def argv(self, *args: str) -> list[str]:
        """A command line that would run the fake; never executed by unit tests."""
        return ["fake-runtime", *args]

    def _get(self, container_id: str) -> ContainerState:
        if container_id not in self.states:
            raise NotFound(f"container {container_id} has no runtime state")
        return self.states[container_id]

    def _set(self, container_id: str, status: str, pid: int | None = None) -> None:
        old = self._get(container_id)
        self.states[container_id] = ContainerState(
            container_id, status, old.pid if pid is None else pid, old.bundle
        )

    async def create(
        self, container_id: str, bundle: Path, *, pid_file: Path | None = None
    ) -> None:
        """Record and enter the created state."""
        self.calls.append(("create", container_id, str(bundle)))
        if container_id in self.states:
            raise Conflict(f"container {container_id} already exists")
        self.next_pid += 1
        self.states[container_id] = ContainerState(container_id, "created", self.next_pid,
                                                   str(bundle))  # fmt: skip
        if pid_file:
            pid_file.write_text(str(self.next_pid))

    async def start(self, container_id: str) -> None:
        """created -> running."""
        self.calls.append(("start", container_id))
        if self._get(container_id).status != "created":
            raise Conflict(f"start {container_id}: container is not in created state")
        self._set(container_id, "running")

    async def state(self, container_id: str) -> ContainerState:
        """The recorded state."""
        self.calls.append(("state", container_id))
        return self._get(container_id)

    async def kill(self, container_id: str, sig: int, *, all_processes: bool = False) -> None:
        """Any of TERM/KILL/INT stops the fake container."""
        self.calls.append(("kill", container_id, str(int(sig))))
        if self._get(container_id).status not in ("running", "paused", "created"):
            raise Conflict(f"kill {container_id}: container not running")
        if sig in (signal_mod.SIGKILL, signal_mod.SIGTERM, signal_mod.SIGINT):
            self._set(container_id, "stopped", 0)

    async def delete(self, container_id: str, *, force: bool = False) -> None:
        """Forget a stopped container (any with ``force``)."""
        self.calls.append(("delete", container_id, "force" if force else ""))
        if self._get(container_id).status != "stopped" and not force:
            raise Conflict(f"delete {container_id}: container is not stopped")
        del self.states[container_id]

    async def exec(
        self, container_id: str, process: Path, *, stdin: bytes = b"", timeout: float | None = None
    ) -> ExecResult:
        """Return the next queued result (exit 0 with no output when none is queued)."""
        self.calls.append(("exec", container_id, str(process)))
        if self._get(container_id).status != "running":
            raise Conflict(f"exec {container_id}: container is not running")
        return self.exec_results.pop(0) if self.exec_results else ExecResult(0, b"", b"")

    async def pause(self, container_id: str) -> None:
        """running -> paused."""
        self.calls.append(("pause", container_id))
        self._set(container_id, "paused")

    async def resume(self, container_id: str) -> None:
        """paused -> running."""
        self.calls.append(("resume", container_id))
        self._set(container_id, "running")

    async def ps(self, container_id: str) -> list[int]:
        """The init pid while running."""
        self.calls.append(("ps", container_id))
        st = self._get(container_id)
        return [st.pid] if st.status in ("running", "paused") else []

    async def list(self) -> list[ContainerState]:
        """Every recorded container."""
        self.calls.append(("list",))
        return list(self.states.values())


def _version(binary: str) -> str:
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, timeout=10, check=False)
    except OSError as err:
        return f"unknown ({err.strerror})"
    first = out.stdout.decode("utf-8", "replace").splitlines()
    return first[0] if first else "unknown"


def find_busybox() -> str:
    """A statically linked busybox for the probe (and for tests): Debian's busybox-static."""
    for candidate in ("/bin/busybox", "/usr/bin/busybox"):
        if os.path.exists(candidate):
            return candidate
    found = shutil.which("busybox")
    if not found:
        raise EngineError("busybox-static is not installed: it is needed to probe the runtime")
    return found


def _probe_bundle(bundle: Path, container_id: str) -> None:
    from pycompose.engine.runtime.cgroups import probe_host
    from pycompose.engine.runtime.spec import ContainerSpecParams, build_spec

    rootfs = bundle / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    shutil.copy2(find_busybox(), rootfs / "bin" / "busybox")
    os.symlink("busybox", rootfs / "bin" / "true")
    params = ContainerSpecParams(
        container_id=container_id, rootfs=rootfs, args=("/bin/true",), host=probe_host(),
        hostname="probe", read_only=True, cgroup_parent=PROBE_CGROUP_PARENT,
    )  # fmt: skip
    (bundle / "config.json").write_text(json.dumps(build_spec(params)))


def _remove_probe_cgroups(container_id: str, root: Path = Path("/sys/fs/cgroup")) -> None:
    """Remove the probe container's cgroups and the (empty) parent cgroups the probe made.

    A runtime that fails half-way (crun 1.8.1 on cgroup v2 without CAP_SYS_RESOURCE) leaves
    the container's own cgroup behind, and ``delete --force`` of a container it never
    recorded does not remove it. A busy parent belongs to a parallel probe.
    """
    bases = [root]
    if root.is_dir():
        bases += [c for c in root.iterdir() if c.is_dir()]
    for base in bases:
        for path in (base / PROBE_CGROUP_PARENT / container_id, base / PROBE_CGROUP_PARENT):
            with contextlib.suppress(OSError):
                path.rmdir()


def try_runtime(binary: str, work_dir: Path) -> str | None:
    """Start ``true`` in a throw-away container; ``None`` on success, else the reason."""
    container_id = f"pycompose-probe-{os.getpid()}-{time.monotonic_ns() % 10**9}"
    with tempfile.TemporaryDirectory(dir=work_dir, prefix="probe-") as tmp:
        bundle = Path(tmp) / "bundle"
        root = Path(tmp) / "state"
        _probe_bundle(bundle, container_id)
        argv = [binary, "--root", str(root)]
        try:
            run = subprocess.run([*argv, "run", "--bundle", str(bundle), container_id],
                                 capture_output=True, timeout=_TIMEOUT, check=False,
                                 stdin=subprocess.DEVNULL)  # fmt: skip
        except subprocess.TimeoutExpired:
            return f"starting a container took longer than {_TIMEOUT:.0f}s"
        finally:
            subprocess.run([*argv, "delete", "--force", container_id], capture_output=True,
                           timeout=_TIMEOUT, check=False)  # fmt: skip
            _remove_probe_cgroups(container_id)
        if run.returncode != 0:
            text = (run.stderr or run.stdout).decode("utf-8", "replace").strip()
            return last_message(text) or f"exited with status {run.returncode}"
    return None


def probe_runtime(
    preferred: str | None = None,
    work_dir: Path | None = None,
    candidates: Sequence[str] = CANDIDATES,
) -> RuntimeInfo:
    """Pick the first runtime that really runs a container here.

    ``preferred`` (a name on PATH or a path) is the only one tried when given: a runtime the
    user configured is never silently replaced. Raises ``EngineError`` listing each
    runtime's reason when none works.
    """
    rejected: list[tuple[str, str]] = []
    names = [preferred] if preferred else list(candidates)
    base = work_dir or Path(tempfile.gettempdir())
    base.mkdir(parents=True, exist_ok=True)
    for name in names:
        path = name if "/" in name else shutil.which(name)
        if not path or not os.access(path, os.X_OK):
            rejected.append((name, "not installed"))
            continue
        reason = try_runtime(path, base)
        if reason is None:
            return RuntimeInfo(Path(name).name, path, _version(path), tuple(rejected))
        rejected.append((name, reason))
    detail = "; ".join(f"{n}: {r}" for n, r in rejected)
    raise EngineError(f"no OCI runtime can start containers on this host ({detail})")
