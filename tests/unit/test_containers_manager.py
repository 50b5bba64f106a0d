"""The containers manager and its pure helpers, with fake image/layer stores and a recording
mounter (no root, no runtime)."""

from __future__ import annotations

import asyncio
import signal
import tarfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from pycompose.engine.api.app import ContainerListQuery
from pycompose.engine.containers import attach, bundle, commit, top
from pycompose.engine.containers.manager import ContainerManager
from pycompose.engine.containers.record import ContainerRecord
from pycompose.engine.containers.runner import Runner
from pycompose.engine.errors import Conflict, InvalidArgument, NotFound
from pycompose.engine.images.archive import apply_changes
from pycompose.engine.runtime.cgroups import CgroupMode, HostCgroups
from pycompose.engine.runtime.logs import LogRecord
from pycompose.storage.overlay import FakeMounter

IMAGE_ID = "sha256:" + "1" * 64


@dataclass
class FakeImage:
    id: str = IMAGE_ID
    config: dict[str, Any] = field(default_factory=lambda: {"config": {
        "Cmd": ["sh"], "Env": ["PATH=/bin", "A=image"], "WorkingDir": "/srv",
        "Labels": {"from": "image", "both": "image"}, "ExposedPorts": {"80/tcp": {}},
        "StopSignal": "SIGQUIT",
    }})  # fmt: skip
    layer_chain_ids: tuple[str, ...] = ("sha256:" + "a" * 64, "sha256:" + "b" * 64)


class FakeImages:
    def resolve(self, name: str) -> FakeImage:
        if name in ("busybox", IMAGE_ID):
            return FakeImage()
        raise NotFound(f"No such image: {name}")


class FakeLayers:
    def rootfs_lowerdirs(self, chain_ids: list[str]) -> list[str]:
        return [f"/layers/{c[7:15]}" for c in reversed(chain_ids)]


@pytest.fixture
def mgr(tmp_path: Path) -> ContainerManager:
    events: list[tuple[str, str, str, dict[str, str]]] = []
    manager = ContainerManager(tmp_path, FakeImages(), FakeLayers(),  # type: ignore[arg-type]
                               FakeMounter(), lambda *e: events.append(e))  # fmt: skip
    manager.runner = Runner(manager, tmp_path / "runc", tmp_path)
    manager.events = events  # type: ignore[attr-defined]
    return manager


def test_create_merges_image_config_like_docker(mgr: ContainerManager) -> None:
    body = {"Image": "busybox", "Env": ["A=user", "B=2"], "Labels": {"both": "user"}}
    record, warnings = mgr.create(body, "web")
    c = record.config
    assert (record.path, record.args) == ("sh", [])
    assert c["Env"] == ["A=user", "B=2", "PATH=/bin"]
    assert c["WorkingDir"] == "/srv" and c["StopSignal"] == "SIGQUIT"
    assert c["Labels"] == {"from": "image", "both": "user"}
    assert c["ExposedPorts"] == {"80/tcp": {}}
    assert c["Hostname"] == record.id[:12] and record.name == "web" and warnings == []
    assert record.host_config["NetworkMode"] == "default"
    assert mgr.image_in_use(IMAGE_ID) and not mgr.image_in_use("sha256:" + "2" * 64)
    assert mgr.events[-1][:3] == ("container", "create", record.id)  # type: ignore[attr-defined]
    assert mgr.events[-1][3]["name"] == "web"  # type: ignore[attr-defined]
    gd = record.network_settings["GraphDriver"]
    assert gd["LowerDir"] == "/layers/bbbbbbbb:/layers/aaaaaaaa"


def test_entrypoint_and_cmd_rules() -> None:
    image = {"config": {"Entrypoint": ["/init"], "Cmd": ["serve"]}}
    c: dict[str, Any] = {"Cmd": ["x"]}
    bundle.merge_image_config(c, image)
    assert bundle.command_of(c) == ["/init", "x"]
    c = {"Entrypoint": ["/other"]}
    bundle.merge_image_config(c, image)
    assert bundle.command_of(c) == ["/other"]  # a new entrypoint drops the image's Cmd
    c = {}
    bundle.merge_image_config(c, image)
    assert bundle.command_of(c) == ["/init", "serve"]
    # Image volumes are storage's business now (anonymous volumes): no warning.
    assert bundle.merge_image_config({}, {"config": {"Volumes": {"/data": {}}}}) == []
    # The image's health check is the container's (pycompose.engine.containers.health).
    c = {}
    assert bundle.merge_image_config(c, {"config": {"Healthcheck": {"Test": ["CMD", "x"]}}}) == []
    assert c["Healthcheck"] == {"Test": ["CMD", "x"]}


