"""The containers API through our own client: bad input, wait conditions, logs options, pause,
rename, kill, /info counts, and a daemon SIGKILLed with containers running."""

from __future__ import annotations

import itertools
import json
import pathlib
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from pycompose.engine.api.streams import FrameDecoder
from pycompose.engine.client import EngineClient
from pycompose.engine.errors import Conflict, InvalidArgument, NotFound
from pycompose.engine.runtime.logs import parse_timestamp
from tests.fixtures.docker_cli import leftovers, settled_leftovers
from tests.fixtures.engine import (
    EngineProcess,
    load_busybox,
    respawn_engine,
    start_engine,
    stop_engine,
)

pytestmark = pytest.mark.root


@pytest.fixture
def engine(busybox_layout: pathlib.Path) -> Iterator[EngineProcess]:
    eng = start_engine(components=())
    try:
        load_busybox(eng, busybox_layout)
        yield eng
        client = eng.client()
        for c in client.get("/containers/json", query={"all": 1}):
            client.delete(f"/containers/{c['Id']}", query={"force": 1})
        assert settled_leftovers(eng) == []
    finally:
        stop_engine(eng)


def create(client: EngineClient, *cmd: str, name: str | None = None, **extra: Any) -> str:
    body: dict[str, Any] = {"Image": "busybox", "Cmd": list(cmd), **extra}
    query = {"name": name} if name else None
    return str(client.post("/containers/create", body, query=query)["Id"])


def run(client: EngineClient, *cmd: str, **extra: Any) -> str:
    cid = create(client, *cmd, **extra)
    client.post(f"/containers/{cid}/start")
    return cid


def wait(client: EngineClient, cid: str, condition: str = "not-running") -> dict[str, Any]:
    result: dict[str, Any] = client.post(f"/containers/{cid}/wait",
                                         query={"condition": condition})  # fmt: skip
    return result


def logs(client: EngineClient, cid: str, **query: Any) -> list[tuple[int, bytes]]:
    q = {"stdout": 1, "stderr": 1, **query}
    with client.stream("GET", f"/containers/{cid}/logs", query=q) as resp:
        return list(resp.iter_frames(tty=False))


def test_bad_create_requests_name_the_field(engine: EngineProcess) -> None:
    client = engine.client()
    with pytest.raises(InvalidArgument, match="malformed JSON"):
        client.request("POST", "/containers/create", data=b'{"Image": "busybox",',
                       headers={"Content-Type": "application/json"})  # fmt: skip
    with pytest.raises(InvalidArgument, match="unknown field Bogus"):
        create(client, "true", Bogus=1)
    with pytest.raises(InvalidArgument, match=r"unknown field HostConfig\.Nope"):
        create(client, "true", HostConfig={"Nope": True})
    with pytest.raises(InvalidArgument, match=r"HostConfig\.CgroupParent"):
        create(client, "true", HostConfig={"CgroupParent": "/elsewhere"})
    with pytest.raises(InvalidArgument, match="Healthcheck"):
        create(client, "true", Healthcheck={"Test": ["PING", "localhost"]})
    with pytest.raises(InvalidArgument, match="network mynet not found"):
        create(client, "true", HostConfig={"NetworkMode": "mynet"})
    with pytest.raises(InvalidArgument, match="Invalid container name"):
        create(client, "true", name="bad/name")
    with pytest.raises(NotFound, match="No such image: nosuch:latest"):
        client.post("/containers/create", {"Image": "nosuch", "Cmd": ["true"]})
    with pytest.raises(InvalidArgument, match="invalid signal"):
        cid = run(client, "sleep", "100")
        client.post(f"/containers/{cid}/kill", query={"signal": "SIGNOPE"})
    assert client.get("/containers/json", query={"all": 1})[0]["Id"] == cid
    create(client, "true", name="taken")
    with pytest.raises(Conflict, match='name "/taken" is already in use'):
        create(client, "true", name="taken")


