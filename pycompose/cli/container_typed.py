"""Container inspect JSON as docker's templates see it: Go types rather than raw JSON.

docker runs ``inspect --format`` against its typed structs, so a null slice prints ``[]``, a
null map ``map[]``, a struct ``{v1 v2 ...}`` in field order, a field the JSON left out
(``omitempty``) its zero value, and an unknown field is an error. This module wraps the
API's JSON in values that :mod:`pycompose.cli.gotemplate` prints that way.
"""

from __future__ import annotations

from typing import Any

# Dicts that are Go maps (printed map[k:v], sorted); every other dict is a struct.
_MAPS = frozenset({
    ("Config", "ExposedPorts"), ("Config", "Volumes"), ("Config", "Labels"),
    ("HostConfig", "LogConfig", "Config"), ("HostConfig", "PortBindings"),
    ("HostConfig", "Tmpfs"), ("HostConfig", "StorageOpt"), ("HostConfig", "Sysctls"),
    ("HostConfig", "Annotations"), ("NetworkSettings", "Ports"),
    ("NetworkSettings", "Networks"), ("NetworkSettings", "Networks", "*", "DriverOpts"),
    ("GraphDriver", "Data"),
})
# Fields that are Go slices: null prints as [].
_LISTS = frozenset({
    "Args", "ExecIDs", "Binds", "VolumesFrom", "CapAdd", "CapDrop", "Dns", "DnsOptions",
    "DnsSearch", "ExtraHosts", "GroupAdd", "Links", "SecurityOpt", "DeviceCgroupRules",
    "DeviceRequests", "Devices", "Ulimits", "Env", "Cmd", "Entrypoint", "OnBuild", "Shell",
    "SecondaryIPAddresses", "SecondaryIPv6Addresses", "Aliases", "DNSNames", "Mounts",
    "MaskedPaths", "ReadonlyPaths", "BlkioWeightDevice", "BlkioDeviceReadBps",
    "BlkioDeviceWriteBps", "BlkioDeviceReadIOps", "BlkioDeviceWriteIOps", "ConsoleSize",
})
# Struct field orders of docker 28's types, with each field's zero value and whether it is
# omitempty (a zero omitempty field the daemon left out stays out of {{json}} output).
_NIL = None
_O, _K = True, False  # omitempty, kept
_FIELDS: dict[tuple[str, ...], tuple[tuple[str, Any, bool], ...]] = {
    ("State",): (("Status", "", _K), ("Running", False, _K), ("Paused", False, _K),
                 ("Restarting", False, _K), ("OOMKilled", False, _K), ("Dead", False, _K),
                 ("Pid", 0, _K), ("ExitCode", 0, _K), ("Error", "", _K),
                 ("StartedAt", "", _K), ("FinishedAt", "", _K), ("Health", _NIL, _O)),
    ("Config",): (("Hostname", "", _K), ("Domainname", "", _K), ("User", "", _K),
                  ("AttachStdin", False, _K), ("AttachStdout", False, _K),
                  ("AttachStderr", False, _K), ("ExposedPorts", "map", _O), ("Tty", False, _K),
                  ("OpenStdin", False, _K), ("StdinOnce", False, _K), ("Env", "list", _K),
                  ("Cmd", "list", _K), ("Healthcheck", _NIL, _O), ("ArgsEscaped", False, _O),
                  ("Image", "", _K), ("Volumes", "map", _K), ("WorkingDir", "", _K),
                  ("Entrypoint", "list", _K), ("NetworkDisabled", False, _O),
                  ("MacAddress", "", _O), ("OnBuild", "list", _K), ("Labels", "map", _K),
                  ("StopSignal", "", _O), ("StopTimeout", _NIL, _O), ("Shell", "list", _O)),
    ("NetworkSettings",): (
        ("Bridge", "", _K), ("SandboxID", "", _K), ("SandboxKey", "", _K), ("Ports", "map", _K),
        ("HairpinMode", False, _K), ("LinkLocalIPv6Address", "", _K),
        ("LinkLocalIPv6PrefixLen", 0, _K), ("SecondaryIPAddresses", "list", _K),
        ("SecondaryIPv6Addresses", "list", _K), ("EndpointID", "", _K), ("Gateway", "", _K),
        ("GlobalIPv6Address", "", _K), ("GlobalIPv6PrefixLen", 0, _K), ("IPAddress", "", _K),
        ("IPPrefixLen", 0, _K), ("IPv6Gateway", "", _K), ("MacAddress", "", _K),
        ("Networks", "map", _K)),
    ("GraphDriver",): (("Data", "map", _K), ("Name", "", _K)),
    ("NetworkSettings", "Networks", "*"): (
        ("IPAMConfig", _NIL, _K), ("Links", "list", _K), ("Aliases", "list", _K),
        ("MacAddress", "", _K), ("DriverOpts", "map", _K), ("GwPriority", 0, _K),
        ("NetworkID", "", _K), ("EndpointID", "", _K), ("Gateway", "", _K),
        ("IPAddress", "", _K), ("IPPrefixLen", 0, _K), ("IPv6Gateway", "", _K),
        ("GlobalIPv6Address", "", _K), ("GlobalIPv6PrefixLen", 0, _K),
        ("DNSNames", "list", _K)),
}
# Other fields the daemon's JSON may lack: (name, zero, the field it follows, omitempty).
_OMITTED: dict[tuple[str, ...], tuple[tuple[str, Any, str | None, bool], ...]] = {
    (): (("SizeRw", _NIL, None, _O), ("SizeRootFs", _NIL, None, _O), ("Node", _NIL, None, _O)),
    ("HostConfig",): (("ConsoleSize", [0, 0], "VolumesFrom", _K),
                      ("Mounts", "list", None, _O), ("Init", _NIL, None, _O),
                      ("Tmpfs", "map", None, _O), ("StorageOpt", "map", None, _O),
                      ("Sysctls", "map", None, _O), ("Runtime", "", "ShmSize", _O),
                      ("Annotations", "map", None, _O)),
}
# Fields older daemons send that docker 28's types no longer have: kept for templates,
# left out of {{json}}.
_GONE: dict[tuple[str, ...], frozenset[str]] = {
    ("HostConfig",): frozenset({"KernelMemory", "KernelMemoryTCP"}),
}