def test_create_errors(mgr: ContainerManager) -> None:
    with pytest.raises(NotFound, match="No such image: nosuch:latest"):
        mgr.create({"Image": "nosuch"}, None)
    with pytest.raises(InvalidArgument, match="unknown log opt 'tag'"):
        mgr.create({"Image": "busybox", "HostConfig": {"LogConfig": {"Config": {"tag": "x"}}}},
                   None)  # fmt: skip
    # This manager has no storage component: mounts are refused, not dropped.
    with pytest.raises(InvalidArgument, match=r"HostConfig\.Binds: .* without its storage"):
        mgr.create({"Image": "busybox", "HostConfig": {"Binds": ["vol:/data"]}}, None)
    with pytest.raises(InvalidArgument, match="ExtraHosts"):
        mgr.create({"Image": "busybox", "HostConfig": {"ExtraHosts": ["nocolon"]}}, None)
    mgr.create({"Image": "busybox"}, "one")
    with pytest.raises(Conflict, match="already in use"):
        mgr.create({"Image": "busybox"}, "/one")
    assert len(mgr.store.all()) == 1


def test_list_info_rename_wait_and_remove(mgr: ContainerManager) -> None:
    async def scenario() -> None:
        a, _ = mgr.create({"Image": "busybox", "Labels": {"k": "v"}}, "alpha")
        b, _ = mgr.create({"Image": "busybox"}, "beta")
        assert await mgr.list_containers(ContainerListQuery()) == []
        listed = await mgr.list_containers(ContainerListQuery(all=True))
        assert [x["Names"] for x in listed] == [["/beta"], ["/alpha"]]
        only = await mgr.list_containers(ContainerListQuery(all=True, filters={"label": ["k"]}))
        assert [x["Id"] for x in only] == [a.id]
        assert mgr.info() == {"Containers": 2, "ContainersRunning": 0, "ContainersPaused": 0,
                              "ContainersStopped": 2, "LiveRestoreEnabled": False}  # fmt: skip
        mgr.rename(a, "gamma")
        assert mgr.get("gamma") is a and mgr.events[-1][3]["oldName"] == "/alpha"  # type: ignore[attr-defined]
        with pytest.raises(Conflict):
            mgr.rename(a, "gamma")
        now = mgr.waiter(a, "not-running")
        assert now.done() and now.result() == {"StatusCode": 0, "Error": None}
        removed = mgr.waiter(b, "removed")
        with pytest.raises(InvalidArgument, match="invalid condition"):
            mgr.waiter(b, "sometime")
        await mgr.remove(b, force=False)
        assert removed.result() == {"StatusCode": 0, "Error": None}
        assert not (mgr.store.root / b.id).exists()
        assert mgr.events[-1][1] == "destroy"  # type: ignore[attr-defined]
        a.state.status = "running"
        with pytest.raises(Conflict, match="cannot remove a running container"):
            await mgr.remove(a, force=False)

    asyncio.run(scenario())


def _record(policy: str, count: int = 0, code: int = 1) -> ContainerRecord:
    rec = ContainerRecord(id="c" * 64, name="n", created="", image_id="", image_name="",
                          config={}, host_config={"RestartPolicy": {
                              "Name": policy, "MaximumRetryCount": count}})  # fmt: skip
    rec.state.exit_code = code
    return rec


def test_restart_policy_decisions(mgr: ContainerManager) -> None:
    runner = mgr.runner
    assert runner is not None
    assert not runner.should_restart(_record("no"))
    assert runner.should_restart(_record("always", code=0))
    assert runner.should_restart(_record("unless-stopped", code=0))
    assert not runner.should_restart(_record("on-failure", code=0))
    rec = _record("on-failure", 2)
    assert runner.should_restart(rec)
    rec.restart_count = 2
    assert not runner.should_restart(rec)
    stopped = _record("always")
    stopped.manually_stopped = True
    assert not runner.should_restart(stopped)


def test_signals_timeouts_and_binds() -> None:
    assert bundle.parse_signal("SIGTERM") == bundle.parse_signal("term") == signal.SIGTERM
    assert bundle.parse_signal("9") == 9 and bundle.parse_signal(None, 3) == 3
    for bad in ("SIGNOPE", "0", "99"):
        with pytest.raises(InvalidArgument, match="invalid signal"):
            bundle.parse_signal(bad)
    assert bundle.stop_timeout({}) == 10 and bundle.stop_timeout({"StopTimeout": 3}) == 3
    assert bundle.stop_timeout({"StopTimeout": 3}, 0) == 0
    # Binds, Mounts and Tmpfs are parsed by storage (tests/unit/test_storage_mounts.py).


def test_spec_params_namespaces(tmp_path: Path) -> None:
    host = HostCgroups(CgroupMode.V1, frozenset({"memory", "pids"}), False, 2)
    rc = bundle.RuntimeContext(tmp_path, host, {"/etc/hosts": tmp_path / "hosts"},
                               lambda ref, kind: f"/proc/42/ns/{kind}")  # fmt: skip
    config = {"Cmd": ["true"], "Hostname": "h", "Env": ["A=1"]}
    p = bundle.spec_params("c" * 64, config, {"NetworkMode": "none", "PidsLimit": 20}, rc)
    assert p.network == "" and p.limits.pids_limit == 20 and p.hostname == "h"
    assert [m.target for m in p.mounts] == ["/etc/hosts"]
    p = bundle.spec_params("c" * 64, config, {"NetworkMode": "container:other",
                                              "IpcMode": "container:other"}, rc)  # fmt: skip
    assert (p.network, p.ipc) == ("/proc/42/ns/net", "/proc/42/ns/ipc")
    p = bundle.spec_params("c" * 64, config, {"NetworkMode": "host", "PidMode": "host"}, rc)
    assert (p.network, p.pid, p.hostname) == ("host", "host", "")
    # The staged user mounts come with the runtime context; one over /etc/hosts wins.
    staged = replace(rc, mounts=(bundle.MountSpec("bind", "/etc/hosts", "/x"),))
    p = bundle.spec_params("c" * 64, config, {}, staged)
    assert [(m.target, m.source) for m in p.mounts] == [("/etc/hosts", "/x")]


