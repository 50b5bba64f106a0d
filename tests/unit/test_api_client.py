"""The stdlib client against our server (in a thread, on a temp socket) and the system routes."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import termios
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from pycompose.engine.api.app import EngineContext, build_context
from pycompose.engine.api.router import HijackResponse, Request, Response, StreamResponse
from pycompose.engine.api.server import ApiServer
from pycompose.engine.api.streams import (
    MULTIPLEXED_STREAM,
    RAW_STREAM,
    STDERR,
    STDOUT,
    RawStream,
    error_message,
    frame,
    json_line,
)
from pycompose.engine.client import (
    EngineClient,
    EngineUnreachable,
    error_for_status,
    passthrough,
)
from pycompose.engine.config import EngineConfig
from pycompose.engine.errors import Conflict, EngineError, InvalidArgument, NotFound


class ServerThread:
    """A daemon-less API server on its own loop in a thread."""

    def __init__(self, ctx: EngineContext, headers: dict[str, str] | None = None) -> None:
        self.ctx = ctx
        self.loop = asyncio.new_event_loop()
        headers = headers or ctx.system.common_headers()
        self.server = ApiServer(ctx.router, common_headers=headers)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(5)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        self.ctx.events.bind_loop(self.loop)
        self.call(self.server.start(self.ctx.config.socket_path))
        return self

    def __exit__(self, *exc: object) -> None:
        self.call(self.server.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


def add_test_routes(ctx: EngineContext) -> None:
    async def conflict(req: Request) -> Response:
        raise Conflict("name in use")

    async def pull(req: Request) -> StreamResponse:
        async def gen() -> AsyncIterator[bytes]:
            yield json_line({"status": "Pulling"})
            yield json_line({"status": "Done"})[:5]  # a document split across chunks
            yield json_line({"status": "Done"})[5:]
            if req.query_bool("fail"):
                yield json_line(error_message("manifest unknown"))

        return StreamResponse(gen())

    async def logs(req: Request) -> StreamResponse:
        async def gen() -> AsyncIterator[bytes]:
            yield frame(STDOUT, b"out\n") + frame(STDERR, b"err")[:4]
            yield frame(STDERR, b"err")[4:]

        return StreamResponse(gen(), content_type=MULTIPLEXED_STREAM)

    async def attach(req: Request) -> HijackResponse:
        body = await req.json_object(required=False)

        async def run(stream: RawStream) -> None:
            await stream.write_frame(STDOUT, json.dumps(body).encode())
            data = await stream.read()
            await stream.write_frame(STDERR, data[::-1])
            stream.close_write()

        return HijackResponse(run, content_type=MULTIPLEXED_STREAM)

    async def publish(req: Request) -> Response:
        ctx.events.publish("container", req.params["action"], "c1", {"name": "web"})
        return Response(status=204)

    async def tty_attach(req: Request) -> HijackResponse:
        async def run(stream: RawStream) -> None:
            await stream.write(b"tty> ")
            got = b""
            while b"q" not in got and (data := await stream.read()):
                got += data
                await stream.write(data)  # a terminal echoes
            await stream.write(b"\r\nbye\r\n")

        return HijackResponse(run, content_type=RAW_STREAM)

    async def upload(req: Request) -> Response:
        digest, size = hashlib.sha256(), 0
        while chunk := await req.body.read(4096):
            digest.update(chunk)
            size += len(chunk)
        framing = "chunked" if "transfer-encoding" in req.headers else "length"
        return Response(body=json.dumps([size, digest.hexdigest(), framing]).encode())

    async def refuse(req: Request) -> Response:
        raise NotFound("No such container: nosuch")  # without reading the body

    ctx.router.add("PUT", "/upload", upload)
    ctx.router.add("PUT", "/refuse", refuse)
    ctx.router.add("POST", "/tty/attach", tty_attach)
    ctx.router.add("POST", "/conflict", conflict)
    ctx.router.add("POST", "/images/create", pull)
    ctx.router.add("GET", "/containers/{id}/logs", logs)
    ctx.router.add("POST", "/containers/{id}/attach", attach)
    ctx.router.add("POST", "/publish/{action}", publish)


@pytest.fixture
def engine() -> Iterator[tuple[EngineClient, ServerThread]]:
    tmp = Path(tempfile.mkdtemp(prefix="pccli-"))
    config = EngineConfig.load(root=tmp / "root", runtime_dir=tmp / "run", environ={})
    config.root.mkdir(parents=True)
    config.runtime_dir.mkdir()
    ctx = build_context(config)
    add_test_routes(ctx)
    try:
        with ServerThread(ctx) as st:
            yield EngineClient(str(config.socket_path), timeout=5), st
    finally:
        shutil.rmtree(tmp)


def test_ping_version_info(engine: tuple[EngineClient, ServerThread]) -> None:
    client, st = engine
    assert client.ping()
    version = client.version()
    assert version["ApiVersion"] == "1.47" and version["MinAPIVersion"] == "1.41"
    assert version["Components"][0]["Name"] == "Engine" and version["Os"] == "linux"
    st.ctx.system.add_info_provider(lambda: {"Containers": 3, "ContainersRunning": 2})

    async def images() -> dict[str, Any]:
        return {"Images": 7}

    st.ctx.system.add_info_provider(images)
    info = client.info()
    assert (info["Containers"], info["ContainersRunning"], info["Images"]) == (3, 2, 7)
    assert info["OSType"] == "linux" and info["DockerRootDir"] == str(st.ctx.config.root)
    assert info["ID"] == client.info()["ID"]  # stable across calls
    assert client.get("/containers/json", {"all": True}) == []


def test_error_statuses_become_engine_errors(engine: tuple[EngineClient, ServerThread]) -> None:
    client, _ = engine
    with pytest.raises(Conflict, match="name in use"):
        client.post("/conflict", {})
    with pytest.raises(NotFound, match="page not found"):
        client.get("/nope")
    with pytest.raises(InvalidArgument, match="invalid filter 'colour'"):
        client.get("/containers/json", {"filters": {"colour": ["red"]}})
    err = error_for_status(503, "down")
    assert type(err) is EngineError and err.status == 503


def test_streamed_json_and_in_stream_errors(engine: tuple[EngineClient, ServerThread]) -> None:
    client, _ = engine
    with client.stream("POST", "/images/create", query={"fromImage": "busybox"}) as resp:
        assert list(resp.iter_json()) == [{"status": "Pulling"}, {"status": "Done"}]
    with (
        client.stream("POST", "/images/create", query={"fail": True}) as resp,
        pytest.raises(EngineError, match="manifest unknown"),
    ):
        list(resp.iter_json())


def test_multiplexed_logs(engine: tuple[EngineClient, ServerThread]) -> None:
    client, _ = engine
    with client.stream("GET", "/containers/c1/logs", query={"stdout": 1}) as resp:
        assert list(resp.iter_frames()) == [(STDOUT, b"out\n"), (STDERR, b"err")]


def test_hijack(engine: tuple[EngineClient, ServerThread]) -> None:
    client, _ = engine
    with client.hijack("/containers/c1/attach", body={"Detach": False}) as conn:
        assert not conn.tty and conn.content_type == MULTIPLEXED_STREAM
        conn.send(b"abc")
        conn.close_write()
        data = b""
        while chunk := conn.recv():
            data += chunk
    assert data == frame(STDOUT, b'{"Detach": false}') + frame(STDERR, b"cba")


@contextlib.contextmanager
def _watchdog(sock: socket.socket, seconds: float = 20) -> Iterator[None]:
    """Cut the connection if a test's passthrough is still running after ``seconds``."""
    timer = threading.Timer(seconds, sock.shutdown, (socket.SHUT_RDWR,))
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def _read_all(fd: int) -> bytes:
    out = b""
    while chunk := os.read(fd, 65536):
        out += chunk
    os.close(fd)
    return out


