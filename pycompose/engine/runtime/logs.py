"""Container logs in Docker's json-file format: writer (used by the monitor) and reader.

Each line of ``json.log`` is ``{"log": "...", "stream": "stdout", "time": "<RFC3339Nano>"}``,
one record per output line (a line longer than 16 KiB is split, as Docker does). Bytes that
are not UTF-8 are kept with ``surrogateescape`` so our reader gives back exactly what the
container wrote. With ``max_size`` the file is rotated to ``json.log.1`` ... ``.N-1``
(Docker's ``max-size``/``max-file``).

The writer is deliberately synchronous and imports only the standard library: it runs in
the monitor process, which must not import anything after it is forked.
"""

from __future__ import annotations

import json
import os
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from pycompose.engine.errors import InvalidArgument

if TYPE_CHECKING:
    import asyncio

LOG_NAME = "json.log"
MAX_RECORD = 16 * 1024
_STREAMS = ("stdout", "stderr")


class LogRecord(NamedTuple):
    """One log record: ``stream`` is stdout or stderr, ``timestamp`` in ns since the epoch."""

    stream: str
    timestamp: int
    data: bytes


@dataclass(frozen=True)
class LogConfig:
    """Docker's json-file options: ``max_size`` bytes per file (0: no rotation), ``max_file``."""

    max_size: int = 0
    max_file: int = 1

    def __post_init__(self) -> None:
        if self.max_size < 0:
            raise InvalidArgument(f"invalid log opt max-size {self.max_size}: must be positive")
        if self.max_file < 1:
            raise InvalidArgument(f"invalid log opt max-file {self.max_file}: must be at least 1")


def parse_log_opts(opts: dict[str, str]) -> LogConfig:
    """Docker's ``LogConfig.Config`` for json-file: ``max-size`` (``10m``) and ``max-file``."""
    unknown = set(opts) - {"max-size", "max-file"}
    if unknown:
        raise InvalidArgument(f"unsupported json-file log option(s): {', '.join(sorted(unknown))}")
    size = parse_size(opts["max-size"]) if "max-size" in opts else 0
    files_s = opts.get("max-file", "1")
    if not files_s.isdigit():
        raise InvalidArgument(f"invalid log opt max-file {files_s!r}: not a number")
    if int(files_s) > 1 and not size:
        raise InvalidArgument("log opt max-file needs max-size to be set")
    return LogConfig(size, int(files_s))


def parse_size(text: str) -> int:
    """``10m`` / ``512k`` / ``1g`` / ``1024`` -> bytes."""
    t = text.strip().lower().removesuffix("b")
    mult = {"k": 1024, "m": 1024**2, "g": 1024**3}.get(t[-1:], 1)
    num = t[:-1] if t[-1:] in "kmg" else t
    try:
        value = int(float(num) * mult)
    except ValueError as err:
        raise InvalidArgument(f"invalid size {text!r}") from err
    if value <= 0:
        raise InvalidArgument(f"invalid size {text!r}: must be positive")
    return value


def format_timestamp(ns: int) -> str:
    """RFC 3339 with nanoseconds, UTC: ``2026-11-27T21:16:12.123456789Z``."""
    secs, frac = divmod(ns, 10**9)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"


def parse_timestamp(text: str) -> int:
    """Inverse of ``format_timestamp`` (also accepts fewer fraction digits)."""
    import calendar

    base, _, frac = text.rstrip("Z").partition(".")
    secs = calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S"))
    return secs * 10**9 + int((frac + "000000000")[:9])


