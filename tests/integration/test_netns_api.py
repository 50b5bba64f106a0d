"""The networks component in a real daemon: Docker's /networks shapes, our CLI, docker's CLI.

The daemon loads only this component. At the end the engine must leave no bridge and no nft
table of its own behind.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from pycompose.engine.errors import Conflict, InvalidArgument, NotFound
from pycompose.netns import nat
from pycompose.netns.kernel import LinuxKernel
from tests.fixtures.engine import EngineProcess, start_engine, stop_engine

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(shutil.which("nft") is None, reason="needs nftables"),
]
COMPONENT = "pycompose.netns.api:setup"


@pytest.fixture(scope="module")
def engine() -> Iterator[EngineProcess]:
    eng = start_engine(components=(COMPONENT,))
    prefix = eng.config.bridge_prefix
    try:
        yield eng
    finally:
        stop_engine(eng)
        kernel = LinuxKernel()
        left = [n for n in kernel.link_names() if n.startswith(prefix)]
        left += [n for _, n in kernel.nft_tables() if n == nat.table_name(prefix)]
        assert not left, f"engine left behind: {left}"


def cli(engine: EngineProcess, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(
        [sys.executable, "-m", "pycompose.cli.main", *args],
        capture_output=True, text=True, env=engine.env(), timeout=60,
    )  # fmt: skip
    if check:
        assert out.returncode == 0, out.stderr
    return out


def in_pool(engine: EngineProcess, third: int) -> str:
    """``10.X.<third>``: a /24 of the engine's own pool (no other test engine uses it)."""
    return ".".join([*engine.config.subnet_pool[0].split(".")[:2], str(third)])


def test_predefined_networks(engine: EngineProcess) -> None:
    nets = {n["Name"]: n for n in engine.client().get("/networks")}
    assert {"bridge", "host", "none"} <= set(nets)
    assert nets["bridge"]["Driver"] == "bridge" and nets["host"]["Driver"] == "host"
    assert nets["none"]["Driver"] == "null"
    assert nets["bridge"]["IPAM"]["Config"][0]["Subnet"].startswith(
        engine.config.subnet_pool[0].split(".0.0/")[0]
    )
    builtin = engine.client().get("/networks", query={"filters": {"type": ["builtin"]}})
    assert sorted(n["Name"] for n in builtin) == ["bridge", "host", "none"]


def test_create_inspect_delete_and_errors(engine: EngineProcess) -> None:
    client = engine.client()
    sub = in_pool(engine, 200)
    ipam = {"Config": [{"Subnet": f"{sub}.0/24", "Gateway": f"{sub}.254"}]}
    body = {"Name": "apinet", "Labels": {"a": "b"}, "IPAM": ipam}
    created = client.post("/networks/create", body)
    assert created["Warning"] == "" and len(created["Id"]) == 64
    net = client.get("/networks/apinet")
    assert net["Id"] == created["Id"] and net["Labels"] == {"a": "b"}
    assert net["IPAM"]["Config"] == ipam["Config"]
    bridge = engine.config.bridge_prefix + created["Id"][: 15 - len(engine.config.bridge_prefix)]
    assert bridge in LinuxKernel().link_names()
    assert client.get(f"/networks/{created['Id'][:10]}")["Name"] == "apinet"
    with pytest.raises(Conflict):
        client.post("/networks/create", {"Name": "apinet"})
    with pytest.raises(InvalidArgument, match="Pool overlaps"):
        client.post("/networks/create", {"Name": "other",
                    "IPAM": {"Config": [{"Subnet": f"{sub}.128/25"}]}})  # fmt: skip
    with pytest.raises(NotFound, match="plugin"):
        client.post("/networks/create", {"Name": "ov", "Driver": "overlay"})
    with pytest.raises(InvalidArgument, match="unknown network option"):
        client.post("/networks/create", {"Name": "op", "Options": {"x": "y"}})
    with pytest.raises(NotFound, match="No such container"):
        client.post("/networks/apinet/connect", {"Container": "nothere"})
    with pytest.raises(InvalidArgument, match="pre-defined"):
        client.delete("/networks/bridge")
    client.delete("/networks/apinet")
    assert bridge not in LinuxKernel().link_names()
    with pytest.raises(NotFound):
        client.get("/networks/apinet")


