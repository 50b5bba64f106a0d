"""Copy-up: fill a new, empty volume from the image's content at the mount's target.

The source is looked up inside the container's root filesystem with symlinks resolved
*within* it (an image's ``/data -> /etc`` means the image's /etc, never the host's), and the
copy is made with directory fds and ``O_NOFOLLOW`` on both sides: symlinks are copied as
symlinks, never followed. Owners, modes, times and extended attributes are kept:
``security.capability`` (file capabilities) is set after the chown, which clears it; the
overlayfs-private ``trusted.overlay.*`` is never copied; an attribute the volume's file
system refuses (no user xattrs on that fs, no privilege for a namespace) is left out with a
logged reason.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat

from pycompose.engine.errors import InvalidArgument

log = logging.getLogger("pycompose.storage.copyup")

_MAX_LINKS = 40
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_CAPABILITY = "security.capability"
_NEVER = "trusted.overlay."
# What a file system answers when it will not store an attribute: skipped, with a reason.
_REFUSED = {errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM, errno.EACCES, errno.EINVAL,
            errno.E2BIG, errno.ERANGE}  # fmt: skip

Xattrs = list[tuple[str, bytes]]


def open_in_root(root_fd: int, path: str) -> int | None:
    """A read fd of ``path`` inside the tree ``root_fd``, symlinks resolved within it; None if
    it does not exist."""
    todo = [p for p in path.split("/") if p and p != "."]
    stack = [os.dup(root_fd)]
    links = 0
    try:
        while todo:
            part = todo.pop(0)
            if part == "..":
                if len(stack) > 1:
                    os.close(stack.pop())
                continue
            try:
                st = os.stat(part, dir_fd=stack[-1], follow_symlinks=False)
            except FileNotFoundError:
                return None
            if stat.S_ISLNK(st.st_mode):
                links += 1
                if links > _MAX_LINKS:
                    raise InvalidArgument(f"too many symlinks resolving {path!r} in the image")
                target = os.readlink(part, dir_fd=stack[-1])
                if target.startswith("/"):
                    while len(stack) > 1:
                        os.close(stack.pop())
                todo = [p for p in target.split("/") if p and p != "."] + todo
                continue
            flags = _DIR if stat.S_ISDIR(st.st_mode) else os.O_RDONLY | os.O_NOFOLLOW
            if not stat.S_ISDIR(st.st_mode) and todo:
                return None
            stack.append(os.open(part, flags | os.O_CLOEXEC, dir_fd=stack[-1]))
        return os.dup(stack[-1])
    finally:
        for fd in stack:
            os.close(fd)


def is_empty_dir(fd: int) -> bool:
    """Whether the directory ``fd`` has no entries."""
    with os.scandir(fd) as it:
        return next(it, None) is None


def copy_up(rootfs: str, target: str, data_fd: int) -> bool:
    """Copy the image's directory at ``target`` into the directory ``data_fd``.

    Returns False (nothing copied) when the image has nothing, or not a directory, there.
    """
    root_fd = os.open(rootfs, _DIR)
    try:
        src = open_in_root(root_fd, target)
    finally:
        os.close(root_fd)
    if src is None:
        return False
    try:
        st = os.fstat(src)
        if not stat.S_ISDIR(st.st_mode):
            return False
        _copy_dir(src, data_fd)
        _meta(data_fd, None, st, read_xattrs(src))
        return True
    finally:
        os.close(src)


def _entry(parent: int, name: str | None) -> int | str:
    """``name`` in the directory fd ``parent`` (or ``parent``) for the xattr calls, which
    take no ``dir_fd``: the fd's /proc path pins the directory, the last component is not
    followed."""
    return parent if name is None else f"/proc/self/fd/{parent}/{name}"


def read_xattrs(src: int | str) -> Xattrs:
    """The extended attributes worth copying of ``src`` (an fd, or a path not followed)."""
    nofollow = {} if isinstance(src, int) else {"follow_symlinks": False}
    try:
        names = os.listxattr(src, **nofollow)
    except OSError as err:
        if err.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return []
        raise
    out = []
    for attr in sorted(names):
        if attr.startswith(_NEVER):
            continue  # overlayfs's own bookkeeping: meaningless (and harmful) in a volume
        try:
            out.append((attr, os.getxattr(src, attr, **nofollow)))
        except OSError as err:
            if err.errno != errno.ENODATA:  # gone since the listing: nothing to copy
                raise
    return out


def _set_xattrs(dst: int | str, attrs: Xattrs, shown: str) -> None:
    nofollow = {} if isinstance(dst, int) else {"follow_symlinks": False}
    for attr, value in attrs:
        try:
            os.setxattr(dst, attr, value, **nofollow)
        except OSError as err:
            if err.errno not in _REFUSED:
                raise
            log.warning("copy-up: %s: extended attribute %s not copied: %s", shown, attr,
                        err.strerror)  # fmt: skip


def _meta(parent: int, name: str | None, st: os.stat_result, attrs: Xattrs) -> None:
    """Owner, mode, xattrs and times of ``name`` in ``parent`` (or of ``parent`` itself)."""
    target = _entry(parent, name)
    shown = name or "."
    _set_xattrs(target, [a for a in attrs if a[0] != _CAPABILITY], shown)
    if name is None:
        os.fchown(parent, st.st_uid, st.st_gid)
        os.fchmod(parent, stat.S_IMODE(st.st_mode))
    else:
        os.chown(name, st.st_uid, st.st_gid, dir_fd=parent, follow_symlinks=False)
        if not stat.S_ISLNK(st.st_mode):
            os.chmod(name, stat.S_IMODE(st.st_mode), dir_fd=parent)
    # After the chown (and chmod), which clear file capabilities.
    _set_xattrs(target, [a for a in attrs if a[0] == _CAPABILITY], shown)
    if name is None:
        os.utime(parent, ns=(st.st_atime_ns, st.st_mtime_ns))
        return
    with contextlib.suppress(NotImplementedError, OSError):
        os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=parent, follow_symlinks=False)


def _copy_dir(src: int, dst: int) -> None:
    with os.scandir(src) as it:
        entries = [(e.name, e.stat(follow_symlinks=False)) for e in it]
    for name, st in entries:
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            os.mkdir(name, 0o700, dir_fd=dst)
            s = os.open(name, _DIR, dir_fd=src)
            d = os.open(name, _DIR, dir_fd=dst)
            try:
                _copy_dir(s, d)
            finally:
                os.close(s)
                os.close(d)
        elif stat.S_ISREG(mode):
            _copy_file(src, dst, name)
        elif stat.S_ISLNK(mode):
            os.symlink(os.readlink(name, dir_fd=src), name, dir_fd=dst)
        elif stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            os.mknod(name, mode, st.st_rdev, dir_fd=dst)
        else:  # sockets have no content worth copying
            continue
        _meta(dst, name, st, read_xattrs(_entry(src, name)))


def _copy_file(src: int, dst: int, name: str) -> None:
    s = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=src)
    try:
        d = os.open(
            name,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o600,
            dir_fd=dst,
        )
        try:
            size = os.fstat(s).st_size
            done = 0
            while done < size:
                n = os.sendfile(d, s, done, size - done)
                if n == 0:
                    break
                done += n
        finally:
            os.close(d)
    finally:
        os.close(s)
