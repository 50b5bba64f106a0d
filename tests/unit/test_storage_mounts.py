"""Mount resolution (Binds, Mounts, Tmpfs, Volumes, VolumesFrom) and staging with fakes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from pycompose.engine.errors import InvalidArgument
from pycompose.storage import mounts as mounts_mod
from pycompose.storage.mounts import (
    ResolvedMount,
    check_target,
    parse_bind,
    release_volumes,
    resolve_mounts,
    shm_size,
)
from pycompose.storage.safepath import FakeBinder
from pycompose.storage.stage import MountStager
from pycompose.storage.volumes import VolumeStore


@pytest.fixture
def store(tmp_path: Path) -> VolumeStore:
    return VolumeStore(tmp_path / "volumes", FakeBinder())


def resolve(store: VolumeStore, host: dict[str, Any], **kw: Any) -> list[ResolvedMount]:
    return resolve_mounts(host, kw.pop("image", None), container_id="c1", volumes=store, **kw)


@pytest.mark.parametrize("target", ["/proc", "/sys", "/dev", "/proc/sys", "/sys/fs/x", "/", "x"])
def test_forbidden_targets(target: str) -> None:
    with pytest.raises(InvalidArgument):
        check_target(target)


def test_target_normalised_and_dev_children_allowed() -> None:
    assert check_target("/app//data/") == "/app/data"
    assert check_target("/dev/log") == "/dev/log"


def test_short_bind(tmp_path: Path) -> None:
    warnings: list[str] = []
    m = parse_bind(f"{tmp_path}:/app:ro,rshared", warnings)
    assert (m.type, m.source, m.target, m.read_only, m.propagation) == (
        "bind",
        str(tmp_path),
        "/app",
        True,
        "rshared",
    )
    assert m.create_source and warnings == []


def test_short_bind_keeps_the_path_as_named(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert parse_bind(f"{tmp_path}//link/:/app", []).source == str(tmp_path / "link")


def test_selinux_label_notice(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(mounts_mod, "SELINUX_ENFORCE", str(tmp_path / "absent"))
    warnings: list[str] = []
    parse_bind(f"{tmp_path}:/app:z", warnings)
    assert warnings and "SELinux is not enabled" in warnings[0]
    (tmp_path / "present").write_text("1")
    monkeypatch.setattr(mounts_mod, "SELINUX_ENFORCE", str(tmp_path / "present"))
    with pytest.raises(InvalidArgument, match="relabelling"):
        parse_bind(f"{tmp_path}:/app:Z", [])


@pytest.mark.parametrize(
    "spec", ["/a", "/a:/b:bogus", "/a:/b:ro,rw", "/a:/b:shared,slave", "vol:/b:rshared",
             "/a:/b:nocopy", "/a:/b:c:d", "./rel:/b", ":/b"])  # fmt: skip
def test_bad_binds(spec: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_bind(spec, [])


def test_named_volume_created_and_acquired(store: VolumeStore) -> None:
    [m] = resolve(store, {"Binds": ["myvol2:/app:nocopy"]})
    assert (m.type, m.source, m.copy_up) == ("volume", "myvol2", False)
    assert store.get("myvol2").users == ("c1",)
    assert m.inspect(store)["Source"] == str(store.data_dir("myvol2"))


def test_mount_bind_missing_source_is_an_error(store: VolumeStore, tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    with pytest.raises(InvalidArgument, match="bind source path does not exist"):
        resolve(store, {"Mounts": [{"Type": "bind", "Source": str(missing), "Target": "/app"}]})
    [m] = resolve(
        store,
        {
            "Mounts": [
                {
                    "Type": "bind",
                    "Source": str(missing),
                    "Target": "/a",
                    "BindOptions": {"CreateMountpoint": True},
                }
            ]
        },
    )
    assert m.create_source


def test_mount_fields_checked(store: VolumeStore, tmp_path: Path) -> None:
    base = {"Type": "bind", "Source": str(tmp_path), "Target": "/app"}
    with pytest.raises(InvalidArgument, match=r"unknown field HostConfig\.Mounts\.Bogus"):
        resolve(store, {"Mounts": [{**base, "Bogus": 1}]})
    with pytest.raises(InvalidArgument, match="ReadOnlyNonRecursive"):
        resolve(store, {"Mounts": [{**base, "BindOptions": {"ReadOnlyNonRecursive": True}}]})
    with pytest.raises(InvalidArgument, match="not supported"):
        resolve(store, {"Mounts": [{**base, "Type": "npipe"}]})


def test_mount_volume_with_options_and_subpath(store: VolumeStore) -> None:
    [m] = resolve(
        store,
        {
            "Mounts": [
                {
                    "Type": "volume",
                    "Source": "tv",
                    "Target": "/t",
                    "VolumeOptions": {
                        "Subpath": "a/b",
                        "Labels": {"x": "y"},
                        "DriverConfig": {"Name": "local", "Options": {"type": "tmpfs"}},
                    },
                }
            ]
        },
    )
    assert m.subpath == "a/b" and store.get("tv").labels == {"x": "y"}
    assert store.get("tv").options == {"type": "tmpfs"}
    with pytest.raises(InvalidArgument, match="subpath"):
        resolve(
            store,
            {
                "Mounts": [
                    {
                        "Type": "volume",
                        "Source": "tv",
                        "Target": "/u",
                        "VolumeOptions": {"Subpath": "../x"},
                    }
                ]
            },
        )


def test_tmpfs_forms(store: VolumeStore) -> None:
    got = resolve(
        store,
        {
            "Tmpfs": {"/run": "rw,size=64m,mode=1777"},
            "Mounts": [
                {
                    "Type": "tmpfs",
                    "Target": "/app",
                    "TmpfsOptions": {"SizeBytes": 1048576, "Mode": 0o700},
                }
            ],
        },
    )
    by = {m.target: m for m in got}
    assert by["/run"].options == ("size=64m", "mode=1777")
    assert by["/app"].options == ("size=1048576", "mode=700")
    with pytest.raises(InvalidArgument, match="unsupported option"):
        resolve(store, {"Tmpfs": {"/x": "uid=0,bogus"}})


def test_anonymous_volumes_from_image_and_config(store: VolumeStore, tmp_path: Path) -> None:
    got = resolve(
        store,
        {"Binds": [f"{tmp_path}:/data"]},
        image={"Volumes": {"/data": {}, "/var/lib/db": {}}},
        container_volumes={"/cache": {}},
    )
    kinds = {m.target: (m.type, m.anonymous) for m in got}
    assert kinds == {
        "/data": ("bind", False),
        "/var/lib/db": ("volume", True),
        "/cache": ("volume", True),
    }
    anon = [m.source for m in got if m.anonymous]
    assert all(store.get(n).users == ("c1",) for n in anon)
    removed = release_volumes(got, "c1", store, remove_anonymous=True)
    assert sorted(removed) == sorted(anon)
    assert store.list() == []


def test_release_keeps_named_volumes(store: VolumeStore) -> None:
    got = resolve(store, {"Binds": ["keep:/k"]}, image={"Volumes": {"/anon": {}}})
    release_volumes(got, "c1", store, remove_anonymous=False)
    assert len(store.list()) == 2 and all(not v.users for v in store.list())


def test_duplicate_targets(store: VolumeStore, tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="Duplicate mount point: /a"):
        resolve(store, {"Binds": [f"{tmp_path}:/a", "vv:/a"]})
    assert not store.exists("vv") or not store.get("vv").users


def test_error_undoes_acquired_volumes(store: VolumeStore) -> None:
    with pytest.raises(InvalidArgument):
        resolve(store, {"Binds": ["good:/a"], "Tmpfs": {"/proc": ""}})
    with pytest.raises(InvalidArgument):
        resolve(store, {"Binds": ["good:/a"], "VolumesFrom": ["other"]})
    assert not store.exists("good") or store.get("good").users == ()


def test_order_parents_first(store: VolumeStore) -> None:
    got = resolve(store, {"Tmpfs": {"/a/b/c": "", "/a": "", "/a/b": ""}})
    assert [m.target for m in got] == ["/a", "/a/b", "/a/b/c"]


def test_volumes_from(store: VolumeStore, tmp_path: Path) -> None:
    store.create("shared")
    other = [
        {"Type": "volume", "Name": "shared", "Destination": "/s", "RW": True, "Mode": ""},
        {"Type": "bind", "Source": str(tmp_path), "Destination": "/b", "RW": False},
        {"Type": "tmpfs", "Destination": "/t", "RW": True},
    ]
    got = resolve(
        store,
        {"VolumesFrom": ["db"], "Binds": ["mine:/b"]},
        volumes_from=lambda name: other if name == "db" else [],
    )
    by = {m.target: m for m in got}
    assert set(by) == {"/s", "/b"} and by["/b"].source == "mine"
    assert store.get("shared").users == ("c1",)
    got = resolve_mounts(
        {"VolumesFrom": ["db:ro"]},
        None,
        container_id="c2",
        volumes=store,
        volumes_from=lambda name: other,
    )
    assert all(m.read_only for m in got)


def test_shm_size() -> None:
    assert shm_size({"ShmSize": 1 << 20}) == 1 << 20
    with pytest.raises(InvalidArgument):
        shm_size({"ShmSize": -1})


# -- staging ---------------------------------------------------------------------------------


def stager(tmp_path: Path) -> tuple[MountStager, FakeBinder, VolumeStore]:
    binder = FakeBinder()
    store = VolumeStore(tmp_path / "volumes", binder)
    return MountStager(store, binder, tmp_path / "mounts"), binder, store


def test_prepare_and_release(tmp_path: Path) -> None:
    st, binder, store = stager(tmp_path)
    host = tmp_path / "host"
    host.mkdir()
    (host / "f.txt").write_text("x")
    mounts = resolve_mounts(
        {"Binds": [f"{host}:/app:ro", f"{host}/f.txt:/f.txt", "nv:/nv"], "Tmpfs": {"/t": ""}},
        None,
        container_id="c1",
        volumes=store,
    )
    specs = st.prepare("c1", mounts)
    by = {s.target: s for s in specs}
    assert by["/app"].type == "bind" and by["/app"].read_only
    assert by["/app"].source.startswith(str(tmp_path / "mounts" / "c1"))
    assert os.path.isfile(by["/f.txt"].source)
    assert by["/t"].type == "tmpfs" and by["/nv"].type == "volume"
    sources = {c.target: c.source for c in binder.calls if c.op == "bind"}
    assert sources[by["/app"].source] == str(host)
    assert sources[by["/nv"].source] == str(store.data_dir("nv"))
    st.release("c1", mounts)
    assert binder.mounted == {} and not (tmp_path / "mounts" / "c1").exists()


def test_short_syntax_creates_missing_dir(tmp_path: Path) -> None:
    st, _, store = stager(tmp_path)
    mounts = resolve_mounts(
        {"Binds": [f"{tmp_path}/new/dir:/app"]}, None, container_id="c1", volumes=store
    )
    st.prepare("c1", mounts)
    assert (tmp_path / "new" / "dir").is_dir()
    st.release("c1", mounts)


def test_swapped_component_refused(tmp_path: Path) -> None:
    """A component replaced by a symlink after resolution cannot redirect the mount."""
    host = tmp_path / "a" / "b"
    host.mkdir(parents=True)
    secret = tmp_path / "secret"
    secret.mkdir()
    binder = FakeBinder()
    store = VolumeStore(tmp_path / "volumes", binder)

    def swap(path: str, depth: int) -> None:
        if path == str(tmp_path / "a"):  # "a" is open; now replace "b" by a symlink
            os.rename(host, tmp_path / "b-moved")
            host.symlink_to(secret)

    st = MountStager(store, binder, tmp_path / "mounts", hook=swap)
    mounts = resolve_mounts({"Binds": [f"{host}:/app"]}, None, container_id="c1", volumes=store)
    with pytest.raises(InvalidArgument, match="symlink"):
        st.prepare("c1", mounts)
    assert binder.mounted == {} and not (tmp_path / "mounts" / "c1").exists()


def test_subpath_cannot_escape_through_symlink(tmp_path: Path) -> None:
    st, binder, store = stager(tmp_path)
    store.create("sv")
    (store.data_dir("sv") / "esc").symlink_to("/etc")
    (store.data_dir("sv") / "ok").mkdir()
    mounts = resolve_mounts(
        {
            "Mounts": [
                {
                    "Type": "volume",
                    "Source": "sv",
                    "Target": "/x",
                    "VolumeOptions": {"Subpath": "esc"},
                }
            ]
        },
        None,
        container_id="c1",
        volumes=store,
    )
    with pytest.raises(InvalidArgument, match="symlink"):
        st.prepare("c1", mounts)
    mounts = resolve_mounts(
        {
            "Mounts": [
                {
                    "Type": "volume",
                    "Source": "sv",
                    "Target": "/x",
                    "VolumeOptions": {"Subpath": "ok"},
                }
            ]
        },
        None,
        container_id="c2",
        volumes=store,
    )
    st.prepare("c2", mounts)
    assert binder.calls[-1].source == str(store.data_dir("sv") / "ok")
    st.release("c2", mounts)


def test_copy_up_once(tmp_path: Path) -> None:
    st, _, store = stager(tmp_path)
    rootfs = tmp_path / "rootfs"
    (rootfs / "srv" / "data" / "sub").mkdir(parents=True)
    (rootfs / "srv" / "data" / "sub" / "file").write_text("from image")
    (rootfs / "srv" / "data" / "link").symlink_to("/etc/passwd")
    (rootfs / "alias").symlink_to("/srv/data")  # resolved inside the rootfs
    mounts = resolve_mounts({"Binds": ["cu:/alias"]}, None, container_id="c1", volumes=store)
    st.prepare("c1", mounts, rootfs=str(rootfs))
    data = store.data_dir("cu")
    assert (data / "sub" / "file").read_text() == "from image"
    assert os.readlink(data / "link") == "/etc/passwd"
    st.release("c1", mounts)
    (data / "sub" / "file").unlink()
    (data / "sub").rmdir()
    os.unlink(data / "link")
    st.prepare("c1", mounts, rootfs=str(rootfs))  # populated before: no second copy
    assert os.listdir(data) == []
    st.release("c1", mounts)


def test_nocopy_and_non_empty_volume_not_filled(tmp_path: Path) -> None:
    st, _, store = stager(tmp_path)
    rootfs = tmp_path / "rootfs"
    (rootfs / "d").mkdir(parents=True)
    (rootfs / "d" / "f").write_text("x")
    m1 = resolve_mounts({"Binds": ["n1:/d:nocopy"]}, None, container_id="c1", volumes=store)
    st.prepare("c1", m1, rootfs=str(rootfs))
    assert os.listdir(store.data_dir("n1")) == []
    st.release("c1", m1)
    store.create("n2")
    (store.data_dir("n2") / "mine").write_text("y")
    m2 = resolve_mounts({"Binds": ["n2:/d"]}, None, container_id="c2", volumes=store)
    st.prepare("c2", m2, rootfs=str(rootfs))
    assert os.listdir(store.data_dir("n2")) == ["mine"]
    st.release("c2", m2)


def test_cleanup_stale(tmp_path: Path) -> None:
    st, binder, store = stager(tmp_path)
    mounts = resolve_mounts({"Binds": [f"{tmp_path}:/a"]}, None, container_id="gone", volumes=store)
    st.prepare("gone", mounts)
    assert st.cleanup_stale({"alive"}) == ["gone"]
    assert binder.mounted == {}


def test_swap_after_open_still_mounts_the_opened_dir(tmp_path: Path) -> None:
    host = tmp_path / "a" / "b"
    host.mkdir(parents=True)
    secret = tmp_path / "secret"
    secret.mkdir()
    binder = FakeBinder()
    store = VolumeStore(tmp_path / "volumes", binder)

    def swap(path: str, depth: int) -> None:
        if path == str(host):  # the leaf is open: swapping its name changes nothing
            os.rename(host, tmp_path / "a" / "moved")
            host.symlink_to(secret)

    st = MountStager(store, binder, tmp_path / "mounts", hook=swap)
    mounts = resolve_mounts({"Binds": [f"{host}:/app"]}, None, container_id="c1", volumes=store)
    st.prepare("c1", mounts)
    [call] = [c for c in binder.calls if c.op == "bind"]
    assert call.source == str(tmp_path / "a" / "moved")
    st.release("c1", mounts)


def test_state_root_behind_a_symlink(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "state").symlink_to(tmp_path / "real")
    binder = FakeBinder()
    store = VolumeStore(tmp_path / "state" / "volumes", binder)
    st = MountStager(store, binder, tmp_path / "state" / "mounts")
    mounts = resolve_mounts({"Binds": ["sv:/x"]}, None, container_id="c1", volumes=store)
    [spec] = st.prepare("c1", mounts)
    assert spec.source == str(tmp_path / "real" / "mounts" / "c1" / "0")
    st.release("c1", mounts)


def test_release_does_not_follow_symlinks_out(tmp_path: Path) -> None:
    st, _, _ = stager(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("x")
    st.prepare("c1", [])
    (tmp_path / "mounts" / "c1" / "link").symlink_to(outside)
    st.release("c1")
    assert (outside / "keep").read_text() == "x"
    assert not (tmp_path / "mounts" / "c1").exists()


def test_rm_v_removes_only_anonymous(tmp_path: Path) -> None:
    store = VolumeStore(tmp_path / "volumes", FakeBinder())
    got = resolve_mounts(
        {"Binds": ["named:/n"]}, {"Volumes": {"/anon": {}}}, container_id="c1", volumes=store
    )
    (store.data_dir("named") / "data").write_text("kept")
    removed = release_volumes(got, "c1", store, remove_anonymous=True)
    assert [v.name for v in store.list()] == ["named"] and len(removed) == 1
    again = resolve_mounts({"Binds": ["named:/n"]}, None, container_id="c2", volumes=store)
    assert (store.data_dir("named") / "data").read_text() == "kept"
    release_volumes(again, "c2", store)


def test_resolved_mount_json_round_trip(tmp_path: Path) -> None:
    store = VolumeStore(tmp_path / "volumes", FakeBinder())
    got = resolve_mounts(
        {"Binds": ["n1:/n:ro"], "Tmpfs": {"/t": "size=1m,mode=700"}},
        {"Volumes": {"/a": {}}},
        container_id="c1",
        volumes=store,
    )
    import json

    back = [ResolvedMount.from_json(json.loads(json.dumps(m.to_json()))) for m in got]
    assert back == got


def test_files_kept_across_starts_and_cleanup(tmp_path: Path) -> None:
    from pycompose.storage.secrets import file_mount

    st, _, _ = stager(tmp_path)
    me = (os.getuid(), os.getgid())
    st.set_files("c1", [file_mount("secret", "pw", b"x", uid=me[0], gid=me[1])])
    st.set_files("c2", [file_mount("config", "cf", b"y", uid=me[0], gid=me[1])])
    [spec] = st.prepare("c1", [])
    assert (spec.target, spec.read_only) == ("/run/secrets/pw", True)
    st.release("c1")
    assert Path(spec.source).read_bytes() == b"x"
    st.cleanup_stale(running=(), existing={"c2"})
    assert not Path(spec.source).exists()
    assert [s.target for s in st.prepare("c2", [])] == ["/cf"]
    st.forget("c2")
    assert os.listdir(tmp_path / "mounts" / ".files") == []


def test_failed_resolve_removes_the_anonymous_volumes_it_made(store: VolumeStore) -> None:
    anon_with_opts = {"Type": "volume", "Target": "/o",
                      "VolumeOptions": {"Labels": {"a": "b"}}}  # fmt: skip
    with pytest.raises(InvalidArgument, match="Duplicate"):
        resolve(store, {"Mounts": [anon_with_opts], "Tmpfs": {"/o": ""}})
    with pytest.raises(InvalidArgument, match="VolumesFrom"):
        resolve(
            store,
            {"Mounts": [anon_with_opts], "VolumesFrom": ["x"]},
            image={"Volumes": {"/img": {}}},
        )
    assert store.list() == []


def test_symlink_repointed_between_create_and_start_is_followed(tmp_path: Path) -> None:
    st, binder, store = stager(tmp_path)
    (tmp_path / "r1").mkdir()
    (tmp_path / "r2").mkdir()
    (tmp_path / "current").symlink_to(tmp_path / "r1")
    mounts = resolve_mounts(
        {"Binds": [f"{tmp_path}/current:/app"]}, None, container_id="c1", volumes=store
    )
    (tmp_path / "current").unlink()
    (tmp_path / "current").symlink_to(tmp_path / "r2")  # a deploy re-points it before start
    st.prepare("c1", mounts)
    assert [c.source for c in binder.calls if c.op == "bind"] == [str(tmp_path / "r2")]
    st.release("c1", mounts)
