"""The containers' owner in the daemon: records, names, events, waiters and removal.

``ContainerManager`` keeps the :class:`ContainerStore`, turns create requests into records,
answers list/inspect/wait, and removes containers releasing every kernel resource in reverse
order of acquisition (process, runtime state, rootfs mount, directory). Running a container
(start, stop, kill, pause, the exit watcher and restart policies) is in
:mod:`pycompose.engine.containers.runner`; recovery after a crash in
:mod:`pycompose.engine.containers.recovery`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pycompose.engine.containers import views
from pycompose.engine.containers.bundle import (
    command_of,
    etc_params,
    merge_image_config,
)
from pycompose.engine.containers.record import ZERO_TIME, ContainerRecord, now_rfc3339
from pycompose.engine.containers.request import validate_create
from pycompose.engine.containers.storage_wiring import StorageWiring
from pycompose.engine.containers.store import ContainerStore, delete_tree
from pycompose.engine.errors import Conflict, InvalidArgument, NotFound
from pycompose.engine.runtime.monitor import monitor_pidfd, wait_gone, wait_monitor_gone
from pycompose.storage.overlay import Mounter, RootfsDirs, is_mountpoint, unmount_rootfs

if TYPE_CHECKING:
    from pycompose.engine.api.app import ContainerListQuery
    from pycompose.engine.containers.runner import Runner
    from pycompose.engine.images.store import ImageRecord, ImageStore
    from pycompose.storage.layers import LayerStore

log = logging.getLogger("pycompose.engine.containers")

Publish = Callable[[str, str, str, dict[str, str]], Any]


@dataclass
class Live:
    """In-memory facts about one container while the daemon runs."""

    watcher: asyncio.Task[None] | None = None
    started: asyncio.Event = field(default_factory=asyncio.Event)
    exit_waiters: list[asyncio.Future[dict[str, Any]]] = field(default_factory=list)
    removed_waiters: list[asyncio.Future[dict[str, Any]]] = field(default_factory=list)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    attach: str = ""
    tty_attachers: int = 0
    """TTY attaches waiting for the start: they set the terminal size themselves."""
    start_ns: int = 0
    restart_task: asyncio.Task[None] | None = None
    readers: set[asyncio.Future[None]] = field(default_factory=set)
    """Attaches still sending the container's output: its files are deleted after them."""


