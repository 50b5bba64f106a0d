"""Single ``run``/``create`` flag values parsed as docker's CLI parses them: sizes, CPUs,
ulimits, restart policies, ports, mounts, environment and label files, hosts, security
options, durations. Pure functions; each bad value raises :class:`OptionError`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from pycompose.errors import PycomposeError


class OptionError(PycomposeError):
    """A flag's value cannot be used (docker exits 125 for these in ``run``)."""

    exit_code = 125


_ULIMITS = frozenset({"core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice",
                      "nofile", "nproc", "rss", "rtprio", "rttime", "sigpending", "stack"})
_RAM_RE = re.compile(r"^(\d+(?:\.\d+)?) ?([kmgtp])?i?b?$", re.IGNORECASE)
_DURATION_RE = re.compile(r"^(\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+$")
_DURATION_PART_RE = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def go_duration(text: str) -> float | None:
    """Seconds in a Go duration (``1h30m``, ``500ms``, ``0``); ``None`` if it is not one."""
    text = text.strip()
    if text == "0":
        return 0.0
    if not _DURATION_RE.match(text):
        return None
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART_RE.findall(text))


def duration_ns(text: str | None, flag: str) -> int:
    """A ``--health-*`` duration in nanoseconds (0 when not given)."""
    if text is None:
        return 0
    seconds = go_duration(text)
    if seconds is None or seconds < 0:
        raise OptionError(f'invalid argument "{text}" for "{flag}" flag: not a duration '
                          f"(like 30s, 1m30s)")
    return round(seconds * 1e9)


def parse_expose(values: Sequence[str]) -> dict[str, Any]:
    """``--expose 80``, ``--expose 8000-8002/udp`` as ExposedPorts keys."""
    out: dict[str, Any] = {}
    for item in values:
        port, _, proto = item.partition("/")
        start, end = _port_range(port, "port")
        for number in range(start, end + 1):
            out[f"{number}/{(proto or 'tcp').lower()}"] = {}
    return out


def key_values(values: Sequence[str], what: str) -> dict[str, str]:
    out = {}
    for item in values:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise OptionError(f"invalid {what} {item!r}: expected key=value")
        out[key] = value
    return out


def read_label_files(paths: Sequence[str]) -> list[str]:
    """``--label-file``: one ``key=value`` (or ``key``) per line; ``#`` comments."""
    labels = []
    for path in paths:
        try:
            with open(path, encoding="utf-8") as fp:
                lines = fp.read().splitlines()
        except OSError as err:
            raise OptionError(f"open {path}: {err.strerror}") from err
        labels += [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    return labels


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
        import ipaddress  # only for a -p with an address: ~1 ms of every run otherwise

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
        import ipaddress

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
