"""Named and anonymous volumes with Docker's ``local`` driver, under ``<root>/volumes``.

Layout: ``<root>/volumes`` (0700) holds one directory per volume, ``<name>/meta.json`` and
``<name>/_data`` (the data, 0755 like Docker's, so that non-root users in containers can use
it). A volume is created in a temp directory and renamed into place, so it exists only when
complete; metadata is rewritten by write-temp, fsync, rename, fsync-dir. Removal renames the
volume into a trash directory first (atomic), then deletes it with fd-based calls that never
follow a symlink out of it.

``driver_opts`` follow the local driver: ``type``/``device``/``o``. ``type=tmpfs`` mounts a
tmpfs at ``_data`` while the volume is in use; ``o`` containing ``bind`` binds the host
directory ``device`` there (opened without following swapped symlinks). Other types (nfs,
ext4 on a block device, ...) are refused with an error naming them.

"In use" is what the caller says: the container component calls :meth:`VolumeStore.acquire`
when a container starts referencing a volume and :meth:`VolumeStore.release` when it is
removed; the users are kept in the metadata so they survive a daemon restart, and
:meth:`VolumeStore.reconcile` drops users that no longer exist.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import os
import re
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from pycompose.engine.errors import Conflict, InvalidArgument, NotFound
from pycompose.storage.overlay import MountError
from pycompose.storage.safepath import Binder, canonical, open_nofollow

NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
ANONYMOUS_LABEL = "com.docker.volume.anonymous"
DRIVER = "local"
_OPT_KEYS = frozenset({"type", "device", "o"})
_META = "meta.json"
_DATA = "_data"


@dataclass(frozen=True)
class Volume:
    """One volume's metadata (what ``GET /volumes/{name}`` shows, and our bookkeeping)."""

    name: str
    created_at: str
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    users: tuple[str, ...] = ()
    populated: bool = False
    """True once the volume was first mounted (copy-up of image content happens only then)."""

    @property
    def anonymous(self) -> bool:
        """Created for an image ``VOLUME`` or ``-v /path``, not by name."""
        return ANONYMOUS_LABEL in self.labels

    def to_json(self) -> dict[str, Any]:
        """The metadata file's content."""
        doc = asdict(self)
        doc["users"] = list(self.users)
        return doc

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Volume:
        """Read back :meth:`to_json`."""
        return cls(
            name=str(doc["name"]),
            created_at=str(doc["created_at"]),
            labels=dict(doc.get("labels") or {}),
            options=dict(doc.get("options") or {}),
            users=tuple(doc.get("users") or ()),
            populated=bool(doc.get("populated")),
        )


def check_name(name: str) -> None:
    """Docker's local volume name rule, with Docker's message."""
    if not NAME_RE.match(name):
        raise InvalidArgument(
            f'create {name}: "{name}" includes invalid characters for a local volume name, '
            'only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host '
            "directory, use absolute path"
        )


def check_options(options: Mapping[str, str]) -> None:
    """Accept the local driver's ``type``/``device``/``o`` for tmpfs and bind; refuse the rest."""
    for key in options:
        if key not in _OPT_KEYS:
            raise InvalidArgument(
                f'invalid option key: "{key}" (the local driver takes type, device and o)'
            )
    if not options:
        return
    kind, device, opts = options.get("type", ""), options.get("device", ""), options.get("o", "")
    words = [w for w in opts.split(",") if w]
    if "bind" in words or "rbind" in words:
        if not device.startswith("/"):
            raise InvalidArgument(
                f"local volume with o=bind needs an absolute host directory as "
                f"device, got {device!r}"
            )
        if kind not in ("", "none", "bind"):
            raise InvalidArgument(f"local volume: type {kind!r} cannot be combined with o=bind")
        return
    if kind == "tmpfs":
        return
    if not kind:
        raise InvalidArgument("local volume options need a type (tmpfs) or o=bind with a device")
    raise InvalidArgument(
        f"local volume type {kind!r} (device {device!r}) is not supported: "
        "pycompose's local driver mounts tmpfs and bind (o=bind) volumes only"
    )


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_meta(directory: Path, volume: Volume) -> None:
    tmp = directory / f".{_META}.{secrets.token_hex(4)}"
    data = json.dumps(volume.to_json(), sort_keys=True).encode()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, directory / _META)
    _fsync_dir(directory)


