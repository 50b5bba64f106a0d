"""Opening host paths without following a symlink swapped in later, and mounting from the fd.

A bind mount named by path is raced easily: between checking ``/srv/app`` and mounting it,
someone who can write ``/srv`` may replace ``app`` with a symlink to ``/etc``. So a path is
canonicalised once (symlinks that exist *then* are resolved, as Docker does), and the
canonical path is then opened one component at a time from ``/`` with ``O_NOFOLLOW``
relative to the parent's fd. A component that has become a symlink fails the open
(``ELOOP``) instead of redirecting it, and the mount is made from ``/proc/self/fd/N`` of the
final fd: whatever happens to the names afterwards, the mount is of the inode we opened.

The kernel side (mount/umount) is behind :class:`Binder`, with :class:`KernelBinder` for real
use and :class:`FakeBinder` (recording) for unit tests.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from pycompose.engine.errors import InvalidArgument
from pycompose.storage.overlay import MountError, is_mountpoint

MS_RDONLY = 1
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MNT_DETACH = 2
_PATH_FLAGS = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC

OpenHook = Callable[[str, int], None]
"""Called after each component is opened with (path opened so far, depth); tests use it to
swap a later component for a symlink at exactly that moment."""


def split_abs(path: str) -> list[str]:
    """The components of an absolute, normalised path (``/a/b`` -> ``["a", "b"]``)."""
    if not path.startswith("/"):
        raise InvalidArgument(f"path {path!r} must be absolute")
    parts = [p for p in path.split("/") if p]
    for part in parts:
        if part in (".", ".."):
            raise InvalidArgument(f"path {path!r} must not contain '.' or '..' components")
    return parts


def canonical(path: str) -> str:
    """Resolve the symlinks that exist now (Docker's EvalSymlinks); the path must be absolute."""
    if not path.startswith("/"):
        raise InvalidArgument(f"path {path!r} must be absolute")
    return os.path.realpath(path)


def open_nofollow(
    path: str, *, create_dirs: bool = False, hook: OpenHook | None = None, dir_mode: int = 0o755
) -> int:
    """An ``O_PATH`` fd of canonical ``path``, walked from ``/`` without following symlinks.

    With ``create_dirs`` missing directories are made (``mkdirat``, ``dir_mode``) on the way.
    A component that is a symlink (or not a directory where one is needed) raises
    :class:`InvalidArgument`; a missing one without ``create_dirs`` raises ``FileNotFoundError``.
    """
    return open_below(
        "/", split_abs(path), path, create_dirs=create_dirs, hook=hook, dir_mode=dir_mode
    )


def open_below(
    base: str | int,
    parts: list[str],
    path: str,
    *,
    create_dirs: bool = False,
    hook: OpenHook | None = None,
    dir_mode: int = 0o755,
) -> int:
    """Like :func:`open_nofollow`, for ``parts`` below the directory ``base`` (path or fd)."""
    for part in parts:
        if part in ("", ".", "..") or "/" in part:
            raise InvalidArgument(f"path {path!r}: invalid component {part!r}")
    if isinstance(base, int):
        fd = os.open(".", _PATH_FLAGS | os.O_DIRECTORY, dir_fd=base)
    else:
        fd = os.open(base, _PATH_FLAGS | os.O_DIRECTORY)
    try:
        for depth, part in enumerate(parts):
            new = _open_component(
                fd, part, path, create=create_dirs, mode=dir_mode, last=depth == len(parts) - 1
            )
            os.close(fd)
            fd = new
            if hook is not None:
                hook("/" + "/".join(parts[: depth + 1]), depth)
        return fd
    except BaseException:
        os.close(fd)
        raise


def _open_component(
    parent: int, part: str, path: str, *, create: bool, mode: int, last: bool
) -> int:
    flags = _PATH_FLAGS | (0 if last else os.O_DIRECTORY)
    try:
        fd = os.open(part, flags, dir_fd=parent)
    except FileNotFoundError:
        if not create:
            raise
        with contextlib.suppress(FileExistsError):
            os.mkdir(part, mode, dir_fd=parent)
        fd = os.open(part, flags | os.O_DIRECTORY, dir_fd=parent)
    except OSError as err:
        if err.errno in (errno.ELOOP, errno.ENOTDIR):
            raise InvalidArgument(
                f"path {path!r}: component {part!r} is a symlink or not a "
                "directory (changed while it was being resolved?); "
                "refusing to follow it"
            ) from err
        raise
    if stat.S_ISLNK(os.fstat(fd).st_mode):  # the last component, opened as the link itself
        os.close(fd)
        raise InvalidArgument(
            f"path {path!r}: {part!r} became a symlink while it was being "
            "resolved; refusing to follow it"
        )
    return fd


def fd_path(fd: int) -> str:
    """The magic link that names exactly the file ``fd`` refers to."""
    return f"/proc/self/fd/{fd}"


@contextlib.contextmanager
def opened(path: str, **kwargs: bool | OpenHook | None) -> Iterator[int]:
    """:func:`open_nofollow` as a context manager that closes the fd."""
    fd = open_nofollow(path, **kwargs)  # type: ignore[arg-type]
    try:
        yield fd
    finally:
        os.close(fd)


class Binder(Protocol):
    """The mounts storage makes in the daemon's own namespace."""

    def bind_fd(
        self, fd: int, target: str, *, recursive: bool = True, read_only: bool = False
    ) -> None:
        """Bind-mount the file or directory ``fd`` refers to onto ``target``."""
        ...

    def mount_fs(self, fstype: str, source: str, target: str, options: str) -> None:
        """Mount a filesystem (``tmpfs``) at ``target`` with ``options``."""
        ...

    def unmount(self, target: str, *, detach: bool = False) -> None:
        """Unmount ``target``."""
        ...

    def is_mounted(self, target: str) -> bool:
        """Whether something is mounted at ``target``."""
        ...

    def mounted_below(self, path: str) -> list[str]:
        """Mount points at or below ``path``, deepest first."""
        ...


class KernelBinder:
    """mount(2)/umount2(2) through libc."""

    def __init__(self) -> None:
        self._libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)

    def _mount(
        self, source: str, target: str, fstype: str | None, flags: int, data: str | None
    ) -> None:
        ret = self._libc.mount(
            os.fsencode(source),
            os.fsencode(target),
            fstype.encode() if fstype else None,
            ctypes.c_ulong(flags),
            data.encode() if data else None,
        )
        if ret != 0:
            err = ctypes.get_errno()
            raise MountError(f"mount of {source} on {target} failed: {os.strerror(err)}")

    def bind_fd(
        self, fd: int, target: str, *, recursive: bool = True, read_only: bool = False
    ) -> None:
        """See :class:`Binder`."""
        self._mount(fd_path(fd), target, None, MS_BIND | (MS_REC if recursive else 0), None)
        if read_only:  # a bind ignores MS_RDONLY until remounted
            try:
                self._mount("none", target, None, MS_BIND | MS_REMOUNT | MS_RDONLY, None)
            except MountError:
                self.unmount(target, detach=True)
                raise

    def mount_fs(self, fstype: str, source: str, target: str, options: str) -> None:
        """See :class:`Binder`."""
        self._mount(source, target, fstype, 0, options or None)

    def unmount(self, target: str, *, detach: bool = False) -> None:
        """See :class:`Binder`."""
        if self._libc.umount2(os.fsencode(target), MNT_DETACH if detach else 0) != 0:
            err = ctypes.get_errno()
            raise MountError(f"unmount of {target} failed: {os.strerror(err)}")

    def is_mounted(self, target: str) -> bool:
        """See :class:`Binder`."""
        return is_mountpoint(target)

    def mounted_below(self, path: str) -> list[str]:
        """See :class:`Binder`."""
        return mounts_below(path)


