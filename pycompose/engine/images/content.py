"""Content-addressed blob store: ``<root>/blobs/sha256/<hex>`` plus resumable ingests.

Every blob is verified while it streams in (sha256 and, when known, the size), written to
a temp file under ``<root>/ingest/``, fsynced and renamed into place, so a blob path that
exists always holds exactly the bytes its name promises. ``root`` is the content directory
itself (``<state>/content``).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import pathlib
import secrets
from collections.abc import Iterator
from types import TracebackType
from typing import BinaryIO

from pycompose.engine.errors import InvalidArgument, NotFound
from pycompose.engine.images.reference import validate_digest

_CHUNK = 1 << 20


def digest_hex(digest: str) -> str:
    """The 64 hex digits of a valid ``sha256:`` digest; InvalidArgument otherwise."""
    return validate_digest(digest).split(":", 1)[1]


def sha256_digest(data: bytes) -> str:
    """The ``sha256:<hex>`` digest of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _fsync_dir(path: pathlib.Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Ingest:
    """One blob being written; use via :meth:`ContentStore.ingest` as a context manager.

    ``offset`` is the number of bytes already present from an earlier, interrupted ingest
    of the same expected digest: the caller continues from there (HTTP ``Range``) or calls
    :meth:`reset` to start over. Leaving the context without :meth:`commit` keeps the
    partial file when the expected digest is known (so it can be resumed) and removes it
    otherwise.
    """

    def __init__(self, store: ContentStore, partial: pathlib.Path, fd: int,
                 expected_digest: str | None, expected_size: int | None) -> None:
        self._store = store
        self._partial = partial
        self._fd = fd
        self._expected_digest = expected_digest
        self._expected_size = expected_size
        self._hash = hashlib.sha256()
        self._closed = False
        self.offset = self._rehash_existing()

    def _rehash_existing(self) -> int:
        """Feed bytes left by an earlier attempt into the hash; drop them if unusable."""
        size = os.fstat(self._fd).st_size
        if self._expected_size is not None and size > self._expected_size:
            os.ftruncate(self._fd, 0)
            size = 0
        os.lseek(self._fd, 0, os.SEEK_SET)
        done = 0
        while done < size:
            chunk = os.read(self._fd, min(_CHUNK, size - done))
            if not chunk:
                break
            self._hash.update(chunk)
            done += len(chunk)
        os.ftruncate(self._fd, done)
        os.lseek(self._fd, done, os.SEEK_SET)
        return done

    def __enter__(self) -> Ingest:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if not self._closed:
            self._close(keep=self._expected_digest is not None)

    def reset(self) -> None:
        """Throw away what was written so far (e.g. the server ignored a Range request)."""
        os.ftruncate(self._fd, 0)
        os.lseek(self._fd, 0, os.SEEK_SET)
        self._hash = hashlib.sha256()
        self.offset = 0

    def write(self, data: bytes) -> None:
        """Append ``data``; refuses to grow past the expected size."""
        if self._closed:
            raise InvalidArgument("write to a closed ingest")
        if self._expected_size is not None and self.offset + len(data) > self._expected_size:
            self._close(keep=False)
            what = self._expected_digest or "blob"
            raise InvalidArgument(f"{what} is larger than the expected {self._expected_size} bytes")
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self._hash.update(data)
        self.offset += len(data)

    def write_from(self, stream: BinaryIO) -> None:
        """Copy ``stream`` to its end into the ingest."""
        while chunk := stream.read(_CHUNK):
            self.write(chunk)

    def commit(self) -> str:
        """Verify digest and size, then move the blob into place; returns its digest."""
        if self._closed:
            raise InvalidArgument("commit of a closed ingest")
        actual = "sha256:" + self._hash.hexdigest()
        problem = None
        if self._expected_size is not None and self.offset != self._expected_size:
            problem = f"size mismatch: expected {self._expected_size} bytes, got {self.offset}"
        elif self._expected_digest is not None and actual != self._expected_digest:
            problem = f"digest mismatch: expected {self._expected_digest}, got {actual}"
        if problem is not None:
            self._close(keep=False)
            raise InvalidArgument(problem)
        os.fsync(self._fd)
        target = self._store.path(actual)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(self._partial, 0o444)
        os.rename(self._partial, target)
        _fsync_dir(target.parent)
        self._close(keep=True)
        return actual

    def _close(self, *, keep: bool) -> None:
        self._closed = True
        if not keep:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._partial)
        os.close(self._fd)  # also releases the flock


