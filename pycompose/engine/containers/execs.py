"""``docker exec``: ``POST /containers/{id}/exec``, ``/exec/{id}/start|resize|json``.

An exec runs through the runtime (``runc exec``) with the container's own process settings
(:func:`pycompose.engine.runtime.spec.exec_process`), with or without a TTY. Its output goes
straight to the hijacked connection (framed unless TTY) and the connection's input to its
stdin. Exec records live in memory: they end with the daemon, as Docker's do.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pycompose.engine.api.router import (
    HijackResponse,
    Request,
    Response,
    check_fields,
    empty_response,
    json_response,
)
from pycompose.engine.api.streams import MULTIPLEXED_STREAM, RAW_STREAM, STDERR, STDOUT
from pycompose.engine.api.streams import RawStream as Client
from pycompose.engine.containers import attach
from pycompose.engine.containers.record import ContainerRecord
from pycompose.engine.errors import Conflict, InvalidArgument, NotFound
from pycompose.engine.runtime.execproc import ExecProcess, exec_process
from pycompose.engine.runtime.spec import exec_process as exec_spec

if TYPE_CHECKING:
    from pycompose.engine.api.app import EngineContext
    from pycompose.engine.containers.manager import ContainerManager

_CREATE_FIELDS = {"AttachStdin", "AttachStdout", "AttachStderr", "Tty", "Env", "Cmd",
                  "Privileged", "User", "WorkingDir", "ConsoleSize", "DetachKeys", "Detach",
                  "Container"}  # fmt: skip
_START_FIELDS = {"Detach", "Tty", "ConsoleSize"}


@dataclass
class ExecRecord:
    """One exec instance."""

    id: str
    container: ContainerRecord
    config: dict[str, Any]
    running: bool = False
    exit_code: int | None = None
    pid: int = 0
    process: ExecProcess | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def inspect(self) -> dict[str, Any]:
        """Docker's ``GET /exec/{id}/json``."""
        cmd = list(self.config.get("Cmd") or [])
        return {
            "ID": self.id, "ContainerID": self.container.id, "Running": self.running,
            "ExitCode": self.exit_code, "Pid": self.pid, "CanRemove": False,
            "DetachKeys": self.config.get("DetachKeys") or "",
            "OpenStdin": bool(self.config.get("AttachStdin")),
            "OpenStdout": bool(self.config.get("AttachStdout")),
            "OpenStderr": bool(self.config.get("AttachStderr")),
            "ProcessConfig": {
                "entrypoint": cmd[0] if cmd else "", "arguments": cmd[1:],
                "privileged": bool(self.config.get("Privileged")),
                "tty": bool(self.config.get("Tty")), "user": self.config.get("User") or "",
            },
        }  # fmt: skip


