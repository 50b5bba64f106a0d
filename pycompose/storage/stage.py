"""Making resolved mounts real for a container start, and undoing them.

Every bind and volume mount is *staged*: its source is opened without following symlinks
(see ``safepath``) and bind-mounted from ``/proc/self/fd/N`` onto
``<staging>/<container-id>/<n>``, a path inside the engine's own 0700 state directory. The
OCI spec then names the staging point, which nobody else can swap, so what the runtime
mounts into the container is exactly the inode opened here. Volumes are copied up from the
image on their first mount, and subpaths are opened below the volume's data directory the
same way. Secret and config files are written under ``<staging>/<container-id>/files``.

``release`` unmounts the staging points (deepest first) and removes the directory without
following symlinks; ``cleanup_stale`` does it for containers a crashed daemon left behind.
"""

from __future__ import annotations

import contextlib
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
from pycompose.storage.safepath import Binder, OpenHook, open_below, open_nofollow
from pycompose.storage.secrets import FileMount, write_files
from pycompose.storage.volumes import VolumeStore

_FILES = "files"


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

    def prepare(
        self,
        container_id: str,
        mounts: Sequence[ResolvedMount],
        *,
        rootfs: str | None = None,
        files: Sequence[FileMount] = (),
    ) -> tuple[MountSpec, ...]:
        """Stage ``mounts`` (from :func:`resolve_mounts`) and ``files`` for a start; returns
        the ``MountSpec`` list for the OCI spec. ``rootfs`` (the mounted container root) is
        where copy-up reads the image's content; without it nothing is copied."""
        self.release(container_id, mounts)
        base = self._base(container_id)
        base.mkdir(mode=0o700)
        specs: list[MountSpec] = []
        try:
            for index, m in enumerate(mounts):
                specs.append(self._one(base, index, container_id, m, rootfs))
            specs += write_files(base / _FILES, files)
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
            return open_nofollow(m.source, create_dirs=m.create_source, hook=self.hook)
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

    def cleanup_stale(self, live: Collection[str]) -> list[str]:
        """Release the staging dirs of containers not in ``live`` (daemon start-up)."""
        gone = [e for e in os.listdir(self.staging) if e not in live]
        for entry in gone:
            self.release(entry)
        return gone
