"""Named network namespaces as files under our runtime dir (no ``ip netns``, no /run/netns).

A namespace is kept alive by bind-mounting a thread's ``/proc/thread-self/ns/net`` onto an
empty file. The thread that does the ``unshare`` is a short-lived helper, so the daemon's own
threads never change namespace. ``run_in_netns`` runs a function on such a helper thread after
``setns`` into a namespace file: sockets it creates (netlink, DNS) stay in that namespace.
"""

from __future__ import annotations

import ctypes
import errno
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from pycompose.netns.errors import NetworkError

T = TypeVar("T")

CLONE_NEWNET = 0x40000000
_MS_BIND = 4096
_MNT_DETACH = 2
_libc: ctypes.CDLL | None = None


def _lib() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _on_thread(fn: Callable[[], T]) -> T:
    """Run ``fn`` on a fresh thread that exits afterwards (its namespace dies with it)."""
    box: dict[str, object] = {}

    def main() -> None:
        try:
            box["value"] = fn()
        except BaseException as err:  # re-raised in the caller's thread
            box["error"] = err

    thread = threading.Thread(target=main, name="pycompose-netns", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]


def create_netns(path: Path) -> None:
    """Create a new network namespace kept alive by a bind mount on ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDONLY, 0o444)
    except FileExistsError as err:
        raise NetworkError(f"network namespace file {path} already exists") from err
    os.close(fd)

    def make() -> None:
        libc = _lib()
        _check(libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")
        src = b"/proc/thread-self/ns/net"
        _check(libc.mount(src, os.fsencode(path), None, _MS_BIND, None), f"bind mount on {path}")
        # Loopback up: every container expects a working 127.0.0.1.
        from pyroute2 import IPRoute

        with IPRoute() as ipr:
            ipr.link("set", index=1, state="up")

    try:
        _on_thread(make)
    except OSError as err:
        _unmount_quietly(path)
        path.unlink(missing_ok=True)
        raise NetworkError(f"cannot create network namespace {path}: {err}") from err


def _unmount_quietly(path: Path) -> bool:
    result: int = _lib().umount2(os.fsencode(path), _MNT_DETACH)
    return result == 0


def delete_netns(path: Path) -> bool:
    """Unmount and remove a namespace file; False if there was none."""
    if not path.exists():
        return False
    if not _unmount_quietly(path):
        err = ctypes.get_errno()
        if err not in (errno.EINVAL, errno.ENOENT):  # EINVAL: not a mount point (half-made)
            raise NetworkError(f"cannot unmount network namespace {path}: {os.strerror(err)}")
    path.unlink(missing_ok=True)
    return True


def run_in_netns(path: Path | str, fn: Callable[[], T]) -> T:
    """Run ``fn`` on a helper thread that has joined the namespace at ``path``."""

    def enter() -> T:
        fd = os.open(path, os.O_RDONLY)
        try:
            _check(_lib().setns(fd, CLONE_NEWNET), f"setns into {path}")
        finally:
            os.close(fd)
        return fn()

    return _on_thread(enter)


def namespaces_in_use(paths: list[Path], proc: Path = Path("/proc")) -> set[str]:
    """Names of the namespace files some running process is in (its container is alive)."""
    wanted: dict[tuple[int, int], str] = {}
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            continue
        wanted[(st.st_dev, st.st_ino)] = path.name
    found: set[str] = set()
    if not wanted:
        return found
    for pid in proc.iterdir():
        if not pid.name.isdigit():
            continue
        try:
            st = os.stat(pid / "ns" / "net")
        except OSError:
            continue
        name = wanted.get((st.st_dev, st.st_ino))
        if name is not None:
            found.add(name)
    return found
