"""``POST /commit`` (a container's changes as a new image) and ``GET /containers/{id}/export``.

Commit turns the container's overlay upper directory into an OCI layer: overlayfs whiteouts
(0/0 character devices) become ``.wh.<name>`` entries and opaque directories (the
``trusted.overlay.opaque`` xattr) get ``.wh..wh..opq``, as the OCI layer spec asks. The
layer (gzip) and a config derived from the image's, with the container's own Config, the
``changes`` instructions and a history entry, go into the content store, and the image store
registers the manifest like any pulled image. Export writes the container's whole root
filesystem as one tar stream, mounting it for the time of the export if it is stopped.
"""

from __future__ import annotations

import copy
import gzip
import hashlib
import json
import os
import stat
import tarfile
import tempfile
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from pycompose.engine.containers.record import ContainerRecord, now_rfc3339
from pycompose.engine.containers.views import command_text
from pycompose.engine.images.archive import apply_changes

if TYPE_CHECKING:
    from pycompose.engine.images.content import ContentStore
    from pycompose.engine.images.store import ImageRecord

_CHUNK = 1 << 20
_OPAQUE_XATTR = "trusted.overlay.opaque"
COMMIT_KEYS = (
    "User", "ExposedPorts", "Env", "Cmd", "Entrypoint", "WorkingDir", "Labels", "StopSignal",
    "Volumes", "OnBuild", "Healthcheck", "ArgsEscaped", "Shell",
)  # fmt: skip
# Mount points the runtime creates for the engine's own bind mounts when the image lacks
# them: empty files in the upper dir, not changes of the container (Docker keeps them in its
# "-init" layer, which commit leaves out).
ENGINE_MOUNT_POINTS = frozenset({"etc/hostname", "etc/hosts", "etc/resolv.conf",
                                 "sbin/docker-init"})  # fmt: skip
