"""The engine daemon's lifecycle: serve, stop, status, and auto-start for the CLI.

One daemon per runtime dir: it holds an exclusive ``flock`` on ``<runtime>/engine.lock`` for
its whole life and writes its pid to ``<runtime>/engine.pid``. The lock, not the pid file, is
the truth (a pid file survives a SIGKILL; a lock does not).

This module is imported by every CLI command that needs the engine, so only the stdlib
pieces a client needs are imported at module level; asyncio and the server load in
:func:`serve`.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pycompose.engine.client import EngineClient, EngineUnreachable
from pycompose.engine.config import EngineConfig
from pycompose.engine.errors import Conflict, EngineError

START_TIMEOUT = 10.0
"""Seconds ``ensure_daemon`` waits for an auto-started daemon to answer /_ping."""


class DaemonError(EngineError):
    """The daemon could not be started, stopped or found."""


@dataclass(frozen=True)
class DaemonStatus:
    """What is known about the daemon of one runtime dir."""

    running: bool
    pid: int | None
    answering: bool
    socket_path: Path


# -- the lock -------------------------------------------------------------------------------


def _open_lock(config: EngineConfig) -> int:
    config.runtime_dir.mkdir(parents=True, exist_ok=True, mode=0o711)
    return os.open(config.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return False
        raise
    return True


def lock_held(config: EngineConfig) -> bool:
    """True if a daemon currently holds this runtime dir's lock."""
    try:
        fd = os.open(config.lock_path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        if _try_lock(fd):
            fcntl.flock(fd, fcntl.LOCK_UN)
            return False
        return True
    finally:
        os.close(fd)


def read_pid(config: EngineConfig) -> int | None:
    """The pid in the pid file, if any (it may be stale: check :func:`lock_held`)."""
    try:
        text = config.pid_path.read_text().strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isdigit() else None


@contextlib.contextmanager
def hold_lock(config: EngineConfig) -> Iterator[None]:
    """Own the runtime dir for the duration: lock, pid file, and no stale socket.

    Refuses (409) when another daemon holds the lock, or when something else already answers
    on the socket path.
    """
    fd = _acquire_lock(config)
    try:
        if config.socket_path.exists() or config.socket_path.is_symlink():
            if _listening(config.socket_path):
                raise Conflict(f"another server already listens on {config.host}")
            config.socket_path.unlink()  # left behind by a daemon that was killed
        config.socket_path.parent.mkdir(parents=True, exist_ok=True, mode=0o711)
        tmp = config.pid_path.with_name(f".engine.pid.{os.getpid()}")
        tmp.write_text(f"{os.getpid()}\n")
        os.replace(tmp, config.pid_path)
        try:
            yield
        finally:
            with contextlib.suppress(FileNotFoundError):
                if read_pid(config) == os.getpid():
                    config.pid_path.unlink()
            # Unlinked while still held: whoever opens it next makes a fresh file (see below).
            config.lock_path.unlink()
    finally:
        os.close(fd)  # releases the flock


def _listening(path: Path) -> bool:
    """True if something accepts connections on the unix socket ``path``."""
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            return False
    return True


def _acquire_lock(config: EngineConfig) -> int:
    """Lock the runtime dir's lock file, or raise Conflict naming the daemon that holds it.

    The file is removed when a daemon exits, so a lock taken on a file that was unlinked
    meanwhile is worthless: retry until the locked file is the one at the path.
    """
    while True:
        fd = _open_lock(config)
        if not _try_lock(fd):
            os.close(fd)
            pid = read_pid(config)
            raise Conflict(
                f"another engine (pid {pid if pid is not None else 'unknown'}) is already running "
                f"for runtime dir {config.runtime_dir}"
            )
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(config.lock_path))
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


# -- serving ----------------------------------------------------------------------------------


def serve(config: EngineConfig, extra_components: tuple[str, ...] = ()) -> None:
    """Run the daemon in the foreground until SIGTERM or SIGINT (logging is the caller's).

    ``extra_components`` (``"module:function"``) load after the built-in ones.
    """
    import asyncio

    try:
        config.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        with hold_lock(config):
            asyncio.run(_serve_async(config, extra_components))
    except OSError as err:
        raise DaemonError(f"the engine cannot run: {err}") from err


async def _serve_async(config: EngineConfig, extra_components: tuple[str, ...]) -> None:
    import asyncio
    import logging

    from pycompose.engine.api import app

    log = logging.getLogger("pycompose.engine")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    specs = (*app.COMPONENTS, *extra_components)
    server, ctx, loader = await app.start_api(config, specs)
    log.info("engine listening on %s (root %s, pid %d)", config.host, config.root, os.getpid())
    try:
        async with ctx.cleanup:
            await stop.wait()
            log.info("engine stopping")
            loader.cancel()
            await asyncio.gather(loader, return_exceptions=True)
            await server.close()
    finally:
        await server.close()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    log.info("engine stopped")


# -- the CLI side ------------------------------------------------------------------------------


