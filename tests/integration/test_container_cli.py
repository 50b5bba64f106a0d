"""``pycompose container ...`` and the top-level aliases run as a user would, against a real
isolated dockerd and against our own engine.

Every test runs on both targets.
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import pty
import select
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import termios
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.fixtures.dockerd import load_busybox, start_dockerd, stop_dockerd

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Target:
    """A daemon our CLI is pointed at."""

    kind: str
    host: str
    tmp: Path
    made: list[str] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        return {**os.environ, "PYCOMPOSE_HOST": self.host,
                "PYCOMPOSE_RUNTIME_DIR": str(self.tmp / "run"),
                "PYCOMPOSE_ROOT": str(self.tmp / "state"),
                "PYCOMPOSE_CONFIG_DIR": str(self.tmp / "config"),
                "DOCKER_CONFIG": str(self.tmp / "docker-config"),
                "PYTHONPATH": str(REPO)}

    def pc(self, *args: str, stdin: bytes | None = None, timeout: float = 60,
           cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
        """Run ``pycompose ARGS`` against this target."""
        return subprocess.run([sys.executable, "-m", "pycompose.cli.main", *args],
                              input=stdin, capture_output=True, env=self.env(),
                              timeout=timeout, cwd=cwd)

    def name(self) -> str:
        """A fresh container name, removed at the end of the test."""
        name = f"pct-{uuid.uuid4().hex[:10]}"
        self.made.append(name)
        return name


@pytest.fixture(scope="module", params=["dockerd", "engine"])
def daemon(request: pytest.FixtureRequest) -> Iterator[Target]:
    """The daemon under test, busybox loaded as ``busybox`` and ``busybox:1.28``."""
    tmp = Path(tempfile.mkdtemp(prefix="pcctl-"))
    try:
        if request.param == "dockerd":
            dockerd = start_dockerd()
            try:
                load_busybox(dockerd, "busybox:1.28")
                yield Target("dockerd", dockerd.host, tmp)
            finally:
                stop_dockerd(dockerd)
            return
        from tests.fixtures.engine import load_busybox_tagged, start_engine, stop_engine

        engine = start_engine(components=())
        try:
            load_busybox_tagged(engine, "busybox:1.28")
            yield Target("engine", engine.host, tmp)
        finally:
            stop_engine(engine)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def t(daemon: Target) -> Iterator[Target]:
    """The daemon, with the containers a test names removed afterwards."""
    yield daemon
    if daemon.made:
        daemon.pc("rm", "-f", *daemon.made)
        daemon.made.clear()


def skip_unless_served(t: Target, method: str, path: str) -> None:
    """Skip on our engine while it has no route for ``method path`` (it answers "page not
    found"); such tests turn on by themselves when the route lands. Never skips dockerd."""
    if t.kind != "engine":
        return
    from pycompose.engine.client import EngineClient
    from pycompose.engine.errors import EngineError

    client = EngineClient(t.host[len("unix://"):])
    try:
        client.call(method, path.replace("{id}", "pct-no-such-container"))
    except EngineError as err:
        if "page not found" in str(err):
            pytest.skip(f"the engine does not serve {method} {path} yet")


def ok(result: subprocess.CompletedProcess[bytes]) -> str:
    assert result.returncode == 0, (result.returncode, result.stderr.decode())
    return result.stdout.decode()


def fails(result: subprocess.CompletedProcess[bytes], code: int = 1) -> str:
    """The one-line error of a failed command (and no traceback)."""
    err = result.stderr.decode()
    assert result.returncode == code, (result.returncode, err)
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def until(check: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def on_pty(t: Target, args: list[str],
           script: list[tuple[bytes, bytes | Callable[[int], None]]],
           timeout: float = 20, shell: str | None = None) -> tuple[bytes, int]:
    """Run ``pycompose ARGS`` (or the ``shell`` command line) on a new 24x80 pty: for each
    (wait_for, send) pair, wait until the output shows ``wait_for`` then type ``send`` (or
    call it with the master fd). Returns all output and the exit code."""
    argv = [sys.executable, "-m", "pycompose.cli.main", *args]
    if shell is not None:
        argv = ["/bin/sh", "-c", shell]
    pid, fd = pty.fork()
    if pid == 0:  # the child: become the CLI, on a terminal of a real size
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        os.execve(argv[0], argv, t.env())
    out = b""
    deadline = time.monotonic() + timeout
    steps = list(script)
    try:
        while time.monotonic() < deadline:
            if steps and steps[0][0] in out:
                action = steps.pop(0)[1]
                if callable(action):
                    action(fd)
                else:
                    os.write(fd, action)
            ready, _, _ = select.select([fd], [], [], 0.1)
            if not ready:
                continue
            try:
                data = os.read(fd, 4096)
            except OSError:
                break
            if not data:
                break
            out += data
    finally:
        os.close(fd)
        if time.monotonic() >= deadline:
            os.kill(pid, 9)
        _, status = os.waitpid(pid, 0)
    return out, os.waitstatus_to_exitcode(status)


# -- run ------------------------------------------------------------------------------------------


@pytest.mark.root
def test_run_streams_and_exit_codes(t: Target) -> None:
    result = t.pc("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert result.returncode == 3
    assert result.stdout == b"out\n"
    assert result.stderr == b"err\n"
    assert ok(t.pc("run", "--rm", "busybox", "echo", "hi")) == "hi\n"
    assert ok(t.pc("run", "--rm", "-i", "busybox", "cat", stdin=b"piped in\n")) == "piped in\n"


@pytest.mark.root
def test_run_forwards_signals_to_the_container(t: Target) -> None:
    script = 'trap "echo got TERM; exit 9" TERM; echo ready; while true; do sleep 0.1; done'
    proc = subprocess.Popen([sys.executable, "-m", "pycompose.cli.main", "run", "--rm",
                             "busybox", "sh", "-c", script], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=t.env())
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"ready\n"
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert (proc.returncode, out) == (9, b"got TERM\n"), err


@pytest.mark.root
def test_run_start_failures_exit_like_docker(t: Target) -> None:
    before = ok(t.pc("ps", "-aq"))
    line = fails(t.pc("run", "--rm", "busybox", "no-such-command"), 127)
    assert line.startswith("Error response from daemon: ")
    fails(t.pc("run", "--rm", "busybox", "/etc/passwd"), 126)
    until(lambda: ok(t.pc("ps", "-aq")) == before)  # --rm: failed containers go too
    line = fails(t.pc("run", "--rm", "--pull", "never", "nosuchimage:nope", "true"), 125)
    assert line.startswith("Error response from daemon: ") and "nosuchimage" in line
    line = fails(t.pc("run", "--rm", "--restart", "always", "busybox", "true"), 125)
    assert line == "Conflicting options: --restart and --rm"
    assert fails(t.pc("run", "--name", "x", "busybox", "true"), 125).startswith(
        "Invalid container name (x)")


@pytest.mark.root
def test_run_rm_removes_and_detach_prints_id(t: Target) -> None:
    name = t.name()
    ok(t.pc("run", "--rm", "--name", name, "busybox", "true"))
    assert ok(t.pc("ps", "-aq", "--filter", f"name={name}")) == ""
    ident = ok(t.pc("run", "-d", "--name", name, "busybox", "sleep", "60")).strip()
    assert len(ident) == 64
    assert ok(t.pc("inspect", "-f", "{{.Id}} {{.State.Running}}", name)).split() == [
        ident, "true"]


@pytest.mark.root
def test_run_flags_reach_the_container(t: Target, tmp_path: Path) -> None:
    envfile = tmp_path / "env"
    envfile.write_text("# comment\nFROM_FILE=1\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "hello").write_text("bound\n")
    script = ("echo $FOO $FROM_FILE; pwd; id -u; hostname; cat /data/hello; "
              "cat /etc/hosts | grep -c myhost; mount | grep -c ' /scratch '; "
              "touch /x 2>/dev/null || echo ro")
    out = ok(t.pc("run", "--rm", "-e", "FOO=bar", "--env-file", str(envfile), "-w", "/tmp",
                  "-u", "65534", "-h", "box1", "-v", f"{tmp_path / 'data'}:/data:ro",
                  "--tmpfs", "/scratch", "--add-host", "myhost:10.1.2.3", "--read-only",
                  "--network", "none", "busybox", "sh", "-c", script))
    assert out.split("\n")[:-1] == ["bar 1", "/tmp", "65534", "box1", "bound", "1", "1", "ro"]
    out = ok(t.pc("run", "--rm", "--entrypoint", "echo", "busybox", "from", "entrypoint"))
    assert out == "from entrypoint\n"


@pytest.mark.root
def test_create_flags_in_host_config(t: Target) -> None:
    name = t.name()
    ok(t.pc("create", "--name", name, "--label", "a=b", "-l", "c", "--memory", "64m",
            "--pids-limit", "50", "--ulimit", "nofile=512:1024", "--cap-drop", "NET_RAW",
            "--restart", "on-failure:2", "--stop-signal", "SIGUSR1", "--stop-timeout", "3",
            "--shm-size", "8m", "--mount", "type=tmpfs,target=/t,tmpfs-size=1m",
            "--network", "none", "busybox", "true"))
    fmt = ("{{json .Config.Labels}}|{{.HostConfig.Memory}}|{{.HostConfig.PidsLimit}}|"
           "{{range .HostConfig.Ulimits}}{{.Name}}={{.Soft}}:{{.Hard}}{{end}}|"
           "{{json .HostConfig.CapDrop}}|{{.HostConfig.RestartPolicy.Name}}:"
           "{{.HostConfig.RestartPolicy.MaximumRetryCount}}|{{.Config.StopSignal}}|"
           "{{.Config.StopTimeout}}|{{.HostConfig.ShmSize}}|"
           "{{(index .HostConfig.Mounts 0).Target}}|{{.State.Status}}")
    out = ok(t.pc("container", "inspect", "--format", fmt, name)).strip()
    assert out == ('{"a":"b","c":""}|67108864|50|nofile=512:1024|["NET_RAW"]|on-failure:2|'
                   "SIGUSR1|3|8388608|/t|created")


# -- ps, logs, top, inspect ---------------------------------------------------------------------


@pytest.mark.root
def test_ps_table_quiet_json_and_filters(t: Target) -> None:
    running, exited = t.name(), t.name()
    rid = ok(t.pc("run", "-d", "--name", running, "-l", "k=v", "busybox", "sleep", "60")).strip()
    ok(t.pc("run", "--name", exited, "busybox", "true"))
    lines = ok(t.pc("ps")).splitlines()
    assert lines[0].split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS",
                                "PORTS", "NAMES"]
    assert lines[0].startswith("CONTAINER ID   IMAGE     COMMAND ")
    row = next(line for line in lines if line.endswith(running))
    assert row.startswith(rid[:12] + "   busybox   \"sleep 60\"")
    assert "Up " in row
    assert not any(line.endswith(exited) for line in lines)
    assert ok(t.pc("ps", "-q", "--filter", f"name={running}")) == rid[:12] + "\n"
    assert ok(t.pc("ps", "-q", "--no-trunc", "--filter", "label=k=v")) == rid + "\n"
    out = ok(t.pc("ps", "-a", "--filter", f"name={exited}", "--format",
                  "{{.Names}} {{.State}} {{.Status}}"))
    assert out.startswith(f"{exited} exited Exited (0) ")
    doc = json.loads(ok(t.pc("container", "ls", "--format", "json", "--filter",
                             f"name={running}")))
    assert doc["Names"] == running and doc["Command"] == '"sleep 60"' and doc["Labels"] == "k=v"
    table = ok(t.pc("ps", "-a", "--filter", f"name={exited}", "--format",
                    "table {{.Names}}\t{{.Image}}"))
    assert table.splitlines() == ["NAMES" + " " * (max(10, len(exited) + 3) - 5) + "IMAGE",
                                  exited.ljust(max(10, len(exited) + 3)) + "busybox"]
    assert ok(t.pc("ps", "-l", "-q")) != ""
    assert len(ok(t.pc("ps", "-a", "-n", "1", "-q")).split()) == 1


@pytest.mark.root
def test_logs_options(t: Target) -> None:
    name = t.name()
    ok(t.pc("run", "--name", name, "busybox", "sh", "-c",
            "echo one; echo two >&2; sleep 0.3; echo three"))
    result = t.pc("logs", name)
    assert result.stdout == b"one\nthree\n" and result.stderr == b"two\n"
    assert ok(t.pc("logs", "--tail", "1", name)) == "three\n"
    stamped = ok(t.pc("logs", "-t", name)).splitlines()
    assert stamped[0].endswith(" one") and stamped[0][:4].isdigit() and "T" in stamped[0]
    assert ok(t.pc("logs", "--since", "1h", name)) == "one\nthree\n"
    assert ok(t.pc("logs", "--until", "2000-01-01T00:00:00Z", name)) == ""
    follow = t.name()
    ok(t.pc("run", "-d", "--name", follow, "busybox", "sh", "-c", "echo a; sleep 1; echo b"))
    assert ok(t.pc("logs", "-f", follow, timeout=30)) == "a\nb\n"


@pytest.mark.root
def test_top_and_inspect(t: Target) -> None:
    name = t.name()
    ok(t.pc("run", "-d", "--name", name, "-l", "z=1", "-l", "a=2", "busybox", "sleep", "60"))
    lines = ok(t.pc("top", name)).splitlines()
    assert lines[0].split()[:3] == ["UID", "PID", "PPID"] and lines[0].startswith("UID" + " " * 17)
    assert lines[1].endswith("sleep 60")
    doc = json.loads(ok(t.pc("inspect", name)))
    assert isinstance(doc, list) and doc[0]["Name"] == f"/{name}"
    pid = ok(t.pc("inspect", "-f", "{{.State.Pid}}", name)).strip()
    assert pid.isdigit() and int(pid) == doc[0]["State"]["Pid"]
    assert json.loads(ok(t.pc("inspect", "-f", "{{json .Config}}", name)))["Cmd"] == [
        "sleep", "60"]
    out = ok(t.pc("inspect", "-f", "{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}",
                  name))
    assert out == "a=2;z=1;\n"
    assert ok(t.pc("inspect", "-f", "{{.NetworkSettings.IPAddress}}", name)) == (
        doc[0]["NetworkSettings"].get("IPAddress", "") + "\n")  # a Go string: zero ""
    result = t.pc("inspect", name, "no-such-thing-here")
    assert result.returncode == 1 and json.loads(result.stdout)[0]["Name"] == f"/{name}"
    assert result.stderr.decode().strip() == "Error: No such object: no-such-thing-here"
    assert fails(t.pc("container", "inspect", "nope-x")) == (
        "Error response from daemon: No such container: nope-x")
    assert fails(t.pc("inspect", "-f", "{{.State.Pid", name)).startswith("template")


# -- exec and the tty ------------------------------------------------------------------------------


@pytest.mark.root
def test_exec(t: Target) -> None:
    name = t.name()
    ok(t.pc("run", "-d", "--name", name, "busybox", "sleep", "60"))
    result = t.pc("exec", "-e", "A=1", "-w", "/tmp", "-u", "65534", name, "sh", "-c",
                  "echo $A $(pwd) $(id -u); echo e >&2; exit 7")
    assert (result.returncode, result.stdout, result.stderr) == (7, b"1 /tmp 65534\n", b"e\n")
    assert ok(t.pc("exec", "-i", name, "cat", stdin=b"piped\n")) == "piped\n"
    ok(t.pc("exec", "-d", name, "touch", "/tmp/detached"))
    until(lambda: t.pc("exec", name, "test", "-e", "/tmp/detached").returncode == 0)
    ok(t.pc("stop", "-t", "1", name))
    line = fails(t.pc("exec", name, "true"))
    assert line.startswith("Error response from daemon: ") and "not running" in line


@pytest.mark.root
def test_run_it_and_exec_it_on_a_pty(t: Target) -> None:
    name = "test"  # the tutorial's "run --rm -it --name test busybox:1.28"
    t.made.append(name)
    def grow(fd: int) -> None:  # the CLI gets SIGWINCH and resizes the container's tty
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
        time.sleep(0.5)
        os.write(fd, b"stty size\r")

    out, code = on_pty(t, ["run", "--rm", "-it", "--name", name, "busybox:1.28", "sh"],
                       [(b"# ", b"echo $((6*7)); tty; stty size\r"), (b"24 80", grow),
                        (b"30 100", b"exit 5\r")])
    assert code == 5, out
    assert b"42" in out and b"/dev/pts/" in out and b"30 100" in out
    assert ok(t.pc("ps", "-aq", "--filter", f"name={name}")) == ""
    ok(t.pc("run", "-itd", "--name", name, "busybox"))
    out, code = on_pty(t, ["exec", "-it", name, "sh"],
                       [(b"# ", b"echo $((7*6)) inside\r"), (b"42 inside", b"exit\r")])
    assert code == 0 and b"42 inside" in out
    assert fails(t.pc("exec", "-it", name, "sh")) == "the input device is not a TTY"


@pytest.mark.root
def test_run_it_detach_keys_leave_it_running(t: Target) -> None:
    name = t.name()
    out, code = on_pty(t, ["run", "-it", "--name", name, "busybox", "sh"],
                       [(b"# ", b"\x10\x11")])
    assert code == 0, out
    assert ok(t.pc("inspect", "-f", "{{.State.Running}}", name)) == "true\n"


@pytest.mark.root
def test_run_it_raw_mode_then_restores_the_terminal(t: Target) -> None:
    cli = f"{sys.executable} -m pycompose.cli.main"
    seen: list[int] = []

    def check_raw(fd: int) -> None:  # the master shows the slave's modes
        seen.append(termios.tcgetattr(fd)[3])
        os.write(fd, b"exit 0\r")

    shell = f"stty -g; {cli} run --rm -it busybox sh; echo rc=$?; stty -g"
    out, code = on_pty(t, [], [(b"# ", check_raw)], shell=shell)
    assert code == 0, out
    lines = out.decode().split("\r\n")
    assert "rc=0" in lines, out
    saved, restored = lines[0].strip(), lines[lines.index("rc=0") + 1].strip()
    assert saved and saved == restored
    assert seen and not seen[0] & (termios.ICANON | termios.ECHO)


@pytest.mark.root
def test_run_pulls_a_missing_image(t: Target) -> None:
    from tests.fixtures import registry as fx
    from tests.fixtures.images import busybox_oci_layout

    tmp = Path(tempfile.mkdtemp(prefix="pcpull-"))
    try:
        layout = busybox_oci_layout(tmp / "layout")
        with fx.run_registry() as server:
            fx.skopeo_copy(layout, server, "pulled/busybox", "v1")
            image = f"{server.host}/pulled/busybox:v1"
            result = t.pc("run", "--rm", image, "echo", "pulled", timeout=120)
            assert (result.returncode, result.stdout) == (0, b"pulled\n"), result.stderr
            err = result.stderr.decode().splitlines()
            assert err[0] == f"Unable to find image '{image}' locally"
            assert any("Pull complete" in line or "Downloaded" in line for line in err)
            result = t.pc("run", "--rm", "--pull", "never", image, "true")
            assert (result.returncode, result.stderr) == (0, b"")
            result = t.pc("run", "--rm", "--pull", "always", image, "true", timeout=120)
            assert result.returncode == 0 and b"Digest: sha256:" in result.stderr
            t.pc("rmi", image)
    finally:
        shutil.rmtree(tmp)


@pytest.mark.root
def test_published_ports_in_ps_and_inspect(t: Target) -> None:
    name = t.name()
    result = t.pc("create", "--name", name, "-p", "127.0.0.1:18089:80", "-p", "9090/udp",
                  "busybox", "sleep", "60")
    if t.kind == "engine" and b"is not supported by this engine" in result.stderr:
        pytest.skip(f"the engine refuses published ports: {result.stderr.decode().strip()}")
    ok(result)
    fmt = "{{json .HostConfig.PortBindings}}|{{json .Config.ExposedPorts}}"
    bindings, exposed = ok(t.pc("inspect", "-f", fmt, name)).strip().split("|")
    assert json.loads(bindings) == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "18089"}],
                                    "9090/udp": [{"HostIp": "", "HostPort": ""}]}
    assert json.loads(exposed) == {"80/tcp": {}, "9090/udp": {}}


