"""The Docker Engine API client the CLI and compose use: stdlib only, cheap to import.

``http.client`` costs more import time than the whole ``container run`` budget allows, so
this speaks HTTP/1.1 itself over an ``AF_UNIX`` socket: one connection per request, JSON in
and out, streamed bodies (progress lines, multiplexed log frames) and hijacked connections
for attach and exec. Works against pycompose's engine and against a Docker daemon.
"""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, BinaryIO, cast
from urllib.parse import quote, urlencode

from pycompose.engine.api.streams import (
    MULTIPLEXED_STREAM,
    STDOUT,
    FrameDecoder,
    JsonStreamDecoder,
)
from pycompose.engine.errors import Conflict, EngineError, InvalidArgument, NotFound

API_VERSION = "1.47"
USER_AGENT = "pycompose-client"
_RECV = 65536
_MAX_HEAD = 64 * 1024
_SEND = 256 * 1024

if TYPE_CHECKING:
    #: A raw request body: bytes, a binary file (sent from where it stands to its end) or
    #: an iterable of chunks (sent as they come, with chunked transfer encoding).
    RequestData = bytes | BinaryIO | Iterable[bytes]


class EngineUnreachable(EngineError):
    """Nothing answers on the engine socket."""

    status = 503


def error_for_status(status: int, message: str) -> EngineError:
    """The engine error class matching an HTTP error status."""
    cls: type[EngineError] = {400: InvalidArgument, 404: NotFound, 409: Conflict}.get(
        status, EngineError
    )
    err = cls(message)
    if cls is EngineError:
        err.status = status
    return err


