"""Manifest and index parsing: media types, platform selection and refusals."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from pycompose.engine.errors import InvalidArgument
from pycompose.engine.images import manifest as m

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
D3 = "sha256:" + "3" * 64


def doc(**extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "schemaVersion": 2, "mediaType": m.OCI_MANIFEST,
        "config": {"mediaType": m.OCI_CONFIG, "digest": D1, "size": 10},
        "layers": [{"mediaType": m.OCI_LAYER_GZIP, "digest": D2, "size": 20}],
    }
    base.update(extra)
    return {k: v for k, v in base.items() if v is not None}


def raw(d: dict[str, Any]) -> bytes:
    return json.dumps(d).encode()


def index(*entries: tuple[str, str, str], media_type: str = m.OCI_INDEX) -> bytes:
    manifests = []
    for digest, plat, mt in entries:
        os_, arch, *variant = plat.split("/")
        p = {"os": os_, "architecture": arch}
        if variant:
            p["variant"] = variant[0]
        manifests.append({"mediaType": mt, "digest": digest, "size": 5, "platform": p})
    return raw({"schemaVersion": 2, "mediaType": media_type, "manifests": manifests})


def test_parse_oci_manifest() -> None:
    man = m.parse_manifest(raw(doc()))
    assert man.media_type == m.OCI_MANIFEST
    assert man.config.digest == D1 and man.config.size == 10
    assert [layer.digest for layer in man.layers] == [D2]


def test_parse_docker_manifest_via_content_type() -> None:
    d = doc(mediaType=None,
            config={"mediaType": m.DOCKER_CONFIG, "digest": D1, "size": 1},
            layers=[{"mediaType": m.DOCKER_LAYER_GZIP, "digest": D2, "size": 2}])
    man = m.parse_manifest(raw(d), m.DOCKER_MANIFEST)
    assert man.media_type == m.DOCKER_MANIFEST
    assert man.layers[0].media_type == m.DOCKER_LAYER_GZIP


def test_oci_manifest_without_media_type_detected_by_shape() -> None:
    assert m.parse(raw(doc(mediaType=None))).media_type == m.OCI_MANIFEST
    idx = json.loads(index((D1, "linux/amd64", m.OCI_MANIFEST)))
    del idx["mediaType"]
    assert isinstance(m.parse(raw(idx)), m.Index)


def test_ambiguous_manifest_and_index_refused() -> None:
    with pytest.raises(InvalidArgument, match="ambiguous"):
        m.parse(raw(doc(manifests=[])))
    with pytest.raises(InvalidArgument, match="ambiguous"):
        m.parse(raw({"schemaVersion": 2, "mediaType": m.OCI_INDEX, "manifests": [],
                     "layers": []}))


def test_media_type_mismatch_refused() -> None:
    with pytest.raises(InvalidArgument, match="mismatch"):
        m.parse(raw(doc()), m.DOCKER_MANIFEST)


def test_declared_index_shaped_as_manifest_refused() -> None:
    with pytest.raises(InvalidArgument, match="ambiguous"):
        m.parse(raw(doc(mediaType=m.OCI_INDEX)))


def test_oversized_manifest_refused() -> None:
    big = raw(doc(annotations={"x": "y" * (m.MAX_MANIFEST_SIZE + 1)}))
    with pytest.raises(InvalidArgument, match="exceeds"):
        m.parse(big)


def test_read_limited_refuses_50mb_without_reading_it() -> None:
    class Endless(io.RawIOBase):
        def __init__(self) -> None:
            self.consumed = 0

        def readable(self) -> bool:
            return True

        def read(self, n: int = -1) -> bytes:
            n = 1 << 20 if n < 0 else n
            self.consumed += n
            return b" " * n

    stream = Endless()
    with pytest.raises(InvalidArgument, match="exceeds"):
        m.read_limited(stream, declared_size=50 * 1024 * 1024)  # type: ignore[arg-type]
    assert stream.consumed == 0
    with pytest.raises(InvalidArgument, match="exceeds"):
        m.read_limited(stream)  # type: ignore[arg-type]
    assert stream.consumed == m.MAX_MANIFEST_SIZE + 1
    assert m.read_limited(io.BytesIO(b"{}")) == b"{}"


@pytest.mark.parametrize("bad", ["sha256:../../x", "sha256:abc", "SHA256:" + "1" * 64,
                                 "sha512:" + "1" * 128, 5])
def test_malformed_digest_refused(bad: object) -> None:
    d = doc(layers=[{"mediaType": m.OCI_LAYER_GZIP, "digest": bad, "size": 1}])
    with pytest.raises(InvalidArgument, match=r"layers\[0\]"):
        m.parse(raw(d))


@pytest.mark.parametrize("size", [-1, "10", None, True])
def test_bad_size_refused(size: object) -> None:
    d = doc(config={"mediaType": m.OCI_CONFIG, "digest": D1, "size": size})
    with pytest.raises(InvalidArgument, match="size"):
        m.parse(raw(d))


def test_foreign_layers_refused() -> None:
    foreign = doc(layers=[{"mediaType": m.DOCKER_LAYER_FOREIGN, "digest": D2, "size": 1,
                           "urls": ["https://example.com/layer"]}])
    with pytest.raises(InvalidArgument, match="foreign"):
        m.parse(raw(foreign))
    nondist = doc(layers=[{"mediaType": m.OCI_NONDIST_PREFIX + "v1.tar+gzip", "digest": D2,
                           "size": 1}])
    with pytest.raises(InvalidArgument, match="non-distributable"):
        m.parse(raw(nondist))
    with_urls = doc(layers=[{"mediaType": m.OCI_LAYER_GZIP, "digest": D2, "size": 1,
                             "urls": ["http://x"]}])
    with pytest.raises(InvalidArgument, match="URLs"):
        m.parse(raw(with_urls))


def test_unsupported_media_types_refused() -> None:
    with pytest.raises(InvalidArgument, match="layer media type"):
        m.parse(raw(doc(layers=[{"mediaType": "application/x-tar", "digest": D2, "size": 1}])))
    with pytest.raises(InvalidArgument, match="config media type"):
        m.parse(raw(doc(config={"mediaType": "application/vnd.cncf.helm.config.v1+json",
                                "digest": D1, "size": 1})))
    with pytest.raises(InvalidArgument, match="manifest media type"):
        m.parse(raw(doc(mediaType="application/json")))


def test_schema1_refused() -> None:
    with pytest.raises(InvalidArgument, match="schema 1"):
        m.parse(raw({"schemaVersion": 1, "name": "x", "tag": "y", "fsLayers": []}))
    with pytest.raises(InvalidArgument, match="schema 1"):
        m.parse(b"{}", m.DOCKER_SCHEMA1_SIGNED)


def test_not_json_refused() -> None:
    with pytest.raises(InvalidArgument, match="JSON"):
        m.parse(b"\xff\xfe not json")
    with pytest.raises(InvalidArgument, match="object"):
        m.parse(b"[]")


def test_platform_selection() -> None:
    idx = m.parse(index(
        (D3, "unknown/unknown", m.OCI_MANIFEST),
        (D1, "linux/arm64/v8", m.OCI_MANIFEST),
        (D2, "linux/amd64", m.OCI_MANIFEST),
        ("sha256:" + "4" * 64, "linux/arm/v6", m.OCI_MANIFEST),
        ("sha256:" + "5" * 64, "linux/arm/v7", m.OCI_MANIFEST),
    ))
    assert isinstance(idx, m.Index)
    assert m.select_platform(idx).digest == D2
    assert m.select_platform(idx, m.parse_platform("linux/arm64")).digest == D1
    assert m.select_platform(idx, m.Platform("linux", "aarch64")).digest == D1
    assert m.select_platform(idx, m.parse_platform("linux/arm/v6")).digest.endswith("4" * 64)
    assert m.select_platform(idx, m.parse_platform("linux/arm")).digest.endswith("5" * 64)
    with pytest.raises(InvalidArgument, match=r"linux/s390x.*available: linux/amd64"):
        m.select_platform(idx, m.parse_platform("linux/s390x"))


def test_docker_manifest_list() -> None:
    idx = m.parse(index((D1, "linux/amd64", m.DOCKER_MANIFEST),
                        media_type=m.DOCKER_MANIFEST_LIST))
    assert isinstance(idx, m.Index) and idx.media_type == m.DOCKER_MANIFEST_LIST
    assert m.select_platform(idx).media_type == m.DOCKER_MANIFEST


def test_parse_platform_errors() -> None:
    for bad in ["linux", "linux/", "a/b/c/d", ""]:
        with pytest.raises(InvalidArgument, match="platform"):
            m.parse_platform(bad)


def test_host_platform_is_normalised() -> None:
    plat = m.host_platform()
    assert plat.os == "linux" and plat.architecture not in ("x86_64", "aarch64")


def test_parse_config() -> None:
    cfg = {"architecture": "amd64", "os": "linux",
           "rootfs": {"type": "layers", "diff_ids": [D1, D2]}}
    assert m.parse_config(raw(cfg))["rootfs"]["diff_ids"] == [D1, D2]
    with pytest.raises(InvalidArgument, match="diff_ids"):
        m.parse_config(raw({"rootfs": {"type": "layers", "diff_ids": ["sha256:../x"]}}))
    with pytest.raises(InvalidArgument, match=r"rootfs\.type"):
        m.parse_config(raw({"rootfs": {"type": "other", "diff_ids": []}}))


def test_manifest_json_round_trip() -> None:
    config = m.Descriptor(m.OCI_CONFIG, D1, 3)
    layer = m.Descriptor(m.OCI_LAYER_TAR, D2, 4)
    man = m.parse_manifest(m.manifest_json(config, [layer]))
    assert man.config == config and man.layers == (layer,)