def test_start_failure_is_reported_and_released(engine: EngineProcess) -> None:
    client = engine.client()
    cid = create(client, "/no/such/binary")
    with pytest.raises(Exception, match=r"no such file|not found"):
        client.post(f"/containers/{cid}/start")
    state = client.get(f"/containers/{cid}/json")["State"]
    assert state["Status"] == "created" and state["ExitCode"] == 127 and state["Error"]
    assert not any("merged" in x for x in leftovers(engine))


def test_wait_logs_options_and_image_config_merge(engine: EngineProcess) -> None:
    client = engine.client()
    script = "echo one; echo two >&2; echo $FOO $PATH; pwd; exit 3"
    cid = create(client, "sh", "-c", script, Env=["FOO=bar"], WorkingDir="/tmp")
    results: list[dict[str, Any]] = []
    waiter = threading.Thread(target=lambda: results.append(wait(client, cid, "next-exit")))
    waiter.start()
    time.sleep(0.5)
    client.post(f"/containers/{cid}/start")
    waiter.join(30)
    assert results == [{"StatusCode": 3, "Error": None}]
    assert wait(client, cid) == {"StatusCode": 3, "Error": None}
    frames = logs(client, cid)
    assert (1, b"one\n") in frames and (2, b"two\n") in frames
    assert (1, b"bar /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n") in frames
    stdout = [f for f in frames if f[0] == 1]
    assert stdout[-1] == (1, b"/tmp\n")  # across streams the order is the pipes' race
    assert logs(client, cid, stderr=0) == stdout
    assert logs(client, cid, stderr=0, tail=1) == [stdout[-1]]
    stamped = logs(client, cid, timestamps=1, tail=1, stderr=0)[0][1]
    assert stamped.endswith(b"Z /tmp\n") and stamped[:4].isdigit()
    info = client.get(f"/containers/{cid}/json")
    assert info["Config"]["Env"][0] == "FOO=bar" and info["Config"]["Cmd"][0] == "sh"
    assert info["State"]["FinishedAt"] > info["State"]["StartedAt"] > info["Created"]
    with pytest.raises(InvalidArgument, match="choose at least one stream"):
        client.get(f"/containers/{cid}/logs")


def test_pause_unpause_rename_kill_and_info(engine: EngineProcess) -> None:
    client = engine.client()
    cid = run(client, "sh", "-c", "trap 'exit 143' TERM; while true; do sleep 0.1; done",
              name="first")
    client.post(f"/containers/{cid}/pause")
    assert client.get(f"/containers/{cid}/json")["State"]["Status"] == "paused"
    info = client.info()
    assert (info["Containers"], info["ContainersPaused"], info["ContainersRunning"]) == (1, 1, 0)
    with pytest.raises(Conflict):
        client.post(f"/containers/{cid}/pause")
    client.post(f"/containers/{cid}/unpause")
    client.post(f"/containers/{cid}/rename", query={"name": "second"})
    assert client.get("/containers/second/json")["Id"] == cid
    with pytest.raises(NotFound):
        client.get("/containers/first/json")
    client.post(f"/containers/{cid}/kill", query={"signal": "TERM"})
    assert wait(client, cid) == {"StatusCode": 143, "Error": None}
    with pytest.raises(Conflict, match="is not running"):
        client.post(f"/containers/{cid}/kill")
    info = client.info()
    assert (info["ContainersStopped"], info["ContainersRunning"]) == (1, 0)
    assert info["DefaultRuntime"] in ("runc", "crun") and info["LiveRestoreEnabled"] is False


def test_container_network_none_has_only_lo(engine: EngineProcess) -> None:
    client = engine.client()
    # none: only loopback; default and bridge: the predefined bridge network's eth0 too.
    for mode, links in (("none", ["lo"]), ("default", ["eth0", "lo"]), ("bridge", ["eth0", "lo"])):
        cid = run(client, "sh", "-c", "ls /sys/class/net; hostname; cat /etc/hostname",
                  HostConfig={"NetworkMode": mode})  # fmt: skip
        assert wait(client, cid)["StatusCode"] == 0
        out = b"".join(d for _, d in logs(client, cid)).decode().split()
        assert out == [*links, cid[:12], cid[:12]]
        client.delete(f"/containers/{cid}")


