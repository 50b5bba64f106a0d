"""Monitor state files: re-adoption after a daemon restart, waiting, stopping (no root)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import anyio
import pytest

from pycompose.engine.errors import NotFound
from pycompose.engine.runtime import monitor
from pycompose.engine.runtime.oci import FakeRuntime


def write_state(d: Path, monitor_pid: int, start: int | None) -> None:
    (d / monitor.STATE_FILE).write_text(json.dumps({
        "container_id": "c1", "pid": 4242, "monitor_pid": monitor_pid, "monitor_start": start,
        "started_at": 1, "attach": str(d / "attach.sock"),
    }))  # fmt: skip


def write_exit(d: Path, code: int = 3, oom: bool = True) -> None:
    (d / monitor.EXIT_FILE).write_text(
        json.dumps({"code": code, "oom_killed": oom, "finished_at": 99})
    )


def test_adopt_never_started(tmp_path: Path) -> None:
    assert monitor.adopt(tmp_path) is None
    with pytest.raises(NotFound):
        anyio.run(monitor.wait_exit, tmp_path)


def test_adopt_finished(tmp_path: Path) -> None:
    write_state(tmp_path, os.getpid(), monitor.proc_start_time(os.getpid()))
    write_exit(tmp_path)
    assert monitor.adopt(tmp_path) == monitor.ExitStatus(3, True, 99)
    assert anyio.run(monitor.wait_exit, tmp_path) == monitor.ExitStatus(3, True, 99)


def test_adopt_running_monitor(tmp_path: Path) -> None:
    write_state(tmp_path, os.getpid(), monitor.proc_start_time(os.getpid()))
    found = monitor.adopt(tmp_path)
    assert isinstance(found, monitor.Running) and found.pid == 4242 and found.state_dir == tmp_path


def test_pid_reuse_is_not_mistaken_for_the_monitor(tmp_path: Path) -> None:
    start = monitor.proc_start_time(os.getpid())
    assert start is not None
    write_state(tmp_path, os.getpid(), start - 1)
    found = monitor.adopt(tmp_path)
    assert isinstance(found, monitor.ExitStatus) and found.code == 255 and found.error


def test_proc_start_time() -> None:
    assert monitor.proc_start_time(os.getpid()) is not None
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    pid = proc.pid
    proc.wait()
    assert monitor.proc_start_time(pid) is None


def test_wait_exit_wakes_on_the_fifo(tmp_path: Path) -> None:
    write_state(tmp_path, os.getpid(), monitor.proc_start_time(os.getpid()))
    os.mkfifo(tmp_path / monitor.EXIT_FIFO)

    async def scenario() -> float:
        async def finish() -> None:
            await anyio.sleep(0.2)
            write_exit(tmp_path, code=0, oom=False)
            os.close(os.open(tmp_path / monitor.EXIT_FIFO, os.O_WRONLY | os.O_NONBLOCK))

        async with anyio.create_task_group() as tg:
            tg.start_soon(finish)
            t0 = time.monotonic()
            status = await monitor.wait_exit(tmp_path, 5)
            elapsed = time.monotonic() - t0
        assert status.code == 0
        return elapsed

    elapsed = anyio.run(scenario)
    assert 0.15 < elapsed < 0.9  # woken by the FIFO, not by the 1 s fallback


def test_wait_exit_times_out(tmp_path: Path) -> None:
    write_state(tmp_path, os.getpid(), monitor.proc_start_time(os.getpid()))
    with pytest.raises(TimeoutError):
        anyio.run(monitor.wait_exit, tmp_path, 0.2)


def test_stop_of_an_exited_container_sends_nothing(tmp_path: Path) -> None:
    write_exit(tmp_path, code=0, oom=False)
    rt = FakeRuntime()
    status = anyio.run(monitor.stop_container, rt, "c1", tmp_path, signal.SIGTERM, 1.0)
    assert status.code == 0 and rt.calls == []


def test_stop_escalates_to_sigkill(tmp_path: Path) -> None:
    write_state(tmp_path, os.getpid(), monitor.proc_start_time(os.getpid()))
    rt = FakeRuntime()

    async def scenario() -> monitor.ExitStatus:
        await rt.create("c1", tmp_path)
        await rt.start("c1")

        async def exit_on_kill() -> None:
            while ("kill", "c1", str(int(signal.SIGKILL))) not in rt.calls:
                await anyio.sleep(0.02)
            write_exit(tmp_path, code=137, oom=False)

        async with anyio.create_task_group() as tg:
            tg.start_soon(exit_on_kill)
            # SIGUSR1 does not stop the fake container: the grace period must run out.
            status = await monitor.stop_container(rt, "c1", tmp_path, signal.SIGUSR1, 0.3)
        return status

    status = anyio.run(scenario)
    assert status.code == 137
    kills = [c for c in rt.calls if c[0] == "kill"]
    assert kills == [
        ("kill", "c1", str(int(signal.SIGUSR1))),
        ("kill", "c1", str(int(signal.SIGKILL))),
    ]


def test_resize_payload() -> None:
    assert monitor.resize_payload(24, 80) == b"\x00\x18\x00\x50"


def test_attach_address() -> None:
    running = monitor.Running("c", 1, 2, 3, 4, Path("/x"), "@pycompose-attach-ab")
    assert monitor.attach_address(running) == "\0pycompose-attach-ab"
    assert monitor.attach_address(replace(running, attach="/x/attach.sock")) == "/x/attach.sock"
