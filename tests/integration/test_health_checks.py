"""Health checks on a real engine (runc, busybox): healthy, unhealthy, timed out, from the
image, through the docker CLI, across pause/stop/restart and a daemon SIGKILL.

Intervals are a few hundred ms so the module stays fast. Each test checks that no probe
(a ``runc exec`` of this engine) outlives what it tested.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pycompose.engine.client import EngineClient
from pycompose.engine.errors import InvalidArgument
from tests.fixtures.engine import REPO, EngineProcess, busybox_engine

pytestmark = pytest.mark.root

DOCKER = shutil.which("docker") or "/usr/local/bin/docker"
MS = 1_000_000


@pytest.fixture(scope="module")
def engine(busybox_layout: pathlib.Path) -> Iterator[EngineProcess]:
    with busybox_engine(busybox_layout) as eng:
        yield eng


@pytest.fixture
def client(engine: EngineProcess) -> Iterator[EngineClient]:
    """The engine's client; afterwards every container is removed and no probe is left."""
    cli = engine.client()
    yield cli
    for c in cli.get("/containers/json", query={"all": 1}):
        cli.delete(f"/containers/{c['Id']}", query={"force": 1})
    assert _probes(engine) == []


def _probes(engine: EngineProcess) -> list[str]:
    """``runc exec`` processes of this engine still alive."""
    found = []
    for proc in pathlib.Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if str(engine.tmp).encode() in cmd and b"\x00exec\x00" in cmd:
            found.append(f"{proc.name} {cmd[:120]!r}")
    return found


def run(client: EngineClient, check: dict[str, Any] | None, *cmd: str, **extra: Any) -> str:
    body: dict[str, Any] = {"Image": "busybox", "Cmd": list(cmd or ("sleep", "60")), **extra}
    if check is not None:
        body["Healthcheck"] = check
    cid = str(client.post("/containers/create", body)["Id"])
    client.post(f"/containers/{cid}/start")
    return cid


def health(client: EngineClient, cid: str) -> dict[str, Any] | None:
    found: dict[str, Any] | None = client.get(f"/containers/{cid}/json")["State"].get("Health")
    return found


