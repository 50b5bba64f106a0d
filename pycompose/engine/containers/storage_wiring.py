"""Storage in a container's lifecycle: volumes, bind mounts, tmpfs, secrets and configs.

The containers component calls :class:`StorageWiring` at each step; the work itself is done
by ``pycompose.storage`` (``resolve_mounts``, ``MountStager``, ``VolumeStore``):

- create: :meth:`StorageWiring.create` resolves ``Binds``, ``Mounts``, ``Tmpfs``,
  ``Config.Volumes``, the image's ``VOLUME`` entries and ``VolumesFrom`` (named volumes are
  created, anonymous ones made, every volume counted as used by the container), writes the
  request's ``Secrets``/``Configs`` files, and stores the resolved mounts in the record
  (``resolved_mounts``) and Docker's view of them in ``record.mounts`` (inspect ``Mounts``);
  :meth:`StorageWiring.undo_create` takes it all back when the create fails later on;
- start: :meth:`StorageWiring.prepare`, once the rootfs is mounted, stages every mount (and
  fills new volumes from the image) and returns the ``MountSpec`` list for the OCI spec;
- exit: :meth:`StorageWiring.release` unmounts the staging points;
- remove: :meth:`StorageWiring.forget` drops the files and the volume references, removing
  the container's anonymous volumes with ``rm -v`` (or ``--rm``);
- daemon start: :meth:`StorageWiring.recover` forgets users that no longer exist, re-counts
  the running containers' volume mounts and releases what a crash left staged.

Without the storage component (``StorageWiring()``) a request naming any mount is refused
with an error saying so, never silently run without its mounts.

The methods block (file I/O, mount(2)): the async callers run the kernel-facing ones
(``prepare``, ``release``, ``forget``, ``recover``) in worker threads.
"""

from __future__ import annotations

import logging
import os
import posixpath
import stat
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pycompose.engine.errors import InvalidArgument
from pycompose.storage import copyup, secrets
from pycompose.storage.mounts import MountsLookup, ResolvedMount, release_volumes, resolve_mounts

if TYPE_CHECKING:
    from pycompose.engine.containers.record import ContainerRecord
    from pycompose.engine.runtime.spec import MountSpec
    from pycompose.storage.stage import MountStager
    from pycompose.storage.volumes import VolumeStore

log = logging.getLogger("pycompose.engine.containers")

MOUNT_FIELDS = ("Binds", "Mounts", "Tmpfs", "VolumesFrom")
"""HostConfig fields that ask for mounts."""
FILE_FIELDS = ("Secrets", "Configs")
"""Top-level create-request fields with secret and config files (see ``storage.secrets``)."""
MOUNT_POINT_ORDER = ("Type", "Name", "Source", "Destination", "Driver", "Mode", "RW",
                     "Propagation")  # fmt: skip
FILES_DIR = ".files"
"""Where ``MountStager.set_files`` keeps a container's files: ``<staging>/.files/<id>``
(the staging points themselves are ``<staging>/<id>/<n>``; see ``storage.stage``)."""


def resolved(record: ContainerRecord) -> list[ResolvedMount]:
    """The record's mounts as :func:`resolve_mounts` returned them at create."""
    return [ResolvedMount.from_json(doc) for doc in record.resolved_mounts]


def mount_point(view: Mapping[str, Any]) -> dict[str, Any]:
    """A ``MountPoint`` with its keys in the order of Docker's Go type (what clients that
    print ``{{json .Mounts}}`` show)."""
    return {k: view[k] for k in MOUNT_POINT_ORDER if k in view}


