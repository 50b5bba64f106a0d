"""LayerStore and overlay mounts: real extraction, real overlayfs, a real busybox run."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pathlib
import shutil
import subprocess
import tarfile
from collections.abc import Iterator

import pytest

from pycompose.storage.extract import LayerError
from pycompose.storage.layers import LayerStore, chain_id_of, chain_ids, write_diff_tar
from pycompose.storage.overlay import (
    FakeMounter,
    KernelMounter,
    MountCall,
    MountError,
    RootfsDirs,
    is_mountpoint,
    mount_rootfs,
    overlay_options,
    unmount_rootfs,
)
from pycompose.sysinfo import kernel_version
from tests.fixtures.images import busybox_layer_tar


def tar_of(*entries: tuple[str, bytes | None]) -> bytes:
    """A tar with regular files (bytes), directories (None) and whiteouts (by name)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tf.addfile(info)
            else:
                info.size, info.mode = len(data), 0o644
                tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def store(tmp_path: pathlib.Path) -> Iterator[LayerStore]:
    yield LayerStore(tmp_path / "layers")
    shutil.rmtree(tmp_path, ignore_errors=True)


@pytest.fixture(scope="module")
def busybox_tar() -> bytes:
    return busybox_layer_tar()


def unpack_bytes(store: LayerStore, data: bytes, parent: str | None = None,
                 diff_id: str | None = None) -> str:
    blob = gzip.compress(data, mtime=0)
    path = store.root.parent / f"blob-{sha(blob)[7:19]}"
    path.write_bytes(blob)
    with open(path, "rb") as fp:
        info = store.unpack(diff_id or sha(data), parent, fp)
    path.unlink()
    return info.chain_id


def test_chain_ids_follow_the_oci_spec() -> None:
    a, b, c = (sha(x) for x in (b"a", b"b", b"c"))
    ab = sha(f"{a} {b}".encode())
    assert chain_ids([a, b, c]) == [a, ab, sha(f"{ab} {c}".encode())]
    assert chain_id_of(a, b) == ab
    with pytest.raises(LayerError, match="invalid digest"):
        chain_ids(["sha256:../../x"])


def test_unpack_once_per_chain_id(store: LayerStore, busybox_tar: bytes) -> None:
    chain = unpack_bytes(store, busybox_tar)
    assert chain == sha(busybox_tar)
    diff = store.diff_dir(chain)
    assert (diff / "bin/busybox").is_file() and os.readlink(diff / "bin/sh") == "busybox"
    inode = (diff / "bin/busybox").stat().st_ino
    assert unpack_bytes(store, busybox_tar) == chain
    assert (store.diff_dir(chain) / "bin/busybox").stat().st_ino == inode
    info = store.info(chain)
    assert (info.diff_id, info.parent, info.size) == (sha(busybox_tar), None, len(busybox_tar))
    assert [x.chain_id for x in store.list()] == [chain]
    assert os.listdir(store.root / "tmp") == []


def test_diff_id_mismatch_leaves_nothing(store: LayerStore) -> None:
    data = tar_of(("f", b"x"))
    with pytest.raises(LayerError, match="diff_id mismatch"):
        unpack_bytes(store, data, diff_id=sha(b"something else"))
    assert not store.has(sha(b"something else"))
    assert os.listdir(store.root / "tmp") == []
    assert store.list() == []


def test_parent_must_exist_and_delete(store: LayerStore) -> None:
    base = unpack_bytes(store, tar_of(("a", b"1")))
    with pytest.raises(LayerError, match="parent layer"):
        unpack_bytes(store, tar_of(("b", b"2")), parent=sha(b"nope"))
    top = unpack_bytes(store, tar_of(("b", b"2")), parent=base)
    assert top == chain_id_of(base, sha(tar_of(("b", b"2"))))
    assert store.rootfs_lowerdirs([base, top]) == [str(store.diff_dir(top)),
                                                   str(store.diff_dir(base))]
    store.delete(top)
    assert not store.has(top) and store.has(base)
    with pytest.raises(LayerError):
        store.delete(top)


