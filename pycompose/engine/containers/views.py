"""How containers look through the API: inspect, list entries and list filters.

Shapes follow the Docker Engine API (v1.41+) field by field, so the docker CLI's
templates (``--format '{{.State.Pid}}'``) and docker-py read our answers unchanged.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
import shlex
from collections.abc import Iterable, Mapping
from typing import Any

from pycompose.engine.containers import health
from pycompose.engine.containers.record import ZERO_TIME, ContainerRecord
from pycompose.engine.errors import InvalidArgument
from pycompose.humanize import human_duration

LIST_FILTERS = ("id", "name", "label", "status", "exited", "ancestor", "before", "since")
STATUSES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")


def _parse_time(stamp: str) -> _dt.datetime:
    text = stamp.rstrip("Z")
    if "." in text:
        head, frac = text.split(".", 1)
        text = f"{head}.{frac[:6]}"
    return _dt.datetime.fromisoformat(text).replace(tzinfo=_dt.UTC)


def status_text(record: ContainerRecord, now: _dt.datetime | None = None) -> str:
    """The ``Status`` column of ``docker ps``: "Up 5 seconds (healthy)", "Exited (0) 2
    minutes ago"."""
    now = now or _dt.datetime.now(_dt.UTC)
    state = record.state
    if state.status in ("running", "paused"):
        text = f"Up {human_duration((now - _parse_time(state.started_at)).total_seconds())}"
        if state.status == "paused":
            return text + " (Paused)"
        return text + health.ps_suffix(state.health)
    if state.status == "restarting":
        ago = human_duration((now - _parse_time(state.finished_at)).total_seconds())
        return f"Restarting ({state.exit_code}) {ago} ago"
    if state.status == "exited" and state.finished_at != ZERO_TIME:
        ago = human_duration((now - _parse_time(state.finished_at)).total_seconds())
        return f"Exited ({state.exit_code}) {ago} ago"
    if state.status == "removing":
        return "Removal In Progress"
    if state.status == "dead":
        return "Dead"
    return "Created"


def command_text(record: ContainerRecord) -> str:
    return " ".join(
        shlex.quote(part) if " " in part else part for part in [record.path, *record.args]
    )


def inspect(record: ContainerRecord, *, image_id: str | None = None) -> dict[str, Any]:
    """Docker's ``GET /containers/{id}/json``."""
    return {
        "Id": record.id,
        "Created": record.created,
        "Path": record.path,
        "Args": list(record.args),
        "State": record.state.docker(),
        "Image": image_id or record.image_id,
        "ResolvConfPath": record.network_settings.get("ResolvConfPath", ""),
        "HostnamePath": record.network_settings.get("HostnamePath", ""),
        "HostsPath": record.network_settings.get("HostsPath", ""),
        "LogPath": record.network_settings.get("LogPath", ""),
        "Name": "/" + record.name,
        "RestartCount": record.restart_count,
        "Driver": "overlay",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": list(record.exec_ids) or None,
        "HostConfig": record.host_config,
        "GraphDriver": {"Name": "overlay", "Data": record.network_settings.get("GraphDriver", {})},
        "Mounts": record.mounts,
        "Config": record.config,
        "NetworkSettings": {
            k: v
            for k, v in record.network_settings.items()
            if k not in ("ResolvConfPath", "HostnamePath", "HostsPath", "LogPath", "GraphDriver")
        },
    }


def summary(record: ContainerRecord, now: _dt.datetime | None = None) -> dict[str, Any]:
    """One entry of ``GET /containers/json``."""
    created = int(_parse_time(record.created).timestamp())
    networks = record.network_settings.get("Networks") or {}
    return {
        "Id": record.id,
        "Names": ["/" + record.name],
        "Image": record.image_name,
        "ImageID": record.image_id,
        "Command": command_text(record),
        "Created": created,
        "Ports": record.network_settings.get("PortSummary", []),
        "Labels": record.labels,
        "State": record.state.status,
        "Status": status_text(record, now),
        "HostConfig": {"NetworkMode": record.host_config.get("NetworkMode", "default")},
        "NetworkSettings": {"Networks": networks},
        "Mounts": record.mounts,
    }


def parse_filters(raw: str | None) -> dict[str, list[str]]:
    """Docker's ``filters`` query: ``{"key": ["v"]}`` or the legacy ``{"key": {"v": true}}``."""
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError as err:
        raise InvalidArgument(f"invalid filters: {err}") from err
    if not isinstance(data, dict):
        raise InvalidArgument("invalid filters: expected a JSON object")
    out: dict[str, list[str]] = {}
    for key, values in data.items():
        if isinstance(values, dict):
            out[key] = [k for k, v in values.items() if v]
        elif isinstance(values, list):
            out[key] = [str(v) for v in values]
        else:
            raise InvalidArgument(f"invalid filter value for {key!r}")
    return out


def _label_match(labels: Mapping[str, str], wanted: str) -> bool:
    key, eq, value = wanted.partition("=")
    if key not in labels:
        return False
    return not eq or labels[key] == value


