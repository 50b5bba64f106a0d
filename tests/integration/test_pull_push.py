"""pull() and push() end to end: real docker-registry, skopeo cross-checks, a fake for indexes."""

from __future__ import annotations

import hashlib
import json
import pathlib
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

from pycompose.engine.errors import InvalidArgument, NotFound
from pycompose.engine.images import manifest as mf
from pycompose.engine.images.content import ContentStore
from pycompose.engine.images.pull import pull
from pycompose.engine.images.push import push
from pycompose.engine.images.registry import RegistryConfig, RegistryUnauthorized
from pycompose.engine.images.store import ImageRecord, ImageStore
from pycompose.storage.layers import LayerStore
from tests.fixtures import images as image_fx
from tests.fixtures import registry as fx

plain_registry = fx.plain_registry
tls_registry = fx.tls_registry
token_registry = fx.token_registry
busybox_layout = image_fx.busybox_layout
fake_registry = fx.fake_registry


class Stores:
    def __init__(self, root: pathlib.Path) -> None:
        self.content = ContentStore(root / "content")
        self.layers = LayerStore(root / "layers")
        self.images = ImageStore(root / "images", self.content, self.layers)
        self.events: list[dict[str, Any]] = []

    def pull(self, reference: str, config: RegistryConfig, **kw: Any) -> ImageRecord:
        async def main() -> ImageRecord:
            return await pull(reference, content=self.content, images=self.images,
                              registry_config=config, progress=self.events.append, **kw)
        return anyio.run(main)

    def push(self, reference: str, config: RegistryConfig, **kw: Any) -> str:
        async def main() -> str:
            return await push(reference, content=self.content, images=self.images,
                              registry_config=config, progress=self.events.append, **kw)
        return anyio.run(main)

    def statuses(self) -> list[str]:
        return [e["status"] for e in self.events if "status" in e]


@pytest.fixture
def stores(tmp_path: pathlib.Path) -> Iterator[Stores]:
    yield Stores(tmp_path / "state")


