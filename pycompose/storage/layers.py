"""Unpacked layers, one directory per chain id: ``<root>/<chainid-hex>/diff``.

A layer is extracted once into a temp directory, its diff_id checked while extracting,
then renamed into place, so ``<root>/<hex>`` exists only when complete. ``root`` is the
layers directory itself (``<state>/layers``).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import pathlib
import re
import secrets
import shutil
import stat
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from pycompose.storage.extract import LayerError, extract_layer

_DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")


def _hex(digest: str) -> str:
    if not _DIGEST_RE.fullmatch(digest):
        raise LayerError(f"invalid digest {digest!r}: expected sha256:<64 hex digits>")
    return digest[7:]


def chain_ids(diff_ids: Sequence[str]) -> list[str]:
    """Chain ids per the OCI image spec: ChainID(n) = sha256(ChainID(n-1) + " " + DiffID(n))."""
    out: list[str] = []
    for diff_id in diff_ids:
        _hex(diff_id)
        out.append(chain_id_of(out[-1], diff_id) if out else diff_id)
    return out


@dataclass(frozen=True)
class LayerInfo:
    """Metadata of one unpacked layer."""

    chain_id: str
    diff_id: str
    parent: str | None
    size: int
    path: pathlib.Path


class LayerStore:
    """Unpacked layers under ``root``; safe for concurrent use by threads and processes."""

    def __init__(self, root: pathlib.Path, *, real_root: bool | None = None) -> None:
        self.root = pathlib.Path(root)
        self._tmp = self.root / "tmp"
        self._locks = self.root / "locks"
        self._real_root = real_root
        for d in (self.root, self._tmp, self._locks):
            d.mkdir(parents=True, exist_ok=True)

    def _dir(self, chain_id: str) -> pathlib.Path:
        return self.root / _hex(chain_id)

    def has(self, chain_id: str) -> bool:
        """Whether the layer with this chain id is unpacked."""
        return (self._dir(chain_id) / "layer.json").is_file()

    def diff_dir(self, chain_id: str) -> pathlib.Path:
        """The unpacked directory of a present layer."""
        if not self.has(chain_id):
            raise LayerError(f"layer {chain_id} is not unpacked")
        return self._dir(chain_id) / "diff"

    def info(self, chain_id: str) -> LayerInfo:
        """Metadata of a present layer."""
        try:
            doc = json.loads((self._dir(chain_id) / "layer.json").read_text())
        except FileNotFoundError as err:
            raise LayerError(f"layer {chain_id} is not unpacked") from err
        return LayerInfo(chain_id, doc["diff_id"], doc["parent"], doc["size"],
                         self._dir(chain_id) / "diff")

    @contextlib.contextmanager
    def _lock(self, chain_id: str) -> Iterator[None]:
        fd = os.open(self._locks / _hex(chain_id), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def unpack(self, diff_id: str, parent: str | None, blob: BinaryIO,
               media_type: str = "") -> LayerInfo:
        """Unpack ``blob`` (compressed or not) as the layer on top of chain ``parent``.

        Does nothing if that chain id is already unpacked. The diff_id is verified while
        extracting; a mismatch or unsafe entry raises LayerError and leaves nothing behind.
        """
        chain_id = chain_ids([diff_id])[0] if parent is None else chain_id_of(parent, diff_id)
        if parent is not None and not self.has(parent):
            raise LayerError(f"parent layer {parent} of {chain_id} is not unpacked")
        with self._lock(chain_id):
            if self.has(chain_id):
                return self.info(chain_id)
            work = self._tmp / secrets.token_hex(8)
            (work / "diff").mkdir(parents=True)
            try:
                report = extract_layer(blob, work / "diff", media_type=media_type,
                                       expected_diff_id=diff_id, real_root=self._real_root)
                meta = {"chain_id": chain_id, "diff_id": diff_id, "parent": parent,
                        "size": report.size, "skipped": report.skipped}
                _write_synced(work / "layer.json", json.dumps(meta).encode())
                target = self._dir(chain_id)
                if target.exists():  # an incomplete leftover without layer.json
                    shutil.rmtree(target)
                os.rename(work, target)
            finally:
                if work.exists():
                    shutil.rmtree(work)
        return self.info(chain_id)

    def rootfs_lowerdirs(self, chain_ids: Sequence[str]) -> list[str]:
        """The overlayfs ``lowerdir`` list for an image: top layer first, bottom last.

        ``chain_ids`` is in image order (bottom first), as ImageRecord.layer_chain_ids.
        """
        return [str(self.diff_dir(c)) for c in reversed(chain_ids)]

    def list(self) -> list[LayerInfo]:
        """Every unpacked layer."""
        out = []
        for entry in os.scandir(self.root):
            if len(entry.name) == 64 and (pathlib.Path(entry.path) / "layer.json").is_file():
                out.append(self.info("sha256:" + entry.name))
        return out

    def delete(self, chain_id: str) -> None:
        """Remove an unpacked layer (callers make sure no image or container uses it)."""
        with self._lock(chain_id):
            target = self._dir(chain_id)
            if not target.exists():
                raise LayerError(f"layer {chain_id} is not unpacked")
            # Drop layer.json first so a crash mid-delete leaves an incomplete dir, not
            # one that looks whole.
            (target / "layer.json").unlink(missing_ok=True)
            shutil.rmtree(target)

    def clean_tmp(self) -> None:
        """Remove half-extracted layers left by a crash (start-up clean-up)."""
        for entry in os.scandir(self._tmp):
            shutil.rmtree(entry.path, ignore_errors=True)


def chain_id_of(parent: str, diff_id: str) -> str:
    """The chain id of ``diff_id`` on top of the chain ``parent``."""
    _hex(parent)
    _hex(diff_id)
    return "sha256:" + hashlib.sha256(f"{parent} {diff_id}".encode()).hexdigest()


_KEPT_XATTRS = ("security.capability",)


def _xattrs(fd: int) -> dict[str, str]:
    """PAX headers for the xattrs a layer carries (user.* and file capabilities)."""
    out = {}
    for name in os.listxattr(fd):
        if name.startswith("user.") or name in _KEPT_XATTRS:
            value = os.getxattr(fd, name)
            out[f"SCHILY.xattr.{name}"] = value.decode("utf-8", "surrogateescape")
    return out


def _header(name: str, st: os.stat_result) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid, info.gid = st.st_uid, st.st_gid
    info.mtime = st.st_mtime
    return info


class _DiffWriter:
    """Writes an overlay upper directory as an OCI layer tar; see :func:`write_diff_tar`."""

    def __init__(self, tf: tarfile.TarFile) -> None:
        self.tf = tf
        self.links: dict[tuple[int, int], str] = {}

    def entry(self, dirfd: int, rel: str, name: str) -> None:
        path = f"{rel}/{name}" if rel else name
        st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
        info = _header(path, st)
        if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
            info.name = f"{rel}/.wh.{name}" if rel else f".wh.{name}"
            info.mode = 0o644
            self.tf.addfile(info)  # an overlay whiteout becomes an OCI whiteout file
        elif stat.S_ISDIR(st.st_mode):
            self.directory(dirfd, name, info, path)
        elif stat.S_ISREG(st.st_mode):
            self.regular(dirfd, name, info, st)
        elif stat.S_ISLNK(st.st_mode):
            info.type, info.linkname = tarfile.SYMTYPE, os.readlink(name, dir_fd=dirfd)
            self.tf.addfile(info)
        elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) or stat.S_ISFIFO(st.st_mode):
            info.type = (tarfile.CHRTYPE if stat.S_ISCHR(st.st_mode) else
                         tarfile.BLKTYPE if stat.S_ISBLK(st.st_mode) else tarfile.FIFOTYPE)
            info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
            self.tf.addfile(info)
        # sockets are not part of an image (as with docker commit)

    def directory(self, dirfd: int, name: str, info: tarfile.TarInfo, path: str) -> None:
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                     dir_fd=dirfd)
        try:
            info.type = tarfile.DIRTYPE
            info.pax_headers = _xattrs(fd)
            self.tf.addfile(info)
            try:
                opaque = os.getxattr(fd, "trusted.overlay.opaque") == b"y"
            except OSError:
                opaque = False
        finally:
            os.close(fd)
        if opaque:
            marker = tarfile.TarInfo(f"{path}/.wh..wh..opq")
            marker.mtime, marker.mode = info.mtime, 0o644
            self.tf.addfile(marker)

    def regular(self, dirfd: int, name: str, info: tarfile.TarInfo,
                st: os.stat_result) -> None:
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and key in self.links:
            info.type, info.linkname = tarfile.LNKTYPE, self.links[key]
            self.tf.addfile(info)
            return
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dirfd)
        with os.fdopen(fd, "rb") as fp:
            now = os.fstat(fd)
            if (now.st_dev, now.st_ino) != key:
                raise LayerError(f"{info.name}: changed while being read")
            info.size = now.st_size
            info.pax_headers = _xattrs(fd)
            self.tf.addfile(info, fp)
        if st.st_nlink > 1:
            self.links[key] = info.name


def write_diff_tar(upper: pathlib.Path, out: BinaryIO) -> None:
    """Write a container's overlay upper dir as an OCI layer tar (for commit and build).

    Overlay whiteouts (0:0 char devices) become ``.wh.<name>`` entries and opaque
    directories get ``.wh..wh..opq``. The walk is fd-based and never follows a symlink,
    so a container cannot point the writer at host files.
    """
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf:
        writer = _DiffWriter(tf)
        for dirpath, dirnames, filenames, dirfd in os.fwalk(upper, follow_symlinks=False):
            dirnames.sort()
            rel = os.path.relpath(dirpath, upper)
            rel = "" if rel == "." else rel
            for name in sorted([*dirnames, *filenames]):
                writer.entry(dirfd, rel, name)


def _write_synced(path: pathlib.Path, data: bytes) -> None:
    with open(path, "wb") as fp:
        fp.write(data)
        fp.flush()
        os.fsync(fp.fileno())