def _network_of(record: ContainerRecord) -> str:
    mode = str(record.host_config.get("NetworkMode") or "default")
    return "bridge" if mode == "default" else mode


def _published(record: ContainerRecord, value: str) -> bool:
    # Docker's publish filter: "8080", "8080/tcp" or a range, matched on the host port.
    port, _, proto = value.partition("/")
    low, _, high = port.partition("-")
    for p in record.network_settings.get("PortSummary") or []:
        if proto and p.get("Type") != proto:
            continue
        if low.isdigit() and int(low) <= int(p.get("PublicPort") or 0) <= int(high or low):
            return True
    return False


def _health(record: ContainerRecord, value: str) -> bool:
    if value not in ("starting", "healthy", "unhealthy", "none"):
        raise InvalidArgument(f"Unrecognised filter value for health: {value}")
    # As in dockerd, a stopped container keeps its last health (unhealthy once stopped).
    return health.status_of(record.state.health) == value


def _volume(record: ContainerRecord, value: str) -> bool:
    # Docker: a volume by its name, a bind by its host path, either by its destination.
    return any((m.get("Name") or m.get("Source")) == value or m.get("Destination") == value
               for m in record.mounts)  # fmt: skip


_SIMPLE: dict[str, Any] = {
    "network": lambda r, v: (
        _network_of(r) == v
        or r.host_config.get("NetworkMode") == v
        # Docker matches every network the container is on, by name or id.
        or any(name == v or (ep or {}).get("NetworkID") == v
               for name, ep in (r.network_settings.get("Networks") or {}).items())
    ),
    "health": _health,
    "volume": _volume,
    "expose": lambda r, v: v in (r.config.get("ExposedPorts") or {})
    or f"{v}/tcp" in (r.config.get("ExposedPorts") or {}),
    "publish": lambda r, v: _published(r, v),
    "is-task": lambda r, v: v == "false",
    "isolation": lambda r, v: v in ("default", ""),
}
"""List filters decided by one predicate per value (values of a key are OR-ed)."""


def matches(
    record: ContainerRecord,
    filters: Mapping[str, list[str]],
    image_matches: Any = None,
    order: Mapping[str, int] | None = None,
) -> bool:
    """Whether ``record`` passes every filter (values of one key are OR-ed, keys AND-ed)."""
    for key, values in filters.items():
        if not values:
            continue
        if key == "id":
            ok = any(record.id.startswith(v) for v in values)
        elif key == "name":
            ok = any(v.lstrip("/") in record.name for v in values)
        elif key == "label":
            ok = all(_label_match(record.labels, v) for v in values)
        elif key == "status":
            for value in values:
                if value not in STATUSES:
                    raise InvalidArgument(f"invalid filter 'status={value}'")
            ok = record.state.status in values
        elif key == "exited":
            ok = record.state.status == "exited" and str(record.state.exit_code) in values
        elif key == "ancestor":
            ok = bool(image_matches and any(image_matches(record, v) for v in values))
        elif key in _SIMPLE:
            ok = any(_SIMPLE[key](record, v) for v in values)
        elif key in ("before", "since") and order is not None:
            position = order.get(record.id, 0)
            refs = [order.get(v) for v in values]
            if any(r is None for r in refs):
                raise InvalidArgument(f"no such container for filter {key}")
            ok = all(
                (position < r) if key == "before" else (position > r) for r in refs if r is not None
            )
        else:
            raise InvalidArgument(f"invalid filter '{key}'")
        if not ok:
            return False
    return True


def filter_records(
    records: Iterable[ContainerRecord],
    filters: Mapping[str, list[str]],
    *,
    all_states: bool,
    image_matches: Any = None,
) -> list[ContainerRecord]:
    """``docker ps`` semantics: running only unless ``all``, then the filters."""
    records = list(records)
    order = {r.id: i for i, r in enumerate(sorted(records, key=lambda r: r.created))}
    for r in records:
        order.setdefault(r.name, order[r.id])
    out = []
    for record in records:
        # As in Docker, a status filter lists stopped containers even without --all.
        hide_stopped = not all_states and "status" not in filters and "exited" not in filters
        if hide_stopped and record.state.status not in ("running", "paused", "restarting"):
            continue
        if matches(record, filters, image_matches, order):
            out.append(record)
    return out


_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)(h|m|s|ms))+$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def parse_until(value: str, now: _dt.datetime | None = None) -> _dt.datetime:
    """Docker's ``until`` filter: unix seconds, an RFC 3339 time or date, or a Go duration
    (``10m``, ``1h30m``) before now."""
    now = now or _dt.datetime.now(_dt.UTC)
    text = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return _dt.datetime.fromtimestamp(float(text), _dt.UTC)
    if _DURATION.match(text):
        seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))
        return now - _dt.timedelta(seconds=seconds)
    try:
        stamp = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidArgument(f"invalid value for until filter: {value!r}") from None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=_dt.UTC)


def created_before(record: ContainerRecord, limit: _dt.datetime) -> bool:
    """Whether the container was created before ``limit``."""
    return _parse_time(record.created) < limit
