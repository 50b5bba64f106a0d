"""Container output and input over the API: logs, attach and resize.

Output of a container without a TTY is read from its json-file log, which the monitor
writes before anything else sees the output: an attach made before ``start`` (what
``docker run`` does) therefore gets every line from the first, however fast the process is.
Output of a TTY container comes raw from the monitor's attach socket, which is also the way
in for stdin and terminal resizes (frames of :mod:`pycompose.engine.runtime.monitor`).
Known gap: the monitor forwards TTY output only to clients already connected, so the first
bytes a TTY process prints before the daemon connects (within milliseconds of start) are in
the log but not in the attach stream; the terminal size the client gave at create is set
right after connecting, which makes shells redraw a prompt printed before that.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pycompose.engine.api.streams import STDERR, STDOUT, RawStream, frame
from pycompose.engine.containers.record import ContainerRecord
from pycompose.engine.errors import Conflict, InvalidArgument
from pycompose.engine.runtime import monitor
from pycompose.engine.runtime.logs import LogRecord, format_timestamp, read_logs

if TYPE_CHECKING:
    from pycompose.engine.containers.manager import ContainerManager, Live

FOLLOW_POLL = 0.01
_STREAM_IDS = {"stdout": STDOUT, "stderr": STDERR}
_FRAME = struct.Struct(">BxxxI")


DEFAULT_DETACH_KEYS = b"\x10\x11"  # ctrl-p ctrl-q
_CTRL_PUNCT = {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}


def parse_detach_keys(text: str | None) -> bytes:
    """Docker's ``detachKeys``: ``ctrl-p,ctrl-q`` (default), ``a,ctrl-[``... as bytes."""
    if not text:
        return DEFAULT_DETACH_KEYS
    out = bytearray()
    for key in text.split(","):
        key = key.strip()
        if len(key) == 1:
            out.append(ord(key))
        elif key.lower().startswith("ctrl-") and len(key) == 6:
            char = key[5].lower()
            if "a" <= char <= "z":
                out.append(ord(char) - ord("a") + 1)
            elif char in _CTRL_PUNCT:
                out.append(_CTRL_PUNCT[char])
            else:
                raise InvalidArgument(f"Invalid detach keys ({text}) provided")
        else:
            raise InvalidArgument(f"Invalid detach keys ({text}) provided")
    return bytes(out)


class EscapeScanner:
    """Finds the detach key sequence in a TTY's input, holding back a partial match."""

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self.held = b""

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """The bytes to pass on, and whether the whole sequence has now been typed."""
        out = bytearray()
        for byte in data:
            candidate = self.held + bytes([byte])
            if self.keys.startswith(candidate):
                if candidate == self.keys:
                    self.held = b""
                    return bytes(out), True
                self.held = candidate
                continue
            out += self.held  # not the sequence after all: the held keys were real input
            self.held = b""
            if self.keys.startswith(bytes([byte])):
                self.held = bytes([byte])
            else:
                out.append(byte)
        return bytes(out), False


def parse_time(value: str | None, what: str) -> int | None:
    """Docker's ``since``/``until``: unix seconds with an optional fraction -> ns."""
    if value is None or value == "" or value == "0":
        return None
    secs, _, frac = value.partition(".")
    if not secs.lstrip("-").isdigit() or (frac and not frac.isdigit()):
        raise InvalidArgument(f"invalid value for {what}: {value!r}")
    return int(secs) * 10**9 + int((frac + "000000000")[:9])


def parse_tail(value: str | None) -> int | None:
    """``all`` (or absent) -> None, else a non-negative count."""
    if value is None or value in ("", "all"):
        return None
    if not value.isdigit():
        raise InvalidArgument(f"invalid value for tail: {value!r}")
    return int(value)


def encode(record: LogRecord, tty: bool, timestamps: bool) -> bytes:
    """One log record as the logs/attach stream carries it (framed unless TTY)."""
    data = record.data
    if timestamps:
        data = format_timestamp(record.timestamp).encode() + b" " + data
    return data if tty else frame(_STREAM_IDS[record.stream], data)


