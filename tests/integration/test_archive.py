"""ImageStore with save/load/import on real busybox images, cross-checked with skopeo."""

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
from dataclasses import dataclass

import pytest

from pycompose.engine.errors import InvalidArgument, NotFound
from pycompose.engine.images import archive
from pycompose.engine.images import manifest as mf
from pycompose.engine.images.content import ContentStore
from pycompose.engine.images.store import ImageStore
from pycompose.storage.layers import LayerStore
from tests.fixtures.images import busybox_oci_layout, layout_tarball


@dataclass
class Engine:
    root: pathlib.Path
    content: ContentStore
    layers: LayerStore
    images: ImageStore

    def reopen(self) -> ImageStore:
        return ImageStore(self.root / "images", self.content, self.layers)


def make_engine(root: pathlib.Path) -> Engine:
    content = ContentStore(root / "content")
    layers = LayerStore(root / "layers")
    return Engine(root, content, layers, ImageStore(root / "images", content, layers))


@pytest.fixture
def engine(tmp_path: pathlib.Path) -> Iterator[Engine]:
    yield make_engine(tmp_path / "state")
    shutil.rmtree(tmp_path, ignore_errors=True)


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[pathlib.Path]:
    path = busybox_oci_layout(tmp_path_factory.mktemp("bb"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def index_manifest(layout: pathlib.Path) -> tuple[str, bytes]:
    index = json.loads((layout / "index.json").read_text())
    digest = index["manifests"][0]["digest"]
    return digest, (layout / "blobs/sha256" / digest[7:]).read_bytes()


def tarball(layout: pathlib.Path) -> io.BytesIO:
    buf = io.BytesIO()
    layout_tarball(layout, buf)
    buf.seek(0)
    return buf


def test_load_oci_layout_and_resolve(engine: Engine, layout: pathlib.Path) -> None:
    (record,) = archive.load(engine.images, tarball(layout))
    man_digest, _ = index_manifest(layout)
    assert record.repo_tags == ("busybox:latest",)
    assert record.repo_digests == (f"busybox@{man_digest}",)
    assert record.manifest_digest == man_digest
    assert record.config["config"]["Cmd"] == ["sh"]
    assert record.size > 1_000_000
    for name in ("busybox", "busybox:latest", "docker.io/library/busybox:latest", record.id,
                 record.id[7:], record.id[7:19], "sha256:" + record.id[7:19],
                 f"busybox@{man_digest}"):
        assert engine.images.resolve(name).id == record.id, name
    with pytest.raises(NotFound, match="No such image: alpine"):
        engine.images.resolve("alpine")
    diff = engine.layers.diff_dir(record.layer_chain_ids[0])
    assert (diff / "bin/busybox").is_file()


def test_store_survives_reopen_and_tags(engine: Engine, layout: pathlib.Path) -> None:
    (record,) = archive.load(engine.images, tarball(layout))
    engine.images.tag(record.id[7:19], "localhost:5000/tools/bb:1.0")
    with pytest.raises(InvalidArgument, match="digest"):
        engine.images.tag(record.id, "bb@sha256:" + "0" * 64)
    reopened = engine.reopen()
    again = reopened.resolve("localhost:5000/tools/bb:1.0")
    assert again.id == record.id
    assert again.repo_tags == ("busybox:latest", "localhost:5000/tools/bb:1.0")
    reopened.untag("busybox")
    assert reopened.resolve(record.id).repo_tags == ("localhost:5000/tools/bb:1.0",)
    with pytest.raises(NotFound):
        reopened.untag("busybox")
    assert [r.id for r in reopened.list()] == [record.id]


def test_delete_collects_unused_layers_and_blobs(engine: Engine, layout: pathlib.Path) -> None:
    (record,) = archive.load(engine.images, tarball(layout))
    # a second image on top of busybox shares its layer
    child = archive.create_image(engine.images, io.BytesIO(tar_with(("hello", b"hi"))),
                                 base=record, reference="child:1", created_by="test")
    assert child.layer_chain_ids[0] == record.layer_chain_ids[0]
    engine.images.delete("busybox")
    assert engine.layers.has(record.layer_chain_ids[0])  # still used by child
    assert engine.content.has(record.layers[0].digest)
    assert not engine.content.has(record.config_digest)
    engine.images.delete("child:1")
    assert engine.layers.list() == []
    assert list(engine.content.digests()) == []
    assert engine.images.list() == []


def tar_with(*files: tuple[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.mark.parametrize("fmt", list(archive.ArchiveFormat))
def test_save_then_load_round_trip(engine: Engine, layout: pathlib.Path,
                                   tmp_path: pathlib.Path, fmt: archive.ArchiveFormat) -> None:
    (record,) = archive.load(engine.images, tarball(layout))
    engine.images.tag("busybox", "busybox:v2")
    out = io.BytesIO()
    archive.save(engine.images, ["busybox:latest", "busybox:v2"], out, fmt)
    other = make_engine(tmp_path / "other")
    out.seek(0)
    (loaded,) = archive.load(other.images, out)
    assert loaded.id == record.id
    assert loaded.repo_tags == ("busybox:latest", "busybox:v2")
    if fmt is archive.ArchiveFormat.OCI:
        assert loaded.manifest_digest == record.manifest_digest
    assert loaded.diff_ids == record.diff_ids
    out.seek(0)
    with tarfile.open(fileobj=out) as tf:
        names = tf.getnames()
    assert ("manifest.json" in names) == (fmt is archive.ArchiveFormat.DOCKER)
    assert "index.json" in names and "oci-layout" in names


def test_skopeo_reads_our_save_and_we_read_skopeos(engine: Engine, layout: pathlib.Path,
                                                   tmp_path: pathlib.Path) -> None:
    if shutil.which("skopeo") is None:
        pytest.skip("skopeo not installed")
    (record,) = archive.load(engine.images, tarball(layout))
    saved = tmp_path / "saved.tar"
    with open(saved, "wb") as fp:
        archive.save(engine.images, ["busybox"], fp)
    out = subprocess.run(["skopeo", "inspect", f"docker-archive:{saved}"], capture_output=True,
                         text=True, check=True, timeout=60)
    assert json.loads(out.stdout)["Layers"] == list(record.diff_ids)
    raw = subprocess.run(["skopeo", "inspect", "--config", "--raw", f"oci-archive:{saved}"],
                         capture_output=True, check=True, timeout=60).stdout
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == record.id
    # skopeo writes the legacy docker-archive layout (<id>/layer.tar, symlinks)
    theirs = tmp_path / "skopeo.tar"
    subprocess.run(["skopeo", "copy", "-q", f"oci:{layout}",
                    f"docker-archive:{theirs}:example.com/bb:sk"], check=True, timeout=120)
    other = make_engine(tmp_path / "other")
    with open(theirs, "rb") as fp:
        (loaded,) = archive.load(other.images, fp)
    assert loaded.id == record.id and loaded.repo_tags == ("example.com/bb:sk",)


def test_load_layout_dir(engine: Engine, layout: pathlib.Path) -> None:
    (record,) = archive.load_layout_dir(engine.images, layout)
    assert record.repo_tags == ("busybox:latest",)
    with pytest.raises(NotFound):
        archive.load_layout_dir(engine.images, layout / "blobs")


def test_load_refuses_tampered_blob_and_leaves_nothing(engine: Engine, layout: pathlib.Path,
                                                      tmp_path: pathlib.Path) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(layout, bad)
    man_digest, _ = index_manifest(layout)
    blob = bad / "blobs/sha256" / man_digest[7:]
    blob.write_bytes(blob.read_bytes().replace(b"schemaVersion", b"schemaVersioN"))
    with pytest.raises(InvalidArgument, match="digest mismatch"):
        archive.load(engine.images, tarball(bad))
    assert list(engine.content.digests()) == []
    assert os.listdir(engine.content.root / "ingest") == []
    assert engine.images.list() == []


def test_load_refuses_non_archives(engine: Engine) -> None:
    with pytest.raises(InvalidArgument):
        archive.load(engine.images, io.BytesIO(b"not a tar" * 100))
    with pytest.raises(InvalidArgument, match=r"neither manifest\.json"):
        archive.load(engine.images, io.BytesIO(tar_with(("hello.txt", b"hi"))))
    with pytest.raises(InvalidArgument, match=r"'\.\.' component"):
        archive.load(engine.images, io.BytesIO(tar_with(("blobs/sha256/../../x", b"hi"))))
    with pytest.raises(InvalidArgument, match="invalid digest"):
        archive.load(engine.images, io.BytesIO(tar_with(("blobs/sha256/abc", b"hi"))))
    assert list(engine.content.digests()) == []


def test_import_rootfs_with_changes(engine: Engine) -> None:
    data = tar_with(("bin/app", b"#!/bin/sh\necho app\n"), ("etc/conf", b"x=1\n"))
    record = archive.import_rootfs(
        engine.images, io.BytesIO(gzip.compress(data)), "imported:1",
        changes=['CMD ["/bin/app", "--flag"]', "ENV A=1 B='two words'", "WORKDIR /srv",
                 "EXPOSE 8080", "LABEL team=core", "ENTRYPOINT run me"],
        message="from a tarball")
    cfg = record.config["config"]
    assert cfg["Cmd"] == ["/bin/app", "--flag"]
    assert cfg["Entrypoint"] == ["/bin/sh", "-c", "run me"]
    assert cfg["Env"] == ["A=1", "B=two words"]
    assert cfg["WorkingDir"] == "/srv" and cfg["ExposedPorts"] == {"8080/tcp": {}}
    assert cfg["Labels"] == {"team": "core"}
    assert record.diff_ids == ("sha256:" + hashlib.sha256(data).hexdigest(),)
    assert record.config["history"][-1]["comment"] == "from a tarball"
    diff = engine.layers.diff_dir(record.layer_chain_ids[0])
    assert (diff / "etc/conf").read_bytes() == b"x=1\n"
    assert engine.images.resolve("imported:1").id == record.id
    with pytest.raises(InvalidArgument, match="RUN is not a valid change command"):
        archive.import_rootfs(engine.images, io.BytesIO(data), changes=["RUN true"])


def test_register_checks_blobs(engine: Engine, layout: pathlib.Path) -> None:
    man_digest, manifest = index_manifest(layout)
    with pytest.raises(NotFound, match="not in the content store"):
        engine.images.register(manifest, mf.OCI_MANIFEST, "bb:x")
    doc = json.loads(manifest)
    for d in [doc["config"], *doc["layers"]]:
        engine.content.put_bytes((layout / "blobs/sha256" / d["digest"][7:]).read_bytes())
    doc["layers"][0]["size"] += 1
    with pytest.raises(InvalidArgument, match="size differs"):
        engine.images.register(json.dumps(doc).encode(), mf.OCI_MANIFEST, None)
    # an index over the real manifest selects linux/<host arch>
    engine.content.put_bytes(manifest)
    host = mf.host_platform()
    index = {"schemaVersion": 2, "mediaType": mf.OCI_INDEX, "manifests": [
        {"mediaType": mf.OCI_MANIFEST, "digest": "sha256:" + "9" * 64, "size": 3,
         "platform": {"os": "linux", "architecture": "s390x"}},
        {"mediaType": mf.OCI_MANIFEST, "digest": man_digest, "size": len(manifest),
         "platform": {"os": host.os, "architecture": host.architecture}}]}
    index_bytes = json.dumps(index).encode()
    record = engine.images.register(index_bytes, mf.OCI_INDEX, "bb:multi", platform=host)
    index_digest = "sha256:" + hashlib.sha256(index_bytes).hexdigest()
    assert record.manifest_digest == man_digest and record.index_digest == index_digest
    assert record.repo_digests == (f"bb@{index_digest}",)
    with pytest.raises(InvalidArgument, match="no image for platform linux/mips64"):
        engine.images.register(index_bytes, mf.OCI_INDEX, None,
                               platform=mf.parse_platform("linux/mips64"))
