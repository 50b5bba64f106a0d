"""``run``/``create`` flags turned into a Docker Engine API create request, as docker's CLI
builds it: the same fields, the same defaults, the same parsing of ports, volumes, mounts,
sizes, ulimits and restart policies. Pure functions; nothing here talks to the engine.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pycompose.errors import PycomposeError


class OptionError(PycomposeError):
    """A flag's value cannot be used (docker exits 125 for these in ``run``)."""

    exit_code = 125


@dataclass(frozen=True)
class RunOptions:
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
    console_size: tuple[int, int] = (0, 0)
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))


@dataclass(frozen=True)
class CreateRequest:
    """``POST /containers/create``: the query (name, platform) and the JSON body."""

    query: dict[str, str]
    body: dict[str, Any]


_ULIMITS = frozenset({"core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice",
                      "nofile", "nproc", "rss", "rtprio", "rttime", "sigpending", "stack"})
_RAM_RE = re.compile(r"^(\d+(?:\.\d+)?) ?([kmgtp])?i?b?$", re.IGNORECASE)
_HOSTNAME_RE = re.compile(
    r"^(([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9\-]*[a-zA-Z0-9])\.)*"
    r"([A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9\-]*[A-Za-z0-9])$")
_NAME_RE = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
_BUILTIN_NETWORKS = ("default", "bridge", "host", "none")


def ram_in_bytes(text: str) -> int:
    """Docker's memory sizes: ``512m``, ``1g``, ``1.5GB``, plain bytes; powers of 1024."""
    m = _RAM_RE.match(text.strip())
    if not m:
        raise OptionError(f"invalid size: '{text}'")
    mult = 1024 ** "bkmgtp".index((m.group(2) or "b").lower())
    return int(float(m.group(1)) * mult)


def nano_cpus(text: str) -> int:
    """``--cpus 1.5`` as the API's NanoCpus."""
    try:
        value = float(text)
    except ValueError as err:
        raise OptionError(f"failed to parse {text} as a rational number") from err
    if value < 0:
        raise OptionError(f"invalid value for --cpus: {text}")
    return round(value * 1e9)


def parse_ulimit(text: str) -> dict[str, Any]:
    """``nofile=1024:2048`` (or ``nofile=1024``) as an API Ulimit."""
    name, eq, limits = text.partition("=")
    if not eq:
        raise OptionError(f"invalid ulimit argument: {text}")
    if name not in _ULIMITS:
        raise OptionError(f"invalid ulimit type: {name}")
    soft_s, colon, hard_s = limits.partition(":")
    try:
        soft = int(soft_s)
        hard = int(hard_s) if colon else soft
    except ValueError as err:
        raise OptionError(f"invalid ulimit argument: {text}") from err
    if soft > hard:
        raise OptionError(f"ulimit soft limit must be less than or equal to hard limit: "
                          f"{soft} > {hard}")
    return {"Name": name, "Hard": hard, "Soft": soft}


def parse_restart(text: str) -> dict[str, Any]:
    """``no``, ``always``, ``unless-stopped``, ``on-failure[:N]``."""
    name, colon, count = text.partition(":")
    if name not in ("no", "always", "unless-stopped", "on-failure", ""):
        raise OptionError(f"invalid restart policy '{name}'")
    if colon:
        if name != "on-failure":
            raise OptionError(f"maximum retry count cannot be used with restart policy "
                              f"'{name}'")
        if not count.isdigit():
            raise OptionError(f"maximum retry count must be an integer: {count}")
    return {"Name": name or "no", "MaximumRetryCount": int(count) if colon else 0}


def _port_range(text: str, what: str) -> tuple[int, int]:
    first, dash, last = text.partition("-")
    try:
        start = int(first)
        end = int(last) if dash else start
    except ValueError as err:
        raise OptionError(f"invalid {what}: {text}") from err
    if not (0 <= start <= 65535 and 0 <= end <= 65535) or end < start:
        raise OptionError(f"invalid {what}: {text}")
    return start, end