def tmpfs_mount_points(rootfs: Path, mounts: Iterable[ResolvedMount]) -> None:
    """Give an existing mount point of a tmpfs with ``mode=`` that mode.

    runc before 1.1.8 chmods a tmpfs to the mode of the directory it is mounted on when that
    directory exists (runc issue 3911), which is always the case from the second start on
    (runc made it 0755 the first time): the ``mode`` asked for would be lost. The directory
    is looked up inside the rootfs with symlinks resolved within it, never on the host.
    """
    for m in mounts:
        modes = [o.partition("=")[2] for o in m.options if o.startswith("mode=")]
        if m.type != "tmpfs" or not modes:
            continue
        root_fd = os.open(rootfs, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            fd = copyup.open_in_root(root_fd, m.target)
        finally:
            os.close(root_fd)
        if fd is None:
            continue  # runc creates it, and then the mount's own mode applies
        try:
            if stat.S_ISDIR(os.fstat(fd).st_mode):
                os.fchmod(fd, int(modes[-1], 8))
        finally:
            os.close(fd)


class StorageWiring:
    """The storage steps of the container lifecycle (see the module docstring)."""

    def __init__(
        self, volumes: VolumeStore | None = None, stager: MountStager | None = None
    ) -> None:
        self.volumes = volumes
        self.stager = stager

    # -- create ---------------------------------------------------------------------------

    def create(
        self,
        record: ContainerRecord,
        body: Mapping[str, Any],
        image_config: Mapping[str, Any] | None,
        lookup: MountsLookup,
    ) -> list[str]:
        """Resolve the mounts and write the files of ``record`` (not stored yet), filling
        ``record.resolved_mounts`` and ``record.mounts``; returns warnings for the client.

        ``body`` is the create request (its ``Secrets``/``Configs``), ``image_config`` the
        image's ``config`` object, ``lookup`` gives another container's ``Mounts``."""
        if self.volumes is None or self.stager is None:
            self._refuse_without_storage(record, body, image_config)
            return []
        files = secrets.parse_api(body.get("Secrets"), body.get("Configs"))
        warnings: list[str] = []
        mounts = resolve_mounts(
            record.host_config,
            image_config,
            container_id=record.id,
            volumes=self.volumes,
            container_volumes=record.config.get("Volumes"),
            volumes_from=lookup,
            warnings=warnings,
        )
        try:
            taken = {m.target for m in mounts}
            for f in files:
                if f.target in taken:
                    raise InvalidArgument(f"Duplicate mount point: {f.target} ({f.kind} {f.name})")
            self.stager.set_files(record.id, files)
        except BaseException:
            self.undo_create(record.id, mounts)
            raise
        record.resolved_mounts = [m.to_json() for m in mounts]
        # As in Docker, HostConfig.Tmpfs entries are not mount points (--mount tmpfs ones are).
        plain_tmpfs = {posixpath.normpath(t) for t in record.host_config.get("Tmpfs") or {}}
        record.mounts = [mount_point(m.inspect(self.volumes)) for m in mounts
                         if not (m.type == "tmpfs" and m.target in plain_tmpfs)]  # fmt: skip
        return warnings

    @staticmethod
    def _refuse_without_storage(
        record: ContainerRecord, body: Mapping[str, Any], image_config: Mapping[str, Any] | None
    ) -> None:
        asked = [f"HostConfig.{k}" for k in MOUNT_FIELDS if record.host_config.get(k)]
        asked += [k for k in FILE_FIELDS if body.get(k)]
        if record.config.get("Volumes") or (image_config or {}).get("Volumes"):
            asked.append("Volumes (anonymous volumes)")
        if asked:
            raise InvalidArgument(
                f"{', '.join(asked)}: cannot be honoured, this engine runs without its "
                "storage component"
            )

    def undo_create(self, container_id: str, mounts: Sequence[ResolvedMount]) -> None:
        """A create that failed after :meth:`create`: its files, references and anonymous
        volumes go."""
        if self.volumes is None or self.stager is None:
            return
        self.stager.forget(container_id, mounts)
        release_volumes(mounts, container_id, self.volumes, remove_anonymous=True)

    # -- start and exit -------------------------------------------------------------------

    def prepare(self, record: ContainerRecord, rootfs: Path) -> tuple[MountSpec, ...]:
        """Stage the container's mounts for a start (``rootfs`` mounted); the OCI mounts."""
        if self.stager is None:
            return ()
        mounts = resolved(record)
        if not mounts and not (self.stager.staging / FILES_DIR / record.id).exists():
            return ()  # nothing to stage: keep the start of a plain container fast
        tmpfs_mount_points(rootfs, mounts)
        return self.stager.prepare(record.id, mounts, rootfs=str(rootfs))

    def release(self, record: ContainerRecord) -> None:
        """The container stopped (or its start failed): unmount its staging points."""
        if self.stager is None:
            return
        mounts = resolved(record)
        if mounts or (self.stager.staging / record.id).exists():
            self.stager.release(record.id, mounts)

    # -- remove ---------------------------------------------------------------------------

    def forget(self, record: ContainerRecord, remove_anonymous: bool = False) -> list[str]:
        """The container is being removed: release everything, delete its files, stop
        counting it as a volume user; with ``remove_anonymous`` (``rm -v``) its anonymous
        volumes nobody else uses are removed. Returns the volumes removed."""
        if self.volumes is None or self.stager is None:
            return []
        mounts = resolved(record)
        self.stager.forget(record.id, mounts)
        return release_volumes(
            mounts, record.id, self.volumes, remove_anonymous=remove_anonymous
        )

    # -- daemon start ---------------------------------------------------------------------

    def recover(self, records: Iterable[ContainerRecord], running: Collection[str]) -> None:
        """After the containers were settled: volume users that no longer exist are
        dropped, running containers count as mounting their volumes again, and staging
        dirs and files of containers that are not running (or gone) are released."""
        if self.volumes is None or self.stager is None:
            return
        records = list(records)
        existing = {r.id for r in records}
        self.volumes.reconcile(existing)
        for record in records:
            if record.id in running:
                self.stager.adopt(record.id, resolved(record))
        stale = self.stager.cleanup_stale(running, existing)
        if stale:
            log.info("released the staged mounts of %d stopped containers", len(stale))
