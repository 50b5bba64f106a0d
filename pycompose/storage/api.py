"""The ``/volumes`` routes of the Docker Engine API, on :class:`VolumeStore`.

``setup`` opens the store under ``<root>/volumes`` and the mount stager under
``<root>/mounts``, and shares them as ``ctx.services["volumes"]`` and
``ctx.services["mounts"]`` (the container component resolves and stages mounts with them).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from pycompose.engine.api.app import EngineContext
from pycompose.engine.api.router import (
    ZERO,
    Request,
    Response,
    check_fields,
    empty_response,
    json_response,
)
from pycompose.engine.errors import InvalidArgument
from pycompose.storage.safepath import KernelBinder
from pycompose.storage.stage import MountStager
from pycompose.storage.volumes import Volume, VolumeStore, label_matches, volume_view

LIST_FILTERS = frozenset({"dangling", "driver", "label", "name"})
PRUNE_FILTERS = frozenset({"label", "label!", "all"})
_TRUE = ("1", "true")
_FALSE = ("0", "false")


def setup(ctx: EngineContext) -> None:
    """Open the volume store and register the volume routes."""
    binder = KernelBinder()

    def on_event(action: str, name: str) -> None:
        # Store calls run in worker threads (and in the container component's): hop to the loop.
        ctx.events.publish_threadsafe("volume", action, name, {"driver": "local"})

    store = VolumeStore(ctx.config.root / "volumes", binder, on_event=on_event)
    stager = MountStager(store, binder, ctx.config.root / "mounts")
    ctx.services.update(volumes=store, mounts=stager)
    VolumesApi(ctx, store).register()


def _bool_filter(name: str, values: list[str]) -> bool | None:
    if not values:
        return None
    value = values[-1].lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise InvalidArgument(f"invalid filter '{name}={values[-1]}'")


def list_matcher(filters: Mapping[str, list[str]]) -> Any:
    """A predicate for ``GET /volumes`` filters: dangling, driver, label, name (substring)."""
    dangling = _bool_filter("dangling", filters.get("dangling", []))

    def match(volume: Volume) -> bool:
        if dangling is not None and dangling == bool(volume.users):
            return False
        drivers = filters.get("driver")
        if drivers and "local" not in drivers:
            return False
        names = filters.get("name")
        if names and not any(n in volume.name for n in names):
            return False
        return all(label_matches(volume.labels, spec) for spec in filters.get("label", []))

    return match


def prune_matcher(filters: Mapping[str, list[str]]) -> Any:
    """A predicate for ``POST /volumes/prune``'s ``label`` and ``label!`` filters."""

    def match(volume: Volume) -> bool:
        if not all(label_matches(volume.labels, s) for s in filters.get("label", [])):
            return False
        return not any(label_matches(volume.labels, s) for s in filters.get("label!", []))

    return match


def _string_map(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise InvalidArgument(f"{where} must be an object of strings")
    return dict(value)


class VolumesApi:
    """Handlers for the volume routes."""

    def __init__(self, ctx: EngineContext, store: VolumeStore) -> None:
        self.ctx = ctx
        self.store = store

    def register(self) -> None:
        """Add the routes to the context's router."""
        add = self.ctx.router.add
        add("GET", "/volumes", self.list)
        add("POST", "/volumes/create", self.create)
        add("POST", "/volumes/prune", self.prune)
        add("GET", "/volumes/{name}", self.inspect)
        add("DELETE", "/volumes/{name}", self.remove)

    async def list(self, req: Request) -> Response:
        """``GET /volumes``."""
        match = list_matcher(req.filters(LIST_FILTERS))
        volumes = await asyncio.to_thread(self.store.list)
        views = [volume_view(v, self.store.data_dir(v.name)) for v in volumes if match(v)]
        return json_response({"Volumes": views, "Warnings": []})

    async def create(self, req: Request) -> Response:
        """``POST /volumes/create``."""
        body = await req.json_object(required=False)
        check_fields(
            body,
            where="",
            known={"Name", "Driver", "DriverOpts", "Labels"},
            unsupported={"ClusterVolumeSpec": ZERO},
        )
        name = body.get("Name") or ""
        driver = body.get("Driver") or ""
        if not isinstance(name, str) or not isinstance(driver, str):
            raise InvalidArgument("Name and Driver must be strings")
        labels = _string_map(body.get("Labels"), "Labels")
        opts = _string_map(body.get("DriverOpts"), "DriverOpts")
        volume = await asyncio.to_thread(
            self.store.create, name or None, labels=labels, options=opts, driver=driver
        )
        return json_response(volume_view(volume, self.store.data_dir(volume.name)), status=201)

    async def inspect(self, req: Request) -> Response:
        """``GET /volumes/{name}``."""
        return json_response(await asyncio.to_thread(self.store.inspect, req.params["name"]))

    async def remove(self, req: Request) -> Response:
        """``DELETE /volumes/{name}?force``: 409 when in use, 404 when missing (not forced)."""
        name = req.params["name"]
        await asyncio.to_thread(self.store.remove, name, force=req.query_bool("force"))
        return empty_response(204)

    async def prune(self, req: Request) -> Response:
        """``POST /volumes/prune``: unused anonymous volumes (all unused ones with all=true)."""
        filters = req.filters(PRUNE_FILTERS)
        all_volumes = bool(_bool_filter("all", filters.get("all", [])))
        removed, reclaimed = await asyncio.to_thread(
            self.store.prune, all_volumes=all_volumes, match=prune_matcher(filters)
        )
        self.ctx.events.publish("volume", "prune", "", {"reclaimed": str(reclaimed)})
        return json_response({"VolumesDeleted": removed, "SpaceReclaimed": reclaimed})