@pytest.mark.root
def test_create_start_attach(t: Target) -> None:
    name = t.name()
    ident = ok(t.pc("create", "--name", name, "busybox", "sh", "-c", "echo started; exit 2"))
    assert len(ident.strip()) == 64
    result = t.pc("start", "-a", name)
    assert (result.returncode, result.stdout) == (2, b"started\n")
    ok(t.pc("rm", name))
    ok(t.pc("run", "-d", "--name", name, "busybox", "sh", "-c", "sleep 1; echo late; exit 3"))
    result = t.pc("attach", name)
    assert (result.returncode, result.stdout) == (3, b"late\n")
    assert fails(t.pc("attach", name)) == (
        "You cannot attach to a stopped container, start it first")


# -- lifecycle ------------------------------------------------------------------------------------


@pytest.mark.root
def test_stop_kill_restart_pause_wait_rename_rm(t: Target) -> None:
    name, new = t.name(), t.name()
    ok(t.pc("run", "-d", "--name", name, "busybox", "sleep", "600"))
    assert ok(t.pc("pause", name)) == f"{name}\n"
    assert "(Paused)" in ok(t.pc("ps", "--filter", f"name={name}", "--format", "{{.Status}}"))
    assert ok(t.pc("unpause", name)) == f"{name}\n"
    assert ok(t.pc("restart", "-t", "1", name)) == f"{name}\n"
    assert ok(t.pc("kill", "-s", "KILL", name)) == f"{name}\n"
    assert ok(t.pc("wait", name)) == "137\n"
    ok(t.pc("rename", name, new))
    assert ok(t.pc("start", new)) == f"{new}\n"
    start = time.monotonic()
    assert ok(t.pc("stop", "-t", "1", new)) == f"{new}\n"
    assert time.monotonic() - start < 20
    assert ok(t.pc("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", new)) == (
        "exited 137\n")
    ok(t.pc("start", new))
    line = fails(t.pc("rm", new))
    assert line.startswith("Error response from daemon: ")
    result = t.pc("rm", "-f", new, "not-a-container-x")
    assert result.returncode == 1 and result.stdout == f"{new}\n".encode()
    assert result.stderr.decode().strip() == (
        "Error response from daemon: No such container: not-a-container-x")
    other = t.name()
    ok(t.pc("create", "--name", other, "busybox"))
    assert ok(t.pc("container", "rm", "-v", other)) == f"{other}\n"