class _Wire:
    """A socket with a receive buffer: lines, exact reads and "whatever came"."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()
        self.eof = False

    def _fill(self) -> bool:
        if self.eof:
            return False
        data = self.sock.recv(_RECV)
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def read_until(self, sep: bytes, limit: int) -> bytes:
        start = 0
        while True:
            idx = self.buf.find(sep, start)
            if idx >= 0:
                out = bytes(self.buf[: idx + len(sep)])
                del self.buf[: idx + len(sep)]
                return out
            if len(self.buf) > limit:
                raise EngineError("engine response head too large")
            start = max(0, len(self.buf) - len(sep) + 1)
            if not self._fill():
                raise EngineError("engine closed the connection mid-response")

    def read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._fill():
                raise EngineError("engine closed the connection mid-body")
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_some(self, n: int) -> bytes:
        if not self.buf and not self._fill():
            return b""
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out


class ClientResponse:
    """A response whose body is read on demand; use as a context manager to close it."""

    def __init__(self, wire: _Wire, status: int, headers: dict[str, str], head_only: bool) -> None:
        self._wire = wire
        self.status = status
        self.headers = headers
        te = headers.get("transfer-encoding", "").lower()
        self._chunked = te == "chunked"
        self._remaining: int | None = None
        self._chunk_left = 0
        self._done = head_only or status in (204, 304) or 100 <= status < 200
        if not self._chunked and "content-length" in headers:
            self._remaining = int(headers["content-length"])
            self._done = self._done or self._remaining == 0

    @property
    def content_type(self) -> str:
        """The media type without parameters."""
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()

    def read_chunk(self) -> bytes:
        """The next piece of the body as it arrives; ``b""`` at its end."""
        if self._done:
            return b""
        if self._chunked:
            return self._read_chunked()
        if self._remaining is not None:
            data = self._wire.read_some(min(_RECV, self._remaining))
            if not data:
                raise EngineError("engine closed the connection mid-body")
            self._remaining -= len(data)
            self._done = self._remaining == 0
            return data
        data = self._wire.read_some(_RECV)  # close-delimited body
        self._done = not data
        return data

    def _read_chunked(self) -> bytes:
        if self._chunk_left == 0:
            line = self._wire.read_until(b"\r\n", 1024)
            size = int(line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self._wire.read_until(b"\r\n", _MAX_HEAD) != b"\r\n":
                    pass
                self._done = True
                return b""
            self._chunk_left = size
        data = self._wire.read_some(self._chunk_left)
        if not data:
            raise EngineError("engine closed the connection mid-chunk")
        self._chunk_left -= len(data)
        if self._chunk_left == 0:
            self._wire.read_exact(2)
        return data

    def read(self) -> bytes:
        """The whole (rest of the) body."""
        parts = []
        while chunk := self.read_chunk():
            parts.append(chunk)
        return b"".join(parts)

    def json(self) -> Any:
        """The body parsed as JSON."""
        data = self.read()
        return json.loads(data) if data.strip() else None

    def iter_chunks(self) -> Iterator[bytes]:
        """Body pieces as they arrive."""
        while chunk := self.read_chunk():
            yield chunk

    def iter_json(self, *, raise_errors: bool = True) -> Iterator[Any]:
        """Streamed JSON documents (progress, events); an in-stream ``error`` raises."""
        decoder = JsonStreamDecoder()
        for chunk in self.iter_chunks():
            for obj in decoder.feed(chunk):
                if raise_errors and isinstance(obj, dict) and obj.get("error"):
                    detail = obj.get("errorDetail") or {}
                    raise EngineError(str(detail.get("message") or obj["error"]))
                yield obj
        if decoder.pending:
            raise EngineError("engine stream ended inside a JSON document")

    def iter_frames(self, *, tty: bool | None = None) -> Iterator[tuple[int, bytes]]:
        """``(stream, data)`` pairs: demultiplexed frames, or TTY output as STDOUT.

        From API 1.42 on, multiplexed output says so in its Content-Type, so ``tty`` is only
        needed against older daemons (``tty=False`` forces demultiplexing).
        """
        if tty is False or self.content_type == MULTIPLEXED_STREAM:
            decoder = FrameDecoder()
            for chunk in self.iter_chunks():
                yield from decoder.feed(chunk)
            if decoder.pending:
                raise EngineError("engine stream ended inside a frame")
            return
        for chunk in self.iter_chunks():
            yield STDOUT, chunk

    def close(self) -> None:
        """Close the connection (any unread body is dropped)."""
        self._wire.sock.close()

    def __enter__(self) -> ClientResponse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class HijackedConnection:
    """The raw byte stream of attach / exec start, after the 101 (or 200) head.

    ``initial`` holds output that arrived together with the head. ``tty`` is False when the
    output is multiplexed (use :class:`FrameDecoder`).
    """

    def __init__(self, sock: socket.socket, initial: bytes, content_type: str, tty: bool) -> None:
        self.sock = sock
        self.initial = initial
        self.content_type = content_type
        self.tty = tty

    def send(self, data: bytes) -> None:
        """Write to the process's stdin."""
        self.sock.sendall(data)

    def recv(self, n: int = _RECV) -> bytes:
        """Output as it comes (``initial`` first); ``b""`` at end."""
        if self.initial:
            out, self.initial = self.initial, b""
            return out
        return self.sock.recv(n)

    def close_write(self) -> None:
        """Signal the end of stdin."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        """Close the connection."""
        self.sock.close()

    def __enter__(self) -> HijackedConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EngineClient:
    """Talks to one engine socket. Every call opens its own connection (cheap on a unix
    socket), so one client may be shared by threads.

    With ``api_version=None`` the version is negotiated as the docker CLI does: the first
    ``/_ping`` reads the server's ``Api-Version`` and the lower of it and ours is used, so
    the same client drives pycompose's engine and older Docker daemons.
    """

    def __init__(
        self,
        socket_path: str,
        *,
        timeout: float | None = 60.0,
        api_version: str | None = None,
    ) -> None:
        self.socket_path = socket_path
        self.timeout = timeout
        self.api_version = api_version

    def _url(self, path: str, query: Mapping[str, Any] | None, *, versioned: bool = True) -> str:
        url = f"/v{self.negotiate()}{path}" if versioned else path
        if query:
            items = {k: _query_value(v) for k, v in query.items() if v is not None}
            if items:
                url += "?" + urlencode(items, doseq=True)
        return quote(url, safe="/:?=&%@+,;~")

    def negotiate(self) -> str:
        """The API version requests use (pinging the server once if it is not known yet)."""
        if self.api_version is None:
            with self.request("GET", "/_ping", versioned=False) as resp:
                resp.read()
            if self.api_version is None:  # the server sent no Api-Version: assume ours
                self.api_version = API_VERSION
        return self.api_version

    def _learn_version(self, headers: Mapping[str, str]) -> None:
        server = headers.get("api-version")
        if self.api_version is not None or not server:
            return
        try:
            theirs = tuple(int(p) for p in server.split("."))
        except ValueError:
            return
        ours = tuple(int(p) for p in API_VERSION.split("."))
        self.api_version = server if theirs < ours else API_VERSION

    def _connect(self, timeout: float | None) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(self.socket_path)
        except (FileNotFoundError, ConnectionRefusedError) as err:
            sock.close()
            raise EngineUnreachable(
                f"cannot reach the engine at unix://{self.socket_path}: {err.strerror}"
            ) from err
        except OSError:
            sock.close()
            raise
        return sock

    def open(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        data: RequestData | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = -1.0,
        upgrade: bool = False,
        versioned: bool = True,
    ) -> tuple[_Wire, int, dict[str, str]]:
        """Send a request and read the response head. ``body`` is JSON, ``data`` raw.

        ``data`` may be bytes, a binary file (a regular file goes with its Content-Length,
        zero-copy; a pipe is read as it fills) or an iterable of byte chunks: the last two
        are sent with chunked transfer encoding, so a large body never sits in memory.
        ``timeout`` is the socket timeout in seconds (``None``: wait forever; the default
        is the client's), ``upgrade`` asks to hijack the connection, and ``versioned=False``
        leaves out the ``/vX.YY`` prefix.
        """
        target = self._url(path, query, versioned=versioned)
        hdrs = {"Host": "docker", "User-Agent": USER_AGENT}
        payload = b""
        source: _BodySource | None = None
        if body is not None:
            payload = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        elif isinstance(data, (bytes, bytearray, memoryview)):
            payload = bytes(data)
        elif data is not None:
            source = _BodySource(data)
        if source is not None and source.length is None:
            hdrs["Transfer-Encoding"] = "chunked"
        elif body is not None or data is not None or method in ("POST", "PUT"):
            hdrs["Content-Length"] = str(len(payload) if source is None else source.length)
        if upgrade:
            hdrs.update({"Connection": "Upgrade", "Upgrade": "tcp"})
        else:
            hdrs["Connection"] = "close"
        hdrs.update(headers or {})
        head = f"{method} {target} HTTP/1.1\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in hdrs.items()) + "\r\n"
        sock = self._connect(self.timeout if timeout == -1.0 else timeout)
        wire = _Wire(sock)
        try:
            sock.sendall(head.encode("latin-1") + payload)
            if source is not None:
                source.send(sock)
            status, resp_headers = _read_head(wire)
        except (BrokenPipeError, ConnectionResetError) as err:
            # The engine may answer (an error, say) without reading the whole body and
            # hang up: its answer is worth more than our broken pipe.
            status, resp_headers = self._early_answer(wire, err)
        except BaseException:
            sock.close()
            raise
        self._learn_version(resp_headers)
        return wire, status, resp_headers

    @staticmethod
    def _early_answer(wire: _Wire, err: OSError) -> tuple[int, dict[str, str]]:
        try:
            return _read_head(wire)
        except (OSError, EngineError):
            wire.sock.close()
            raise err from None

    def request(self, method: str, path: str, **kwargs: Any) -> ClientResponse:
        """Send a request; return the response for streaming. Error statuses raise."""
        wire, status, headers = self.open(method, path, **kwargs)
        resp = ClientResponse(wire, status, headers, head_only=method == "HEAD")
        if status >= 400:
            with resp:
                raise error_for_status(status, _error_text(resp.read(), status))
        return resp

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send a request and return the JSON (or ``None`` for an empty body)."""
        with self.request(method, path, **kwargs) as resp:
            return resp.json()

    def get(self, path: str, query: Mapping[str, Any] | None = None) -> Any:
        """``GET`` returning JSON."""
        return self.call("GET", path, query=query)

    def post(self, path: str, body: Any = None, query: Mapping[str, Any] | None = None) -> Any:
        """``POST`` a JSON body, returning JSON."""
        return self.call("POST", path, query=query, body=body)

    def delete(self, path: str, query: Mapping[str, Any] | None = None) -> Any:
        """``DELETE`` returning JSON."""
        return self.call("DELETE", path, query=query)

    def stream(self, method: str, path: str, **kwargs: Any) -> ClientResponse:
        """A response to read as it streams (no read timeout): use ``with``."""
        kwargs.setdefault("timeout", None)
        return self.request(method, path, **kwargs)

    def hijack(
        self,
        path: str,
        *,
        body: Any = None,
        query: Mapping[str, Any] | None = None,
        tty: bool = False,
    ) -> HijackedConnection:
        """POST with ``Upgrade: tcp`` and take the raw connection (attach, exec start)."""
        wire, status, headers = self.open(
            "POST", path, query=query, body=body, upgrade=True, timeout=None
        )
        if status not in (101, 200):
            resp = ClientResponse(wire, status, headers, head_only=False)
            with resp:
                raise error_for_status(status, _error_text(resp.read(), status))
        ctype = headers.get("content-type", "").split(";", 1)[0].strip()
        multiplexed = ctype == MULTIPLEXED_STREAM or not tty
        return HijackedConnection(wire.sock, bytes(wire.buf), ctype, tty=not multiplexed)

    def ping(self) -> bool:
        """True if the engine answers ``/_ping`` (unversioned, as clients do)."""
        try:
            with self.request("GET", "/_ping", timeout=2.0, versioned=False) as resp:
                return resp.read() == b"OK"
        except (OSError, EngineError):
            return False

    def version(self) -> dict[str, Any]:
        """``GET /version``."""
        result = self.get("/version")
        assert isinstance(result, dict)
        return result

    def info(self) -> dict[str, Any]:
        """``GET /info``."""
        result = self.get("/info")
        assert isinstance(result, dict)
        return result


class _BodySource:
    """A streamed request body: its length when it is known up front, and how to send it."""

    def __init__(self, data: BinaryIO | Iterable[bytes]) -> None:
        self._data = data
        self.length: int | None = None
        self._offset = 0
        if hasattr(data, "read"):
            self.length, self._offset = _regular_file_span(cast(BinaryIO, data))

    def send(self, sock: socket.socket) -> None:
        if self.length is not None:
            fp = cast(BinaryIO, self._data)
            sent = sock.sendfile(fp, self._offset, self.length)
            if sent != self.length:
                raise EngineError(
                    f"request body file shrank while it was sent ({sent} of {self.length} bytes)"
                )
            return
        for chunk in self._chunks():
            if chunk:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        sock.sendall(b"0\r\n\r\n")

    def _chunks(self) -> Iterator[bytes]:
        if hasattr(self._data, "read"):
            fp = cast(BinaryIO, self._data)
            while chunk := fp.read(_SEND):
                yield chunk
            return
        yield from self._data


def _regular_file_span(fp: BinaryIO) -> tuple[int | None, int]:
    """``(bytes left, offset)`` of a regular file; ``(None, 0)`` for a pipe or the like."""
    import os
    import stat

    try:
        fd = fp.fileno()
        st = os.fstat(fd)
    except (OSError, ValueError, AttributeError):
        return None, 0
    if not stat.S_ISREG(st.st_mode):
        return None, 0
    offset = fp.tell()
    return max(0, st.st_size - offset), offset


def _query_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, dict):
        return json.dumps(value)
    return value


