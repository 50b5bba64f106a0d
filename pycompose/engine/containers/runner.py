"""Running containers: start, stop, kill, pause, the exit watcher and restart policies.

Start acquires, in order: the overlay rootfs (image layers + the container's upper/work
dirs), the engine-written /etc files, the OCI bundle (``config.json``) and the process under
its own monitor (see :mod:`pycompose.engine.runtime.monitor`), which outlives the daemon.
A failed step releases what the earlier ones took. When the process exits, the watcher
records the exit (code, OOM kill, time), unmounts the rootfs, answers waiters and applies
the restart policy with Docker's back-off (100 ms doubling to at most 1 min, reset after
10 s of running) or removes an ``AutoRemove`` container.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import time
from collections.abc import Awaitable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from pycompose.engine.containers.attach import resize_after_start
from pycompose.engine.containers.bundle import (
    RuntimeContext,
    etc_params,
    parse_signal,
    spec_params,
    stop_timeout,
)
from pycompose.engine.containers.probes import HealthChecks
from pycompose.engine.containers.record import ContainerRecord
from pycompose.engine.errors import Conflict, EngineError, NotFound
from pycompose.engine.runtime import monitor
from pycompose.engine.runtime.cgroups import HostCgroups, probe_host
from pycompose.engine.runtime.etcfiles import read_host_files, write_etc_files
from pycompose.engine.runtime.logs import format_timestamp, parse_log_opts
from pycompose.engine.runtime.oci import OciError, OciRuntime, RuncRuntime, probe_runtime
from pycompose.engine.runtime.spawn import MonitorLauncher
from pycompose.engine.runtime.spec import build_spec
from pycompose.storage.overlay import mount_rootfs, unmount_rootfs

if TYPE_CHECKING:
    from pycompose.engine.containers.manager import ContainerManager, Live
    from pycompose.engine.containers.networking import ContainerNetworking, Wired

log = logging.getLogger("pycompose.engine.containers")

BACKOFF_START = 0.1
BACKOFF_MAX = 60.0
BACKOFF_RESET_AFTER = 10.0


class Runner:
    """Starts and stops the manager's containers on one OCI runtime."""

    def __init__(self, manager: ContainerManager, runtime_root: Path, work_dir: Path,
                 preferred: str | None = None) -> None:  # fmt: skip
        self.mgr = manager
        self.runtime_root = runtime_root
        self._work_dir = work_dir
        self._preferred = preferred
        self._runtime: asyncio.Task[tuple[OciRuntime, HostCgroups]] | None = None
        self._backoff: dict[str, float] = {}
        self.runtime_name = ""
        self.network: ContainerNetworking | None = None
        """Set by the networking wiring: namespaces, ports and DNS around each run."""
        self.health = HealthChecks(manager)
        """Health check probers (started, stopped and paused with the containers)."""
        self.launcher = MonitorLauncher()

    # -- runtime --------------------------------------------------------------------------

    def begin_probe(self) -> None:
        """Start probing the OCI runtime in the background (it really starts a container)."""
        if self._runtime is None:
            self._runtime = asyncio.ensure_future(self._probe())

    async def _probe(self) -> tuple[OciRuntime, HostCgroups]:
        info = await asyncio.to_thread(probe_runtime, self._preferred, self._work_dir)
        log.info("OCI runtime %s (%s)", info.name, info.version)
        self.runtime_name = info.name
        host = await asyncio.to_thread(probe_host)
        self.launcher.refill()  # the first start finds a monitor ready
        return RuncRuntime(info.path, self.runtime_root, info.name), host

    async def runtime(self) -> tuple[OciRuntime, HostCgroups]:
        """The probed runtime and the host's cgroup facts."""
        self.begin_probe()
        assert self._runtime is not None
        return await asyncio.shield(self._runtime)

    # -- start ----------------------------------------------------------------------------

    async def start(self, record: ContainerRecord) -> None:
        """``POST /containers/{id}/start`` (304 for a running one is the API's business)."""
        live = self.mgr.live_of(record)
        async with live.lock:
            if record.state.status == "paused":
                raise Conflict("cannot start a paused container, try unpause instead")
            if record.state.status in ("running", "removing", "dead"):
                raise Conflict(f"container {record.id} is {record.state.status}")
            try:
                await self._start_locked(record, live)
            except Exception:
                if record.host_config.get("AutoRemove"):
                    self.mgr.background(self._auto_remove(record))  # as dockerd does
                raise

    async def _start_locked(self, record: ContainerRecord, live: Live) -> None:
        if live.restart_task is not None and live.restart_task is not asyncio.current_task():
            live.restart_task.cancel()
        live.restart_task = None
        runtime, host = await self.runtime()
        directory = self.mgr.dir(record)
        try:
            wired = await self.network.before_start(record) if self.network else None
            mon_config = await asyncio.to_thread(self._prepare, record, directory, runtime, host,
                                                 wired)  # fmt: skip
            running = await self.launcher.start(mon_config)
        except EngineError as err:
            await self._start_failed(record, directory, err)
            raise
        except Exception as err:
            await self._start_failed(record, directory, err)
            raise OciError(f"cannot start container {record.id}: {err}") from err
        state = record.state
        state.transition("running", record.name)
        state.pid, state.exit_code, state.error, state.oom_killed = running.pid, 0, "", False
        state.started_at = format_timestamp(running.started_at)
        record.manually_stopped = False
        live.attach, live.start_ns = running.attach, running.started_at
        self.health.started(record)
        self.mgr.store.save(record)
        live.started.set()
        self.mgr.publish(record, "start")
        live.watcher = asyncio.ensure_future(self._watch(record))
        if record.config.get("Tty") and not live.tty_attachers:
            self.mgr.background(resize_after_start(live, record))

    def _prepare(self, record: ContainerRecord, directory: Path, runtime: OciRuntime,
                 host: HostCgroups,
                 wired: Wired | None = None) -> monitor.MonitorConfig:  # fmt: skip
        """Blocking part of start: rootfs mount, /etc files, config.json (in a thread)."""
        image = self.mgr.images.resolve(record.image_id)
        lower = self.mgr.layers.rootfs_lowerdirs(list(image.layer_chain_ids))
        dirs = mount_rootfs(self.mgr.mounter, lower, directory,
                            volatile=bool(record.host_config.get("AutoRemove")))
        staged = self.mgr.storage.prepare(record, dirs.merged)
        params = etc_params(record.config, record.host_config, read_host_files())
        if wired is not None:
            params = replace(params, **wired.etc)
        etc = write_etc_files(directory, params)
        rc = RuntimeContext(dirs.merged, host, etc, self._ns_path,
                            netns=wired.netns_path if wired is not None else "",
                            mounts=staged)  # fmt: skip
        warnings: list[str] = []
        config = wired.config_for(record.config) if wired is not None else record.config
        spec = build_spec(spec_params(record.id, config, record.host_config, rc), warnings)
        tmp = directory / "config.json.tmp"
        tmp.write_text(json.dumps(spec))
        os.replace(tmp, directory / "config.json")
        for text in warnings:
            log.warning("container %s: %s", record.short_id, text)
        log_cfg = record.host_config.get("LogConfig") or {}
        return monitor.MonitorConfig(
            container_id=record.id, bundle=directory, state_dir=directory,
            runtime_argv=tuple(runtime.argv()), tty=bool(record.config.get("Tty")),
            open_stdin=bool(record.config.get("OpenStdin")),
            log=parse_log_opts(dict(log_cfg.get("Config") or {})),
            cgroup_mode=host.mode, cgroups_path=spec["linux"]["cgroupsPath"],
        )  # fmt: skip

    def _ns_path(self, ref: str, kind: str) -> str:
        other = self.mgr.get(ref)
        if other.state.status not in ("running", "paused") or not other.state.pid:
            raise Conflict(f"cannot join the {kind} namespace of a non running container: {ref}")
        return f"/proc/{other.state.pid}/ns/{kind}"

    async def _start_failed(self, record: ContainerRecord, directory: Path,
                            err: BaseException) -> None:  # fmt: skip
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self.mgr.storage.release, record)
        with contextlib.suppress(Exception):
            await asyncio.to_thread(unmount_rootfs, self.mgr.mounter, directory)
        if self.network is not None:
            await self.network.after_exit(record)
        text = str(err)
        record.state.error = text
        record.state.exit_code = 127 if "not found" in text or "no such file" in text else 128
        if record.state.status == "restarting":
            record.state.status = "exited"
        self.mgr.store.save(record)
        self.mgr.notify_exit(record)

    # -- exit -----------------------------------------------------------------------------

    async def _watch(self, record: ContainerRecord) -> None:
        directory = self.mgr.dir(record)
        status = await monitor.wait_exit(directory)
        # The monitor still runs the runtime's ``delete`` (cgroup and state dir only) for a
        # few ms after this; nothing here needs it done. What does waits for it itself: a
        # new start (``start_container``), the removal (``delete_runtime_state``) and the
        # daemon's shutdown.
        await self.record_exit(record, status)

    async def record_exit(self, record: ContainerRecord, status: monitor.ExitStatus) -> None:
        """Write down how the container ended, release its rootfs, then restart or remove."""
        live = self.mgr.live_of(record)
        live.started.clear()
        await self.health.stopped(record)
        steps: list[Awaitable[None]] = [self._release_rootfs(record)]
        if self.network is not None:
            steps.append(self.network.after_exit(record))
        # Independent resources (mounts, network namespace): in parallel.
        for result in await asyncio.gather(*steps, return_exceptions=True):
            if isinstance(result, BaseException):
                raise result
        state = record.state
        ran_for = time.time() - (live.start_ns / 1e9 if live.start_ns else time.time())
        state.status = "exited"
        state.pid, state.exit_code, state.oom_killed = 0, status.code, status.oom_killed
        state.error = status.error
        state.finished_at = format_timestamp(status.finished_at)
        auto_remove = bool(record.host_config.get("AutoRemove")) and not self.mgr.closing
        if not auto_remove:
            # An AutoRemove container is saved as "removing" first thing by its removal,
            # just below; if the daemon dies before that, its record still says running,
            # and the next start finds the monitor's exit file and removes it then.
            self.mgr.store.save(record)
        if status.oom_killed:
            self.mgr.publish(record, "oom")
        self.mgr.publish(record, "die", exitCode=str(status.code))
        self.mgr.notify_exit(record)
        if self.mgr.closing:
            return
        if auto_remove:
            self.mgr.background(self._auto_remove(record))
        elif self.should_restart(record):
            self.schedule_restart(record, ran_for)

    async def _release_rootfs(self, record: ContainerRecord) -> None:
        """The container's staged mounts, then its overlay rootfs (errors logged: the
        removal retries them, and the exit must still be recorded)."""
        try:
            await asyncio.to_thread(self.mgr.storage.release, record)
        except Exception:
            log.exception("container %s: releasing its mounts failed", record.short_id)
        with contextlib.suppress(Exception):
            await asyncio.to_thread(unmount_rootfs, self.mgr.mounter, self.mgr.dir(record))

    async def _auto_remove(self, record: ContainerRecord) -> None:
        with contextlib.suppress(NotFound, Conflict):
            if self.mgr.store.get(record.id) is record:
                # --rm takes the container's anonymous volumes with it, as in Docker.
                await self.mgr.remove(record, force=False, volumes=True)

    def should_restart(self, record: ContainerRecord) -> bool:
        """Docker's restart policy decision for a container that just exited."""
        policy = record.host_config.get("RestartPolicy") or {}
        name = policy.get("Name") or "no"
        if record.manually_stopped or name == "no":
            return False
        if name == "on-failure":
            limit = int(policy.get("MaximumRetryCount") or 0)
            return record.state.exit_code != 0 and (not limit or record.restart_count < limit)
        return name in ("always", "unless-stopped")

    def schedule_restart(self, record: ContainerRecord, ran_for: float) -> None:
        """Move to ``restarting`` and start again after the back-off delay."""
        delay = self._backoff.get(record.id, 0.0)
        delay = BACKOFF_START if ran_for >= BACKOFF_RESET_AFTER or not delay else delay * 2
        delay = min(delay, BACKOFF_MAX)
        self._backoff[record.id] = delay
        record.state.transition("restarting", record.name)
        self.mgr.store.save(record)
        live = self.mgr.live_of(record)
        live.restart_task = asyncio.ensure_future(self._restart_later(record, live, delay))

    async def _restart_later(self, record: ContainerRecord, live: Live, delay: float) -> None:
        await asyncio.sleep(delay)
        async with live.lock:
            if record.state.status != "restarting" or self.mgr.closing:
                return
            record.restart_count += 1
            try:
                await self._start_locked(record, live)
            except EngineError as err:
                log.warning("restart of container %s failed: %s", record.short_id, err)

    # -- stop, kill, pause ----------------------------------------------------------------

    async def stop(self, record: ContainerRecord, timeout: int | None,
                   on_shutdown: bool = False, sig: int | None = None) -> bool:  # fmt: skip
        """Stop signal (``sig`` or the container's), then SIGKILL after the grace period;
        False if it was not running."""
        live = self.mgr.live_of(record)
        if not on_shutdown:
            record.manually_stopped = True
            self.mgr.store.save(record)
        if self._cancel_restart(record, live):
            return True
        if record.state.status not in ("running", "paused"):
            return False
        runtime, _ = await self.runtime()
        if record.state.status == "paused":
            with contextlib.suppress(EngineError):
                await runtime.resume(record.id)
        sig = sig or parse_signal(record.config.get("StopSignal"))
        grace = stop_timeout(record.config, timeout)
        self.mgr.publish(record, "kill", signal=str(sig))
        directory = self.mgr.dir(record)
        await monitor.stop_container(runtime, record.id, directory, sig, max(grace, 0))
        if live.watcher is not None:
            await asyncio.shield(live.watcher)
        self.mgr.publish(record, "stop")
        return True

    def _cancel_restart(self, record: ContainerRecord, live: Live) -> bool:
        if record.state.status != "restarting" or live.restart_task is None:
            return False
        live.restart_task.cancel()
        live.restart_task = None
        record.state.status = "exited"
        self.mgr.store.save(record)
        self.mgr.notify_exit(record)
        return True

    async def kill(self, record: ContainerRecord, sig: int) -> None:
        """``POST /containers/{id}/kill``."""
        if record.state.status not in ("running", "paused"):
            raise Conflict(f"Container {record.id} is not running")
        runtime, _ = await self.runtime()
        record.manually_stopped = True
        self.mgr.store.save(record)
        try:
            await runtime.kill(record.id, sig)
        except NotFound:
            raise Conflict(f"Container {record.id} is not running") from None
        self.mgr.publish(record, "kill", signal=str(sig))

    async def kill_now(self, record: ContainerRecord) -> None:
        """SIGKILL and wait until the exit is recorded (forced removal)."""
        live = self.mgr.live_of(record)
        if self._cancel_restart(record, live):
            return
        record.manually_stopped = True
        runtime, _ = await self.runtime()
        if record.state.status == "paused":
            with contextlib.suppress(EngineError):
                await runtime.resume(record.id)
        with contextlib.suppress(NotFound, Conflict):
            await runtime.kill(record.id, signal.SIGKILL)
        self.mgr.publish(record, "kill", signal=str(int(signal.SIGKILL)))
        if live.watcher is not None:
            await asyncio.shield(live.watcher)

    async def pause(self, record: ContainerRecord, pause: bool) -> None:
        """Freeze or thaw every process of the container."""
        if pause and record.state.status != "running":
            raise Conflict(f"Container {record.id} is not running")
        if not pause and record.state.status != "paused":
            raise Conflict(f"Container {record.id} is not paused")
        runtime, _ = await self.runtime()
        if pause:
            await runtime.pause(record.id)
        else:
            await runtime.resume(record.id)
        record.state.transition("paused" if pause else "running", record.name)
        self.health.paused(record, pause)
        self.mgr.store.save(record)
        self.mgr.publish(record, "pause" if pause else "unpause")

    async def restart(self, record: ContainerRecord, timeout: int | None) -> None:
        """Stop (if running) then start again."""
        await self.stop(record, timeout)
        await self.start(record)
        self.mgr.publish(record, "restart")

    async def delete_runtime_state(self, record: ContainerRecord) -> None:
        """Drop the runtime's state of a stopped container, unless its monitor still runs:
        that one deletes it on its way out (the removal waits for it, off its answer)."""
        pidfd = monitor.monitor_pidfd(self.mgr.dir(record))
        if pidfd is not None:
            os.close(pidfd)
            return
        if self._runtime is None or not (self.runtime_root / record.id).exists():
            return  # the monitor deletes the state when the container exits: no runc call
        runtime, _ = await self.runtime()
        with contextlib.suppress(EngineError):
            await runtime.delete(record.id, force=True)

    async def close(self) -> None:
        """End the health probers; remove the runtime's state directory if it is empty."""
        await self.health.close()
        if self._runtime is not None and not self._runtime.done():
            self._runtime.cancel()
            with contextlib.suppress(BaseException):
                await self._runtime
        self.launcher.close()
        with contextlib.suppress(OSError):
            self.runtime_root.rmdir()