@pytest.mark.root
def test_prune(t: Target) -> None:
    name = t.name()
    ident = ok(t.pc("create", "--name", name, "--label", "prune-me=1", "busybox")).strip()
    out = ok(t.pc("container", "prune", "-f", "--filter", "label=prune-me=1"))
    assert out.splitlines()[:2] == ["Deleted Containers:", ident]
    assert out.splitlines()[-1].startswith("Total reclaimed space: ")


# -- files and images ------------------------------------------------------------------------------


@pytest.mark.root
def test_cp_both_ways_and_export(t: Target, tmp_path: Path) -> None:
    skip_unless_served(t, "GET", "/containers/{id}/archive?path=/")
    skip_unless_served(t, "GET", "/containers/{id}/export")
    name = t.name()
    ok(t.pc("run", "-d", "--name", name, "busybox", "sleep", "60"))
    (tmp_path / "f.txt").write_text("hello\n")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "inner").write_text("in\n")
    ok(t.pc("cp", str(tmp_path / "f.txt"), f"{name}:/tmp/"))
    ok(t.pc("cp", str(tmp_path / "dir"), f"{name}:/tmp/renamed"))
    ok(t.pc("cp", str(tmp_path / "f.txt"), f"{name}:/tmp/g.txt"))
    assert ok(t.pc("exec", name, "cat", "/tmp/f.txt", "/tmp/renamed/inner", "/tmp/g.txt")) == (
        "hello\nin\nhello\n")
    ok(t.pc("cp", f"{name}:/tmp/renamed", str(tmp_path / "back")))
    ok(t.pc("cp", f"{name}:/tmp/g.txt", str(tmp_path / "dir")))
    assert (tmp_path / "back" / "inner").read_text() == "in\n"
    assert (tmp_path / "dir" / "g.txt").read_text() == "hello\n"
    raw = t.pc("cp", f"{name}:/tmp/f.txt", "-").stdout
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        assert tar.getnames() == ["f.txt"]
    line = fails(t.pc("cp", f"{name}:/no/such", str(tmp_path / "x")))
    assert "no/such" in line
    exported = t.pc("export", name).stdout
    with tarfile.open(fileobj=io.BytesIO(exported)) as tar:
        assert "bin/busybox" in tar.getnames()
    ok(t.pc("container", "export", "-o", str(tmp_path / "fs.tar"), name))
    assert tarfile.is_tarfile(tmp_path / "fs.tar")