class ContentStore:
    """Blobs by digest under ``root`` (``<state>/content``)."""

    def __init__(self, root: pathlib.Path) -> None:
        self.root = pathlib.Path(root)
        self._blobs = self.root / "blobs" / "sha256"
        self._ingest = self.root / "ingest"
        self._blobs.mkdir(parents=True, exist_ok=True)
        self._ingest.mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> pathlib.Path:
        """Where the blob ``digest`` lives (whether or not it exists)."""
        return self._blobs / digest_hex(digest)

    def has(self, digest: str) -> bool:
        """Whether the blob is present."""
        return self.path(digest).is_file()

    def size(self, digest: str) -> int:
        """Size in bytes of a present blob; NotFound otherwise."""
        try:
            return self.path(digest).stat().st_size
        except FileNotFoundError as err:
            raise NotFound(f"blob {digest} not found") from err

    def open(self, digest: str) -> BinaryIO:
        """Open a present blob for reading (the caller closes it)."""
        try:
            return open(self.path(digest), "rb")
        except FileNotFoundError as err:
            raise NotFound(f"blob {digest} not found") from err

    def read(self, digest: str, max_size: int | None = None) -> bytes:
        """Read a whole blob, refusing (before reading) one larger than ``max_size``.

        The bytes are hashed again, so a blob damaged on disk is reported, not used.
        """
        size = self.size(digest)
        if max_size is not None and size > max_size:
            raise InvalidArgument(f"blob {digest} is {size} bytes, over the limit of {max_size}")
        with self.open(digest) as fp:
            data = fp.read()
        if sha256_digest(data) != digest:
            raise InvalidArgument(f"blob {digest} is corrupt on disk (digest mismatch)")
        return data

    def ingest(self, expected_digest: str | None = None,
               expected_size: int | None = None) -> Ingest:
        """Start writing a blob; see :class:`Ingest`. Resumable when the digest is known."""
        if expected_size is not None and expected_size < 0:
            raise InvalidArgument(f"invalid blob size {expected_size}")
        if expected_digest is not None:
            name = digest_hex(expected_digest) + ".partial"
        else:
            name = "tmp-" + secrets.token_hex(16) + ".partial"
        partial = self._ingest / name
        fd = self._open_locked(partial)
        return Ingest(self, partial, fd, expected_digest, expected_size)

    @staticmethod
    def _open_locked(partial: pathlib.Path) -> int:
        """Open and flock the partial file, waiting for a concurrent ingest of it to end.

        After the lock is ours, the path must still name the file we hold: the other
        ingest may have renamed it into the blob store, and writing to that would
        damage a finished blob.
        """
        while True:
            fd = os.open(partial, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                same = os.stat(partial, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                return fd
            os.close(fd)

    def put_bytes(self, data: bytes, expected_digest: str | None = None) -> str:
        """Store ``data`` (verified against ``expected_digest`` if given); returns its digest."""
        digest = sha256_digest(data)
        if expected_digest is not None:
            validate_digest(expected_digest)
            if digest != expected_digest:
                raise InvalidArgument(
                    f"digest mismatch: expected {expected_digest}, got {digest}")
        if self.has(digest):
            return digest
        with self.ingest(digest, len(data)) as ing:
            ing.reset()
            ing.write(data)
            return ing.commit()

    def delete(self, digest: str) -> None:
        """Remove a blob; NotFound if it is absent."""
        try:
            os.unlink(self.path(digest))
        except FileNotFoundError as err:
            raise NotFound(f"blob {digest} not found") from err

    def digests(self) -> Iterator[str]:
        """All present blobs (for garbage collection)."""
        for entry in os.scandir(self._blobs):
            if entry.is_file(follow_symlinks=False) and len(entry.name) == 64:
                yield "sha256:" + entry.name

    def discard_partials(self) -> None:
        """Remove interrupted ingests nobody is writing (start-up clean-up)."""
        for entry in os.scandir(self._ingest):
            fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                if err.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
            else:
                os.unlink(entry.path)
            finally:
                os.close(fd)
