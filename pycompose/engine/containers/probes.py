"""Running health checks: one prober task per running container that has a check.

The runner calls :meth:`HealthChecks.started` when a container starts (health reset to
``starting``), :meth:`HealthChecks.stopped` when it exits (probing ends, health
``unhealthy`` as in dockerd), :meth:`HealthChecks.paused` around pause/unpause, and recovery
calls :meth:`HealthChecks.resume` for a re-adopted container (its health as recorded).

A probe is an exec (``runc exec`` through :mod:`pycompose.engine.runtime.execproc`, with
the container's own environment, user and working directory, as ``docker exec`` gets),
announced with the ``exec_create``/``exec_start``/``exec_die`` events dockerd sends for
probes too. Its stdout and stderr are kept together up to 4096 bytes. A probe that outlives
the timeout is killed and counts as a failure (exit code -1, "Health check exceeded timeout
(30s)"); one that cannot be started at all records the runtime's error with exit code -1.
A status change is saved and announced as ``health_status: healthy|unhealthy``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from typing import TYPE_CHECKING, Any

from pycompose.engine.containers import health
from pycompose.engine.containers.record import ContainerRecord
from pycompose.engine.errors import EngineError
from pycompose.engine.runtime.execproc import exec_process
from pycompose.engine.runtime.logs import format_timestamp
from pycompose.engine.runtime.oci import last_message
from pycompose.engine.runtime.spec import exec_process as exec_spec

if TYPE_CHECKING:
    from pycompose.engine.containers.manager import ContainerManager

log = logging.getLogger("pycompose.engine.containers")


class HealthChecks:
    """The prober tasks of one engine, by container id."""

    def __init__(self, mgr: ContainerManager) -> None:
        self.mgr = mgr
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._ending: set[asyncio.Task[None]] = set()
        """Cancelled probers still killing their probe (awaited at daemon shutdown)."""

    def started(self, record: ContainerRecord) -> None:
        """The container just started: health ``starting`` and probing from now on."""
        found = health.settings(record.config)
        if found is None:
            return
        self._cancel(record.id)
        record.state.health = health.on_start(record.state.health)
        self._spawn(record, found)

    def resume(self, record: ContainerRecord) -> None:
        """A re-adopted running container: probe again, keeping the recorded health."""
        found = health.settings(record.config)
        if found is None or record.state.status != "running":
            return
        if record.state.health is None:
            record.state.health = health.on_start(None)
        self._spawn(record, found)

    async def stopped(self, record: ContainerRecord) -> None:
        """The container exited: end its probing (a probe in flight is killed)."""
        task = self._tasks.pop(record.id, None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        if record.state.health is not None:
            health.on_monitor_stopped(record.state.health)

    def paused(self, record: ContainerRecord, paused: bool) -> None:
        """dockerd stops probing a paused container (its health turns ``unhealthy``) and
        starts again on unpause."""
        found = health.settings(record.config)
        if found is None or record.state.health is None:
            return
        self._cancel(record.id)
        if paused:
            health.on_monitor_stopped(record.state.health)
        else:
            self._spawn(record, found)

    async def close(self) -> None:
        """Daemon shutdown: end every prober."""
        tasks = [*self._tasks.values(), *self._ending]
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- the prober -------------------------------------------------------------------------

    def _cancel(self, cid: str) -> None:
        task = self._tasks.pop(cid, None)
        if task is not None:
            task.cancel()
            self._ending.add(task)
            task.add_done_callback(self._ending.discard)

    def _spawn(self, record: ContainerRecord, found: health.Settings) -> None:
        task = asyncio.ensure_future(self._loop(record, found))
        self._tasks[record.id] = task
        task.add_done_callback(lambda t: self._forget(record.id, t))

    def _forget(self, cid: str, task: asyncio.Task[None]) -> None:
        if self._tasks.get(cid) is task:
            del self._tasks[cid]
        if not task.cancelled() and task.exception() is not None:
            log.error("health checks of %s ended: %r", cid[:12], task.exception())

    async def _loop(self, record: ContainerRecord, found: health.Settings) -> None:
        live = self.mgr.live_of(record)
        started = live.start_ns / 1e9 if live.start_ns else time.time()
        while True:
            state = record.state.health
            assert state is not None
            delay = health.next_delay(found, time.time() - started, str(state.get("Status")))
            await asyncio.sleep(delay)
            # As dockerd: whether a failure counts depends on when its probe began.
            in_start = time.time() - started < found.start_period
            result = await self._probe(record, found)
            state = record.state.health
            if state is None or record.state.status != "running":
                continue
            if health.apply_result(state, result, found.retries, in_start):
                self.mgr.store.save(record)
                self.mgr.publish(record, f"health_status: {state['Status']}")

    async def _probe(self, record: ContainerRecord, found: health.Settings) -> dict[str, Any]:
        """Run the check once: ``{Start, End, ExitCode, Output}``."""
        start = time.time_ns()
        exec_id = secrets.token_hex(32)
        command = " ".join(found.argv)
        try:
            code, output = await self._exec(record, found, exec_id, command)
        except Exception as err:  # as dockerd: a probe that cannot run is a failed probe
            if not isinstance(err, OSError | EngineError):
                log.exception("health check of %s failed to run", record.short_id)
            code, output = -1, str(err)
        return {"Start": format_timestamp(start), "End": format_timestamp(time.time_ns()),
                "ExitCode": code, "Output": output}  # fmt: skip

    async def _exec(self, record: ContainerRecord, found: health.Settings, exec_id: str,
                    command: str) -> tuple[int, str]:  # fmt: skip
        assert self.mgr.runner is not None
        runtime, _ = await self.mgr.runner.runtime()
        directory = self.mgr.dir(record)
        spec = json.loads(await asyncio.to_thread((directory / "config.json").read_text))
        process = exec_spec(spec, directory / "merged", found.argv)
        self.mgr.publish(record, f"exec_create: {command}", execID=exec_id)
        out = bytearray()
        code = -1
        try:
            async with exec_process(runtime.argv(), record.id, process,
                                    directory / "exec") as proc:  # fmt: skip
                self.mgr.publish(record, f"exec_start: {command}", execID=exec_id)
                try:
                    async with asyncio.timeout(found.timeout):
                        async for _, data in proc.output():
                            if len(out) <= health.MAX_OUTPUT:
                                out += data
                        code = await proc.wait()
                except TimeoutError:
                    code = await proc.terminate()
                    return -1, health.timeout_output(found, bytes(out))
                if code != 0 and proc.container_pid() is None:
                    return -1, _exec_failure(bytes(out))
        finally:
            self.mgr.publish(record, "exec_die", execID=exec_id, exitCode=str(code))
        return code, health.limit_output(bytes(out))


def _exec_failure(runc_output: bytes) -> str:
    """runc could not start the probe: its message, worded as dockerd reports it."""
    message = last_message(runc_output.decode("utf-8", "replace")) or "unknown error"
    for prefix in ("runc exec failed: ", "exec failed: "):
        message = message.removeprefix(prefix)
    return f"OCI runtime exec failed: exec failed: {message}: unknown"