@dataclass(frozen=True)
class BindCall:
    """One call recorded by :class:`FakeBinder`; ``source`` is what the fd pointed to."""

    op: str
    target: str
    source: str = ""
    fstype: str = ""
    options: str = ""
    read_only: bool = False
    recursive: bool = True


@dataclass
class FakeBinder:
    """Records calls and tracks mounts; ``bind_fd`` records the real path behind the fd."""

    calls: list[BindCall] = field(default_factory=list)
    mounted: dict[str, BindCall] = field(default_factory=dict)

    def bind_fd(
        self, fd: int, target: str, *, recursive: bool = True, read_only: bool = False
    ) -> None:
        """See :class:`Binder`."""
        call = BindCall(
            "bind", target, os.readlink(fd_path(fd)), read_only=read_only, recursive=recursive
        )
        self._add(call)

    def mount_fs(self, fstype: str, source: str, target: str, options: str) -> None:
        """See :class:`Binder`."""
        self._add(BindCall("mount", target, source, fstype, options))

    def _add(self, call: BindCall) -> None:
        self.calls.append(call)
        if not os.path.lexists(call.target):
            raise MountError(f"mount on {call.target} failed: No such file or directory")
        self.mounted[call.target] = call

    def unmount(self, target: str, *, detach: bool = False) -> None:
        """See :class:`Binder`."""
        self.calls.append(BindCall("unmount", target))
        if self.mounted.pop(target, None) is None:
            raise MountError(f"unmount of {target} failed: Invalid argument")

    def is_mounted(self, target: str) -> bool:
        """See :class:`Binder`."""
        return target in self.mounted

    def mounted_below(self, path: str) -> list[str]:
        """See :class:`Binder`."""
        prefix = path.rstrip("/") + "/"
        found = [p for p in self.mounted if p == path or p.startswith(prefix)]
        return sorted(found, key=len, reverse=True)


def mounts_below(path: str) -> list[str]:
    """Mount points at or below ``path`` (from /proc/self/mountinfo), deepest first."""
    real = os.path.realpath(path)
    found = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as fp:
        for line in fp:
            point = line.split(" ")[4]
            for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
                point = point.replace(code, char)
            if point == real or point.startswith(real.rstrip("/") + "/"):
                found.append(point)
    return sorted(set(found), key=len, reverse=True)