def test_passthrough_demultiplexes_and_half_closes(
    engine: tuple[EngineClient, ServerThread],
) -> None:
    client, _ = engine
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    os.write(in_w, b"stdin data")
    os.close(in_w)  # end of input: passthrough must half-close so the server answers
    with client.hijack("/containers/c1/attach", body={}) as conn, _watchdog(conn.sock):
        passthrough(conn, stdin_fd=in_r, stdout_fd=out_w, stderr_fd=err_w)
    for fd in (in_r, out_w, err_w):
        os.close(fd)
    assert _read_all(out_r) == b"{}"
    assert _read_all(err_r) == b"atad nidts"


def test_passthrough_tty_raw_mode_and_resize(engine: tuple[EngineClient, ServerThread]) -> None:
    client, _ = engine
    master, slave = os.openpty()
    out_r, out_w = os.pipe()
    sizes: list[tuple[int, int]] = []
    try:
        before = termios.tcgetattr(slave)

        def type_keys() -> None:
            # Type only once passthrough made the terminal raw: in cooked mode Ctrl-C would
            # be turned into SIGINT by the line discipline instead of reaching the container.
            for _ in range(500):
                if not termios.tcgetattr(slave)[3] & termios.ICANON:
                    break
                time.sleep(0.01)
            os.write(master, b"ab\x03q")

        typist = threading.Thread(target=type_keys)
        typist.start()
        with client.hijack("/tty/attach", tty=True) as conn, _watchdog(conn.sock):
            assert conn.tty
            passthrough(
                conn, stdin_fd=slave, stdout_fd=out_w, stderr_fd=out_w,
                on_resize=lambda rows, cols: sizes.append((rows, cols)),
            )  # fmt: skip
        typist.join()
        assert termios.tcgetattr(slave) == before  # terminal mode restored
        os.close(out_w)
        assert _read_all(out_r) == b"tty> ab\x03q\r\nbye\r\n"
        assert len(sizes) == 1
    finally:
        os.close(master)
        os.close(slave)