class LogWriter:
    """Split output into records and append them to ``json.log``, rotating when asked."""

    def __init__(self, directory: Path, config: LogConfig = LogConfig()) -> None:
        self.path = directory / LOG_NAME
        self.config = config
        self._partial: dict[str, bytes] = {s: b"" for s in _STREAMS}
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        self._size = os.fstat(self._fd).st_size

    def write(self, stream: str, data: bytes, now_ns: int | None = None) -> None:
        """Append ``data`` from ``stream``; complete lines become records at once."""
        ts = time.time_ns() if now_ns is None else now_ns
        buf = self._partial[stream] + data
        while True:
            nl = buf.find(b"\n")
            if nl < 0 or nl >= MAX_RECORD:
                if len(buf) < MAX_RECORD:
                    break
                self._emit(stream, buf[:MAX_RECORD], ts)
                buf = buf[MAX_RECORD:]
                continue
            self._emit(stream, buf[: nl + 1], ts)
            buf = buf[nl + 1 :]
        self._partial[stream] = buf

    def flush_partial(self, now_ns: int | None = None) -> None:
        """Write out unterminated lines (at exit), as records without a newline."""
        ts = time.time_ns() if now_ns is None else now_ns
        for stream in _STREAMS:
            if self._partial[stream]:
                self._emit(stream, self._partial[stream], ts)
                self._partial[stream] = b""

    def close(self) -> None:
        """Flush and close the file."""
        self.flush_partial()
        os.close(self._fd)

    def _emit(self, stream: str, chunk: bytes, ts: int) -> None:
        rec = {"log": chunk.decode("utf-8", "surrogateescape"), "stream": stream,
               "time": format_timestamp(ts)}  # fmt: skip
        line = (json.dumps(rec, ensure_ascii=True) + "\n").encode()
        if self.config.max_size and self._size and self._size + len(line) > self.config.max_size:
            self._rotate()
        os.write(self._fd, line)
        self._size += len(line)

    def _rotate(self) -> None:
        os.close(self._fd)
        keep = self.config.max_file - 1
        if keep <= 0:
            os.unlink(self.path)
        else:
            for i in range(keep - 1, 0, -1):
                older = self.path.with_name(f"{LOG_NAME}.{i}")
                if older.exists():
                    os.replace(older, self.path.with_name(f"{LOG_NAME}.{i + 1}"))
            os.replace(self.path, self.path.with_name(f"{LOG_NAME}.1"))
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        self._size = 0


def _decode_line(line: bytes) -> LogRecord | None:
    try:
        rec = json.loads(line)
        data = str(rec["log"]).encode("utf-8", "surrogateescape")
        return LogRecord(str(rec["stream"]), parse_timestamp(str(rec["time"])), data)
    except (ValueError, KeyError, TypeError):
        return None  # a torn last line (the monitor was killed mid-write) is skipped


def log_files(directory: Path) -> list[Path]:
    """The log files of a container, oldest first."""
    rotated = sorted(
        (p for p in directory.glob(f"{LOG_NAME}.*") if p.suffix[1:].isdigit()),
        key=lambda p: -int(p.suffix[1:]),
    )
    current = directory / LOG_NAME
    return [*rotated, current] if current.exists() else rotated


def iter_records(directory: Path, current_limit: int | None = None) -> Iterator[LogRecord]:
    """Every stored record, oldest first; of ``json.log`` only the first ``current_limit`` bytes."""
    current = directory / LOG_NAME
    for path in log_files(directory):
        left = current_limit if path == current and current_limit is not None else -1
        with open(path, "rb") as f:
            for line in f:
                if left >= 0:
                    if left < len(line):
                        break
                    left -= len(line)
                if line.endswith(b"\n") and (rec := _decode_line(line)) is not None:
                    yield rec


def _complete_size(path: Path) -> tuple[int, int | None]:
    """Size of ``path`` up to its last complete line, and its inode (0, None if missing)."""
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            end = st.st_size
            while end > 0:
                start = max(0, end - 65536)
                f.seek(start)
                nl = f.read(end - start).rfind(b"\n")
                if nl >= 0:
                    return start + nl + 1, st.st_ino
                end = start
            return 0, st.st_ino
    except FileNotFoundError:
        return 0, None


def _wanted(rec: LogRecord, since: int | None, until: int | None, streams: set[str]) -> bool:
    if rec.stream not in streams:
        return False
    if since is not None and rec.timestamp < since:
        return False
    return until is None or rec.timestamp <= until