def test_daemon_sigkill_then_readopt(engine: EngineProcess) -> None:
    client = engine.client()
    counter = run(client, "sh", "-c",
                  "i=0; while [ $i -lt 30 ]; do echo line $i; i=$((i+1)); sleep 0.1; done",
                  name="counter")  # fmt: skip
    sleeper = run(client, "sleep", "100", name="sleeper")
    quitter = run(client, "sh", "-c", "sleep 0.5; exit 9", name="quitter")
    pid = client.get(f"/containers/{sleeper}/json")["State"]["Pid"]
    time.sleep(0.3)
    engine.process.send_signal(signal.SIGKILL)
    engine.process.wait(10)
    debris = engine.config.root / "containers" / ("ab" * 32)
    debris.mkdir()
    (debris / "junk").write_text("half-created")
    (engine.config.runtime_dir / "runc" / "torn-state").mkdir(parents=True)
    time.sleep(1.0)  # the quitter exits while no daemon runs
    assert pathlib.Path(f"/proc/{pid}").exists()
    respawn_engine(engine)
    client = engine.client()
    state = client.get(f"/containers/{sleeper}/json")["State"]
    assert state["Status"] == "running" and state["Pid"] == pid
    quit_state = client.get(f"/containers/{quitter}/json")["State"]
    assert quit_state["Status"] == "exited" and quit_state["ExitCode"] == 9
    assert wait(client, counter) == {"StatusCode": 0, "Error": None}
    lines = b"".join(d for _, d in logs(client, counter)).decode().splitlines()
    assert lines == [f"line {i}" for i in range(30)]
    assert not debris.exists()
    assert not (engine.config.runtime_dir / "runc" / "torn-state").exists()
    client.delete(f"/containers/{sleeper}", query={"force": 1})
    assert not pathlib.Path(f"/proc/{pid}").exists()


def test_start_not_yet_recorded_when_the_daemon_died(engine: EngineProcess) -> None:
    client = engine.client()
    cid = run(client, "sleep", "100", name="racer")
    pid = client.get(f"/containers/{cid}/json")["State"]["Pid"]
    engine.process.send_signal(signal.SIGKILL)
    engine.process.wait(10)
    # As if the daemon died after runc started the process but before the record said so.
    path = engine.config.root / "containers" / cid / "record.json"
    record = json.loads(path.read_text())
    record["state"].update(status="created", pid=0)
    path.write_text(json.dumps(record))
    respawn_engine(engine)
    state = client.get(f"/containers/{cid}/json")["State"]
    assert (state["Status"], state["Pid"]) == ("running", pid)
    client.post(f"/containers/{cid}/stop", query={"t": 0})
    assert client.get(f"/containers/{cid}/json")["State"]["ExitCode"] == 137


def test_auto_remove_container_that_exited_while_the_daemon_was_down(
    engine: EngineProcess,
) -> None:
    # Its record still says running (an AutoRemove exit is not written down before its
    # removal): the next daemon finds the monitor's exit file and removes the container.
    client = engine.client()
    cid = run(client, "sh", "-c", "sleep 0.5; exit 3", HostConfig={"AutoRemove": True})
    engine.process.send_signal(signal.SIGKILL)
    engine.process.wait(10)
    directory = engine.config.root / "containers" / cid
    record = json.loads((directory / "record.json").read_text())
    assert record["state"]["status"] == "running"
    time.sleep(1.0)  # it exits while no daemon runs
    respawn_engine(engine)
    deadline = time.monotonic() + 15
    while True:
        try:
            client.get(f"/containers/{cid}/json")
        except NotFound:
            break
        assert time.monotonic() < deadline, "the AutoRemove container was not removed"
        time.sleep(0.05)
    assert not directory.exists()
    # A start awaits the daemon's runtime probe, which must not outlive the test.
    assert wait(client, run(client, "true")) == {"StatusCode": 0, "Error": None}