def parse_port(spec: str) -> list[tuple[str, dict[str, str]]]:
    """One ``-p`` value as ``(port/proto, binding)`` pairs (docker's nat.ParsePortSpec)."""
    raw, _, proto = spec.partition("/")
    proto = proto.lower() or "tcp"
    if proto not in ("tcp", "udp", "sctp"):
        raise OptionError(f"invalid proto: {proto}")
    parts = raw.split(":")
    container = parts[-1]
    ip, host = "", ""
    if len(parts) == 2:
        host = parts[0]
    elif len(parts) >= 3:
        ip, host = ":".join(parts[:-2]), parts[-2]
    if ip.startswith("[") and ip.endswith("]"):
        ip = ip[1:-1]
    if ip:
        try:
            ipaddress.ip_address(ip)
        except ValueError as err:
            raise OptionError(f"invalid IP address: {ip}") from err
    if not container:
        raise OptionError(f"no port specified: {spec}<empty>")
    c_start, c_end = _port_range(container, "containerPort")
    h_start, h_end = _port_range(host, "hostPort") if host else (0, 0)
    if host and h_end - h_start != c_end - c_start and c_end != c_start:
        raise OptionError(f"invalid ranges specified for container and host Ports: "
                          f"{container} and {host}")
    out = []
    for i, port in enumerate(range(c_start, c_end + 1)):
        if not host:
            host_port = ""
        elif c_start == c_end and h_end != h_start:
            host_port = f"{h_start}-{h_end}"
        else:
            host_port = str(h_start + i)
        out.append((f"{port}/{proto}", {"HostIp": ip, "HostPort": host_port}))
    return out


def parse_mount(spec: str) -> dict[str, Any]:
    """One ``--mount type=...,source=...,target=...`` as an API Mount."""
    mount: dict[str, Any] = {"Type": "volume"}
    fields: dict[str, str] = {}
    for item in (i for i in spec.split(",") if i):
        key, eq, value = item.partition("=")
        key = key.strip().lower()
        if not eq and key in ("readonly", "ro", "volume-nocopy", "bind-nonrecursive"):
            value = "true"
        elif not eq:
            raise OptionError(f"invalid field '{item}' must be a key=value pair")
        fields[key] = value
    for key, value in fields.items():
        if key == "type":
            if value not in ("bind", "volume", "tmpfs"):
                raise OptionError(f"invalid mount type: {value}")
            mount["Type"] = value
        elif key in ("source", "src"):
            mount["Source"] = value
        elif key in ("target", "destination", "dst"):
            mount["Target"] = value
        elif key in ("readonly", "ro"):
            mount["ReadOnly"] = _bool(value, key)
        elif key == "consistency":
            mount["Consistency"] = value
        elif key == "bind-propagation":
            mount.setdefault("BindOptions", {})["Propagation"] = value
        elif key == "bind-nonrecursive":
            mount.setdefault("BindOptions", {})["NonRecursive"] = _bool(value, key)
        elif key == "volume-nocopy":
            mount.setdefault("VolumeOptions", {})["NoCopy"] = _bool(value, key)
        elif key in ("volume-label", "volume-opt"):
            k, _, v = value.partition("=")
            sub = "Labels" if key == "volume-label" else "DriverConfig"
            opts = mount.setdefault("VolumeOptions", {})
            if sub == "Labels":
                opts.setdefault("Labels", {})[k] = v
            else:
                opts.setdefault("DriverConfig", {}).setdefault("Options", {})[k] = v
        elif key == "volume-driver":
            mount.setdefault("VolumeOptions", {}).setdefault("DriverConfig", {})["Name"] = value
        elif key == "tmpfs-size":
            mount.setdefault("TmpfsOptions", {})["SizeBytes"] = ram_in_bytes(value)
        elif key == "tmpfs-mode":
            try:
                mount.setdefault("TmpfsOptions", {})["Mode"] = int(value, 8)
            except ValueError as err:
                raise OptionError(f"invalid value for {key}: {value}") from err
        else:
            raise OptionError(f"unexpected key '{key}' in '{spec}'")
    if "Target" not in mount:
        raise OptionError("target is required")
    if mount["Type"] == "bind" and not mount.get("Source"):
        raise OptionError("source is required when specifying bind mounts")
    return mount