class ExecService:
    """The exec routes."""

    def __init__(self, mgr: ContainerManager) -> None:
        self.mgr = mgr
        self.execs: dict[str, ExecRecord] = {}

    def register(self, ctx: EngineContext) -> None:
        """Add the routes to ``ctx.router``."""
        ctx.router.add("POST", "/containers/{id}/exec", self.create)
        ctx.router.add("POST", "/exec/{id}/start", self.start)
        ctx.router.add("POST", "/exec/{id}/resize", self.resize)
        ctx.router.add("GET", "/exec/{id}/json", self.inspect)

    def _get(self, exec_id: str) -> ExecRecord:
        found = self.execs.get(exec_id)
        if found is None:
            raise NotFound(f"No such exec instance: {exec_id}")
        return found

    async def create(self, req: Request) -> Response:
        """201 ``{"Id"}``; the container must be running."""
        record = self.mgr.get(req.params["id"])
        body = await req.json_object()
        check_fields(body, where="", known=_CREATE_FIELDS)
        attach.parse_detach_keys(body.get("DetachKeys"))  # a bad value is a 400 now
        cmd = body.get("Cmd")
        if not cmd or not isinstance(cmd, list) or not all(isinstance(c, str) for c in cmd):
            raise InvalidArgument("No exec command specified")
        if record.state.status == "paused":
            raise Conflict(f"Container {record.id} is paused, unpause the container before exec")
        if record.state.status != "running":
            raise Conflict(f"Container {record.id} is not running")
        self._forget_gone()
        exec_id = secrets.token_hex(32)
        self.execs[exec_id] = ExecRecord(exec_id, record, body)
        record.exec_ids.append(exec_id)
        self.mgr.publish(record, f"exec_create: {' '.join(cmd)}", execID=exec_id)
        return json_response({"Id": exec_id}, status=201)

    def _forget_gone(self) -> None:
        """Drop execs whose container was removed (Docker forgets them with it)."""
        live = {r.id for r in self.mgr.store.all()}
        for exec_id in [k for k, ex in self.execs.items() if ex.container.id not in live]:
            del self.execs[exec_id]

    async def inspect(self, req: Request) -> Response:
        """Docker's exec inspect."""
        return json_response(self._get(req.params["id"]).inspect())

    async def resize(self, req: Request) -> Response:
        """``?h=&w=`` of a running TTY exec."""
        ex = self._get(req.params["id"])
        if ex.process is None:
            raise Conflict(f"exec {ex.id} is not running")
        if ex.process.tty:
            await ex.process.resize(req.query_int("h", 24) or 24, req.query_int("w", 80) or 80)
        return empty_response(200)

    async def start(self, req: Request) -> Response | HijackResponse:
        """Hijack and run (or run in the background with ``Detach``)."""
        ex = self._get(req.params["id"])
        body = await req.json_object(required=False)
        check_fields(body, where="", known=_START_FIELDS)
        if ex.running or ex.exit_code is not None:
            raise Conflict(f"Exec command {ex.id} has already run")
        if ex.container.state.status != "running":
            raise Conflict(f"Container {ex.container.id} is not running")
        process = await asyncio.to_thread(self._process, ex)
        ex.running = True
        if body.get("Detach"):
            self.mgr.background(self._run(ex, process, _Sink(None, b"")))
            return empty_response(200)
        tty = bool(ex.config.get("Tty"))

        async def run(client: Client) -> None:
            # The exec runs as its own task: a detach (the TTY's detach keys) ends this
            # connection and leaves the process running, as in Docker.
            sink = _Sink(client, attach.parse_detach_keys(ex.config.get("DetachKeys")))
            task = asyncio.ensure_future(self._run(ex, process, sink))
            detached = asyncio.ensure_future(sink.detached.wait())
            try:
                await asyncio.wait({task, detached}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                detached.cancel()
            if task.done():
                task.result()
            else:
                self.mgr.background(_finish(task))

        return HijackResponse(run, content_type=RAW_STREAM if tty else MULTIPLEXED_STREAM)

    def _process(self, ex: ExecRecord) -> dict[str, Any]:
        directory = self.mgr.dir(ex.container)
        spec = json.loads((directory / "config.json").read_text())
        cfg = ex.config
        return exec_spec(
            spec, directory / "merged", tuple(cfg["Cmd"]), env=tuple(cfg.get("Env") or ()),
            user=cfg.get("User") or "", cwd=cfg.get("WorkingDir") or "",
            tty=bool(cfg.get("Tty")), privileged=bool(cfg.get("Privileged")),
        )  # fmt: skip

    async def _run(self, ex: ExecRecord, process: dict[str, Any], sink: _Sink) -> None:
        assert self.mgr.runner is not None
        runtime, _ = await self.mgr.runner.runtime()
        size = tuple(ex.config.get("ConsoleSize") or ()) or (24, 80)
        rows, cols = (int(size[0]) or 24, int(size[1]) or 80) if len(size) == 2 else (24, 80)
        work = self.mgr.dir(ex.container) / "exec"
        try:
            async with exec_process(runtime.argv(), ex.container.id, process, work,
                                    open_stdin=bool(ex.config.get("AttachStdin")),
                                    size=(rows, cols)) as proc:  # fmt: skip
                ex.process, ex.pid = proc, proc.pid
                self.mgr.publish(ex.container, "exec_start: " + " ".join(ex.config["Cmd"]),
                                 execID=ex.id)  # fmt: skip
                feeder = None
                if sink.client is not None and ex.config.get("AttachStdin"):
                    feeder = asyncio.ensure_future(sink.feed(proc))
                async for stream, data in proc.output():
                    client = sink.client
                    if client is None:
                        continue
                    try:
                        await _send(client, proc.tty, stream, data)
                    except ConnectionError:
                        sink.client = None  # gone (or detached): the process goes on
                ex.exit_code = await proc.wait()
                if feeder is not None:
                    feeder.cancel()
                    await asyncio.gather(feeder, return_exceptions=True)
        finally:
            ex.running, ex.process = False, None
            if ex.exit_code is None:
                ex.exit_code = 126
            ex.done.set()
            if ex.id in ex.container.exec_ids:  # ExecIDs lists the execs still running
                ex.container.exec_ids.remove(ex.id)
            self.mgr.publish(ex.container, "exec_die", execID=ex.id, exitCode=str(ex.exit_code))
            if sink.client is not None:
                sink.client.close_write()


async def _send(client: Client, tty: bool, stream: str, data: bytes) -> None:
    if tty:
        await client.write(data)
    else:
        await client.write_frame(STDOUT if stream == "stdout" else STDERR, data)


class _Sink:
    """Where an exec's output goes, and where its input comes from, until a detach."""

    def __init__(self, client: Client | None, detach_keys: bytes) -> None:
        self.client = client
        self.detach_keys = detach_keys
        self.detached = asyncio.Event()

    async def feed(self, proc: ExecProcess) -> None:
        """Client input to the process; on a TTY, the detach keys end the connection."""
        assert self.client is not None
        scanner = attach.EscapeScanner(self.detach_keys) if proc.tty else None
        with contextlib.suppress(ConnectionError, OSError):
            while data := await self.client.read():
                detach = False
                if scanner is not None:
                    data, detach = scanner.feed(data)
                if data:
                    await proc.write(data)
                if detach:
                    self.client = None  # output is dropped from now on
                    self.detached.set()
                    return
            await proc.close_stdin()


async def _finish(task: asyncio.Future[None]) -> None:
    await task
