"""Image manifests and indexes: Docker v2 schema 2 and OCI, parsed and checked strictly.

A document is refused, with an error naming the problem, when it is too large, not JSON,
schema 1, both a manifest and an index, of an unsupported media type, or when it carries
malformed digests, foreign (non-distributable) layers or layer URLs.
"""

from __future__ import annotations

import json
import platform as _platform
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from pycompose.engine.errors import InvalidArgument
from pycompose.engine.images.reference import validate_digest

MAX_MANIFEST_SIZE = 4 * 1024 * 1024
MAX_CONFIG_SIZE = 8 * 1024 * 1024

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_NONDIST_PREFIX = "application/vnd.oci.image.layer.nondistributable."

MANIFEST_TYPES = frozenset({DOCKER_MANIFEST, OCI_MANIFEST})
INDEX_TYPES = frozenset({DOCKER_MANIFEST_LIST, OCI_INDEX})
CONFIG_TYPES = frozenset({DOCKER_CONFIG, OCI_CONFIG})
LAYER_TYPES = frozenset({DOCKER_LAYER_GZIP, OCI_LAYER_TAR, OCI_LAYER_GZIP, OCI_LAYER_ZSTD})
# What a registry client sends in its Accept header.
ACCEPT = (OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST)

_ARCH_ALIASES = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armhf": "arm",
                 "armel": "arm", "i386": "386", "i686": "386"}
# The variant an architecture implies when none is written (as containerd normalises).
_DEFAULT_VARIANT = {"arm64": "v8", "arm": "v7", "amd64": "v1"}


@dataclass(frozen=True)
class Platform:
    """An OS/architecture[/variant] pair as in an index's ``platform`` field."""

    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        base = f"{self.os}/{self.architecture}"
        return f"{base}/{self.variant}" if self.variant else base

    def normalized(self) -> Platform:
        """Aliases resolved (``x86_64`` -> ``amd64``) and the default variant filled in."""
        arch = _ARCH_ALIASES.get(self.architecture.lower(), self.architecture.lower())
        variant = self.variant.lower() or _DEFAULT_VARIANT.get(arch, "")
        if arch == "arm64" and variant == "8":
            variant = "v8"
        return Platform(self.os.lower(), arch, variant)


DEFAULT_PLATFORM = Platform("linux", "amd64")


def parse_platform(text: str) -> Platform:
    """Parse ``os/arch[/variant]`` (``linux/arm64/v8``); InvalidArgument if malformed."""
    parts = text.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise InvalidArgument(f"invalid platform {text!r}: expected os/arch[/variant]")
    return Platform(*parts)


def host_platform() -> Platform:
    """The platform of this machine (Linux only)."""
    return Platform("linux", _platform.machine()).normalized()


@dataclass(frozen=True)
class Descriptor:
    """A pointer to content: media type, digest and size (plus optional platform)."""

    media_type: str
    digest: str
    size: int
    urls: tuple[str, ...] = ()
    annotations: dict[str, str] = field(default_factory=dict)
    platform: Platform | None = None

    def to_json(self) -> dict[str, Any]:
        """The descriptor as it appears in a manifest."""
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest,
                               "size": self.size}
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform is not None:
            plat: dict[str, str] = {"architecture": self.platform.architecture,
                                    "os": self.platform.os}
            if self.platform.variant:
                plat["variant"] = self.platform.variant
            out["platform"] = plat
        return out


@dataclass(frozen=True)
class Manifest:
    """A single-platform image manifest: a config and its layers, bottom first."""

    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]
    annotations: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Index:
    """A multi-platform index (OCI) or manifest list (Docker)."""

    media_type: str
    manifests: tuple[Descriptor, ...]
    annotations: dict[str, str] = field(default_factory=dict)


def read_limited(stream: BinaryIO, declared_size: int | None = None,
                 limit: int = MAX_MANIFEST_SIZE) -> bytes:
    """Read a manifest from ``stream``, refusing one over ``limit`` without reading it all.

    ``declared_size`` (a Content-Length or descriptor size) over the limit is refused
    before any byte is read; otherwise at most ``limit + 1`` bytes are read.
    """
    if declared_size is not None and declared_size > limit:
        raise InvalidArgument(f"manifest of {declared_size} bytes exceeds the {limit} byte limit")
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise InvalidArgument(f"manifest exceeds the {limit} byte limit")
    return data


