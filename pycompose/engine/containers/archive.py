"""``docker cp``: ``HEAD|GET|PUT /containers/{id}/archive?path=``.

A running container can swap any directory of its rootfs for a symlink at any moment
(CVE-2018-15664 was ``docker cp`` following one onto the host). So nothing here walks the
rootfs by path: the target is resolved component by component from a directory fd with
symlinks interpreted *inside* the rootfs (``copyup.open_in_root``), and below it every
file and directory is opened relative to its parent's fd with ``O_NOFOLLOW``. Reading
produces the tar ourselves from those fds; writing creates each entry the same way, never
through a symlink, and refuses names with ``..`` or absolute paths.
"""

from __future__ import annotations

import base64
import datetime as _dt
import json
import os
import stat
import tarfile
from typing import IO, Any

from pycompose.engine.errors import InvalidArgument, NotFound
from pycompose.storage.copyup import open_in_root

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_CHUNK = 1 << 20
# Go's os.FileMode bits, which the docker CLI decodes from the path-stat header.
_GO_DIR, _GO_SYMLINK, _GO_DEVICE, _GO_PIPE, _GO_CHAR = 1 << 31, 1 << 27, 1 << 26, 1 << 25, 1 << 21


def split(path: str) -> tuple[str, str]:
    """``/a/b/c`` -> (``/a/b``, ``c``); the root itself is (``/``, ``.``)."""
    if not path.startswith("/"):
        path = "/" + path
    head, _, base = path.rstrip("/").rpartition("/")
    return (head or "/", base or ".")


def open_parent(root_fd: int, path: str, cid: str) -> tuple[int, str]:
    """A dir fd of the parent of ``path`` in the rootfs, and the last component."""
    head, base = split(path)
    if base == "..":
        raise InvalidArgument(f"invalid path {path!r}")
    fd = open_in_root(root_fd, head)
    if fd is None:
        raise NotFound(f"Could not find the file {path} in container {cid}")
    try:
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            raise NotFound(f"Could not find the file {path} in container {cid}")
        dfd = os.open(".", _DIR, dir_fd=fd)
    finally:
        os.close(fd)
    return dfd, base


def _lstat(parent: int, name: str) -> os.stat_result:
    return os.stat(name, dir_fd=parent, follow_symlinks=False)


def path_stat(parent: int, name: str, path: str, cid: str) -> dict[str, Any]:
    """The ``X-Docker-Container-Path-Stat`` content for ``name`` under ``parent``."""
    try:
        st = _lstat(parent, name)
    except FileNotFoundError:
        raise NotFound(f"Could not find the file {path} in container {cid}") from None
    mode = stat.S_IMODE(st.st_mode)
    if stat.S_ISDIR(st.st_mode):
        mode |= _GO_DIR
    elif stat.S_ISLNK(st.st_mode):
        mode |= _GO_SYMLINK
    elif stat.S_ISCHR(st.st_mode):
        mode |= _GO_DEVICE | _GO_CHAR
    elif stat.S_ISBLK(st.st_mode):
        mode |= _GO_DEVICE
    elif stat.S_ISFIFO(st.st_mode):
        mode |= _GO_PIPE
    link = os.readlink(name, dir_fd=parent) if stat.S_ISLNK(st.st_mode) else ""
    mtime = _dt.datetime.fromtimestamp(st.st_mtime, _dt.UTC).isoformat().replace("+00:00", "Z")
    return {"name": name if name != "." else "/", "size": st.st_size, "mode": mode,
            "mtime": mtime, "linkTarget": link}  # fmt: skip


def stat_header(info: dict[str, Any]) -> str:
    """Base64 of the JSON stat, as Docker sends it."""
    return base64.b64encode(json.dumps(info).encode()).decode()