class VolumeStore:
    """Volumes under ``root`` (the ``<state>/volumes`` directory); thread-safe."""

    def __init__(
        self, root: Path, binder: Binder, *, on_event: Callable[[str, str], None] | None = None
    ) -> None:
        """``on_event(action, name)`` is told of ``create``, ``mount``, ``unmount`` and
        ``destroy``, whoever asked for them (the API or the container component)."""
        self.root = Path(root)
        self.binder = binder
        self._on_event = on_event
        self._lock = threading.RLock()
        self._active: dict[str, set[str]] = {}  # name -> container ids that mounted it
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        # Canonical once: data dirs are later opened component by component without
        # following symlinks, so a symlink in the state root's own path must be gone.
        self.root = Path(os.path.realpath(self.root))
        self._clean_leftovers()

    def _clean_leftovers(self) -> None:
        """Half-created or half-removed volumes of a crashed daemon."""
        for entry in os.listdir(self.root):
            if entry.startswith((".tmp-", ".trash-")):
                self._delete_tree(self.root / entry)

    def _dir(self, name: str) -> Path:
        check_name(name)
        return self.root / name

    def data_dir(self, name: str) -> Path:
        """Where the volume's data is (the host side of its mounts)."""
        return self._dir(name) / _DATA

    # -- create / read ----------------------------------------------------------------------

    def create(
        self,
        name: str | None = None,
        *,
        labels: Mapping[str, str] | None = None,
        options: Mapping[str, str] | None = None,
        driver: str = DRIVER,
    ) -> Volume:
        """Create a volume (a random 64-hex name and the anonymous label when ``name`` is
        empty). Creating an existing volume with the same options returns it, like Docker."""
        if driver not in ("", DRIVER):
            raise InvalidArgument(f"volume driver {driver!r} is not supported (only local)")
        labels = dict(labels or {})
        options = {str(k): str(v) for k, v in (options or {}).items()}
        check_options(options)
        if not name:
            name = secrets.token_hex(32)
            labels.setdefault(ANONYMOUS_LABEL, "")
        check_name(name)
        with self._lock:
            existing = self._read(name)
            if existing is not None:
                if options and existing.options != options:
                    raise Conflict(f"volume {name} already exists with different driver options")
                return existing
            volume = Volume(
                name, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), labels, options
            )
            tmp = self.root / f".tmp-{secrets.token_hex(8)}"
            tmp.mkdir(mode=0o700)
            (tmp / _DATA).mkdir(mode=0o755)
            _write_meta(tmp, volume)
            os.rename(tmp, self.root / name)
            _fsync_dir(self.root)
        self._event("create", name)
        return volume

    def _event(self, action: str, name: str) -> None:
        if self._on_event is not None:
            self._on_event(action, name)

    def _read(self, name: str) -> Volume | None:
        try:
            doc = json.loads((self._dir(name) / _META).read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as err:
            raise InvalidArgument(f"volume {name}: unreadable metadata: {err}") from err
        return Volume.from_json(doc)

    def get(self, name: str) -> Volume:
        """A volume by name; ``NotFound`` with Docker's message."""
        if not NAME_RE.match(name):
            raise NotFound(f"get {name}: no such volume")
        volume = self._read(name)
        if volume is None:
            raise NotFound(f"get {name}: no such volume")
        return volume

    def inspect(self, name: str) -> dict[str, Any]:
        """Docker's ``Volume`` object for ``GET /volumes/{name}``."""
        return volume_view(self.get(name), self.data_dir(name))

    def exists(self, name: str) -> bool:
        """Whether a volume of that name exists."""
        return bool(NAME_RE.match(name)) and self._read(name) is not None

    def list(self) -> list[Volume]:
        """All volumes, by name."""
        out = []
        for entry in sorted(os.listdir(self.root)):
            if NAME_RE.match(entry):
                with contextlib.suppress(NotFound, InvalidArgument):
                    out.append(self.get(entry))
        return out

    # -- users --------------------------------------------------------------------------------

    def _update(self, name: str, **changes: Any) -> Volume:
        with self._lock:
            volume = replace(self.get(name), **changes)
            _write_meta(self._dir(name), volume)
            return volume

    def acquire(self, name: str, container_id: str) -> Volume:
        """Record that ``container_id`` references the volume (it can no longer be removed)."""
        with self._lock:
            volume = self.get(name)
            if container_id in volume.users:
                return volume
            return self._update(name, users=(*volume.users, container_id))

    def release(self, name: str, container_id: str) -> None:
        """Forget ``container_id`` as a user (a missing volume or user is fine)."""
        with self._lock:
            volume = self._read(name) if NAME_RE.match(name) else None
            if volume is not None and container_id in volume.users:
                self._update(name, users=tuple(u for u in volume.users if u != container_id))

    def reconcile(self, live_containers: Collection[str]) -> None:
        """Drop users that are not among ``live_containers`` (run at daemon start)."""
        with self._lock:
            for volume in self.list():
                kept = tuple(u for u in volume.users if u in live_containers)
                if kept != volume.users:
                    self._update(volume.name, users=kept)

    def mark_populated(self, name: str) -> None:
        """Remember that the volume had its first mount (no copy-up after this)."""
        self._update(name, populated=True)

    # -- mounting ----------------------------------------------------------------------------

    def mount(self, name: str, container_id: str) -> Path:
        """Make the volume's data available (tmpfs/bind driver options are mounted on first
        use) and return the host directory to bind into the container."""
        with self._lock:
            volume = self.get(name)
            data = self.data_dir(name)
            active = self._active.setdefault(name, set())
            if volume.options and not active and not self.binder.is_mounted(str(data)):
                self._mount_backing(volume, data)
            active.add(container_id)
        self._event("mount", name)
        return data

    def adopt(self, name: str, container_id: str) -> None:
        """A container that survived a daemon restart is still using the volume (its
        driver mount, if any, is already there): count it without mounting anything."""
        with self._lock:
            self._active.setdefault(name, set()).add(container_id)

    def _mount_backing(self, volume: Volume, data: Path) -> None:
        opts = volume.options
        words = [w for w in opts.get("o", "").split(",") if w]
        try:
            if "bind" in words or "rbind" in words:
                try:
                    fd = open_nofollow(canonical(opts["device"]))
                except FileNotFoundError as err:
                    raise InvalidArgument(
                        f"volume {volume.name}: bind device {opts['device']} does not exist"
                    ) from err
                try:
                    self.binder.bind_fd(
                        fd, str(data), recursive="rbind" in words, read_only="ro" in words
                    )
                finally:
                    os.close(fd)
            else:
                self.binder.mount_fs(
                    opts["type"], opts.get("device") or opts["type"], str(data), opts.get("o", "")
                )
        except MountError as err:
            raise InvalidArgument(f"error while mounting volume {volume.name}: {err}") from err

    def unmount(self, name: str, container_id: str) -> None:
        """The container stopped using the volume; the last one unmounts driver mounts."""
        with self._lock:
            active = self._active.get(name, set())
            if container_id in active:
                self._event("unmount", name)
            active.discard(container_id)
            if active:
                return
            self._active.pop(name, None)
            volume = self._read(name) if NAME_RE.match(name) else None
            data = str(self.data_dir(name))
            if volume is not None and volume.options and self.binder.is_mounted(data):
                try:
                    self.binder.unmount(data)
                except MountError:
                    self.binder.unmount(data, detach=True)

    # -- removal ------------------------------------------------------------------------------

    def remove(self, name: str, *, force: bool = False) -> None:
        """Remove a volume; in use is a 409 with Docker's message even with ``force``, which
        only makes a missing volume not an error."""
        with self._lock:
            try:
                volume = self.get(name)
            except NotFound:
                if force:
                    return
                raise
            if volume.users:
                raise Conflict(f"remove {name}: volume is in use - [{', '.join(volume.users)}]")
            self._unmount_all(self._dir(name))
            trash = self.root / f".trash-{secrets.token_hex(8)}"
            os.rename(self._dir(name), trash)
            _fsync_dir(self.root)
            self._active.pop(name, None)
        self._delete_tree(trash)
        self._event("destroy", name)

    def _unmount_all(self, path: Path) -> None:
        for point in self.binder.mounted_below(str(path)):
            try:
                self.binder.unmount(point)
            except MountError:
                self.binder.unmount(point, detach=True)

    def _delete_tree(self, path: Path) -> None:
        """Delete without following symlinks and without descending into mounts."""
        self._unmount_all(path)
        # rmtree uses openat/unlinkat with O_NOFOLLOW on Linux: a symlink inside is removed,
        # never followed out of the volume.
        assert shutil.rmtree.avoids_symlink_attacks
        shutil.rmtree(path, ignore_errors=False)

    def prune(
        self, *, all_volumes: bool = False, match: Callable[[Volume], bool] | None = None
    ) -> tuple[builtins.list[str], int]:
        """Remove unused volumes: anonymous ones only unless ``all_volumes`` (Docker >= 1.42),
        and only those ``match`` accepts. Returns the names removed and the bytes reclaimed.

        A volume in use is never removed. Named volumes (which include every volume a
        compose file declares ``external``) survive unless ``all_volumes`` is asked for."""
        removed: builtins.list[str] = []
        reclaimed = 0
        for volume in self.list():
            if volume.users or (not all_volumes and not volume.anonymous):
                continue
            if match is not None and not match(volume):
                continue
            size = self.usage(volume.name)
            with contextlib.suppress(Conflict, NotFound):
                self.remove(volume.name)
                removed.append(volume.name)
                reclaimed += size
        return removed, reclaimed

    def usage(self, name: str) -> int:
        """Bytes used by the volume's files (not following symlinks, not crossing mounts)."""
        total = 0
        data = self.data_dir(name)
        dev = os.lstat(data).st_dev
        for dirpath, dirnames, filenames in os.walk(data):
            dirnames[:] = [d for d in dirnames if os.lstat(os.path.join(dirpath, d)).st_dev == dev]
            for f in filenames:
                with contextlib.suppress(OSError):
                    total += os.lstat(os.path.join(dirpath, f)).st_blocks * 512
        return total

    def iter_in_use(self) -> Iterator[Volume]:
        """Volumes some container references."""
        return (v for v in self.list() if v.users)


def label_matches(labels: Mapping[str, str], spec: str) -> bool:
    """Docker's ``label`` filter value: ``key`` (present) or ``key=value``."""
    key, eq, value = spec.partition("=")
    if not eq:
        return key in labels
    return labels.get(key) == value


def volume_view(volume: Volume, mountpoint: Path, usage: int | None = None) -> dict[str, Any]:
    """Docker's ``Volume`` shape; ``usage`` (bytes) fills ``UsageData`` when known."""
    doc: dict[str, Any] = {
        "CreatedAt": volume.created_at,
        "Driver": DRIVER,
        "Labels": dict(volume.labels),
        "Mountpoint": str(mountpoint),
        "Name": volume.name,
        "Options": dict(volume.options),
        "Scope": "local",
    }
    if usage is not None:
        doc["UsageData"] = {"Size": usage, "RefCount": len(volume.users)}
    return doc
