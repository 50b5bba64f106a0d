"""More of the container lifecycle through the docker CLI: start -a, restart, wait, logs -f,
exec -it, stats, shared network namespaces, OOM kills, and the daemon's own shutdown."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import pathlib
import signal
import subprocess
import tarfile
import time
from collections.abc import Iterator

import pytest

from pycompose.engine.errors import InvalidArgument, NotFound
from tests.fixtures.docker_cli import (
    DOCKER,
    clear_containers,
    docker_on_pty,
    leftovers,
    ok,
    run_docker,
    settled_leftovers,
)
from tests.fixtures.engine import (
    EngineProcess,
    load_busybox,
    respawn_engine,
    start_engine,
    stop_engine,
)

pytestmark = pytest.mark.root


@pytest.fixture
def eng(module_engine: EngineProcess) -> Iterator[EngineProcess]:
    yield module_engine
    clear_containers(module_engine)


def test_start_attach_restart_wait_and_follow(eng: EngineProcess) -> None:
    ok(eng, "create", "--name", "again", "busybox", "echo", "again")
    assert ok(eng, "start", "-a", "again") == "again\n"
    assert ok(eng, "start", "-a", "again") == "again\n"
    assert ok(eng, "logs", "again") == "again\n" * 2
    ok(eng, "run", "-d", "--name", "svc", "busybox", "sh", "-c",
       "echo up; trap 'exit 0' TERM; while :; do sleep 0.1; done")
    assert ok(eng, "restart", "-t", "5", "svc") == "svc\n"
    deadline = time.monotonic() + 5
    while ok(eng, "logs", "svc") != "up\nup\n" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ok(eng, "logs", "svc") == "up\nup\n"
    info = json.loads(ok(eng, "inspect", "svc"))[0]
    assert info["State"]["Running"] and info["RestartCount"] == 0
    ok(eng, "run", "-d", "--name", "five", "busybox", "sh", "-c", "sleep 0.3; exit 5")
    assert ok(eng, "wait", "five") == "5\n"
    ok(eng, "run", "-d", "--name", "count", "busybox", "sh", "-c",
       "for i in 1 2 3; do echo $i; sleep 0.2; done")
    start = time.monotonic()
    assert ok(eng, "logs", "-f", "count") == "1\n2\n3\n"
    assert time.monotonic() - start < 5


def test_exec_it_through_a_pty(eng: EngineProcess) -> None:
    ok(eng, "run", "-d", "--name", "host", "busybox", "sleep", "100")
    out, code = docker_on_pty(eng, "exec", "-it", "host", "sh",
                              typed=b"echo in-$((2+3)); tty; exit 6\r")  # fmt: skip
    assert b"in-5" in out and b"/dev/pts/" in out
    assert code == 6


def test_stats_one_shot_and_no_stream(eng: EngineProcess) -> None:
    cid = ok(eng, "run", "-d", "--name", "stat", "--memory", "64m", "--pids-limit", "50",
             "busybox", "sleep", "100").strip()
    with eng.client().stream("GET", f"/containers/{cid}/stats",
                             query={"stream": 0, "one-shot": 1}) as resp:
        (stats,) = list(resp.iter_json())
    assert stats["id"] == cid and stats["name"] == "/stat"
    assert stats["memory_stats"]["limit"] == 64 * 1024 * 1024
    assert 0 < stats["memory_stats"]["usage"] < 64 * 1024 * 1024
    assert stats["pids_stats"] == {"current": 1, "limit": 50}
    assert stats["cpu_stats"]["cpu_usage"]["total_usage"] > 0
    line = ok(eng, "stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}} {{.PIDs}}",
              "stat")  # fmt: skip
    assert line.startswith("stat ") and "64MiB" in line and line.strip().endswith(" 1")


def test_shared_network_namespace(eng: EngineProcess) -> None:
    ok(eng, "run", "-d", "--name", "owner", "busybox", "sleep", "100")
    pid = int(ok(eng, "inspect", "--format", "{{.State.Pid}}", "owner"))
    owner_ns = os.readlink(f"/proc/{pid}/ns/net")
    joined = ok(eng, "run", "--rm", "--network", "container:owner", "busybox", "readlink",
                "/proc/self/ns/net")  # fmt: skip
    assert joined.strip() == owner_ns
    alone = ok(eng, "run", "--rm", "busybox", "readlink", "/proc/self/ns/net")
    assert alone.strip() != owner_ns and alone.strip() != os.readlink("/proc/self/ns/net")
    proc = run_docker(eng, "run", "--rm", "--network", "container:nosuch", "busybox", "true")
    assert proc.returncode != 0 and b"No such container: nosuch" in proc.stderr
    assert ok(eng, "ps", "-aq") == ok(eng, "ps", "-q")  # the --rm container went with it


def test_only_auto_removed_containers_get_a_volatile_root(eng: EngineProcess) -> None:
    """--rm: the writable layer is deleted at exit, so overlayfs need not sync it."""
    root_options = "awk '$5 == \"/\" {print $NF}' /proc/self/mountinfo"
    volatile = {"volatile", "fsync=volatile"}  # newer kernels show it as the latter
    rm = ok(eng, "run", "--rm", "busybox", "sh", "-c", root_options).strip().split(",")
    assert volatile & set(rm) and any(o.startswith("upperdir=") for o in rm)
    kept = ok(eng, "run", "--name", "kept", "busybox", "sh", "-c", root_options)
    assert not volatile & set(kept.strip().split(",")) and "upperdir=" in kept
    again = ok(eng, "start", "-a", "kept")  # mounted again, still not volatile
    assert not volatile & set(again.strip().split(",")) and "upperdir=" in again


def spares(engine: EngineProcess) -> list[int]:
    """Pids of the engine's spare monitors (forked ahead, waiting for a container)."""
    found = []
    for proc in pathlib.Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if proc.name.isdigit() and (proc / "comm").read_text().strip() == "pycompose-spare" \
                    and str(engine.tmp).encode() in (proc / "cmdline").read_bytes():
                found.append(int(proc.name))
    return found