def _read_head(wire: _Wire) -> tuple[int, dict[str, str]]:
    while True:
        raw = wire.read_until(b"\r\n\r\n", _MAX_HEAD)
        lines = raw.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise EngineError(f"engine sent a malformed status line: {lines[0][:80]!r}")
        status = int(parts[1])
        if status == 100:  # an interim answer to Expect: 100-continue
            continue
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                key, _, value = line.partition(":")
                headers[key.strip().lower()] = value.strip()
        return status, headers


def _error_text(body: bytes, status: int) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return str(data["message"])
    text = body.decode(errors="replace").strip()
    return text or f"engine answered HTTP {status}"


def passthrough(
    conn: HijackedConnection,
    *,
    stdin_fd: int | None,
    stdout_fd: int,
    stderr_fd: int,
    on_resize: Callable[[int, int], None] | None = None,
) -> None:
    """Copy the terminal to a hijacked connection and back until the output ends.

    With a TTY connection and a terminal on ``stdin_fd`` the terminal is put in raw mode
    (restored afterwards) so keys like Ctrl-C reach the container, and ``on_resize(rows,
    cols)`` is called at start and on every SIGWINCH. Without a TTY the output is
    demultiplexed to ``stdout_fd`` / ``stderr_fd``. End of stdin half-closes the connection.
    """
    import os
    import selectors

    restore = _enter_raw_mode(stdin_fd) if conn.tty and stdin_fd is not None else None
    old_winch = _watch_resize(stdin_fd, on_resize) if restore is not None else None
    decoder = None if conn.tty else FrameDecoder()
    sel = selectors.DefaultSelector()
    sel.register(conn.sock, selectors.EVENT_READ, "sock")
    if stdin_fd is not None:
        sel.register(stdin_fd, selectors.EVENT_READ, "stdin")
    try:
        if conn.initial:
            _deliver(conn.recv(), decoder, stdout_fd, stderr_fd)
        while True:
            for key, _ in sel.select():
                if key.data == "stdin":
                    data = os.read(key.fd, _RECV)
                    if data:
                        conn.send(data)
                    else:
                        sel.unregister(key.fd)
                        conn.close_write()
                    continue
                data = conn.sock.recv(_RECV)
                if not data:
                    return
                _deliver(data, decoder, stdout_fd, stderr_fd)
    finally:
        sel.close()
        if old_winch is not None:
            import signal

            signal.signal(signal.SIGWINCH, old_winch)
        if restore is not None:
            restore()


def _deliver(data: bytes, decoder: FrameDecoder | None, stdout_fd: int, stderr_fd: int) -> None:
    import os

    if decoder is None:
        _write_all(os, stdout_fd, data)
        return
    for stream, payload in decoder.feed(data):
        _write_all(os, stderr_fd if stream != STDOUT else stdout_fd, payload)


def _write_all(os_mod: Any, fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os_mod.write(fd, view) :]


def _enter_raw_mode(fd: int) -> Callable[[], None] | None:
    import os

    if not os.isatty(fd):
        return None
    import termios
    import tty

    saved = termios.tcgetattr(fd)
    tty.setraw(fd)

    def restore() -> None:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)

    return restore


def _watch_resize(fd: int | None, on_resize: Callable[[int, int], None] | None) -> Any:
    if fd is None or on_resize is None:
        return None
    import os
    import signal

    def report(*_: object) -> None:
        size = os.get_terminal_size(fd)
        on_resize(size.lines, size.columns)

    report()
    return signal.signal(signal.SIGWINCH, report)
