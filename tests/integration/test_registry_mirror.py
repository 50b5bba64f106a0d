"""Registry mirrors and insecure registries set on the daemon, against real docker-registry.

There is no internet here, so a pull of ``docker.io/library/busybox`` can only be answered by
the loopback registry configured as the engine's mirror. For insecure registries, loopback is
always insecure, so the TLS registry (self-signed) is reached through this host's name, which
resolves to loopback but is not an address: refused unless that name is listed insecure, or
its CA is in the engine's certs.d (which also gives the client certificate a registry demands).
"""

from __future__ import annotations

import ipaddress
import json
import os
import pathlib
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from pycompose.engine.client import EngineClient
from pycompose.engine.config import EngineConfig
from pycompose.engine.errors import EngineError
from tests.fixtures import registry as fx
from tests.fixtures.engine import (
    REPO,
    EngineProcess,
    free_subnet_pool,
    stop_engine,
)
from tests.fixtures.images import busybox_oci_layout

pytestmark = pytest.mark.root

DOCKER = shutil.which("docker")


@pytest.fixture(scope="module")
def layout() -> Iterator[pathlib.Path]:
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="pcmirror-layout-"))
    try:
        yield busybox_oci_layout(tmp / "busybox")
    finally:
        shutil.rmtree(tmp)


def layout_image_id(layout: pathlib.Path) -> str:
    index = json.loads((layout / "index.json").read_text())
    man = json.loads((layout / "blobs/sha256" / index["manifests"][0]["digest"][7:]).read_text())
    return str(man["config"]["digest"])


def start_engine_with(*, mirrors: Sequence[str] = (), insecure: Sequence[str] = (),
                      daemon_json: dict[str, Any] | None = None,
                      certs_dir: pathlib.Path | None = None,
                      timeout: float = 15.0) -> EngineProcess:
    """An isolated engine whose registry settings come from flags or a daemon config file."""
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="pcmir-"))
    config_file = None
    if daemon_json is not None:
        config_file = tmp / "daemon.json"
        config_file.write_text(json.dumps(daemon_json))
    config = EngineConfig.load(
        root=tmp / "root", runtime_dir=tmp / "run", bridge_prefix=f"t{secrets.token_hex(2)}",
        subnet_pool=f"{free_subnet_pool()}:24", registry_mirrors=mirrors,
        insecure_registries=insecure, config_file=config_file, environ={}, certs_dir=certs_dir,
    )
    argv = [sys.executable, "-m", "pycompose.cli.main", "engine", "serve", *config.serve_args()]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYCOMPOSE_")}
    env["PYCOMPOSE_CONFIG_DIR"] = str(tmp / "config")  # no user daemon.json or credentials
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    log_path = tmp / "engine.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                   env=env, cwd=REPO)
    engine = EngineProcess(config, process, tmp, log_path)
    deadline = time.monotonic() + timeout
    while not engine.client().ping():
        if process.poll() is not None or time.monotonic() > deadline:
            stop_engine(engine, check=False)
            raise RuntimeError(f"test engine did not start:\n{engine.log()}")
        time.sleep(0.02)
    return engine


def pull(client: EngineClient, ref: str, tag: str = "latest") -> list[dict[str, Any]]:
    with client.stream("POST", "/images/create", query={"fromImage": ref, "tag": tag}) as resp:
        return list(resp.iter_json())


def test_docker_hub_pull_is_served_by_the_mirror(layout: pathlib.Path) -> None:
    with fx.run_registry() as mirror:
        fx.skopeo_copy(layout, mirror, "library/busybox")
        engine = start_engine_with(mirrors=[mirror.url])
        try:
            client = engine.client()
            events = pull(client, "docker.io/library/busybox")
            assert not [e for e in events if "error" in e], events
            assert events[-1]["status"] == "Status: Downloaded newer image for busybox:latest"
            # The id of the image we made: only the mirror holds it.
            assert client.get("/images/busybox:latest/json")["Id"] == layout_image_id(layout)
            info = client.get("/info")["RegistryConfig"]
            assert info["Mirrors"] == [f"{mirror.url}/"]
            assert info["IndexConfigs"]["docker.io"]["Mirrors"] == [f"{mirror.url}/"]
            assert info["InsecureRegistryCIDRs"] == ["::1/128", "127.0.0.0/8"]
        finally:
            stop_engine(engine)


