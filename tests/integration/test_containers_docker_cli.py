"""The containers component of a real daemon driven by clients written by others: the docker
CLI (``-H unix://...``) and docker-py, with busybox loaded from the OCI layout fixture.

Every test checks at the end that its containers left nothing behind: no record dirs, no
rootfs mounts, no runc state, no monitor processes.
"""

from __future__ import annotations

import json
import pathlib
import time
from collections.abc import Iterator

import docker
import pytest

from tests.fixtures.docker_cli import clear_containers, docker_on_pty, leftovers, ok, run_docker
from tests.fixtures.engine import EngineProcess, busybox_engine

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def engine(busybox_layout: pathlib.Path) -> Iterator[EngineProcess]:
    with busybox_engine(busybox_layout) as eng:
        yield eng


@pytest.fixture
def clean(engine: EngineProcess) -> Iterator[EngineProcess]:
    """The module's engine; after the test, every container must be gone with its debris."""
    yield engine
    clear_containers(engine)


def test_run_rm_echo_hi(clean: EngineProcess) -> None:
    since = time.time()
    proc = run_docker(clean, "run", "--rm", "busybox", "echo", "hi")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"hi\n", b"")
    assert ok(clean, "ps", "-aq") == ""
    query = {"since": f"{since - 0.001:.3f}", "until": f"{time.time() + 0.01:.3f}",
             "filters": json.dumps({"type": ["container"]})}
    with clean.client().stream("GET", "/events", query=query) as resp:
        events = list(resp.iter_json())
    assert [e["Action"] for e in events] == ["create", "attach", "start", "die", "destroy"]
    die = events[3]["Actor"]["Attributes"]
    assert die["exitCode"] == "0" and die["image"] == "busybox" and die["name"]


def test_run_rm_exit_code_and_stderr(clean: EngineProcess) -> None:
    proc = run_docker(clean, "run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 7")
    assert (proc.returncode, proc.stdout, proc.stderr) == (7, b"out\n", b"err\n")


def test_detached_ps_logs_top_inspect_exec_stop_rm(clean: EngineProcess) -> None:
    cid = ok(clean, "run", "-d", "--name", "xx", "busybox", "sh", "-c",
             "echo started; exec sleep 100").strip()
    assert len(cid) == 64
    ps = ok(clean, "ps")
    assert "xx" in ps and '"sh -c' in ps and "Up " in ps
    deadline = time.monotonic() + 5
    while ok(clean, "logs", "xx") != "started\n" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ok(clean, "logs", "xx") == "started\n"
    top = ok(clean, "top", "xx").splitlines()
    assert top[0].split()[:2] == ["UID", "PID"] and "sleep 100" in top[1]
    pid = int(ok(clean, "inspect", "--format", "{{.State.Pid}}", "xx"))
    assert pathlib.Path(f"/proc/{pid}/cmdline").read_bytes() == b"sleep\x00100\x00"
    info = json.loads(ok(clean, "inspect", "xx"))[0]
    assert info["Id"] == cid and info["Name"] == "/xx" and info["State"]["Running"]
    assert info["Config"]["Hostname"] == cid[:12] and info["Path"] == "sh"
    proc = run_docker(clean, "exec", "xx", "sh", "-c", "echo from-exec $HOSTNAME; exit 3")
    assert (proc.returncode, proc.stdout) == (3, f"from-exec {cid[:12]}\n".encode())
    out = ok(clean, "exec", "-u", "nobody", "-w", "/tmp", "-e", "V=1", "xx", "sh", "-c",
             "echo $V $(pwd) $(id -u)")  # fmt: skip
    assert out == "1 /tmp 65534\n"
    proc = run_docker(clean, "exec", "-i", "xx", "cat", stdin=b"piped\n")
    assert (proc.returncode, proc.stdout) == (0, b"piped\n")
    start = time.monotonic()
    assert ok(clean, "stop", "-t", "1", "xx") == "xx\n"
    assert time.monotonic() - start >= 0.9  # sleep as PID 1 ignores SIGTERM: SIGKILL after 1 s
    state = json.loads(ok(clean, "inspect", "xx"))[0]["State"]
    assert state["Status"] == "exited" and state["ExitCode"] == 137
    assert "Exited (137)" in ok(clean, "ps", "-a")
    assert ok(clean, "rm", "-f", "xx") == "xx\n"
    proc = run_docker(clean, "inspect", "xx")
    assert proc.returncode == 1 and b"No such object: xx" in proc.stderr


