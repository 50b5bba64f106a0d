"""A tar archive produced while it is sent: chunks from a writer thread, bounded memory.

:mod:`tarfile` writes a whole member in one ``add`` call, so ``cp bigdir ctr:/`` either
holds the archive in memory or runs tarfile elsewhere. Here it runs in a thread writing into
a small bounded queue, and the caller iterates the chunks (at most ``_DEPTH`` of
``_CHUNK`` bytes wait at a time). Stopping the iteration early stops the writer.
"""

from __future__ import annotations

import contextlib
import queue
import tarfile
import threading
from collections.abc import Callable, Generator
from typing import IO, cast

_CHUNK = 256 * 1024
_DEPTH = 8
_END = object()


class _Stopped(Exception):
    """The reader went away: the writer thread gives up."""


class _QueueWriter:
    """The file tarfile writes to: every write becomes one queued chunk."""

    def __init__(self, chunks: queue.Queue[object], stop: threading.Event) -> None:
        self._chunks = chunks
        self._stop = stop

    def write(self, data: bytes) -> int:
        _put(self._chunks, self._stop, bytes(data))
        return len(data)


def _put(chunks: queue.Queue[object], stop: threading.Event, item: object) -> None:
    while True:
        if stop.is_set():
            raise _Stopped
        try:
            chunks.put(item, timeout=0.2)
            return
        except queue.Full:
            continue


def tar_chunks(build: Callable[[tarfile.TarFile], None]) -> Generator[bytes, None, None]:
    """The bytes of the tar archive ``build(tar)`` writes, as they are written.

    An exception in ``build`` (an unreadable file, say) is raised here, after the chunks
    written before it.
    """
    chunks: queue.Queue[object] = queue.Queue(maxsize=_DEPTH)
    stop = threading.Event()

    def produce() -> None:
        try:
            sink = _QueueWriter(chunks, stop)
            with tarfile.open(fileobj=cast("IO[bytes]", sink), mode="w|", bufsize=_CHUNK) as tar:
                build(tar)
            _put(chunks, stop, _END)
        except _Stopped:
            pass
        except BaseException as err:  # handed to the reader, which raises it
            with contextlib.suppress(_Stopped):
                _put(chunks, stop, err)

    writer = threading.Thread(target=produce, name="tar-writer", daemon=True)
    writer.start()
    try:
        while True:
            item = chunks.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, bytes)
            yield item
    finally:
        stop.set()
        writer.join()
