"""Validating a ``POST /containers/create`` body.

Real clients send every field, mostly at zero values. Each field the API defines is in
one of the tables below: ``SUPPORTED`` fields are honoured; for the others the table gives
the predicate for "left at its default", and any other value is refused with a 400 that
names the field, so nothing a client asks for is silently dropped. Fields the API does not
define at all are refused too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pycompose.engine.containers import health
from pycompose.engine.errors import InvalidArgument

Predicate = Callable[[Any], bool]


def _empty(value: Any) -> bool:
    return value in (None, "", 0, False, [], {}) or value == [0, 0]


def _zero_or_minus_one(value: Any) -> bool:
    return value in (None, 0, -1)


def _one_of(*allowed: Any) -> Predicate:
    return lambda value: value in allowed


SUPPORTED = object()
"""Marker: the engine honours this field."""

# Top-level fields of the create body (Docker's ContainerConfig plus two sub-objects).
CONFIG_FIELDS: dict[str, object] = {
    "Hostname": SUPPORTED,
    "Domainname": SUPPORTED,
    "User": SUPPORTED,
    "AttachStdin": SUPPORTED,
    "AttachStdout": SUPPORTED,
    "AttachStderr": SUPPORTED,
    "ExposedPorts": SUPPORTED,
    "Tty": SUPPORTED,
    "OpenStdin": SUPPORTED,
    "StdinOnce": SUPPORTED,
    "Env": SUPPORTED,
    "Cmd": SUPPORTED,
    "Image": SUPPORTED,
    "WorkingDir": SUPPORTED,
    "Entrypoint": SUPPORTED,
    "Labels": SUPPORTED,
    "StopSignal": SUPPORTED,
    "StopTimeout": SUPPORTED,
    "NetworkDisabled": SUPPORTED,
    "Shell": SUPPORTED,
    "ArgsEscaped": _one_of(None, False),
    "OnBuild": _empty,
    "Volumes": SUPPORTED,
    "Healthcheck": SUPPORTED,  # checked by health.validate
    "MacAddress": SUPPORTED,
    "HostConfig": SUPPORTED,
    "NetworkingConfig": SUPPORTED,
    # pycompose's own: compose secrets and configs as files (see pycompose.storage.secrets)
    "Secrets": SUPPORTED,
    "Configs": SUPPORTED,
}

HOST_CONFIG_FIELDS: dict[str, object] = {
    "Binds": SUPPORTED,
    "Mounts": SUPPORTED,
    "Tmpfs": SUPPORTED,
    "ContainerIDFile": SUPPORTED,  # a client-side file; the engine only echoes it
    "LogConfig": SUPPORTED,
    "NetworkMode": SUPPORTED,
    "RestartPolicy": SUPPORTED,
    "AutoRemove": SUPPORTED,
    "ConsoleSize": SUPPORTED,
    "CapAdd": SUPPORTED,
    "CapDrop": SUPPORTED,
    "CgroupnsMode": _one_of(None, "", "host", "private"),
    "Dns": SUPPORTED,
    "DnsOptions": SUPPORTED,
    "DnsSearch": SUPPORTED,
    "ExtraHosts": SUPPORTED,
    "GroupAdd": SUPPORTED,
    "IpcMode": _one_of(None, "", "private", "shareable", "none", "host"),
    "PidMode": _one_of(None, "", "host"),
    "UTSMode": _one_of(None, "", "host"),
    "OomScoreAdj": SUPPORTED,
    "Privileged": SUPPORTED,
    "ReadonlyRootfs": SUPPORTED,
    "SecurityOpt": SUPPORTED,
    "ShmSize": SUPPORTED,
    "CpuShares": SUPPORTED,
    "Memory": SUPPORTED,
    "MemorySwap": SUPPORTED,
    "MemoryReservation": SUPPORTED,
    "NanoCpus": SUPPORTED,
    "CpuPeriod": SUPPORTED,
    "CpuQuota": SUPPORTED,
    "CpusetCpus": SUPPORTED,
    "CpusetMems": SUPPORTED,
    "PidsLimit": SUPPORTED,
    "Ulimits": SUPPORTED,
    "Init": SUPPORTED,
    "Sysctls": SUPPORTED,
    "Devices": SUPPORTED,
    "MaskedPaths": SUPPORTED,
    "ReadonlyPaths": SUPPORTED,
    "Runtime": SUPPORTED,
    "Isolation": _one_of(None, "", "default"),
    "UsernsMode": _one_of(None, "", "host"),
    "VolumeDriver": _one_of(None, "", "local"),
    "VolumesFrom": SUPPORTED,
    "PortBindings": SUPPORTED,
    "PublishAllPorts": SUPPORTED,
    "Links": SUPPORTED,
    "Cgroup": _empty,
    "CgroupParent": _empty,
    "BlkioWeight": _empty,
    "BlkioWeightDevice": _empty,
    "BlkioDeviceReadBps": _empty,
    "BlkioDeviceWriteBps": _empty,
    "BlkioDeviceReadIOps": _empty,
    "BlkioDeviceWriteIOps": _empty,
    "CpuRealtimePeriod": _empty,
    "CpuRealtimeRuntime": _empty,
    "DeviceCgroupRules": _empty,
    "DeviceRequests": _empty,
    "KernelMemory": _empty,
    "KernelMemoryTCP": _empty,
    "MemorySwappiness": _zero_or_minus_one,
    "OomKillDisable": _empty,
    "CpuCount": _empty,
    "CpuPercent": _empty,
    "IOMaximumIOps": _empty,
    "IOMaximumBandwidth": _empty,
    "StorageOpt": _empty,
    "Annotations": _empty,
}

RESTART_POLICIES = ("", "no", "always", "on-failure", "unless-stopped")
LOG_DRIVERS = ("", "json-file", "local", "none")
LOG_OPTIONS = ("max-size", "max-file", "compress", "labels", "env", "tag", "mode")


def _check_fields(body: Mapping[str, Any], table: Mapping[str, object], where: str) -> None:
    for key, value in body.items():
        rule = table.get(key)
        if rule is None:
            raise InvalidArgument(f"unknown field {where}{key} in the create request")
        if rule is SUPPORTED:
            continue
        assert callable(rule)
        if not rule(value):
            raise InvalidArgument(
                f"{where}{key}={value!r} is not supported by this engine (only its default is)"
            )


def _check_restart(policy: Any, auto_remove: bool) -> dict[str, Any]:
    policy = dict(policy or {})
    name = policy.get("Name") or "no"
    if name not in RESTART_POLICIES:
        raise InvalidArgument(f"invalid restart policy '{name}'")
    count = int(policy.get("MaximumRetryCount") or 0)
    if count < 0:
        raise InvalidArgument("invalid restart policy: maximum retry count cannot be negative")
    if count and name != "on-failure":
        raise InvalidArgument(
            "invalid restart policy: maximum retry count can only be used with 'on-failure'"
        )
    if auto_remove and name != "no":
        raise InvalidArgument("can't create 'AutoRemove' container with restart policy")
    return {"Name": name, "MaximumRetryCount": count}


def _check_log_config(log: Any) -> dict[str, Any]:
    log = dict(log or {})
    driver = log.get("Type") or "json-file"
    if driver not in LOG_DRIVERS:
        raise InvalidArgument(
            f"logging driver {driver!r} is not supported (json-file, local, none)"
        )
    options = dict(log.get("Config") or {})
    for key in options:
        if key not in LOG_OPTIONS:
            raise InvalidArgument(f"unknown log opt '{key}' for {driver} log driver")
    return {"Type": driver, "Config": options}


def _check_network_mode(mode: Any, networking: Mapping[str, Any]) -> str:
    mode = mode or "default"
    if not isinstance(mode, str):
        raise InvalidArgument("HostConfig.NetworkMode must be a string")
    endpoints = (networking.get("EndpointsConfig") or {}) if networking else {}
    if not isinstance(endpoints, dict):
        raise InvalidArgument("NetworkingConfig.EndpointsConfig must be an object")
    if mode.startswith("container:") and not mode.partition(":")[2]:
        raise InvalidArgument("invalid network mode container: (no container named)")
    # User networks (any other name) must exist: the networks wiring checks them at create.
    return mode


def validate_create(body: Any) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Check a create body; return (Config, HostConfig, NetworkingConfig) with defaults."""
    if not isinstance(body, dict):
        raise InvalidArgument("the create request body must be a JSON object")
    _check_fields(body, CONFIG_FIELDS, "")
    host = body.get("HostConfig") or {}
    if not isinstance(host, dict):
        raise InvalidArgument("HostConfig must be a JSON object")
    _check_fields(host, HOST_CONFIG_FIELDS, "HostConfig.")
    networking = body.get("NetworkingConfig") or {}
    if not isinstance(networking, dict):
        raise InvalidArgument("NetworkingConfig must be a JSON object")
    if not body.get("Image"):
        raise InvalidArgument("config.Image: an image is required")
    for key in ("Env", "Cmd", "Entrypoint"):
        value = body.get(key)
        if value is not None and (
            not isinstance(value, list) or not all(isinstance(v, str) for v in value)
        ):
            raise InvalidArgument(f"{key} must be a list of strings")
    for entry in body.get("Env") or ():
        if not entry.partition("=")[0]:
            raise InvalidArgument(f"invalid environment variable: {entry}")

    if body.get("Healthcheck") is not None:
        body = {**body, "Healthcheck": health.validate(body["Healthcheck"])}
    # Secrets and Configs carry file content: they go to storage, never into the record.
    config = {k: v for k, v in body.items()
              if k not in ("HostConfig", "NetworkingConfig", "Secrets", "Configs")}  # fmt: skip
    host = dict(host)
    auto_remove = bool(host.get("AutoRemove"))
    host["RestartPolicy"] = _check_restart(host.get("RestartPolicy"), auto_remove)
    host["LogConfig"] = _check_log_config(host.get("LogConfig"))
    host["NetworkMode"] = _check_network_mode(host.get("NetworkMode"), networking)
    for key in ("Memory", "MemorySwap", "NanoCpus", "CpuShares", "ShmSize", "PidsLimit"):
        value = host.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise InvalidArgument(f"HostConfig.{key} must be an integer")
        if key != "MemorySwap" and key != "PidsLimit" and isinstance(value, int) and value < 0:
            raise InvalidArgument(f"HostConfig.{key} cannot be negative")
    if host.get("Memory") and host["Memory"] < 6 * 1024 * 1024:
        raise InvalidArgument("Minimum memory limit allowed is 6MB")
    if not host.get("ShmSize"):
        host["ShmSize"] = 64 * 1024 * 1024
    return config, host, dict(networking)