def test_stop_signal_from_config_and_from_query(engine: EngineProcess) -> None:
    client = engine.client()
    script = "trap 'exit 10' USR1; trap 'exit 12' USR2; while true; do sleep 0.1; done"
    cid = run(client, "sh", "-c", script, StopSignal="SIGUSR2")
    time.sleep(0.3)
    client.post(f"/containers/{cid}/stop", query={"signal": "USR1", "t": 5})
    info = client.get(f"/containers/{cid}/json")
    assert info["State"]["ExitCode"] == 10 and info["Config"]["StopSignal"] == "SIGUSR2"
    client.post(f"/containers/{cid}/start")
    time.sleep(0.3)
    client.post(f"/containers/{cid}/stop", query={"t": 5})
    assert client.get(f"/containers/{cid}/json")["State"]["ExitCode"] == 12
    with pytest.raises(InvalidArgument, match="invalid signal"):
        client.post(f"/containers/{cid}/stop", query={"signal": "NOPE"})


def test_prune_with_filters(engine: EngineProcess) -> None:
    client = engine.client()
    tagged = create(client, "true", Labels={"tmp": "1"})
    plain = create(client, "true")
    running = run(client, "sleep", "100")
    filters = json.dumps({"label": ["tmp=1"]})
    out = client.post("/containers/prune", query={"filters": filters})
    assert out == {"ContainersDeleted": [tagged], "SpaceReclaimed": 0}
    out = client.post("/containers/prune", query={"filters": json.dumps({"until": ["1h"]})})
    assert out["ContainersDeleted"] is None
    assert client.post("/containers/prune")["ContainersDeleted"] == [plain]
    assert [c["Id"] for c in client.get("/containers/json", query={"all": 1})] == [running]
    client.post(f"/containers/{running}/exec", {"Cmd": ["true"]})  # an exec record, unused
    sized = client.get("/containers/json", query={"size": 1})[0]
    assert 0 <= sized["SizeRw"] < sized["SizeRootFs"]
    assert client.get(f"/containers/{running}/json", query={"size": 1})["SizeRootFs"] > 0
    with pytest.raises(InvalidArgument, match="until"):
        client.post("/containers/prune", query={"filters": json.dumps({"until": ["soon"]})})


def _events(client: EngineClient, since: float, cid: str) -> list[tuple[str, dict[str, str]]]:
    query = {"since": f"{since - 0.001:.3f}", "until": f"{time.time() + 0.01:.3f}",
             "filters": json.dumps({"container": [cid]})}
    with client.stream("GET", "/events", query=query) as resp:
        return [(e["Action"], e["Actor"]["Attributes"]) for e in resp.iter_json()]


def test_lifecycle_events_carry_dockers_attributes(engine: EngineProcess) -> None:
    client = engine.client()
    since = time.time()
    cid = run(client, "sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.1; done",
              name="evented", Labels={"team": "a"})  # fmt: skip
    client.post(f"/containers/{cid}/pause")
    client.post(f"/containers/{cid}/unpause")
    client.post(f"/containers/{cid}/rename", query={"name": "renamed"})
    time.sleep(0.2)
    client.post(f"/containers/{cid}/stop")
    client.delete(f"/containers/{cid}")
    events = _events(client, since, cid)
    assert [a for a, _ in events] == ["create", "start", "pause", "unpause", "rename", "kill",
                                      "die", "stop", "destroy"]  # fmt: skip
    attrs = dict(events)
    assert attrs["create"] == {"team": "a", "image": "busybox", "name": "evented"}
    assert attrs["rename"]["oldName"] == "/evented" and attrs["rename"]["name"] == "renamed"
    assert attrs["kill"]["signal"] == "15" and attrs["die"]["exitCode"] == "0"