_LAYER_TYPES = {
    "application/vnd.docker.distribution.manifest.v2+json": (
        "application/vnd.docker.container.image.v1+json",
        "application/vnd.docker.image.rootfs.diff.tar.gzip"),
    "application/vnd.oci.image.manifest.v1+json": (
        "application/vnd.oci.image.config.v1+json",
        "application/vnd.oci.image.layer.v1.tar+gzip"),
}  # fmt: skip


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _opaque(path: str) -> bool:
    try:
        return os.getxattr(path, _OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def _marker(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mode = 0o600
    return info


def write_layer(upper: Path, out: IO[bytes]) -> None:
    """The container's changes (its overlay upper dir) as an uncompressed OCI layer tar."""
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf:
        for dirpath, dirnames, filenames in os.walk(upper):
            dirnames.sort()
            rel_dir = os.path.relpath(dirpath, upper)
            if rel_dir != "." and _opaque(dirpath):
                tf.addfile(_marker(os.path.join(rel_dir, ".wh..wh..opq")))
            for name in [*dirnames, *sorted(filenames)]:
                full = os.path.join(dirpath, name)
                arc = name if rel_dir == "." else os.path.join(rel_dir, name)
                st = os.lstat(full)
                if arc in ENGINE_MOUNT_POINTS and stat.S_ISREG(st.st_mode) and not st.st_size:
                    continue
                if _is_whiteout(st):
                    tf.addfile(_marker(os.path.join(os.path.dirname(arc), ".wh." + name)))
                elif stat.S_ISSOCK(st.st_mode):
                    continue  # sockets cannot be stored in a layer (Docker drops them too)
                else:
                    tf.add(full, arcname=arc, recursive=False)


def _gzip_blob(layer_tar: Path, content: ContentStore) -> tuple[str, str, int]:
    """Gzip the layer into the content store; (diff_id, blob digest, blob size)."""
    diff = hashlib.sha256()
    with tempfile.TemporaryFile(dir=layer_tar.parent) as gz_file:
        with open(layer_tar, "rb") as src, gzip.GzipFile(fileobj=gz_file, mode="wb",
                                                         mtime=0) as gz:  # fmt: skip
            while chunk := src.read(_CHUNK):
                diff.update(chunk)
                gz.write(chunk)
        size = gz_file.tell()
        gz_file.seek(0)
        with content.ingest() as ingest:
            ingest.write_from(gz_file)
            digest = ingest.commit()
    return "sha256:" + diff.hexdigest(), digest, size


def build_image(
    record: ContainerRecord, image: ImageRecord, upper: Path, content: ContentStore, *,
    overrides: dict[str, Any], changes: list[str], comment: str, author: str,
) -> tuple[bytes, str]:  # fmt: skip
    """Write layer and config into ``content``; return (manifest bytes, manifest media type)."""
    man_type = image.manifest_media_type if image.manifest_media_type in _LAYER_TYPES else \
        "application/vnd.oci.image.manifest.v1+json"
    config_type, layer_type = _LAYER_TYPES[man_type]
    with tempfile.NamedTemporaryFile(dir=upper.parent, prefix=".commit-") as tar_file:
        write_layer(upper, tar_file)
        tar_file.flush()
        diff_id, blob, size = _gzip_blob(Path(tar_file.name), content)
    cfg = copy.deepcopy(image.config)
    run_config = {k: copy.deepcopy(record.config[k]) for k in COMMIT_KEYS if k in record.config}
    run_config.update({k: v for k, v in overrides.items() if k in COMMIT_KEYS and v})
    run_config = apply_changes(run_config, changes)
    created = now_rfc3339()
    cfg["config"] = run_config
    cfg["created"] = created
    cfg["container"] = record.id
    if author:
        cfg["author"] = author
    cfg.setdefault("rootfs", {"type": "layers", "diff_ids": []})["diff_ids"].append(diff_id)
    entry = {"created": created, "created_by": command_text(record)}
    entry.update({k: v for k, v in (("comment", comment), ("author", author)) if v})
    cfg.setdefault("history", []).append(entry)
    config_bytes = json.dumps(cfg, separators=(",", ":")).encode()
    config_digest = content.put_bytes(config_bytes)
    manifest = {
        "schemaVersion": 2, "mediaType": man_type,
        "config": {"mediaType": config_type, "digest": config_digest, "size": len(config_bytes)},
        "layers": [*(d.to_json() for d in image.layers),
                   {"mediaType": layer_type, "digest": blob, "size": size}],
    }  # fmt: skip
    return json.dumps(manifest, separators=(",", ":")).encode(), man_type


def export_tar(rootfs: Path, out: IO[bytes]) -> None:
    """The whole root filesystem as one tar stream."""
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf:
        for entry in sorted(os.listdir(rootfs)):
            tf.add(rootfs / entry, arcname=entry)  # sockets are skipped by tarfile


def changes(upper: Path, lower: list[str]) -> list[dict[str, Any]]:
    """``docker diff``: Kind 0 modified, 1 added, 2 deleted, from the overlay upper dir."""
    out: list[dict[str, Any]] = []

    def in_lower(rel: str) -> bool:
        return any(os.path.lexists(os.path.join(d, rel)) for d in lower)

    for dirpath, dirnames, filenames in os.walk(upper):
        dirnames.sort()
        rel_dir = os.path.relpath(dirpath, upper)
        if rel_dir != "." and _opaque(dirpath):
            # An opaque dir hides everything the layers had there: all of it is deleted.
            hidden = {n for d in lower if os.path.isdir(os.path.join(d, rel_dir))
                      for n in os.listdir(os.path.join(d, rel_dir))}  # fmt: skip
            out += [{"Path": f"/{rel_dir}/{n}", "Kind": 2}
                    for n in hidden - {*dirnames, *filenames}]  # fmt: skip
        for name in [*dirnames, *sorted(filenames)]:
            rel = name if rel_dir == "." else os.path.join(rel_dir, name)
            if rel in ENGINE_MOUNT_POINTS:
                continue
            st = os.lstat(os.path.join(dirpath, name))
            kind = 2 if _is_whiteout(st) else (0 if in_lower(rel) else 1)
            out.append({"Path": "/" + rel, "Kind": kind})
    return sorted(out, key=lambda c: str(c["Path"]))