def test_events_stream_with_filters_and_until(engine: tuple[EngineClient, ServerThread]) -> None:
    client, _ = engine
    client.post("/publish/create")
    client.post("/publish/start")
    query = {"since": "0", "until": "0s", "filters": json.dumps({"event": ["start"]})}
    # "until" as a duration counts back from now, so this replays the history and stops.
    with client.stream("GET", "/events", query=query) as resp:
        events = list(resp.iter_json())
    assert [(e["Action"], e["Actor"]["Attributes"]["name"]) for e in events] == [("start", "web")]
    with pytest.raises(InvalidArgument, match="invalid time value"):
        client.get("/events", {"since": "yesterday"})


def test_version_negotiation(engine: tuple[EngineClient, ServerThread]) -> None:
    client, _ = engine
    assert client.api_version is None
    client.get("/containers/json")
    assert client.api_version == "1.47"  # learnt from the first answer's Api-Version
    pinned = EngineClient(client.socket_path, api_version="1.41")
    assert pinned.negotiate() == "1.41"


def test_version_negotiation_with_an_older_server() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="pcneg-"))
    config = EngineConfig.load(root=tmp / "root", runtime_dir=tmp / "run", environ={})
    config.runtime_dir.mkdir(parents=True)
    ctx = build_context(config)
    seen: list[str] = []

    async def record(req: Request) -> Response:
        seen.append(req.api_version)
        return Response(status=204)

    ctx.router.add("POST", "/record", record)
    try:
        with ServerThread(ctx, {"Api-Version": "1.43"}):
            client = EngineClient(str(config.socket_path))
            client.call("POST", "/record")
            assert client.api_version == "1.43" and seen == ["1.43"]
    finally:
        shutil.rmtree(tmp)


def test_request_bodies_from_bytes_files_pipes_and_iterators(
    engine: tuple[EngineClient, ServerThread], tmp_path: Path
) -> None:
    client, _ = engine
    data = bytes(range(256)) * 4000  # ~1 MB

    def sent(body: Any) -> list[Any]:
        with client.request("PUT", "/upload", data=body) as resp:
            return list(resp.json())

    expected = [len(data), hashlib.sha256(data).hexdigest()]
    assert sent(data) == [*expected, "length"]
    path = tmp_path / "body"
    path.write_bytes(b"skipped" + data)
    with open(path, "rb") as fp:
        fp.seek(7)  # a file is sent from where it stands
        assert sent(fp) == [*expected, "length"]
    read_fd, write_fd = os.pipe()

    def feed() -> None:
        os.write(write_fd, data)
        os.close(write_fd)

    writer = threading.Thread(target=feed)
    writer.start()
    with os.fdopen(read_fd, "rb") as pipe:
        assert sent(pipe) == [*expected, "chunked"]
    writer.join()
    pieces = (data[i : i + 70000] for i in range(0, len(data), 70000))
    assert sent(pieces) == [*expected, "chunked"]
    assert sent(iter([b"", b""])) == [0, hashlib.sha256().hexdigest(), "chunked"]


def test_an_early_answer_wins_over_the_unsent_body(
    engine: tuple[EngineClient, ServerThread],
) -> None:
    client, _ = engine
    produced = 0

    def endless() -> Iterator[bytes]:  # far more than the server drains before hanging up
        nonlocal produced
        for _ in range(2000):
            produced += 1
            yield b"x" * 65536

    with pytest.raises(NotFound, match="No such container: nosuch"):
        client.request("PUT", "/refuse", data=endless())
    assert produced < 2000


def test_unreachable_socket() -> None:
    client = EngineClient("/nonexistent/engine.sock")
    assert not client.ping()
    with pytest.raises(EngineUnreachable, match="cannot reach the engine at unix:///nonexistent"):
        client.version()


def test_client_import_is_lean() -> None:
    code = (
        "import sys, pycompose.engine.client, pycompose.engine.config, pycompose.engine.daemon\n"
        "heavy = {'asyncio', 'http.client', 'httpx', 'ssl', 'pycompose.engine.api.server'}\n"
        "print(sorted(heavy & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
