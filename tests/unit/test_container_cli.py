"""``run``/``create`` flags -> the create request docker sends (checked against captures from
a real docker CLI), and the CLI's API calls, order and output against a recording fake
engine on a unix socket (no root, no daemon)."""

from __future__ import annotations

import json
import os
import socket
import socketserver
import struct
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlsplit

import pytest

from pycompose.cli.container_cmd import api_timestamp
from pycompose.cli.container_files import split_repo_tag, split_target
from pycompose.cli.container_opts import RunOptions, create_request
from pycompose.cli.container_parse import (
    OptionError,
    nano_cpus,
    parse_add_host,
    parse_env,
    parse_env_file,
    parse_mount,
    parse_port,
    parse_restart,
    parse_security_opts,
    parse_ulimit,
    ram_in_bytes,
)
from pycompose.cli.container_run import start_exit_code

REPO = Path(__file__).resolve().parents[2]
# Captured from the real docker CLI and dockerd by tests/fixtures/capture_docker_ref.py.
REF = REPO / "tests" / "fixtures" / "ref"


def _captured_create(name: str) -> tuple[dict[str, str], dict[str, Any]]:
    """The query and body of a captured ``POST /containers/create``."""
    request = json.loads((REF / name).read_text())
    assert request["method"] == "POST" and "/containers/create" in request["path"]
    return dict(parse_qsl(urlsplit(request["path"]).query)), request["body"]


# -- the create body ---------------------------------------------------------------------------


def test_detached_create_matches_docker_capture() -> None:
    """``docker run -d --network none busybox sleep 1000``."""
    query, body = _captured_create("create_detached.json")
    opts = RunOptions(image="busybox", command=("sleep", "1000"), detach=True, network="none",
                      environ={})
    request = create_request(opts)
    assert (request.query, request.body) == (query, body)


def test_foreground_rm_create_matches_docker_capture() -> None:
    """``docker run --rm --network none busybox echo hi``: attached stdout/stderr, AutoRemove."""
    query, body = _captured_create("create_rm.json")
    opts = RunOptions(image="busybox", command=("echo", "hi"), rm=True, network="none",
                      environ={})
    request = create_request(opts)
    assert (request.query, request.body) == (query, body)


def test_interactive_tty_flags() -> None:
    body = create_request(RunOptions(image="b", interactive=True, tty=True, environ={},
                                     console_size=(24, 80))).body
    assert (body["AttachStdin"], body["OpenStdin"], body["StdinOnce"], body["Tty"]) == (
        True, True, True, True)
    assert body["HostConfig"]["ConsoleSize"] == [24, 80]
    body = create_request(RunOptions(image="b", interactive=True, tty=True, detach=True,
                                     environ={})).body
    assert (body["AttachStdin"], body["AttachStdout"], body["OpenStdin"], body["StdinOnce"]) == (
        False, False, True, False)