def test_overlay_options_and_fake_mounter(tmp_path: pathlib.Path) -> None:
    assert overlay_options(["/a", "/b"], "/u", "/w") == "lowerdir=/a:/b,upperdir=/u,workdir=/w"
    assert overlay_options(["/a"], None, None) == "lowerdir=/a"
    with pytest.raises(MountError, match="cannot be used"):
        overlay_options(["/a:b"], None, None)
    with pytest.raises(MountError, match="together"):
        overlay_options(["/a"], "/u", None)
    assert overlay_options(["/a"], "/u", "/w", volatile=True).endswith(",workdir=/w,volatile")
    assert kernel_version("6.18.44-fc") == (6, 18) and kernel_version("6.8-rc3") == (6, 8)
    assert kernel_version("5.10.0-28-amd64") >= (5, 10)
    assert kernel_version("5.4.0-150-generic") < (5, 10)  # Ubuntu 20.04: no volatile there
    assert kernel_version("weird") == (0, 0)
    with pytest.raises(MountError, match="needs an upperdir"):
        overlay_options(["/a"], None, None, volatile=True)
    fake = FakeMounter()
    fake.mount_overlay(["/l1"], "/u", "/w", str(tmp_path))
    fake.unmount(str(tmp_path))
    assert fake.calls == [MountCall("mount_overlay", str(tmp_path), ("/l1",), "/u", "/w"),
                          MountCall("unmount", str(tmp_path))]
    with pytest.raises(MountError):
        fake.unmount(str(tmp_path))
    with pytest.raises(MountError):
        fake.mount_overlay(["/l1"], None, None, str(tmp_path / "missing"))


@pytest.fixture
def mounts() -> Iterator[list[str]]:
    """Targets to unmount after the test, whatever happened."""
    targets: list[str] = []
    yield targets
    for target in reversed(targets):
        if is_mountpoint(target):
            KernelMounter().unmount(target, detach=True)


def rootfs_dirs(base: pathlib.Path) -> tuple[str, str, str]:
    for name in ("upper", "work", "merged"):
        (base / name).mkdir()
    return str(base / "upper"), str(base / "work"), str(base / "merged")


@pytest.mark.root
def test_busybox_runs_on_overlay(store: LayerStore, busybox_tar: bytes,
                                 mounts: list[str]) -> None:
    chain = unpack_bytes(store, busybox_tar)
    upper, work, merged = rootfs_dirs(store.root.parent)
    mounter = KernelMounter()
    mounter.mount_overlay(store.rootfs_lowerdirs([chain]), upper, work, merged)
    mounts.append(merged)
    assert is_mountpoint(merged)
    out = subprocess.run(["chroot", merged, "/bin/busybox", "echo", "hi"],
                         capture_output=True, text=True, check=True, timeout=30)
    assert out.stdout == "hi\n"
    subprocess.run(["chroot", merged, "/bin/sh", "-c", "echo data > /tmp/new; rm /etc/group"],
                   check=True, timeout=30)
    assert pathlib.Path(upper, "tmp/new").read_text() == "data\n"
    assert (store.diff_dir(chain) / "etc/group").exists()  # lower layer untouched
    mounter.unmount(merged)
    assert not is_mountpoint(merged)


@pytest.mark.root
def test_whiteouts_and_opaque_dirs_hide_lower_files(store: LayerStore,
                                                    mounts: list[str]) -> None:
    base = unpack_bytes(store, tar_of(("etc", None), ("etc/motd", b"old"), ("etc/keep", b"k"),
                                      ("data", None), ("data/old", b"o")))
    top = unpack_bytes(store, tar_of(("etc/.wh.motd", b""), ("data", None),
                                     ("data/.wh..wh..opq", b""), ("data/new", b"n")),
                       parent=base)
    upper, work, merged = rootfs_dirs(store.root.parent)
    KernelMounter().mount_overlay(store.rootfs_lowerdirs([base, top]), upper, work, merged)
    mounts.append(merged)
    root = pathlib.Path(merged)
    assert sorted(os.listdir(root / "etc")) == ["keep"]
    assert sorted(os.listdir(root / "data")) == ["new"]
    KernelMounter().unmount(merged)


