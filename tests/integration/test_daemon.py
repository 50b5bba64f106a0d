"""A real daemon in temp dirs, driven by clients written by others: the docker CLI and docker-py."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import docker
import pytest

from pycompose.engine import daemon
from pycompose.engine.client import EngineClient
from pycompose.engine.config import EngineConfig
from pycompose.engine.errors import InvalidArgument, NotFound
from tests.fixtures.engine import (
    EngineProcess,
    engine_daemon,
)

pytestmark = pytest.mark.root

__all__ = ["engine_daemon"]  # the fixture, used by name below

DOCKER = shutil.which("docker") or "/usr/local/bin/docker"


def docker_env(engine: EngineProcess) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env["DOCKER_CONFIG"] = str(engine.tmp / "docker-config")  # no user config, no contexts
    return env


def run_docker(engine: EngineProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DOCKER, "-H", engine.host, *args],
        capture_output=True, text=True, env=docker_env(engine), timeout=60,
    )  # fmt: skip


def pycompose(engine: EngineProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pycompose.cli.main", *args],
        capture_output=True, text=True, env=engine.env(), timeout=60,
    )  # fmt: skip


def test_docker_cli_version_info_ps(engine_daemon: EngineProcess) -> None:
    out = run_docker(engine_daemon, "version", "--format", "{{json .Server}}")
    assert out.returncode == 0, out.stderr
    server = json.loads(out.stdout)
    assert server["ApiVersion"] == "1.47" and server["MinAPIVersion"] == "1.41"
    assert server["Platform"]["Name"] == "pycompose Engine" and server["Os"] == "linux"

    out = run_docker(engine_daemon, "info", "--format", "{{json .}}")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["OSType"] == "linux" and info["Containers"] == 0
    assert info["DockerRootDir"] == str(engine_daemon.config.root)
    assert info["NCPU"] == os.cpu_count() and info["MemTotal"] > 0

    out = run_docker(engine_daemon, "ps", "-a", "--format", "{{.ID}}")
    assert (out.returncode, out.stdout) == (0, ""), out.stderr
    out = run_docker(engine_daemon, "ps", "--filter", "colour=red")
    assert out.returncode != 0 and "invalid filter 'colour'" in out.stderr


def test_docker_py_version_ping_and_errors(engine_daemon: EngineProcess) -> None:
    client = docker.DockerClient(base_url=engine_daemon.host, timeout=30)
    try:
        assert client.ping() is True
        assert client.version()["ApiVersion"] == "1.47"
        assert client.containers.list(all=True) == []
        url = client.api._url("/probe/create")
        resp = client.api.post(url, json={"Image": "busybox", "Colour": "red"})
        assert (resp.status_code, resp.json()) == (400, {"message": "unknown field Colour"})
        resp = client.api.post(url, json={"Image": "busybox", "Privileged": True})
        assert resp.status_code == 400 and "Privileged is not supported" in resp.json()["message"]
        resp = client.api.post(
            url, json={"Image": "busybox", "Privileged": False, "StopSignal": "SIGTERM"}
        )
        assert resp.status_code == 201, resp.text  # defaults of unsupported fields are fine
        resp = client.api.post(
            url, data=b'{"Image": "busy', headers={"Content-Type": "application/json"}
        )
        assert resp.status_code == 400
        assert resp.json()["message"].startswith(
            "malformed JSON in request body: Unterminated string"
        )
    finally:
        client.close()


def test_docker_py_hijacks_the_connection(engine_daemon: EngineProcess) -> None:
    client = docker.DockerClient(base_url=engine_daemon.host, timeout=30)
    try:
        api = client.api
        upgrade = {"Connection": "Upgrade", "Upgrade": "tcp"}
        res = api._post(api._url("/probe/hijack"), headers=upgrade, stream=True)
        assert res.status_code == 101
        sock = api._get_raw_response_socket(res)
        raw = sock._sock  # SocketIO.close() leaves the socket itself open: keep it to close
        raw.sendall(b"hello ")
        raw.sendall(b"world")
        raw.shutdown(socket.SHUT_WR)
        frames = list(docker.utils.socket.frames_iter(sock, tty=False))
        out = b"".join(data for stream, data in frames if stream == 1)
        assert out == b"HELLO WORLD"
        assert frames[-1] == (2, b"stdin closed\n")
        sock.close()
        raw.close()
    finally:
        client.close()


def test_events_reach_docker_events(engine_daemon: EngineProcess) -> None:
    client = engine_daemon.client()
    since = f"{time.time() - 1:.3f}"
    client.post("/probe/events/container/create/c0ffee", query={"name": "web", "image": "busybox"})
    client.post("/probe/events/container/start/c0ffee", query={"name": "web", "image": "busybox"})
    client.post("/probe/events/network/create/n1")
    until = f"{time.time() + 0.5:.3f}"
    filters = ["--filter", "type=container", "--filter", "event=start"]
    out = run_docker(
        engine_daemon, "events", "--since", since, "--until", until, *filters,
        "--format", "{{json .}}",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    events = [json.loads(line) for line in out.stdout.splitlines()]
    assert [(e["Action"], e["Actor"]["ID"], e["Actor"]["Attributes"]["name"]) for e in events] == [
        ("start", "c0ffee", "web")
    ]


def test_malformed_request_through_our_client(engine_daemon: EngineProcess) -> None:
    client = engine_daemon.client()
    with pytest.raises(InvalidArgument, match="malformed JSON"):
        client.call(
            "POST", "/probe/create", data=b"{", headers={"Content-Type": "application/json"}
        )
    with pytest.raises(InvalidArgument, match=r"client version 1\.24 is too old"):
        EngineClient(str(engine_daemon.config.socket_path), api_version="1.24").version()


def test_second_daemon_on_same_runtime_dir_is_refused(engine_daemon: EngineProcess) -> None:
    out = pycompose(engine_daemon, "engine", "serve")
    assert out.returncode == 1
    assert f"(pid {engine_daemon.process.pid}) is already running" in out.stderr
    assert engine_daemon.client().ping()  # the first one is undisturbed


def test_status_and_stop(engine_daemon: EngineProcess) -> None:
    out = pycompose(engine_daemon, "engine", "status")
    assert out.returncode == 0 and f"running (pid {engine_daemon.process.pid})" in out.stdout
    out = pycompose(engine_daemon, "engine", "stop")
    assert out.returncode == 0 and f"engine stopped (pid {engine_daemon.process.pid})" in out.stdout
    assert engine_daemon.process.wait(5) == 0
    assert os.listdir(engine_daemon.config.runtime_dir) == []  # socket, pid file, lock all gone
    out = pycompose(engine_daemon, "engine", "status")
    assert out.returncode == 1 and "not running" in out.stdout
    assert "engine stopping" in engine_daemon.log()


def test_ensure_daemon_autostarts_and_stop_cleans_up() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="pcauto-"))
    config = EngineConfig.load(root=tmp / "root", runtime_dir=tmp / "run", environ={})
    pid = None
    try:
        started = time.monotonic()
        client = daemon.ensure_daemon(config)
        assert time.monotonic() - started < 10
        assert client.version()["ApiVersion"] == "1.47"
        pid = daemon.read_pid(config)
        assert pid is not None and daemon.status(config).running
        assert daemon.ensure_daemon(config).ping()  # second call finds it, starts nothing
        assert daemon.read_pid(config) == pid
        assert daemon.stop(config) == pid
        assert sorted(os.listdir(config.runtime_dir)) == ["engine.log"]
        assert "engine listening on" in config.log_path.read_text()
    finally:
        if pid is not None and daemon.lock_held(config):
            os.kill(pid, 9)
        if pid is not None:
            _reap(pid)
        shutil.rmtree(tmp)


def test_parallel_autostarts_end_with_one_daemon() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="pcrace-"))
    config = EngineConfig.load(root=tmp / "root", runtime_dir=tmp / "run", environ={})
    code = (
        "from pycompose.engine.config import EngineConfig\n"
        "from pycompose.engine.daemon import ensure_daemon\n"
        f"c = EngineConfig.load(root={str(config.root)!r}, runtime_dir={str(config.runtime_dir)!r},"
        " environ={})\n"
        "print(ensure_daemon(c).version()['ApiVersion'])\n"
    )
    try:
        procs = [
            subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
            for _ in range(4)
        ]
        outputs = [p.communicate(timeout=60)[0] for p in procs]
        assert [p.returncode for p in procs] == [0] * 4
        assert outputs == ["1.47\n"] * 4
        log = config.log_path.read_text()
        assert log.count("engine listening on") == 1, log
        pid = daemon.read_pid(config)
        assert pid is not None and daemon.stop(config) == pid
        # No daemon spawned by a losing CLI may still be starting and take over afterwards.
        time.sleep(1.5)
        assert not daemon.lock_held(config)
        assert config.log_path.read_text().count("engine listening on") == 1
    finally:
        if daemon.lock_held(config) and (pid := daemon.read_pid(config)):
            os.kill(pid, 9)
        shutil.rmtree(tmp)


def test_ensure_daemon_reports_the_log_when_start_fails() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="pcfail-"))
    (tmp / "file").write_text("not a directory")
    config = EngineConfig.load(root=tmp / "file" / "root", runtime_dir=tmp / "run", environ={})
    try:
        with pytest.raises(
            daemon.DaemonError, match=r"exited during start-up(.|\n)*Not a directory"
        ):
            daemon.ensure_daemon(config, timeout=20)
        assert not daemon.lock_held(config)
    finally:
        shutil.rmtree(tmp)


DOCKERD = shutil.which("dockerd")


@pytest.mark.skipif(DOCKERD is None, reason="Docker's daemon (Debian docker.io) is not installed")
def test_our_client_drives_a_real_dockerd() -> None:
    """A real server checks our client: version negotiation down to an older API included."""
    assert DOCKERD is not None
    tmp = Path(tempfile.mkdtemp(prefix="pcdkd-"))
    sock = tmp / "docker.sock"
    argv = [
        DOCKERD, "--data-root", str(tmp / "data"), "--exec-root", str(tmp / "exec"),
        "--pidfile", str(tmp / "pid"), "-H", f"unix://{sock}", "--bridge", "none",
        "--iptables=false", "--ip6tables=false", "--ip-masq=false",
    ]  # fmt: skip
    with open(tmp / "log", "wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    try:
        client = EngineClient(str(sock), timeout=30)
        deadline = time.monotonic() + 30
        while not client.ping():
            assert proc.poll() is None and time.monotonic() < deadline, (tmp / "log").read_text()
            time.sleep(0.1)
        version = client.version()
        assert client.api_version == min(version["ApiVersion"], "1.47", key=_vtuple)
        assert client.get("/containers/json", {"all": True}) == []
        assert client.info()["DockerRootDir"] == str(tmp / "data")
        with pytest.raises(NotFound):
            client.get("/containers/nonexistent/json")
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(tmp)


def _vtuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)
