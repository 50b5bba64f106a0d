"""The test image builders: valid OCI layouts, deterministic digests, runnable contents."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import pathlib
import shutil
import subprocess
import tarfile
from collections.abc import Iterator

import pytest

from pycompose.engine.images import archive
from pycompose.engine.images import manifest as mf
from pycompose.engine.images.content import ContentStore
from pycompose.engine.images.store import ImageStore
from pycompose.storage.layers import LayerStore
from pycompose.storage.overlay import KernelMounter, is_mountpoint
from tests.fixtures import images as fixture_images
from tests.fixtures.images import busybox_applets, busybox_oci_layout

# The session fixtures, used here directly (tests/conftest.py may also offer them).
busybox_layout = fixture_images.busybox_layout
debian_layout = fixture_images.debian_layout


def read_layout(layout: pathlib.Path) -> tuple[mf.Manifest, dict[str, object], bytes]:
    index = mf.parse((layout / "index.json").read_bytes())
    assert isinstance(index, mf.Index) and len(index.manifests) == 1
    blob = layout / "blobs/sha256"
    man = mf.parse_manifest((blob / index.manifests[0].digest[7:]).read_bytes())
    config_bytes = (blob / man.config.digest[7:]).read_bytes()
    assert "sha256:" + hashlib.sha256(config_bytes).hexdigest() == man.config.digest
    layer = (blob / man.layers[0].digest[7:]).read_bytes()
    assert len(layer) == man.layers[0].size
    return man, mf.parse_config(config_bytes), layer


def test_busybox_layout_is_valid_and_deterministic(tmp_path: pathlib.Path) -> None:
    first = busybox_oci_layout(tmp_path / "a")
    second = busybox_oci_layout(tmp_path / "b")
    assert (first / "index.json").read_bytes() == (second / "index.json").read_bytes()
    assert sorted(os.listdir(first / "blobs/sha256")) == sorted(
        os.listdir(second / "blobs/sha256"))
    assert json.loads((first / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    _, config, layer = read_layout(first)
    raw = gzip.decompress(layer)
    assert config["rootfs"] == {"type": "layers",
                                "diff_ids": ["sha256:" + hashlib.sha256(raw).hexdigest()]}
    inner = config["config"]
    assert isinstance(inner, dict)
    assert inner["Cmd"] == ["sh"] and inner["Env"][0].startswith("PATH=")
    with tarfile.open(fileobj=io.BytesIO(raw)) as tf:
        members = {m.name: m for m in tf.getmembers()}
        passwd = tf.extractfile(members["etc/passwd"])
        assert passwd is not None
        users = [line.split(":")[0] for line in passwd.read().decode().splitlines()]
    assert users == ["root", "nobody"]
    assert members["bin/busybox"].isreg() and members["bin/busybox"].mode == 0o755
    assert members["bin/sh"].issym() and members["bin/sh"].linkname == "busybox"
    assert all(f"bin/{a}" in members for a in busybox_applets())
    assert members["tmp"].mode == 0o1777 and members["etc/group"].isreg()
    assert {m.mtime for m in members.values()} == {1704067200}
    shutil.rmtree(tmp_path)


def test_skopeo_accepts_busybox_layout(busybox_layout: pathlib.Path) -> None:
    if shutil.which("skopeo") is None:
        pytest.skip("skopeo not installed")
    out = subprocess.run(["skopeo", "inspect", "--config", f"oci:{busybox_layout}"],
                         capture_output=True, text=True, check=True, timeout=60)
    assert json.loads(out.stdout)["config"]["Cmd"] == ["sh"]


@pytest.fixture
def engine_root(tmp_path: pathlib.Path) -> Iterator[pathlib.Path]:
    yield tmp_path
    merged = tmp_path / "merged"
    if merged.exists() and is_mountpoint(str(merged)):
        KernelMounter().unmount(str(merged), detach=True)
    shutil.rmtree(tmp_path, ignore_errors=True)


def run_in_image(root: pathlib.Path, layout: pathlib.Path, *argv: str) -> str:
    """Load ``layout``, mount its rootfs and run ``argv`` in it with chroot."""
    content = ContentStore(root / "content")
    layers = LayerStore(root / "layers")
    (record,) = archive.load_layout_dir(ImageStore(root / "images", content, layers), layout)
    for name in ("upper", "work", "merged"):
        (root / name).mkdir()
    mounter = KernelMounter()
    mounter.mount_overlay(layers.rootfs_lowerdirs(record.layer_chain_ids), str(root / "upper"),
                          str(root / "work"), str(root / "merged"))
    try:
        out = subprocess.run(["chroot", str(root / "merged"), *argv], capture_output=True,
                             text=True, check=True, timeout=120,
                             env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    finally:
        mounter.unmount(str(root / "merged"))
    return out.stdout


@pytest.mark.root
def test_busybox_image_runs(engine_root: pathlib.Path, busybox_layout: pathlib.Path) -> None:
    assert run_in_image(engine_root, busybox_layout, "/bin/sh", "-c", "id -u; echo ok") == \
        "0\nok\n"


@pytest.mark.root
@pytest.mark.slow
def test_debian_image_runs_python(engine_root: pathlib.Path,
                                  debian_layout: pathlib.Path) -> None:
    if shutil.which("mmdebstrap") is None:
        pytest.skip("mmdebstrap not installed")
    man, _, _ = read_layout(debian_layout)
    assert man.layers[0].media_type == mf.OCI_LAYER_TAR
    out = run_in_image(engine_root, debian_layout, "/usr/bin/python3", "-c",
                       "import sys; print(sys.version_info[0])")
    assert out == "3\n"
