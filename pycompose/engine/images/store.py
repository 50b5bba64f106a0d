"""Images by id (the config digest) and the references (tags, digests) that name them.

Metadata lives under ``root`` (``<state>/images``): one JSON file per image in
``by-id/<hex>.json`` and the reference table in ``references.json``, each written to a
temp file, fsynced and renamed, so a crash leaves either the old or the new version.
Blobs are in the ContentStore, unpacked layers in the LayerStore.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import threading
from dataclasses import dataclass, field
from typing import Any

from pycompose.engine.errors import InvalidArgument, NotFound
from pycompose.engine.images import manifest as mf
from pycompose.engine.images.content import ContentStore, digest_hex
from pycompose.engine.images.reference import Reference, familiar_name, parse_reference
from pycompose.storage.extract import LayerError
from pycompose.storage.layers import LayerStore, chain_ids

_ID_RE = re.compile(r"(?:sha256:)?([0-9a-f]{1,64})")


@dataclass(frozen=True)
class ImageRecord:
    """One image as the engine knows it.

    ``repo_tags``/``repo_digests`` are in docker's familiar form (``busybox:latest``,
    ``busybox@sha256:...``). ``layer_chain_ids`` and ``diff_ids`` are bottom layer first.
    ``manifest_digest`` is the single-platform manifest; ``index_digest`` the index it
    was chosen from, if any.
    """

    id: str
    config: dict[str, Any]
    config_digest: str
    manifest_digest: str
    layer_chain_ids: tuple[str, ...]
    repo_tags: tuple[str, ...]
    repo_digests: tuple[str, ...]
    created: str
    size: int
    manifest_media_type: str = mf.OCI_MANIFEST
    index_digest: str | None = None
    diff_ids: tuple[str, ...] = ()
    layers: tuple[mf.Descriptor, ...] = field(default=())


def _write_atomic(path: pathlib.Path, doc: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}-{threading.get_ident()}")
    with open(tmp, "w", encoding="utf-8") as fp:
        json.dump(doc, fp, sort_keys=True)
        fp.flush()
        os.fsync(fp.fileno())
    os.rename(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def _ref_key(ref: Reference) -> str:
    """The reference table key: ``name:tag`` for tags, ``name@digest`` for digests."""
    if ref.digest is not None:
        return f"{ref.name}@{ref.digest}"
    return str(ref)


class ImageStore:
    """Registered images and their references; thread-safe."""

    def __init__(self, root: pathlib.Path, content: ContentStore, layers: LayerStore) -> None:
        self.root = pathlib.Path(root)
        self.content = content
        self.layers = layers
        self._by_id = self.root / "by-id"
        self._refs_path = self.root / "references.json"
        self._by_id.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._meta: dict[str, dict[str, Any]] = {}
        self._configs: dict[str, dict[str, Any]] = {}
        self._refs: dict[str, str] = {}
        self._load()

    def _load(self) -> None:
        for entry in os.scandir(self._by_id):
            if entry.name.endswith(".json") and not entry.name.startswith("."):
                with open(entry.path, encoding="utf-8") as fp:
                    meta = json.load(fp)
                self._meta[meta["id"]] = meta
            elif entry.name.startswith("."):
                os.unlink(entry.path)  # a temp file from an interrupted write
        if self._refs_path.exists():
            self._refs = json.loads(self._refs_path.read_text(encoding="utf-8"))
        # References to images whose record never got written are dropped.
        self._refs = {k: v for k, v in self._refs.items() if v in self._meta}

    # -- registration -------------------------------------------------------------------

    def register(self, manifest: bytes, media_type: str, reference: str | None,
                 *, platform: mf.Platform = mf.DEFAULT_PLATFORM) -> ImageRecord:
        """Record the image ``manifest`` describes (an index selects ``platform``).

        All blobs must already be in the content store; sizes and digests are checked,
        layers unpacked once per chain id, and ``reference`` (if given) tagged.
        """
        ref = parse_reference(reference) if reference is not None else None
        doc = mf.parse(manifest, media_type or None)
        top_digest = self.content.put_bytes(manifest)
        index_digest: str | None = None
        if isinstance(doc, mf.Index):
            desc = mf.select_platform(doc, platform)
            man_bytes = self._read_blob(desc, "manifest", mf.MAX_MANIFEST_SIZE)
            man = mf.parse_manifest(man_bytes, desc.media_type)
            manifest_digest, index_digest = desc.digest, top_digest
        else:
            man, manifest_digest = doc, top_digest
        config_bytes = self._read_blob(man.config, "config", mf.MAX_CONFIG_SIZE)
        config = mf.parse_config(config_bytes)
        diff_ids: list[str] = config["rootfs"]["diff_ids"]
        if len(diff_ids) != len(man.layers):
            raise InvalidArgument(f"image config lists {len(diff_ids)} layers, the manifest "
                                  f"{len(man.layers)}")
        chains = self._unpack(man, diff_ids)
        image_id = man.config.digest
        meta: dict[str, Any] = {
            "id": image_id, "config_digest": image_id, "manifest_digest": manifest_digest,
            "manifest_media_type": man.media_type, "index_digest": index_digest,
            "diff_ids": diff_ids, "layer_chain_ids": chains,
            "layers": [d.to_json() for d in man.layers],
            "size": sum(self.layers.info(c).size for c in chains),
            "repo_digests": [],
        }
        with self._lock:
            old = self._meta.get(image_id)
            if old is not None:
                meta["repo_digests"] = old["repo_digests"]
            if ref is not None:
                pinned = f"{ref.name}@{top_digest}"
                if pinned not in meta["repo_digests"]:
                    meta["repo_digests"].append(pinned)
            self._save_meta(meta)
            self._configs[image_id] = config
            if ref is not None and ref.tag is not None:
                self._set_ref(_ref_key(Reference(ref.domain, ref.path, ref.tag)), image_id)
            return self._record(image_id)

    def _read_blob(self, desc: mf.Descriptor, what: str, limit: int) -> bytes:
        if not self.content.has(desc.digest):
            raise NotFound(f"{what} blob {desc.digest} is not in the content store")
        size = self.content.size(desc.digest)
        if size != desc.size:
            raise InvalidArgument(f"{what} blob {desc.digest}: descriptor says {desc.size} "
                                  f"bytes, blob has {size}")
        return self.content.read(desc.digest, limit)

    def _unpack(self, man: mf.Manifest, diff_ids: list[str]) -> list[str]:
        chains = chain_ids(diff_ids)
        for i, (desc, diff_id) in enumerate(zip(man.layers, diff_ids, strict=True)):
            if not self.content.has(desc.digest):
                raise NotFound(f"layer blob {desc.digest} is not in the content store")
            if self.content.size(desc.digest) != desc.size:
                raise InvalidArgument(f"layer blob {desc.digest}: size differs from the "
                                      f"manifest's {desc.size} bytes")
            if self.layers.has(chains[i]):
                continue
            parent = chains[i - 1] if i else None
            try:
                with self.content.open(desc.digest) as fp:
                    self.layers.unpack(diff_id, parent, fp, desc.media_type)
            except LayerError as err:
                raise InvalidArgument(f"layer {i} ({desc.digest}): {err}") from err
        return chains

    # -- persistence --------------------------------------------------------------------

    def _save_meta(self, meta: dict[str, Any]) -> None:
        _write_atomic(self._by_id / f"{digest_hex(meta['id'])}.json", meta)
        self._meta[meta["id"]] = meta

    def _set_ref(self, key: str, image_id: str | None) -> None:
        refs = dict(self._refs)
        if image_id is None:
            refs.pop(key, None)
        else:
            refs[key] = image_id
        _write_atomic(self._refs_path, refs)
        self._refs = refs

    def _config(self, image_id: str) -> dict[str, Any]:
        config = self._configs.get(image_id)
        if config is None:
            config = mf.parse_config(self.content.read(image_id, mf.MAX_CONFIG_SIZE))
            self._configs[image_id] = config
        return config

    def _record(self, image_id: str) -> ImageRecord:
        meta = self._meta[image_id]
        config = self._config(image_id)
        tags = sorted(familiar_name(parse_reference(k)) for k, v in self._refs.items()
                      if v == image_id)
        digests = sorted(familiar_name(parse_reference(d)) for d in meta["repo_digests"])
        layers = tuple(mf.parse_descriptor(d, "layer") for d in meta["layers"])
        return ImageRecord(
            id=image_id, config=config, config_digest=meta["config_digest"],
            manifest_digest=meta["manifest_digest"],
            layer_chain_ids=tuple(meta["layer_chain_ids"]), repo_tags=tuple(tags),
            repo_digests=tuple(digests), created=str(config.get("created", "")),
            size=meta["size"], manifest_media_type=meta["manifest_media_type"],
            index_digest=meta["index_digest"], diff_ids=tuple(meta["diff_ids"]),
            layers=layers)

    # -- lookup and naming --------------------------------------------------------------

    def resolve(self, name_or_id: str) -> ImageRecord:
        """Find an image by full or short id, reference, or digest reference."""
        with self._lock:
            return self._record(self._resolve_id(name_or_id))

    def _resolve_id(self, text: str) -> str:
        if text.startswith("sha256:") and len(text) == 71 and text in self._meta:
            return text
        if len(text) == 64 and "sha256:" + text in self._meta:
            return "sha256:" + text
        try:
            ref = parse_reference(text)
        except InvalidArgument:
            ref = None
        if ref is not None:
            key = f"{ref.name}@{ref.digest}" if ref.digest else _ref_key(ref)
            if ref.digest is not None:
                for image_id, meta in self._meta.items():
                    if key in meta["repo_digests"]:
                        return image_id
            elif key in self._refs:
                return self._refs[key]
        match = _ID_RE.fullmatch(text)
        if match is not None:
            found = [i for i in self._meta if i[7:].startswith(match.group(1))]
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                raise InvalidArgument(f"short id {text!r} is ambiguous ({len(found)} images)")
        raise NotFound(f"No such image: {text}")

    def list(self) -> list[ImageRecord]:
        """Every image, newest first."""
        with self._lock:
            records = [self._record(i) for i in self._meta]
        return sorted(records, key=lambda r: r.created, reverse=True)

    def tag(self, image_id: str, reference: str) -> None:
        """Point ``reference`` (a tag, never a digest) at the image ``image_id``."""
        ref = parse_reference(reference)
        if ref.digest is not None:
            raise InvalidArgument(f"refusing to create a tag with a digest reference: "
                                  f"{reference}")
        with self._lock:
            self._set_ref(_ref_key(ref), self._resolve_id(image_id))

    def untag(self, reference: str) -> None:
        """Remove a tag or a digest reference; NotFound if it does not exist."""
        ref = parse_reference(reference)
        with self._lock:
            if ref.digest is not None:
                key = f"{ref.name}@{ref.digest}"
                for meta in self._meta.values():
                    if key in meta["repo_digests"]:
                        self._save_meta({**meta, "repo_digests": [
                            d for d in meta["repo_digests"] if d != key]})
                        return
                raise NotFound(f"No such image: {reference}")
            key = _ref_key(ref)
            if key not in self._refs:
                raise NotFound(f"No such image: {reference}")
            self._set_ref(key, None)

    def delete(self, image_id: str) -> None:
        """Remove an image, its references, and the layers and blobs no other image uses.

        Callers (the daemon) check first that no container uses the image.
        """
        with self._lock:
            full = self._resolve_id(image_id)
            meta = self._meta[full]
            refs = {k: v for k, v in self._refs.items() if v != full}
            _write_atomic(self._refs_path, refs)
            self._refs = refs
            os.unlink(self._by_id / f"{digest_hex(full)}.json")
            del self._meta[full]
            self._configs.pop(full, None)
            self._collect(meta)

    def _collect(self, gone: dict[str, Any]) -> None:
        """Delete layers and blobs of ``gone`` that no remaining image refers to."""
        used_chains: set[str] = set()
        used_blobs: set[str] = set()
        for meta in self._meta.values():
            used_chains.update(meta["layer_chain_ids"])
            used_blobs.update(self._blobs_of(meta))
        for chain in reversed(gone["layer_chain_ids"]):
            if chain not in used_chains and self.layers.has(chain):
                self.layers.delete(chain)
        for digest in self._blobs_of(gone) - used_blobs:
            if self.content.has(digest):
                self.content.delete(digest)

    @staticmethod
    def _blobs_of(meta: dict[str, Any]) -> set[str]:
        blobs = {meta["config_digest"], meta["manifest_digest"]}
        blobs.update(d["digest"] for d in meta["layers"])
        if meta["index_digest"]:
            blobs.add(meta["index_digest"])
        return blobs