def _str(doc: dict[str, Any], key: str, where: str, required: bool = True) -> str:
    value = doc.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise InvalidArgument(f"{where}: {key!r} must be a non-empty string")
    return value


def _annotations(doc: dict[str, Any], where: str) -> dict[str, str]:
    value = doc.get("annotations") or {}
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise InvalidArgument(f"{where}: annotations must map strings to strings")
    return dict(value)


def _parse_platform_field(doc: dict[str, Any], where: str) -> Platform | None:
    value = doc.get("platform")
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidArgument(f"{where}: platform must be an object")
    return Platform(_str(value, "os", where), _str(value, "architecture", where),
                    _str(value, "variant", where, required=False))


def parse_descriptor(doc: Any, where: str) -> Descriptor:
    """Check and convert one descriptor object."""
    if not isinstance(doc, dict):
        raise InvalidArgument(f"{where}: descriptor must be an object")
    digest = _str(doc, "digest", where)
    try:
        validate_digest(digest)
    except InvalidArgument as err:
        raise InvalidArgument(f"{where}: {err}") from err
    size = doc.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise InvalidArgument(f"{where}: size must be a non-negative integer")
    urls = doc.get("urls") or []
    if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
        raise InvalidArgument(f"{where}: urls must be a list of strings")
    return Descriptor(_str(doc, "mediaType", where), digest, size, tuple(urls),
                      _annotations(doc, where), _parse_platform_field(doc, where))


def _check_layer(desc: Descriptor, where: str) -> None:
    if desc.media_type == DOCKER_LAYER_FOREIGN or desc.media_type.startswith(OCI_NONDIST_PREFIX):
        raise InvalidArgument(
            f"{where}: foreign (non-distributable) layer {desc.digest} of type "
            f"{desc.media_type} is not supported")
    if desc.urls:
        raise InvalidArgument(
            f"{where}: layer {desc.digest} names external URLs {list(desc.urls)}; "
            "foreign layers are not supported")
    if desc.media_type not in LAYER_TYPES:
        raise InvalidArgument(f"{where}: unsupported layer media type {desc.media_type!r}")


def _document_type(doc: dict[str, Any], media_type: str | None) -> str:
    """Decide what a document is from its own field and the transport's content type."""
    if doc.get("schemaVersion") == 1 or media_type in (DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED):
        raise InvalidArgument("Docker image manifest schema 1 is not supported (deprecated); "
                              "push the image again with a current client")
    if doc.get("schemaVersion") != 2:
        raise InvalidArgument(f"unsupported manifest schemaVersion {doc.get('schemaVersion')!r}")
    is_manifest = "config" in doc or "layers" in doc
    is_index = "manifests" in doc
    if is_manifest and is_index:
        raise InvalidArgument(
            "ambiguous document: it has both manifest fields (config/layers) and index "
            "fields (manifests)")
    inner = doc.get("mediaType")
    if inner is not None and not isinstance(inner, str):
        raise InvalidArgument("mediaType must be a string")
    if inner and media_type and inner != media_type:
        raise InvalidArgument(
            f"media type mismatch: the document says {inner!r}, it was served as {media_type!r}")
    declared = inner or media_type
    if not declared:
        declared = OCI_INDEX if is_index else OCI_MANIFEST
    if declared not in MANIFEST_TYPES | INDEX_TYPES:
        raise InvalidArgument(f"unsupported manifest media type {declared!r}")
    if (declared in INDEX_TYPES and is_manifest) or (declared in MANIFEST_TYPES and is_index):
        raise InvalidArgument(f"ambiguous document: declared {declared!r} but shaped otherwise")
    return declared


