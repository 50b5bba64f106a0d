"""The HTTP/1.1 server on a real unix socket in a temp dir: framing, errors, streams, hijack."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from pycompose.engine.api.router import (
    ZERO,
    HijackResponse,
    Request,
    Response,
    Router,
    StreamResponse,
    check_fields,
    json_response,
)
from pycompose.engine.api.server import ApiServer, ProtocolError, parse_head
from pycompose.engine.api.streams import RawStream
from pycompose.engine.errors import NotFound


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    # Short path: unix socket paths are limited to 107 bytes, pytest's tmp_path can be longer.
    path = Path(tempfile.mkdtemp(prefix="pcapi-"))
    yield path
    shutil.rmtree(path)


def make_router(log: list[str]) -> Router:
    router = Router()

    async def echo(req: Request) -> Response:
        body = await req.json_object()
        check_fields(body, where="", known={"Image", "Cmd"}, unsupported={"Privileged": ZERO})
        return json_response({"got": body, "version": req.api_version, "q": req.query})

    async def raw(req: Request) -> Response:
        data = await req.body.read_all(1 << 20)
        return Response(body=data, content_type="application/octet-stream")

    async def missing(req: Request) -> Response:
        raise NotFound(f"No such container: {req.params['id']}")

    async def boom(req: Request) -> Response:
        raise RuntimeError("kaput")

    async def stream(req: Request) -> StreamResponse:
        async def gen() -> AsyncIterator[bytes]:
            try:
                for i in range(3):
                    yield json.dumps({"n": i}).encode() + b"\n"
                if req.query_bool("hang"):
                    await asyncio.sleep(60)
                if req.query_str("fail") == "engine":
                    raise NotFound("layer vanished")
                if req.query_str("fail") == "bug":
                    raise KeyError("oops")
            finally:
                log.append("stream closed")

        return StreamResponse(gen())

    async def hijack(req: Request) -> HijackResponse:
        async def run(stream: RawStream) -> None:
            await stream.write(b"hello\n")
            while data := await stream.read():
                await stream.write(data.upper())
            log.append("stdin ended")
            stream.close_write()

        return HijackResponse(run)

    router.add("POST", "/echo", echo)
    router.add("POST", "/raw", raw)
    router.add("GET", "/containers/{id}/json", missing)
    router.add("GET", "/boom", boom)
    router.add("GET", "/stream", stream)
    router.add("POST", "/attach", hijack)
    router.add("GET", "/_ping", lambda req: _ok())
    return router


async def _ok() -> Response:
    return Response(body=b"OK", content_type="text/plain")


@contextlib.asynccontextmanager
async def serving(sock_dir: Path, log: list[str]) -> AsyncIterator[Path]:
    server = ApiServer(make_router(log), common_headers={"Api-Version": "1.47"})
    path = sock_dir / "api.sock"
    await server.start(path)
    try:
        yield path
    finally:
        await server.close()
    assert not path.exists()


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = (await reader.readuntil(b"\r\n\r\n")).decode()
    lines = head.split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding") == "chunked":
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            body += chunk[:-2]
    else:
        body = await reader.read()
    return status, headers, body


async def exchange(path: Path, data: bytes) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_unix_connection(str(path))
    writer.write(data)
    await writer.drain()
    try:
        return await read_response(reader)
    finally:
        writer.close()


def post(path: str, body: bytes, extra: str = "") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: d\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n{extra}\r\n"
    ).encode() + body


def run(
    coro_fn: Callable[[Path], Awaitable[None]], sock_dir: Path, log: list[str] | None = None
) -> None:
    async def main() -> None:
        async with serving(sock_dir, log if log is not None else []) as path:
            await coro_fn(path)

    return asyncio.run(main())


def test_parse_head_rejects_bad_input() -> None:
    head = parse_head(b"GET /x HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nx-a: 2\r\n\r\n")
    assert head.method == "GET" and head.headers["x-a"] == "1, 2" and head.keep_alive
    assert not parse_head(b"GET / HTTP/1.0\r\n\r\n").keep_alive
    for bad, status in [
        (b"GET /x\r\n\r\n", 400),
        (b"GET /x HTTP/2.0\r\n\r\n", 505),
        (b"GET x HTTP/1.1\r\n\r\n", 400),
        (b"GET /x HTTP/1.1\r\nbad header\r\n\r\n", 400),
        (b"GET /x HTTP/1.1\r\nA: 1\r\n folded\r\n\r\n", 400),
    ]:
        with pytest.raises(ProtocolError) as err:
            parse_head(bad)
        assert err.value.status == status, bad


def test_version_prefix_and_keep_alive(sock_dir: Path) -> None:
    async def scenario(path: Path) -> None:
        reader, writer = await asyncio.open_unix_connection(str(path))
        writer.write(post("/v1.41/echo?x=1", b'{"Image": "busybox"}'))
        writer.write(post("/echo", b'{"Cmd": ["true"], "Privileged": false}'))
        status, headers, body = await read_response(reader)
        assert status == 200 and headers["api-version"] == "1.47"
        assert json.loads(body) == {
            "got": {"Image": "busybox"},
            "version": "1.41",
            "q": {"x": ["1"]},
        }
        status, _, body = await read_response(reader)  # same connection, second request
        assert status == 200 and json.loads(body)["version"] == "1.47"
        writer.close()

    run(scenario, sock_dir)


def test_api_version_out_of_range(sock_dir: Path) -> None:
    async def scenario(path: Path) -> None:
        status, _, body = await exchange(path, b"GET /v1.40/_ping HTTP/1.1\r\n\r\n")
        assert status == 400 and "client version 1.40 is too old" in json.loads(body)["message"]
        status, _, body = await exchange(path, b"GET /v1.48/_ping HTTP/1.1\r\n\r\n")
        assert status == 400 and "Maximum supported API version is 1.47" in body.decode()

    run(scenario, sock_dir)


def test_json_errors_are_400_with_docker_shape(sock_dir: Path) -> None:
    async def scenario(path: Path) -> None:
        status, headers, body = await exchange(path, post("/echo", b'{"Image": '))
        assert status == 400 and headers["content-type"] == "application/json"
        assert json.loads(body)["message"].startswith("malformed JSON in request body")
        status, _, body = await exchange(path, post("/echo", b'{"Image": "x", "Colour": 1}'))
        assert (status, json.loads(body)) == (400, {"message": "unknown field Colour"})
        status, _, body = await exchange(path, post("/echo", b'{"Privileged": true}'))
        assert status == 400 and "Privileged is not supported" in json.loads(body)["message"]

    run(scenario, sock_dir)


def test_status_mapping_404_405_500(sock_dir: Path) -> None:
    async def scenario(path: Path) -> None:
        status, _, body = await exchange(path, b"GET /containers/abc/json HTTP/1.1\r\n\r\n")
        assert (status, json.loads(body)) == (404, {"message": "No such container: abc"})
        status, _, body = await exchange(path, b"GET /nowhere HTTP/1.1\r\n\r\n")
        assert (status, json.loads(body)) == (404, {"message": "page not found"})
        status, _, _ = await exchange(path, b"DELETE /boom HTTP/1.1\r\n\r\n")
        assert status == 405
        status, _, body = await exchange(path, b"GET /boom HTTP/1.1\r\n\r\n")
        assert status == 500 and "kaput" in json.loads(body)["message"]

    run(scenario, sock_dir)


def test_chunked_request_body_and_expect_continue(sock_dir: Path) -> None:
    async def scenario(path: Path) -> None:
        req = (
            b"POST /raw HTTP/1.1\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n"
            b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\n"
        )
        reader, writer = await asyncio.open_unix_connection(str(path))
        writer.write(req)
        assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        status, _, body = await read_response(reader)
        assert (status, body) == (200, b"hello world")
        writer.close()

    run(scenario, sock_dir)


def test_framing_conflicts_and_limits(sock_dir: Path) -> None:
    async def scenario(path: Path) -> None:
        both = b"POST /raw HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc"
        status, headers, body = await exchange(path, both)
        assert status == 400 and headers["connection"] == "close"
        assert "Transfer-Encoding and Content-Length" in json.loads(body)["message"]
        status, _, _ = await exchange(path, b"POST /raw HTTP/1.1\r\nContent-Length: -1\r\n\r\n")
        assert status == 400
        bad_chunk = b"POST /raw HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
        status, _, _ = await exchange(path, bad_chunk)
        assert status == 400
        big = b"x" * (5 * 1024 * 1024)
        status, _, body = await exchange(path, post("/echo", big))
        assert status == 413 and "larger than the limit" in json.loads(body)["message"]
        huge_head = b"GET /x HTTP/1.1\r\nX: " + b"a" * 70000 + b"\r\n\r\n"
        status, _, _ = await exchange(path, huge_head)
        assert status == 431

    run(scenario, sock_dir)


def test_head_has_length_but_no_body(sock_dir: Path) -> None:
    async def scenario(path: Path) -> None:
        reader, writer = await asyncio.open_unix_connection(str(path))
        writer.write(
            b"HEAD /_ping HTTP/1.1\r\n\r\nGET /_ping HTTP/1.1\r\nConnection: close\r\n\r\n"
        )
        head = await reader.readuntil(b"\r\n\r\n")
        assert b"Content-Length: 2" in head
        status, _, body = await read_response(reader)  # next response follows at once
        assert (status, body) == (200, b"OK")
        writer.close()

    run(scenario, sock_dir)


def test_streamed_response_is_chunked_and_closed_on_hangup(sock_dir: Path) -> None:
    log: list[str] = []

    async def scenario(path: Path) -> None:
        status, headers, body = await exchange(path, b"GET /stream HTTP/1.1\r\n\r\n")
        assert status == 200 and headers["transfer-encoding"] == "chunked"
        assert [json.loads(x) for x in body.splitlines()] == [{"n": 0}, {"n": 1}, {"n": 2}]
        reader, writer = await asyncio.open_unix_connection(str(path))
        writer.write(b"GET /stream?hang=1 HTTP/1.1\r\n\r\n")
        await reader.readuntil(b'{"n": 2}\n\r\n')
        writer.close()  # the client goes away while the handler waits
        for _ in range(100):
            if len(log) == 2:
                break
            await asyncio.sleep(0.01)
        assert log == ["stream closed", "stream closed"]

    run(scenario, sock_dir, log)


def test_hijack_upgrade_passes_raw_bytes_both_ways(sock_dir: Path) -> None:
    log: list[str] = []

    async def scenario(path: Path) -> None:
        reader, writer = await asyncio.open_unix_connection(str(path))
        writer.write(
            b"POST /v1.44/attach?stream=1 HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
            b"Content-Length: 0\r\n\r\nearly "
        )
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 UPGRADED\r\n")
        assert b"Upgrade: tcp" in head and b"application/vnd.docker.raw-stream" in head
        assert await reader.readexactly(6) == b"hello\n"
        assert await reader.readexactly(6) == b"EARLY "  # bytes sent with the request head
        writer.write(b"abc")
        assert await reader.readexactly(3) == b"ABC"
        writer.write_eof()
        assert await reader.read() == b""  # server half-closed after our EOF
        writer.close()
        assert log == ["stdin ended"]

    run(scenario, sock_dir, log)


def test_hijack_without_upgrade_header_answers_200(sock_dir: Path) -> None:
    async def scenario(path: Path) -> None:
        reader, writer = await asyncio.open_unix_connection(str(path))
        writer.write(b"POST /attach HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"Content-Length" not in head
        assert await reader.readexactly(6) == b"hello\n"
        writer.write_eof()
        assert await reader.read() == b""
        writer.close()

    run(scenario, sock_dir)


def test_errors_after_the_head_go_into_the_stream(sock_dir: Path) -> None:
    async def scenario(path: Path) -> None:
        status, _, body = await exchange(path, b"GET /stream?fail=engine HTTP/1.1\r\n\r\n")
        lines = [json.loads(x) for x in body.splitlines()]
        assert status == 200 and lines[-1] == {
            "errorDetail": {"message": "layer vanished"},
            "error": "layer vanished",
        }
        _, _, body = await exchange(path, b"GET /stream?fail=bug HTTP/1.1\r\n\r\n")
        assert json.loads(body.splitlines()[-1])["error"] == "internal error: 'oops'"

    run(scenario, sock_dir)


def test_close_ends_open_streams_and_idle_connections(sock_dir: Path) -> None:
    log: list[str] = []

    async def scenario() -> None:
        server = ApiServer(make_router(log))
        path = sock_dir / "api.sock"
        await server.start(path)
        reader, writer = await asyncio.open_unix_connection(str(path))
        writer.write(b"GET /stream?hang=1 HTTP/1.1\r\n\r\n")
        await reader.readuntil(b'{"n": 2}\n\r\n')
        idle_reader, idle_writer = await asyncio.open_unix_connection(str(path))
        await asyncio.wait_for(server.close(), 5)
        assert log == ["stream closed"] and not path.exists()
        assert await reader.read() == b""  # no terminating chunk: the stream was cut
        assert await idle_reader.read() == b""
        writer.close()
        idle_writer.close()

    asyncio.run(scenario())