async def log_stream(
    mgr: ContainerManager, record: ContainerRecord, *, follow: bool, since: int | None,
    until: int | None, tail: int | None, stdout: bool, stderr: bool, timestamps: bool,
) -> AsyncIterator[bytes]:  # fmt: skip
    """``GET /containers/{id}/logs`` body."""
    tty = bool(record.config.get("Tty"))

    def finished() -> bool:
        return record.state.status not in ("running", "paused", "restarting") or \
            mgr.store._by_id.get(record.id) is not record

    records = read_logs(mgr.dir(record), follow=follow, since=since, until=until, tail=tail,
                        stdout=stdout, stderr=stderr, finished=finished,
                        poll_interval=FOLLOW_POLL * 5)  # fmt: skip
    async for rec in records:
        yield encode(rec, tty, timestamps)


def _socket_path(attach: str) -> str:
    return "\0" + attach[1:] if attach.startswith("@") else attach


async def _connect(live: Live) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
    if not live.attach:
        return None
    try:
        return await asyncio.open_unix_connection(_socket_path(live.attach))
    except OSError:
        return None  # the monitor already finished: output is in the log


async def send_resize(live: Live, height: int, width: int) -> None:
    """Resize the container's terminal through its monitor."""
    conn = await _connect(live)
    if conn is None:
        raise Conflict("the container is not running")
    writer = conn[1]
    try:
        writer.write(_FRAME.pack(monitor.FRAME_RESIZE, 4) + monitor.resize_payload(height, width))
        await writer.drain()
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


