"""Container records, the store, create-request validation and API views (no root needed)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from pycompose.engine.containers.record import ContainerRecord, ContainerState, now_rfc3339
from pycompose.engine.containers.request import validate_create
from pycompose.engine.containers.store import ContainerStore, delete_tree
from pycompose.engine.containers.views import (
    created_before,
    filter_records,
    human_duration,
    inspect,
    parse_filters,
    parse_until,
    status_text,
    summary,
)
from pycompose.engine.errors import Conflict, InvalidArgument, NotFound

# What docker CLI 28 sends for `docker run -d --name xx --network none busybox sleep 1000`.
CLI_BODY: dict[str, Any] = json.loads(
    """{"Hostname":"","Domainname":"","User":"","AttachStdin":false,"AttachStdout":false,
    "AttachStderr":false,"Tty":false,"OpenStdin":false,"StdinOnce":false,"Env":null,
    "Cmd":["sleep","1000"],"Image":"busybox","Volumes":{},"WorkingDir":"","Entrypoint":null,
    "OnBuild":null,"Labels":{},"HostConfig":{"Binds":null,"ContainerIDFile":"",
    "LogConfig":{"Type":"","Config":{}},"NetworkMode":"none","PortBindings":{},
    "RestartPolicy":{"Name":"no","MaximumRetryCount":0},"AutoRemove":false,"VolumeDriver":"",
    "VolumesFrom":null,"ConsoleSize":[0,0],"CapAdd":null,"CapDrop":null,"CgroupnsMode":"",
    "Dns":[],"DnsOptions":[],"DnsSearch":[],"ExtraHosts":null,"GroupAdd":null,"IpcMode":"",
    "Cgroup":"","Links":null,"OomScoreAdj":0,"PidMode":"","Privileged":false,
    "PublishAllPorts":false,"ReadonlyRootfs":false,"SecurityOpt":null,"UTSMode":"",
    "UsernsMode":"","ShmSize":0,"Isolation":"","CpuShares":0,"Memory":0,"NanoCpus":0,
    "CgroupParent":"","BlkioWeight":0,"BlkioWeightDevice":[],"BlkioDeviceReadBps":[],
    "BlkioDeviceWriteBps":[],"BlkioDeviceReadIOps":[],"BlkioDeviceWriteIOps":[],"CpuPeriod":0,
    "CpuQuota":0,"CpuRealtimePeriod":0,"CpuRealtimeRuntime":0,"CpusetCpus":"","CpusetMems":"",
    "Devices":[],"DeviceCgroupRules":null,"DeviceRequests":null,"MemoryReservation":0,
    "MemorySwap":0,"MemorySwappiness":-1,"OomKillDisable":false,"PidsLimit":0,"Ulimits":[],
    "CpuCount":0,"CpuPercent":0,"IOMaximumIOps":0,"IOMaximumBandwidth":0,"MaskedPaths":null,
    "ReadonlyPaths":null},"NetworkingConfig":{"EndpointsConfig":{}}}"""
)


def body(**host: Any) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(json.dumps(CLI_BODY))
    out["HostConfig"].update(host)
    return out


def test_docker_cli_defaults_are_accepted_and_filled() -> None:
    config, host, networking = validate_create(body())
    assert config["Cmd"] == ["sleep", "1000"]
    assert host["ShmSize"] == 64 * 1024 * 1024
    assert host["LogConfig"] == {"Type": "json-file", "Config": {}}
    assert host["RestartPolicy"] == {"Name": "no", "MaximumRetryCount": 0}
    assert networking == {"EndpointsConfig": {}}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("DeviceRequests", [{"Count": -1}], "HostConfig.DeviceRequests"),
        ("UsernsMode", "private", "HostConfig.UsernsMode"),
        ("NoSuchField", 1, "unknown field HostConfig.NoSuchField"),
        ("RestartPolicy", {"Name": "sometimes"}, "invalid restart policy"),
        ("LogConfig", {"Type": "syslog"}, "logging driver 'syslog'"),
        ("Memory", 1024, "Minimum memory limit"),
        ("Memory", "1g", "must be an integer"),
    ],
)
def test_unsupported_values_are_named(field: str, value: Any, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        validate_create(body(**{field: value}))


def test_unknown_top_level_field_and_bad_shapes() -> None:
    with pytest.raises(InvalidArgument, match="unknown field Bogus"):
        validate_create({**CLI_BODY, "Bogus": True})
    with pytest.raises(InvalidArgument, match="list of strings"):
        validate_create({**CLI_BODY, "Cmd": "echo hi"})
    with pytest.raises(InvalidArgument, match="image is required"):
        validate_create({**CLI_BODY, "Image": ""})
    with pytest.raises(InvalidArgument, match="JSON object"):
        validate_create(["not", "an", "object"])
    with pytest.raises(InvalidArgument, match="AutoRemove"):
        validate_create(body(AutoRemove=True, RestartPolicy={"Name": "always"}))


def record(name: str = "web", status: str = "running", **kw: Any) -> ContainerRecord:
    rec = ContainerRecord(
        id=kw.pop("id", "a" * 64),
        name=name,
        created=kw.pop("created", now_rfc3339()),
        image_id="sha256:" + "b" * 64,
        image_name="busybox",
        config={"Labels": kw.pop("labels", {}), "Cmd": ["sleep", "1000"]},
        host_config={"NetworkMode": "none"},
        path="sleep",
        args=["1000"],
    )
    rec.state.status = status
    rec.state.started_at = now_rfc3339()
    return rec


def test_store_round_trip_and_lookup(tmp_path: Path) -> None:
    store = ContainerStore(tmp_path)
    rec = record()
    store.add(rec)
    again = ContainerStore(tmp_path)
    assert again.get("web").to_json() == rec.to_json()
    assert again.get("/web").id == rec.id
    assert again.get("aaa").id == rec.id
    with pytest.raises(NotFound, match="No such container: nope"):
        again.get("nope")
    with pytest.raises(Conflict, match='"/web" is already in use'):
        again.claim_name("web")
    with pytest.raises(InvalidArgument, match="Invalid container name"):
        again.claim_name("x")
    assert again.claim_name("") not in ("", "web")


def test_store_skips_torn_records_and_remove_never_follows_symlinks(tmp_path: Path) -> None:
    store = ContainerStore(tmp_path)
    rec = record()
    store.add(rec)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_text("keep")
    (store.dir(rec.id) / "link").symlink_to(outside)
    torn = store.root / ("c" * 64)
    torn.mkdir()
    (torn / "record.json").write_text('{"id": ')
    again = ContainerStore(tmp_path)
    assert [b[0] for b in again.broken] == ["c" * 64]
    removed = again.remove(again.get("web"))
    assert removed is not None and not store.dir(rec.id).exists()
    assert [b[0] for b in ContainerStore(tmp_path).broken] == [removed.name, "c" * 64]
    delete_tree(removed)
    assert (outside / "precious").read_text() == "keep"
    assert not removed.exists()


def test_state_machine_refuses_impossible_moves() -> None:
    state = ContainerState(status="exited")
    with pytest.raises(Conflict, match="cannot move to paused"):
        state.transition("paused", "web")
    state.transition("running", "web")
    assert state.docker()["Running"] is True


def test_views_shapes() -> None:
    rec = record(labels={"com.docker.compose.project": "demo"})
    data = inspect(rec)
    assert data["Name"] == "/web" and data["State"]["Status"] == "running"
    assert data["Path"] == "sleep" and data["Args"] == ["1000"]
    entry = summary(rec)
    assert entry["Names"] == ["/web"] and entry["Command"] == "sleep 1000"
    assert entry["Status"].startswith("Up ")


def test_status_text_and_durations() -> None:
    rec = record(status="exited")
    rec.state.exit_code = 3
    rec.state.finished_at = "2026-01-01T00:00:00.000000000Z"
    later = dt.datetime(2026, 1, 1, 0, 5, tzinfo=dt.UTC)
    assert status_text(rec, later) == "Exited (3) 5 minutes ago"
    assert human_duration(0.2) == "Less than a second"
    assert human_duration(90) == "About a minute"
    assert human_duration(3 * 3600) == "3 hours"


def test_filters() -> None:
    running = record("web", labels={"tier": "front"})
    stopped = record("db", status="exited", id="d" * 64)
    stopped.state.exit_code = 1
    records = [running, stopped]
    assert filter_records(records, {}, all_states=False) == [running]
    assert len(filter_records(records, {}, all_states=True)) == 2
    assert filter_records(records, {"status": ["exited"]}, all_states=False) == [stopped]
    assert filter_records(records, {"label": ["tier=front"]}, all_states=True) == [running]
    assert filter_records(records, {"exited": ["1"]}, all_states=True) == [stopped]
    assert filter_records(records, parse_filters('{"name": {"db": true}}'), all_states=True) == [
        stopped
    ]
    assert filter_records(records, {"network": ["none"]}, all_states=True) == records
    assert filter_records(records, {"network": ["host"]}, all_states=True) == []
    assert filter_records(records, {"health": ["none"]}, all_states=True) == records
    assert filter_records(records, {"is-task": ["true"]}, all_states=True) == []
    assert filter_records(records, {"publish": ["80"]}, all_states=True) == []
    with pytest.raises(InvalidArgument, match="health"):
        filter_records(records, {"health": ["great"]}, all_states=True)
    with pytest.raises(InvalidArgument):
        filter_records(records, {"colour": ["red"]}, all_states=True)
    with pytest.raises(InvalidArgument):
        parse_filters("{not json")


def test_until_filter_values() -> None:
    now = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
    assert parse_until("1h30m", now) == dt.datetime(2026, 1, 1, 22, 30, tzinfo=dt.UTC)
    assert parse_until("1767225600", now) == dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert parse_until("2026-01-01T00:00:00Z", now) == dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert parse_until("2026-01-01", now) == dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    with pytest.raises(InvalidArgument, match="until"):
        parse_until("last week", now)
    rec = record(created="2025-12-31T00:00:00.000000000Z")
    assert created_before(rec, now) and not created_before(rec, dt.datetime(2025, 1, 1,
                                                                             tzinfo=dt.UTC))