def status(config: EngineConfig) -> DaemonStatus:
    """Whether a daemon holds the runtime dir, its pid, and whether the socket answers."""
    running = lock_held(config)
    answering = EngineClient(str(config.socket_path), timeout=2.0).ping()
    return DaemonStatus(
        running, read_pid(config) if running else None, answering, config.socket_path
    )


def ensure_daemon(config: EngineConfig, *, timeout: float = START_TIMEOUT) -> EngineClient:
    """A client for the engine, starting the daemon in the background if nothing answers.

    Only an engine whose socket lives in its own runtime dir is auto-started; an explicit
    host elsewhere (a Docker daemon, say) must already be running.
    """
    client = EngineClient(str(config.socket_path))
    if client.ping():
        return client
    if not config.owns_socket:
        raise EngineUnreachable(
            f"nothing answers on {config.host} (auto-start only applies to sockets "
            f"inside the runtime dir {config.runtime_dir})"
        )
    pid = None if lock_held(config) else _spawn(config)
    _wait_until_answering(client, config, pid, timeout)
    return client


def _spawn(config: EngineConfig) -> int:
    """Start ``engine serve`` detached: own session, stdin from /dev/null, output to the log.

    ``posix_spawn`` rather than ``subprocess``: no Popen object that would warn about a
    child still running when the CLI exits, which is exactly what a daemon does.
    """
    config.runtime_dir.mkdir(parents=True, exist_ok=True, mode=0o711)
    _rotate(config.log_path)
    argv = [sys.executable, "-m", "pycompose.cli.main", "engine", "serve", *config.serve_args()]
    log_fd = os.open(config.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    try:
        return os.posix_spawn(
            sys.executable,
            argv,
            os.environ,
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, log_fd, 1),
                (os.POSIX_SPAWN_DUP2, log_fd, 2),
            ],
            setsid=True,  # survives the CLI, its terminal and its Ctrl-C
        )
    finally:
        os.close(log_fd)


def _end_loser(config: EngineConfig, pid: int) -> None:
    """Another CLI's daemon answered first: stop ours if it is not the one that won.

    A child still importing would otherwise find the lock free later (say after an
    ``engine stop``) and become a daemon nobody asked for.
    """
    if _exited(pid) or read_pid(config) == pid:
        return
    _signal(pid, signal.SIGTERM)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


LOG_ROTATE_SIZE = 10 * 1024 * 1024


def _rotate(path: Path) -> None:
    """Keep one previous log: a daemon started many times must not grow its log forever."""
    with contextlib.suppress(FileNotFoundError):
        if path.stat().st_size > LOG_ROTATE_SIZE:
            os.replace(path, path.with_name(path.name + ".1"))


def _exited(pid: int) -> bool:
    """True (and reaped) if our child ``pid`` has exited."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return done != 0


def _wait_until_answering(
    client: EngineClient, config: EngineConfig, pid: int | None, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    delay = 0.005
    while time.monotonic() < deadline:
        if client.ping():
            if pid is not None:
                _end_loser(config, pid)
            return
        if pid is not None and _exited(pid):
            if not lock_held(config):
                raise DaemonError(
                    f"the engine exited during start-up; last lines of {config.log_path}:\n"
                    f"{log_tail(config.log_path)}"
                )
            pid = None  # lost a start race to another daemon, which now holds the lock
        time.sleep(delay)
        delay = min(delay * 2, 0.1)
    raise DaemonError(
        f"the engine did not answer on {config.host} within {timeout:g}s; "
        f"last lines of {config.log_path}:\n{log_tail(config.log_path)}"
    )


def log_tail(path: Path, lines: int = 15) -> str:
    """The last ``lines`` lines of a log file (or a note that it is missing)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16384))
            data = f.read().decode(errors="replace")
    except FileNotFoundError:
        return "(no log file)"
    return "\n".join(data.splitlines()[-lines:]) or "(log is empty)"


def stop(config: EngineConfig, *, timeout: float = 15.0) -> int | None:
    """Stop the daemon of this runtime dir: SIGTERM, then SIGKILL after ``timeout`` seconds.

    Returns the stopped daemon's pid, or ``None`` if none was running. A daemon killed with
    SIGKILL leaves its containers running (their monitors keep them); the next start
    re-adopts them.
    """
    if not lock_held(config):
        return None
    pid = read_pid(config)
    if pid is None or not _is_engine_process(pid):
        raise DaemonError(
            f"a daemon holds {config.lock_path} but its pid file does not name it; stop it by hand"
        )
    _signal(pid, signal.SIGTERM)
    if _wait_unlocked(config, timeout):
        return pid
    _signal(pid, signal.SIGKILL)
    if _wait_unlocked(config, 5.0):
        return pid
    raise DaemonError(f"engine pid {pid} did not exit after SIGKILL")


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _wait_unlocked(config: EngineConfig, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not lock_held(config):
            return True
        time.sleep(0.02)
    return False


def _is_engine_process(pid: int) -> bool:
    """Guard against a recycled pid: the process must be an ``engine serve``."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except FileNotFoundError:
        return False
    return b"engine" in cmdline and b"serve" in cmdline
