"""Making resolved mounts real for a container start, and undoing them.

Every bind and volume mount is *staged*: its source is opened without following symlinks
(see ``safepath``) and bind-mounted from ``/proc/self/fd/N`` onto
``<staging>/<container-id>/<n>``, a path inside the engine's own 0700 state directory. The
OCI spec then names the staging point, which nobody else can swap, so what the runtime
mounts into the container is exactly the inode opened here. Volumes are copied up from the
image on their first mount, and subpaths are opened below the volume's data directory the
same way. Secret and config files are written once, at create, under
``<staging>/.files/<container-id>`` (:meth:`MountStager.set_files`), kept across restarts,
bind-mounted read-only by every ``prepare`` and removed by :meth:`MountStager.forget`.

``release`` unmounts the staging points (deepest first) and removes the directory without
following symlinks; ``cleanup_stale`` does it for containers a crashed daemon left behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
from collections.abc import Collection, Sequence
from pathlib import Path

from pycompose.engine.errors import EngineError, InvalidArgument
from pycompose.engine.runtime.spec import MountSpec
from pycompose.storage import copyup
from pycompose.storage.mounts import ResolvedMount
from pycompose.storage.overlay import MountError
from pycompose.storage.safepath import Binder, OpenHook, canonical, open_below, open_nofollow
from pycompose.storage.secrets import FileMount, write_files
from pycompose.storage.volumes import VolumeStore

_FILES = ".files"
_INDEX = "index.json"


class MountStager:
    """Stages and releases the mounts of containers; ``staging`` is ``<state>/mounts``."""

    def __init__(
        self, volumes: VolumeStore, binder: Binder, staging: Path, *, hook: OpenHook | None = None
    ) -> None:
        self.volumes = volumes
        self.binder = binder
        self.staging = Path(staging)
        self.hook = hook
        self.staging.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.staging, 0o700)
        self.staging = Path(os.path.realpath(self.staging))

    def _base(self, container_id: str) -> Path:
        if not container_id or "/" in container_id or container_id.startswith("."):
            raise InvalidArgument(f"invalid container id {container_id!r}")
        return self.staging / container_id

    def _files_dir(self, container_id: str) -> Path:
        self._base(container_id)  # validates the id
        return self.staging / _FILES / container_id

    def set_files(self, container_id: str, files: Sequence[FileMount]) -> None:
        """Write a container's secret and config files (at create; replaces earlier ones)."""
        directory = self._files_dir(container_id)
        if directory.exists():
            shutil.rmtree(directory)
        if not files:
            return
        (self.staging / _FILES).mkdir(mode=0o700, exist_ok=True)
        specs = write_files(directory, files)
        index = [{"target": s.target, "file": Path(s.source).name} for s in specs]
        tmp = directory / f".{_INDEX}.tmp"
        tmp.write_text(json.dumps(index))
        os.chmod(tmp, 0o600)
        os.replace(tmp, directory / _INDEX)

    def _file_specs(self, container_id: str) -> list[MountSpec]:
        directory = self._files_dir(container_id)
        try:
            index = json.loads((directory / _INDEX).read_text())
        except FileNotFoundError:
            return []
        return [
            MountSpec("bind", str(e["target"]), str(directory / str(e["file"])), read_only=True)
            for e in index
        ]

    def forget(self, container_id: str, mounts: Sequence[ResolvedMount] = ()) -> None:
        """The container is removed: release its mounts and delete its files."""
        self.release(container_id, mounts)
        directory = self._files_dir(container_id)
        if directory.exists():
            shutil.rmtree(directory)

    def prepare(
        self, container_id: str, mounts: Sequence[ResolvedMount], *, rootfs: str | None = None
    ) -> tuple[MountSpec, ...]:
        """Stage ``mounts`` (from :func:`resolve_mounts`) and the files given to
        :meth:`set_files` for a start; returns the ``MountSpec`` list for the OCI spec.
        ``rootfs`` (the mounted container root) is where copy-up reads the image's content;
        without it nothing is copied."""
        self.release(container_id, mounts)
        base = self._base(container_id)
        base.mkdir(mode=0o700)
        specs: list[MountSpec] = []
        try:
            for index, m in enumerate(mounts):
                specs.append(self._one(base, index, container_id, m, rootfs))
            specs += self._file_specs(container_id)
        except BaseException:
            self.release(container_id, mounts)
            raise
        return tuple(specs)

    def _one(
        self, base: Path, index: int, container_id: str, m: ResolvedMount, rootfs: str | None
    ) -> MountSpec:
        if m.type == "tmpfs":
            return MountSpec("tmpfs", m.target, read_only=m.read_only, options=m.options)
        if m.type == "bind":
            fd = self._open_bind(m)
        elif m.type == "volume":
            fd = self._open_volume(container_id, m, rootfs)
        else:
            raise InvalidArgument(f"mount {m.target}: unsupported mount type {m.type!r}")
        try:
            point = base / str(index)
            if stat.S_ISDIR(os.fstat(fd).st_mode):
                point.mkdir(mode=0o700)
            else:
                os.close(os.open(point, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            try:
                self.binder.bind_fd(fd, str(point), recursive=not m.non_recursive)
            except MountError as err:
                raise InvalidArgument(f"mount {m.target}: {err}") from err
        finally:
            os.close(fd)
        prop = m.propagation if m.type == "bind" else ""
        return MountSpec(m.type, m.target, str(point), m.read_only, prop, m.non_recursive)

    def _open_bind(self, m: ResolvedMount) -> int:
        try:
            # Symlinks present now are followed (the user named that path, as with Docker);
            # from here on, each component is opened without following any.
            path = canonical(m.source)
            return open_nofollow(path, create_dirs=m.create_source, hook=self.hook)
        except FileNotFoundError:
            raise InvalidArgument(
                f'invalid mount config for type "bind": bind source path does not exist: {m.source}'
            ) from None
        except OSError as err:
            raise InvalidArgument(f"bind source {m.source}: {err.strerror}") from err

    def _open_volume(self, container_id: str, m: ResolvedMount, rootfs: str | None) -> int:
        data = self.volumes.mount(m.source, container_id)
        try:
            volume = self.volumes.get(m.source)
            if not volume.populated:
                if m.copy_up and rootfs is not None:
                    self._copy_up(data, rootfs, m.target)
                self.volumes.mark_populated(m.source)
            if not m.subpath:
                return open_nofollow(str(data))
            parts = [p for p in m.subpath.split("/") if p]
            try:
                return open_below(str(data), parts, m.subpath, hook=self.hook)
            except FileNotFoundError:
                raise InvalidArgument(
                    f"cannot access path {m.subpath} in volume "
                    f"{m.source}: no such file or directory"
                ) from None
        except BaseException:
            self.volumes.unmount(m.source, container_id)
            raise

    @staticmethod
    def _copy_up(data: Path, rootfs: str, target: str) -> None:
        fd = os.open(data, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            if copyup.is_empty_dir(fd):
                copyup.copy_up(rootfs, target, fd)
        except OSError as err:
            raise InvalidArgument(
                f"copying image content at {target} into the volume: {err}"
            ) from err
        finally:
            os.close(fd)

    def release(self, container_id: str, mounts: Sequence[ResolvedMount] = ()) -> None:
        """Undo :meth:`prepare` (also fine when nothing, or only part, was prepared)."""
        base = self._base(container_id)
        errors: list[str] = []
        if base.exists():
            for point in self.binder.mounted_below(str(base)):
                try:
                    self.binder.unmount(point)
                except MountError:
                    try:
                        self.binder.unmount(point, detach=True)
                    except MountError as err:
                        errors.append(str(err))
            if errors:
                raise EngineError(f"cannot release mounts of {container_id}: {errors}")
            shutil.rmtree(base)  # fd-based, never follows a symlink out of base
        for m in mounts:
            if m.type == "volume" and m.source:
                with contextlib.suppress(EngineError):
                    self.volumes.unmount(m.source, container_id)

    def adopt(self, container_id: str, mounts: Sequence[ResolvedMount]) -> None:
        """After a daemon restart, for a container still running: its staged mounts stay,
        and its volumes count it as mounted again (so driver mounts are not pulled from
        under it when another user stops)."""
        for m in mounts:
            if m.type == "volume" and m.source:
                self.volumes.adopt(m.source, container_id)

    def cleanup_stale(
        self, running: Collection[str], existing: Collection[str] | None = None
    ) -> list[str]:
        """At daemon start: release the staging dirs of containers not ``running``, and
        delete the files of containers that no longer exist (when ``existing`` is given)."""
        gone = [e for e in os.listdir(self.staging) if not e.startswith(".") and e not in running]
        for entry in gone:
            self.release(entry)
        files = self.staging / _FILES
        if existing is not None and files.is_dir():
            for entry in os.listdir(files):
                if entry not in existing:
                    shutil.rmtree(files / entry)
        return gone