def parse(data: bytes, media_type: str | None = None) -> Manifest | Index:
    """Parse a manifest or index; ``media_type`` is the transport's Content-Type if any."""
    if len(data) > MAX_MANIFEST_SIZE:
        raise InvalidArgument(
            f"manifest of {len(data)} bytes exceeds the {MAX_MANIFEST_SIZE} byte limit")
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as err:
        raise InvalidArgument(f"manifest is not valid JSON: {err}") from err
    if not isinstance(doc, dict):
        raise InvalidArgument("manifest must be a JSON object")
    kind = _document_type(doc, media_type)
    annotations = _annotations(doc, "manifest")
    if kind in INDEX_TYPES:
        entries = doc.get("manifests")
        if not isinstance(entries, list):
            raise InvalidArgument("index: manifests must be a list")
        descs = tuple(parse_descriptor(e, f"index.manifests[{i}]") for i, e in enumerate(entries))
        return Index(kind, descs, annotations)
    config = parse_descriptor(doc.get("config"), "manifest.config")
    if config.media_type not in CONFIG_TYPES:
        raise InvalidArgument(
            f"unsupported config media type {config.media_type!r} (not a container image)")
    raw_layers = doc.get("layers")
    if not isinstance(raw_layers, list):
        raise InvalidArgument("manifest: layers must be a list")
    layers = []
    for i, raw in enumerate(raw_layers):
        desc = parse_descriptor(raw, f"manifest.layers[{i}]")
        _check_layer(desc, f"manifest.layers[{i}]")
        layers.append(desc)
    return Manifest(kind, config, tuple(layers), annotations)


def parse_manifest(data: bytes, media_type: str | None = None) -> Manifest:
    """Parse a document that must be a single-platform manifest."""
    doc = parse(data, media_type)
    if not isinstance(doc, Manifest):
        raise InvalidArgument("expected an image manifest, got an index")
    return doc


def _matches(candidate: Platform, wanted: Platform) -> bool:
    cand, want = candidate.normalized(), wanted.normalized()
    return (cand.os, cand.architecture, cand.variant) == (want.os, want.architecture,
                                                          want.variant)


def select_platform(index: Index, wanted: Platform = DEFAULT_PLATFORM) -> Descriptor:
    """The manifest of ``index`` for ``wanted`` (first match, as docker picks)."""
    for desc in index.manifests:
        if desc.media_type not in MANIFEST_TYPES:
            continue  # nested indexes and artifacts are not images for a platform
        if desc.platform is not None and _matches(desc.platform, wanted):
            return desc
    available = sorted({str(d.platform) for d in index.manifests if d.platform is not None
                        and d.platform.os != "unknown"})
    raise InvalidArgument(f"no image for platform {wanted} in the index "
                          f"(available: {', '.join(available) or 'none'})")


def parse_config(data: bytes) -> dict[str, Any]:
    """Parse an image config and check its ``rootfs`` section."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as err:
        raise InvalidArgument(f"image config is not valid JSON: {err}") from err
    if not isinstance(doc, dict):
        raise InvalidArgument("image config must be a JSON object")
    rootfs = doc.get("rootfs")
    if not isinstance(rootfs, dict) or rootfs.get("type") != "layers":
        raise InvalidArgument("image config: rootfs.type must be 'layers'")
    diff_ids = rootfs.get("diff_ids")
    if not isinstance(diff_ids, list):
        raise InvalidArgument("image config: rootfs.diff_ids must be a list")
    for i, diff_id in enumerate(diff_ids):
        if not isinstance(diff_id, str):
            raise InvalidArgument(f"image config: rootfs.diff_ids[{i}] must be a string")
        try:
            validate_digest(diff_id)
        except InvalidArgument as err:
            raise InvalidArgument(f"image config: rootfs.diff_ids[{i}]: {err}") from err
    return doc


def manifest_json(config: Descriptor, layers: list[Descriptor],
                  media_type: str = OCI_MANIFEST) -> bytes:
    """Serialise a manifest (for images we create: import, load, commit)."""
    doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": media_type,
                           "config": config.to_json(),
                           "layers": [layer.to_json() for layer in layers]}
    return json.dumps(doc, separators=(",", ":")).encode()