def test_cli_commands(engine: EngineProcess) -> None:
    sub = in_pool(engine, 201)
    made = cli(engine, "network", "create", "--label", "k=v", "--subnet", f"{sub}.0/24",
               "--ip-range", f"{sub}.128/25", "clinet").stdout.strip()  # fmt: skip
    assert len(made) == 64
    lines = cli(engine, "network", "ls").stdout.splitlines()
    assert lines[0].split() == ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"]
    assert any(line.split()[:2] == [made[:12], "clinet"] for line in lines[1:])
    quiet = cli(engine, "network", "ls", "-q", "--filter", "label=k=v").stdout.split()
    assert quiet == [made[:12]]
    doc = json.loads(cli(engine, "network", "inspect", "clinet").stdout)
    assert doc[0]["IPAM"]["Config"][0]["IPRange"] == f"{sub}.128/25"
    assert cli(engine, "network", "inspect", "-f", "{{.Driver}}", "clinet").stdout == "bridge\n"
    missing = cli(engine, "network", "inspect", "nope", check=False)
    assert missing.returncode == 1 and "No such network: nope" in missing.stderr
    cli(engine, "network", "create", "spare")
    pruned = cli(engine, "network", "prune", "-f", "--filter", "label!=k").stdout
    assert pruned.splitlines() == ["Deleted Networks:", "spare"]
    assert cli(engine, "network", "rm", "clinet").stdout == "clinet\n"
    gone = cli(engine, "network", "rm", "clinet", check=False)
    assert gone.returncode == 1 and "not found" in gone.stderr


@pytest.mark.skipif(shutil.which("docker") is None, reason="needs the docker CLI")
def test_docker_cli_drives_our_networks(engine: EngineProcess) -> None:
    def docker(*args: str) -> str:
        out = subprocess.run(["docker", "-H", engine.host, *args],
                             capture_output=True, text=True, timeout=60)  # fmt: skip
        assert out.returncode == 0, out.stderr
        return out.stdout

    ident = docker("network", "create", "--internal", "dnet").strip()
    assert "dnet" in docker("network", "ls", "--format", "{{.Name}}").split()
    info = json.loads(docker("network", "inspect", "dnet"))
    assert info[0]["Id"] == ident and info[0]["Internal"] is True
    docker("network", "rm", "dnet")


def test_restart_after_sigkill_leaves_nothing() -> None:
    first = start_engine(components=(COMPONENT,))
    config = first.config
    kernel = LinuxKernel()
    second: EngineProcess | None = None
    try:
        ident = first.client().post("/networks/create", {"Name": "crash"})["Id"]
        bridge = (config.bridge_prefix + ident)[:15]
        assert bridge in kernel.link_names()
        first.process.kill()
        first.process.wait()
        assert bridge in kernel.link_names()  # a SIGKILLed daemon cleans nothing
        argv = [sys.executable, "-m", "pycompose.cli.main", "engine", "serve",
                *config.serve_args(), "--component", COMPONENT]  # fmt: skip
        with open(first.log_path, "ab") as log:
            proc = subprocess.Popen(argv, stdout=log, stderr=log, env=first.env())
        second = EngineProcess(config, proc, first.tmp, first.log_path)
        client = second.client()
        for _ in range(500):
            if client.ping():
                break
            time.sleep(0.02)
        # The record survives; its unused bridge was garbage-collected at start.
        assert client.get("/networks/crash")["Id"] == ident
        assert bridge not in kernel.link_names()
        client.delete("/networks/crash")
    finally:
        if first.process.poll() is None:
            first.process.kill()
            first.process.wait()
        if second is not None:
            stop_engine(second)
        else:
            shutil.rmtree(first.tmp, ignore_errors=True)
    left = [n for n in kernel.link_names() if n.startswith(config.bridge_prefix)]
    left += [n for _, n in kernel.nft_tables() if n == nat.table_name(config.bridge_prefix)]
    assert not left
