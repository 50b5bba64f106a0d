"""Storage on the real kernel: volume mounts, safe bind staging, copy-up, removal, secrets, and
a busybox container on runc that sees all of it.

Every test works in its own temp dir and checks that no mount below it is left.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pycompose.engine.errors import InvalidArgument
from pycompose.engine.runtime import cgroups, spec
from pycompose.storage.mounts import resolve_mounts
from pycompose.storage.safepath import KernelBinder, OpenHook, mounts_below
from pycompose.storage.secrets import file_mount
from pycompose.storage.stage import MountStager
from pycompose.storage.volumes import VolumeStore

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
]


@dataclass
class Kit:
    base: Path
    binder: KernelBinder
    volumes: VolumeStore
    stager: MountStager


def make_kit(base: Path, hook: OpenHook | None = None) -> Kit:
    binder = KernelBinder()
    volumes = VolumeStore(base / "volumes", binder)
    return Kit(base, binder, volumes, MountStager(volumes, binder, base / "mounts", hook=hook))


@pytest.fixture
def kit(tmp_path: Path) -> Iterator[Kit]:
    k = make_kit(tmp_path)
    try:
        yield k
    finally:
        left = mounts_below(str(tmp_path))
        for point in left:
            subprocess.run(["umount", "-l", point], check=False)
        assert not left, f"mounts left behind: {left}"


def fstype(path: Path) -> str:
    real = os.path.realpath(path)
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split(" ")
        if fields[4] == real:
            return fields[fields.index("-") + 1]
    return ""


def test_tmpfs_backed_volume_really_mounts(kit: Kit) -> None:
    kit.volumes.create("tv", options={"type": "tmpfs", "device": "tmpfs", "o": "size=2m,mode=0750"})
    data = kit.volumes.mount("tv", "c1")
    assert fstype(data) == "tmpfs"
    assert os.stat(data).st_mode & 0o777 == 0o750
    (data / "f").write_text("in tmpfs")
    kit.volumes.unmount("tv", "c1")
    assert fstype(data) == "" and not (data / "f").exists()
    kit.volumes.remove("tv")


def test_bind_backed_volume_really_mounts(kit: Kit) -> None:
    host = kit.base / "host"
    host.mkdir()
    (host / "hello").write_text("from host")
    kit.volumes.create("bv", options={"type": "none", "device": str(host), "o": "bind"})
    data = kit.volumes.mount("bv", "c1")
    assert (data / "hello").read_text() == "from host"
    (data / "back").write_text("x")
    assert (host / "back").exists()
    kit.volumes.unmount("bv", "c1")
    assert not (data / "hello").exists()
    kit.volumes.remove("bv")
    assert (host / "back").exists()


def test_staged_bind_mount_and_release(kit: Kit) -> None:
    host = kit.base / "src"
    host.mkdir()
    (host / "a").write_text("A")
    mounts = resolve_mounts(
        {"Binds": [f"{host}:/app:ro"]}, None, container_id="c1", volumes=kit.volumes
    )
    [ms] = kit.stager.prepare("c1", mounts)
    assert Path(ms.source, "a").read_text() == "A" and ms.read_only
    kit.stager.release("c1", mounts)
    assert not Path(ms.source).exists()


def test_symlink_swapped_before_open_cannot_redirect(tmp_path: Path) -> None:
    host = tmp_path / "share" / "app"
    host.mkdir(parents=True)
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "key").write_text("do not expose")

    def swap(path: str, depth: int) -> None:
        if path == str(tmp_path):  # the parent chain is open; "share" is next
            os.rename(tmp_path / "share", tmp_path / "share-old")
            (tmp_path / "share").symlink_to(tmp_path / "evil")
            (tmp_path / "evil").mkdir()
            (tmp_path / "evil" / "app").symlink_to(secret)

    k = make_kit(tmp_path, hook=swap)
    mounts = resolve_mounts({"Binds": [f"{host}:/app"]}, None, container_id="c1", volumes=k.volumes)
    with pytest.raises(InvalidArgument, match="symlink"):
        k.stager.prepare("c1", mounts)
    assert mounts_below(str(tmp_path)) == []


def test_symlink_swapped_after_open_mounts_the_original(tmp_path: Path) -> None:
    host = tmp_path / "app"
    host.mkdir()
    (host / "mine").write_text("original")
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "key").write_text("do not expose")

    def swap(path: str, depth: int) -> None:
        if path == str(host):
            os.rename(host, tmp_path / "app-old")
            host.symlink_to(secret)

    k = make_kit(tmp_path, hook=swap)
    mounts = resolve_mounts({"Binds": [f"{host}:/app"]}, None, container_id="c1", volumes=k.volumes)
    [ms] = k.stager.prepare("c1", mounts)
    try:
        assert sorted(os.listdir(ms.source)) == ["mine"]
    finally:
        k.stager.release("c1", mounts)
    assert mounts_below(str(tmp_path)) == []


@pytest.mark.parametrize("target", ["/proc", "/sys", "/dev", "/proc/self", "/sys/kernel"])
def test_runtime_targets_refused(kit: Kit, target: str) -> None:
    with pytest.raises(InvalidArgument, match=r"not allowed|cannot mount"):
        resolve_mounts(
            {"Binds": [f"{kit.base}:{target}"]}, None, container_id="c1", volumes=kit.volumes
        )
    with pytest.raises(InvalidArgument):
        resolve_mounts({"Tmpfs": {target: ""}}, None, container_id="c1", volumes=kit.volumes)


def test_copy_up_once_keeps_owners(kit: Kit) -> None:
    rootfs = kit.base / "rootfs"
    src = rootfs / "var" / "lib" / "app"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "f").write_text("image data")
    os.chown(src / "sub" / "f", 1234, 4321)
    os.chmod(src, 0o750)
    os.chown(src, 1234, 4321)
    mounts = resolve_mounts(
        {"Binds": ["cu:/var/lib/app"]}, None, container_id="c1", volumes=kit.volumes
    )
    kit.stager.prepare("c1", mounts, rootfs=str(rootfs))
    kit.stager.release("c1", mounts)
    data = kit.volumes.data_dir("cu")
    st = os.stat(data / "sub" / "f")
    assert (data / "sub" / "f").read_text() == "image data" and (st.st_uid, st.st_gid) == (
        1234,
        4321,
    )
    assert os.stat(data).st_mode & 0o777 == 0o750 and os.stat(data).st_uid == 1234
    (data / "sub" / "f").write_text("changed by the app")
    kit.stager.prepare("c1", mounts, rootfs=str(rootfs))
    kit.stager.release("c1", mounts)
    assert (data / "sub" / "f").read_text() == "changed by the app"


def test_remove_never_follows_symlinks_or_mounts_out(kit: Kit) -> None:
    outside = kit.base / "outside"
    outside.mkdir()
    (outside / "precious").write_text("keep me")
    kit.volumes.create("rv")
    data = kit.volumes.data_dir("rv")
    (data / "link").symlink_to(outside)
    (data / "mnt").mkdir()
    fd = os.open(outside, os.O_PATH)
    try:
        kit.binder.bind_fd(fd, str(data / "mnt"))  # something mounted inside the volume
    finally:
        os.close(fd)
    kit.volumes.remove("rv")
    assert (outside / "precious").read_text() == "keep me"
    assert not (kit.volumes.root / "rv").exists()


def test_secret_files_owner_and_mode(kit: Kit) -> None:
    files = [
        file_mount("secret", "db_pw", b"hunter2", uid=1234, gid=5678, mode=0o400),
        file_mount("config", "app.ini", b"[a]\n", uid="0", gid="50", mode=0o644),
    ]
    kit.stager.set_files("c1", files)
    specs = kit.stager.prepare("c1", [])
    st = [os.stat(s.source) for s in specs]
    assert [(s.st_uid, s.st_gid, s.st_mode & 0o7777) for s in st] == [
        (1234, 5678, 0o400),
        (0, 50, 0o644),
    ]
    assert [s.target for s in specs] == ["/run/secrets/db_pw", "/app.ini"]
    assert all(s.read_only for s in specs)
    kit.stager.release("c1")
    assert [s.source for s in kit.stager.prepare("c1", [])] == [s.source for s in specs]
    kit.stager.forget("c1")
    assert not os.path.exists(specs[0].source)


def test_fsynced_writes_survive_sigkill(kit: Kit) -> None:
    mounts = resolve_mounts(
        {"Binds": ["crash:/data"]}, None, container_id="c1", volumes=kit.volumes
    )
    [ms] = kit.stager.prepare("c1", mounts)
    writer = (
        "import os, sys\n"
        "fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)\n"
        "i = 0\n"
        "while True:\n"
        "    os.write(fd, b'record %08d\\n' % i); os.fsync(fd)\n"
        "    print(i, flush=True); i += 1\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", writer, f"{ms.source}/log"], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    last = -1
    for line in proc.stdout:
        last = int(line)
        if last >= 200:
            break
    proc.kill()
    proc.wait()
    proc.stdout.close()
    kit.stager.release("c1", mounts)
    lines = (kit.volumes.data_dir("crash") / "log").read_text().splitlines()
    assert len(lines) >= last + 1
    assert lines[: last + 1] == [f"record {i:08d}" for i in range(last + 1)]


def test_metadata_survives_a_killed_writer(kit: Kit) -> None:
    """A process creating volumes and adding users is SIGKILLed; all it reported is there."""
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from pycompose.storage.safepath import FakeBinder\n"
        "from pycompose.storage.volumes import VolumeStore\n"
        "s = VolumeStore(Path(sys.argv[1]), FakeBinder())\n"
        "i = 0\n"
        "while True:\n"
        "    s.create(f'v{i:05d}'); s.acquire(f'v{i:05d}', f'c{i}')\n"
        "    print(i, flush=True); i += 1\n"
    )
    root = kit.base / "crashvols"
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(root)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ},
    )
    assert proc.stdout is not None
    last = -1
    for line in proc.stdout:
        last = int(line)
        if last >= 60:
            break
    proc.kill()
    proc.wait()
    proc.stdout.close()
    store = VolumeStore(root, KernelBinder())
    vols = {v.name: v for v in store.list()}
    for i in range(last + 1):
        assert vols[f"v{i:05d}"].users == (f"c{i}",)
    assert not [e for e in os.listdir(root) if e.startswith(".")]


# -- a real container ------------------------------------------------------------------------


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    (root / "bin").mkdir(parents=True)
    shutil.copy2("/bin/busybox", root / "bin" / "busybox")
    for applet in ("sh", "cat", "ls", "stat", "echo", "touch", "mount", "grep"):
        os.symlink("busybox", root / "bin" / applet)
    for d in ("proc", "sys", "dev", "tmp", "etc"):
        (root / d).mkdir()
    (root / "srv" / "seed").mkdir(parents=True)
    (root / "srv" / "seed" / "from-image").write_text("seeded\n")
    return root


@pytest.mark.skipif(shutil.which("runc") is None, reason="needs runc")
def test_container_sees_all_mount_kinds(kit: Kit, rootfs: Path) -> None:
    host = kit.base / "hostdir"
    host.mkdir()
    (host / "h").write_text("host file\n")
    cid = f"st{os.urandom(5).hex()}"
    mounts = resolve_mounts(
        {"Binds": [f"{host}:/app:ro", "named:/srv/seed"], "Tmpfs": {"/scratch": "size=1m"}},
        None,
        container_id=cid,
        volumes=kit.volumes,
    )
    files = [file_mount("secret", "pw", b"s3cret", uid=1000, gid=1000, mode=0o400)]
    kit.stager.set_files(cid, files)
    specs = kit.stager.prepare(cid, mounts, rootfs=str(rootfs))
    script = (
        "cat /app/h; cat /srv/seed/from-image; touch /app/x 2>/dev/null || echo ro-ok; "
        "stat -c '%u:%g:%a' /run/secrets/pw; cat /run/secrets/pw; echo; "
        "grep ' /scratch ' /proc/mounts; echo w > /srv/seed/new"
    )
    parent = f"pycompose-storage-test-{os.getpid()}"
    config = spec.build_spec(
        spec.ContainerSpecParams(
            container_id=cid,
            rootfs=rootfs,
            args=("/bin/sh", "-c", script),
            host=cgroups.probe_host(),
            cgroup_parent=parent,
            mounts=specs,
        )
    )
    bundle = kit.base / "bundle"
    bundle.mkdir()
    (bundle / "config.json").write_text(json.dumps(config))
    runc_root = kit.base / "runc"
    try:
        out = subprocess.run(
            ["runc", "--root", str(runc_root), "run", "--bundle", str(bundle), cid],
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
    finally:
        subprocess.run(
            ["runc", "--root", str(runc_root), "delete", "--force", cid],
            capture_output=True,
            check=False,
        )
        kit.stager.forget(cid, mounts)
        for ctrl in Path("/sys/fs/cgroup").iterdir():
            d = ctrl / parent
            if d.is_dir():
                for sub in d.iterdir():
                    if sub.is_dir():
                        sub.rmdir()
                d.rmdir()
    lines = out.stdout.splitlines()
    assert out.returncode == 0, out.stderr
    assert lines[:5] == ["host file", "seeded", "ro-ok", "1000:1000:400", "s3cret"]
    assert lines[5].split()[1:3] == ["/scratch", "tmpfs"] and "size=1024k" in lines[5]
    assert (kit.volumes.data_dir("named") / "new").read_text() == "w\n"
    assert not (host / "x").exists()
