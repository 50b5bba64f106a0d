"""The /networks routes in-process, on the fake kernel: shapes, statuses, events, connector."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from pycompose.engine.api.app import EngineContext, build_context
from pycompose.engine.api.router import Request, Response
from pycompose.engine.config import EngineConfig
from pycompose.engine.errors import InvalidArgument, NotFound
from pycompose.netns.api import prune_keep, setup
from pycompose.netns.kernel import FakeKernel
from pycompose.netns.records import NetworkRecord


class _Body:
    def __init__(self, data: bytes) -> None:
        self.data = data

    async def read_all(self, limit: int) -> bytes:
        return self.data


class Connector:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Any]] = []

    async def connect_network(self, container: str, network: NetworkRecord,
                              endpoint_config: dict[str, Any]) -> str:  # fmt: skip
        self.calls.append(("connect", container, endpoint_config))
        return "f" * 64

    async def disconnect_network(self, container: str, network: NetworkRecord, force: bool) -> str:
        self.calls.append(("disconnect", container, force))
        return "f" * 64


async def call(ctx: EngineContext, method: str, path: str, body: Any = None,
               query: dict[str, list[str]] | None = None) -> Response:  # fmt: skip
    handler, params = await ctx.router.resolve(method, path)
    data = b"" if body is None else json.dumps(body).encode()
    req = Request(method, path, query or {}, {}, _Body(data), "1.47", params)  # type: ignore[arg-type]
    resp = await handler(req)
    assert isinstance(resp, Response)
    return resp


def loads(resp: Response) -> Any:
    return json.loads(resp.body)


def run_api(tmp_path: Path, scenario: Any) -> None:
    config = EngineConfig.load(
        root=tmp_path / "r", runtime_dir=tmp_path / "run", bridge_prefix="ta-",
        subnet_pool="10.44.0.0/16:24", environ={},
    )  # fmt: skip

    async def main() -> None:
        ctx = build_context(config)
        ctx.events.bind_loop(asyncio.get_running_loop())
        await setup(ctx, kernel=FakeKernel())
        await scenario(ctx)
        await ctx.cleanup.aclose()

    asyncio.run(main())


def test_list_create_inspect_delete(tmp_path: Path) -> None:
    async def scenario(ctx: EngineContext) -> None:
        names = [n["Name"] for n in loads(await call(ctx, "GET", "/networks"))]
        assert sorted(names) == ["bridge", "host", "none"]
        custom = {"filters": ['{"type": ["custom"]}']}
        assert loads(await call(ctx, "GET", "/networks", query=custom)) == []
        created = await call(ctx, "POST", "/networks/create", {"Name": "web", "Labels": {"a": "1"}})
        assert created.status == 201 and loads(created)["Warning"] == ""
        ident = loads(created)["Id"]
        net = loads(await call(ctx, "GET", "/networks/web"))
        assert net["Id"] == ident and net["Scope"] == "local" and net["Containers"] == {}
        assert net["IPAM"]["Config"] == [{"Subnet": "10.44.1.0/24", "Gateway": "10.44.1.1"}]
        with pytest.raises(NotFound):
            await call(ctx, "GET", "/networks/web", query={"scope": ["swarm"]})
        with pytest.raises(InvalidArgument, match="name is required"):
            await call(ctx, "POST", "/networks/create", {"Driver": "bridge"})
        with pytest.raises(InvalidArgument, match="invalid filter"):
            await call(ctx, "GET", "/networks", query={"filters": ['{"colour": ["x"]}']})
        assert (await call(ctx, "DELETE", f"/networks/{ident[:8]}")).status == 204
        actions = [(e.type, e.action) for e in ctx.events.history()]
        assert ("network", "create") in actions and ("network", "destroy") in actions
        assert isinstance(ctx.services["networks"].get("bridge"), NetworkRecord)

    run_api(tmp_path, scenario)


def test_connect_disconnect_through_the_connector(tmp_path: Path) -> None:
    async def scenario(ctx: EngineContext) -> None:
        await call(ctx, "POST", "/networks/create", {"Name": "n"})
        with pytest.raises(NotFound, match="No such container: web"):
            await call(ctx, "POST", "/networks/n/connect", {"Container": "web"})
        connector = Connector()
        ctx.services["network_connector"] = connector
        body = {"Container": "web", "EndpointConfig": {"Aliases": ["w"]}}
        assert (await call(ctx, "POST", "/networks/n/connect", body)).status == 200
        await call(ctx, "POST", "/networks/n/disconnect", {"Container": "web", "Force": True})
        assert connector.calls == [("connect", "web", {"Aliases": ["w"]}),
                                   ("disconnect", "web", True)]  # fmt: skip
        last = ctx.events.history()[-1]
        assert (last.action, last.attributes["container"]) == ("disconnect", "f" * 64)
        with pytest.raises(InvalidArgument, match="Container is required"):
            await call(ctx, "POST", "/networks/n/connect", {})

    run_api(tmp_path, scenario)


def test_prune_with_filters(tmp_path: Path) -> None:
    async def scenario(ctx: EngineContext) -> None:
        await call(ctx, "POST", "/networks/create", {"Name": "keep", "Labels": {"k": "1"}})
        await call(ctx, "POST", "/networks/create", {"Name": "drop"})
        resp = loads(await call(ctx, "POST", "/networks/prune",
                                query={"filters": ['{"label!": ["k"]}']}))  # fmt: skip
        assert resp == {"NetworksDeleted": ["drop"]}
        resp = loads(await call(ctx, "POST", "/networks/prune",
                                query={"filters": ['{"until": ["1h"]}']}))  # fmt: skip
        assert resp == {"NetworksDeleted": None}  # made less than an hour ago
        with pytest.raises(InvalidArgument, match="until"):
            prune_keep({"until": ["yesterday"]})

    run_api(tmp_path, scenario)