@pytest.fixture
def layout(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "layout"
    path.mkdir()
    fx.build_oci_layout(path, fx.busybox_layers())
    return path


def layer_ids(layout: pathlib.Path) -> list[str]:
    index = json.loads((layout / "index.json").read_text())
    digest = index["manifests"][0]["digest"].split(":")[1]
    manifest = json.loads((layout / "blobs" / "sha256" / digest).read_bytes())
    return [layer["digest"][7:19] for layer in manifest["layers"]]


def test_pull_from_plain_registry(plain_registry: fx.RegistryServer, layout: pathlib.Path,
                                  stores: Stores) -> None:
    fx.skopeo_copy(layout, plain_registry, "library/busybox")
    name = f"{plain_registry.host}/library/busybox"
    record = stores.pull(name, plain_registry.client_config())

    assert record.repo_tags == (f"{name}:latest",)
    assert len(record.layer_chain_ids) == 2
    bottom = stores.layers.diff_dir(record.layer_chain_ids[0])
    assert (bottom / "bin" / "busybox").read_bytes() == pathlib.Path(fx.BUSYBOX_BIN).read_bytes()
    ids = layer_ids(layout)
    ev = stores.events
    assert ev[0] == {"status": "Pulling from library/busybox", "progressDetail": {},
                     "id": "latest"}
    for ident in ids:
        mine = [e["status"] for e in ev if e.get("id") == ident]
        assert mine[0] == "Pulling fs layer"
        assert mine[-3:] == ["Verifying Checksum", "Download complete", "Pull complete"]
        downloading = [e for e in ev if e.get("id") == ident and e["status"] == "Downloading"]
        assert downloading[-1]["progressDetail"]["current"] == \
            downloading[-1]["progressDetail"]["total"]
    assert fx.skopeo_inspect(plain_registry, "library/busybox:latest")["Digest"] == \
        record.manifest_digest
    assert ev[-2]["status"] == f"Digest: {record.manifest_digest}"
    assert ev[-1]["status"] == f"Status: Downloaded newer image for {name}:latest"

    # A second pull finds everything present and reports it like docker.
    stores.events.clear()
    again = stores.pull(name, plain_registry.client_config())
    assert again.id == record.id
    assert [e["status"] for e in stores.events if e.get("id") in ids] == \
        ["Already exists", "Already exists"]
    assert stores.events[-1]["status"] == f"Status: Image is up to date for {name}:latest"


def test_pull_the_busybox_test_image(plain_registry: fx.RegistryServer,
                                     busybox_layout: pathlib.Path, stores: Stores) -> None:
    fx.skopeo_copy(busybox_layout, plain_registry, "library/busybox", "stable")
    name = f"{plain_registry.host}/library/busybox:stable"
    record = stores.pull(name, plain_registry.client_config())
    assert record.config["config"]["Cmd"] == ["sh"]
    rootfs = stores.layers.diff_dir(record.layer_chain_ids[0])
    assert (rootfs / "bin" / "sh").readlink() == pathlib.Path("busybox")
    assert stores.images.resolve(name).id == record.id


def test_pull_by_digest_records_repo_digest(plain_registry: fx.RegistryServer,
                                            layout: pathlib.Path, stores: Stores) -> None:
    digest = fx.build_oci_layout(layout, fx.busybox_layers()[1:], tag="small")
    fx.skopeo_copy(layout, plain_registry, "small", "v1", layout_tag="small")
    name = f"{plain_registry.host}/small"
    head = fx.skopeo_inspect(plain_registry, "small:v1")
    record = stores.pull(f"{name}@{head['Digest']}", plain_registry.client_config())
    assert record.repo_tags == ()
    assert record.repo_digests == (f"{name}@{head['Digest']}",)
    assert digest == head["Digest"]  # skopeo kept our manifest byte for byte
    assert stores.images.resolve(f"{name}@{digest}").id == record.id


def test_pull_with_auth_over_tls(tls_registry: fx.RegistryServer, layout: pathlib.Path,
                                 stores: Stores) -> None:
    fx.skopeo_copy(layout, tls_registry, "private/app", "1.0")
    name = f"{tls_registry.host}/private/app:1.0"
    with pytest.raises(RegistryUnauthorized):
        stores.pull(name, tls_registry.client_config(credentials=None))
    with pytest.raises(NotFound):
        stores.images.resolve(name)
    record = stores.pull(name, tls_registry.client_config())
    assert record.repo_tags == (name,)


def test_push_then_skopeo_inspects_and_copies(plain_registry: fx.RegistryServer,
                                              layout: pathlib.Path, stores: Stores,
                                              tmp_path: pathlib.Path) -> None:
    fx.skopeo_copy(layout, plain_registry, "library/busybox")
    src = f"{plain_registry.host}/library/busybox:latest"
    config = plain_registry.client_config()
    record = stores.pull(src, config)

    # Another repository on the same registry: the blobs are mounted, not uploaded.
    target = f"{plain_registry.host}/team/copy:v2"
    stores.images.tag(record.id, target)
    stores.events.clear()
    digest = stores.push(target, config)
    assert digest == record.manifest_digest
    statuses = stores.statuses()
    assert statuses[0] == f"The push refers to repository [{plain_registry.host}/team/copy]"
    assert statuses.count("Mounted from library/busybox") == 2
    assert statuses[-1] != "Pushed"
    assert stores.events[-1]["aux"] == {"Tag": "v2", "Digest": digest,
                                        "Size": stores.content.size(digest)}
    inspected = fx.skopeo_inspect(plain_registry, "team/copy:v2")
    assert inspected["Digest"] == digest
    assert len(inspected["Layers"]) == 2  # type: ignore[arg-type]

    # Pushing again finds every blob in place.
    stores.events.clear()
    stores.push(target, config)
    assert stores.statuses().count("Layer already exists") == 2

    # skopeo can copy what we pushed back out to an OCI layout, blobs verified.
    out = tmp_path / "out"
    import subprocess
    subprocess.run(["skopeo", "copy", "--quiet", "--src-tls-verify=false",
                    f"docker://{target}", f"oci:{out}:x"], check=True, capture_output=True)
    assert (out / "blobs" / "sha256" / digest[7:]).read_bytes() == \
        stores.content.read(digest)


def test_push_uploads_to_an_empty_registry_with_auth(
        plain_registry: fx.RegistryServer, tls_registry: fx.RegistryServer,
        layout: pathlib.Path, stores: Stores) -> None:
    fx.skopeo_copy(layout, plain_registry, "library/busybox")
    record = stores.pull(f"{plain_registry.host}/library/busybox", plain_registry.client_config())
    for chunked, repo in ((None, "mono/busybox:1"), (256 * 1024, "chunked/busybox:1")):
        target = f"{tls_registry.host}/{repo}"
        stores.images.tag(record.id, target)
        stores.events.clear()
        with pytest.raises(RegistryUnauthorized):
            stores.push(target, tls_registry.client_config(credentials=None))
        stores.events.clear()
        digest = stores.push(target, tls_registry.client_config(), chunk_size=chunked)
        statuses = stores.statuses()
        assert statuses.count("Pushed") == 2
        pushing = [e for e in stores.events if e.get("status") == "Pushing"]
        assert pushing[-1]["progressDetail"]["current"] == pushing[-1]["progressDetail"]["total"]
        assert fx.skopeo_inspect(tls_registry, repo)["Digest"] == digest
        stores.images.untag(target)  # else the next push mounts from this repository


def test_failed_mount_falls_back_to_upload(plain_registry: fx.RegistryServer,
                                          tls_registry: fx.RegistryServer,
                                          layout: pathlib.Path, stores: Stores) -> None:
    fx.skopeo_copy(layout, plain_registry, "library/busybox")
    record = stores.pull(f"{plain_registry.host}/library/busybox", plain_registry.client_config())
    # Known under a repository of the target registry that was never pushed: the mount
    # attempt is answered with a plain upload session, which is then used.
    stores.images.tag(record.id, f"{tls_registry.host}/ghost/repo:1")
    target = f"{tls_registry.host}/real/repo:1"
    stores.images.tag(record.id, target)
    stores.events.clear()
    digest = stores.push(target, tls_registry.client_config())
    assert stores.statuses().count("Pushed") == 2
    assert not any(s.startswith("Mounted") for s in stores.statuses())
    assert fx.skopeo_inspect(tls_registry, "real/repo:1")["Digest"] == digest


def test_bearer_tokens_from_a_real_token_service(token_registry: fx.RegistryServer,
                                                 layout: pathlib.Path, stores: Stores) -> None:
    tokens = token_registry.token_server
    assert tokens is not None
    fx.skopeo_copy(layout, token_registry, "library/busybox")
    tokens.requests.clear()
    anonymous = token_registry.client_config(credentials=None)
    record = stores.pull(f"{token_registry.host}/library/busybox", anonymous)
    assert tokens.requests[0] == {"service": [tokens.SERVICE],
                                  "scope": ["repository:library/busybox:pull"]}

    target = f"{token_registry.host}/team/app:1"
    stores.images.tag(record.id, target)
    with pytest.raises(RegistryUnauthorized):
        stores.push(target, anonymous)  # the token service grants anonymous users pull only
    tokens.requests.clear()
    stores.events.clear()
    digest = stores.push(target, token_registry.client_config())
    assert stores.statuses().count("Mounted from library/busybox") == 2
    assert {"service": [tokens.SERVICE],
            "scope": ["repository:team/app:pull,push", "repository:library/busybox:pull"]} \
        in tokens.requests
    assert fx.skopeo_inspect(token_registry, "team/app:1")["Digest"] == digest


def test_push_refuses_digest_reference(stores: Stores) -> None:
    with pytest.raises(InvalidArgument, match="push a tag"):
        stores.push("127.0.0.1:1/x@sha256:" + "a" * 64, RegistryConfig())


# -- indexes and bad documents, from a registry we control -----------------------------------

def _blob(fake: fx.FakeRegistry, repo: str, data: bytes) -> dict[str, Any]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    fake.add_blob(repo, digest, data)
    return {"digest": digest, "size": len(data)}


def _platform_manifest(fake: fx.FakeRegistry, arch: str) -> dict[str, Any]:
    import gzip
    import io
    import tarfile

    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        body = f"built for {arch}\n".encode()
        info = tarfile.TarInfo("arch.txt")
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
    layer = {**_blob(fake, "multi", gzip.compress(raw.getvalue(), mtime=0)),
             "mediaType": mf.OCI_LAYER_GZIP}
    diff_id = "sha256:" + hashlib.sha256(raw.getvalue()).hexdigest()
    config = {"architecture": arch, "os": "linux",
              "rootfs": {"type": "layers", "diff_ids": [diff_id]}}
    cfg = {**_blob(fake, "multi", json.dumps(config).encode()), "mediaType": mf.OCI_CONFIG}
    doc = json.dumps({"schemaVersion": 2, "mediaType": mf.OCI_MANIFEST, "config": cfg,
                      "layers": [layer]}).encode()
    digest = fake.add_manifest("multi", "sha256:" + hashlib.sha256(doc).hexdigest(), doc,
                               mf.OCI_MANIFEST)
    return {"mediaType": mf.OCI_MANIFEST, "digest": digest, "size": len(doc),
            "platform": {"os": "linux", "architecture": arch}}


def test_pull_selects_platform_from_index(fake_registry: fx.FakeRegistry,
                                          stores: Stores) -> None:
    entries = [_platform_manifest(fake_registry, a) for a in ("arm64", "amd64")]
    index = json.dumps({"schemaVersion": 2, "mediaType": mf.OCI_INDEX,
                        "manifests": entries}).encode()
    index_digest = fake_registry.add_manifest("multi", "latest", index, mf.OCI_INDEX)
    name = f"{fake_registry.host}/multi"
    for arch, entry in (("amd64", entries[1]), ("arm64", entries[0])):
        stores.events.clear()
        record = stores.pull(name, RegistryConfig(), platform=mf.Platform("linux", arch))
        assert record.config["architecture"] == arch
        assert record.manifest_digest == entry["digest"]
        assert record.index_digest == index_digest
        assert stores.events[-2]["status"] == f"Digest: {index_digest}"
        diff = stores.layers.diff_dir(record.layer_chain_ids[0])
        assert (diff / "arch.txt").read_text() == f"built for {arch}\n"
    with pytest.raises(InvalidArgument, match="no image for platform linux/s390x"):
        stores.pull(name, RegistryConfig(), platform=mf.Platform("linux", "s390x"))


def test_pull_refuses_manifest_that_is_also_an_index(fake_registry: fx.FakeRegistry,
                                                     stores: Stores) -> None:
    entry = _platform_manifest(fake_registry, "amd64")
    doc = {"schemaVersion": 2, "mediaType": mf.OCI_MANIFEST,
           "config": {"mediaType": mf.OCI_CONFIG, "digest": entry["digest"], "size": 1},
           "layers": [], "manifests": [entry]}
    fake_registry.add_manifest("multi", "both", json.dumps(doc).encode(), mf.OCI_MANIFEST)
    with pytest.raises(InvalidArgument, match="ambiguous"):
        stores.pull(f"{fake_registry.host}/multi:both", RegistryConfig())
    assert stores.images.list() == []
    assert not any("/blobs/" in r.path for r in fake_registry.requests)


def test_pull_refuses_foreign_layers(fake_registry: fx.FakeRegistry, stores: Stores) -> None:
    cfg = {**_blob(fake_registry, "f", b'{"rootfs":{"type":"layers","diff_ids":[]}}'),
           "mediaType": mf.OCI_CONFIG}
    layer = {"mediaType": mf.OCI_LAYER_GZIP, "digest": "sha256:" + "1" * 64, "size": 10,
             "urls": [f"{fake_registry.url}/outside.tgz"]}
    doc = json.dumps({"schemaVersion": 2, "mediaType": mf.OCI_MANIFEST, "config": cfg,
                      "layers": [layer]}).encode()
    fake_registry.add_manifest("f", "latest", doc, mf.OCI_MANIFEST)
    with pytest.raises(InvalidArgument, match="foreign layers are not supported"):
        stores.pull(f"{fake_registry.host}/f", RegistryConfig())
    assert not any("outside" in r.path for r in fake_registry.requests)


def test_pull_with_a_corrupt_layer_fails_cleanly(fake_registry: fx.FakeRegistry,
                                                 stores: Stores) -> None:
    good = b"\x1f\x8b" + b"x" * 3_000_000
    layers: list[dict[str, Any]] = []
    for data in (good, b"claimed"):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        layers.append({"mediaType": mf.OCI_LAYER_GZIP, "digest": digest, "size": len(data)})
    # The second layer's bytes on the server are not what its digest says.
    fake_registry.add_blob("bad", layers[0]["digest"], good)
    fake_registry.add_blob("bad", layers[1]["digest"], b"CLAIMED")
    cfg = {**_blob(fake_registry, "bad", json.dumps(
        {"rootfs": {"type": "layers", "diff_ids": ["sha256:" + "2" * 64] * 2}}).encode()),
        "mediaType": mf.OCI_CONFIG}
    doc = json.dumps({"schemaVersion": 2, "mediaType": mf.OCI_MANIFEST, "config": cfg,
                      "layers": layers}).encode()
    fake_registry.add_manifest("bad", "latest", doc, mf.OCI_MANIFEST)
    with pytest.raises(InvalidArgument, match="digest mismatch"):
        stores.pull(f"{fake_registry.host}/bad", RegistryConfig(), max_concurrent_downloads=2)
    assert stores.images.list() == []
    assert not stores.content.has(layers[1]["digest"])


def test_concurrent_pulls_download_each_blob_once(fake_registry: fx.FakeRegistry,
                                                  stores: Stores) -> None:
    entry = _platform_manifest(fake_registry, "amd64")
    doc_path = f"/v2/multi/manifests/{entry['digest']}"
    fake_registry.routes[("GET", "/v2/multi/manifests/latest")] = \
        fake_registry.routes[("GET", doc_path)]
    name = f"{fake_registry.host}/multi"

    async def main() -> list[ImageRecord]:
        results: list[ImageRecord] = []

        async def one() -> None:
            results.append(await pull(name, content=stores.content, images=stores.images,
                                      registry_config=RegistryConfig()))

        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(one)
        return results

    records = anyio.run(main)
    assert len({r.id for r in records}) == 1
    blob_gets = [r.path for r in fake_registry.requests
                 if r.method == "GET" and "/blobs/" in r.path]
    assert len(blob_gets) == len(set(blob_gets)) == 2  # the config and the one layer


def test_waiting_when_more_layers_than_downloads(fake_registry: fx.FakeRegistry,
                                                 stores: Stores) -> None:
    import gzip
    import io
    import tarfile

    layers, diff_ids = [], []
    for i in range(3):
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w") as tar:
            info = tarfile.TarInfo(f"f{i}")
            tar.addfile(info, io.BytesIO(b""))
        diff_ids.append("sha256:" + hashlib.sha256(raw.getvalue()).hexdigest())
        layers.append({**_blob(fake_registry, "w", gzip.compress(raw.getvalue(), mtime=i)),
                       "mediaType": mf.OCI_LAYER_GZIP})
    cfg = {**_blob(fake_registry, "w", json.dumps(
        {"rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()),
        "mediaType": mf.OCI_CONFIG}
    doc = json.dumps({"schemaVersion": 2, "mediaType": mf.OCI_MANIFEST, "config": cfg,
                      "layers": layers}).encode()
    fake_registry.add_manifest("w", "latest", doc, mf.OCI_MANIFEST)
    stores.pull(f"{fake_registry.host}/w", RegistryConfig(), max_concurrent_downloads=1)
    statuses = stores.statuses()
    assert statuses.count("Waiting") == 2
    assert statuses.count("Pull complete") == 3