@pytest.mark.skipif(DOCKER is None, reason="the docker CLI is not installed")
def test_docker_cli_pull_short_name_through_mirror_and_info(layout: pathlib.Path) -> None:
    assert DOCKER is not None
    with fx.run_registry() as mirror:
        fx.skopeo_copy(layout, mirror, "library/busybox")
        engine = start_engine_with(daemon_json={"registry-mirrors": [mirror.url]})
        try:
            env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
            env["DOCKER_CONFIG"] = str(engine.tmp / "docker-config")
            docker = [DOCKER, "-H", engine.host]
            out = subprocess.run([*docker, "pull", "busybox"], capture_output=True, env=env,
                                 timeout=120)
            assert out.returncode == 0, out.stderr.decode()
            assert "docker.io/library/busybox:latest" in out.stdout.decode()
            out = subprocess.run([*docker, "info", "--format", "{{json .RegistryConfig}}"],
                                 capture_output=True, env=env, timeout=60, check=True)
            shown = json.loads(out.stdout)
            assert shown["Mirrors"] == [f"{mirror.url}/"]
            assert shown["IndexConfigs"]["docker.io"]["Secure"] is True
        finally:
            stop_engine(engine)


def loopback_host_name() -> str:
    """This host's name when it resolves to loopback (it is then not an IP literal)."""
    name = socket.gethostname()
    try:
        ipaddress.ip_address(name)
        pytest.skip(f"host name {name!r} is an address")
    except ValueError:
        pass
    try:
        addrs = {info[4][0] for info in socket.getaddrinfo(name, None, socket.AF_INET)}
    except OSError:
        pytest.skip(f"host name {name!r} does not resolve")
    if name == "localhost" or addrs != {"127.0.0.1"}:
        pytest.skip(f"host name {name!r} does not resolve to 127.0.0.1 only ({addrs})")
    return name


def test_tls_registry_with_self_signed_cert_needs_insecure_setting(
        layout: pathlib.Path) -> None:
    name = loopback_host_name()
    with fx.run_registry(tls=True) as server:
        fx.skopeo_copy(layout, server, "busybox")
        port = server.host.rsplit(":", 1)[1]
        ref = f"{name}:{port}/busybox"
        strict = start_engine_with()
        try:
            # As dockerd: an error response (500) before any progress is streamed.
            with pytest.raises(EngineError, match=f"cannot reach registry https://{name}:{port}: "
                               ".*CERTIFICATE_VERIFY_FAILED.*self-signed") as caught:
                pull(strict.client(), ref)
            assert caught.value.status == 500
            assert strict.client().get("/images/json") == []
        finally:
            stop_engine(strict)
        lenient = start_engine_with(daemon_json={"insecure-registries": [f"{name}:{port}"]})
        try:
            client = lenient.client()
            events = pull(client, ref)
            assert not [e for e in events if "error" in e], events
            assert client.get(f"/images/{ref}:latest/json")["Id"] == layout_image_id(layout)
            index = client.get("/info")["RegistryConfig"]["IndexConfigs"][f"{name}:{port}"]
            assert index == {"Name": f"{name}:{port}", "Mirrors": [], "Secure": False,
                             "Official": False}
        finally:
            stop_engine(lenient)


def test_engine_takes_ca_and_client_certificate_from_its_certs_dir(
        layout: pathlib.Path) -> None:
    name = loopback_host_name()
    with fx.run_registry(tls=True, mutual=True, names=(name,)) as server:
        assert server.ca_file is not None and server.client_cert is not None
        fx.skopeo_copy(layout, server, "busybox")
        host = f"{name}:{server.host.rsplit(':', 1)[1]}"
        ref = f"{host}/busybox"
        certs = pathlib.Path(tempfile.mkdtemp(prefix="pccerts-"))
        engine = start_engine_with(certs_dir=certs)
        try:
            client = engine.client()
            # The files are read for each pull: no restart between the steps.
            with pytest.raises(EngineError, match=f"cannot reach registry https://{host}: .*"
                               f"put that CA certificate in {certs}/{host}/ca.crt"):
                pull(client, ref)
            (certs / host).mkdir()
            shutil.copyfile(server.ca_file, certs / host / "ca.crt")
            with pytest.raises(EngineError, match=f"{host} requires a client certificate: put "
                               f"it and its key in {certs}/{host}/ as client.cert"):
                pull(client, ref)
            shutil.copyfile(server.client_cert.key, certs / host / "client.key")
            with pytest.raises(EngineError, match=f"missing client certificate "
                               f"{certs}/{host}/client.cert for key {certs}/{host}/client.key"):
                pull(client, ref)
            shutil.copyfile(server.client_cert.cert, certs / host / "client.cert")
            events = pull(client, ref)
            assert not [e for e in events if "error" in e], events
            assert client.get(f"/images/{ref}:latest/json")["Id"] == layout_image_id(layout)
        finally:
            stop_engine(engine)
            shutil.rmtree(certs)