class GoStruct(dict[str, Any]):
    """A Go struct: fields by name (an unknown one is an error), printed ``{v1 v2 ...}``."""

    strict = True
    go_struct = True

    def __init__(self) -> None:
        super().__init__()
        self.absent: set[str] = set()  # zero-valued omitempty fields: left out of JSON


class NilList(list[Any]):
    """A nil Go slice: prints ``[]``, encodes as ``null``."""

    go_nil = True


class NilMap(dict[str, Any]):
    """A nil Go map: prints ``map[]``, encodes as ``null``."""

    go_nil = True


def _zero(kind: Any) -> Any:
    if kind == "list":
        return NilList()
    if kind == "map":
        return NilMap()
    return kind


def _matches(path: tuple[str, ...], patterns: frozenset[tuple[str, ...]]) -> bool:
    return any(len(p) == len(path) and all(a in ("*", b) for a, b in zip(p, path, strict=True))
               for p in patterns)


def _lookup(table: dict[tuple[str, ...], Any], path: tuple[str, ...]) -> Any:
    for pattern, entry in table.items():
        if _matches(path, frozenset({pattern})):
            return entry
    return ()


def typed(value: Any, path: tuple[str, ...] = ()) -> Any:
    """Wrap ``value`` (found at ``path`` of a container's inspect JSON) as docker sees it."""
    if value is None:
        if path and path[-1] in _LISTS:
            return NilList()
        return NilMap() if _matches(path, _MAPS) else None
    if isinstance(value, list):
        return [typed(v, (*path, "*")) for v in value]
    if not isinstance(value, dict):
        return value
    if _matches(path, _MAPS):
        return {k: typed(v, (*path, k)) for k, v in value.items()}
    out = GoStruct()
    fields = _lookup(_FIELDS, path)
    for name, zero, omitempty in fields:
        if name in value:
            out[name] = typed(value[name], (*path, name))
        else:
            out[name] = _zero(zero)
            if omitempty:
                out.absent.add(name)
    for key, item in value.items():
        if key not in out:
            out[key] = typed(item, (*path, key))
            if fields:  # not a field of docker's type: templates see it, JSON does not
                out.absent.add(key)
    out.absent |= _GONE.get(path, frozenset())
    for key, zero, after, omitempty in _OMITTED.get(path, ()):
        if key not in out:
            out[key] = _zero(zero)
            if omitempty:
                out.absent.add(key)
        if after is not None and after in out:  # its place in the Go struct
            _move_after(out, key, after)
    return out


def _move_after(struct: GoStruct, key: str, after: str) -> None:
    items = [(k, v) for k, v in struct.items() if k != key]
    items.insert([k for k, _ in items].index(after) + 1, (key, struct[key]))
    absent = struct.absent
    struct.clear()
    struct.update(items)
    struct.absent = absent


def is_container(obj: Any) -> bool:
    """True for a container's inspect document (images keep their raw JSON)."""
    return isinstance(obj, dict) and "State" in obj and "HostConfig" in obj
