"""Overlay mounts behind a small interface: the kernel one, and a recording fake.

A container root filesystem is ``overlay`` with the image's layer directories as
``lowerdir`` (top first) and a per-container ``upperdir``/``workdir``. mount(2) takes its
options in one page, so with many layers and long paths the option string would not fit:
then the directories are named through one-character symlinks in a temp directory and
the ``mount`` program runs there with relative names (Docker's overlay2 driver does the
same with a chdir), never changing the daemon's own working directory.

A container removed when it exits (``--rm``) gets a ``volatile`` mount: overlayfs then
skips syncing the upper layer, which otherwise makes the unmount at exit wait for a sync
of the filesystem below (1-9 ms here, more on a busy disk), for data deleted right after.
A crash leaves such an upper layer unusable, which costs nothing: the container is
removed then too.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import pathlib
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from pycompose.errors import PycomposeError
from pycompose.sysinfo import kernel_version

# mount(2) copies at most one page of options; keep a margin for the kernel's own use.
MAX_OPTIONS = 4000
MNT_DETACH = 2


class MountError(PycomposeError):
    """A mount or unmount failed; the message names the target and the reason."""


class Mounter(Protocol):
    """What the engine needs from the kernel to build container root filesystems."""

    def mount_overlay(self, lower: Sequence[str], upper: str | None, work: str | None,
                      target: str, *, volatile: bool = False) -> None:
        """Mount overlayfs at ``target``; without ``upper``/``work`` it is read-only;
        ``volatile`` skips syncing the upper layer."""
        ...

    def unmount(self, target: str, *, detach: bool = False) -> None:
        """Unmount ``target`` (lazily with ``detach``)."""
        ...

    def is_mounted(self, target: str) -> bool:
        """Whether something is mounted at ``target``."""
        ...


def overlay_options(lower: Sequence[str], upper: str | None, work: str | None,
                    volatile: bool = False) -> str:
    """The overlayfs option string; refuses paths overlayfs cannot express."""
    if not lower:
        raise MountError("overlay mount needs at least one lower directory")
    if (upper is None) != (work is None):
        raise MountError("overlay upperdir and workdir must be given together")
    paths = [*lower, *(p for p in (upper, work) if p is not None)]
    for path in paths:
        if any(c in path for c in ",:\\") or not path:
            raise MountError(f"path {path!r} cannot be used in overlay options "
                             "(contains ',', ':' or '\\')")
    opts = "lowerdir=" + ":".join(lower)
    if upper is not None:
        opts += f",upperdir={upper},workdir={work}"
    if volatile:
        if upper is None:
            raise MountError("a volatile overlay mount needs an upperdir")
        opts += ",volatile"
    return opts


def _short_link_options(links: str, lower: Sequence[str], upper: str | None,
                        work: str | None, volatile: bool) -> str:
    """Options naming the directories through one-character symlinks made in ``links``.

    The kernel resolves them at mount time, so ``links`` can go right after.
    """
    rel = []
    for i, path in enumerate([*lower, *(p for p in (upper, work) if p is not None)]):
        os.symlink(os.path.abspath(path), os.path.join(links, f"{i:x}"))
        rel.append(f"{i:x}")
    n = len(lower)
    return overlay_options(rel[:n], rel[n] if upper else None, rel[n + 1] if upper else None,
                           volatile)


class KernelMounter:
    """The real thing: mount(2)/umount2(2) through libc, or ``mount`` for long options."""

    def __init__(self) -> None:
        self._libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        # overlayfs has had the volatile option since Linux 5.10; older kernels refuse it.
        self.has_volatile = kernel_version() >= (5, 10)

    def mount_overlay(self, lower: Sequence[str], upper: str | None, work: str | None,
                      target: str, *, volatile: bool = False) -> None:
        """See :class:`Mounter`. ``volatile`` is left out on kernels without it: the mount
        is then an ordinary one, synced like any other."""
        opts = overlay_options(lower, upper, work, volatile and self.has_volatile)
        if len(opts) <= MAX_OPTIONS:
            self._mount("overlay", target, "overlay", 0, opts)
            return
        links = tempfile.mkdtemp(prefix="pycompose-ovl-")
        try:
            rel_opts = _short_link_options(links, lower, upper, work,
                                           volatile and self.has_volatile)  # fmt: skip
            if len(rel_opts) > MAX_OPTIONS:
                raise MountError(f"overlay mount of {target}: {len(lower)} layers do not fit "
                                 f"in the {MAX_OPTIONS} byte mount option limit")
            proc = subprocess.run(
                ["mount", "-t", "overlay", "overlay", "-o", rel_opts, os.path.abspath(target)],
                cwd=links, capture_output=True, text=True, check=False)
        finally:
            shutil.rmtree(links)
        if proc.returncode != 0:
            raise MountError(f"overlay mount of {target} failed: {proc.stderr.strip()}")

    def _mount(self, source: str, target: str, fstype: str, flags: int, data: str) -> None:
        ret = self._libc.mount(source.encode(), os.fsencode(target), fstype.encode(),
                               ctypes.c_ulong(flags), data.encode())
        if ret != 0:
            errno = ctypes.get_errno()
            raise MountError(f"{fstype} mount of {target} failed: {os.strerror(errno)}")

    def unmount(self, target: str, *, detach: bool = False) -> None:
        """See :class:`Mounter`."""
        ret = self._libc.umount2(os.fsencode(target), MNT_DETACH if detach else 0)
        if ret != 0:
            errno = ctypes.get_errno()
            raise MountError(f"unmount of {target} failed: {os.strerror(errno)}")

    def is_mounted(self, target: str) -> bool:
        """See :class:`Mounter`."""
        return is_mountpoint(target)


def is_mountpoint(path: str) -> bool:
    """Whether ``path`` is listed as a mount point in /proc/self/mountinfo."""
    real = os.path.realpath(path)
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as fp:
        for line in fp:
            mount_point = line.split(" ")[4]
            for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"),
                               ("\\134", "\\")):
                mount_point = mount_point.replace(code, char)
            if mount_point == real:
                return True
    return False


@dataclass(frozen=True)
class MountCall:
    """One call recorded by :class:`FakeMounter`."""

    op: str
    target: str
    lower: tuple[str, ...] = ()
    upper: str | None = None
    work: str | None = None
    detach: bool = False
    volatile: bool = False


@dataclass
class FakeMounter:
    """Records calls and tracks what is mounted; errors like the kernel would."""

    calls: list[MountCall] = field(default_factory=list)
    mounted: dict[str, MountCall] = field(default_factory=dict)

    def mount_overlay(self, lower: Sequence[str], upper: str | None, work: str | None,
                      target: str, *, volatile: bool = False) -> None:
        """See :class:`Mounter`."""
        overlay_options(lower, upper, work, volatile)
        call = MountCall("mount_overlay", target, tuple(lower), upper, work, volatile=volatile)
        self.calls.append(call)
        if not pathlib.Path(target).is_dir():
            raise MountError(f"overlay mount of {target} failed: No such file or directory")
        self.mounted[target] = call

    def unmount(self, target: str, *, detach: bool = False) -> None:
        """See :class:`Mounter`."""
        self.calls.append(MountCall("unmount", target, detach=detach))
        if self.mounted.pop(target, None) is None:
            raise MountError(f"unmount of {target} failed: Invalid argument")

    def is_mounted(self, target: str) -> bool:
        """See :class:`Mounter`."""
        return target in self.mounted


@dataclass(frozen=True)
class RootfsDirs:
    """The overlay directories of one container: ``<base>/{upper,work,merged}``."""

    upper: pathlib.Path
    work: pathlib.Path
    merged: pathlib.Path

    @classmethod
    def under(cls, base: pathlib.Path) -> RootfsDirs:
        """The directories below a container's state directory."""
        return cls(base / "upper", base / "work", base / "merged")


def mount_rootfs(mounter: Mounter, lower: Sequence[str], base: pathlib.Path, *,
                 volatile: bool = False) -> RootfsDirs:
    """Create the dirs and mount a container's root filesystem (idempotent: re-adoption).

    ``volatile``: for a container removed at exit (see the module's docstring)."""
    dirs = RootfsDirs.under(base)
    for path, mode in ((dirs.upper, 0o755), (dirs.work, 0o700), (dirs.merged, 0o755)):
        path.mkdir(mode=mode, parents=True, exist_ok=True)
    if not mounter.is_mounted(str(dirs.merged)):
        mounter.mount_overlay(lower, str(dirs.upper), str(dirs.work), str(dirs.merged),
                              volatile=volatile)  # fmt: skip
    return dirs


def unmount_rootfs(mounter: Mounter, base: pathlib.Path) -> None:
    """Unmount a container's root filesystem if mounted; lazily if it is still busy."""
    merged = str(RootfsDirs.under(base).merged)
    if not mounter.is_mounted(merged):
        return
    try:
        mounter.unmount(merged)
    except MountError:
        mounter.unmount(merged, detach=True)
