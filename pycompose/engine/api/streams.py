"""Docker's stream formats: multiplexed stdout/stderr frames, JSON progress lines, raw streams.

Used by both the server and the client, so it imports only ``json`` and ``struct`` at run time.

Multiplexed frames (logs and attach without a TTY): an 8-byte header ``[stream, 0, 0, 0,
size (big-endian uint32)]`` followed by ``size`` bytes of that stream's output.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncio

STDIN = 0
STDOUT = 1
STDERR = 2
SYSTEM_ERR = 3  # API 1.42+: an error from the daemon itself, interleaved with the output

RAW_STREAM = "application/vnd.docker.raw-stream"
MULTIPLEXED_STREAM = "application/vnd.docker.multiplexed-stream"

_HEADER = struct.Struct(">BxxxL")
HEADER_SIZE = _HEADER.size
MAX_FRAME = 0xFFFFFFFF


def frame(stream: int, data: bytes) -> bytes:
    """One multiplexed frame carrying ``data`` on ``stream`` (STDOUT, STDERR, ...)."""
    if stream not in (STDIN, STDOUT, STDERR, SYSTEM_ERR):
        raise ValueError(f"invalid stream id {stream}")
    if len(data) > MAX_FRAME:
        raise ValueError("frame payload larger than 4 GiB")
    return _HEADER.pack(stream, len(data)) + data


class FrameDecoder:
    """Incremental decoder of multiplexed frames: ``feed`` bytes, get ``(stream, data)`` pairs."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """Add received bytes; return every frame now complete."""
        self._buf += data
        out: list[tuple[int, bytes]] = []
        while len(self._buf) >= HEADER_SIZE:
            stream, size = _HEADER.unpack_from(self._buf)
            if stream not in (STDIN, STDOUT, STDERR, SYSTEM_ERR):
                raise ValueError(f"invalid multiplexed stream header (stream id {stream})")
            if len(self._buf) < HEADER_SIZE + size:
                break
            out.append((stream, bytes(self._buf[HEADER_SIZE : HEADER_SIZE + size])))
            del self._buf[: HEADER_SIZE + size]
        return out

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame still buffered (non-zero at EOF means truncation)."""
        return len(self._buf)


def json_line(obj: Any) -> bytes:
    """One JSON document followed by a newline (progress, events, build output)."""
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


def progress_bar(current: int, total: int, width: int = 50) -> str:
    """Docker's textual progress, e.g. ``[=====>      ]  1.2MB/4.5MB``."""
    if total <= 0:
        return human_size(current)
    filled = min(width, int(width * current / total))
    bar = "=" * filled + (">" if filled < width else "") + " " * max(0, width - filled - 1)
    return f"[{bar}] {human_size(current):>8}/{human_size(total)}"


def human_size(n: float) -> str:
    """Decimal units, as Docker's progress uses (``1.23MB``)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.3g}{unit}"
        n /= 1000
    raise AssertionError("unreachable")


def progress_message(
    status: str,
    *,
    id: str | None = None,
    current: int | None = None,
    total: int | None = None,
) -> dict[str, Any]:
    """A JSON progress message shaped like Docker's (pull, push, load)."""
    msg: dict[str, Any] = {"status": status}
    if current is not None:
        detail: dict[str, int] = {"current": current}
        if total is not None:
            detail["total"] = total
        msg["progressDetail"] = detail
        msg["progress"] = progress_bar(current, total or 0)
    else:
        msg["progressDetail"] = {}
    if id is not None:
        msg["id"] = id
    return msg


def error_message(message: str) -> dict[str, Any]:
    """The in-stream error Docker clients look for once the 200 head is already sent."""
    return {"errorDetail": {"message": message}, "error": message}


def stream_message(text: str) -> dict[str, Any]:
    """Build output text (``{"stream": "Step 1/3 : FROM busybox\\n"}``)."""
    return {"stream": text}


def aux_message(obj: Any) -> dict[str, Any]:
    """Auxiliary data at the end of a stream (``{"aux": {"ID": "sha256:..."}}``)."""
    return {"aux": obj}


class JsonStreamDecoder:
    """Incremental decoder for a stream of JSON documents, newline-separated or simply adjacent."""

    def __init__(self) -> None:
        self._buf = ""
        self._pending = b""
        self._decoder = json.JSONDecoder()

    def feed(self, data: bytes) -> Iterator[Any]:
        """Add received bytes; yield every complete document."""
        data = self._pending + data
        try:
            text = data.decode()
            self._pending = b""
        except UnicodeDecodeError as err:
            if err.start < len(data) - 3:
                raise
            # A multi-byte character split across reads: keep its first bytes for later.
            text, self._pending = data[: err.start].decode(), data[err.start :]
        self._buf += text
        while True:
            stripped = self._buf.lstrip()
            if not stripped:
                self._buf = ""
                return
            try:
                obj, end = self._decoder.raw_decode(stripped)
            except json.JSONDecodeError:
                self._buf = stripped
                return
            self._buf = stripped[end:]
            yield obj

    @property
    def pending(self) -> str:
        """Text of an incomplete document still buffered."""
        return self._buf.strip()


class RawStream:
    """The byte stream of a hijacked connection (attach, exec start), handed to the handler.

    ``read`` returns ``b""`` once the client has closed its sending side (docker's CLI
    half-closes when stdin ends); ``close_write`` does the same in our direction.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def read(self, n: int = 65536) -> bytes:
        """Up to ``n`` bytes from the client; ``b""`` at end of input."""
        return await self._reader.read(n)

    async def write(self, data: bytes) -> None:
        """Send ``data`` to the client and wait until it is flushed."""
        self._writer.write(data)
        await self._writer.drain()

    async def write_frame(self, stream: int, data: bytes) -> None:
        """Send one multiplexed frame (non-TTY streams)."""
        await self.write(frame(stream, data))

    def close_write(self) -> None:
        """Half-close: tell the client no more output is coming."""
        if self._writer.can_write_eof() and not self._writer.is_closing():
            self._writer.write_eof()

    @property
    def at_eof(self) -> bool:
        """True when the client has closed its sending side and all input has been read."""
        return self._reader.at_eof()
