"""The per-container monitor: the process that owns a container's stdio, logs and exit status.

Every container gets a monitor so that it outlives the daemon (even a SIGKILLed one) with
complete logs, and so that a restarted daemon can re-adopt it (``adopt``).

Decision: our own lean monitor, forked from the daemon, rather than Debian's conmon.
Measured on this machine (2 cores shared with other jobs, runc 1.1.5, busybox ``true``, our
default spec; ``test_latency_runc_alone_vs_monitor`` prints the comparison):
- ``runc run`` alone on the prepared bundle: median 36-46 ms depending on load (23 ms without
  seccomp: compiling Docker's profile for x86_64+x86+x32 costs runc ~15 ms; 31 ms with the
  native architecture only; the engine now leaves x32 out where the kernel has no x32
  system calls, see ``seccomp.dead_abis``);
- this monitor, start until ``wait_exit`` returns: median 41-56 ms in the same periods, i.e.
  about 6 ms over runc alone (traced: the two forks of the running interpreter and the
  spawn ~4-5 ms, reporting the pid ~1 ms, the wake-up of ``wait_exit`` ~1 ms).
  ``runc delete`` (~6 ms) runs after the exit file is written, off the caller's path.
  Exec'ing a fresh Python monitor instead would add ~20 ms. The engine now forks its
  monitors ahead of need (``spawn.MonitorLauncher``), which takes the forks off the start;
- conmon 2.1.6 (``runc create`` under conmon, ``runc start``, wait for its exit file), under
  the same load as a ``runc run`` taking 20-35 ms: 30-45 ms, plus a separate ``runc
  delete``. Its k8s-file logs carry stream and timestamp but it has no max-file rotation
  (``--log-size-max`` truncates the file) and its attach socket speaks its own protocol.
So the fork-based monitor is both faster and gives Docker's own json-file lines with
rotation; it owns the pty of TTY containers (runc's ``--console-socket``), serves an attach
socket with Docker's stream framing, records OOM kills and exit codes, and reaps: it is a
child subreaper, so the container's init is re-parented to it when ``runc run --detach``
returns. After exit it writes ``exit.json``, wakes waiters through the ``exit.fifo`` FIFO,
then deletes the runtime state and exits.

The forked monitor only uses modules imported here at load time, never imports after the
fork (another daemon thread may hold the import lock), disables the garbage collector (a
collected object of the daemon could close a reused fd) and leaves through ``os._exit``.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import gc
import json
import os
import secrets
import selectors
import signal
import socket
import struct
import termios
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pycompose.engine.errors import Conflict, NotFound
from pycompose.engine.runtime.cgroups import (
    CgroupMode,
    read_oom_kills,
    remove_container_cgroups,
)
from pycompose.engine.runtime.execproc import ExecProcess, exec_process, run_exec
from pycompose.engine.runtime.logs import LogConfig, LogRecord, LogWriter, read_logs
from pycompose.engine.runtime.oci import OciError, OciRuntime, last_message

__all__ = [
    "ExecProcess", "ExitStatus", "LogConfig", "LogRecord", "MonitorConfig", "Running", "adopt",
    "attach_address",
    "exec_process", "read_exit", "read_logs", "run_exec", "start_container", "stop_container",
    "wait_exit", "wait_monitor_gone",
]  # fmt: skip

EXIT_FILE = "exit.json"
EXIT_FIFO = "exit.fifo"  # opened and closed by the monitor once exit.json is written
STATE_FILE = "monitor.json"
PID_FILE = "init.pid"
ATTACH_SOCKET = "attach.sock"
_PR_SET_CHILD_SUBREAPER = 36
_PR_SET_NAME = 15
_SUN_PATH_MAX = 107
# Client -> monitor frames on the attach socket: [kind, 0, 0, 0, length (u32 BE)] + payload.
FRAME_STDIN, FRAME_CLOSE_STDIN, FRAME_RESIZE = 0, 1, 2
_STREAM_IDS = {"stdout": 1, "stderr": 2}
_RESET_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM, signal.SIGHUP,
                  signal.SIGCHLD, signal.SIGQUIT)  # fmt: skip
_libc = ctypes.CDLL(None, use_errno=True)


@dataclass(frozen=True)
class MonitorConfig:
    """What the monitor needs to start one container.

    ``runtime_argv`` is the runtime's command prefix (``OciRuntime.argv()``); ``state_dir``
    receives ``json.log``, ``monitor.json``, ``exit.json`` and the attach socket.
    ``cgroups_path`` (the spec's ``linux.cgroupsPath``) lets the monitor detect OOM kills.
    """

    container_id: str
    bundle: Path
    state_dir: Path
    runtime_argv: tuple[str, ...]
    tty: bool = False
    open_stdin: bool = False
    log: LogConfig = field(default_factory=LogConfig)
    cgroup_mode: CgroupMode = CgroupMode.V1
    cgroups_path: str = ""
    drain_timeout: float = 2.0


@dataclass(frozen=True)
class Running:
    """A running container and its monitor (``monitor_start`` guards against pid reuse)."""

    container_id: str
    pid: int
    monitor_pid: int
    monitor_start: int
    started_at: int
    state_dir: Path
    attach: str


@dataclass(frozen=True)
class ExitStatus:
    """How a container ended: exit code (128+signal when killed), OOM kill, time in ns."""

    code: int
    oom_killed: bool
    finished_at: int
    error: str = ""


def proc_start_time(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot; ``None`` if it is gone (or a zombie)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text.rsplit(")", 1)[1].split()
    return None if fields[0] in ("Z", "X") else int(fields[19])


def _write_json(path: Path, data: dict[str, Any]) -> None:
    # Rename makes it atomic for readers and crashes of the process; no fsync: after a power
    # loss every container is gone anyway, and adopt() then reports the monitor as vanished.
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)


def read_exit(state_dir: Path) -> ExitStatus | None:
    """The recorded exit status, if the monitor has finished."""
    try:
        data = json.loads((state_dir / EXIT_FILE).read_text())
    except FileNotFoundError:
        return None
    return ExitStatus(int(data["code"]), bool(data["oom_killed"]), int(data["finished_at"]),
                      str(data.get("error", "")))  # fmt: skip


def _read_running(state_dir: Path) -> Running | None:
    try:
        d = json.loads((state_dir / STATE_FILE).read_text())
    except FileNotFoundError:
        return None
    return Running(d["container_id"], d["pid"], d["monitor_pid"], d["monitor_start"],
                   d["started_at"], state_dir, d["attach"])  # fmt: skip


def adopt(state_dir: Path) -> Running | ExitStatus | None:
    """After a daemon restart: the container's live monitor, its exit status, or ``None``.

    ``None`` means it was never started. A monitor that vanished without an exit file
    (killed itself) yields an ``ExitStatus`` with code 255 and an error.
    """
    done = read_exit(state_dir)
    if done is not None:
        return done
    running = _read_running(state_dir)
    if running is None:
        return None
    if proc_start_time(running.monitor_pid) == running.monitor_start:
        return running
    done = read_exit(state_dir)  # it may have finished between the two reads
    return done or ExitStatus(255, False, time.time_ns(), "the container's monitor disappeared")


async def start_container(config: MonitorConfig) -> Running:
    """Start the container under a new monitor; return once its process is running.

    Raises ``OciError`` with the runtime's message when the container cannot start.
    (``spawn.MonitorLauncher`` does the same with a monitor forked ahead of time.)
    """
    await prepare_state_dir(config)
    r, w = os.pipe2(os.O_CLOEXEC)
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the monitor process
        try:
            os.close(r)
            detach({w})
            become_monitor(config, w)
        finally:
            os._exit(70)
    os.close(w)
    return await collect_report(config, child, r)


async def prepare_state_dir(config: MonitorConfig) -> None:
    """Make the state dir ready for a new monitor (an old one must have finished)."""
    config.state_dir.mkdir(parents=True, exist_ok=True)
    await wait_monitor_gone(config.state_dir)  # a restart must not race the old runc delete
    for stale in (EXIT_FILE, STATE_FILE, PID_FILE, EXIT_FIFO):
        (config.state_dir / stale).unlink(missing_ok=True)
    os.mkfifo(config.state_dir / EXIT_FIFO, 0o600)


async def collect_report(config: MonitorConfig, intermediate: int, status_r: int) -> Running:
    """Reap the monitor's short-lived parent, read the monitor's start report from
    ``status_r`` (closed here), and return the running container or raise ``OciError``."""
    import anyio

    try:
        with contextlib.suppress(ChildProcessError):  # reaped already by someone else
            os.waitpid(intermediate, 0)  # it exits right after forking the monitor
        chunks = []
        while True:
            await anyio.wait_readable(status_r)
            chunk = os.read(status_r, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(status_r)
    report = json.loads(b"".join(chunks) or b'{"error": "the monitor died while starting"}')
    if "error" in report:
        raise OciError(f"cannot start container {config.container_id}: {report['error']}")
    running = _read_running(config.state_dir)
    assert running is not None
    return running


async def wait_exit(state_dir: Path, timeout: float | None = None) -> ExitStatus:
    """Wait until the container has exited and its monitor has recorded the status.

    This returns as soon as ``exit.json`` is written; the monitor then deletes the runtime
    state and exits (``wait_monitor_gone`` waits for that).
    """
    import anyio

    with anyio.fail_after(timeout):
        status = await _wait_loop(state_dir)
    return status


async def _wait_loop(state_dir: Path) -> ExitStatus:
    import anyio

    while True:
        found = adopt(state_dir)
        if isinstance(found, ExitStatus):
            return found
        if found is None:
            raise NotFound(f"no container was started in {state_dir}")
        try:
            fifo = os.open(state_dir / EXIT_FIFO, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            fifo = -1
        try:
            # Woken when the monitor opens and closes the FIFO after writing exit.json; the
            # timeout notices a monitor that died without doing so. exit.json is checked
            # after opening: the monitor may have closed the FIFO before we opened it.
            if read_exit(state_dir) is not None:
                continue
            with anyio.move_on_after(1.0):
                if fifo >= 0:
                    await anyio.wait_readable(fifo)
                else:
                    await anyio.sleep(0.05)
        finally:
            if fifo >= 0:
                os.close(fifo)


async def wait_monitor_gone(state_dir: Path) -> None:
    """Wait until the container's monitor (if any) has deleted the runtime state and exited."""
    await wait_gone(monitor_pidfd(state_dir))


def monitor_pidfd(state_dir: Path) -> int | None:
    """A pidfd of the container's monitor while it still runs, else ``None``."""
    running = _read_running(state_dir)
    if running is None:
        return None
    try:
        pidfd = os.pidfd_open(running.monitor_pid)
    except ProcessLookupError:
        return None
    if proc_start_time(running.monitor_pid) != running.monitor_start:
        os.close(pidfd)
        return None
    return pidfd


async def wait_gone(pidfd: int | None) -> None:
    """Wait until the process of ``pidfd`` (from ``monitor_pidfd``) has exited; closes it."""
    import anyio

    if pidfd is None:
        return
    try:
        await anyio.wait_readable(pidfd)
    finally:
        os.close(pidfd)


async def stop_container(
    runtime: OciRuntime,
    container_id: str,
    state_dir: Path,
    sig: int = signal.SIGTERM,
    timeout: float = 10.0,
) -> ExitStatus:
    """Docker's stop: ``sig``, then SIGKILL after ``timeout`` seconds; return the exit status."""
    import anyio

    if not isinstance(adopt(state_dir), Running):
        return await wait_exit(state_dir)
    with contextlib.suppress(NotFound, Conflict):  # it exited meanwhile
        await runtime.kill(container_id, sig)
    try:
        return await wait_exit(state_dir, timeout)
    except TimeoutError:
        pass
    with anyio.CancelScope(shield=True):
        with contextlib.suppress(NotFound, Conflict):
            await runtime.kill(container_id, signal.SIGKILL)
        status = await wait_exit(state_dir)
    return status


async def send_attach_frame(sock: Any, kind: int, payload: bytes = b"") -> None:
    """Send one client frame (stdin data, close stdin, resize) on an attach connection."""
    await sock.send(struct.pack(">BxxxI", kind, len(payload)) + payload)


def attach_address(running: Running) -> str:
    """The address to ``connect()`` to for ``running.attach`` (``@name`` is abstract)."""
    return "\0" + running.attach[1:] if running.attach.startswith("@") else running.attach


def resize_payload(rows: int, cols: int) -> bytes:
    """Payload of a ``FRAME_RESIZE`` frame."""
    return struct.pack(">HH", rows, cols)


# ---------------------------------------------------------------- the monitor process itself


def detach(keep: set[int]) -> None:  # pragma: no cover - runs in a forked child
    """Turn a child just forked from the daemon into a monitor-to-be: its own session, the
    daemon's grandchild (the intermediate exits, so init adopts it and the daemon can die),
    a subreaper, default signals, stdio on /dev/null and no fd open but ``keep``."""
    gc.disable()
    os.setsid()
    if os.fork() != 0:
        os._exit(0)
    _libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    _libc.prctl(_PR_SET_NAME, b"pycompose-spare", 0, 0, 0)  # a monitor without a container
    with contextlib.suppress(ValueError):
        signal.set_wakeup_fd(-1)
    for sig in _RESET_SIGNALS:
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    devnull = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    kept = sorted({0, 1, 2, *keep})
    for lo, hi in zip(kept, [*kept[1:], 1 << 20], strict=True):
        if hi > lo + 1:
            os.closerange(lo + 1, hi)
    for fd in keep:
        os.set_inheritable(fd, False)


def become_monitor(config: MonitorConfig, status_w: int) -> None:  # pragma: no cover
    """In a detached child: start the container, report on ``status_w``, follow it, exit."""
    _libc.prctl(_PR_SET_NAME, b"pycompose-mon", 0, 0, 0)
    _Monitor(config, status_w).run()
    os._exit(0)


class _Monitor:  # pragma: no cover - exercised by the integration tests
    def __init__(self, config: MonitorConfig, status_w: int) -> None:
        self.cfg = config
        self.status_w = status_w
        self.sel = selectors.DefaultSelector()
        self.outputs: dict[int, str] = {}
        self.clients: dict[int, tuple[socket.socket, bytearray]] = {}
        self.stdin_fd = -1
        self.stdin_buf = b""
        self.master = -1
        self.pid = 0
        self.status: int | None = None

    # -- start
    def run(self) -> None:
        cfg = self.cfg
        token = secrets.token_hex(8)
        devnull = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
        pidfile = cfg.state_dir / PID_FILE
        extra: list[str] = []
        if cfg.tty:
            console = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            console.bind(f"\0pycompose-console-{token}")
            console.listen(1)
            extra = ["--console-socket", f"@pycompose-console-{token}"]
            err_r, err_w = os.pipe2(os.O_CLOEXEC)
            stdio, diag = (devnull, err_w, err_w), [err_r]
            to_close = [err_w]
        else:
            out_r, out_w = os.pipe2(os.O_CLOEXEC)
            err_r, err_w = os.pipe2(os.O_CLOEXEC)
            stdin = devnull
            to_close = [out_w, err_w]
            if cfg.open_stdin:
                in_r, self.stdin_fd = os.pipe2(os.O_CLOEXEC)
                stdin = in_r
                to_close.append(in_r)
            stdio, diag = (stdin, out_w, err_w), [err_r, out_r]
            self.outputs = {out_r: "stdout", err_r: "stderr"}
        argv = [*cfg.runtime_argv, "run", "--detach", "--bundle", str(cfg.bundle),
                "--pid-file", str(pidfile), *extra, cfg.container_id]  # fmt: skip
        rc = self._spawn_wait(argv, stdio)
        for fd in to_close:
            os.close(fd)
        if rc != 0:
            self._fail(argv, rc, diag)
            return
        if cfg.tty:
            self._receive_console(console)
            os.close(diag[0])
        self.pid = int(pidfile.read_text().strip())
        self.log = LogWriter(cfg.state_dir, cfg.log)
        attach = self._listen_attach(token)
        started = time.time_ns()
        me = os.getpid()
        _write_json(cfg.state_dir / STATE_FILE, {
            "container_id": cfg.container_id, "pid": self.pid, "monitor_pid": me,
            "monitor_start": proc_start_time(me), "started_at": started, "attach": attach,
        })  # fmt: skip
        os.write(self.status_w, json.dumps({"pid": self.pid}).encode())
        os.close(self.status_w)
        self._loop()
        self._finish(attach)

    def _spawn_wait(self, argv: list[str], stdio: tuple[int, int, int]) -> int:
        actions = [(os.POSIX_SPAWN_DUP2, fd, i) for i, fd in enumerate(stdio)]
        pid = os.posix_spawnp(argv[0], argv, dict(os.environ), file_actions=actions,
                              setsigdef=_RESET_SIGNALS, setsigmask=())  # fmt: skip
        while True:
            try:
                _, status = os.waitpid(pid, 0)
                return os.waitstatus_to_exitcode(status)
            except InterruptedError:
                continue

    def _fail(self, argv: list[str], rc: int, diag: list[int]) -> None:
        text = b""
        for fd in diag:
            os.set_blocking(fd, False)
            with contextlib.suppress(BlockingIOError):
                text += os.read(fd, 65536)
        msg = last_message(text.decode("utf-8", "replace")) or f"runtime exited with {rc}"
        delete = [*self.cfg.runtime_argv, "delete", "--force", self.cfg.container_id]
        devnull = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
        self._spawn_wait(delete, (devnull, devnull, devnull))
        os.write(self.status_w, json.dumps({"error": msg}).encode())
        os.close(self.status_w)

    def _receive_console(self, console: socket.socket) -> None:
        console.settimeout(10)
        conn, _ = console.accept()
        with conn:
            _, fds, _, _ = socket.recv_fds(conn, 4096, 1)
        console.close()
        self.master = fds[0]
        os.set_inheritable(self.master, False)
        self.outputs = {self.master: "stdout"}
        if self.cfg.open_stdin:
            self.stdin_fd = self.master

    def _listen_attach(self, token: str) -> str:
        path = str(self.cfg.state_dir / ATTACH_SOCKET)
        if len(path) > _SUN_PATH_MAX:
            path = f"\0pycompose-attach-{token}"
        else:
            Path(path).unlink(missing_ok=True)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        if not path.startswith("\0"):
            os.chmod(path, 0o600)
        self.listener.listen(16)
        self.listener.setblocking(False)
        return path.replace("\0", "@", 1)

    # -- event loop
    def _loop(self) -> None:
        pidfd = os.pidfd_open(self.pid)
        for fd in self.outputs:
            os.set_blocking(fd, False)
            self.sel.register(fd, selectors.EVENT_READ)
        self.sel.register(pidfd, selectors.EVENT_READ)
        self.sel.register(self.listener.fileno(), selectors.EVENT_READ)
        deadline: float | None = None
        while self.outputs or self.status is None:
            if deadline is not None and time.monotonic() > deadline:
                break
            wait = 1.0 if deadline is None else max(0.0, deadline - time.monotonic())
            for key, mask in self.sel.select(wait):
                self._dispatch(key.fd, mask, pidfd)
            self._reap()
            if self.status is not None and deadline is None:
                deadline = time.monotonic() + self.cfg.drain_timeout
                if pidfd in self.sel.get_map():
                    self.sel.unregister(pidfd)
        os.close(pidfd)

    def _dispatch(self, fd: int, mask: int, pidfd: int) -> None:
        if fd in self.outputs and mask & selectors.EVENT_READ:
            self._read_output(fd)
        if fd == self.stdin_fd and mask & selectors.EVENT_WRITE:
            self._flush_stdin()
        if fd == pidfd:
            self._reap()
        elif fd == self.listener.fileno():
            self._accept()
        elif fd in self.clients:
            self._read_client(fd)

    def _read_output(self, fd: int) -> None:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError as err:
            if err.errno != errno.EIO:  # EIO: the pty's last slave fd was closed
                raise
            data = b""
        stream = self.outputs[fd]
        if not data:
            self._unwatch(fd)
            del self.outputs[fd]
            if fd != self.stdin_fd:
                os.close(fd)
            return
        self.log.write(stream, data)
        frame = struct.pack(">BxxxI", _STREAM_IDS[stream], len(data)) + data
        for cfd, (sock, _) in list(self.clients.items()):
            try:
                sock.sendall(frame)
            except OSError:
                self._drop(cfd)  # a client that cannot keep up is disconnected

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.pid:
                self.status = status

    def _unwatch(self, fd: int) -> None:
        if fd in self.sel.get_map():
            self.sel.unregister(fd)

    # -- attach clients
    def _accept(self) -> None:
        try:
            sock, _ = self.listener.accept()
        except BlockingIOError:
            return
        sock.settimeout(0.5)  # sendall to a slow client gives up instead of stalling the logs
        self.clients[sock.fileno()] = (sock, bytearray())
        self.sel.register(sock.fileno(), selectors.EVENT_READ)

    def _drop(self, fd: int) -> None:
        sock, _ = self.clients.pop(fd)
        self._unwatch(fd)
        sock.close()

    def _read_client(self, fd: int) -> None:
        sock, buf = self.clients[fd]
        try:
            data = sock.recv(65536)
        except OSError:
            data = b""
        if not data:
            self._drop(fd)
            return
        buf += data
        while len(buf) >= 8:
            kind, length = struct.unpack(">BxxxI", buf[:8])
            if len(buf) < 8 + length:
                break
            payload = bytes(buf[8 : 8 + length])
            del buf[: 8 + length]
            self._client_frame(kind, payload)

    def _client_frame(self, kind: int, payload: bytes) -> None:
        if kind == FRAME_STDIN and self.stdin_fd >= 0:
            self.stdin_buf += payload
            self._flush_stdin()
        elif kind == FRAME_CLOSE_STDIN and self.stdin_fd >= 0 and self.stdin_fd != self.master:
            self._unwatch(self.stdin_fd)
            os.close(self.stdin_fd)
            self.stdin_fd, self.stdin_buf = -1, b""
        elif kind == FRAME_RESIZE and self.master >= 0 and len(payload) == 4:
            rows, cols = struct.unpack(">HH", payload)
            fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def _flush_stdin(self) -> None:
        fd = self.stdin_fd
        if fd < 0:
            return
        os.set_blocking(fd, False)
        try:
            n = os.write(fd, self.stdin_buf) if self.stdin_buf else 0
        except BlockingIOError:
            n = 0
        except OSError:  # the container closed its stdin
            self.stdin_buf = b""
            return
        self.stdin_buf = self.stdin_buf[n:]
        events = selectors.EVENT_READ if fd in self.outputs else 0
        if self.stdin_buf:
            events |= selectors.EVENT_WRITE
        if fd in self.sel.get_map():
            if events:
                self.sel.modify(fd, events)
            else:
                self.sel.unregister(fd)
        elif events:
            self.sel.register(fd, events)

    # -- exit
    def _finish(self, attach: str) -> None:
        cfg = self.cfg
        if self.status is None:
            _, self.status = os.waitpid(self.pid, 0)
        self.log.close()
        oom = bool(cfg.cgroups_path) and read_oom_kills(cfg.cgroup_mode, cfg.cgroups_path) > 0
        code = os.waitstatus_to_exitcode(self.status)
        if code < 0:
            code = 128 - code
        _write_json(cfg.state_dir / EXIT_FILE,
                    {"code": code, "oom_killed": oom, "finished_at": time.time_ns()})  # fmt: skip
        with contextlib.suppress(OSError):  # ENXIO: nobody is waiting
            os.close(os.open(cfg.state_dir / EXIT_FIFO, os.O_WRONLY | os.O_NONBLOCK))
        for fd in list(self.clients):
            self._drop(fd)
        self.listener.close()
        if not attach.startswith("@"):
            Path(attach).unlink(missing_ok=True)
        devnull = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
        self._spawn_wait([*cfg.runtime_argv, "delete", "--force", cfg.container_id],
                         (devnull, devnull, devnull))  # fmt: skip
        if cfg.cgroups_path:  # what runc left on cgroup v2 (see remove_container_cgroups)
            remove_container_cgroups(cfg.cgroup_mode, cfg.cgroups_path)