def test_a_spare_monitor_waits_and_a_dead_one_is_replaced(eng: EngineProcess) -> None:
    assert ok(eng, "run", "--rm", "busybox", "echo", "one") == "one\n"
    deadline = time.monotonic() + 5
    while len(spares(eng)) != 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    (spare,) = spares(eng)
    os.kill(spare, signal.SIGKILL)
    assert ok(eng, "run", "--rm", "busybox", "echo", "two") == "two\n"
    deadline = time.monotonic() + 5
    while spares(eng) in ([], [spare]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(spares(eng)) == 1 and spares(eng) != [spare]


def test_oom_kill_is_recorded(eng: EngineProcess) -> None:
    since = time.time()
    ok(eng, "run", "-d", "--name", "hog", "--memory", "16m", "--memory-swap", "16m", "busybox",
       "sh", "-c", "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo ${#x}")
    assert ok(eng, "wait", "hog").strip().isdigit()
    state = json.loads(ok(eng, "inspect", "hog"))[0]["State"]
    assert state["OOMKilled"] is True and state["Status"] == "exited"
    query = {"since": f"{since - 0.001:.3f}", "until": f"{time.time() + 0.01:.3f}",
             "filters": json.dumps({"container": ["hog"]})}
    with eng.client().stream("GET", "/events", query=query) as resp:
        actions = [e["Action"] for e in resp.iter_json()]
    assert "oom" in actions and actions.index("oom") < actions.index("die")


def test_daemon_shutdown_stops_containers_and_always_comes_back(
        busybox_layout: pathlib.Path) -> None:  # fmt: skip
    engine = start_engine(components=())
    try:
        load_busybox(engine, busybox_layout)
        ok(engine, "run", "-d", "--name", "keep", "--restart", "always", "busybox", "sleep", "100")
        ok(engine, "run", "-d", "--name", "once", "busybox", "sleep", "100")
        pid = int(ok(engine, "inspect", "--format", "{{.State.Pid}}", "keep"))
        ids = set(ok(engine, "ps", "-aq", "--no-trunc").split())
        engine.process.send_signal(signal.SIGTERM)
        engine.process.wait(30)
        assert not pathlib.Path(f"/proc/{pid}").exists()
        assert [x for x in leftovers(engine, ids) if not x.startswith("dir ")] == []
        assert not (engine.config.runtime_dir / "runc").exists()
        respawn_engine(engine)
        deadline = time.monotonic() + 10
        while "keep" not in ok(engine, "ps") and time.monotonic() < deadline:
            time.sleep(0.1)
        names = ok(engine, "ps", "--format", "{{.Names}} {{.State}}").split("\n")
        assert "keep running" in names and "once running" not in names
        assert "Exited (137)" in ok(engine, "ps", "-a", "--filter", "name=once")
        ok(engine, "rm", "-f", "keep", "once")
        assert settled_leftovers(engine) == []
    finally:
        stop_engine(engine)


def test_commit_and_export(eng: EngineProcess, tmp_path: pathlib.Path) -> None:
    ok(eng, "run", "--name", "mod", "busybox", "sh", "-c",
       "echo hello > /greeting; rm /bin/vi; rm -r /etc; mkdir /etc; echo y > /etc/only")
    diff = ok(eng, "diff", "mod").splitlines()
    assert {"A /greeting", "D /bin/vi", "C /etc", "A /etc/only", "D /etc/passwd"} <= set(diff)
    image_id = ok(eng, "commit", "-c", 'CMD ["cat", "/greeting"]', "-c", "ENV A=1", "-m",
                  "my change", "mod", "mine:v1").strip()  # fmt: skip
    assert image_id.startswith("sha256:")
    assert ok(eng, "run", "--rm", "mine:v1") == "hello\n"
    out = ok(eng, "run", "--rm", "mine:v1", "sh", "-c",
             "echo $A; cat /etc/only; test -e /etc/passwd || echo no-passwd; "
             "test -e /bin/vi || echo no-vi")
    assert out == "1\ny\nno-passwd\nno-vi\n"  # whiteout and opaque directory came through
    history = ok(eng, "history", "--format", "{{.Comment}}", "mine:v1").split("\n")
    assert history[0] == "my change"
    proc = run_docker(eng, "rmi", "mine:v1")
    assert proc.returncode == 0, proc.stderr
    # Layer check with our own tools: the committed layer has the OCI whiteout entries.
    tar_path = tmp_path / "mod.tar"
    with open(tar_path, "wb") as out_file:
        subprocess.run([DOCKER, "-H", eng.host, "export", "mod"], stdout=out_file, check=True,
                       env={k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")})
    with tarfile.open(tar_path) as tf:
        names = set(tf.getnames())
        assert tf.extractfile("greeting").read() == b"hello\n"  # type: ignore[union-attr]
    assert "bin/busybox" in names and "bin/vi" not in names and "etc/passwd" not in names
    proc = run_docker(eng, "commit", "-c", "RUN true", "mod", "nope:v1")
    assert proc.returncode != 0 and b"RUN is not a valid change command" in proc.stderr
    ok(eng, "commit", "-c", "VOLUME /data", "mod", "withvol:v1")
    config = json.loads(ok(eng, "image", "inspect", "--format", "{{json .Config}}", "withvol:v1"))
    assert config["Volumes"] == {"/data": {}}
    ok(eng, "rmi", "withvol:v1")
    assert ok(eng, "ps", "-aq", "--filter", "status=exited").strip()


def _tar(*entries: tuple[str, bytes | str | None]) -> bytes:
    """A tar of (name, data) files, (name, "->target") symlinks and (name, None) dirs."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tf.addfile(info)
            elif isinstance(data, str):
                info.type, info.linkname = tarfile.SYMTYPE, data.removeprefix("->")
                tf.addfile(info)
            else:
                info.size, info.mode = len(data), 0o640
                tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_cp_both_ways_and_escapes(eng: EngineProcess, tmp_path: pathlib.Path) -> None:
    ok(eng, "run", "-d", "--name", "box", "busybox", "sh", "-c",
       "mkdir -p /data/sub; echo one > /data/a; echo two > /data/sub/b; ln -s / /data/root; "
       "ln -s /etc/passwd /data/link; sleep 100")
    time.sleep(0.5)
    ok(eng, "cp", "box:/data", str(tmp_path / "out"))
    assert (tmp_path / "out" / "sub" / "b").read_text() == "two\n"
    assert os.readlink(tmp_path / "out" / "link") == "/etc/passwd"
    (tmp_path / "in.txt").write_text("in")
    ok(eng, "cp", str(tmp_path / "in.txt"), "box:/data/root/tmp/")  # "/" of the container
    assert ok(eng, "exec", "box", "cat", "/tmp/in.txt") == "in"
    host_file = pathlib.Path("/tmp/in.txt")
    assert not (host_file.exists() and host_file.read_text() == "in")
    client = eng.client()
    cid = json.loads(ok(eng, "inspect", "box"))[0]["Id"]
    for bad, message in (
        (_tar(("../escape", b"x")), "leaves the destination"),
        (_tar(("evil", "->/"), ("evil/tmp/owned", b"x")), "not a directory"),
        (_tar(("link", "->x"), ("/abs", b"x")), "leaves the destination"),
    ):
        with pytest.raises(InvalidArgument, match=message):
            client.request("PUT", f"/containers/{cid}/archive", query={"path": "/data"},
                           data=bad)  # fmt: skip
    assert not pathlib.Path("/tmp/owned").exists()
    with pytest.raises(NotFound):  # a HEAD answer has no body to carry the message
        client.request("HEAD", f"/containers/{cid}/archive", query={"path": "/nope"})
    with pytest.raises(NotFound, match="Could not find the file /nope"):
        client.request("GET", f"/containers/{cid}/archive", query={"path": "/nope"})
    with client.request("HEAD", f"/containers/{cid}/archive", query={"path": "/data"}) as resp:
        header = resp.headers["x-docker-container-path-stat"]
    info = json.loads(base64.b64decode(header))
    assert info["name"] == "data" and info["mode"] & (1 << 31)
    ok(eng, "stop", "-t", "0", "box")
    ok(eng, "cp", str(tmp_path / "in.txt"), "box:/stopped.txt")
    assert (tmp_path / "in.txt").read_bytes() in ok(eng, "cp", "box:/stopped.txt", "-").encode()
    assert [x for x in leftovers(eng) if x.startswith("mount")] == []  # stopped: unmounted