def test_exec_api(engine: EngineProcess) -> None:
    client = engine.client()
    cid = run(client, "sleep", "100")
    body = {"Cmd": ["sh", "-c", "echo out; echo err >&2; exit 4"], "AttachStdout": True,
            "AttachStderr": True}  # fmt: skip
    exec_id = client.post(f"/containers/{cid}/exec", body)["Id"]
    assert client.get(f"/containers/{cid}/json")["ExecIDs"] == [exec_id]
    with client.stream("POST", f"/exec/{exec_id}/start", body={"Detach": False}) as resp:
        frames = list(resp.iter_frames(tty=False))
    assert sorted(frames) == [(1, b"out\n"), (2, b"err\n")]
    info = client.get(f"/exec/{exec_id}/json")
    assert (info["Running"], info["ExitCode"], info["ContainerID"]) == (False, 4, cid)
    assert client.get(f"/containers/{cid}/json")["ExecIDs"] is None
    with pytest.raises(Conflict, match="already run"):
        client.post(f"/exec/{exec_id}/start", {"Detach": True})
    detached = client.post(f"/containers/{cid}/exec", {"Cmd": ["sh", "-c", "exit 5"]})["Id"]
    client.post(f"/exec/{detached}/start", {"Detach": True})
    deadline = time.monotonic() + 10
    while client.get(f"/exec/{detached}/json")["ExitCode"] is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert client.get(f"/exec/{detached}/json")["ExitCode"] == 5
    with pytest.raises(InvalidArgument, match="No exec command"):
        client.post(f"/containers/{cid}/exec", {"Cmd": []})
    with pytest.raises(InvalidArgument, match="unknown field Bogus"):
        client.post(f"/containers/{cid}/exec", {"Cmd": ["true"], "Bogus": 1})
    with pytest.raises(NotFound, match="No such exec instance"):
        client.get("/exec/nope/json")
    client.post(f"/containers/{cid}/kill")
    wait(client, cid)
    with pytest.raises(Conflict, match="is not running"):
        client.post(f"/containers/{cid}/exec", {"Cmd": ["true"]})


def test_restart_back_off_and_manual_stop(engine: EngineProcess) -> None:
    client = engine.client()
    cid = run(client, "sh", "-c", "echo run; exit 1",
              HostConfig={"RestartPolicy": {"Name": "always"}})  # fmt: skip
    deadline = time.monotonic() + 10
    while len(logs(client, cid)) < 4:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    client.post(f"/containers/{cid}/stop")
    stamps = [parse_timestamp(d.split()[0].decode()) / 1e9
              for _, d in logs(client, cid, timestamps=1)]  # fmt: skip
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert len(stamps) >= 4, logs(client, cid, timestamps=1)
    # Back-off: 100 ms, then 200 ms, then 400 ms between runs (plus the start itself).
    assert gaps[0] >= 0.1 and gaps[1] >= 0.2 and gaps[2] >= 0.4
    count = client.get(f"/containers/{cid}/json")["RestartCount"]
    time.sleep(1.0)  # stopped by hand: the always policy does not bring it back
    info = client.get(f"/containers/{cid}/json")
    assert info["RestartCount"] == count and info["State"]["Status"] == "exited"


def test_log_rotation_options(engine: EngineProcess) -> None:
    client = engine.client()
    log_config = {"Type": "json-file", "Config": {"max-size": "1k", "max-file": "2"}}
    cid = run(client, "sh", "-c", "i=0; while [ $i -lt 100 ]; do echo line-$i; i=$((i+1)); done",
              HostConfig={"LogConfig": log_config})  # fmt: skip
    assert wait(client, cid)["StatusCode"] == 0
    lines = b"".join(d for _, d in logs(client, cid)).decode().splitlines()
    assert lines[-1] == "line-99" and 10 < len(lines) < 100
    assert lines == [f"line-{i}" for i in range(100 - len(lines), 100)]
    files = sorted(p.name for p in (engine.config.root / "containers" / cid).glob("json.log*"))
    assert files == ["json.log", "json.log.1"]
    with pytest.raises(InvalidArgument, match="max-file"):
        create(client, "true", HostConfig={"LogConfig": {"Config": {"max-file": "x"}}})
    quiet = run(client, "echo", "x", HostConfig={"LogConfig": {"Type": "none"}})
    wait(client, quiet)
    with pytest.raises(InvalidArgument, match="does not support reading"):
        logs(client, quiet)