def test_rm_refuses_running_unless_forced(clean: EngineProcess) -> None:
    cid = ok(clean, "run", "-d", "--name", "busy", "busybox", "sleep", "100").strip()
    found = leftovers(clean)  # the check itself sees a live container's resources
    assert f"dir {cid}" in found and f"cgroup pids/pycompose/{cid[:12]}" in found
    assert any("pycompose-mon" in x for x in found) and any("merged" in x for x in found)
    proc = run_docker(clean, "rm", "busy")
    assert proc.returncode == 1 and b"cannot remove a running container" in proc.stderr
    assert ok(clean, "rm", "-f", "busy") == "busy\n"


def test_pid1_ignoring_sigterm_is_killed_after_grace(clean: EngineProcess) -> None:
    ok(clean, "run", "-d", "--name", "stubborn", "busybox", "sh", "-c",
       "trap '' TERM; while true; do sleep 1; done")
    start = time.monotonic()
    ok(clean, "stop", "-t", "2", "stubborn")
    elapsed = time.monotonic() - start
    assert 1.9 <= elapsed < 8
    state = json.loads(ok(clean, "inspect", "stubborn"))[0]["State"]
    assert state["ExitCode"] == 137 and not state["Running"]


def test_sigterm_is_honoured_quickly(clean: EngineProcess) -> None:
    ok(clean, "run", "-d", "--name", "polite", "busybox", "sh", "-c",
       "trap 'exit 5' TERM; while true; do sleep 0.1; done")
    time.sleep(0.3)
    start = time.monotonic()
    ok(clean, "stop", "-t", "10", "polite")
    assert time.monotonic() - start < 3
    assert json.loads(ok(clean, "inspect", "polite"))[0]["State"]["ExitCode"] == 5


def test_fork_bomb_under_pids_limit_is_contained(clean: EngineProcess) -> None:
    ok(clean, "run", "-d", "--name", "bomb", "--pids-limit", "32", "busybox", "sh", "-c",
       "b() { b | b & }; b; sleep 100")
    time.sleep(2)
    rows = ok(clean, "top", "bomb").splitlines()[1:]
    assert 1 <= len(rows) <= 32
    assert ok(clean, "rm", "-f", "bomb") == "bomb\n"


def test_restart_on_failure_two(clean: EngineProcess) -> None:
    ok(clean, "run", "-d", "--name", "flaky", "--restart", "on-failure:2", "busybox", "sh",
       "-c", "echo try; exit 3")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        info = json.loads(ok(clean, "inspect", "flaky"))[0]
        if info["RestartCount"] == 2 and info["State"]["Status"] == "exited":
            break
        time.sleep(0.1)
    assert info["RestartCount"] == 2 and info["State"]["Status"] == "exited"
    assert info["State"]["ExitCode"] == 3
    time.sleep(1)  # no third restart
    assert json.loads(ok(clean, "inspect", "flaky"))[0]["RestartCount"] == 2
    assert ok(clean, "logs", "flaky") == "try\n" * 3


def test_run_it_through_a_pty(clean: EngineProcess) -> None:
    out, code = docker_on_pty(clean, "run", "--rm", "-it", "busybox", "sh",
                              typed=b"echo pty-$((6*7)); exit 4\r", size=(30, 100))  # fmt: skip
    assert b"pty-42" in out
    assert b"/ # " in out  # the shell's first prompt reached the client
    assert code == 4


def test_docker_py_run_echo_hi(clean: EngineProcess) -> None:
    client = docker.DockerClient(base_url=clean.host, version="1.41")
    try:
        assert client.containers.run("busybox", "echo hi", remove=True) == b"hi\n"
        box = client.containers.run("busybox", ["sleep", "100"], detach=True, name="pybox")
        box.reload()
        assert box.status == "running" and box.name == "pybox"
        assert box.exec_run(["echo", "in"]).output == b"in\n"
        box.kill()
        assert box.wait()["StatusCode"] == 137
        box.remove()
    finally:
        client.close()


def test_rmi_of_an_image_in_use_is_refused(clean: EngineProcess) -> None:
    ok(clean, "create", "--name", "holder", "busybox", "true")
    proc = run_docker(clean, "rmi", "busybox")
    assert proc.returncode == 1 and b"conflict" in proc.stderr.lower()
    ok(clean, "rm", "holder")