async def read_logs(
    directory: Path,
    *,
    follow: bool = False,
    since: int | None = None,
    until: int | None = None,
    tail: int | None = None,
    stdout: bool = True,
    stderr: bool = True,
    finished: object = None,
    poll_interval: float = 0.05,
    wakeup: asyncio.Event | None = None,
) -> AsyncIterator[LogRecord]:
    """Yield a container's log records; with ``follow`` keep going until it has exited.

    ``since``/``until`` are ns timestamps; ``tail`` keeps only the last N records of what is
    stored. ``finished`` is a zero-argument callable telling whether the container's monitor
    has finished writing (default: the exit file exists). A follow also ends when the
    container's directory is removed; it reads to the end of what was written first.
    ``wakeup``, set by whoever knows that there is more to read (the monitor's attach
    socket), cuts the wait between polls short.
    """
    import anyio

    streams = {s for s, on in (("stdout", stdout), ("stderr", stderr)) if on}
    current = directory / LOG_NAME
    # Records up to ``pos`` are the backlog, what follows is followed: none is seen twice.
    pos, ino = _complete_size(current)
    stored = (r for r in iter_records(directory, pos) if _wanted(r, since, until, streams))
    backlog = deque(stored, maxlen=tail) if tail is not None and tail >= 0 else stored
    for rec in backlog:
        yield rec
    if not follow:
        return
    follower = _Follower(directory, pos, ino)
    custom = finished if callable(finished) else None
    try:
        while True:
            # Read the flag first: data written before it is then seen below.
            was_done = (custom() if custom else follower.exited()) or follower.gone()
            chunk = follower.read_new()
            for line in chunk:
                new = _decode_line(line)
                if new is not None and _wanted(new, since, until, streams):
                    yield new
                if new is not None and until is not None and new.timestamp > until:
                    return
            if was_done and not chunk:
                return
            if not chunk:
                with anyio.move_on_after(poll_interval):
                    await (wakeup.wait() if wakeup is not None else anyio.sleep_forever())
                if wakeup is not None:
                    wakeup.clear()
    finally:
        follower.close()


class _Follower:
    """Where a follow of ``json.log`` stands. The container's directory and the file being
    read are held open, so that the lines a container wrote last are still read when its
    directory is moved aside or deleted (a ``--rm`` removal) before the follower gets to
    them; a rotation (``json.log`` -> ``json.log.1``) is followed to the new file."""

    def __init__(self, directory: Path, pos: int, ino: int | None) -> None:
        try:
            self.dir_fd: int | None = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            self.dir_fd = None
        self.fd: int | None = None
        self.pos, self.ino, self.buf = pos, ino, b""

    def close(self) -> None:
        for fd in (self.fd, self.dir_fd):
            if fd is not None:
                os.close(fd)
        self.fd = self.dir_fd = None

    def gone(self) -> bool:
        """The container's directory was deleted (or never existed)."""
        return self.dir_fd is None or os.fstat(self.dir_fd).st_nlink == 0

    def exited(self) -> bool:
        """The monitor wrote the exit file: nothing more will be logged."""
        return self._stat("exit.json") is not None

    def _stat(self, name: str) -> os.stat_result | None:
        if self.dir_fd is None:
            return None
        try:
            return os.stat(name, dir_fd=self.dir_fd)
        except FileNotFoundError:
            return None

    def _open(self, name: str) -> int | None:
        if self.dir_fd is None:
            return None
        try:
            return os.open(name, os.O_RDONLY, dir_fd=self.dir_fd)
        except FileNotFoundError:
            return None

    def _hold(self) -> None:
        """Open the file at ``ino`` (``json.log``, or ``json.log.1`` if it rotated since)."""
        for name in (LOG_NAME, f"{LOG_NAME}.1"):
            fd = self._open(name)
            if fd is None:
                continue
            ino = os.fstat(fd).st_ino
            if self.ino is None or ino == self.ino:
                self.fd, self.ino = fd, ino
                return
            os.close(fd)
        if self.ino is not None and self._stat(LOG_NAME) is not None:
            self.ino, self.pos = None, 0  # ours is gone: on to the file written now
            self._hold()

    def _drain(self) -> bytes:
        assert self.fd is not None
        parts = []
        while part := os.pread(self.fd, 1 << 20, self.pos):
            parts.append(part)
            self.pos += len(part)
        return b"".join(parts)

    def read_new(self) -> list[bytes]:
        """Complete new lines since the last call."""
        if self.fd is None:
            self._hold()
        data = b""
        if self.fd is not None:
            data = self._drain()
            now = self._stat(LOG_NAME)
            if now is not None and now.st_ino != self.ino:
                data += self._drain()  # rotated: the old file is complete, then the new one
                os.close(self.fd)
                self.fd, self.ino, self.pos = None, None, 0
                self._hold()
                if self.fd is not None:
                    data += self._drain()
        self.buf += data
        lines = self.buf.split(b"\n")
        self.buf = lines.pop()
        return [line + b"\n" for line in lines]