def _bool(value: str, key: str) -> bool:
    if value.lower() in ("1", "true", "yes"):
        return True
    if value.lower() in ("0", "false", "no"):
        return False
    raise OptionError(f"invalid value for {key}: {value}")


def parse_env_file(path: str, environ: Mapping[str, str]) -> list[str]:
    """``KEY=VALUE`` lines of an ``--env-file``; a bare ``KEY`` takes the caller's value."""
    try:
        with open(path, encoding="utf-8") as fp:
            lines = fp.read().splitlines()
    except OSError as err:
        raise OptionError(f"open {path}: {err.strerror}") from err
    out = []
    for number, line in enumerate(lines, 1):
        text = line.lstrip()
        if not text or text.startswith("#"):
            continue
        key, eq, value = text.partition("=")
        if not key or any(c.isspace() for c in key):
            raise OptionError(f"{path}:{number}: variable '{key}' contains whitespaces")
        if eq:
            out.append(f"{key}={value}")
        elif key in environ:
            out.append(f"{key}={environ[key]}")
    return out


def parse_env(values: Sequence[str], environ: Mapping[str, str]) -> list[str]:
    """``-e`` values; ``-e NAME`` passes the caller's value when it has one."""
    out = []
    for item in values:
        key, eq, _ = item.partition("=")
        if not key:
            raise OptionError(f"invalid environment variable: {item}")
        out.append(item if eq or key not in environ else f"{key}={environ[key]}")
    return out


def parse_labels(values: Sequence[str]) -> dict[str, str]:
    """``--label k=v`` (or ``k``, an empty value)."""
    labels = {}
    for item in values:
        key, _, value = item.partition("=")
        if not key:
            raise OptionError(f"invalid label '{item}': empty name")
        labels[key] = value
    return labels


def parse_add_host(value: str) -> str:
    """``name:ip`` (or ``name=ip``), checked; ``host-gateway`` passes through."""
    sep = "=" if "=" in value else ":"
    host, found, ip = value.partition(sep)
    if not found or not host:
        raise OptionError(f"bad format for add-host: {value}")
    ip = ip[1:-1] if ip.startswith("[") and ip.endswith("]") else ip
    if ip != "host-gateway":
        try:
            ipaddress.ip_address(ip)
        except ValueError as err:
            raise OptionError(f"invalid IP address in add-host: {ip!r}") from err
    return f"{host}:{ip}"


def parse_security_opts(values: Sequence[str]) -> list[str]:
    """``--security-opt``; a ``seccomp=<file>`` is replaced by the file's JSON, as docker does."""
    out = []
    for item in values:
        key, eq, value = item.partition("=")
        if not eq:
            key, eq, value = item.partition(":")  # legacy "label:disable"
        if not eq and item != "no-new-privileges":
            raise OptionError(f"Invalid --security-opt: {item!r}")
        if key == "seccomp" and value not in ("unconfined", "builtin"):
            try:
                with open(value, encoding="utf-8") as fp:
                    value = fp.read()
            except OSError as err:
                raise OptionError(f"opening seccomp profile ({value}) failed: "
                                  f"{err.strerror}") from err
        out.append(f"{key}={value}" if eq else item)
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
    env = [line for path in opts.env_file for line in parse_env_file(path, opts.environ)]
    env += parse_env(opts.env, opts.environ)
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
        "OnBuild": None, "Labels": parse_labels(opts.label),
    }
    if exposed:
        config["ExposedPorts"] = exposed
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
        "Binds": binds or None, "ContainerIDFile": "", "LogConfig": {"Type": "", "Config": {}},
        "NetworkMode": network, "PortBindings": bindings,
        "RestartPolicy": parse_restart(opts.restart), "AutoRemove": opts.rm,
        "VolumeDriver": "", "VolumesFrom": None, "ConsoleSize": list(opts.console_size),
        "CapAdd": list(opts.cap_add) or None, "CapDrop": list(opts.cap_drop) or None,
        "CgroupnsMode": "", "Dns": list(opts.dns), "DnsOptions": [], "DnsSearch": [],
        "ExtraHosts": [parse_add_host(h) for h in opts.add_host] or None, "GroupAdd": None,
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
    return host