@pytest.mark.root
def test_many_layers_exceed_option_page(store: LayerStore, mounts: list[str]) -> None:
    chain: list[str] = []
    for i in range(70):
        chain.append(unpack_bytes(store, tar_of((f"f{i}", str(i).encode())),
                                  parent=chain[-1] if chain else None))
    lower = store.rootfs_lowerdirs(chain)
    assert len(overlay_options(lower, None, None)) > 4096
    upper, work, merged = rootfs_dirs(store.root.parent)
    KernelMounter().mount_overlay(lower, upper, work, merged)
    mounts.append(merged)
    assert sorted(os.listdir(merged)) == sorted(f"f{i}" for i in range(70))
    assert pathlib.Path(merged, "f69").read_text() == "69"
    KernelMounter().unmount(merged)
    assert not is_mountpoint(merged)


@pytest.mark.root
def test_unmount_errors_are_clear(tmp_path: pathlib.Path) -> None:
    with pytest.raises(MountError, match="unmount of"):
        KernelMounter().unmount(str(tmp_path))


@pytest.mark.root
def test_upper_dir_to_layer_tar_round_trip(store: LayerStore, busybox_tar: bytes,
                                           mounts: list[str]) -> None:
    base = unpack_bytes(store, busybox_tar)
    upper, work, merged = rootfs_dirs(store.root.parent)
    mounter = KernelMounter()
    mounter.mount_overlay(store.rootfs_lowerdirs([base]), upper, work, merged)
    mounts.append(merged)
    m = pathlib.Path(merged)
    (m / "tmp/new").write_text("new\n")
    (m / "bin/ls").unlink()  # -> whiteout
    shutil.rmtree(m / "etc")  # -> opaque directory
    (m / "etc").mkdir()
    (m / "etc/hostname").write_text("box\n")
    os.link(m / "bin/busybox", m / "bin/bb2")
    os.symlink("/etc/passwd", m / "tmp/link")
    mounter.unmount(merged)
    diff = io.BytesIO()
    write_diff_tar(pathlib.Path(upper), diff)
    with tarfile.open(fileobj=io.BytesIO(diff.getvalue())) as tf:
        members = {x.name: x for x in tf.getmembers()}
    assert "bin/.wh.ls" in members and "etc/.wh..wh..opq" in members
    assert members["bin/busybox"].islnk() and members["bin/busybox"].linkname == "bin/bb2"
    assert members["tmp/link"].issym() and members["tmp/link"].linkname == "/etc/passwd"
    assert "etc/passwd" not in members
    top = unpack_bytes(store, diff.getvalue(), parent=base)
    view = store.root.parent / "view"
    view.mkdir()
    mounter.mount_overlay(store.rootfs_lowerdirs([base, top]), None, None, str(view))
    mounts.append(str(view))
    assert not (view / "bin/ls").exists() and (view / "bin/sh").is_symlink()
    assert sorted(os.listdir(view / "etc")) == ["hostname"]
    assert (view / "tmp/new").read_text() == "new\n"
    assert (view / "bin/bb2").read_bytes() == (view / "bin/busybox").read_bytes()
    mounter.unmount(str(view))


def test_rootfs_helpers_with_fake(tmp_path: pathlib.Path) -> None:
    fake = FakeMounter()
    dirs = mount_rootfs(fake, ["/l2", "/l1"], tmp_path / "c1")
    assert dirs == RootfsDirs.under(tmp_path / "c1") and dirs.work.is_dir()
    mount_rootfs(fake, ["/l2", "/l1"], tmp_path / "c1")  # already mounted: no second mount
    unmount_rootfs(fake, tmp_path / "c1")
    unmount_rootfs(fake, tmp_path / "c1")  # not mounted: nothing to do
    assert [c.op for c in fake.calls] == ["mount_overlay", "unmount"]
    assert fake.calls[0] == MountCall("mount_overlay", str(dirs.merged), ("/l2", "/l1"),
                                      str(dirs.upper), str(dirs.work))


def test_diff_tar_never_follows_symlinks(tmp_path: pathlib.Path) -> None:
    sentinel = tmp_path / "host"
    sentinel.mkdir()
    (sentinel / "secret").write_text("host data")
    upper = tmp_path / "upper"
    (upper / "d").mkdir(parents=True)
    os.symlink(str(sentinel), upper / "d/evil-dir")
    os.symlink(str(sentinel / "secret"), upper / "evil-file")
    out = io.BytesIO()
    write_diff_tar(upper, out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tf:
        members = {m.name: m for m in tf.getmembers()}
    assert sorted(members) == ["d", "d/evil-dir", "evil-file"]
    assert all(m.issym() or m.isdir() for m in members.values())
    assert b"host data" not in out.getvalue()
