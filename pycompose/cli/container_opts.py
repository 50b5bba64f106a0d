"""``run``/``create`` flags turned into a Docker Engine API create request, as docker's CLI
builds it: the same fields, the same defaults, the same parsing of ports, volumes, mounts,
sizes, ulimits and restart policies. Pure functions; nothing here talks to the engine.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from pycompose.cli.container_parse import (
    OptionError,
    duration_ns,
    go_duration,
    key_values,
    nano_cpus,
    parse_add_host,
    parse_env,
    parse_env_file,
    parse_expose,
    parse_labels,
    parse_mount,
    parse_port,
    parse_restart,
    parse_security_opts,
    parse_ulimit,
    ram_in_bytes,
    read_label_files,
)


class RunOptions(NamedTuple):
    """Every ``run``/``create`` flag, as given on the command line."""

    image: str
    command: tuple[str, ...] = ()
    interactive: bool = False
    tty: bool = False
    detach: bool = False
    name: str | None = None
    rm: bool = False
    env: tuple[str, ...] = ()
    env_file: tuple[str, ...] = ()
    volume: tuple[str, ...] = ()
    mount: tuple[str, ...] = ()
    tmpfs: tuple[str, ...] = ()
    publish: tuple[str, ...] = ()
    publish_all: bool = False
    network: str | None = None
    entrypoint: str | None = None
    workdir: str = ""
    user: str = ""
    init: bool = False
    restart: str = "no"
    label: tuple[str, ...] = ()
    hostname: str = ""
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    privileged: bool = False
    read_only: bool = False
    memory: str | None = None
    cpus: str | None = None
    pids_limit: int | None = None
    ulimit: tuple[str, ...] = ()
    security_opt: tuple[str, ...] = ()
    add_host: tuple[str, ...] = ()
    dns: tuple[str, ...] = ()
    link: tuple[str, ...] = ()
    stop_signal: str | None = None
    stop_timeout: int | None = None
    shm_size: str | None = None
    platform: str | None = None
    pull: str = "missing"
    expose: tuple[str, ...] = ()
    label_file: tuple[str, ...] = ()
    dns_search: tuple[str, ...] = ()
    dns_option: tuple[str, ...] = ()
    group_add: tuple[str, ...] = ()
    sysctl: tuple[str, ...] = ()
    volumes_from: tuple[str, ...] = ()
    log_driver: str = ""
    log_opt: tuple[str, ...] = ()
    health_cmd: str | None = None
    health_interval: str | None = None
    health_timeout: str | None = None
    health_start_period: str | None = None
    health_start_interval: str | None = None
    health_retries: int | None = None
    no_healthcheck: bool = False
    console_size: tuple[int, int] = (0, 0)
    environ: Mapping[str, str] | None = None  # None: this process's environment


class CreateRequest(NamedTuple):
    """``POST /containers/create``: the query (name, platform) and the JSON body."""

    query: dict[str, str]
    body: dict[str, Any]


_HOSTNAME_RE = re.compile(
    r"^(([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9\-]*[a-zA-Z0-9])\.)*"
    r"([A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9\-]*[A-Za-z0-9])$")
_NAME_RE = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
_BUILTIN_NETWORKS = ("default", "bridge", "host", "none")


def healthcheck(opts: RunOptions) -> dict[str, Any] | None:
    """``Config.Healthcheck`` from the ``--health-*`` flags, as docker's CLI sends it: only
    the fields given (non-zero), ``None`` when none is, ``{"Test": ["NONE"]}`` for
    ``--no-healthcheck``."""
    durations = {"Interval": ("--health-interval", opts.health_interval),
                 "Timeout": ("--health-timeout", opts.health_timeout),
                 "StartPeriod": ("--health-start-period", opts.health_start_period),
                 "StartInterval": ("--health-start-interval", opts.health_start_interval)}
    values: dict[str, Any] = {}
    for key, (flag, text) in durations.items():
        if text is not None and text.strip().startswith("-") and go_duration(text.strip()[1:]):
            raise OptionError(f"{flag} cannot be negative")
        values[key] = duration_ns(text, flag)
    retries = opts.health_retries or 0
    given = bool(opts.health_cmd) or retries != 0 or any(values.values())
    if opts.no_healthcheck:
        if given:
            raise OptionError("--no-healthcheck conflicts with --health-* options")
        return {"Test": ["NONE"]}
    if not given:
        return None
    if retries < 0:
        raise OptionError("--health-retries cannot be negative")
    out: dict[str, Any] = {"Test": ["CMD-SHELL", opts.health_cmd]} if opts.health_cmd else {}
    out.update((key, ns) for key, ns in values.items() if ns)
    if retries:
        out["Retries"] = retries
    return out


def _volumes(values: Sequence[str]) -> tuple[list[str], dict[str, Any]]:
    binds: list[str] = []
    anonymous: dict[str, Any] = {}
    for spec in values:
        if not spec:
            raise OptionError("invalid empty volume spec")
        parts = spec.split(":")
        if len(parts) == 1:
            anonymous[spec] = {}
        elif len(parts) in (2, 3) and parts[1].startswith("/"):
            if parts[0].startswith("."):  # relative host paths are taken from the cwd
                parts[0] = os.path.abspath(parts[0])
            binds.append(":".join(parts))
        else:
            raise OptionError(f"invalid volume specification: '{spec}'")
    return binds, anonymous


def _tmpfs(values: Sequence[str]) -> dict[str, str]:
    out = {}
    for item in values:
        path, _, opts = item.partition(":")
        if not path.startswith("/"):
            raise OptionError(f"invalid tmpfs destination {path!r}: must be absolute")
        out[path] = opts
    return out


def _ports(opts: RunOptions) -> tuple[dict[str, Any], dict[str, list[dict[str, str]]]]:
    exposed: dict[str, Any] = {}
    bindings: dict[str, list[dict[str, str]]] = {}
    for spec in opts.publish:
        for port, binding in parse_port(spec):
            exposed[port] = {}
            bindings.setdefault(port, []).append(binding)
    return exposed, bindings


def check_options(opts: RunOptions) -> None:
    """Combinations docker refuses before sending anything."""
    if opts.rm and opts.restart not in ("no", ""):
        raise OptionError("Conflicting options: --restart and --rm")
    if opts.name is not None and not _NAME_RE.match(opts.name):
        raise OptionError(f"Invalid container name ({opts.name}), only "
                          f"[a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    if opts.hostname and (len(opts.hostname) > 64 or not _HOSTNAME_RE.match(opts.hostname)):
        raise OptionError(f"invalid hostname format: {opts.hostname}")
    if opts.pull not in ("missing", "always", "never"):
        raise OptionError(f'invalid pull option: \'{opts.pull}\': must be one of '
                          f'"always", "missing" or "never"')


def create_request(opts: RunOptions) -> CreateRequest:
    """The create request docker's CLI sends for these flags."""
    check_options(opts)
    attach = not opts.detach
    environ = os.environ if opts.environ is None else opts.environ
    env = [line for path in opts.env_file for line in parse_env_file(path, environ)]
    env += parse_env(opts.env, environ)
    exposed, bindings = _ports(opts)
    binds, anonymous = _volumes(opts.volume)
    network = opts.network or "default"
    config: dict[str, Any] = {
        "Hostname": opts.hostname, "Domainname": "", "User": opts.user,
        "AttachStdin": attach and opts.interactive, "AttachStdout": attach,
        "AttachStderr": attach, "Tty": opts.tty, "OpenStdin": opts.interactive,
        "StdinOnce": attach and opts.interactive, "Env": env or None,
        "Cmd": list(opts.command) or None, "Image": opts.image, "Volumes": anonymous,
        "WorkingDir": opts.workdir,
        "Entrypoint": None if opts.entrypoint is None else [opts.entrypoint],
        "OnBuild": None, "Labels": parse_labels([*read_label_files(opts.label_file),
                                                 *opts.label]),
    }
    exposed = {**parse_expose(opts.expose), **exposed}
    if exposed:
        config["ExposedPorts"] = exposed
    health = healthcheck(opts)
    if health is not None:
        config["Healthcheck"] = health
    if opts.stop_signal:
        config["StopSignal"] = opts.stop_signal
    if opts.stop_timeout is not None:
        config["StopTimeout"] = opts.stop_timeout
    config["HostConfig"] = host_config(opts, binds, bindings, network)
    builtin = network in _BUILTIN_NETWORKS or network.startswith("container:")
    endpoints: dict[str, Any] = {} if builtin else {network: {}}
    config["NetworkingConfig"] = {"EndpointsConfig": endpoints}
    query = {"name": opts.name} if opts.name else {}
    if opts.platform:
        query["platform"] = opts.platform
    return CreateRequest(query, config)