def until(what: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := what()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
    return value


def status_is(client: EngineClient, cid: str, status: str) -> Callable[[], bool]:
    return lambda: (health(client, cid) or {}).get("Status") == status


def events(client: EngineClient, since: float, cid: str) -> list[str]:
    query = {"since": f"{since:.3f}", "until": f"{time.time() + 0.01:.3f}",
             "filters": json.dumps({"container": [cid]})}  # fmt: skip
    with client.stream("GET", "/events", query=query) as resp:
        return [e["Action"] for e in resp.iter_json()]


def ps_status(client: EngineClient, **filters: str) -> dict[str, str]:
    query = {"all": 1, "filters": json.dumps({k: [v] for k, v in filters.items()})}
    return {c["Id"]: c["Status"] for c in client.get("/containers/json", query=query)}


def test_healthy_then_pause_stop_and_restart(client: EngineClient) -> None:
    since = time.time()
    check = {"Test": ["CMD-SHELL", "echo ok $HOSTNAME"], "Interval": 200 * MS}
    cid = run(client, check)
    assert health(client, cid) == {"Status": "starting", "FailingStreak": 0, "Log": []}
    assert ps_status(client, health="starting")[cid].endswith(" (health: starting)")
    until(status_is(client, cid, "healthy"))
    state = health(client, cid)
    assert state is not None and state["FailingStreak"] == 0
    entry = state["Log"][0]
    assert entry["ExitCode"] == 0 and entry["Output"] == f"ok {cid[:12]}\n"
    assert entry["Start"] <= entry["End"]
    assert ps_status(client, health="healthy")[cid].endswith(" (healthy)")
    assert cid not in ps_status(client, health="none")
    acts = events(client, since, cid)
    assert acts.count("health_status: healthy") == 1
    assert "exec_create: /bin/sh -c echo ok $HOSTNAME" in acts and "exec_die" in acts
    until(lambda: len((health(client, cid) or {}).get("Log", [])) == 5)
    time.sleep(0.5)
    assert len((health(client, cid) or {})["Log"]) == 5  # only the last five are kept

    client.post(f"/containers/{cid}/pause")  # dockerd: probing stops, health unhealthy
    assert (health(client, cid) or {})["Status"] == "unhealthy"
    assert ps_status(client)[cid].endswith(" (Paused)")
    client.post(f"/containers/{cid}/unpause")
    until(status_is(client, cid, "healthy"))

    client.post(f"/containers/{cid}/stop", query={"t": 0})
    stopped = health(client, cid)
    assert stopped is not None and stopped["Status"] == "unhealthy"
    assert cid in ps_status(client, health="unhealthy")
    log_len = len(stopped["Log"])
    time.sleep(0.5)
    assert health(client, cid) == stopped  # no probe runs on a stopped container
    client.post(f"/containers/{cid}/start")
    restarted = health(client, cid)
    assert restarted is not None and restarted["Status"] == "starting"
    assert len(restarted["Log"]) == log_len  # the log survives a restart, as in dockerd
    until(status_is(client, cid, "healthy"))


def test_unhealthy_after_retries(client: EngineClient) -> None:
    since = time.time()
    check = {"Test": ["CMD", "sh", "-c", "echo bad >&2; exit 3"], "Interval": 200 * MS,
             "Retries": 2}  # fmt: skip
    cid = run(client, check)
    until(status_is(client, cid, "unhealthy"))
    state = health(client, cid)
    assert state is not None and state["FailingStreak"] >= 2
    assert [(e["ExitCode"], e["Output"]) for e in state["Log"][:2]] == [(3, "bad\n")] * 2
    assert ps_status(client, health="unhealthy")[cid].endswith(" (unhealthy)")
    acts = [a for a in events(client, since, cid) if a.startswith("health_status")]
    assert acts == ["health_status: unhealthy"]


def test_timeout_kills_the_probe(client: EngineClient, engine: EngineProcess) -> None:
    check = {"Test": ["CMD-SHELL", "echo partial; exec sleep 30"], "Interval": 100 * MS,
             "Timeout": 300 * MS, "Retries": 1}  # fmt: skip
    cid = run(client, check)
    until(status_is(client, cid, "unhealthy"))
    entry = (health(client, cid) or {})["Log"][0]
    assert entry["ExitCode"] == -1
    assert entry["Output"] == "Health check exceeded timeout (300ms): partial\n"
    client.post(f"/containers/{cid}/pause")
    top = client.get(f"/containers/{cid}/top")
    client.post(f"/containers/{cid}/unpause")
    commands = [p[-1] for p in top["Processes"]]
    assert commands == ["sleep 60"]  # the timed-out `sleep 30`s were killed in the container


def test_start_period_and_a_missing_command(client: EngineClient) -> None:
    # Failures inside the start period do not count (probes every StartInterval meanwhile);
    # after it they do, every Interval.
    check = {"Test": ["CMD", "/nonexistent"], "Interval": 100 * MS, "StartPeriod": 1500 * MS,
             "StartInterval": 100 * MS, "Retries": 1}  # fmt: skip
    cid = run(client, check)
    until(lambda: len((health(client, cid) or {}).get("Log", [])) >= 3)
    state = health(client, cid)
    assert state is not None and (state["Status"], state["FailingStreak"]) == ("starting", 0)
    entry = state["Log"][0]
    assert entry["ExitCode"] == -1
    assert entry["Output"] == (  # word for word what dockerd 20.10 records
        "OCI runtime exec failed: exec failed: unable to start container process: exec: "
        '"/nonexistent": stat /nonexistent: no such file or directory: unknown'
    )
    until(status_is(client, cid, "unhealthy"))


def test_success_ends_the_start_period(client: EngineClient) -> None:
    # Healthy once, then failing: the start period no longer shields the failures.
    check = {"Test": ["CMD-SHELL", "test ! -e /tmp/seen && touch /tmp/seen"],
             "Interval": 100 * MS, "StartPeriod": 60_000 * MS, "StartInterval": 100 * MS,
             "Retries": 2}  # fmt: skip
    cid = run(client, check)
    until(status_is(client, cid, "unhealthy"))
    state = health(client, cid)
    assert state is not None and state["FailingStreak"] >= 2


def test_image_health_check_and_merge(client: EngineClient) -> None:
    base = run(client, None)
    client.post("/commit", query={"container": base, "repo": "hc-image", "tag": "1",
                                  "changes": "HEALTHCHECK --interval=150ms --retries=1 "
                                             "CMD echo from-image"})  # fmt: skip
    try:
        cid = run(client, None, Image="hc-image:1")
        config = client.get(f"/containers/{cid}/json")["Config"]["Healthcheck"]
        assert config == {"Test": ["CMD-SHELL", "echo from-image"], "Interval": 150 * MS,
                          "Retries": 1}  # fmt: skip
        until(status_is(client, cid, "healthy"))
        assert (health(client, cid) or {})["Log"][0]["Output"] == "from-image\n"
        # The container's own Test wins; its zero fields take the image's.
        other = run(client, {"Test": ["CMD-SHELL", "exit 1"]}, Image="hc-image:1")
        merged = client.get(f"/containers/{other}/json")["Config"]["Healthcheck"]
        assert merged == {"Test": ["CMD-SHELL", "exit 1"], "Interval": 150 * MS, "Retries": 1}
        until(status_is(client, other, "unhealthy"))
        off = run(client, {"Test": ["NONE"]}, Image="hc-image:1")
        assert health(client, off) is None
        assert off in ps_status(client, health="none")
    finally:
        for c in client.get("/containers/json", query={"all": 1}):
            client.delete(f"/containers/{c['Id']}", query={"force": 1})
        client.delete("/images/hc-image:1")


def test_bad_health_checks_are_refused(client: EngineClient) -> None:
    cases = [({"Test": ["PING", "x"]}, "unknown health check type 'PING'"),
             ({"Test": ["CMD"]}, "CMD needs a command"),
             ({"Interval": -5}, "Interval in Healthcheck cannot be less than 1ms"),
             ({"Timeout": 999}, "Timeout in Healthcheck cannot be less than 1ms"),
             ({"StartPeriod": 1}, "StartPeriod in Healthcheck cannot be less than 1ms"),
             ({"Retries": -1}, "Retries in Healthcheck cannot be negative"),
             ({"Cadence": 1}, "unknown field Healthcheck.Cadence")]  # fmt: skip
    for check, message in cases:
        with pytest.raises(InvalidArgument, match=message):
            client.post("/containers/create", {"Image": "busybox", "Healthcheck": check})
    assert client.get("/containers/json", query={"all": 1}) == []


def _docker(engine: EngineProcess, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DOCKER_CONFIG": str(engine.tmp / "docker-config")}
    return subprocess.run([DOCKER, "-H", engine.host, *args], capture_output=True, text=True,
                          env=env, timeout=60, check=False)  # fmt: skip


def test_docker_cli(client: EngineClient, engine: EngineProcess) -> None:
    proc = _docker(engine, "run", "-d", "--name", "hc-cli", "--health-cmd", "true",
                   "--health-interval", "1s", "busybox", "sleep", "30")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    fmt = "{{.State.Health.Status}}"
    assert _docker(engine, "inspect", "--format", fmt, "hc-cli").stdout == "starting\n"
    until(lambda: _docker(engine, "inspect", "--format", fmt, "hc-cli").stdout == "healthy\n")
    ps = _docker(engine, "ps", "--filter", "health=healthy", "--format", "{{.Status}}").stdout
    assert ps.startswith("Up ") and ps.endswith(" (healthy)\n")
    table = _docker(engine, "ps").stdout
    assert " (healthy)" in table and "hc-cli" in table
    sent = _docker(engine, "inspect", "--format", "{{json .Config.Healthcheck}}", "hc-cli")
    assert json.loads(sent.stdout) == {"Test": ["CMD-SHELL", "true"], "Interval": 1_000_000_000}
    bad = _docker(engine, "run", "-d", "--health-cmd", "true", "--health-interval", "1ns",
                  "busybox", "true")  # fmt: skip
    assert bad.returncode == 125
    assert "Interval in Healthcheck cannot be less than 1ms" in bad.stderr
    off = _docker(engine, "run", "-d", "--no-healthcheck", "busybox", "sleep", "30").stdout
    assert _docker(engine, "inspect", "--format", "{{.State.Health}}", off.strip()).stdout in (
        "<nil>\n",
        "<no value>\n",
    )


def _respawn(engine: EngineProcess) -> None:
    argv = [sys.executable, "-m", "pycompose.cli.main", "engine", "serve",
            *engine.config.serve_args()]  # fmt: skip
    with open(engine.log_path, "ab") as log:
        engine.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                          env={**os.environ, "PYTHONPATH": str(REPO)},
                                          cwd=REPO)  # fmt: skip
    until(engine.client().ping, timeout=15)


def test_probing_resumes_after_a_daemon_sigkill(client: EngineClient,
                                                engine: EngineProcess) -> None:  # fmt: skip
    check = {"Test": ["CMD-SHELL", "echo alive"], "Interval": 150 * MS}
    cid = run(client, check)
    until(status_is(client, cid, "healthy"))
    engine.process.send_signal(signal.SIGKILL)
    engine.process.wait(10)
    killed_at = time.time()
    _respawn(engine)
    state = health(client, cid)
    assert state is not None and state["Status"] == "healthy"  # as recorded, not reset

    def probed_again() -> bool:
        log = (health(client, cid) or {}).get("Log", [])
        return any(_seconds(e["Start"]) > killed_at for e in log)

    until(probed_again)


def _seconds(stamp: str) -> float:
    from pycompose.engine.runtime.logs import parse_timestamp

    return parse_timestamp(stamp) / 1e9


def test_daemon_stop_ends_a_probe_in_flight(busybox_layout: pathlib.Path) -> None:
    with busybox_engine(busybox_layout) as eng:
        cli = eng.client()
        check = {"Test": ["CMD-SHELL", "exec sleep 20"], "Interval": 100 * MS}
        run(cli, check, StopSignal="SIGKILL")  # no grace period to wait for at daemon stop
        until(lambda: _probes(eng))
        eng.process.send_signal(signal.SIGTERM)
        eng.process.wait(15)
        assert _probes(eng) == []
