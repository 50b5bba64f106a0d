"""Safe extraction of image layer tarballs into a directory, in overlayfs form.

tarfile is used only to read headers and member data; every file is created here,
relative to directory file descriptors opened one component at a time with
``O_NOFOLLOW | O_DIRECTORY``, so no symlink (absolute or relative), hardlink, ``..``
component or metadata change can reach outside the destination. OCI whiteouts become
overlayfs whiteouts (a 0:0 character device) and opaque markers the
``trusted.overlay.opaque`` xattr, since container root filesystems are overlay mounts of
the layer directories.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import hashlib
import lzma
import os
import pathlib
import shutil
import stat
import subprocess
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from pycompose.errors import PycomposeError

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
_XATTR_PREFIX = "SCHILY.xattr."
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_CHUNK = 1 << 20
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_XZ_MAGIC = b"\xfd7zXZ"
_BZIP2_MAGIC = b"BZh"


class LayerError(PycomposeError):
    """A layer is malformed, unsafe or cannot be unpacked; the message names the entry."""


@dataclass
class ExtractReport:
    """What an extraction did: entries handled, what was skipped and why, stream digest."""

    entries: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    diff_id: str = ""
    size: int = 0


def is_real_root() -> bool:
    """True when running as uid 0 of the initial user namespace (device nodes allowed)."""
    if os.geteuid() != 0:
        return False
    try:
        with open("/proc/self/uid_map") as fp:
            fields = fp.read().split()
    except OSError:
        return False
    return fields[:3] == ["0", "0", "4294967295"]


def split_path(name: str) -> tuple[str, ...]:
    """A tar member name as path components below the root; ``..`` is refused."""
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if ".." in parts:
        raise LayerError(f"{name!r}: path has a '..' component")
    return parts


class _HashingReader:
    """Counts and hashes what tarfile reads, so the diff_id is checked while extracting."""

    def __init__(self, inner: BinaryIO) -> None:
        self._inner = inner
        self.hash = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self._inner.read(n)
        self.hash.update(data)
        self.size += len(data)
        return data

    def drain(self) -> None:
        """Read to the end (tar padding after the end-of-archive blocks counts too)."""
        while self.read(_CHUNK):
            pass


@contextlib.contextmanager
def decompressed(blob: BinaryIO, media_type: str = "") -> Iterator[BinaryIO]:
    """The uncompressed tar stream of a layer blob, by its magic bytes.

    ``blob`` must be a seekable file. zstd uses Debian's ``zstd`` program (the standard
    library has no zstd); without it, zstd layers are refused naming the media type.
    """
    head = blob.read(6)
    blob.seek(0)
    if head.startswith(_GZIP_MAGIC):
        with gzip.GzipFile(fileobj=blob, mode="rb") as gz:
            yield gz  # type: ignore[misc]
    elif head.startswith(_ZSTD_MAGIC):
        with _zstd_stream(blob, media_type) as out:
            yield out
    elif head.startswith(_XZ_MAGIC):
        with lzma.LZMAFile(blob) as xz:
            yield xz  # type: ignore[misc]
    elif head.startswith(_BZIP2_MAGIC):
        with bz2.BZ2File(blob) as bz:
            yield bz  # type: ignore[misc]
    else:
        yield blob


@contextlib.contextmanager
def _zstd_stream(blob: BinaryIO, media_type: str) -> Iterator[BinaryIO]:
    exe = shutil.which("zstd")
    if exe is None:
        raise LayerError(f"zstd-compressed layer ({media_type or 'zstd'}) needs the zstd "
                         "program (Debian package zstd), which is not installed")
    # The buffered reader may have moved the fd past what it returned: hand zstd the fd
    # positioned where the Python-level stream is.
    os.lseek(blob.fileno(), blob.tell(), os.SEEK_SET)
    proc = subprocess.Popen([exe, "-d", "-c", "-q"], stdin=blob, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout is not None
    try:
        yield proc.stdout  # type: ignore[misc]
        proc.stdout.read()
    except BaseException as exc:
        # A truncated stream may be zstd's failure, not the tar's: give zstd a moment to
        # exit with its own error; if it is still writing, its output is not wanted.
        try:
            proc.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            proc.kill()
        proc.stdout.close()
        err = proc.communicate()[1]
        if proc.returncode and proc.returncode > 0:
            raise LayerError(f"zstd decompression failed: "
                             f"{err.decode(errors='replace').strip()}") from exc
        raise
    proc.stdout.close()
    err = proc.communicate()[1]
    if proc.returncode != 0:
        raise LayerError(f"zstd decompression failed: {err.decode(errors='replace').strip()}")


def _open_child(fd: int, part: str, *, create: bool, name: str) -> int:
    """Open the subdirectory ``part`` of ``fd``; a symlink or non-directory is refused."""
    try:
        return os.open(part, _DIR_FLAGS, dir_fd=fd)
    except FileNotFoundError:
        if not create:
            raise LayerError(f"{name!r}: {part!r} does not exist in the layer") from None
        os.mkdir(part, 0o755, dir_fd=fd)
        return os.open(part, _DIR_FLAGS, dir_fd=fd)
    except OSError as err:  # ELOOP (a symlink) or ENOTDIR (a file)
        raise LayerError(f"{name!r}: path component {part!r} is a symlink or not a "
                         "directory; refusing to write through it") from err


def _open_dir(root_fd: int, parts: tuple[str, ...], *, create: bool, name: str) -> int:
    """A new fd for the directory ``parts`` below root, never following a symlink."""
    fd = os.dup(root_fd)
    try:
        for part in parts:
            new = _open_child(fd, part, create=create, name=name)
            os.close(fd)
            fd = new
        return fd
    except BaseException:
        os.close(fd)
        raise


class _DirStack:
    """Open fds of the directories on the path of the previous entry.

    Tar members come in tree order, so consecutive entries share most of their parents;
    reusing those fds saves one open per path component per entry. Only ancestors of the
    current parent are held, and entries only ever remove children of that parent, so a
    held fd never names a directory that was replaced.
    """

    def __init__(self, root_fd: int) -> None:
        self.root_fd = root_fd
        self.stack: list[tuple[str, int]] = []

    def parent(self, parts: tuple[str, ...], name: str) -> int:
        """The (borrowed) fd of directory ``parts``, created as needed."""
        common = 0
        while (common < len(self.stack) and common < len(parts)
               and self.stack[common][0] == parts[common]):
            common += 1
        self.truncate(common)
        fd = self.stack[-1][1] if self.stack else self.root_fd
        for part in parts[common:]:
            fd = _open_child(fd, part, create=True, name=name)
            self.stack.append((part, fd))
        return fd

    def truncate(self, depth: int = 0) -> None:
        """Close the fds deeper than ``depth``."""
        for _, fd in self.stack[depth:]:
            os.close(fd)
        del self.stack[depth:]


def _lstat(parent: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _clear(parent: int, name: str, *, keep_dir: bool = False) -> bool:
    """Remove whatever is at ``name``; returns True if a directory was kept."""
    st = _lstat(parent, name)
    if st is None:
        return False
    if stat.S_ISDIR(st.st_mode):
        if keep_dir:
            return True
        shutil.rmtree(name, dir_fd=parent)  # fd-based: does not follow symlinks
    else:
        os.unlink(name, dir_fd=parent)
    return False


def _mtime_ns(member: tarfile.TarInfo) -> int:
    return round(float(member.mtime) * 1_000_000_000)


class _Extractor:
    """One extraction run into an open destination directory fd."""

    def __init__(self, root_fd: int, real_root: bool, report: ExtractReport) -> None:
        self.root_fd = root_fd
        self.real_root = real_root
        self.chown = os.geteuid() == 0
        self.report = report
        self.deferred_dirs: list[tuple[tuple[str, ...], int, int]] = []
        self.dirs = _DirStack(root_fd)

    def skip(self, name: str, reason: str) -> None:
        self.report.skipped.append((name, reason))

    def entry(self, tf: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        parts = split_path(member.name)
        for part in parts[:-1]:
            if part.startswith(WHITEOUT_PREFIX):
                raise LayerError(f"{member.name!r}: whiteout name used as a directory")
        if not parts:
            if not member.isdir():
                raise LayerError(f"{member.name!r}: the layer root must be a directory")
            self.deferred_dirs.append(((), member.mode, _mtime_ns(member)))
            self.owner_and_xattrs(self.root_fd, member)
            return
        parent = self.dirs.parent(parts[:-1], member.name)
        if parts[-1].startswith(WHITEOUT_PREFIX):
            self.whiteout(member, parent, parts[-1])
        else:
            self.create(tf, member, parent, parts)

    def create(self, tf: tarfile.TarFile, member: tarfile.TarInfo, parent: int,
               parts: tuple[str, ...]) -> None:
        leaf = parts[-1]
        if member.isdir():
            if not _clear(parent, leaf, keep_dir=True):
                os.mkdir(leaf, 0o700, dir_fd=parent)
            fd = _open_child(parent, leaf, create=False, name=member.name)
            try:
                self.owner_and_xattrs(fd, member)
            finally:
                os.close(fd)
            self.deferred_dirs.append((parts, member.mode, _mtime_ns(member)))
        elif member.isreg():
            _clear(parent, leaf)
            self.regular(tf, member, parent, leaf)
        elif member.issym():
            _clear(parent, leaf)
            os.symlink(member.linkname, leaf, dir_fd=parent)
            self.node_meta(member, parent, leaf, chmod=False)
        elif member.islnk():
            self.hardlink(member, parent, leaf)
        elif member.ischr() or member.isblk():
            if not self.real_root:
                self.skip(member.name, "device nodes are created only as real root")
                return
            kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
            _clear(parent, leaf)
            os.mknod(leaf, kind | 0o600, os.makedev(member.devmajor, member.devminor),
                     dir_fd=parent)
            self.node_meta(member, parent, leaf, chmod=True)
        elif member.isfifo():
            _clear(parent, leaf)
            os.mkfifo(leaf, 0o600, dir_fd=parent)
            self.node_meta(member, parent, leaf, chmod=True)
        else:
            raise LayerError(f"{member.name!r}: unsupported tar entry type {member.type!r}")

    def regular(self, tf: tarfile.TarFile, member: tarfile.TarInfo, parent: int,
                leaf: str) -> None:
        src = tf.extractfile(member)
        fd = os.open(leaf, _FILE_FLAGS, 0o600, dir_fd=parent)
        try:
            if src is not None:
                while chunk := src.read(_CHUNK):
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(fd, view):]
            if self.chown:
                os.fchown(fd, member.uid, member.gid)
            # chmod after chown: chown clears setuid/setgid bits.
            os.fchmod(fd, stat.S_IMODE(member.mode))
            self.xattrs(member, fd)  # after chown, which drops security.capability
            os.utime(fd, ns=(_mtime_ns(member), _mtime_ns(member)))
        finally:
            os.close(fd)

    def hardlink(self, member: tarfile.TarInfo, parent: int, leaf: str) -> None:
        target = split_path(member.linkname)
        if not target:
            raise LayerError(f"{member.name!r}: hardlink to the layer root")
        if target == split_path(member.name):
            raise LayerError(f"{member.name!r}: hardlink to itself")
        tparent = _open_dir(self.root_fd, target[:-1], create=False, name=member.linkname)
        try:
            st = _lstat(tparent, target[-1])
            if st is None:
                raise LayerError(f"{member.name!r}: hardlink target {member.linkname!r} "
                                 "is not in the layer")
            if stat.S_ISDIR(st.st_mode):
                raise LayerError(f"{member.name!r}: hardlink to a directory")
            _clear(parent, leaf)
            # follow_symlinks=False: a link to a symlink links the symlink itself.
            os.link(target[-1], leaf, src_dir_fd=tparent, dst_dir_fd=parent,
                    follow_symlinks=False)
        finally:
            os.close(tparent)

    def node_meta(self, member: tarfile.TarInfo, parent: int, leaf: str, *,
                  chmod: bool) -> None:
        """Owner, mode and times of a symlink, device or fifo, never following it."""
        if self.chown:
            os.chown(leaf, member.uid, member.gid, dir_fd=parent, follow_symlinks=False)
        if chmod:
            # No fchmodat(AT_SYMLINK_NOFOLLOW) here: chmod via an O_PATH fd of the node
            # we just created (not a symlink, and O_NOFOLLOW would refuse one).
            fd = os.open(leaf, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
            try:
                os.chmod(f"/proc/self/fd/{fd}", stat.S_IMODE(member.mode))
            finally:
                os.close(fd)
        if any(k.startswith(_XATTR_PREFIX) for k in member.pax_headers):
            self.skip(member.name, "xattrs on symlinks and special files are not applied")
        ns = _mtime_ns(member)
        os.utime(leaf, ns=(ns, ns), dir_fd=parent, follow_symlinks=False)

    def owner_and_xattrs(self, fd: int, member: tarfile.TarInfo) -> None:
        """Owner and xattrs of a directory (mode and times come last, in finish_dirs)."""
        if self.chown:
            os.fchown(fd, member.uid, member.gid)
        self.xattrs(member, fd)

    def xattrs(self, member: tarfile.TarInfo, fd: int) -> None:
        for key, value in member.pax_headers.items():
            if not key.startswith(_XATTR_PREFIX):
                continue
            attr = key[len(_XATTR_PREFIX):]
            if attr.startswith("trusted.overlay."):
                raise LayerError(f"{member.name!r}: layer sets overlayfs xattr {attr!r}")
            if not (attr.startswith("user.") or attr == "security.capability"):
                self.skip(member.name, f"xattr {attr!r} is not applied")
                continue
            os.setxattr(fd, attr, value.encode("utf-8", "surrogateescape"))

    def whiteout(self, member: tarfile.TarInfo, parent: int, leaf: str) -> None:
        """``.wh.<name>`` becomes a 0:0 char device, ``.wh..wh..opq`` an opaque xattr."""
        if leaf == OPAQUE_MARKER:
            os.setxattr(parent, OPAQUE_XATTR, b"y")
            return
        hidden = leaf[len(WHITEOUT_PREFIX):]
        if hidden in ("", ".", "..") or hidden.startswith(WHITEOUT_PREFIX):
            raise LayerError(f"{member.name!r}: invalid whiteout name")
        _clear(parent, hidden)
        try:
            os.mknod(hidden, stat.S_IFCHR | 0o000, os.makedev(0, 0), dir_fd=parent)
        except PermissionError as err:
            raise LayerError(f"{member.name!r}: creating an overlay whiteout needs "
                             "CAP_MKNOD") from err

    def finish_dirs(self) -> None:
        """Apply directory modes and times last (creating children changes mtimes)."""
        for parts, mode, ns in sorted(self.deferred_dirs, key=lambda d: -len(d[0])):
            try:
                fd = _open_dir(self.root_fd, parts, create=False, name="/".join(parts))
            except LayerError:
                continue  # a later entry replaced the directory: nothing to apply
            try:
                os.fchmod(fd, stat.S_IMODE(mode))
                os.utime(fd, ns=(ns, ns))
            finally:
                os.close(fd)


def extract_tar(stream: BinaryIO, dest: pathlib.Path, *,
                real_root: bool | None = None) -> ExtractReport:
    """Unpack an uncompressed layer tar stream into the existing directory ``dest``.

    Returns the report including the sha256 (``diff_id``) and size of the whole stream.
    Raises LayerError for unsafe or malformed entries; ``dest`` is then left partial
    (callers extract into a temp dir and remove it).
    """
    reader = _HashingReader(stream)
    report = ExtractReport()
    root_fd = os.open(dest, _DIR_FLAGS)
    try:
        ex = _Extractor(root_fd, is_real_root() if real_root is None else real_root, report)
        try:
            tf = tarfile.open(  # noqa: SIM115 - closed by the with below
                fileobj=reader, mode="r|", errors="surrogateescape")  # type: ignore[call-overload]
        except tarfile.TarError as err:
            raise LayerError(f"layer is not a tar archive: {err}") from err
        try:
            with tf:
                _walk(tf, ex)
        finally:
            ex.dirs.truncate()
        ex.finish_dirs()
        reader.drain()
    finally:
        os.close(root_fd)
    report.diff_id = "sha256:" + reader.hash.hexdigest()
    report.size = reader.size
    return report


def _walk(tf: tarfile.TarFile, ex: _Extractor) -> None:
    while True:
        try:
            member = tf.next()
        except (tarfile.TarError, EOFError, OSError) as err:
            raise LayerError(f"corrupt layer tar: {err}") from err
        if member is None:
            return
        try:
            ex.entry(tf, member)
        except OSError as err:
            raise LayerError(f"{member.name!r}: {err.strerror or err}") from err
        ex.report.entries += 1
        tf.members.clear()  # type: ignore[attr-defined]  # stream mode: bounded memory


def extract_layer(blob: BinaryIO, dest: pathlib.Path, *, media_type: str = "",
                  expected_diff_id: str | None = None,
                  real_root: bool | None = None) -> ExtractReport:
    """Decompress and unpack a layer blob into ``dest``, checking its diff_id if given."""
    try:
        with decompressed(blob, media_type) as stream:
            report = extract_tar(stream, dest, real_root=real_root)
    except (OSError, EOFError, lzma.LZMAError) as err:
        raise LayerError(f"cannot decompress layer: {err}") from err
    if expected_diff_id is not None and report.diff_id != expected_diff_id:
        raise LayerError(f"layer diff_id mismatch: expected {expected_diff_id}, "
                         f"got {report.diff_id}")
    return report