@pytest.mark.root
def test_commit_then_run_the_new_image(t: Target) -> None:
    skip_unless_served(t, "POST", "/commit?container={id}")
    name = t.name()
    tag = f"busybox:hello-{uuid.uuid4().hex[:6]}"
    ok(t.pc("run", "--name", name, "busybox", "sh", "-c", "echo committed > /greeting"))
    ident = ok(t.pc("commit", "-m", "a message", "-a", "me", "-c", "ENV GREETING=hi",
                    name, tag)).strip()
    assert ident.startswith("sha256:")
    try:
        out = ok(t.pc("run", "--rm", tag, "sh", "-c", "cat /greeting; echo $GREETING"))
        assert out == "committed\nhi\n"
    finally:
        t.pc("rmi", tag)


@pytest.mark.root
def test_explicit_host_flag_and_unreachable_host(t: Target, tmp_path: Path) -> None:
    env = {k: v for k, v in t.env().items() if k != "PYCOMPOSE_HOST"}
    result = subprocess.run([sys.executable, "-m", "pycompose.cli.main", "container", "run",
                             "-H", t.host, "--rm", "busybox", "echo", "via -H"],
                            capture_output=True, env=env, timeout=60)
    assert result.stdout == b"via -H\n", result.stderr
    bad = f"unix://{tmp_path}/nothing.sock"
    result = subprocess.run([sys.executable, "-m", "pycompose.cli.main", "ps", "-H", bad],
                            capture_output=True, env=env, timeout=60)
    assert result.returncode == 1 and b"nothing answers" in result.stderr
    assert len(result.stderr.decode().strip().splitlines()) == 1


@pytest.mark.root
def test_tutorial_commands(t: Target) -> None:
    """The tutorial's sequence, with busybox standing in for nginx."""
    mynginx, busy = "mynginx", "busybox"  # the tutorial's names: each daemon is private
    t.made += [mynginx, busy]
    ok(t.pc("run", "-itd", "--name", mynginx, "busybox"))
    assert mynginx in ok(t.pc("ps"))
    ok(t.pc("logs", mynginx))
    assert "UID" in ok(t.pc("top", mynginx))
    assert json.loads(ok(t.pc("inspect", mynginx)))[0]["Config"]["Tty"] is True
    ok(t.pc("stop", mynginx))
    assert ok(t.pc("rm", mynginx)) == f"{mynginx}\n"
    ok(t.pc("run", "-d", "--name", busy, "busybox", "sleep", "60"))
    skip_unless_served(t, "POST", "/commit?container={id}")  # the rest ran already
    ident = ok(t.pc("commit", busy, "busybox:hello")).strip()
    assert ident.startswith("sha256:")
    t.pc("rmi", "busybox:hello")
    assert ok(t.pc("rm", "-f", busy)) == f"{busy}\n"
