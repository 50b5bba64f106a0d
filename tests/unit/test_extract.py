"""Safe layer extraction: normal entries, whiteouts, and the archive breakout cases."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pathlib
import shutil
import stat
import struct
import subprocess
import tarfile
from collections.abc import Iterator

import pytest

from pycompose.storage.extract import (
    OPAQUE_XATTR,
    LayerError,
    extract_layer,
    extract_tar,
    split_path,
)

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="ownership, whiteouts and xattrs need root")


def entry(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", *, mode: int = 0o644,
          link: str = "", uid: int = 0, gid: int = 0, mtime: int = 1_000_000,
          pax: dict[str, str] | None = None,
          dev: tuple[int, int] = (0, 0)) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.uid, info.gid = uid, gid
    info.mtime = mtime
    info.linkname = link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    info.devmajor, info.devminor = dev
    if pax:
        info.pax_headers = pax
    return info, data


def make_tar(*entries: tuple[tarfile.TarInfo, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT,
                      errors="surrogateescape") as tf:
        for info, data in entries:
            tf.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


def snapshot(root: pathlib.Path) -> dict[str, tuple[object, ...]]:
    out: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames, "."]:
            p = pathlib.Path(dirpath, name)
            st = p.lstat()
            content: object = None
            if stat.S_ISREG(st.st_mode):
                content = p.read_bytes()
            elif stat.S_ISLNK(st.st_mode):
                content = os.readlink(p)
            out[str(p)] = (st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns, content)
    return out


@pytest.fixture
def area(tmp_path: pathlib.Path) -> Iterator[tuple[pathlib.Path, pathlib.Path]]:
    """A layer dir and a sentinel dir beside it that no extraction may change."""
    dest = tmp_path / "layer"
    dest.mkdir()
    sentinel = tmp_path / "sentinel"
    sentinel.mkdir()
    (sentinel / "secret").write_bytes(b"keep me")
    os.chmod(sentinel / "secret", 0o600)
    os.utime(sentinel / "secret", ns=(5, 5))
    os.utime(sentinel, ns=(7, 7))
    yield dest, sentinel
    shutil.rmtree(tmp_path, ignore_errors=True)


def extract(data: bytes, dest: pathlib.Path, real_root: bool = ROOT) -> object:
    return extract_tar(io.BytesIO(data), dest, real_root=real_root)


def test_split_path() -> None:
    assert split_path("./a//b/./c") == ("a", "b", "c")
    assert split_path("/etc/passwd") == ("etc", "passwd")
    assert split_path("./") == ()
    with pytest.raises(LayerError, match=r"'\.\.' component"):
        split_path("a/../../etc")


@needs_root
def test_regular_entries_and_metadata(area: tuple[pathlib.Path, pathlib.Path]) -> None:
    dest, _ = area
    # A VFS_CAP_REVISION_2 blob granting cap_net_bind_service (effective), as setcap writes.
    cap_raw = struct.pack("<5I", 0x02000001, 1 << 10, 0, 0, 0)
    cap = cap_raw.decode("utf-8", "surrogateescape")
    data = make_tar(
        entry("./", tarfile.DIRTYPE, mode=0o755, mtime=42),
        entry("bin", tarfile.DIRTYPE, mode=0o750, uid=3, gid=4, mtime=100),
        entry("bin/tool", data=b"#!x\n", mode=0o4755, uid=5, gid=6, mtime=200,
              pax={"SCHILY.xattr.security.capability": cap, "SCHILY.xattr.user.note": "hi"}),
        entry("bin/alias", tarfile.SYMTYPE, link="tool", uid=7, gid=8, mtime=300),
        entry("bin/hard", tarfile.LNKTYPE, link="bin/tool"),
        entry("run/fifo", tarfile.FIFOTYPE, mode=0o640, mtime=400),
        entry("dev/null", tarfile.CHRTYPE, mode=0o666, dev=(1, 3)),
    )
    report = extract_tar(io.BytesIO(data), dest, real_root=True)
    assert report.entries == 7
    assert report.diff_id == "sha256:" + hashlib.sha256(data).hexdigest()
    assert report.size == len(data)
    tool = (dest / "bin/tool").lstat()
    assert stat.S_IMODE(tool.st_mode) == 0o4755
    assert (tool.st_uid, tool.st_gid, tool.st_mtime_ns) == (5, 6, 200 * 10**9)
    assert os.getxattr(dest / "bin/tool", "security.capability") == cap_raw
    assert os.getxattr(dest / "bin/tool", "user.note") == b"hi"
    assert os.readlink(dest / "bin/alias") == "tool"
    alias = (dest / "bin/alias").lstat()
    assert (alias.st_uid, alias.st_gid, alias.st_mtime_ns) == (7, 8, 300 * 10**9)
    assert (dest / "bin/hard").stat().st_ino == tool.st_ino
    bindir = (dest / "bin").stat()
    assert (stat.S_IMODE(bindir.st_mode), bindir.st_uid, bindir.st_mtime_ns) == (
        0o750, 3, 100 * 10**9)
    assert stat.S_ISFIFO((dest / "run/fifo").lstat().st_mode)
    assert stat.S_IMODE((dest / "run/fifo").lstat().st_mode) == 0o640
    null = (dest / "dev/null").lstat()
    assert stat.S_ISCHR(null.st_mode) and os.major(null.st_rdev) == 1
    assert dest.stat().st_mtime_ns == 42 * 10**9


def test_devices_skipped_without_real_root(area: tuple[pathlib.Path, pathlib.Path]) -> None:
    dest, _ = area
    data = make_tar(entry("dev/sda", tarfile.BLKTYPE, dev=(8, 0)))
    report = extract_tar(io.BytesIO(data), dest, real_root=False)
    assert not (dest / "dev/sda").exists()
    assert report.skipped == [("dev/sda", "device nodes are created only as real root")]


@needs_root
def test_whiteouts_and_opaque_dirs(area: tuple[pathlib.Path, pathlib.Path]) -> None:
    dest, _ = area
    data = make_tar(
        entry("etc", tarfile.DIRTYPE, mode=0o755),
        entry("etc/.wh.motd"),
        entry("var/cache/.wh..wh..opq"),
    )
    extract(data, dest)
    wh = (dest / "etc/motd").lstat()
    assert stat.S_ISCHR(wh.st_mode) and wh.st_rdev == os.makedev(0, 0)
    assert not (dest / "etc/.wh.motd").exists()
    assert os.getxattr(dest / "var/cache", OPAQUE_XATTR) == b"y"
    assert not (dest / "var/cache/.wh..wh..opq").exists()


@pytest.mark.parametrize("name", [".wh.", "etc/.wh.", ".wh...", ".wh..", "a/.wh...",
                                  ".wh.x/y", ".wh..wh.plnk", "x/.wh..wh.aufs"])
def test_bad_whiteout_names_rejected(area: tuple[pathlib.Path, pathlib.Path],
                                     name: str) -> None:
    dest, sentinel = area
    before = snapshot(sentinel.parent)
    with pytest.raises(LayerError, match="whiteout"):
        extract(make_tar(entry(name)), dest)
    after = snapshot(sentinel.parent)
    assert {k: v for k, v in after.items() if k.startswith(str(sentinel))} == {
        k: v for k, v in before.items() if k.startswith(str(sentinel))}


def test_trusted_overlay_xattr_refused(area: tuple[pathlib.Path, pathlib.Path]) -> None:
    dest, _ = area
    data = make_tar(entry("d", tarfile.DIRTYPE, pax={"SCHILY.xattr.trusted.overlay.redirect":
                                                     "/x"}))
    with pytest.raises(LayerError, match="overlayfs xattr"):
        extract(data, dest)


def _breakout_cases(sentinel: pathlib.Path) -> dict[str, bytes]:
    rel = "../sentinel"
    return {
        "absolute symlink then write through it": make_tar(
            entry("evil", tarfile.SYMTYPE, link=str(sentinel)),
            entry("evil/secret", data=b"pwned")),
        "relative symlink then write through it": make_tar(
            entry("evil", tarfile.SYMTYPE, link="../../../../../../../" + str(sentinel)),
            entry("evil/new", data=b"pwned")),
        "relative ../ symlink then mkdir through it": make_tar(
            entry("a", tarfile.DIRTYPE),
            entry("a/up", tarfile.SYMTYPE, link="../" + rel),
            entry("a/up/sub", tarfile.DIRTYPE)),
        "hardlink to outside with ..": make_tar(
            entry("h", tarfile.LNKTYPE, link="../sentinel/secret")),
        "hardlink to absolute outside path": make_tar(
            entry("h", tarfile.LNKTYPE, link=str(sentinel / "secret"))),
        "hardlink through a symlinked dir": make_tar(
            entry("evil", tarfile.SYMTYPE, link=str(sentinel)),
            entry("h", tarfile.LNKTYPE, link="evil/secret")),
        "whiteout of ..": make_tar(entry("sub/.wh..."), ),
        "path with .. components": make_tar(entry("a/../../sentinel/secret", data=b"pwned")),
        "symlink then file through dotted path": make_tar(
            entry("evil", tarfile.SYMTYPE, link=str(sentinel)),
            entry("./evil/../evil/secret", data=b"pwned")),
        "opaque marker through a symlink": make_tar(
            entry("evil", tarfile.SYMTYPE, link=str(sentinel)),
            entry("evil/.wh..wh..opq")),
        "directory replaced by a symlink, then written through": make_tar(
            entry("a/b/f1", data=b"one"),
            entry("a/b", tarfile.SYMTYPE, link=str(sentinel)),
            entry("a/b/f2", data=b"pwned")),
        "whiteout through a symlink": make_tar(
            entry("evil", tarfile.SYMTYPE, link=str(sentinel)),
            entry("evil/.wh.secret")),
    }


@needs_root
@pytest.mark.parametrize("case", sorted(_breakout_cases(pathlib.Path("/x"))))
def test_breakout_refused(area: tuple[pathlib.Path, pathlib.Path], case: str) -> None:
    dest, sentinel = area
    data = _breakout_cases(sentinel)[case]
    before = snapshot(sentinel)
    with pytest.raises(LayerError):
        extract(data, dest)
    assert snapshot(sentinel) == before


@needs_root
def test_metadata_never_follows_symlinks(area: tuple[pathlib.Path, pathlib.Path]) -> None:
    dest, sentinel = area
    data = make_tar(
        # symlink with its own owner/time: lchown/lutimes, never the target
        entry("l", tarfile.SYMTYPE, link=str(sentinel / "secret"), uid=1234, gid=1234,
              mtime=999),
        # a directory entry whose metadata is applied at the end, then replaced by a
        # symlink to the sentinel: the deferred chmod/utime must not follow it
        entry("d", tarfile.DIRTYPE, mode=0o777, mtime=12345),
        entry("d", tarfile.SYMTYPE, link=str(sentinel)),
        # a directory entry replacing a symlink: the symlink goes, a real dir appears
        entry("s", tarfile.SYMTYPE, link=str(sentinel)),
        entry("s", tarfile.DIRTYPE, mode=0o777, uid=99, mtime=1),
        entry("s/secret", data=b"inside"),
        # a file entry replacing a symlink to an outside file
        entry("f", tarfile.SYMTYPE, link=str(sentinel / "secret")),
        entry("f", data=b"own", mode=0o777, uid=77),
    )
    before = snapshot(sentinel)
    extract(data, dest)
    assert snapshot(sentinel) == before
    assert os.readlink(dest / "l") == str(sentinel / "secret")
    assert (dest / "l").lstat().st_uid == 1234
    assert os.readlink(dest / "d") == str(sentinel)
    assert (dest / "s").is_dir() and not (dest / "s").is_symlink()
    assert (dest / "s/secret").read_bytes() == b"inside"
    assert (dest / "f").read_bytes() == b"own" and not (dest / "f").is_symlink()


def test_later_entries_replace_earlier(area: tuple[pathlib.Path, pathlib.Path]) -> None:
    dest, _ = area
    data = make_tar(
        entry("a", data=b"one"),
        entry("a", data=b"two"),
        entry("d", tarfile.DIRTYPE),
        entry("d/keep", data=b"k"),
        entry("d", tarfile.DIRTYPE, mode=0o700),
        entry("x", tarfile.DIRTYPE),
        entry("x/child", data=b"c"),
        entry("x", data=b"now a file"),
    )
    extract(data, dest)
    assert (dest / "a").read_bytes() == b"two"
    assert (dest / "d/keep").read_bytes() == b"k"
    assert stat.S_IMODE((dest / "d").stat().st_mode) == 0o700
    assert (dest / "x").read_bytes() == b"now a file"


def test_hardlink_target_must_exist(area: tuple[pathlib.Path, pathlib.Path]) -> None:
    dest, _ = area
    with pytest.raises(LayerError, match="not in the layer"):
        extract(make_tar(entry("h", tarfile.LNKTYPE, link="missing")), dest)


def test_not_a_tar(area: tuple[pathlib.Path, pathlib.Path]) -> None:
    dest, _ = area
    with pytest.raises(LayerError):
        extract(b"this is not a tar archive at all" * 40, dest)


@pytest.mark.parametrize("compress", ["none", "gzip", "zstd"])
def test_extract_layer_compressions_and_diff_id(area: tuple[pathlib.Path, pathlib.Path],
                                                compress: str) -> None:
    dest, _ = area
    raw = make_tar(entry("hello", data=b"world"))
    diff_id = "sha256:" + hashlib.sha256(raw).hexdigest()
    if compress == "gzip":
        blob = gzip.compress(raw)
    elif compress == "zstd":
        if shutil.which("zstd") is None:
            pytest.skip("zstd program not installed")
        blob = subprocess.run(["zstd", "-c", "-q"], input=raw, capture_output=True,
                              check=True).stdout
    else:
        blob = raw
    blob_path = dest.parent / "blob"
    blob_path.write_bytes(blob)
    with open(blob_path, "rb") as fp:
        report = extract_layer(fp, dest, expected_diff_id=diff_id)
    assert report.diff_id == diff_id
    assert (dest / "hello").read_bytes() == b"world"


def test_diff_id_mismatch(area: tuple[pathlib.Path, pathlib.Path]) -> None:
    dest, _ = area
    blob_path = dest.parent / "blob"
    blob_path.write_bytes(gzip.compress(make_tar(entry("hello", data=b"world"))))
    with open(blob_path, "rb") as fp, pytest.raises(LayerError, match="diff_id mismatch"):
        extract_layer(fp, dest, expected_diff_id="sha256:" + "0" * 64)


def test_corrupt_gzip(area: tuple[pathlib.Path, pathlib.Path]) -> None:
    dest, _ = area
    blob_path = dest.parent / "blob"
    blob_path.write_bytes(gzip.compress(make_tar(entry("a", data=b"x" * 5000)))[:60])
    with open(blob_path, "rb") as fp, pytest.raises(LayerError):
        extract_layer(fp, dest)


@pytest.mark.skipif(shutil.which("zstd") is None, reason="zstd program not installed")
def test_zstd_failures_are_layer_errors(area: tuple[pathlib.Path, pathlib.Path]) -> None:
    dest, _ = area
    bad_entry = make_tar(entry("a/../../x", data=b"pwned"))
    good = subprocess.run(["zstd", "-c", "-q"], input=bad_entry, capture_output=True,
                          check=True).stdout
    blob_path = dest.parent / "blob"
    for blob, pattern in ((good, r"'\.\.' component"), (good[:20] + b"\0" * 40, "zstd")):
        blob_path.write_bytes(blob)
        with open(blob_path, "rb") as fp, pytest.raises(LayerError, match=pattern):
            extract_layer(fp, dest)
    assert not (dest.parent / "x").exists()
