"""Image archives: ``save``/``load`` (docker-archive and OCI layout) and ``import``.

``save`` in docker format writes what Docker 25+ writes: a tarball that is both a
docker-archive (``manifest.json``, ``repositories``) and an OCI image layout
(``oci-layout``, ``index.json``, ``blobs/sha256/``) with uncompressed layers, so old and
new docker, skopeo and we can read it. OCI format keeps the original manifests and
compressed blobs, so digests survive. ``load`` reads either (and legacy
``<id>/layer.tar`` archives); every blob is verified on the way in.
"""

from __future__ import annotations

import contextlib
import datetime
import enum
import io
import json
import os
import posixpath
import shlex
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from pycompose.engine.containers import health
from pycompose.engine.errors import InvalidArgument, NotFound
from pycompose.engine.images import manifest as mf
from pycompose.engine.images.content import ContentStore, digest_hex
from pycompose.engine.images.reference import familiar_name, parse_reference
from pycompose.engine.images.store import ImageRecord, ImageStore
from pycompose.storage.extract import LayerError, decompressed

REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"
_MAX_JSON = 8 * 1024 * 1024
_CHUNK = 1 << 20
_TOP_LEVEL_JSON = ("manifest.json", "index.json", "oci-layout", "repositories")


class ArchiveFormat(enum.Enum):
    """The two tarball layouts ``save`` can write."""

    DOCKER = "docker"
    OCI = "oci"


# -- save -------------------------------------------------------------------------------


@dataclass
class _Writer:
    tf: tarfile.TarFile
    written: set[str] = field(default_factory=set)

    def add_bytes(self, name: str, data: bytes) -> None:
        self.add_stream(name, io.BytesIO(data), len(data))

    def add_stream(self, name: str, stream: BinaryIO, size: int) -> None:
        if name in self.written:
            return
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = size, 0o644, 0
        self.tf.addfile(info, stream)
        self.written.add(name)

    def add_dir(self, name: str) -> None:
        if name not in self.written:
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            self.tf.addfile(info)
            self.written.add(name)


class _VerifyingReader:
    """Passes bytes through and checks, at the end, their sha256 against ``expected``."""

    def __init__(self, inner: BinaryIO, expected: str) -> None:
        import hashlib

        self._inner, self._expected, self._hash = inner, expected, hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self._inner.read(n)
        self._hash.update(data)
        return data

    def check(self) -> None:
        if self._inner.read(1):
            raise InvalidArgument(f"layer {self._expected} is longer than recorded")
        if "sha256:" + self._hash.hexdigest() != self._expected:
            raise InvalidArgument(f"layer {self._expected} does not match its diff_id")


def _blob_name(digest: str) -> str:
    return f"blobs/sha256/{digest_hex(digest)}"


def _selected(images: ImageStore, names: Sequence[str]) -> list[tuple[ImageRecord, list[str]]]:
    """Images to save with the full references each is saved under (none for ids)."""
    out: dict[str, tuple[ImageRecord, list[str]]] = {}
    for name in names:
        record = images.resolve(name)
        entry = out.setdefault(record.id, (record, []))
        try:
            ref = parse_reference(name)
        except InvalidArgument:
            continue
        if ref.tag is not None and ref.digest is None and familiar_name(ref) in record.repo_tags:
            entry[1].append(str(ref))
    return list(out.values())


