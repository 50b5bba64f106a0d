"""Container records on disk: one JSON file per container, written crash-safely.

``<root>/containers/<id>/record.json`` is replaced atomically (write a temp file, fsync,
rename, fsync the directory), so a daemon killed at any moment leaves either the old or
the new record, never half of one. Lookups accept what the docker CLI accepts: the full
id, a unique id prefix, or the name with or without its leading slash.

Removing a container renames its directory to ``.removed-<id>`` (one atomic step: for a
daemon started after it, the container is gone) and the caller deletes that tree off the
request's path (``delete_tree``); a daemon that dies first finds it at its next start,
among ``broken``.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
from pathlib import Path

from pycompose.engine.containers.names import random_name
from pycompose.engine.containers.record import ContainerRecord
from pycompose.engine.errors import Conflict, InvalidArgument, NotFound

RECORD = "record.json"
REMOVED_PREFIX = ".removed-"
_VALID_NAME = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
_ID = re.compile(r"^[0-9a-f]{64}$")


def write_json_atomic(path: Path, data: object) -> None:
    """Write JSON next to ``path`` then rename over it, fsyncing file and directory."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle, separators=(",", ":"))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def delete_tree(path: Path) -> None:
    """Delete a removed container's directory tree (``rmtree`` unlinks symlinks inside it,
    never following them out)."""
    shutil.rmtree(path)


class ContainerStore:
    """An in-memory index over the records on disk; the disk is the truth."""

    def __init__(self, root: Path) -> None:
        self.root = root / "containers"
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._by_id: dict[str, ContainerRecord] = {}
        self._by_name: dict[str, str] = {}
        self.broken: list[tuple[str, str]] = []
        self._load()

    def _load(self) -> None:
        for entry in sorted(self.root.iterdir()):
            if entry.name.startswith(REMOVED_PREFIX) and _ID.match(
                entry.name[len(REMOVED_PREFIX) :]
            ):
                self.broken.append((entry.name, "removed, not yet deleted"))
                continue
            if not _ID.match(entry.name):
                continue
            try:
                data = json.loads((entry / RECORD).read_text(encoding="utf-8"))
                record = ContainerRecord.from_json(data)
            except (OSError, ValueError, TypeError) as err:
                # A directory without a readable record is debris from a crash during create.
                self.broken.append((entry.name, str(err)))
                continue
            self._by_id[record.id] = record
            self._by_name[record.name] = record.id

    def dir(self, container_id: str) -> Path:
        if not _ID.match(container_id):
            raise InvalidArgument(f"invalid container id {container_id!r}")
        return self.root / container_id

    def new_id(self) -> str:
        while True:
            candidate = secrets.token_hex(32)
            if candidate not in self._by_id and not candidate[:12].isdigit():
                return candidate

    def claim_name(self, name: str | None) -> str:
        """A valid, unused name: the one asked for, or a fresh random one."""
        if not name:
            while True:
                generated = random_name()
                if generated not in self._by_name:
                    return generated
        if not _VALID_NAME.match(name):
            raise InvalidArgument(
                f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            )
        name = name.lstrip("/")
        if name in self._by_name:
            owner = self._by_name[name]
            raise Conflict(
                f'Conflict. The container name "/{name}" is already in use by container '
                f'"{owner}". You have to remove (or rename) that container to be able to reuse '
                "that name."
            )
        return name

    def add(self, record: ContainerRecord) -> None:
        directory = self.dir(record.id)
        directory.mkdir(mode=0o700, exist_ok=True)
        self._by_id[record.id] = record
        self._by_name[record.name] = record.id
        self.save(record)

    def save(self, record: ContainerRecord) -> None:
        write_json_atomic(self.dir(record.id) / RECORD, record.to_json())

    def rename(self, record: ContainerRecord, new_name: str) -> None:
        name = self.claim_name(new_name)
        del self._by_name[record.name]
        record.name = name
        self._by_name[name] = record.id
        self.save(record)

    def remove(self, record: ContainerRecord) -> Path | None:
        """Forget the record and move its directory aside; returns the tree for the caller
        to delete with :func:`delete_tree` (``None`` when there is nothing to delete)."""
        self._by_id.pop(record.id, None)
        if self._by_name.get(record.name) == record.id:
            del self._by_name[record.name]
        directory = self.dir(record.id)
        if directory.is_symlink():
            directory.unlink()
            return None
        if not directory.exists():
            return None
        removed = self.root / f"{REMOVED_PREFIX}{record.id}"
        os.rename(directory, removed)
        return removed

    def get(self, ref: str) -> ContainerRecord:
        """By full id, name (``/name`` too) or unique id prefix; NotFound otherwise."""
        if ref in self._by_id:
            return self._by_id[ref]
        name = ref.lstrip("/")
        if name in self._by_name:
            return self._by_id[self._by_name[name]]
        if ref and re.fullmatch(r"[0-9a-f]+", ref):
            matches = [cid for cid in self._by_id if cid.startswith(ref)]
            if len(matches) == 1:
                return self._by_id[matches[0]]
            if len(matches) > 1:
                raise InvalidArgument(f"multiple IDs found with provided prefix: {ref}")
        raise NotFound(f"No such container: {ref}")

    def all(self) -> list[ContainerRecord]:
        """Every container, newest first (as ``docker ps`` lists them)."""
        return sorted(self._by_id.values(), key=lambda r: r.created, reverse=True)
