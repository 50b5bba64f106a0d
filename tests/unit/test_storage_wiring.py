"""StorageWiring with a real volume store and stager on a recording binder (no root)."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from pycompose.engine.containers.record import ContainerRecord
from pycompose.engine.containers.storage_wiring import (
    StorageWiring,
    resolved,
    tmpfs_mount_points,
)
from pycompose.engine.errors import InvalidArgument, NotFound
from pycompose.storage.mounts import ResolvedMount
from pycompose.storage.safepath import FakeBinder
from pycompose.storage.stage import MountStager
from pycompose.storage.volumes import VolumeStore


@pytest.fixture
def kit(tmp_path: Path) -> tuple[StorageWiring, FakeBinder]:
    binder = FakeBinder()
    volumes = VolumeStore(tmp_path / "volumes", binder)
    return StorageWiring(volumes, MountStager(volumes, binder, tmp_path / "mounts")), binder


def record(cid: str, host: dict[str, Any] | None = None, **config: Any) -> ContainerRecord:
    return ContainerRecord(id=cid * 64, name=cid * 3, created="", image_id="sha256:x",
                           image_name="img", config=dict(config),
                           host_config=host or {})  # fmt: skip


def no_lookup(ref: str) -> list[dict[str, Any]]:
    raise NotFound(f"No such container: {ref}")


def secret(name: str, data: bytes, **file: Any) -> dict[str, Any]:
    return {"SecretName": name, "File": file, "Data": base64.b64encode(data).decode()}


def test_create_records_mounts_and_inspect_view(kit: tuple[StorageWiring, FakeBinder],
                                                tmp_path: Path) -> None:  # fmt: skip
    wiring, _ = kit
    assert wiring.volumes is not None
    rec = record("a", {"Binds": [f"{tmp_path}:/h:ro", "named:/n"], "Tmpfs": {"/t": "size=1m"}},
                 Volumes={"/anon": {}})  # fmt: skip
    warnings = wiring.create(rec, {}, {"Volumes": {"/img": {}}}, no_lookup)
    assert warnings == []
    targets = [m.target for m in resolved(rec)]
    assert sorted(targets) == ["/anon", "/h", "/img", "/n", "/t"]
    views = {m["Destination"]: m for m in rec.mounts}
    assert views["/n"]["Name"] == "named" and views["/n"]["Source"].endswith("/named/_data")
    assert views["/h"] == {"Type": "bind", "Source": str(tmp_path), "Destination": "/h",
                           "Mode": "ro", "RW": False, "Propagation": "rprivate"}  # fmt: skip
    assert "/t" not in views  # a HostConfig.Tmpfs entry is no mount point in Docker's view
    assert list(views["/n"]) == ["Type", "Name", "Source", "Destination", "Driver", "Mode",
                                 "RW", "Propagation"]  # Docker's field order
    anonymous = {m.source for m in resolved(rec) if m.anonymous}
    assert len(anonymous) == 2
    for name in [*anonymous, "named"]:
        assert wiring.volumes.get(name).users == (rec.id,)


def test_forget_removes_only_anonymous_volumes_with_v(
    kit: tuple[StorageWiring, FakeBinder],
) -> None:
    wiring, _ = kit
    assert wiring.volumes is not None
    first = record("a", {"Binds": ["keep:/k", "/x:/x"]}, Volumes={"/anon": {}})
    second = record("b", {"Binds": ["keep:/k"]}, Volumes={"/anon": {}})
    for rec in (first, second):
        wiring.create(rec, {}, None, no_lookup)
    anon_a = next(m.source for m in resolved(first) if m.anonymous)
    assert wiring.forget(second) == []  # plain rm: its anonymous volume stays
    assert wiring.forget(first, remove_anonymous=True) == [anon_a]
    names = {v.name for v in wiring.volumes.list()}
    assert "keep" in names and anon_a not in names and len(names) == 2
    assert all(v.users == () for v in wiring.volumes.list())


def test_volumes_from_shares_without_owning(kit: tuple[StorageWiring, FakeBinder]) -> None:
    wiring, _ = kit
    assert wiring.volumes is not None
    owner = record("a", {"Binds": ["data:/data"]}, Volumes={"/anon": {}})
    wiring.create(owner, {}, None, no_lookup)
    borrower = record("b", {"VolumesFrom": ["aaa:ro"]})
    wiring.create(borrower, {}, None, lambda ref: owner.mounts if ref == "aaa" else [])
    got = {m.target: m for m in resolved(borrower)}
    assert set(got) == {"/data", "/anon"} and all(m.read_only for m in got.values())
    assert not any(m.anonymous for m in got.values())
    # Removing the borrower with -v leaves the owner's anonymous volume alone.
    assert wiring.forget(borrower, remove_anonymous=True) == []
    with pytest.raises(NotFound):
        wiring.create(record("c", {"VolumesFrom": ["zzz"]}), {}, None, no_lookup)


def test_secrets_written_and_staged(kit: tuple[StorageWiring, FakeBinder],
                                    tmp_path: Path) -> None:  # fmt: skip
    wiring, _ = kit
    rec = record("a")
    me = {"UID": str(os.getuid()), "GID": str(os.getgid())}  # chown needs root otherwise
    body = {"Secrets": [secret("pw", b"hunter2", Mode=0o400, **me)],
            "Configs": [{"ConfigName": "app", "File": me,
                         "Data": base64.b64encode(b"cfg").decode()}]}  # fmt: skip
    wiring.create(rec, body, None, no_lookup)
    assert rec.mounts == [] and rec.resolved_mounts == []
    specs = wiring.prepare(rec, tmp_path)
    by = {s.target: s for s in specs}
    assert set(by) == {"/run/secrets/pw", "/app"} and all(s.read_only for s in specs)
    assert Path(by["/run/secrets/pw"].source).read_bytes() == b"hunter2"
    assert stat.S_IMODE(os.stat(by["/run/secrets/pw"].source).st_mode) == 0o400
    wiring.release(rec)
    assert Path(by["/app"].source).exists()  # files outlive a stop
    wiring.forget(rec)
    assert not Path(by["/app"].source).exists()


def test_failed_create_undoes_everything(kit: tuple[StorageWiring, FakeBinder],
                                         tmp_path: Path) -> None:  # fmt: skip
    wiring, _ = kit
    assert wiring.volumes is not None
    rec = record("a", {"Binds": ["named:/run/secrets/pw"]}, Volumes={"/anon": {}})
    with pytest.raises(InvalidArgument, match="Duplicate mount point: /run/secrets/pw"):
        wiring.create(rec, {"Secrets": [secret("pw", b"x")]}, None, no_lookup)
    assert [(v.name, v.users) for v in wiring.volumes.list()] == [("named", ())]
    assert not (tmp_path / "mounts" / ".files" / rec.id).exists()
    with pytest.raises(InvalidArgument, match="invalid uid"):
        wiring.create(record("b", {"Binds": ["other:/o"]}),
                      {"Secrets": [secret("pw", b"x", UID="bob")]}, None, no_lookup)
    assert [v.name for v in wiring.volumes.list()] == ["named"]  # checked before anything


def test_plain_container_stages_nothing(kit: tuple[StorageWiring, FakeBinder],
                                        tmp_path: Path) -> None:  # fmt: skip
    wiring, binder = kit
    rec = record("a")
    wiring.create(rec, {}, None, no_lookup)
    assert wiring.prepare(rec, tmp_path) == ()
    wiring.release(rec)
    assert binder.calls == [] and os.listdir(tmp_path / "mounts") == []


def test_prepare_release_and_recover(kit: tuple[StorageWiring, FakeBinder],
                                     tmp_path: Path) -> None:  # fmt: skip
    wiring, binder = kit
    assert wiring.volumes is not None
    running, stopped = record("a", {"Binds": ["v1:/v"]}), record("b", {"Binds": ["v2:/v"]})
    gone = record("c", {"Binds": ["v1:/w"]})
    for rec in (running, stopped, gone):
        wiring.create(rec, {}, None, no_lookup)
        wiring.prepare(rec, tmp_path)
    assert len(binder.mounted) == 3
    # A new daemon: the gone container's record is missing, "b" stopped while none ran.
    fresh = StorageWiring(wiring.volumes, MountStager(wiring.volumes, binder,
                                                      tmp_path / "mounts"))  # fmt: skip
    fresh.recover([running, stopped], {running.id})
    assert wiring.volumes.get("v1").users == (running.id,)
    assert wiring.volumes.get("v2").users == (stopped.id,)
    assert [p for p in binder.mounted if "/mounts/" in p] == [
        str(tmp_path / "mounts" / running.id / "0")]
    fresh.release(running)
    assert binder.mounted == {}


def test_tmpfs_mode_given_to_an_existing_mount_point(tmp_path: Path) -> None:
    rootfs, outside = tmp_path / "rootfs", tmp_path / "outside"
    (rootfs / "scratch").mkdir(parents=True, mode=0o755)
    outside.mkdir(mode=0o700)
    (rootfs / "escape").symlink_to(outside)  # an absolute host path: resolved inside rootfs
    (rootfs / "up").symlink_to("../../outside")
    mounts = [ResolvedMount("tmpfs", "/scratch", options=("size=1m", "mode=1770")),
              ResolvedMount("tmpfs", "/escape", options=("mode=777",)),
              ResolvedMount("tmpfs", "/up", options=("mode=777",)),
              ResolvedMount("tmpfs", "/missing", options=("mode=777",)),
              ResolvedMount("tmpfs", "/plain")]  # fmt: skip
    tmpfs_mount_points(rootfs, mounts)
    assert stat.S_IMODE((rootfs / "scratch").stat().st_mode) == 0o1770
    assert stat.S_IMODE(outside.stat().st_mode) == 0o700
    assert not (rootfs / "missing").exists()


def test_without_storage_mounts_are_refused() -> None:
    wiring = StorageWiring()
    plain = record("a")
    assert wiring.create(plain, {}, None, no_lookup) == []
    assert wiring.prepare(plain, Path("/nonexistent")) == () and wiring.forget(plain) == []
    with pytest.raises(InvalidArgument, match=r"HostConfig\.Tmpfs, Secrets: cannot be honoured"):
        wiring.create(record("b", {"Tmpfs": {"/t": ""}}), {"Secrets": [{}]}, None, no_lookup)
    with pytest.raises(InvalidArgument, match="anonymous volumes"):
        wiring.create(record("c"), {}, {"Volumes": {"/v": {}}}, no_lookup)