def test_every_flag_lands_in_its_field(tmp_path: Path) -> None:
    envfile = tmp_path / "env"
    envfile.write_text("# c\n\nA=1\nPASS\nMISSING\n")
    opts = RunOptions(
        image="img", command=("x",), name="web1", env=("B=2", "PASS"), env_file=(str(envfile),),
        volume=("/anon", "vol:/data:ro", "/h:/c"), mount=("type=bind,src=/s,dst=/d,ro",),
        tmpfs=("/run:size=1m",), publish=("8080:80", "127.0.0.1::53/udp"), publish_all=True,
        network="mynet", entrypoint="/bin/sh", workdir="/w", user="1:2", init=True,
        restart="on-failure:3", label=("a=b", "flag"), hostname="h.example", cap_add=("NET_ADMIN",),
        cap_drop=("ALL",), privileged=True, read_only=True, memory="1g", cpus="1.5",
        pids_limit=100, ulimit=("nofile=10:20",), security_opt=("no-new-privileges",),
        add_host=("db:10.0.0.2",), dns=("9.9.9.9",), link=("other:alias",),
        stop_signal="SIGINT", stop_timeout=7, shm_size="64m", platform="linux/amd64",
        environ={"PASS": "through"},
    )
    req = create_request(opts)
    assert req.query == {"name": "web1", "platform": "linux/amd64"}
    b, h = req.body, req.body["HostConfig"]
    assert b["Env"] == ["A=1", "PASS=through", "B=2", "PASS=through"]
    assert b["Volumes"] == {"/anon": {}} and h["Binds"] == ["vol:/data:ro", "/h:/c"]
    assert h["Mounts"] == [{"Type": "bind", "Source": "/s", "Target": "/d", "ReadOnly": True}]
    assert h["Tmpfs"] == {"/run": "size=1m"}
    assert b["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}
    assert h["PortBindings"] == {"80/tcp": [{"HostIp": "", "HostPort": "8080"}],
                                 "53/udp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}
    assert h["PublishAllPorts"] is True
    assert h["NetworkMode"] == "mynet" and b["NetworkingConfig"] == {
        "EndpointsConfig": {"mynet": {}}}
    assert (b["Entrypoint"], b["WorkingDir"], b["User"], b["Hostname"]) == (
        ["/bin/sh"], "/w", "1:2", "h.example")
    assert h["Init"] is True
    assert h["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert b["Labels"] == {"a": "b", "flag": ""}
    assert (h["CapAdd"], h["CapDrop"], h["Privileged"], h["ReadonlyRootfs"]) == (
        ["NET_ADMIN"], ["ALL"], True, True)
    assert (h["Memory"], h["NanoCpus"], h["PidsLimit"]) == (1 << 30, 1_500_000_000, 100)
    assert h["Ulimits"] == [{"Name": "nofile", "Hard": 20, "Soft": 10}]
    assert h["SecurityOpt"] == ["no-new-privileges"]
    assert (h["ExtraHosts"], h["Dns"], h["Links"]) == (["db:10.0.0.2"], ["9.9.9.9"],
                                                         ["other:alias"])
    assert (b["StopSignal"], b["StopTimeout"], h["ShmSize"]) == ("SIGINT", 7, 64 << 20)


def test_empty_entrypoint_and_relative_bind() -> None:
    body = create_request(RunOptions(image="b", entrypoint="", volume=("./here:/c",),
                                     environ={})).body
    assert body["Entrypoint"] == [""]
    assert body["HostConfig"]["Binds"] == [os.path.abspath("./here") + ":/c"]


@pytest.mark.parametrize(("opts", "message"), [
    (RunOptions(image="b", rm=True, restart="always", environ={}),
     "Conflicting options: --restart and --rm"),
    (RunOptions(image="b", name="x", environ={}), "Invalid container name (x)"),
    (RunOptions(image="b", hostname="bad_host", environ={}), "invalid hostname format"),
    (RunOptions(image="b", pull="sometimes", environ={}), "invalid pull option"),
    (RunOptions(image="b", volume=("a:b:c:d",), environ={}), "invalid volume specification"),
    (RunOptions(image="b", tmpfs=("rel",), environ={}), "invalid tmpfs destination"),
    (RunOptions(image="b", memory="lots", environ={}), "invalid size"),
])
def test_refused_combinations(opts: RunOptions, message: str) -> None:
    with pytest.raises(OptionError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        create_request(opts)


# -- single parsers --------------------------------------------------------------------------------


@pytest.mark.parametrize(("spec", "expected"), [
    ("80", [("80/tcp", {"HostIp": "", "HostPort": ""})]),
    ("8080:80/udp", [("80/udp", {"HostIp": "", "HostPort": "8080"})]),
    ("0.0.0.0:1-2:3-4", [("3/tcp", {"HostIp": "0.0.0.0", "HostPort": "1"}),
                         ("4/tcp", {"HostIp": "0.0.0.0", "HostPort": "2"})]),
    ("[::1]:80:80", [("80/tcp", {"HostIp": "::1", "HostPort": "80"})]),
    ("8000-8010:80", [("80/tcp", {"HostIp": "", "HostPort": "8000-8010"})]),
])
def test_parse_port(spec: str, expected: list[tuple[str, dict[str, str]]]) -> None:
    assert parse_port(spec) == expected


@pytest.mark.parametrize("spec", ["80/xtp", "1-2:3-5", "nope:80", "1.2.3:80:80", "70000"])
def test_parse_port_refuses(spec: str) -> None:
    with pytest.raises(OptionError):
        parse_port(spec)


def test_parse_mount_kinds() -> None:
    assert parse_mount("type=volume,source=v,target=/v,volume-nocopy,volume-label=a=b") == {
        "Type": "volume", "Source": "v", "Target": "/v",
        "VolumeOptions": {"NoCopy": True, "Labels": {"a": "b"}}}
    assert parse_mount("type=tmpfs,dst=/t,tmpfs-size=1m,tmpfs-mode=1777") == {
        "Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 1 << 20, "Mode": 0o1777}}
    assert parse_mount("type=bind,src=/a,target=/b,bind-propagation=rshared,readonly=false") == {
        "Type": "bind", "Source": "/a", "Target": "/b", "ReadOnly": False,
        "BindOptions": {"Propagation": "rshared"}}
    for bad, message in (("type=bind,target=/b", "source is required"),
                         ("type=nfs,target=/b", "invalid mount type"),
                         ("src=/a", "target is required"),
                         ("target=/b,colour=red", "unexpected key"),
                         ("target=/b,junk", "invalid field")):
        with pytest.raises(OptionError, match=message):
            parse_mount(bad)


def test_sizes_limits_restart() -> None:
    assert [ram_in_bytes(s) for s in ("100", "1k", "512m", "1.5g", "2GB", "1 kb")] == [
        100, 1024, 512 << 20, 3 << 29, 2 << 30, 1024]
    assert nano_cpus("0.5") == 500_000_000
    with pytest.raises(OptionError):
        nano_cpus("x")
    assert parse_ulimit("nproc=5") == {"Name": "nproc", "Hard": 5, "Soft": 5}
    for bad in ("nofile", "bogus=1", "nofile=2:1", "nofile=a"):
        with pytest.raises(OptionError):
            parse_ulimit(bad)
    assert parse_restart("unless-stopped") == {"Name": "unless-stopped", "MaximumRetryCount": 0}
    for bad in ("sometimes", "always:3", "on-failure:x"):
        with pytest.raises(OptionError):
            parse_restart(bad)


def test_env_hosts_security(tmp_path: Path) -> None:
    assert parse_env(["A=1", "HOME", "NOPE"], {"HOME": "/root"}) == ["A=1", "HOME=/root", "NOPE"]
    bad = tmp_path / "bad.env"
    bad.write_text("SPACE KEY=1\n")
    with pytest.raises(OptionError, match="contains whitespaces"):
        parse_env_file(str(bad), {})
    with pytest.raises(OptionError, match="open"):
        parse_env_file(str(tmp_path / "missing"), {})
    assert parse_add_host("a=::1") == "a:::1"
    assert parse_add_host("gw:host-gateway") == "gw:host-gateway"
    with pytest.raises(OptionError):
        parse_add_host("a:notanip")
    profile = tmp_path / "seccomp.json"
    profile.write_text('{"defaultAction":"SCMP_ACT_ALLOW"}')
    assert parse_security_opts([f"seccomp={profile}", "label:disable", "seccomp=unconfined"]) == [
        'seccomp={"defaultAction":"SCMP_ACT_ALLOW"}', "label=disable", "seccomp=unconfined"]


def test_small_helpers() -> None:
    assert api_timestamp("10m", now=1000.0) == "400.000000000"
    assert api_timestamp("1h30m", now=10000.0) == "4600.000000000"
    assert api_timestamp("1700000000") == "1700000000.000000000"
    assert api_timestamp("2024-01-01T00:00:00Z") == "1704067200.000000000"
    assert split_target("web:/etc") == ("web", "/etc")
    assert split_target("./a:b") == (None, "./a:b")
    assert split_target("dir/x:y") == (None, "dir/x:y")
    assert split_target("-") == (None, "-")
    assert split_repo_tag("busybox:hello") == ("busybox", "hello")
    assert split_repo_tag("localhost:5000/app") == ("localhost:5000/app", "")
    assert start_exit_code('exec: "nope": executable file not found in $PATH') == 127
    assert start_exit_code("exec /etc/passwd: permission denied") == 126
    assert start_exit_code("something else") == 125


# -- the CLI against a recording fake engine ------------------------------------------------


@dataclass
class FakeEngine:
    """Answers Docker API requests from a table; records them in arrival order."""

    path: str
    calls: list[tuple[str, str, dict[str, list[str]], Any]] = field(default_factory=list)
    started: threading.Event = field(default_factory=threading.Event)
    answers: dict[tuple[str, str], Callable[[Any], tuple[int, Any]]] = field(default_factory=dict)

    def paths(self) -> list[str]:
        return [f"{m} {p}" for m, p, _, _ in self.calls if p != "/_ping"]


def _frame(stream: int, data: bytes) -> bytes:
    return struct.pack(">BxxxL", stream, len(data)) + data


def _make_handler(engine: FakeEngine) -> type[socketserver.StreamRequestHandler]:
    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            head = b""
            while b"\r\n\r\n" not in head:
                data = self.request.recv(65536)
                if not data:
                    return
                head += data
            raw_head, _, rest = head.partition(b"\r\n\r\n")
            lines = raw_head.decode().split("\r\n")
            method, target, _ = lines[0].split(" ")
            headers = {k.lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}
            length = int(headers.get("content-length", 0))
            while len(rest) < length:
                rest += self.request.recv(65536)
            url = urlsplit(target)
            path = url.path.split("/", 2)[2] if url.path.startswith("/v1.") else url.path[1:]
            path = "/" + path
            body = json.loads(rest) if rest and headers.get("content-type") == "application/json" \
                else rest
            engine.calls.append((method, path, parse_qs(url.query), body))
            self.answer(method, path, body)

        def send(self, status: int, payload: Any, ctype: str = "application/json") -> None:
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            if status == 204:
                data = b""
            self.request.sendall(
                f"HTTP/1.1 {status} X\r\nApi-Version: 1.47\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(data)}\r\n\r\n".encode() + data)

        def answer(self, method: str, path: str, body: Any) -> None:
            if path == "/_ping":
                self.send(200, b"OK", "text/plain")
                return
            if path.startswith("/exec/") and path.endswith("/start") and not body.get("Detach"):
                engine.started.set()
                path = "/containers/x/attach"
            if path.endswith("/attach"):
                self.request.sendall(b"HTTP/1.1 101 UPGRADED\r\nContent-Type: "
                                     b"application/vnd.docker.multiplexed-stream\r\n"
                                     b"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
                engine.started.wait(10)
                self.request.sendall(_frame(1, b"out\n") + _frame(2, b"err\n"))
                self.request.shutdown(socket.SHUT_WR)
                return
            if path.endswith("/start"):
                engine.started.set()
            for (m, prefix), answer in engine.answers.items():
                if m == method and path.startswith(prefix):
                    status, payload = answer(body)
                    self.send(status, payload)
                    return
            self.send(204, b"")

    return Handler


@pytest.fixture
def fake() -> Iterator[FakeEngine]:
    tmp = tempfile.mkdtemp(prefix="pcfake-")
    engine = FakeEngine(os.path.join(tmp, "api.sock"))
    server = socketserver.ThreadingUnixStreamServer(engine.path, _make_handler(engine))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield engine
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
        os.unlink(engine.path)
        os.rmdir(tmp)


def pc(engine: FakeEngine, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "PYCOMPOSE_HOST": f"unix://{engine.path}",
           "PYCOMPOSE_RUNTIME_DIR": os.path.dirname(engine.path), "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "pycompose.cli.main", *args],
                          capture_output=True, env=env, timeout=30, stdin=subprocess.DEVNULL)


CID = "c" * 64


def test_run_attaches_and_waits_before_start(fake: FakeEngine) -> None:
    fake.answers[("POST", "/containers/create")] = lambda body: (201, {"Id": CID,
                                                                       "Warnings": []})
    fake.answers[("POST", f"/containers/{CID}/wait")] = lambda body: (200, {"StatusCode": 3})
    result = pc(fake, "run", "--rm", "--name", "n1", "busybox", "sh", "-c", "x")
    assert (result.returncode, result.stdout, result.stderr) == (3, b"out\n", b"err\n")
    assert fake.paths() == ["POST /containers/create", f"POST /containers/{CID}/attach",
                            f"POST /containers/{CID}/wait", f"POST /containers/{CID}/start"]
    _, _, query, body = fake.calls[1]
    assert query == {"name": ["n1"]} and body["Cmd"] == ["sh", "-c", "x"]
    assert body["HostConfig"]["AutoRemove"] is True
    assert fake.calls[3][2] == {"condition": ["removed"]}
    assert fake.calls[2][2] == {"stream": ["1"], "stdin": ["0"], "stdout": ["1"], "stderr": ["1"]}


def test_run_pulls_a_missing_image_then_detaches(fake: FakeEngine) -> None:
    tries = []

    def create(body: Any) -> tuple[int, Any]:
        tries.append(body)
        if len(tries) == 1:
            return 404, {"message": "No such image: busybox:latest"}
        return 201, {"Id": CID, "Warnings": ["careful"]}

    fake.answers[("POST", "/containers/create")] = create
    fake.answers[("POST", "/images/create")] = lambda body: (200, b'{"status":"Pulling fs"}\n'
                                                            b'{"status":"Done","id":"abc"}\n')
    result = pc(fake, "run", "-d", "busybox")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{CID}\n".encode()
    assert result.stderr.decode().splitlines() == [
        "Unable to find image 'busybox:latest' locally", "Pulling fs", "abc: Done",
        "WARNING: careful"]
    assert fake.paths() == ["POST /containers/create", "POST /images/create",
                            "POST /containers/create", f"POST /containers/{CID}/start"]
    assert fake.calls[2][2]["fromImage"] == ["docker.io/library/busybox"]


def test_daemon_errors_are_one_line_with_docker_exit_codes(fake: FakeEngine) -> None:
    fake.answers[("POST", "/containers/create")] = lambda body: (
        400, {"message": "Memory=1 is not supported"})
    result = pc(fake, "run", "busybox")
    assert result.returncode == 125
    assert result.stderr == b"Error response from daemon: Memory=1 is not supported\n"
    fake.answers[("DELETE", "/containers/gone")] = lambda body: (
        404, {"message": "No such container: gone"})
    result = pc(fake, "rm", "-f", "ok1", "gone", "ok2")
    assert (result.returncode, result.stdout) == (1, b"ok1\nok2\n")
    assert result.stderr == b"Error response from daemon: No such container: gone\n"
    assert fake.calls[-1][2] == {"force": ["1"]}


def test_ps_renders_the_list_api(fake: FakeEngine) -> None:
    listing = json.loads((REF / "list.json").read_text())
    fake.answers[("GET", "/containers/json")] = lambda body: (200, listing)
    result = pc(fake, "ps", "-a", "-n", "3", "--filter", "name=xx", "--format",
                "{{.ID}} {{.Names}} {{.Command}} {{.Networks}}")
    assert result.stdout == b'aa9e0498bb64 xx "sleep 1000" none\n', result.stderr
    assert fake.calls[-1][2] == {"all": ["1"], "limit": ["3"], "filters": ['{"name": ["xx"]}']}
    lines = pc(fake, "ps").stdout.decode().splitlines()
    assert lines[0].startswith("CONTAINER ID   IMAGE     COMMAND        CREATED   ")
    # STATUS is as wide as the captured "Up Less than a second".
    assert lines[0].endswith("   STATUS" + " " * 18 + "PORTS     NAMES")
    assert lines[1].startswith('aa9e0498bb64   busybox   "sleep 1000"   ')
    assert lines[1].endswith("xx")


def test_stop_kill_logs_queries(fake: FakeEngine) -> None:
    assert pc(fake, "stop", "-t", "4", "a").stdout == b"a\n"
    assert fake.calls[-1][:3] == ("POST", "/containers/a/stop", {"t": ["4"]})
    assert pc(fake, "kill", "-s", "HUP", "a").stdout == b"a\n"
    assert fake.calls[-1][2] == {"signal": ["HUP"]}
    fake.answers[("GET", "/containers/a/json")] = lambda body: (
        200, {"Id": CID, "Config": {"Tty": False}})
    fake.answers[("GET", f"/containers/{CID}/logs")] = lambda body: (
        200, _frame(1, b"l1\n") + _frame(2, b"l2\n"))
    result = pc(fake, "logs", "--tail", "5", "-t", "--since", "1700000000", "a")
    assert (result.stdout, result.stderr) == (b"l1\n", b"l2\n")
    assert fake.calls[-1][2] == {"stdout": ["1"], "stderr": ["1"], "tail": ["5"],
                                 "timestamps": ["1"], "since": ["1700000000.000000000"]}


def test_exec_creates_starts_and_exits_with_the_process_status(fake: FakeEngine) -> None:
    fake.answers[("POST", "/containers/web/exec")] = lambda body: (201, {"Id": "e1"})
    fake.answers[("GET", "/exec/e1/json")] = lambda body: (200, {"ExitCode": 5,
                                                                 "Running": False})
    result = pc(fake, "exec", "-e", "A=1", "-u", "nobody", "-w", "/tmp", "--privileged",
                "web", "sh", "-c", "x")
    assert (result.returncode, result.stdout, result.stderr) == (5, b"out\n", b"err\n")
    assert fake.paths() == ["POST /containers/web/exec", "POST /exec/e1/start",
                            "GET /exec/e1/json"]
    assert fake.calls[1][3] == {
        "User": "nobody", "Privileged": True, "Tty": False, "AttachStdin": False,
        "AttachStderr": True, "AttachStdout": True, "Detach": False, "DetachKeys": "",
        "Env": ["A=1"], "WorkingDir": "/tmp", "Cmd": ["sh", "-c", "x"]}
    assert fake.calls[2][3] == {"Detach": False, "Tty": False}
    result = pc(fake, "exec", "-d", "web", "true")
    assert result.returncode == 0 and fake.calls[-1][3] == {"Detach": True, "Tty": False}


def test_bad_run_flags_exit_125_in_one_line(fake: FakeEngine) -> None:
    for args in (("run",), ("run", "--bogus", "busybox"), ("create", "--pids-limit", "x", "b"),
                 ("run", "-p", "99999", "busybox"), ("run", "--ulimit", "nofile", "busybox")):
        result = pc(fake, *args)
        lines = result.stderr.decode().splitlines()
        assert result.returncode == 125 and len(lines) == 1, (args, lines)
    assert fake.paths() == []  # nothing was sent


def test_more_run_flags(tmp_path: Path) -> None:
    labels = tmp_path / "labels"
    labels.write_text("# c\nfrom.file=1\nbare\n")
    opts = RunOptions(
        image="b", expose=("80", "9000-9001/udp"), label_file=(str(labels),), label=("x=y",),
        dns_search=("example.org",), dns_option=("ndots:2",), group_add=("audio",),
        sysctl=("net.core.somaxconn=1024",), volumes_from=("other:ro",), log_driver="none",
        log_opt=("max-size=1m",), health_cmd="true", health_interval="1m30s",
        health_timeout="500ms", health_retries=3, environ={})
    body = create_request(opts).body
    host = body["HostConfig"]
    assert body["ExposedPorts"] == {"80/tcp": {}, "9000/udp": {}, "9001/udp": {}}
    assert body["Labels"] == {"from.file": "1", "bare": "", "x": "y"}
    assert (host["DnsSearch"], host["DnsOptions"], host["GroupAdd"]) == (
        ["example.org"], ["ndots:2"], ["audio"])
    assert host["Sysctls"] == {"net.core.somaxconn": "1024"}
    assert host["VolumesFrom"] == ["other:ro"]
    assert host["LogConfig"] == {"Type": "none", "Config": {"max-size": "1m"}}
    assert body["Healthcheck"] == {"Test": ["CMD-SHELL", "true"], "Interval": 90_000_000_000,
                                   "Timeout": 500_000_000, "Retries": 3}  # as docker's CLI
    body = create_request(RunOptions(image="b", no_healthcheck=True, environ={})).body
    assert body["Healthcheck"] == {"Test": ["NONE"]}
    for bad in (RunOptions(image="b", no_healthcheck=True, health_cmd="x", environ={}),
                RunOptions(image="b", health_interval="soon", environ={}),
                RunOptions(image="b", sysctl=("novalue",), environ={}),
                RunOptions(image="b", expose=("http",), environ={})):
        with pytest.raises(OptionError):
            create_request(bad)


def test_detach_keys_reach_the_engine(fake: FakeEngine) -> None:
    fake.answers[("POST", "/containers/create")] = lambda body: (201, {"Id": CID})
    fake.answers[("POST", f"/containers/{CID}/wait")] = lambda body: (200, {"StatusCode": 0})
    result = pc(fake, "run", "--detach-keys", "ctrl-x,x", "busybox")
    assert result.returncode == 0, result.stderr
    attach = next(c for c in fake.calls if c[1].endswith("/attach"))
    assert attach[2]["detachKeys"] == ["ctrl-x,x"]
