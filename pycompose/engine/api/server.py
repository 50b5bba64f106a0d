"""HTTP/1.1 over a unix socket, as the Docker Engine API speaks it.

A small, strict parser on asyncio streams: keep-alive, Content-Length and chunked bodies in
both directions, ``Expect: 100-continue``, the ``/vX.YY`` version prefix, Docker's error
bodies, and the ``Connection: Upgrade`` / ``Upgrade: tcp`` hijack that attach and exec start
use. Handlers are looked up in a :class:`~pycompose.engine.api.router.Router`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from pycompose.engine.api.router import (
    JSON_TYPE,
    AnyResponse,
    HijackResponse,
    HTTPError,
    Request,
    Response,
    Router,
    StreamResponse,
    error_response,
)
from pycompose.engine.api.streams import (
    MULTIPLEXED_STREAM,
    SYSTEM_ERR,
    RawStream,
    error_message,
    frame,
    json_line,
)
from pycompose.engine.errors import EngineError

log = logging.getLogger("pycompose.engine.api")

API_VERSION = "1.47"
MIN_API_VERSION = "1.41"

MAX_HEAD = 64 * 1024  # request line + headers
MAX_HEADERS = 100
MAX_CHUNK_LINE = 1024
DRAIN_LIMIT = 1024 * 1024  # unread body we still read past to keep a connection alive

_TOKEN_RE = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_VERSION_PREFIX_RE = re.compile(r"^/v(\d+)\.(\d+)(/.*)$")


class ProtocolError(Exception):
    """The bytes on the wire are not acceptable HTTP/1.1; answered with ``status`` then closed."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _version_tuple(version: str) -> tuple[int, int]:
    major, _, minor = version.partition(".")
    return int(major), int(minor)


@dataclass
class RequestHead:
    """Request line and headers, before routing."""

    method: str
    target: str
    http_version: str
    headers: dict[str, str]

    @property
    def keep_alive(self) -> bool:
        """HTTP/1.1 keeps the connection unless told not to; HTTP/1.0 only when asked."""
        tokens = {t.strip().lower() for t in self.headers.get("connection", "").split(",")}
        if self.http_version == "HTTP/1.0":
            return "keep-alive" in tokens
        return "close" not in tokens

    @property
    def wants_upgrade(self) -> bool:
        """The client asked to hijack the connection (``Upgrade: tcp``)."""
        tokens = {t.strip().lower() for t in self.headers.get("connection", "").split(",")}
        return "upgrade" in tokens and "upgrade" in self.headers


def parse_head(data: bytes) -> RequestHead:
    """Parse the request line and headers (``data`` ends with the empty line)."""
    lines = data.split(b"\r\n")
    while lines and lines[0] == b"":  # RFC 9112: ignore empty lines before the request line
        lines.pop(0)
    if not lines:
        raise ProtocolError(400, "empty request")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not _TOKEN_RE.match(parts[0]) or not parts[1]:
        raise ProtocolError(400, "malformed request line")
    method, target, version = (p.decode("latin-1") for p in parts)
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        raise ProtocolError(505, f"unsupported HTTP version {version!r}")
    if not target.startswith("/"):
        raise ProtocolError(400, "request target must be an absolute path")
    headers: dict[str, str] = {}
    count = 0
    for line in lines[1:]:
        if line == b"":
            continue
        if line[:1] in (b" ", b"\t"):
            raise ProtocolError(400, "obsolete header line folding is not accepted")
        name, sep, value = line.partition(b":")
        if not sep or not _TOKEN_RE.match(name):
            raise ProtocolError(400, f"malformed header line {line[:40]!r}")
        count += 1
        if count > MAX_HEADERS:
            raise ProtocolError(431, "too many request headers")
        key = name.decode("latin-1").lower()
        val = value.strip(b" \t").decode("latin-1")
        headers[key] = f"{headers[key]}, {val}" if key in headers else val
    return RequestHead(method, target, version, headers)