def _info(st: os.stat_result, arcname: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(arcname)
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid, info.gid, info.mtime = st.st_uid, st.st_gid, int(st.st_mtime)
    return info


def write_tree(out: IO[bytes], parent: int, name: str, arcname: str) -> None:
    """Tar ``name`` (under the dir fd ``parent``) and everything below it, by fds only."""
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf:
        _add(tf, parent, name, arcname)


def _add(tf: tarfile.TarFile, parent: int, name: str, arcname: str) -> None:
    st = _lstat(parent, name)
    info = _info(st, arcname)
    if stat.S_ISREG(st.st_mode):
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
        with os.fdopen(fd, "rb") as src:
            info.size = os.fstat(fd).st_size
            tf.addfile(info, src)
    elif stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
        tf.addfile(info)
        dfd = os.open(name, _DIR, dir_fd=parent)
        try:
            for child in sorted(os.listdir(dfd)):
                _add(tf, dfd, child, f"{arcname}/{child}")
        finally:
            os.close(dfd)
    elif stat.S_ISLNK(st.st_mode):
        info.type, info.linkname = tarfile.SYMTYPE, os.readlink(name, dir_fd=parent)
        tf.addfile(info)
    elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        info.type = tarfile.CHRTYPE if stat.S_ISCHR(st.st_mode) else tarfile.BLKTYPE
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        tf.addfile(info)
    elif stat.S_ISFIFO(st.st_mode):
        info.type = tarfile.FIFOTYPE
        tf.addfile(info)
    # sockets cannot be archived: skipped, as by Docker


def extract_into(stream: IO[bytes], dest: int, *, keep_owner: bool,
                 no_overwrite_dir_non_dir: bool) -> int:  # fmt: skip
    """Unpack a tar stream below the dir fd ``dest`` without following any symlink.

    Owners are kept with ``keep_owner`` (``docker cp -a``), else files belong to root.
    Returns the number of entries.
    """
    count = 0
    with tarfile.open(fileobj=stream, mode="r|") as tf:
        for member in tf:
            parts = [p for p in member.name.split("/") if p not in ("", ".")]
            if not parts:
                continue
            if member.name.startswith("/") or ".." in parts:
                raise InvalidArgument(f"archive entry {member.name!r} leaves the destination")
            parent = _walk_dirs(dest, parts[:-1], member.name)
            try:
                _create(tf, member, parent, parts[-1], dest, keep_owner, no_overwrite_dir_non_dir)
            finally:
                os.close(parent)
            count += 1
            tf.members.clear()  # type: ignore[attr-defined]  # streaming: bounded memory
    return count


def _walk_dirs(dest: int, parts: list[str], name: str) -> int:
    fd = os.open(".", _DIR, dir_fd=dest)
    try:
        for part in parts:
            try:
                new = os.open(part, _DIR, dir_fd=fd)
            except FileNotFoundError:
                os.mkdir(part, 0o755, dir_fd=fd)
                new = os.open(part, _DIR, dir_fd=fd)
            except (NotADirectoryError, OSError) as err:
                raise InvalidArgument(f"archive entry {name!r}: {part!r} is not a directory "
                                      f"(symlinks are not followed)") from err  # fmt: skip
            os.close(fd)
            fd = new
        return fd
    except BaseException:
        os.close(fd)
        raise


def _clear(parent: int, leaf: str, want_dir: bool, no_overwrite: bool, name: str) -> bool:
    """Make room for ``leaf``; True if a directory is already there and may be kept."""
    try:
        st = _lstat(parent, leaf)
    except FileNotFoundError:
        return False
    is_dir = stat.S_ISDIR(st.st_mode)
    if no_overwrite and is_dir != want_dir:
        raise InvalidArgument(f"cannot overwrite {'non-' if want_dir else ''}directory "
                              f"with {'' if want_dir else 'non-'}directory {name!r}")  # fmt: skip
    if is_dir:
        if want_dir:
            return True
        raise InvalidArgument(f"archive entry {name!r}: a directory is in the way")
    os.unlink(leaf, dir_fd=parent)
    return False


def _create(tf: tarfile.TarFile, m: tarfile.TarInfo, parent: int, leaf: str, dest: int,
            keep_owner: bool, no_overwrite: bool) -> None:  # fmt: skip
    keep_dir = _clear(parent, leaf, m.isdir(), no_overwrite, m.name)
    uid, gid = (m.uid, m.gid) if keep_owner else (0, 0)
    if m.isdir():
        if not keep_dir:
            os.mkdir(leaf, 0o700, dir_fd=parent)
        dfd = os.open(leaf, _DIR, dir_fd=parent)  # the fd, not the name: nothing to swap
        try:
            os.fchown(dfd, uid, gid)
            os.fchmod(dfd, stat.S_IMODE(m.mode))
        finally:
            os.close(dfd)
    elif m.isreg():
        fd = os.open(leaf, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600, dir_fd=parent)  # fmt: skip
        with os.fdopen(fd, "wb") as out:
            src = tf.extractfile(m)
            assert src is not None
            while chunk := src.read(_CHUNK):
                out.write(chunk)
            out.flush()
            os.fchown(fd, uid, gid)
            os.fchmod(fd, stat.S_IMODE(m.mode))
            os.utime(fd, (m.mtime, m.mtime))
    elif m.issym():
        os.symlink(m.linkname, leaf, dir_fd=parent)
        os.chown(leaf, uid, gid, dir_fd=parent, follow_symlinks=False)
    elif m.islnk():
        target = [p for p in m.linkname.split("/") if p not in ("", ".")]
        if m.linkname.startswith("/") or ".." in target or not target:
            raise InvalidArgument(f"hard link {m.name!r} -> {m.linkname!r} leaves the archive")
        src_parent = _walk_dirs(dest, target[:-1], m.name)
        try:
            os.link(target[-1], leaf, src_dir_fd=src_parent, dst_dir_fd=parent,
                    follow_symlinks=False)  # fmt: skip
        finally:
            os.close(src_parent)
    else:
        raise InvalidArgument(f"archive entry {m.name!r}: devices and fifos cannot be copied in")

