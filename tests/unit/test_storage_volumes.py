"""VolumeStore with a recording binder: names, options, users, removal and prune."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pycompose.engine.errors import Conflict, InvalidArgument, NotFound
from pycompose.storage.safepath import FakeBinder
from pycompose.storage.volumes import ANONYMOUS_LABEL, VolumeStore, check_options, label_matches


@pytest.fixture
def store(tmp_path: Path) -> VolumeStore:
    return VolumeStore(tmp_path / "volumes", FakeBinder())


def test_create_layout_and_modes(store: VolumeStore) -> None:
    vol = store.create("myvol2", labels={"a": "b"})
    assert vol.name == "myvol2" and not vol.anonymous
    assert os.stat(store.root).st_mode & 0o777 == 0o700
    assert store.data_dir("myvol2").is_dir()
    meta = json.loads((store.root / "myvol2" / "meta.json").read_text())
    assert meta["labels"] == {"a": "b"}
    view = store.inspect("myvol2")
    assert view["Name"] == "myvol2" and view["Driver"] == "local" and view["Scope"] == "local"
    assert view["Mountpoint"] == str(store.data_dir("myvol2"))


def test_create_is_idempotent_but_not_with_other_options(store: VolumeStore) -> None:
    store.create("v1")
    assert store.create("v1").name == "v1"
    store.create("t1", options={"type": "tmpfs", "device": "tmpfs", "o": "size=1m"})
    with pytest.raises(Conflict):
        store.create("t1", options={"type": "tmpfs", "device": "tmpfs", "o": "size=2m"})


@pytest.mark.parametrize("name", ["a", "-x", "a/b", "../x", "./data", "x y"])
def test_bad_names_refused(store: VolumeStore, name: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid characters"):
        store.create(name)


def test_anonymous_volume(store: VolumeStore) -> None:
    vol = store.create()
    assert len(vol.name) == 64 and vol.anonymous and ANONYMOUS_LABEL in vol.labels


@pytest.mark.parametrize(
    ("opts", "message"),
    [
        ({"type": "nfs", "device": ":/x", "o": "addr=1.2.3.4"}, "'nfs'.*not supported"),
        ({"type": "ext4", "device": "/dev/sdb"}, "'ext4'.*not supported"),
        ({"o": "bind", "device": "relative"}, "absolute host directory"),
        ({"size": "10G"}, 'invalid option key: "size"'),
        ({"device": "/x"}, "need a type"),
    ],
)
def test_unsupported_driver_options(opts: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        check_options(opts)


def test_driver_other_than_local_refused(store: VolumeStore) -> None:
    with pytest.raises(InvalidArgument, match="driver 'nfsplugin'"):
        store.create("vv", driver="nfsplugin")


def test_in_use_cannot_be_removed_even_forced(store: VolumeStore) -> None:
    store.create("data")
    store.acquire("data", "c1")
    store.acquire("data", "c1")  # twice is still one user
    assert store.get("data").users == ("c1",)
    with pytest.raises(Conflict, match=r"remove data: volume is in use - \[c1\]"):
        store.remove("data")
    with pytest.raises(Conflict):
        store.remove("data", force=True)
    store.release("data", "c1")
    store.remove("data")
    assert not store.exists("data")


def test_remove_missing(store: VolumeStore) -> None:
    with pytest.raises(NotFound, match="get nope: no such volume"):
        store.remove("nope")
    store.remove("nope", force=True)


def test_users_survive_reopen_and_reconcile(tmp_path: Path) -> None:
    store = VolumeStore(tmp_path / "v", FakeBinder())
    store.create("data")
    store.acquire("data", "c1")
    store.acquire("data", "c2")
    again = VolumeStore(tmp_path / "v", FakeBinder())
    assert again.get("data").users == ("c1", "c2")
    again.reconcile({"c2"})
    assert again.get("data").users == ("c2",)


def test_remove_does_not_follow_symlinks(store: VolumeStore, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("precious")
    store.create("vv")
    data = store.data_dir("vv")
    (data / "link").symlink_to(outside)
    (data / "sub").mkdir()
    (data / "sub" / "link2").symlink_to(outside / "keep")
    store.remove("vv")
    assert (outside / "keep").read_text() == "precious"
    assert not (store.root / "vv").exists()
    assert [e for e in os.listdir(store.root)] == []


def test_prune_keeps_in_use_and_named(store: VolumeStore) -> None:
    named = store.create("external-data")
    used = store.create()
    unused = store.create()
    store.acquire(used.name, "c1")
    removed, _ = store.prune()
    assert removed == [unused.name]
    assert store.exists(named.name) and store.exists(used.name)
    removed, _ = store.prune(all_volumes=True, match=lambda v: v.name != "external-data")
    assert removed == []
    removed, _ = store.prune(all_volumes=True)
    assert removed == ["external-data"]
    assert store.exists(used.name)


def test_leftovers_of_a_crash_are_cleaned(tmp_path: Path) -> None:
    root = tmp_path / "v"
    (root / ".tmp-abc" / "_data").mkdir(parents=True)
    (root / ".trash-def").mkdir()
    VolumeStore(root, FakeBinder())
    assert os.listdir(root) == []


def test_tmpfs_volume_mounted_on_first_use_unmounted_after_last(tmp_path: Path) -> None:
    binder = FakeBinder()
    store = VolumeStore(tmp_path / "v", binder)
    store.create("tt", options={"type": "tmpfs", "device": "tmpfs", "o": "size=1m,uid=1000"})
    data = str(store.data_dir("tt"))
    store.mount("tt", "c1")
    store.mount("tt", "c2")
    assert [(c.op, c.fstype, c.options) for c in binder.calls] == [
        ("mount", "tmpfs", "size=1m,uid=1000")
    ]
    store.unmount("tt", "c1")
    assert binder.is_mounted(data)
    store.unmount("tt", "c2")
    assert not binder.is_mounted(data)


def test_bind_volume_binds_the_device(tmp_path: Path) -> None:
    binder = FakeBinder()
    store = VolumeStore(tmp_path / "v", binder)
    host = tmp_path / "host"
    host.mkdir()
    store.create("bb", options={"type": "none", "device": str(host), "o": "bind"})
    store.mount("bb", "c1")
    assert binder.calls[0].op == "bind" and binder.calls[0].source == str(host)
    missing = tmp_path / "missing"
    store.create("mm", options={"type": "none", "device": str(missing), "o": "bind"})
    with pytest.raises(InvalidArgument, match="does not exist"):
        store.mount("mm", "c1")


@pytest.mark.parametrize(
    ("spec", "expected"), [("a", True), ("a=1", True), ("a=2", False), ("b", False)]
)
def test_label_matches(spec: str, expected: bool) -> None:
    assert label_matches({"a": "1"}, spec) is expected


def test_events(tmp_path: Path) -> None:
    seen: list[tuple[str, str]] = []
    store = VolumeStore(tmp_path / "v", FakeBinder(), on_event=lambda a, n: seen.append((a, n)))
    store.create("ev")
    store.create("ev")  # already there: no second event
    store.mount("ev", "c1")
    store.unmount("ev", "c1")
    store.unmount("ev", "c1")  # not mounted by c1 any more: nothing
    store.remove("ev")
    assert seen == [("create", "ev"), ("mount", "ev"), ("unmount", "ev"), ("destroy", "ev")]


def test_adopted_users_keep_a_driver_mount(tmp_path: Path) -> None:
    binder = FakeBinder()
    store = VolumeStore(tmp_path / "v", binder)
    store.create("tt", options={"type": "tmpfs", "device": "tmpfs"})
    store.mount("tt", "c1")
    store.mount("tt", "c2")
    restarted = VolumeStore(tmp_path / "v", binder)  # the daemon restarted, both still run
    restarted.adopt("tt", "c1")
    restarted.adopt("tt", "c2")
    restarted.unmount("tt", "c1")
    assert binder.is_mounted(str(store.data_dir("tt")))
    restarted.unmount("tt", "c2")
    assert not binder.is_mounted(str(store.data_dir("tt")))
