"""``exec`` in a running container, with or without a TTY, as an async context manager.

The runtime runs in the foreground (``runc exec --process p.json``), so its exit code is the
exec'd process's. Without a TTY the process gets our pipes directly. With a TTY we give runc
a pseudo-terminal of our own as its stdio: runc puts it in raw mode and copies between it
and the container's pty, and forwards SIGWINCH, which is how ``resize`` reaches the
container. Exec'd processes end with the daemon (as a foreground ``docker exec`` does with
its client); the container itself is unaffected.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import signal
import struct
import subprocess
import termios
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from pycompose.engine.runtime.oci import OciError

_CHUNK = 65536


class ExecProcess:
    """A running exec: read its output, feed its stdin, resize its TTY, wait for its code."""

    def __init__(
        self, popen: subprocess.Popen[bytes], outputs: dict[int, str], stdin_fd: int, tty: bool,
        pid_file: Path | None = None,
    ) -> None:  # fmt: skip
        import anyio

        self._popen = popen
        self._pid_file = pid_file
        self._outputs = outputs
        self._stdin_fd = stdin_fd
        self.tty = tty
        self.pid = popen.pid
        self._send, self._recv = anyio.create_memory_object_stream[tuple[str, bytes]](64)
        self._open = len(outputs)

    async def _pump(self, fd: int, stream: str) -> None:
        import anyio

        try:
            while True:
                await anyio.wait_readable(fd)
                try:
                    data = os.read(fd, _CHUNK)
                except BlockingIOError:
                    continue
                except OSError:  # EIO: the pty's other side is gone
                    data = b""
                if not data:
                    break
                await self._send.send((stream, data))
        finally:
            self._open -= 1
            if self._open == 0:
                await self._send.aclose()

    def _close_streams(self) -> None:
        self._send.close()
        self._recv.close()

    async def read(self) -> tuple[str, bytes] | None:
        """The next ``(stream, bytes)`` chunk of output, ``None`` at the end of all output."""
        import anyio

        try:
            return await self._recv.receive()
        except anyio.EndOfStream:
            return None

    async def output(self) -> AsyncIterator[tuple[str, bytes]]:
        """Iterate over all output chunks."""
        while (chunk := await self.read()) is not None:
            yield chunk

    async def write(self, data: bytes) -> None:
        """Send ``data`` to the process's stdin (or its terminal)."""
        import anyio

        if self._stdin_fd < 0:
            raise OciError("this exec was started without stdin")
        view = memoryview(data)
        while view:
            await anyio.wait_writable(self._stdin_fd)
            try:
                n = os.write(self._stdin_fd, view)
            except BlockingIOError:
                continue
            view = view[n:]

    async def close_stdin(self) -> None:
        """Signal end of input (EOF for a pipe; ^D for a terminal)."""
        if self._stdin_fd < 0:
            return
        if self.tty:
            await self.write(b"\x04")
        else:
            os.close(self._stdin_fd)
            self._stdin_fd = -1

    async def resize(self, rows: int, cols: int) -> None:
        """Set the terminal size; runc passes it on to the container's pty."""
        import anyio

        if not self.tty:
            raise OciError("cannot resize an exec that has no TTY")
        fd = next(iter(self._outputs))
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        # runc copies the size over when SIGWINCH reaches it, but a SIGWINCH sent before
        # it handles the signal is lost (a resize right after the start: 1 exec in 25).
        # It handles it from before it starts the process, whose pid file follows.
        with anyio.move_on_after(5):
            while self.container_pid() is None and self._popen.poll() is None:
                await anyio.sleep(0.005)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGWINCH)

    def container_pid(self) -> int | None:
        """The exec'd process's host pid, once runc has started it (``None`` before, or if
        runc failed to start it)."""
        if self._pid_file is None:
            return None
        try:
            return int(self._pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    async def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the exec'd process (runc forwards other signals, but not SIGKILL: that one
        goes to the process itself when its pid is known)."""
        pid = self.container_pid() if sig == signal.SIGKILL else None
        with contextlib.suppress(ProcessLookupError):
            if pid is not None and self._popen.returncode is None:
                os.kill(pid, sig)
            else:
                self._popen.send_signal(sig)

    async def terminate(self) -> int:
        """SIGKILL the exec'd process, give runc a moment to reap it, then kill runc too;
        the exit code."""
        import anyio

        await self.kill(signal.SIGKILL)
        with anyio.move_on_after(2):
            return await self.wait()
        self._popen.kill()
        return await self.wait()

    async def wait(self) -> int:
        """The exit code (128+N when the process was killed by signal N)."""
        import anyio

        if self._popen.returncode is None:
            pidfd = os.pidfd_open(self.pid)
            try:
                await anyio.wait_readable(pidfd)
            finally:
                os.close(pidfd)
        code = self._popen.wait()
        return 128 - code if code < 0 else code


def _write_process(work_dir: Path, process: dict[str, Any]) -> Path:
    work_dir.mkdir(parents=True, exist_ok=True)
    path = work_dir / f"exec-{secrets.token_hex(6)}.json"
    path.write_text(json.dumps(process))
    return path


@contextlib.asynccontextmanager
async def exec_process(
    runtime_argv: Sequence[str],
    container_id: str,
    process: dict[str, Any],
    work_dir: Path,
    *,
    open_stdin: bool = False,
    size: tuple[int, int] = (24, 80),
) -> AsyncIterator[ExecProcess]:
    """Start ``process`` (an OCI process dict, see ``spec.exec_process``) in the container.

    A TTY is used when ``process["terminal"]`` is true. Leaving the block kills the exec if
    it still runs and releases every fd and file.
    """
    import anyio

    tty = bool(process.get("terminal"))
    proc_file = _write_process(work_dir, process)
    pid_file = proc_file.with_suffix(".pid")
    argv = [*runtime_argv, "exec", "--process", str(proc_file), "--pid-file", str(pid_file),
            container_id]  # fmt: skip
    closers: list[int] = []
    popen: subprocess.Popen[bytes] | None = None
    try:
        if tty:
            master, slave = os.openpty()
            closers.append(master)
            fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", size[0], size[1], 0, 0))
            try:
                popen = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave,
                                         start_new_session=True)  # fmt: skip
            finally:
                os.close(slave)
            outputs, stdin_fd = {master: "stdout"}, master
        else:
            popen = subprocess.Popen(
                argv, stdin=subprocess.PIPE if open_stdin else subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            )  # fmt: skip
            assert popen.stdout is not None and popen.stderr is not None
            outputs = {popen.stdout.fileno(): "stdout", popen.stderr.fileno(): "stderr"}
            stdin_fd = popen.stdin.fileno() if popen.stdin is not None else -1
        for fd in outputs:
            os.set_blocking(fd, False)
        if stdin_fd >= 0:
            os.set_blocking(stdin_fd, False)
        proc = ExecProcess(popen, outputs, stdin_fd, tty, pid_file)
        async with anyio.create_task_group() as tg:
            for fd, stream in outputs.items():
                tg.start_soon(proc._pump, fd, stream)
            try:
                yield proc
            finally:
                if popen.poll() is None:
                    with anyio.CancelScope(shield=True):
                        await proc.terminate()
                tg.cancel_scope.cancel()
                proc._close_streams()
    finally:
        if popen is not None:
            for f in (popen.stdin, popen.stdout, popen.stderr):
                if f is not None:
                    with contextlib.suppress(OSError):
                        f.close()
        for fd in closers:
            os.close(fd)
        proc_file.unlink(missing_ok=True)
        pid_file.unlink(missing_ok=True)


async def run_exec(
    runtime_argv: Sequence[str], container_id: str, process: dict[str, Any], work_dir: Path,
    stdin: bytes | None = None,
) -> tuple[int, bytes, bytes]:  # fmt: skip
    """Run an exec to completion: ``(exit code, stdout, stderr)`` (TTY output is stdout)."""
    out: dict[str, bytearray] = {"stdout": bytearray(), "stderr": bytearray()}
    async with exec_process(runtime_argv, container_id, process, work_dir,
                            open_stdin=stdin is not None) as proc:  # fmt: skip
        if stdin is not None:
            await proc.write(stdin)
            await proc.close_stdin()
        async for stream, data in proc.output():
            out[stream] += data
        code = await proc.wait()
    return code, bytes(out["stdout"]), bytes(out["stderr"])