class BodyReader:
    """The request body, read on demand: Content-Length, chunked, or none."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        head: RequestHead,
    ) -> None:
        self._reader = reader
        self._writer = writer
        te = head.headers.get("transfer-encoding")
        cl = head.headers.get("content-length")
        self._chunked = False
        self._remaining = 0
        self._done = False
        self._continue = head.headers.get("expect", "").lower() == "100-continue"
        if te is not None:
            if cl is not None:
                raise ProtocolError(400, "both Transfer-Encoding and Content-Length given")
            if te.strip().lower() != "chunked":
                raise ProtocolError(501, f"unsupported Transfer-Encoding {te!r}")
            self._chunked = True
        elif cl is not None:
            values = {v.strip() for v in cl.split(",")}
            if len(values) != 1 or not next(iter(values)).isdigit():
                raise ProtocolError(400, f"invalid Content-Length {cl!r}")
            self._remaining = int(next(iter(values)))
        self._done = not self._chunked and self._remaining == 0

    @property
    def done(self) -> bool:
        """True when the whole body has been read."""
        return self._done

    async def read(self, n: int = 65536) -> bytes:
        """Up to ``n`` bytes of the body; ``b""`` once it is complete."""
        if self._done:
            return b""
        if self._continue:
            self._continue = False
            self._writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            await self._writer.drain()
        try:
            if self._chunked and self._remaining == 0:
                await self._next_chunk()
                if self._done:
                    return b""
            data = await self._reader.read(min(n, self._remaining))
        except asyncio.LimitOverrunError as err:
            raise ProtocolError(400, "malformed chunked body") from err
        if not data:
            raise ProtocolError(400, "request body ended early")
        self._remaining -= len(data)
        if self._remaining == 0 and not self._chunked:
            self._done = True
        elif self._remaining == 0:
            await self._expect_crlf()
        return data

    async def read_all(self, limit: int) -> bytes:
        """The rest of the body; more than ``limit`` bytes is a 413."""
        out = bytearray()
        while chunk := await self.read():
            out += chunk
            if len(out) > limit:
                raise HTTPError(413, f"request body is larger than the limit of {limit} bytes")
        return bytes(out)

    async def _next_chunk(self) -> None:
        line = await self._reader.readuntil(b"\r\n")
        size_s = line[:-2].split(b";", 1)[0].strip()
        if len(line) > MAX_CHUNK_LINE or not re.fullmatch(rb"[0-9A-Fa-f]{1,15}", size_s):
            raise ProtocolError(400, "malformed chunk size")
        self._remaining = int(size_s, 16)
        if self._remaining == 0:
            # Trailer fields are allowed but carry nothing we use: read up to the empty line.
            while (await self._reader.readuntil(b"\r\n")) != b"\r\n":
                pass
            self._done = True

    async def _expect_crlf(self) -> None:
        if await self._reader.readexactly(2) != b"\r\n":
            raise ProtocolError(400, "chunk not terminated by CRLF")


def _reason(status: int) -> str:
    if status == 101:
        return "UPGRADED"
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def encode_head(status: int, headers: Mapping[str, str]) -> bytes:
    """Status line and headers, ending with the empty line."""
    lines = [f"HTTP/1.1 {status} {_reason(status)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class ApiServer:
    """Serves a :class:`Router` on a unix socket.

    ``common_headers`` go on every response (Docker sends ``Server``, ``Api-Version`` and
    ``Ostype`` everywhere).
    """

    def __init__(self, router: Router, *, common_headers: Mapping[str, str] | None = None) -> None:
        self._router = router
        self._common = dict(common_headers or {})
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._socket_path: Path | None = None
        self._closing = False

    async def start(self, socket_path: Path, mode: int = 0o660) -> None:
        """Listen on ``socket_path`` (which must not exist) with file mode ``mode``."""
        self._server = await asyncio.start_unix_server(
            self._on_connection, path=str(socket_path), limit=MAX_HEAD
        )
        os.chmod(socket_path, mode)
        self._socket_path = socket_path

    async def close(self) -> None:
        """Stop listening, end every open connection (streams included) and remove the socket."""
        self._closing = True
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._socket_path is not None:
            with contextlib.suppress(FileNotFoundError):
                self._socket_path.unlink()
            self._socket_path = None

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            if self._closing:
                return  # accepted just before close(): not ours to serve any more
            await self._serve(reader, writer)
        except ProtocolError as err:
            with contextlib.suppress(ConnectionError):
                await self._send(writer, error_response(err.status, str(err)), keep_alive=False)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away; nothing to answer
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                data = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError as err:
                if err.partial.strip():
                    raise ProtocolError(400, "request head ended early") from err
                return  # clean end of a keep-alive connection
            except asyncio.LimitOverrunError as err:
                raise ProtocolError(431, "request head is larger than 64 KiB") from err
            head = parse_head(data)
            body = BodyReader(reader, writer, head)
            response = await self._dispatch(head, body)
            if isinstance(response, HijackResponse):
                await self._hijack(head, response, reader, writer)
                return
            keep = head.keep_alive and await self._finish_body(body)
            if isinstance(response, StreamResponse):
                await self._send_stream(head, response, reader, writer)
                return
            await self._send(writer, response, keep_alive=keep, head_only=head.method == "HEAD")
            if not keep:
                return

    async def _finish_body(self, body: BodyReader) -> bool:
        """Read what the handler left of the body, so the next request parses; False = close."""
        drained = 0
        while drained <= DRAIN_LIMIT:
            chunk = await body.read()
            if not chunk:
                return True
            drained += len(chunk)
        return False

    async def _dispatch(self, head: RequestHead, body: BodyReader) -> AnyResponse:
        try:
            request = self._make_request(head, body)
            log.debug("%s %s", head.method, head.target)
            handler, params = await self._router.resolve(request.method, request.path)
            request.params = {k: unquote(v) for k, v in params.items()}
            return await handler(request)
        except ProtocolError:
            raise
        except EngineError as err:
            return error_response(err.status, str(err))
        except Exception as err:
            log.exception("%s %s failed", head.method, head.target)
            return error_response(500, f"internal error: {type(err).__name__}: {err}")

    def _make_request(self, head: RequestHead, body: BodyReader) -> Request:
        parts = urlsplit(head.target)
        path = parts.path
        version = API_VERSION
        m = _VERSION_PREFIX_RE.match(path)
        if m is not None:
            version = f"{int(m.group(1))}.{int(m.group(2))}"
            path = m.group(3)
            check_api_version(version)
        return Request(
            method=head.method,
            path=unquote(path),
            query=parse_qs(parts.query, keep_blank_values=True),
            headers=head.headers,
            body=body,
            api_version=version,
        )

    def _headers(self, extra: Mapping[str, str]) -> dict[str, str]:
        return {**self._common, **extra}

    async def _send(
        self,
        writer: asyncio.StreamWriter,
        response: Response,
        *,
        keep_alive: bool,
        head_only: bool = False,
    ) -> None:
        headers = self._headers(response.headers)
        if response.content_type:
            headers["Content-Type"] = response.content_type
        if response.status not in (204, 304):
            headers["Content-Length"] = str(len(response.body))
        if not keep_alive:
            headers["Connection"] = "close"
        data = encode_head(response.status, headers)
        if not head_only and response.status not in (204, 304):
            data += response.body
        writer.write(data)
        await writer.drain()

    async def _send_stream(
        self,
        head: RequestHead,
        response: StreamResponse,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        """Send a chunked body as it is produced; stop early if the client hangs up."""
        chunked = head.http_version == "HTTP/1.1"
        headers = self._headers(response.headers)
        headers["Content-Type"] = response.content_type
        headers["Connection"] = "close"  # a stream ends the connection: simpler, as clients expect
        if chunked:
            headers["Transfer-Encoding"] = "chunked"
        writer.write(encode_head(response.status, headers))
        await writer.drain()
        if head.method == "HEAD":
            await _aclose(response.chunks)
            return
        pump = asyncio.ensure_future(self._pump(response, writer, chunked))
        hangup = asyncio.ensure_future(_wait_eof(reader))
        try:
            await asyncio.wait({pump, hangup}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (pump, hangup):
                task.cancel()
            await asyncio.gather(pump, hangup, return_exceptions=True)
            await _aclose(response.chunks)
        if pump.done() and not pump.cancelled() and pump.exception() is None and chunked:
            with contextlib.suppress(ConnectionError):
                writer.write(b"0\r\n\r\n")
                await writer.drain()

    async def _pump(
        self, response: StreamResponse, writer: asyncio.StreamWriter, chunked: bool
    ) -> None:
        try:
            async for chunk in response.chunks:
                if not chunk:
                    continue
                writer.write(_chunk(chunk, chunked))
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            raise
        except Exception as err:
            if not isinstance(err, EngineError):
                log.exception("stream of %s failed", type(response.chunks).__name__)
            tail = _stream_error(response.content_type, err)
            if tail:
                writer.write(_chunk(tail, chunked))
                await writer.drain()

    async def _hijack(
        self,
        head: RequestHead,
        response: HijackResponse,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        headers = self._headers(response.headers)
        headers["Content-Type"] = response.content_type
        if head.wants_upgrade:
            headers["Connection"] = "Upgrade"
            headers["Upgrade"] = "tcp"
            status = 101
        else:
            # Old clients hijack without asking; Docker answers 200 and streams raw bytes.
            status = 200
        writer.write(encode_head(status, headers))
        await writer.drain()
        try:
            await response.run(RawStream(reader, writer))
        except (ConnectionError, asyncio.CancelledError):
            raise
        except Exception:
            # The stream is raw bytes now: no way to tell the client; log and hang up.
            log.exception("hijacked %s %s failed", head.method, head.target)


def _stream_error(content_type: str, err: Exception) -> bytes:
    """How an error reaches a client once a 200 stream has begun, as Docker does it."""
    message = str(err) if isinstance(err, EngineError) else f"internal error: {err}"
    if content_type == JSON_TYPE:
        return json_line(error_message(message))
    if content_type == MULTIPLEXED_STREAM:
        return frame(SYSTEM_ERR, message.encode())
    return b""


def _chunk(data: bytes, chunked: bool) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data) if chunked else data


async def _aclose(chunks: object) -> None:
    aclose = getattr(chunks, "aclose", None)
    if aclose is not None:
        with contextlib.suppress(Exception):
            await aclose()


async def _wait_eof(reader: asyncio.StreamReader) -> None:
    """Return when the client closes its side (bytes it sends meanwhile are not a request)."""
    while await reader.read(4096):
        pass


def check_api_version(version: str) -> None:
    """Refuse API versions outside MIN_API_VERSION..API_VERSION, with Docker's wording."""
    v = _version_tuple(version)
    if v < _version_tuple(MIN_API_VERSION):
        raise HTTPError(
            400,
            f"client version {version} is too old. Minimum supported API version is "
            f"{MIN_API_VERSION}, please upgrade your client to a newer version",
        )
    if v > _version_tuple(API_VERSION):
        raise HTTPError(
            400,
            f"client version {version} is too new. Maximum supported API version is {API_VERSION}",
        )