def save(images: ImageStore, names: Sequence[str], out: BinaryIO,
         fmt: ArchiveFormat = ArchiveFormat.DOCKER) -> None:
    """Write the images ``names`` (references or ids) as a tarball to ``out``."""
    if not names:
        raise InvalidArgument("nothing to save: no image names given")
    selected = _selected(images, names)
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf:
        w = _Writer(tf)
        w.add_dir("blobs/")
        w.add_dir("blobs/sha256/")
        w.add_bytes("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        index_entries: list[dict[str, Any]] = []
        docker_manifest: list[dict[str, Any]] = []
        repositories: dict[str, dict[str, str]] = {}
        for record, refs in selected:
            if fmt is ArchiveFormat.OCI:
                desc = _save_oci_image(images.content, w, record)
            else:
                desc, entry = _save_docker_image(images, w, record, refs)
                docker_manifest.append(entry)
                for ref in refs:
                    parsed = parse_reference(ref)
                    repo = familiar_name(parsed).rsplit(":", 1)[0]
                    repositories.setdefault(repo, {})[parsed.tag or "latest"] = digest_hex(
                        record.diff_ids[-1]) if record.diff_ids else ""
            index_entries.extend(_index_entries(desc, refs))
        index = {"schemaVersion": 2, "mediaType": mf.OCI_INDEX, "manifests": index_entries}
        w.add_bytes("index.json", json.dumps(index).encode())
        if fmt is ArchiveFormat.DOCKER:
            w.add_bytes("manifest.json", json.dumps(docker_manifest).encode())
            w.add_bytes("repositories", json.dumps(repositories).encode())


def _index_entries(desc: mf.Descriptor, refs: list[str]) -> list[dict[str, Any]]:
    if not refs:
        return [desc.to_json()]
    out = []
    for ref in refs:
        tag = parse_reference(ref).tag or "latest"
        out.append({**desc.to_json(), "annotations": {CONTAINERD_NAME: ref, REF_NAME: tag}})
    return out


def _copy_blob(content: ContentStore, w: _Writer, digest: str) -> None:
    with content.open(digest) as fp:
        w.add_stream(_blob_name(digest), fp, content.size(digest))


def _save_oci_image(content: ContentStore, w: _Writer, record: ImageRecord) -> mf.Descriptor:
    for layer in record.layers:
        _copy_blob(content, w, layer.digest)
    _copy_blob(content, w, record.config_digest)
    _copy_blob(content, w, record.manifest_digest)
    return mf.Descriptor(record.manifest_media_type, record.manifest_digest,
                         content.size(record.manifest_digest))


def _save_docker_image(images: ImageStore, w: _Writer, record: ImageRecord,
                       refs: list[str]) -> tuple[mf.Descriptor, dict[str, Any]]:
    content = images.content
    layer_descs = []
    for layer, diff_id, chain in zip(record.layers, record.diff_ids, record.layer_chain_ids,
                                     strict=True):
        size = images.layers.info(chain).size
        name = _blob_name(diff_id)
        layer_descs.append(mf.Descriptor(mf.OCI_LAYER_TAR, diff_id, size))
        if name in w.written:
            continue
        with content.open(layer.digest) as blob, decompressed(blob, layer.media_type) as raw:
            reader = _VerifyingReader(raw, diff_id)
            w.add_stream(name, reader, size)  # type: ignore[arg-type]
            reader.check()
    _copy_blob(content, w, record.config_digest)
    config = mf.Descriptor(mf.OCI_CONFIG, record.config_digest,
                           content.size(record.config_digest))
    manifest = mf.manifest_json(config, layer_descs)
    digest = content.put_bytes(manifest)
    w.add_bytes(_blob_name(digest), manifest)
    entry = {"Config": _blob_name(record.config_digest),
             "RepoTags": [familiar_name(parse_reference(r)) for r in refs] or None,
             "Layers": [_blob_name(d.digest) for d in layer_descs]}
    return mf.Descriptor(mf.OCI_MANIFEST, digest, len(manifest)), entry


# -- load -------------------------------------------------------------------------------


@dataclass
class _Loaded:
    """What the archive held: top-level JSON documents, and other files by digest."""

    docs: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    new_blobs: set[str] = field(default_factory=set)
    used: set[str] = field(default_factory=set)

    def digest(self, path: str) -> str:
        seen = 0
        path = posixpath.normpath(path)
        while path in self.links and seen < 40:
            path, seen = self.links[path], seen + 1
        if path not in self.files:
            raise InvalidArgument(f"archive refers to {path!r}, which it does not contain")
        return self.files[path]


def _read_member(tf: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    if member.size > _MAX_JSON:
        raise InvalidArgument(f"{member.name}: {member.size} bytes is too large for metadata")
    src = tf.extractfile(member)
    return src.read() if src is not None else b""


def _ingest_member(content: ContentStore, tf: tarfile.TarFile, member: tarfile.TarInfo,
                   name: str, loaded: _Loaded) -> None:
    expected = None
    if name.startswith("blobs/sha256/"):
        expected = "sha256:" + name.rsplit("/", 1)[1]
        digest_hex(expected)
    elif name.startswith("blobs/"):
        raise InvalidArgument(f"archive blob {name!r} uses an unsupported digest algorithm")
    if expected is not None and content.has(expected):
        loaded.files[name] = expected
        return
    src = tf.extractfile(member)
    assert src is not None
    with content.ingest(expected, member.size) as ing:
        ing.reset()
        ing.write_from(src)  # type: ignore[arg-type]
        digest = ing.commit()
    loaded.files[name] = digest
    loaded.new_blobs.add(digest)


@contextlib.contextmanager
def _loading(content: ContentStore) -> Iterator[_Loaded]:
    """Collects what a load brings in; blobs no loaded image uses are removed at the end."""
    loaded = _Loaded()
    try:
        yield loaded
    finally:
        for digest in loaded.new_blobs - loaded.used:
            if content.has(digest):
                content.delete(digest)


def _member_name(member: tarfile.TarInfo) -> str:
    if ".." in member.name.split("/"):
        raise InvalidArgument(f"archive member {member.name!r} has a '..' component")
    return posixpath.normpath(member.name.lstrip("/"))


def _read_archive(content: ContentStore, stream: BinaryIO, loaded: _Loaded) -> None:
    try:
        with tarfile.open(fileobj=stream, mode="r|*") as tf:
            for member in tf:
                name = _member_name(member)
                if member.issym() or member.islnk():
                    base = posixpath.dirname(name) if member.issym() else ""
                    loaded.links[name] = posixpath.normpath(posixpath.join(base,
                                                                           member.linkname))
                elif not member.isreg():
                    continue
                elif name in _TOP_LEVEL_JSON:
                    loaded.docs[name] = _parse_json(_read_member(tf, member), name)
                else:
                    _ingest_member(content, tf, member, name, loaded)
    except tarfile.TarError as err:
        raise InvalidArgument(f"not a valid image archive: {err}") from err


def _parse_json(data: bytes, name: str) -> Any:
    try:
        return json.loads(data)
    except ValueError as err:
        raise InvalidArgument(f"{name} in the archive is not valid JSON: {err}") from err


def load(images: ImageStore, stream: BinaryIO,
         platform: mf.Platform = mf.DEFAULT_PLATFORM) -> list[ImageRecord]:
    """Load a docker-archive or OCI layout tarball; returns the images with their tags."""
    with _loading(images.content) as loaded:
        _read_archive(images.content, stream, loaded)
        return _load_from(images, loaded, platform)


def _load_from(images: ImageStore, loaded: _Loaded,
               platform: mf.Platform) -> list[ImageRecord]:
    if "manifest.json" in loaded.docs:
        records = _load_docker(images, loaded)
    elif "index.json" in loaded.docs:
        records = _load_oci(images, loaded, platform)
    else:
        raise InvalidArgument("not an image archive: it has neither manifest.json "
                              "(docker-archive) nor index.json (OCI layout)")
    for record in records:
        loaded.used.update({record.config_digest, record.manifest_digest,
                            *(layer.digest for layer in record.layers)})
        if record.index_digest:
            loaded.used.add(record.index_digest)
    unique = dict.fromkeys(r.id for r in records)  # one image may be tagged twice
    return [images.resolve(image_id) for image_id in unique]


def _layer_media_type(content: ContentStore, digest: str) -> str:
    with content.open(digest) as fp:
        head = fp.read(4)
    if head.startswith(b"\x1f\x8b"):
        return mf.OCI_LAYER_GZIP
    if head == b"\x28\xb5\x2f\xfd":
        return mf.OCI_LAYER_ZSTD
    return mf.OCI_LAYER_TAR


def _load_docker(images: ImageStore, loaded: _Loaded) -> list[ImageRecord]:
    content = images.content
    entries = loaded.docs["manifest.json"]
    if not isinstance(entries, list):
        raise InvalidArgument("manifest.json must be a list")
    records = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str) or \
                not isinstance(entry.get("Layers"), list):
            raise InvalidArgument(f"manifest.json[{i}] needs Config and Layers")
        config_digest = loaded.digest(entry["Config"])
        config = mf.Descriptor(mf.OCI_CONFIG, config_digest, content.size(config_digest))
        layers = []
        for path in entry["Layers"]:
            digest = loaded.digest(str(path))
            layers.append(mf.Descriptor(_layer_media_type(content, digest), digest,
                                        content.size(digest)))
        tags = entry.get("RepoTags") or []
        records.append(_register(images, mf.manifest_json(config, layers), mf.OCI_MANIFEST,
                                 [str(t) for t in tags]))
    return records


def _load_oci(images: ImageStore, loaded: _Loaded,
              platform: mf.Platform) -> list[ImageRecord]:
    index = mf.parse(json.dumps(loaded.docs["index.json"]).encode())
    if not isinstance(index, mf.Index):
        raise InvalidArgument("index.json is not an image index")
    records = []
    for desc in index.manifests:
        if desc.media_type not in mf.MANIFEST_TYPES | mf.INDEX_TYPES:
            raise InvalidArgument(f"index.json: unsupported entry media type {desc.media_type!r}")
        data = images.content.read(desc.digest, mf.MAX_MANIFEST_SIZE)
        name = _oci_ref_name(desc.annotations)
        records.append(_register(images, data, desc.media_type, [name] if name else [],
                                 platform))
    return records


def _oci_ref_name(annotations: dict[str, str]) -> str | None:
    """The image name of an index entry; a bare tag (``latest``) names no repository."""
    for key in (CONTAINERD_NAME, REF_NAME):
        value = annotations.get(key)
        if value and ("/" in value or ":" in value):
            try:
                parse_reference(value)
            except InvalidArgument:
                continue
            return value
    return None


def _register(images: ImageStore, manifest: bytes, media_type: str, tags: list[str],
              platform: mf.Platform = mf.DEFAULT_PLATFORM) -> ImageRecord:
    record = images.register(manifest, media_type, tags[0] if tags else None,
                             platform=platform)
    for tag in tags[1:]:
        images.tag(record.id, tag)
    return record


# -- import and commit ------------------------------------------------------------------


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _store_uncompressed(content: ContentStore, raw_digest: str) -> str:
    """Store the uncompressed form of blob ``raw_digest``; returns its digest (the diff_id)."""
    try:
        with content.open(raw_digest) as fp, decompressed(fp) as stream, \
                content.ingest() as ing:
            ing.write_from(stream)
            return ing.commit()
    except (OSError, EOFError, LayerError) as err:
        raise InvalidArgument(f"cannot decompress the imported archive: {err}") from err


def create_image(images: ImageStore, layer: BinaryIO, *, base: ImageRecord | None = None,
                 container_config: dict[str, Any] | None = None, reference: str | None = None,
                 created_by: str = "", comment: str = "", author: str = "",
                 platform: mf.Platform = mf.DEFAULT_PLATFORM) -> ImageRecord:
    """A new image: ``base`` (or nothing) plus one layer tar (compressed or not).

    Serves ``image import`` (no base) and ``container commit`` (base = the container's
    image, layer = its changes). ``container_config`` replaces the config's ``config``.
    """
    content = images.content
    with content.ingest() as ing:
        ing.write_from(layer)
        raw_digest = ing.commit()
    diff_id = _store_uncompressed(content, raw_digest)
    if raw_digest != diff_id:
        content.delete(raw_digest)
    now = _now()
    base_config = base.config if base is not None else {}
    history = [*base_config.get("history", []),
               {k: v for k, v in (("created", now), ("created_by", created_by),
                                  ("comment", comment), ("author", author)) if v}]
    config = {
        "architecture": base_config.get("architecture", platform.architecture),
        "os": base_config.get("os", platform.os),
        "created": now,
        "config": container_config if container_config is not None
        else base_config.get("config", {}),
        "rootfs": {"type": "layers",
                   "diff_ids": [*(base.diff_ids if base else ()), diff_id]},
        "history": history,
    }
    if author:
        config["author"] = author
    config_bytes = json.dumps(config, separators=(",", ":")).encode()
    config_digest = content.put_bytes(config_bytes)
    layers = [*(base.layers if base else ()),
              mf.Descriptor(mf.OCI_LAYER_TAR, diff_id, content.size(diff_id))]
    manifest = mf.manifest_json(mf.Descriptor(mf.OCI_CONFIG, config_digest, len(config_bytes)),
                                layers)
    return images.register(manifest, mf.OCI_MANIFEST, reference)


def import_rootfs(images: ImageStore, stream: BinaryIO, reference: str | None = None,
                  changes: Sequence[str] = (), message: str = "",
                  platform: mf.Platform = mf.DEFAULT_PLATFORM) -> ImageRecord:
    """``image import``: a rootfs tarball (gzip/zstd/xz/bzip2 or plain) as a one-layer image."""
    return create_image(images, stream, container_config=apply_changes({}, changes),
                        reference=reference, created_by="pycompose image import",
                        comment=message, platform=platform)


def _json_or_shell(value: str) -> list[str]:
    if value.startswith("["):
        try:
            parsed = json.loads(value)
        except ValueError as err:
            raise InvalidArgument(f"invalid JSON array {value!r}: {err}") from err
        if not isinstance(parsed, list) or not all(isinstance(x, str) for x in parsed):
            raise InvalidArgument(f"expected a JSON array of strings: {value!r}")
        return parsed
    return ["/bin/sh", "-c", value]


def _pairs(value: str, what: str) -> Iterator[tuple[str, str]]:
    """``k=v k2=v2`` or the legacy single ``k v`` form."""
    if "=" not in value.split(" ", 1)[0]:
        key, _, rest = value.partition(" ")
        if not key or not rest.strip():
            raise InvalidArgument(f"{what} needs a value: {what} KEY=value or {what} KEY value")
        yield key, rest.strip()
        return
    try:
        items = shlex.split(value)
    except ValueError as err:
        raise InvalidArgument(f"{what}: {err}") from err
    for item in items:
        key, eq, val = item.partition("=")
        if not eq or not key:
            raise InvalidArgument(f"{what}: expected key=value, got {item!r}")
        yield key, val


def apply_changes(config: dict[str, Any], changes: Sequence[str]) -> dict[str, Any]:
    """Apply ``--change`` Dockerfile instructions (CMD, ENTRYPOINT, ENV, ...) to a config."""
    out = dict(config)
    for change in changes:
        word, _, value = change.strip().partition(" ")
        op, value = word.upper(), value.strip()
        if op in ("CMD", "ENTRYPOINT", "SHELL"):
            out[{"CMD": "Cmd", "ENTRYPOINT": "Entrypoint", "SHELL": "Shell"}[op]] = _json_or_shell(
                value
            )
        elif op == "ENV":
            env = list(out.get("Env", []))
            for key, val in _pairs(value, "ENV"):
                env = [e for e in env if e.split("=", 1)[0] != key] + [f"{key}={val}"]
            out["Env"] = env
        elif op == "LABEL":
            out["Labels"] = {**out.get("Labels", {}), **dict(_pairs(value, "LABEL"))}
        elif op in ("WORKDIR", "USER", "STOPSIGNAL"):
            out[{"WORKDIR": "WorkingDir", "USER": "User", "STOPSIGNAL": "StopSignal"}[op]] = value
        elif op == "EXPOSE":
            ports: dict[str, Any] = {p if "/" in p else f"{p}/tcp": {} for p in value.split()}
            out["ExposedPorts"] = {**out.get("ExposedPorts", {}), **ports}
        elif op == "HEALTHCHECK":
            out["Healthcheck"] = health.parse_instruction(value)
        elif op == "VOLUME":
            vols = _json_or_shell(value) if value.startswith("[") else value.split()
            out["Volumes"] = {**out.get("Volumes", {}), **{v: {} for v in vols}}
        else:
            raise InvalidArgument(f"{word} is not a valid change command (supported: CMD, "
                                  "ENTRYPOINT, ENV, EXPOSE, HEALTHCHECK, LABEL, SHELL, "
                                  "STOPSIGNAL, USER, VOLUME, WORKDIR)")
    return out


def load_layout_dir(images: ImageStore, layout: os.PathLike[str] | str,
                    platform: mf.Platform = mf.DEFAULT_PLATFORM) -> list[ImageRecord]:
    """Load an OCI image layout directory (as skopeo's ``oci:`` writes it)."""
    root = os.fspath(layout)
    if not os.path.isfile(os.path.join(root, "index.json")):
        raise NotFound(f"{root} is not an OCI image layout (no index.json)")
    with _loading(images.content) as loaded:
        with open(os.path.join(root, "index.json"), "rb") as fp:
            loaded.docs["index.json"] = _parse_json(fp.read(_MAX_JSON + 1), "index.json")
        blobs = os.path.join(root, "blobs", "sha256")
        for entry in sorted(os.listdir(blobs)):
            expected = "sha256:" + entry
            digest_hex(expected)
            if images.content.has(expected):
                continue
            with open(os.path.join(blobs, entry), "rb") as fp, \
                    images.content.ingest(expected) as ing:
                ing.reset()
                ing.write_from(fp)
                loaded.new_blobs.add(ing.commit())
        return _load_from(images, loaded, platform)