def _read_all(conn: Any) -> list[tuple[int, bytes]]:
    decoder = FrameDecoder()
    frames: list[tuple[int, bytes]] = []
    while chunk := conn.recv():
        frames += decoder.feed(chunk)
    return frames


def test_attach_logs_and_stdin(engine: EngineProcess) -> None:
    client = engine.client()
    cid = run(client, "sh", "-c", "echo stored; echo more >&2")
    wait(client, cid)
    query = {"logs": 1, "stream": 0, "stdout": 1, "stderr": 1}
    with client.hijack(f"/containers/{cid}/attach", query=query) as conn:
        assert sorted(_read_all(conn)) == [(1, b"stored\n"), (2, b"more\n")]
    query = {"logs": 1, "stream": 0, "stdout": 1, "stderr": 0}
    with client.hijack(f"/containers/{cid}/attach", query=query) as conn:
        assert _read_all(conn) == [(1, b"stored\n")]
    cat = create(client, "sh", "-c", "cat; echo eof", OpenStdin=True, StdinOnce=True,
                 AttachStdin=True)  # fmt: skip
    query = {"stream": 1, "stdin": 1, "stdout": 1, "stderr": 1}
    with client.hijack(f"/containers/{cat}/attach", query=query) as conn:
        client.post(f"/containers/{cat}/start")
        conn.send(b"typed\n")
        conn.close_write()
        assert b"".join(d for _, d in _read_all(conn)) == b"typed\neof\n"
    assert wait(client, cat) == {"StatusCode": 0, "Error": None}


def test_detach_keys_end_attach_and_exec_but_not_the_processes(engine: EngineProcess) -> None:
    client = engine.client()
    since = time.time()
    cid = run(client, "sh", Tty=True, OpenStdin=True, AttachStdin=True)
    query = {"stream": 1, "stdin": 1, "stdout": 1, "stderr": 1}
    with client.hijack(f"/containers/{cid}/attach", query=query, tty=True) as conn:
        conn.send(b"echo before-$((40+2))\r")
        deadline = time.monotonic() + 10
        seen = b""
        while b"before-42" not in seen and time.monotonic() < deadline:
            seen += conn.recv()
        conn.send(b"\x10\x11")
        while conn.recv():  # the daemon ends the attach
            pass
    assert client.get(f"/containers/{cid}/json")["State"]["Running"] is True
    assert "detach" in [a for a, _ in _events(client, since, cid)]
    body = {"Cmd": ["sh"], "Tty": True, "AttachStdin": True, "AttachStdout": True,
            "DetachKeys": "ctrl-a,ctrl-b"}  # fmt: skip
    exec_id = client.post(f"/containers/{cid}/exec", body)["Id"]
    with client.hijack(f"/exec/{exec_id}/start", body={"Tty": True}, tty=True) as conn:
        conn.send(b"\x01\x02")
        while conn.recv():
            pass
    info = client.get(f"/exec/{exec_id}/json")
    assert info["Running"] is True and info["ExitCode"] is None
    with pytest.raises(InvalidArgument, match="Invalid detach keys"):
        client.post(f"/containers/{cid}/exec", {**body, "DetachKeys": "ctrl-1"})


def test_tty_gets_the_create_time_console_size(engine: EngineProcess) -> None:
    client = engine.client()
    cid = run(client, "sh", Tty=True, OpenStdin=True, HostConfig={"ConsoleSize": [30, 100]})
    body = {"Cmd": ["sh", "-c", "stty size < /proc/1/fd/0"], "AttachStdout": True}
    deadline = time.monotonic() + 5
    while True:
        exec_id = client.post(f"/containers/{cid}/exec", body)["Id"]
        with client.stream("POST", f"/exec/{exec_id}/start", body={}) as resp:
            out = b"".join(d for _, d in resp.iter_frames(tty=False))
        if out == b"30 100\n" or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert out == b"30 100\n"