def test_ps_parsing_and_log_helpers() -> None:
    out = ("UID PID PPID C STIME TTY TIME CMD\n"
           "root 10 1 0 10:00 ? 00:00:00 sleep 100\n"
           "root 11 1 0 10:00 ? 00:00:00 other thing\n")  # fmt: skip
    parsed = top.parse_ps(out, {10})
    assert parsed["Titles"][:2] == ["UID", "PID"]
    assert parsed["Processes"] == [["root", "10", "1", "0", "10:00", "?", "00:00:00", "sleep 100"]]
    with pytest.raises(InvalidArgument, match="PID"):
        top.parse_ps("USER CMD\nroot x\n", {1})
    assert attach.parse_time("1700000000.5", "since") == 1700000000_500000000
    assert attach.parse_time("0", "since") is None
    with pytest.raises(InvalidArgument, match="since"):
        attach.parse_time("yesterday", "since")
    assert attach.parse_tail("all") is None and attach.parse_tail("3") == 3
    with pytest.raises(InvalidArgument, match="tail"):
        attach.parse_tail("-1")
    rec = LogRecord("stderr", 1_700_000_000_000_000_001, b"x\n")
    assert attach.encode(rec, False, False) == b"\x02\x00\x00\x00\x00\x00\x00\x02x\n"
    assert attach.encode(rec, True, True) == b"2023-11-14T22:13:20.000000001Z x\n"


def test_commit_changes_and_layer(tmp_path: Path) -> None:
    config: dict[str, Any] = {"Env": ["A=0", "B=1"], "Labels": {"x": "1"}}
    config = apply_changes(config, ['CMD ["run", "it"]', "ENTRYPOINT exec me", "ENV A=2 C=3",
                                    'LABEL y="two words"', "EXPOSE 80 53/udp", "WORKDIR /w",
                                    "USER app", "STOPSIGNAL SIGINT", "ENV D 4", "VOLUME /v",
                                    'SHELL ["/bin/ash", "-c"]'])  # fmt: skip
    assert config["Cmd"] == ["run", "it"]
    assert config["Entrypoint"] == ["/bin/sh", "-c", "exec me"]
    assert config["Env"] == ["B=1", "A=2", "C=3", "D=4"]
    assert config["Labels"] == {"x": "1", "y": "two words"}
    assert config["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}
    assert (config["WorkingDir"], config["User"], config["StopSignal"]) == ("/w", "app", "SIGINT")
    assert config["Volumes"] == {"/v": {}} and config["Shell"] == ["/bin/ash", "-c"]
    for bad, message in (("RUN x", "not a valid change"), ("CMD [1]", "strings"),
                         ("ENV novalue", "ENV")):
        with pytest.raises(InvalidArgument, match=message):
            apply_changes({}, [bad])
    upper = tmp_path / "upper"
    (upper / "etc").mkdir(parents=True)
    (upper / "etc" / "hosts").write_bytes(b"")  # a mount point stub: not a change
    (upper / "etc" / "app.conf").write_text("x")
    (upper / "etc" / "link").symlink_to("/etc/app.conf")
    out = tmp_path / "layer.tar"
    with open(out, "wb") as f:
        commit.write_layer(upper, f)
    with tarfile.open(out) as tf:
        members = {m.name: m for m in tf.getmembers()}
    assert sorted(members) == ["etc", "etc/app.conf", "etc/link"]
    assert members["etc/link"].issym() and members["etc/link"].linkname == "/etc/app.conf"


def test_detach_keys() -> None:
    assert attach.parse_detach_keys("") == b"\x10\x11"
    assert attach.parse_detach_keys("ctrl-a,x,ctrl-[") == b"\x01x\x1b"
    for bad in ("ctrl-1", "shift-a", "ab"):
        with pytest.raises(InvalidArgument, match="Invalid detach keys"):
            attach.parse_detach_keys(bad)
    scanner = attach.EscapeScanner(b"\x10\x11")
    assert scanner.feed(b"ls\x10") == (b"ls", False)  # a possible start is held back
    assert scanner.feed(b"x") == (b"\x10x", False)  # ... and passed on when it was not
    assert scanner.feed(b"\x10\x10") == (b"\x10", False)
    assert scanner.feed(b"\x11rest") == (b"", True)
    assert attach.EscapeScanner(b"\x10\x11").feed(b"a\x10\x11") == (b"a", True)