class ContainerManager:
    """Every container of one engine."""

    def __init__(
        self,
        root: Path,
        images: ImageStore,
        layers: LayerStore,
        mounter: Mounter,
        publish: Publish,
    ) -> None:
        self.store = ContainerStore(root)
        self.images = images
        self.layers = layers
        self.mounter = mounter
        self._publish = publish
        self.live: dict[str, Live] = {}
        self.runner: Runner | None = None
        # Volumes, binds, tmpfs, secrets: the API's setup gives it the storage component.
        self.storage = StorageWiring()
        self.closing = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._deleting: set[asyncio.Future[None]] = set()  # trees of removed containers

    def background(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run ``coro`` as a task the manager keeps a reference to until it ends."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- small helpers --------------------------------------------------------------------

    def get(self, ref: str) -> ContainerRecord:
        """A container by id, unique id prefix or name; 404 ``No such container: ref``."""
        return self.store.get(ref)

    def live_of(self, record: ContainerRecord) -> Live:
        """The in-memory part of a container, created on first use."""
        return self.live.setdefault(record.id, Live())

    def dir(self, record: ContainerRecord) -> Path:
        """The container's directory: record, bundle, logs, monitor state, rootfs dirs."""
        return self.store.dir(record.id)

    def publish(self, record: ContainerRecord, action: str, **extra: str) -> None:
        """A ``container`` event with Docker's attributes (labels, image, name, extras)."""
        attrs = {**record.labels, "image": str(record.config.get("Image") or record.image_name),
                 "name": record.name, **extra}  # fmt: skip
        self._publish("container", action, record.id, attrs)

    def image_in_use(self, image_id: str) -> bool:
        """Whether any container (in any state) was created from ``image_id``."""
        return any(r.image_id == image_id for r in self.store.all())

    def info(self) -> dict[str, Any]:
        """Counts for ``/info``."""
        states = [r.state.status for r in self.store.all()]
        running = sum(s in ("running", "restarting") for s in states)
        paused = states.count("paused")
        out: dict[str, Any] = {
            "Containers": len(states), "ContainersRunning": running,
            "ContainersPaused": paused, "ContainersStopped": len(states) - running - paused,
            # A SIGTERMed daemon stops its containers (see close); a killed one re-adopts them.
            "LiveRestoreEnabled": False,
        }  # fmt: skip
        if self.runner is not None and self.runner.runtime_name:
            out["DefaultRuntime"] = self.runner.runtime_name
        return out

    # -- create ---------------------------------------------------------------------------

    def create(self, body: Any, name: str | None) -> tuple[ContainerRecord, list[str]]:
        """``POST /containers/create``: validate, resolve the image, write the record."""
        config, host, networking = validate_create(body)
        image = self._resolve_image(str(config["Image"]))
        warnings = merge_image_config(config, image.config)
        args = command_of(config)
        if not args:
            raise InvalidArgument("No command specified")
        self._check_host_config(host)
        if self.runner is not None and self.runner.network is not None:
            warnings += self.runner.network.check_create(config, host, networking)
        cid = self.store.new_id()
        name = self.store.claim_name(name)
        if not config.get("Hostname"):
            mode = host["NetworkMode"]
            config["Hostname"] = socket.gethostname() if mode == "host" else cid[:12]
        for key in ("AttachStdin", "AttachStdout", "AttachStderr", "Tty", "OpenStdin",
                    "StdinOnce"):  # fmt: skip
            config.setdefault(key, False)
        host.setdefault("Runtime", "runc")
        record = ContainerRecord(
            id=cid, name=name, created=now_rfc3339(), image_id=image.id,
            image_name=str(config["Image"]), config=config, host_config=host,
            networking_config=networking, path=args[0], args=args[1:],
        )  # fmt: skip
        directory = self.store.root / cid
        record.network_settings = {
            "ResolvConfPath": str(directory / "resolv.conf"),
            "HostnamePath": str(directory / "hostname"),
            "HostsPath": str(directory / "hosts"),
            "LogPath": str(directory / "json.log"),
            "GraphDriver": self._graph_data(image, directory),
            "Networks": {self._network_name(host["NetworkMode"]): _endpoint()},
            "Ports": {},
            "SandboxKey": "",
        }
        image_config = image.config.get("config") or image.config.get("Config") or {}
        warnings += self.storage.create(record, body, image_config, self._mounts_of)
        try:
            self.store.add(record)
        except BaseException:
            self.storage.forget(record, remove_anonymous=True)
            raise
        self.publish(record, "create")
        return record, warnings

    def _mounts_of(self, ref: str) -> list[dict[str, Any]]:
        """Another container's ``Mounts`` (for ``VolumesFrom``)."""
        return list(self.get(ref).mounts)

    def _resolve_image(self, name: str) -> ImageRecord:
        try:
            return self.images.resolve(name)
        except NotFound:
            shown = name if ":" in name.rsplit("/", 1)[-1] or "@" in name else f"{name}:latest"
            raise NotFound(f"No such image: {shown}") from None

    def _check_host_config(self, host: dict[str, Any]) -> None:
        if host.get("LogConfig", {}).get("Type") not in ("json-file", "local", "none"):
            raise InvalidArgument("HostConfig.LogConfig.Type is not supported")
        from pycompose.engine.runtime.logs import parse_log_opts

        # Refused at create, as dockerd does, rather than at start when `run` already waits.
        etc_params({"Hostname": "h"}, host, ("", ""))
        config = dict(host["LogConfig"].get("Config") or {})
        parse_log_opts({k: v for k, v in config.items() if k in ("max-size", "max-file")})
        for key in config:
            if key not in ("max-size", "max-file"):
                raise InvalidArgument(f"unknown log opt '{key}' for json-file log driver")

    def _graph_data(self, image: ImageRecord, directory: Path) -> dict[str, str]:
        dirs = RootfsDirs.under(directory)
        lower = self.layers.rootfs_lowerdirs(list(image.layer_chain_ids))
        return {"LowerDir": ":".join(lower), "MergedDir": str(dirs.merged),
                "UpperDir": str(dirs.upper), "WorkDir": str(dirs.work)}  # fmt: skip

    @staticmethod
    def _network_name(mode: str) -> str:
        return "bridge" if mode == "default" else mode.partition(":")[0]

    # -- list and inspect -----------------------------------------------------------------

    async def list_containers(self, query: ContainerListQuery) -> list[dict[str, Any]]:
        """``GET /containers/json``."""
        records = views.filter_records(
            self.store.all(), query.filters, all_states=query.all or bool(query.limit),
            image_matches=self._image_matches,
        )  # fmt: skip
        if query.limit is not None and query.limit > 0:
            records = records[: query.limit]
        out = [views.summary(r) for r in records]
        if query.size:
            for item, record in zip(out, records, strict=True):
                item.update(await self.sizes(record))
        return out

    async def sizes(self, record: ContainerRecord) -> dict[str, int]:
        """``SizeRw`` (the container's own layer) and ``SizeRootFs`` (with the image)."""
        size_rw = await asyncio.to_thread(_tree_size, self.dir(record) / "upper")
        try:
            image_size = int(self.images.resolve(record.image_id).size)
        except NotFound:
            image_size = 0
        return {"SizeRw": size_rw, "SizeRootFs": size_rw + image_size}

    def _image_matches(self, record: ContainerRecord, ref: str) -> bool:
        try:
            return self.images.resolve(ref).id == record.image_id
        except NotFound:
            return False

    def inspect(self, record: ContainerRecord) -> dict[str, Any]:
        """``GET /containers/{id}/json``."""
        return views.inspect(record)

    # -- wait -----------------------------------------------------------------------------

    def waiter(self, record: ContainerRecord, condition: str) -> asyncio.Future[dict[str, Any]]:
        """A future for ``POST /containers/{id}/wait``, registered now (before any start)."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[dict[str, Any]] = loop.create_future()
        live = self.live_of(record)
        # Waiters whose client went away are cancelled: forget them.
        live.exit_waiters = [f for f in live.exit_waiters if not f.done()]
        live.removed_waiters = [f for f in live.removed_waiters if not f.done()]
        if condition == "removed":
            live.removed_waiters.append(fut)
        elif condition == "next-exit":
            live.exit_waiters.append(fut)
        elif condition in ("", "not-running"):
            if record.state.running:
                live.exit_waiters.append(fut)
            else:
                fut.set_result(_wait_result(record))
        else:
            raise InvalidArgument(f"invalid condition: \"{condition}\"")
        return fut

    def notify_exit(self, record: ContainerRecord) -> None:
        """Answer waiters of the exit that was just recorded."""
        live = self.live_of(record)
        waiters, live.exit_waiters = live.exit_waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(_wait_result(record))

    # -- rename and remove ----------------------------------------------------------------

    def rename(self, record: ContainerRecord, new_name: str) -> None:
        """``POST /containers/{id}/rename``."""
        if not new_name:
            raise InvalidArgument("Neither old nor new names may be empty")
        old = record.name
        if new_name.lstrip("/") == old:
            raise Conflict("Renaming a container with the same name as its current name")
        self.store.rename(record, new_name)
        if self.runner is not None and self.runner.network is not None and record.state.running:
            self.runner.network.renamed(record)
        self.publish(record, "rename", oldName="/" + old)

    async def remove(self, record: ContainerRecord, *, force: bool, volumes: bool = False) -> None:
        """``DELETE /containers/{id}``: stop if forced, then release everything in reverse;
        ``volumes`` (``?v=1``) also removes its anonymous volumes."""
        assert self.runner is not None
        live = self.live_of(record)
        if record.state.status == "removing":
            raise Conflict(f"removal of container {record.id} is already in progress")
        if record.state.running:
            if not force:
                raise Conflict(
                    f"You cannot remove a running container {record.id}. Stop the container "
                    "before attempting removal or force remove"
                )
            await self.runner.kill_now(record)
        async with live.lock:
            if live.restart_task is not None:
                live.restart_task.cancel()
            if live.watcher is not None:
                await asyncio.shield(live.watcher)
            # On disk "removing" makes a restarted daemon finish the job. An AutoRemove
            # container that exited needs no such note: its record still says running and
            # the monitor's exit file makes the next daemon remove it anyway.
            auto = bool(record.host_config.get("AutoRemove")) and not record.state.running
            record.state.transition("removing", record.name)
            if not auto:
                self.store.save(record)
            try:
                await self.release(record, volumes=volumes)
                removed = self.store.remove(record)
                # A monitor still deleting the runtime's state (runc delete, a few ms after
                # the exit) is waited for after the answer, with the directory's deletion.
                monitor_fd = monitor_pidfd(removed) if removed is not None else None
            except Exception:
                record.state.transition("dead", record.name)  # as dockerd: removal failed
                self.store.save(record)
                raise
        self.publish(record, "destroy")
        result = _wait_result(record)
        for fut in live.exit_waiters + live.removed_waiters:
            if not fut.done():
                fut.set_result(result)
        self.live.pop(record.id, None)
        task = asyncio.ensure_future(self._finish_removal(removed, list(live.readers),
                                                          monitor_fd))  # fmt: skip
        self._deleting.add(task)
        task.add_done_callback(self._deleted)

    async def _finish_removal(self, tree: Path | None, readers: list[asyncio.Future[None]],
                              monitor_fd: int | None) -> None:  # fmt: skip
        """After a removal's answer: wait for the monitor to finish, and delete the files
        once the attaches have sent all of the output (they read from the moved directory;
        a stuck client gets a minute)."""
        await wait_gone(monitor_fd)
        if readers:
            await asyncio.wait(readers, timeout=60)
        if tree is not None:
            await asyncio.to_thread(delete_tree, tree)

    def _deleted(self, task: asyncio.Future[None]) -> None:
        self._deleting.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("deleting a removed container's files failed (the next daemon start "
                      "retries): %s", task.exception())

    async def release(self, record: ContainerRecord, *, volumes: bool = False) -> None:
        """Runtime state, the rootfs mount, then storage (staged mounts, files, volume
        references; anonymous volumes too with ``volumes``); raise if a mount is still
        there. For a container about to be removed."""
        assert self.runner is not None
        directory = self.dir(record)
        # Independent: the runtime's state (its delete may still be running in the
        # monitor) and the rootfs mount.
        await asyncio.gather(self.runner.delete_runtime_state(record),
                             asyncio.to_thread(unmount_rootfs, self.mounter, directory))
        merged = RootfsDirs.under(directory).merged
        if merged.exists() and is_mountpoint(str(merged)):
            raise Conflict(f"container {record.id}: its root filesystem is still mounted")
        await asyncio.to_thread(self.storage.forget, record, volumes)

    async def close(self) -> None:
        """Daemon shutdown: stop watchers' restarts, stop running containers (as dockerd does
        without live-restore), and remove the runtime's state dir when empty."""
        self.closing = True
        assert self.runner is not None
        running = [r for r in self.store.all() if r.state.running]
        await asyncio.gather(*(self.runner.stop(r, timeout=None, on_shutdown=True)
                               for r in running), return_exceptions=True)  # fmt: skip
        for live in list(self.live.values()):
            for task in (live.restart_task, live.watcher):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(BaseException):
                        await task
        # Monitors of containers that exited just now may still be running the runtime's
        # delete, which removes their cgroups: let them finish first.
        await asyncio.gather(*(wait_monitor_gone(self.dir(r)) for r in self.store.all()),
                             *self._deleting, return_exceptions=True)  # fmt: skip
        await self.runner.close()
        from pycompose.engine.runtime.cgroups import remove_parent_if_empty

        # The shared parent cgroup runc made for our containers, once none are left in it.
        await asyncio.to_thread(remove_parent_if_empty)


def _endpoint() -> dict[str, Any]:
    return {"IPAMConfig": None, "Links": None, "Aliases": None, "NetworkID": "",
            "EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0,
            "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
            "MacAddress": "", "DriverOpts": None}  # fmt: skip


def _wait_result(record: ContainerRecord) -> dict[str, Any]:
    # A start failure was already the answer to the start request; Error is for exits that
    # went wrong (a monitor that vanished), as in Docker.
    ran = record.state.started_at != ZERO_TIME
    error = {"Message": record.state.error} if record.state.error and ran else None
    return {"StatusCode": record.state.exit_code, "Error": error}


def _tree_size(path: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total
