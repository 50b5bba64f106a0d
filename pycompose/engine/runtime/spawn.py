"""Monitors forked ahead of need, so that starting a container does not wait for a fork.

Forking the monitor from the daemon, and the monitor's own set-up in the child (a second
fork to detach, signals, fds: copy-on-write faults over the daemon's memory), took 5-12 ms
of every start on this machine, before runc was even called. ``MonitorLauncher`` keeps one
*spare*: a process that went through all of that already (``monitor.detach``) and now
blocks reading its container's ``MonitorConfig`` from a pipe. A start hands the config to
the spare and forks the next spare a little later (``REFILL_DELAY``): a fork of the daemon
blocks its event loop, and leaves it taking copy-on-write faults for a while, which right
after a start would slow down that container's own exit and removal (``run --rm``: 6 ms
of 14 between the exit and the answer, measured).

The config travels pickled: the spare is a fork of the daemon itself, with the same code,
and the pipe is private to the two. A spare whose daemon went away (a stop, a crash) reads
end-of-file instead and exits; ``close`` makes that happen on a clean stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
from dataclasses import dataclass

from pycompose.engine.runtime.monitor import (
    MonitorConfig,
    Running,
    become_monitor,
    collect_report,
    detach,
    prepare_state_dir,
)

__all__ = ["REFILL_DELAY", "MonitorLauncher"]

REFILL_DELAY = 0.05  # seconds after a start; skipped while another start is under way


@dataclass(frozen=True)
class _Spare:
    intermediate: int  # the spare's parent, which exits at once; reaped when used
    config_w: int
    status_r: int


class MonitorLauncher:
    """Starts containers under monitors (``monitor.start_container``), with a spare ready."""

    def __init__(self) -> None:
        self._spare: _Spare | None = None
        self._starting = 0
        self._closed = False

    def refill(self) -> None:
        """Fork a spare monitor if there is none (and no start would have to wait)."""
        if self._spare is None and not self._starting and not self._closed:
            self._spare = _fork_spare()

    async def start(self, config: MonitorConfig) -> Running:
        """Start the container under the spare monitor (or a new one); return once its
        process runs. Raises ``OciError`` with the runtime's message, like
        ``monitor.start_container``."""
        self._starting += 1
        try:
            return await self._start(config)
        finally:
            self._starting -= 1
            asyncio.get_running_loop().call_later(REFILL_DELAY, self.refill)

    async def _start(self, config: MonitorConfig) -> Running:
        await prepare_state_dir(config)
        data = pickle.dumps(config)
        spare, self._spare = self._spare, None
        if spare is None or not _hand_over(spare, data):  # a spare that died is replaced
            spare = _fork_spare()
            if not _hand_over(spare, data):
                raise OSError(f"the monitor of {config.container_id} died before starting")
        return await collect_report(config, spare.intermediate, spare.status_r)

    def close(self) -> None:
        """Let the spare go (it exits on end-of-file) and reap its parent; no more spares."""
        self._closed = True
        spare, self._spare = self._spare, None
        if spare is not None:
            os.close(spare.config_w)
            os.close(spare.status_r)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(spare.intermediate, 0)


def _hand_over(spare: _Spare, data: bytes) -> bool:
    """Give the spare its container; False (its pipes closed, its parent reaped) if it is
    gone."""
    try:
        os.write(spare.config_w, data)  # far below the pipe's buffer: one write
        return True
    except BrokenPipeError:
        os.close(spare.status_r)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(spare.intermediate, 0)
        return False
    finally:
        os.close(spare.config_w)


def _fork_spare() -> _Spare:
    config_r, config_w = os.pipe2(os.O_CLOEXEC)
    status_r, status_w = os.pipe2(os.O_CLOEXEC)
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the spare
        try:
            os.close(config_w)
            os.close(status_r)
            detach({config_r, status_w})
            _wait_for_config(config_r, status_w)
        finally:
            os._exit(70)
    os.close(config_r)
    os.close(status_w)
    return _Spare(child, config_w, status_r)


def _wait_for_config(config_r: int, status_w: int) -> None:  # pragma: no cover - in the spare
    data = bytearray()
    while chunk := os.read(config_r, 65536):
        data += chunk
    os.close(config_r)
    if not data:  # the daemon let us go
        os._exit(0)
    config = pickle.loads(data)
    assert isinstance(config, MonitorConfig)
    become_monitor(config, status_w)