class Attachment:
    """One hijacked attach connection."""

    def __init__(self, mgr: ContainerManager, record: ContainerRecord, *, stdin: bool,
                 stdout: bool, stderr: bool, logs: bool, stream: bool,
                 detach_keys: bytes = DEFAULT_DETACH_KEYS) -> None:  # fmt: skip
        self.mgr, self.record = mgr, record
        self.detach_keys = detach_keys
        self.detached = False
        self.want_stdin, self.stdout, self.stderr = stdin, stdout, stderr
        self.logs, self.stream = logs, stream
        self.tty = bool(record.config.get("Tty"))
        self.live = mgr.live_of(record)
        self.removed = mgr.waiter(record, "removed")
        # A running container's attach gets only new output; before start, all of it.
        self.since: int | None = time.time_ns() if record.state.running else None
        self.counted = self.stream and self.tty and not record.state.running
        if self.counted:
            self.live.tty_attachers += 1

    def _uncount(self) -> None:
        if self.counted:
            self.counted = False
            self.live.tty_attachers -= 1

    async def run(self, client: RawStream) -> None:
        """Serve the connection until the container's output ends."""
        # The container's directory, held: a --rm removal moves it aside (and deletes it
        # once this attach is done, see ``Live.readers``) maybe before its output was read.
        try:
            self.dir_fd = os.open(self.mgr.dir(self.record), os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:  # removed meanwhile: nothing left to send
            self._uncount()
            client.close_write()
            return
        reading: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.live.readers.add(reading)
        try:
            if self.logs:
                async for chunk in log_stream(
                        self.mgr, self.record, follow=False, since=None, until=None, tail=None,
                        stdout=self.stdout, stderr=self.stderr, timestamps=False):  # fmt: skip
                    await client.write(chunk)
            if self.stream and await self._wait_started():
                await self._pump(client)
        finally:
            self._uncount()
            if not self.removed.done():
                self.removed.cancel()
            self.live.readers.discard(reading)
            reading.set_result(None)
            os.close(self.dir_fd)
            client.close_write()

    async def _wait_started(self) -> bool:
        if self.live.started.is_set():
            return True
        started: asyncio.Future[Any] = asyncio.ensure_future(self.live.started.wait())
        removed: asyncio.Future[Any] = self.removed
        try:
            await asyncio.wait({started, removed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            started.cancel()
        return not self.removed.done()

    async def _pump(self, client: RawStream) -> None:
        since = self.since if self.since is not None else self.live.start_ns
        conn = await _connect(self.live)
        tasks = []
        if conn is not None and self.want_stdin:
            tasks.append(asyncio.ensure_future(self._stdin(client, conn[1])))
        try:
            self._uncount()
            if self.tty and conn is not None:
                await self._initial_size(conn[1])
                await self._tty_output(client, conn[0])
            else:
                # The output comes from the log (nothing is missed, nothing is seen twice);
                # the monitor's frames only say when there is more, or (end of file) that
                # the container is done: the follow looks again at once.
                more = asyncio.Event()
                if conn is not None:
                    tasks.append(asyncio.ensure_future(_discard(conn[0], more)))
                await self._log_output(client, since, more)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if conn is not None:
                conn[1].close()

    async def _initial_size(self, writer: asyncio.StreamWriter) -> None:
        # The terminal starts at 0x0; setting the size the client asked for at create raises
        # SIGWINCH, on which shells with line editing (busybox ash, bash) redraw their prompt:
        # a prompt printed before this connection existed is then not lost to the client.
        await set_console_size(self.record, writer)

    async def _log_output(self, client: RawStream, since: int | None,
                          more: asyncio.Event) -> None:  # fmt: skip
        directory = Path(f"/proc/self/fd/{self.dir_fd}")  # wherever it is now
        records = read_logs(directory, follow=True, since=since, stdout=self.stdout,
                            stderr=self.stderr, poll_interval=FOLLOW_POLL,
                            wakeup=more)  # fmt: skip
        async for rec in records:
            await client.write(encode(rec, self.tty, False))

    async def _tty_output(self, client: RawStream, reader: asyncio.StreamReader) -> None:
        while True:
            try:
                head = await reader.readexactly(_FRAME.size)
                _, size = _FRAME.unpack(head)
                data = await reader.readexactly(size)
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            if self.stdout:
                await client.write(data)

    async def _stdin(self, client: RawStream, writer: asyncio.StreamWriter) -> None:
        # As dockerd: the detach keys are looked for in a TTY's input only.
        scanner = EscapeScanner(self.detach_keys) if self.tty else None
        with contextlib.suppress(ConnectionError):
            while data := await client.read():
                if scanner is not None:
                    data, detach = scanner.feed(data)
                    if detach:
                        self._detach(writer, data)
                        return
                writer.write(_FRAME.pack(monitor.FRAME_STDIN, len(data)) + data)
                await writer.drain()
            if self.record.config.get("StdinOnce"):
                writer.write(_FRAME.pack(monitor.FRAME_CLOSE_STDIN, 0))
                await writer.drain()


    def _detach(self, writer: asyncio.StreamWriter, rest: bytes) -> None:
        """End this attach, leaving the container running (its output reader sees EOF)."""
        if rest:
            writer.write(_FRAME.pack(monitor.FRAME_STDIN, len(rest)) + rest)
        self.detached = True
        writer.close()
        self.mgr.publish(self.record, "detach")


async def set_console_size(record: ContainerRecord, writer: asyncio.StreamWriter) -> None:
    """Give the container's terminal the size the client asked for at create (if any)."""
    size = record.host_config.get("ConsoleSize") or [0, 0]
    if len(size) == 2 and int(size[0]) > 0 and int(size[1]) > 0:
        payload = monitor.resize_payload(int(size[0]), int(size[1]))
        writer.write(_FRAME.pack(monitor.FRAME_RESIZE, len(payload)) + payload)
        await writer.drain()


async def resize_after_start(live: Live, record: ContainerRecord) -> None:
    """A TTY container started without an attach waiting gets its create-time size now."""
    conn = await _connect(live)
    if conn is None:
        return
    writer = conn[1]
    try:
        await set_console_size(record, writer)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _discard(reader: asyncio.StreamReader, more: asyncio.Event) -> None:
    with contextlib.suppress(ConnectionError):
        while await reader.read(65536):
            more.set()
    more.set()

