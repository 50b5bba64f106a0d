"""The assembled API: one :class:`EngineContext` that the engine's parts plug into.

Each part of the engine (images, containers, networks, ...) is a *component*: a function
``setup(ctx: EngineContext)`` (plain or async) named in :data:`COMPONENTS`. The daemon answers
``/_ping`` first and loads the components right after, in the background; a request for a
route that is not registered yet waits for that loading to finish.

A component registers handlers with ``ctx.router.add("POST", "/containers/create", handler)``,
publishes events with ``ctx.events.publish("container", "start", cid, {"name": ...})``, adds
/info fields with ``ctx.system.add_info_provider(fn)``, teardown with
``ctx.cleanup.push_async_callback(fn)``, and can set ``ctx.containers`` to serve
``GET /containers/json``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from pycompose.engine.api.events import EventBus
from pycompose.engine.api.router import Request, Response, Router, json_response
from pycompose.engine.api.server import ApiServer
from pycompose.engine.api.system import SystemService
from pycompose.engine.config import EngineConfig

log = logging.getLogger("pycompose.engine")

COMPONENTS: tuple[str, ...] = (
    "pycompose.engine.images.api:setup",
    "pycompose.storage.api:setup",
    "pycompose.netns.api:setup",
    "pycompose.engine.containers.api:setup",
)
"""``"module:function"`` of each engine part's setup, loaded in this order after start-up."""

CONTAINER_LIST_FILTERS = frozenset(
    {"ancestor", "before", "expose", "exited", "health", "id", "isolation", "is-task", "label",
     "name", "network", "publish", "since", "status", "volume"}
)  # fmt: skip


@dataclass(frozen=True)
class ContainerListQuery:
    """The parameters of ``GET /containers/json``."""

    all: bool = False
    limit: int | None = None
    size: bool = False
    filters: Mapping[str, list[str]] = field(default_factory=dict)


class ContainerLister(Protocol):
    """Whatever knows the containers; answers ``GET /containers/json`` in Docker's shape."""

    async def list_containers(self, query: ContainerListQuery) -> list[dict[str, Any]]:
        """Containers matching ``query``, newest first, each a Docker ``ContainerSummary``."""
        ...


class NoContainers:
    """The lister before a container component is loaded: there are none to list."""

    async def list_containers(self, query: ContainerListQuery) -> list[dict[str, Any]]:
        """Always an empty list."""
        return []


@dataclass
class EngineContext:
    """Everything a component needs to plug into the daemon."""

    config: EngineConfig
    router: Router
    events: EventBus
    system: SystemService
    cleanup: contextlib.AsyncExitStack
    containers: ContainerLister = field(default_factory=NoContainers)
    services: dict[str, Any] = field(default_factory=dict)
    """Objects components share with each other by name (``"images"`` -> ImageStore...)."""


def build_context(config: EngineConfig) -> EngineContext:
    """A context with the system routes and ``GET /containers/json`` registered."""
    router = Router()
    events = EventBus()
    system = SystemService(config, events)
    ctx = EngineContext(config, router, events, system, contextlib.AsyncExitStack())
    system.register(router)

    async def list_containers(req: Request) -> Response:
        query = ContainerListQuery(
            all=req.query_bool("all"),
            limit=req.query_int("limit"),
            size=req.query_bool("size"),
            filters=req.filters(CONTAINER_LIST_FILTERS),
        )
        return json_response(await ctx.containers.list_containers(query))

    router.add("GET", "/containers/json", list_containers)
    return ctx


def resolve_component(spec: str) -> Callable[[EngineContext], Any]:
    """Import ``"module:function"``."""
    module_name, sep, attr = spec.partition(":")
    if not sep:
        raise ValueError(f"component {spec!r} must be 'module:function'")
    setup = getattr(importlib.import_module(module_name), attr)
    if not callable(setup):
        raise TypeError(f"component {spec!r} is not callable")
    return setup  # type: ignore[no-any-return]


async def load_components(ctx: EngineContext, specs: tuple[str, ...], ready: asyncio.Event) -> None:
    """Run each component's setup in order, then release requests waiting for routes.

    A component that fails is logged and skipped: the rest of the engine still serves, and
    its routes answer 404 rather than hanging.
    """
    try:
        for spec in specs:
            try:
                result = resolve_component(spec)(ctx)
                if inspect.isawaitable(result):
                    await result
            except Exception:  # one broken part must not take the whole daemon down
                log.exception("engine component %s failed to load", spec)
    finally:
        ready.set()


async def start_api(
    config: EngineConfig, specs: tuple[str, ...] = COMPONENTS
) -> tuple[ApiServer, EngineContext, asyncio.Task[None]]:
    """Listen on the config's socket now; load components in a background task."""
    ctx = build_context(config)
    ctx.events.bind_loop(asyncio.get_running_loop())
    ready = asyncio.Event()
    ctx.router.hold_until_ready(ready)
    server = ApiServer(ctx.router, common_headers=ctx.system.common_headers())
    await server.start(config.socket_path)
    loader = asyncio.create_task(load_components(ctx, specs, ready))
    return server, ctx, loader
