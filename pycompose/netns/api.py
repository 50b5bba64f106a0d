"""The networks component of the engine daemon: Docker's ``/networks`` routes.

``setup(ctx)`` opens the :class:`NetworkManager` on the engine's root and runtime dir, removes
what a crashed daemon left behind (endpoints of namespaces no process uses any more, their
veths, stray bridges, our nft table), shares the manager as ``ctx.services["networks"]`` and
registers the routes. At shutdown, bridges without endpoints and (when nothing is left) our
table are removed.

Connecting a *container* needs its namespace, which the containers component owns: it
registers ``ctx.services["network_connector"]`` (see :class:`ContainerConnector`) and the
connect/disconnect routes delegate to it.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from typing import TYPE_CHECKING, Any, Protocol

from pycompose.engine.api.router import Request, Response, empty_response, json_response
from pycompose.engine.errors import InvalidArgument, NotFound
from pycompose.netns import nat
from pycompose.netns.kernel import Kernel, LinuxKernel, forward_blockers
from pycompose.netns.manager import NetworkManager, network_filter_match
from pycompose.netns.networks import NetworkSpec
from pycompose.netns.records import NetworkRecord

if TYPE_CHECKING:
    from pycompose.engine.api.app import EngineContext

log = logging.getLogger("pycompose.engine.networks")
LIST_FILTERS = frozenset({"dangling", "driver", "id", "label", "name", "scope", "type"})
PRUNE_FILTERS = frozenset({"until", "label", "label!"})


class ContainerConnector(Protocol):
    """What the containers component offers for ``/networks/{id}/connect|disconnect``."""

    async def connect_network(
        self, container: str, network: NetworkRecord, endpoint_config: dict[str, Any]
    ) -> str:
        """Connect the named container (``EndpointConfig`` as Docker sends it); its full id.

        A running container gets an endpoint now (``NetworkManager.attach``, in a worker
        thread); a stopped one keeps the config for its next start.
        """
        ...

    async def disconnect_network(self, container: str, network: NetworkRecord, force: bool) -> str:
        """Disconnect the named container; its full id."""
        ...


async def setup(ctx: EngineContext, kernel: Kernel | None = None) -> None:
    """Open the manager, clean up after a crash, register the routes.

    pyroute2's synchronous API runs its own event loop, so every manager call happens in a
    worker thread, never on the daemon's loop.
    """
    manager = await asyncio.to_thread(open_manager, ctx, kernel or LinuxKernel())
    ctx.services["networks"] = manager

    async def close() -> None:
        await asyncio.to_thread(manager.close)

    ctx.cleanup.push_async_callback(close)
    NetworksApi(ctx, manager).register()


def open_manager(ctx: EngineContext, kernel: Kernel) -> NetworkManager:
    """The manager, after removing what no running process uses any more (blocking)."""
    manager = NetworkManager(ctx.config, kernel)
    netns_dir = manager.netns_dir
    paths = sorted(netns_dir.iterdir()) if netns_dir.is_dir() else []
    manager.gc(live=kernel.netns_in_use(paths))
    for chain in forward_blockers(kernel.nft_chains(), nat.table_name(ctx.config.bridge_prefix)):
        log.warning("%s drops forwarded packets: containers cannot reach out or be reached "
                    "through published ports until it accepts them", chain)  # fmt: skip
    return manager


class NetworksApi:
    """Route handlers: thin translations to the manager (run in worker threads)."""

    def __init__(self, ctx: EngineContext, manager: NetworkManager) -> None:
        self.ctx = ctx
        self.manager = manager

    def register(self) -> None:
        """Add the routes to the router."""
        add = self.ctx.router.add
        add("GET", "/networks", self.list)
        add("POST", "/networks/create", self.create)
        add("POST", "/networks/prune", self.prune)
        add("GET", "/networks/{id}", self.inspect)
        add("DELETE", "/networks/{id}", self.delete)
        add("POST", "/networks/{id}/connect", self.connect)
        add("POST", "/networks/{id}/disconnect", self.disconnect)

    def _event(self, action: str, record: NetworkRecord, **attrs: str) -> None:
        self.ctx.events.publish(
            "network", action, record.id, {"name": record.name, "type": record.driver, **attrs}
        )

    async def list(self, req: Request) -> Response:
        filters = req.filters(LIST_FILTERS)
        records = await asyncio.to_thread(self.manager.networks)
        out = [r.to_docker(with_containers=False) for r in records
               if network_filter_match(r, filters)]  # fmt: skip
        return json_response(out)

    async def inspect(self, req: Request) -> Response:
        scope = req.query_str("scope")
        if scope not in (None, "", "local"):
            raise NotFound(f"network {req.params['id']} not found")
        record = await asyncio.to_thread(self.manager.get, req.params["id"])
        return json_response(record.to_docker())

    async def create(self, req: Request) -> Response:
        spec = NetworkSpec.from_docker(await req.json_object())
        if not spec.name:
            raise InvalidArgument("network name is required (Name)")
        record = await asyncio.to_thread(self.manager.create, spec)
        self._event("create", record)
        return json_response({"Id": record.id, "Warning": ""}, status=201)

    async def delete(self, req: Request) -> Response:
        record = await asyncio.to_thread(self.manager.get, req.params["id"])
        await asyncio.to_thread(self.manager.delete, record.id)
        self._event("destroy", record)
        return empty_response()

    async def prune(self, req: Request) -> Response:
        filters = req.filters(PRUNE_FILTERS)
        keep = prune_keep(filters)
        records = {r.name: r for r in await asyncio.to_thread(self.manager.networks)}
        removed = await asyncio.to_thread(self.manager.prune, keep)
        for name in removed:
            self._event("destroy", records[name])
        return json_response({"NetworksDeleted": removed or None})

    def _connector(self, container: str) -> ContainerConnector:
        connector = self.ctx.services.get("network_connector")
        if connector is None:  # no containers component: there is no such container
            raise NotFound(f"No such container: {container}")
        return connector  # type: ignore[no-any-return]

    async def connect(self, req: Request) -> Response:
        body = await req.json_object()
        container = str(body.get("Container") or "")
        if not container:
            raise InvalidArgument("Container is required")
        record = await asyncio.to_thread(self.manager.get, req.params["id"])
        config = body.get("EndpointConfig") or {}
        if not isinstance(config, dict):
            raise InvalidArgument("EndpointConfig must be an object")
        cid = await self._connector(container).connect_network(container, record, config)
        self._event("connect", record, container=cid)
        return empty_response(200)

    async def disconnect(self, req: Request) -> Response:
        body = await req.json_object()
        container = str(body.get("Container") or "")
        if not container:
            raise InvalidArgument("Container is required")
        record = await asyncio.to_thread(self.manager.get, req.params["id"])
        cid = await self._connector(container).disconnect_network(
            container, record, bool(body.get("Force"))
        )
        self._event("disconnect", record, container=cid)
        return empty_response(200)


def _parse_until(value: str) -> datetime.datetime:
    """Docker's ``until``: a Unix time, an RFC 3339 time, or a duration like ``24h``."""
    now = datetime.datetime.now(datetime.UTC)
    units = {"s": 1, "m": 60, "h": 3600}
    try:
        if value[-1:] in units and value[:-1].replace(".", "", 1).isdigit():
            return now - datetime.timedelta(seconds=float(value[:-1]) * units[value[-1]])
        if value.replace(".", "", 1).isdigit():
            return datetime.datetime.fromtimestamp(float(value), datetime.UTC)
        parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as err:
        raise InvalidArgument(f"invalid filter 'until={value}'") from err
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)


def prune_keep(filters: dict[str, list[str]]) -> Any:
    """A predicate saying which networks a prune with these filters must keep."""
    until = [_parse_until(v) for v in filters.get("until", [])]
    labels = filters.get("label", [])
    not_labels = filters.get("label!", [])

    def keep(record: NetworkRecord) -> bool:
        created = datetime.datetime.fromisoformat(record.created.replace("Z", "+00:00"))
        if any(created >= u for u in until):
            return True
        if labels and not network_filter_match(record, {"label": labels}):
            return True
        return any(network_filter_match(record, {"label": [lab]}) for lab in not_labels)

    return keep
