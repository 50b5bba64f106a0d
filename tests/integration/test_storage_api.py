"""The volumes component of a real daemon, driven by the docker CLI, docker-py, our client and
``pycompose volume``. A test-only component stands in for containers: it marks a volume as
used by a container id, as the container component does when it creates one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator

import docker
import docker.errors
import pytest

from pycompose.engine.api import app
from pycompose.engine.api.app import EngineContext
from pycompose.engine.api.router import Request, Response, empty_response
from pycompose.engine.errors import Conflict, EngineError, InvalidArgument, NotFound
from tests.fixtures.engine import REPO, EngineProcess, start_engine, stop_engine

pytestmark = pytest.mark.root
DOCKER = shutil.which("docker") or "/usr/local/bin/docker"
STORAGE = "pycompose.storage.api:setup"
USERS = "tests.integration.test_storage_api:users_component"


def users_component(ctx: EngineContext) -> None:
    """``POST /probe/volumes/{name}/use/{cid}`` and ``.../unuse/{cid}``."""

    async def use(req: Request) -> Response:
        ctx.services["volumes"].acquire(req.params["name"], req.params["cid"])
        return empty_response(204)

    async def unuse(req: Request) -> Response:
        ctx.services["volumes"].release(req.params["name"], req.params["cid"])
        return empty_response(204)

    ctx.router.add("POST", "/probe/volumes/{name}/use/{cid}", use)
    ctx.router.add("POST", "/probe/volumes/{name}/unuse/{cid}", unuse)


@pytest.fixture
def engine() -> Iterator[EngineProcess]:
    extra = () if STORAGE in app.COMPONENTS else (STORAGE,)
    proc = start_engine(components=(*extra, USERS))
    try:
        yield proc
    finally:
        stop_engine(proc)


def run_docker(engine: EngineProcess, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env["DOCKER_CONFIG"] = str(engine.tmp / "docker-config")
    return subprocess.run(
        [DOCKER, "-H", engine.host, *args], capture_output=True, text=True, env=env, timeout=60
    )


def run_cli(engine: EngineProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pycompose.cli.main", *args],
        capture_output=True,
        text=True,
        env=engine.env(),
        timeout=60,
    )


def test_docker_cli_volume_lifecycle(engine: EngineProcess) -> None:
    out = run_docker(engine, "volume", "create", "myvol2")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "myvol2"
    listing = run_docker(engine, "volume", "ls")
    assert listing.stdout.splitlines()[1].split() == ["local", "myvol2"]
    [doc] = json.loads(run_docker(engine, "volume", "inspect", "myvol2").stdout)
    assert doc["Name"] == "myvol2" and doc["Driver"] == "local" and doc["Scope"] == "local"
    assert doc["Mountpoint"] == str(engine.config.root / "volumes" / "myvol2" / "_data")
    assert os.path.isdir(doc["Mountpoint"])
    assert os.stat(engine.config.root / "volumes").st_mode & 0o777 == 0o700
    engine.client().post("/probe/volumes/myvol2/use/abc123")
    busy = run_docker(engine, "volume", "rm", "myvol2")
    assert busy.returncode != 0
    assert "remove myvol2: volume is in use - [abc123]" in busy.stderr
    engine.client().post("/probe/volumes/myvol2/unuse/abc123")
    rm = run_docker(engine, "volume", "rm", "myvol2")
    assert rm.returncode == 0 and rm.stdout.strip() == "myvol2"
    gone = run_docker(engine, "volume", "inspect", "myvol2")
    assert gone.returncode != 0 and "no such volume" in gone.stderr
    anon = engine.client().post("/volumes/create", {})["Name"]
    run_docker(engine, "volume", "create", "--label", "k=v", "named")
    pruned = run_docker(engine, "volume", "prune", "-f")
    assert pruned.returncode == 0, pruned.stderr
    assert anon in pruned.stdout.split() and "named" not in pruned.stdout
    assert run_docker(engine, "volume", "ls", "-q").stdout.split() == ["named"]
    bad = run_docker(engine, "volume", "create", "-o", "type=nfs", "-o", "device=:/x", "nv")
    assert bad.returncode != 0 and "'nfs'" in bad.stderr


def test_docker_py(engine: EngineProcess) -> None:
    client = docker.DockerClient(base_url=engine.host, timeout=30)
    try:
        vol = client.volumes.create(
            "data1",
            labels={"tier": "db"},
            driver_opts={"type": "tmpfs", "device": "tmpfs", "o": "size=1m"},
        )
        assert vol.attrs["Options"] == {"type": "tmpfs", "device": "tmpfs", "o": "size=1m"}
        assert vol.attrs["Labels"] == {"tier": "db"}
        client.volumes.create("other")
        names = [v.name for v in client.volumes.list(filters={"label": "tier=db"})]
        assert names == ["data1"]
        assert client.volumes.get("data1").name == "data1"
        with pytest.raises(docker.errors.NotFound):
            client.volumes.get("nope")
        engine.client().post("/probe/volumes/data1/use/c1")
        with pytest.raises(docker.errors.APIError) as err:
            client.volumes.get("data1").remove()
        assert err.value.status_code == 409
        assert [v.name for v in client.volumes.list(filters={"dangling": True})] == ["other"]
        with pytest.raises(docker.errors.APIError) as bad:
            client.volumes.create("x/y")
        assert bad.value.status_code == 400
    finally:
        client.close()


def test_prune_keeps_in_use_and_external(engine: EngineProcess) -> None:
    api = engine.client()
    api.post("/volumes/create", {"Name": "external-db"})  # created outside compose
    used = api.post("/volumes/create", {})["Name"]
    unused = api.post("/volumes/create", {})["Name"]
    assert (
        len(used) == 64 and "com.docker.volume.anonymous" in api.get(f"/volumes/{used}")["Labels"]
    )
    api.post(f"/probe/volumes/{used}/use/c9")
    report = api.post("/volumes/prune")
    assert report["VolumesDeleted"] == [unused]
    names = {v["Name"] for v in api.get("/volumes")["Volumes"]}
    assert names == {"external-db", used}
    report = api.post(
        "/volumes/prune", query={"filters": json.dumps({"all": ["true"], "label!": ["keep"]})}
    )
    assert report["VolumesDeleted"] == ["external-db"]
    assert {v["Name"] for v in api.get("/volumes")["Volumes"]} == {used}


def test_api_errors(engine: EngineProcess) -> None:
    api = engine.client()
    with pytest.raises(NotFound, match="get nope: no such volume"):
        api.get("/volumes/nope")
    with pytest.raises(NotFound):
        api.delete("/volumes/nope")
    api.delete("/volumes/nope", {"force": True})
    with pytest.raises(InvalidArgument, match="unknown field Bogus"):
        api.post("/volumes/create", {"Name": "v1", "Bogus": 1})
    with pytest.raises(InvalidArgument, match="invalid filter 'color'"):
        api.get("/volumes", {"filters": json.dumps({"color": ["red"]})})
    api.post("/volumes/create", {"Name": "v2", "DriverOpts": {"type": "tmpfs"}})
    with pytest.raises(Conflict):
        api.post("/volumes/create", {"Name": "v2", "DriverOpts": {"type": "tmpfs", "o": "size=1m"}})


def test_pycompose_volume_cli(engine: EngineProcess) -> None:
    out = run_cli(engine, "volume", "create", "--label", "a=b", "cli-vol")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "cli-vol\n"
    listing = run_cli(engine, "volume", "ls")
    assert listing.stdout.splitlines() == ["DRIVER    VOLUME NAME", "local     cli-vol"]
    assert run_cli(engine, "volume", "ls", "-q", "--filter", "label=a=c").stdout == ""
    [doc] = json.loads(run_cli(engine, "volume", "inspect", "cli-vol").stdout)
    assert doc["Labels"] == {"a": "b"}
    anon = engine.client().post("/volumes/create", {})["Name"]
    prune = run_cli(engine, "volume", "prune", "-f")
    assert prune.stdout.splitlines()[:2] == ["Deleted Volumes:", anon]
    assert run_cli(engine, "volume", "rm", "cli-vol").stdout == "cli-vol\n"
    missing = run_cli(engine, "volume", "rm", "cli-vol")
    assert missing.returncode != 0 and "no such volume" in missing.stderr


def test_volumes_survive_a_daemon_restart() -> None:
    extra = () if STORAGE in app.COMPONENTS else (STORAGE,)
    first = start_engine(components=(*extra, USERS))
    try:
        first.client().post("/volumes/create", {"Name": "kept", "Labels": {"x": "1"}})
        first.client().post("/probe/volumes/kept/use/c1")
        data = first.config.root / "volumes" / "kept" / "_data"
        (data / "file").write_text("still here")
        first.process.kill()  # SIGKILL: no clean shutdown
        first.process.wait()
        for leftover in ("engine.sock", "engine.pid", "engine.lock"):
            (first.config.runtime_dir / leftover).unlink(missing_ok=True)
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        restarted = subprocess.Popen(
            first.process.args,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            cwd=REPO,
        )
        first.process = restarted
        client = first.client()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and restarted.poll() is None:
            with contextlib.suppress(EngineError):
                if client.ping():
                    break
            time.sleep(0.05)
        doc = client.get("/volumes/kept")
        assert doc["Labels"] == {"x": "1"} and (data / "file").read_text() == "still here"
        with pytest.raises(Conflict):
            client.delete("/volumes/kept")
    finally:
        stop_engine(first)
