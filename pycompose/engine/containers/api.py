"""The containers component of the engine daemon: Docker's ``/containers/*`` routes.

``setup(ctx)`` opens the container store under the engine's root, shares the manager as
``ctx.services["containers"]`` (the images component asks it ``image_in_use``) and as
``ctx.containers`` (``GET /containers/json``), adds the container counts to ``/info``,
re-adopts what an earlier daemon left running, and registers the routes below. The OCI
runtime is probed in the background (``PYCOMPOSE_OCI_RUNTIME`` names one to insist on).

Networking goes through :mod:`pycompose.engine.containers.networking` (the predefined
``bridge`` network by default, user networks with the embedded DNS, published ports, links,
``network connect``); without the networks component ``default``/``bridge`` is a private
namespace with only ``lo``. ``none``, ``host`` and ``container:<id>`` are Docker's. Mounts,
volumes, secrets and configs go through :mod:`pycompose.engine.containers.storage_wiring`.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from pycompose.engine.api.router import (
    HijackResponse,
    Request,
    Response,
    StreamResponse,
    empty_response,
    json_response,
)
from pycompose.engine.api.streams import MULTIPLEXED_STREAM, RAW_STREAM, json_line
from pycompose.engine.containers import attach, stats, views
from pycompose.engine.containers.bundle import parse_signal
from pycompose.engine.containers.execs import ExecService
from pycompose.engine.containers.fileapi import FilesApi
from pycompose.engine.containers.manager import ContainerManager
from pycompose.engine.containers.networking import setup_networking
from pycompose.engine.containers.record import ZERO_TIME, ContainerRecord
from pycompose.engine.containers.recovery import recover
from pycompose.engine.containers.request import validate_create
from pycompose.engine.containers.runner import Runner
from pycompose.engine.containers.storage_wiring import StorageWiring
from pycompose.engine.containers.top import top
from pycompose.engine.errors import Conflict, InvalidArgument
from pycompose.engine.runtime.cgroups import (
    ResourceLimits,
    cgroups_path,
    host_info,
    limits_of,
    resources,
)
from pycompose.storage.overlay import KernelMounter

if TYPE_CHECKING:
    from pycompose.engine.api.app import EngineContext


async def setup(ctx: EngineContext) -> None:
    """Open the containers, recover from an earlier daemon, register the routes."""
    images = ctx.services["images"]
    layers = ctx.services["layers"]
    mgr = ContainerManager(ctx.config.root, images, layers, KernelMounter(), ctx.events.publish)
    runner = Runner(mgr, ctx.config.runtime_dir / "runc", ctx.config.root,
                    os.environ.get("PYCOMPOSE_OCI_RUNTIME") or None)  # fmt: skip
    mgr.runner = runner
    mgr.storage = StorageWiring(ctx.services.get("volumes"), ctx.services.get("mounts"))
    runner.begin_probe()
    await setup_networking(ctx, mgr, runner)  # before mgr.close is registered: DNS closes last
    ctx.services["containers"] = mgr
    ctx.containers = mgr
    ctx.system.add_info_provider(mgr.info)
    ctx.system.add_info_provider(host_info)
    ctx.cleanup.push_async_callback(mgr.close)
    await recover(mgr)
    ContainersApi(mgr).register(ctx)
    FilesApi(mgr, ctx.services["content"]).register(ctx)
    ExecService(mgr).register(ctx)


class ContainersApi:
    """Route handlers; each is a thin translation to the manager and runner."""

    def __init__(self, mgr: ContainerManager) -> None:
        self.mgr = mgr
        assert mgr.runner is not None
        self.runner = mgr.runner

    def register(self, ctx: EngineContext) -> None:
        """Add the routes to ``ctx.router``."""
        add = ctx.router.add
        add("POST", "/containers/create", self.create)
        add("GET", "/containers/{id}/json", self.inspect)
        add("POST", "/containers/{id}/start", self.start)
        add("POST", "/containers/{id}/stop", self.stop)
        add("POST", "/containers/{id}/restart", self.restart)
        add("POST", "/containers/{id}/kill", self.kill)
        add("POST", "/containers/{id}/pause", self.pause)
        add("POST", "/containers/{id}/unpause", self.unpause)
        add("POST", "/containers/{id}/wait", self.wait)
        add("DELETE", "/containers/{id}", self.delete)
        add("GET", "/containers/{id}/logs", self.logs)
        add("POST", "/containers/{id}/attach", self.attach)
        add("POST", "/containers/{id}/resize", self.resize)
        add("POST", "/containers/{id}/rename", self.rename)
        add("GET", "/containers/{id}/top", self.top)
        add("POST", "/containers/prune", self.prune)
        add("GET", "/containers/{id}/stats", self.stats)

    async def create(self, req: Request) -> Response:
        """``POST /containers/create?name=``: 201 ``{"Id", "Warnings"}``."""
        body = await req.json_object()
        await self._check_limits(body)
        record, warnings = self.mgr.create(body, req.query_str("name"))
        return json_response({"Id": record.id, "Warnings": warnings}, status=201)

    async def _check_limits(self, body: Any) -> None:
        """Limits the host's cgroups cannot honour (a controller missing, as on cgroup v2 of
        a hybrid host) are refused at create, as dockerd does, not at start once the
        container exists. The runtime probe is only awaited when a limit is asked for."""
        _, host_config, _ = validate_create(body)
        limits = limits_of(host_config)
        if limits != ResourceLimits():
            _, host = await self.runner.runtime()
            resources(limits, host)

    async def inspect(self, req: Request) -> Response:
        """``GET /containers/{id}/json``."""
        record = self.mgr.get(req.params["id"])
        data = self.mgr.inspect(record)
        if req.query_bool("size"):
            data.update(await self.mgr.sizes(record))
        return json_response(data)

    async def start(self, req: Request) -> Response:
        """204; 304 when it is already running."""
        record = self.mgr.get(req.params["id"])
        body = await req.json_object(required=False)
        if body:
            raise InvalidArgument("starting a container with a request body is not supported: "
                                  "set HostConfig at create")  # fmt: skip
        if record.state.status == "running":
            return empty_response(304)
        await self.runner.start(record)
        return empty_response()

    def _timeout(self, req: Request) -> int | None:
        return req.query_int("t", req.query_int("timeout"))

    async def stop(self, req: Request) -> Response:
        """204; 304 when it was not running."""
        record = self.mgr.get(req.params["id"])
        sig = req.query_str("signal")
        stopped = await self.runner.stop(record, self._timeout(req),
                                         sig=parse_signal(sig) if sig else None)  # fmt: skip
        return empty_response(204 if stopped else 304)

    async def restart(self, req: Request) -> Response:
        """Stop then start."""
        await self.runner.restart(self.mgr.get(req.params["id"]), self._timeout(req))
        return empty_response()

    async def kill(self, req: Request) -> Response:
        """``?signal=`` (default SIGKILL)."""
        record = self.mgr.get(req.params["id"])
        await self.runner.kill(record, parse_signal(req.query_str("signal"), 9))
        return empty_response()

    async def pause(self, req: Request) -> Response:
        """Freeze the container."""
        await self.runner.pause(self.mgr.get(req.params["id"]), True)
        return empty_response()

    async def unpause(self, req: Request) -> Response:
        """Thaw the container."""
        await self.runner.pause(self.mgr.get(req.params["id"]), False)
        return empty_response()

    async def wait(self, req: Request) -> StreamResponse:
        """The head goes out at once (clients block on it); the body when the condition holds."""
        record = self.mgr.get(req.params["id"])
        fut = self.mgr.waiter(record, req.query_str("condition") or "not-running")

        async def body() -> AsyncIterator[bytes]:
            try:
                yield json_line(await fut)
            finally:
                fut.cancel()

        return StreamResponse(body())

    async def delete(self, req: Request) -> Response:
        """``?force`` kills first; ``?v`` removes the container's anonymous volumes too."""
        record = self.mgr.get(req.params["id"])
        if req.query_bool("link"):
            raise InvalidArgument("links are not supported: cannot remove link")
        await self.mgr.remove(record, force=req.query_bool("force"), volumes=req.query_bool("v"))
        return empty_response()

    async def logs(self, req: Request) -> StreamResponse:
        """Stored (and with ``follow`` new) output, framed unless the container has a TTY."""
        record = self.mgr.get(req.params["id"])
        stdout, stderr = req.query_bool("stdout"), req.query_bool("stderr")
        if not (stdout or stderr):
            raise InvalidArgument("Bad parameters: you must choose at least one stream")
        if (record.host_config.get("LogConfig") or {}).get("Type") == "none":
            raise InvalidArgument("configured logging driver does not support reading")
        chunks = attach.log_stream(
            self.mgr, record, follow=req.query_bool("follow"),
            since=attach.parse_time(req.query_str("since"), "since"),
            until=attach.parse_time(req.query_str("until"), "until"),
            tail=attach.parse_tail(req.query_str("tail")), stdout=stdout, stderr=stderr,
            timestamps=req.query_bool("timestamps"),
        )  # fmt: skip
        tty = bool(record.config.get("Tty"))
        return StreamResponse(chunks, content_type=RAW_STREAM if tty else MULTIPLEXED_STREAM)

    async def attach(self, req: Request) -> HijackResponse:
        """Hijack: stored output with ``logs``, live output and stdin with ``stream``."""
        record = self.mgr.get(req.params["id"])
        if record.state.status == "paused":
            raise Conflict("You cannot attach to a paused container, unpause it first")
        conn = attach.Attachment(
            self.mgr, record, stdin=req.query_bool("stdin"), stdout=req.query_bool("stdout"),
            stderr=req.query_bool("stderr"), logs=req.query_bool("logs"),
            stream=req.query_bool("stream"),
            detach_keys=attach.parse_detach_keys(req.query_str("detachKeys")),
        )  # fmt: skip
        self.mgr.publish(record, "attach")
        tty = bool(record.config.get("Tty"))
        return HijackResponse(conn.run, content_type=RAW_STREAM if tty else MULTIPLEXED_STREAM)

    async def resize(self, req: Request) -> Response:
        """``?h=&w=`` of the container's terminal."""
        record = self.mgr.get(req.params["id"])
        height, width = req.query_int("h", 0) or 0, req.query_int("w", 0) or 0
        if record.state.status not in ("running", "paused"):
            raise Conflict(f"Container {record.id} is not running")
        if not 0 <= height < 65536 or not 0 <= width < 65536:
            raise InvalidArgument("invalid terminal size")
        await attach.send_resize(self.mgr.live_of(record), height, width)
        return empty_response(200)

    async def rename(self, req: Request) -> Response:
        """``?name=``."""
        self.mgr.rename(self.mgr.get(req.params["id"]), req.query_str("name") or "")
        return empty_response()

    async def top(self, req: Request) -> Response:
        """``ps`` on the host, filtered to the container's processes."""
        record = self.mgr.get(req.params["id"])
        if record.state.status not in ("running", "paused"):
            raise Conflict(f"Container {record.id} is not running")
        runtime, _ = await self.runner.runtime()
        pids = await runtime.ps(record.id)
        return json_response(await top(pids, req.query_str("ps_args") or "-ef"))

    async def stats(self, req: Request) -> StreamResponse:
        """CPU/memory/pids figures: one JSON line per second, or one with ``stream=false``."""
        record = self.mgr.get(req.params["id"])
        stream, one_shot = req.query_bool("stream", True), req.query_bool("one-shot")
        if stream and one_shot:
            raise InvalidArgument("cannot have stream=true and one-shot=true")
        _, host = await self.runner.runtime()
        path = cgroups_path(record.id)

        async def body() -> AsyncIterator[bytes]:
            prev: dict[str, Any] | None = None
            while True:
                if record.state.status not in ("running", "paused"):
                    yield json_line({**stats.stopped_sample(), "name": "/" + record.name,
                                     "id": record.id})  # fmt: skip
                    return
                now = {**stats.sample(host.mode, path), "name": "/" + record.name,
                       "id": record.id}  # fmt: skip
                now["precpu_stats"] = prev["cpu_stats"] if prev else stats.empty_cpu()
                now["preread"] = prev["read"] if prev else ZERO_TIME
                if stream or one_shot or prev is not None:
                    yield json_line(now)
                    if not stream:
                        return
                prev = now
                await asyncio.sleep(1)

        return StreamResponse(body())

    async def prune(self, req: Request) -> Response:
        """Remove every stopped container (``label`` and ``until`` filters)."""
        filters = req.filters({"label", "label!", "until"})
        for value in filters.get("until", []):
            views.parse_until(value)  # a bad value is a 400 even with nothing to prune
        deleted: list[str] = []
        for record in self.mgr.store.all():
            if record.state.status not in ("exited", "created", "dead"):
                continue
            if not _prune_match(record, filters):
                continue
            await self.mgr.remove(record, force=False)
            deleted.append(record.id)
        return json_response({"ContainersDeleted": deleted or None, "SpaceReclaimed": 0})


def _prune_match(record: ContainerRecord, filters: dict[str, list[str]]) -> bool:
    labels = record.labels
    for wanted in filters.get("label", []):
        key, eq, value = wanted.partition("=")
        if key not in labels or (eq and labels[key] != value):
            return False
    for unwanted in filters.get("label!", []):
        key, eq, value = unwanted.partition("=")
        if key in labels and (not eq or labels[key] == value):
            return False
    return all(views.created_before(record, views.parse_until(v)) for v in filters.get("until", []))
