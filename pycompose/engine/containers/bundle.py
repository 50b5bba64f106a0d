"""From a create request and its image to what runc needs: merged config and spec parameters.

``merge_image_config`` applies Docker's rules for combining the request's ``Config`` with the
image's (Cmd/Entrypoint, Env, WorkingDir, User, ExposedPorts, Labels, StopSignal,
Healthcheck).
``spec_params`` turns a container record into :class:`ContainerSpecParams` for
:func:`~pycompose.engine.runtime.spec.build_spec`. Pure functions: no kernel access here.

Networking: for ``default``, ``bridge`` and user networks the namespace file comes from the
networking wiring (:class:`RuntimeContext` ``netns``); without it they get a private network
namespace with only ``lo`` up. ``none``, ``host`` and ``container:<id>`` mean what they mean
in Docker.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pycompose.engine.containers import health
from pycompose.engine.errors import InvalidArgument
from pycompose.engine.runtime.cgroups import HostCgroups, limits_of
from pycompose.engine.runtime.etcfiles import EtcParams
from pycompose.engine.runtime.spec import (
    ContainerSpecParams,
    DeviceMapping,
    MountSpec,
    Ulimit,
)

DEFAULT_STOP_TIMEOUT = 10


def merge_image_config(config: dict[str, Any], image: Mapping[str, Any]) -> list[str]:
    """Fill ``config`` (the request's Config, modified in place) from the image's config.

    Returns warnings for image settings that cannot be honoured yet.
    """
    img = image.get("config") or image.get("Config") or {}
    warnings: list[str] = []
    if not config.get("Entrypoint"):
        if not config.get("Cmd"):
            config["Cmd"] = img.get("Cmd")
        if config.get("Entrypoint") is None:
            config["Entrypoint"] = img.get("Entrypoint")
    user_env = list(config.get("Env") or [])
    keys = {e.partition("=")[0] for e in user_env}
    config["Env"] = user_env + [e for e in img.get("Env") or [] if e.partition("=")[0] not in keys]
    for key in ("WorkingDir", "User", "StopSignal"):
        if not config.get(key) and img.get(key):
            config[key] = img[key]
    ports = dict(img.get("ExposedPorts") or {})
    ports.update(config.get("ExposedPorts") or {})
    if ports:
        config["ExposedPorts"] = ports
    labels = dict(img.get("Labels") or {})
    labels.update(config.get("Labels") or {})
    config["Labels"] = labels
    check = health.merge(config.get("Healthcheck"), img.get("Healthcheck"))
    if check is not None:
        config["Healthcheck"] = check
    return warnings


def command_of(config: Mapping[str, Any]) -> list[str]:
    """Entrypoint + Cmd: the process the container runs."""
    return [*(config.get("Entrypoint") or []), *(config.get("Cmd") or [])]


def parse_signal(value: str | int | None, default: int = signal.SIGTERM) -> int:
    """``SIGTERM``, ``TERM``, ``15`` -> 15; invalid names are a 400 naming the signal."""
    if value is None or value == "":
        return default
    if isinstance(value, int) or str(value).isdigit():
        number = int(value)
        if not 0 < number < signal.NSIG:
            raise InvalidArgument(f"invalid signal: {value}")
        return number
    name = str(value).upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise InvalidArgument(f"invalid signal: {value}") from None


def stop_timeout(config: Mapping[str, Any], override: int | None = None) -> int:
    """Grace period before SIGKILL: the query's ``t``, else Config.StopTimeout, else 10 s."""
    if override is not None:
        return override
    value = config.get("StopTimeout")
    return DEFAULT_STOP_TIMEOUT if value is None else int(value)


def _ulimits(host: Mapping[str, Any]) -> tuple[Ulimit, ...]:
    out = []
    for u in host.get("Ulimits") or []:
        try:
            out.append(Ulimit(str(u["Name"]), int(u["Soft"]), int(u["Hard"])))
        except (KeyError, TypeError, ValueError) as err:
            raise InvalidArgument(f"invalid HostConfig.Ulimits entry {u!r}") from err
    return tuple(out)


def _devices(host: Mapping[str, Any]) -> tuple[DeviceMapping, ...]:
    return tuple(
        DeviceMapping(d.get("PathOnHost") or "", d.get("PathInContainer") or "",
                      d.get("CgroupPermissions") or "rwm")
        for d in host.get("Devices") or []
    )


@dataclass(frozen=True)
class RuntimeContext:
    """What the spec needs from outside the record: rootfs, host cgroups, namespaces."""

    rootfs: Path
    host: HostCgroups
    etc_files: Mapping[str, Path]
    ns_path: Callable[[str, str], str]
    """``ns_path(container_ref, kind)`` -> ``/proc/<pid>/ns/<kind>`` of a running container."""
    netns: str = ""
    """The namespace file the networking wiring made for a bridge-like mode ("" : none)."""
    mounts: tuple[MountSpec, ...] = field(default=(), kw_only=True)
    """The user's mounts, staged by storage (``StorageWiring.prepare``), parents first."""


def _ns_mode(mode: str, kind: str, rc: RuntimeContext) -> str:
    if mode in ("", "private", "shareable", "none", "host") and kind == "ipc":
        return mode
    if mode == "host":
        return "host"
    if mode.startswith("container:"):
        return rc.ns_path(mode.partition(":")[2], kind)
    return ""


def network_namespace(mode: str, rc: RuntimeContext) -> str:
    """The spec's network mode: host, a namespace path, or "" for a private netns with lo."""
    if mode == "host":
        return "host"
    if mode.startswith("container:"):
        return rc.ns_path(mode.partition(":")[2], "net")
    if mode != "none" and rc.netns:
        return rc.netns  # bridge-like modes, wired by the networks component
    return ""  # none, or no networks component: a private netns with only lo


def spec_params(
    container_id: str, config: Mapping[str, Any], host: Mapping[str, Any], rc: RuntimeContext
) -> ContainerSpecParams:
    """The OCI spec parameters of a container."""
    mounts = [MountSpec("bind", target, str(path)) for target, path in rc.etc_files.items()]
    users = list(rc.mounts)
    taken = {m.target for m in users}
    # Parents before children (stable), as Docker sorts them: a volume at /etc must not
    # hide the /etc/hosts bind, and /run/secrets/x goes over a /run volume.
    mounts = sorted([m for m in mounts if m.target not in taken] + users,
                    key=lambda m: m.target.rstrip("/").count("/"))  # fmt: skip
    network = network_namespace(host.get("NetworkMode") or "default", rc)
    return ContainerSpecParams(
        container_id=container_id,
        rootfs=rc.rootfs,
        args=tuple(command_of(config)),
        host=rc.host,
        env=tuple(config.get("Env") or ()),
        cwd=config.get("WorkingDir") or "",
        user=config.get("User") or "",
        group_add=tuple(host.get("GroupAdd") or ()),
        hostname="" if network in ("host",) else config.get("Hostname") or "",
        domainname=config.get("Domainname") or "",
        tty=bool(config.get("Tty")),
        read_only=bool(host.get("ReadonlyRootfs")),
        mounts=tuple(mounts),
        privileged=bool(host.get("Privileged")),
        cap_add=tuple(host.get("CapAdd") or ()),
        cap_drop=tuple(host.get("CapDrop") or ()),
        security_opt=tuple(host.get("SecurityOpt") or ()),
        limits=limits_of(host),
        ulimits=_ulimits(host),
        sysctls=tuple((host.get("Sysctls") or {}).items()),
        init=bool(host.get("Init")),
        oom_score_adj=int(host.get("OomScoreAdj") or 0),
        shm_size=int(host.get("ShmSize") or 0),
        network=network,
        pid=_ns_mode(host.get("PidMode") or "", "pid", rc),
        ipc=_ns_mode(host.get("IpcMode") or "", "ipc", rc),
        uts=_ns_mode(host.get("UTSMode") or "", "uts", rc),
        cgroupns=host.get("CgroupnsMode") or "",
        devices=_devices(host),
        masked_paths=tuple(host["MaskedPaths"]) if host.get("MaskedPaths") is not None else None,
        readonly_paths=(
            tuple(host["ReadonlyPaths"]) if host.get("ReadonlyPaths") is not None else None
        ),
    )


def etc_params(config: Mapping[str, Any], host: Mapping[str, Any], host_files: tuple[str, str],
               ) -> EtcParams:
    """The /etc/hosts, resolv.conf and hostname content for a container."""
    extra = []
    for entry in host.get("ExtraHosts") or []:
        name, sep, ip = str(entry).partition(":")
        if not sep or not name:
            raise InvalidArgument(f"invalid HostConfig.ExtraHosts entry {entry!r}: want host:ip")
        extra.append((name, ip))
    mode = host.get("NetworkMode") or "default"
    return EtcParams(
        hostname=config.get("Hostname") or "",
        domainname=config.get("Domainname") or "",
        extra_hosts=tuple(extra),
        dns=tuple(host.get("Dns") or ()),
        dns_search=tuple(host.get("DnsSearch") or ()),
        dns_options=tuple(host.get("DnsOptions") or ()),
        host_network=mode == "host",
        host_resolv_conf=host_files[0],
        host_hosts=host_files[1],
    )