def host_config(opts: RunOptions, binds: list[str], bindings: dict[str, Any],
                network: str) -> dict[str, Any]:
    """The ``HostConfig`` part, every field docker sends, in its order."""
    host: dict[str, Any] = {
        "Binds": binds or None, "ContainerIDFile": "",
        "LogConfig": {"Type": opts.log_driver, "Config": key_values(opts.log_opt, "log-opt")},
        "NetworkMode": network, "PortBindings": bindings,
        "RestartPolicy": parse_restart(opts.restart), "AutoRemove": opts.rm,
        "VolumeDriver": "", "VolumesFrom": list(opts.volumes_from) or None,
        "ConsoleSize": list(opts.console_size),
        "CapAdd": list(opts.cap_add) or None, "CapDrop": list(opts.cap_drop) or None,
        "CgroupnsMode": "", "Dns": list(opts.dns), "DnsOptions": list(opts.dns_option),
        "DnsSearch": list(opts.dns_search),
        "ExtraHosts": [parse_add_host(h) for h in opts.add_host] or None,
        "GroupAdd": list(opts.group_add) or None,
        "IpcMode": "", "Cgroup": "", "Links": list(opts.link) or None, "OomScoreAdj": 0,
        "PidMode": "", "Privileged": opts.privileged, "PublishAllPorts": opts.publish_all,
        "ReadonlyRootfs": opts.read_only,
        "SecurityOpt": parse_security_opts(opts.security_opt) or None, "UTSMode": "",
        "UsernsMode": "", "ShmSize": ram_in_bytes(opts.shm_size) if opts.shm_size else 0,
        "Isolation": "", "CpuShares": 0,
        "Memory": ram_in_bytes(opts.memory) if opts.memory else 0,
        "NanoCpus": nano_cpus(opts.cpus) if opts.cpus else 0, "CgroupParent": "",
        "BlkioWeight": 0, "BlkioWeightDevice": [], "BlkioDeviceReadBps": [],
        "BlkioDeviceWriteBps": [], "BlkioDeviceReadIOps": [], "BlkioDeviceWriteIOps": [],
        "CpuPeriod": 0, "CpuQuota": 0, "CpuRealtimePeriod": 0, "CpuRealtimeRuntime": 0,
        "CpusetCpus": "", "CpusetMems": "", "Devices": [], "DeviceCgroupRules": None,
        "DeviceRequests": None, "MemoryReservation": 0, "MemorySwap": 0,
        "MemorySwappiness": -1, "OomKillDisable": False,
        "PidsLimit": opts.pids_limit or 0, "Ulimits": [parse_ulimit(u) for u in opts.ulimit],
        "CpuCount": 0, "CpuPercent": 0, "IOMaximumIOps": 0, "IOMaximumBandwidth": 0,
        "MaskedPaths": None, "ReadonlyPaths": None,
    }
    if opts.mount:
        host["Mounts"] = [parse_mount(m) for m in opts.mount]
    if opts.tmpfs:
        host["Tmpfs"] = _tmpfs(opts.tmpfs)
    if opts.init:
        host["Init"] = True
    if opts.sysctl:
        host["Sysctls"] = key_values(opts.sysctl, "sysctl")
    return host
