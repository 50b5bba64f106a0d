"""What a daemon does at start about containers an earlier daemon left.

Containers whose monitor is still alive are re-adopted (a watcher follows them again; their
rootfs mount is still in place because mounts outlive the daemon, and is re-mounted if
someone removed it). Those that exited while no daemon ran get their real exit status from
the monitor's exit file and go through the normal exit path (restart policy, AutoRemove).
Debris of a crash is removed, only inside our own directories: container directories
without a readable record, rootfs mounts of containers that are not running, and runtime
state in our private runc root that no running container owns. Finally containers with the
``always``/``unless-stopped`` policy that are down are started, as dockerd does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from pycompose.engine.containers.record import ContainerRecord
from pycompose.engine.containers.store import delete_tree
from pycompose.engine.errors import EngineError
from pycompose.engine.runtime import monitor
from pycompose.engine.runtime.logs import format_timestamp
from pycompose.storage.overlay import RootfsDirs, is_mountpoint, mount_rootfs, unmount_rootfs

if TYPE_CHECKING:
    from pycompose.engine.containers.manager import ContainerManager

log = logging.getLogger("pycompose.engine.containers")


async def recover(mgr: ContainerManager) -> None:
    """Re-adopt, settle and clean up; see the module docstring."""
    assert mgr.runner is not None
    alive: set[str] = set()
    for record in mgr.store.all():
        record.exec_ids.clear()  # execs end with the daemon that ran them
        try:
            if await _settle(mgr, record):
                alive.add(record.id)
        except Exception:  # one bad container must not stop the others' recovery
            log.exception("recovery of container %s failed", record.short_id)
    await asyncio.to_thread(_remove_broken, mgr)
    await _clean_runtime_state(mgr, alive)
    # Volumes: users that are gone dropped, running ones re-counted, stale staging released.
    await asyncio.to_thread(mgr.storage.recover, mgr.store.all(), alive)
    for record in mgr.store.all():
        if record.state.status == "exited" and _starts_with_daemon(record):
            with contextlib.suppress(EngineError):
                await mgr.runner.start(record)


def _starts_with_daemon(record: ContainerRecord) -> bool:
    # Docker: "always" comes back with the daemon even after a manual stop, "unless-stopped"
    # only if it was not stopped by hand.
    name = (record.host_config.get("RestartPolicy") or {}).get("Name")
    return name == "always" or (name == "unless-stopped" and not record.manually_stopped)


async def _settle(mgr: ContainerManager, record: ContainerRecord) -> bool:
    """Bring one record in line with reality; True when its process is still running."""
    assert mgr.runner is not None
    directory = mgr.dir(record)
    status = record.state.status
    if status in ("removing", "dead"):
        await mgr.release(record)
        removed = mgr.store.remove(record)
        if removed is not None:
            await asyncio.to_thread(delete_tree, removed)
        mgr.publish(record, "destroy")
        return False
    found = monitor.adopt(directory)
    if isinstance(found, monitor.Running):
        # Also for a "created" record: the daemon died between runc starting the container
        # and the record saying so.
        await _adopt(mgr, record, found)
        return True
    started_unrecorded = status == "created" and found is not None
    if status not in ("running", "paused", "restarting") and not started_unrecorded:
        await asyncio.to_thread(unmount_rootfs, mgr.mounter, directory)
        return False
    if found is None:
        found = monitor.ExitStatus(128, False, _now_ns(),
                                   "the daemon stopped while the container was starting")
    await mgr.runner.record_exit(record, found)
    return False


async def _adopt(mgr: ContainerManager, record: ContainerRecord, found: monitor.Running) -> None:
    assert mgr.runner is not None
    runtime, _ = await mgr.runner.runtime()
    directory = mgr.dir(record)
    image = mgr.images.resolve(record.image_id)
    lower = mgr.layers.rootfs_lowerdirs(list(image.layer_chain_ids))
    await asyncio.to_thread(mount_rootfs, mgr.mounter, lower, directory)
    paused = False
    with contextlib.suppress(EngineError):
        paused = (await runtime.state(record.id)).status == "paused"
    record.state.status = "paused" if paused else "running"
    record.state.pid = found.pid
    record.state.started_at = format_timestamp(found.started_at)
    mgr.store.save(record)
    live = mgr.live_of(record)
    live.attach, live.start_ns = found.attach, found.started_at
    live.started.set()
    live.watcher = asyncio.ensure_future(mgr.runner._watch(record))
    mgr.runner.health.resume(record)  # probing again, with the health as it was recorded
    if mgr.runner.network is not None:
        await mgr.runner.network.readopt(record)
    log.info("re-adopted running container %s (pid %d)", record.short_id, found.pid)


def _remove_broken(mgr: ContainerManager) -> None:
    """Directories a crash during create left without a record."""
    for name, reason in mgr.store.broken:
        directory = mgr.store.root / name
        if directory.is_symlink() or not directory.is_dir():
            continue
        merged = RootfsDirs.under(directory).merged
        if merged.exists() and is_mountpoint(str(merged)):
            unmount_rootfs(mgr.mounter, directory)
        if merged.exists() and is_mountpoint(str(merged)):
            log.warning("leaving %s: its rootfs is still mounted", directory)
            continue
        log.info("removing half-created container dir %s (%s)", name, reason)
        shutil.rmtree(directory)
    mgr.store.broken.clear()


async def _clean_runtime_state(mgr: ContainerManager, alive: set[str]) -> None:
    """Runtime state in our private runc root that no running container owns."""
    assert mgr.runner is not None
    root: Path = mgr.runner.runtime_root
    try:
        names = [p.name for p in root.iterdir()]
    except FileNotFoundError:
        return
    stale = [n for n in names if n not in alive]
    if not stale:
        return
    runtime, _ = await mgr.runner.runtime()
    for name in stale:
        with contextlib.suppress(EngineError):
            await runtime.delete(name, force=True)
        leftover = root / name
        if leftover.is_dir() and not leftover.is_symlink():
            # State the runtime itself cannot load any more (torn by the crash): our own dir.
            await asyncio.to_thread(shutil.rmtree, leftover, True)
        log.info("removed stale runtime state of %s", name[:12])


def _now_ns() -> int:
    import time

    return time.time_ns()
