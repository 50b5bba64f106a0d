"""OCI runtime ``config.json`` for a container, with Docker's defaults and Docker's meaning.

``build_spec`` takes everything a Docker create request can ask for (``ContainerSpecParams``)
and returns the OCI spec as a dict. Docker's hardening is the default: its 14 capabilities
with empty inheritable and ambient sets, masked and read-only /proc and /sys paths, a 64 MB
/dev/shm, the device cgroup allowlist and our default seccomp policy. A value we cannot
honour raises ``InvalidArgument`` naming the field; ulimits above the host's hard limits are
clamped (raising them fails inside a container here) and reported in ``warnings``.

AppArmor: we ship no AppArmor profile, so containers run without one. ``apparmor=unconfined``
is accepted (that is what happens); any other profile is refused when AppArmor is absent and
passed to the runtime when it is present.
"""

from __future__ import annotations

import os
import resource
import shutil
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pycompose.engine.errors import InvalidArgument
from pycompose.engine.runtime import seccomp
from pycompose.engine.runtime.cgroups import HostCgroups, ResourceLimits, cgroups_path, resources
from pycompose.engine.runtime.users import resolve_user

OCI_VERSION = "1.0.2"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_SHM_SIZE = 64 * 1024 * 1024
INIT_PATH_IN_CONTAINER = "/sbin/docker-init"
RLIM_INFINITY = 2**64 - 1

DEFAULT_CAPS = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
)  # fmt: skip
# Index = capability number (linux/capability.h).
ALL_CAPS = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN",
    "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON",
    "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)  # fmt: skip
MASKED_PATHS = (
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
    "/sys/firmware", "/sys/devices/virtual/powercap",
)  # fmt: skip
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
# Docker's device cgroup allowlist: mknod of anything, and use of the standard devices.
DEFAULT_DEVICE_RULES: tuple[dict[str, Any], ...] = (
    {"allow": False, "access": "rwm"},
    {"allow": True, "type": "c", "access": "m"},
    {"allow": True, "type": "b", "access": "m"},
    *(
        {"allow": True, "type": "c", "major": ma, "minor": mi, "access": "rwm"}
        for ma, mi in ((1, 3), (1, 8), (1, 7), (5, 0), (1, 5), (1, 9), (5, 1), (5, 2), (10, 200))
    ),
    {"allow": True, "type": "c", "major": 136, "access": "rwm"},
)
ULIMIT_NAMES = (
    "as", "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile",
    "nproc", "rss", "rtprio", "rttime", "sigpending", "stack",
)  # fmt: skip
_NS_SYSCTL_PREFIXES = {
    "ipc": ("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
            "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced", "fs.mqueue."),
    "network": ("net.",),
}  # fmt: skip
_PROPAGATIONS = ("private", "rprivate", "shared", "rshared", "slave", "rslave")


@dataclass(frozen=True)
class MountSpec:
    """A user mount: ``type`` is ``bind``, ``tmpfs`` or ``volume`` (a bind of a volume dir).

    ``options`` are extra mount options (tmpfs ``size=``/``mode=``); ``propagation`` is
    Docker's bind propagation (default ``rprivate``).
    """

    type: str
    target: str
    source: str = ""
    read_only: bool = False
    propagation: str = ""
    non_recursive: bool = False
    options: tuple[str, ...] = ()


@dataclass(frozen=True)
class DeviceMapping:
    """``--device /dev/x:/dev/y:rwm``."""

    path_on_host: str
    path_in_container: str = ""
    permissions: str = "rwm"


@dataclass(frozen=True)
class Ulimit:
    """``--ulimit name=soft:hard``; -1 means unlimited."""

    name: str
    soft: int
    hard: int


@dataclass(frozen=True)
class ContainerSpecParams:
    """Everything a Docker create request can set that ends up in the OCI spec.

    ``host`` is the probed cgroup layout (``cgroups.probe_host()``, probed once per daemon).
    Keeping stdin open is the monitor's business (``MonitorConfig.open_stdin``); only
    ``tty`` shows in the spec.

    Namespace modes (``network``, ``pid``, ``ipc``, ``uts``): ``""`` for a new private
    namespace, ``"host"`` to share the host's, or an absolute path of a namespace file to join
    (the daemon turns ``container:<id>`` into ``/proc/<pid>/ns/<kind>``). ``ipc`` may also be
    ``"private"``/``"shareable"`` (new namespace) or ``"none"`` (new namespace, no /dev/shm).
    """

    container_id: str
    rootfs: Path
    args: tuple[str, ...]
    host: HostCgroups
    env: tuple[str, ...] = ()
    cwd: str = ""
    user: str = ""
    group_add: tuple[str, ...] = ()
    hostname: str = ""
    domainname: str = ""
    tty: bool = False
    read_only: bool = False
    mounts: tuple[MountSpec, ...] = ()
    privileged: bool = False
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    security_opt: tuple[str, ...] = ()
    limits: ResourceLimits = field(default_factory=ResourceLimits)
    ulimits: tuple[Ulimit, ...] = ()
    sysctls: tuple[tuple[str, str], ...] = ()
    init: bool = False
    init_path: str = ""
    oom_score_adj: int = 0
    shm_size: int = 0
    network: str = ""
    pid: str = ""
    ipc: str = ""
    uts: str = ""
    cgroupns: str = ""  # "" = Docker's default: private on cgroup v2, host on v1
    devices: tuple[DeviceMapping, ...] = ()
    masked_paths: tuple[str, ...] | None = None
    readonly_paths: tuple[str, ...] | None = None
    cgroup_parent: str = "pycompose"
    apparmor_available: bool = False
    host_rlimits: Mapping[str, tuple[int, int]] | None = None
    host_devices: Callable[[], list[str]] | None = None


@dataclass
class _Security:
    no_new_privileges: bool = False
    seccomp: str = "default"  # "default", "unconfined" or a profile's JSON text
    seccomp_origin: str = ""
    apparmor: str = ""
    unconfined_paths: bool = False


def normalize_cap(name: str) -> str:
    """``net_admin`` / ``NET_ADMIN`` / ``CAP_NET_ADMIN`` -> ``CAP_NET_ADMIN``; ALL stays."""
    up = name.strip().upper()
    if up == "ALL":
        return up
    cap = up if up.startswith("CAP_") else "CAP_" + up
    if cap not in ALL_CAPS:
        raise InvalidArgument(f"unknown capability {name!r} in CapAdd/CapDrop")
    return cap


def host_caps(status: str | None = None) -> tuple[str, ...]:
    """The capabilities the engine can grant: known to the kernel and in our bounding set.

    On hosts that run us without some capability (here CAP_SYS_RESOURCE is missing from the
    bounding set) runc cannot give it to a container, so privileged gets the rest.
    """
    try:
        last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    except (OSError, ValueError):
        last = len(ALL_CAPS) - 1
    if status is None:
        try:
            status = Path("/proc/self/status").read_text()
        except OSError:
            status = ""
    bounding = (1 << (last + 1)) - 1
    for line in status.splitlines():
        if line.startswith("CapBnd:"):
            bounding = int(line.split()[1], 16)
    return tuple(c for i, c in enumerate(ALL_CAPS[: last + 1]) if bounding >> i & 1)


def capabilities(
    privileged: bool, cap_add: tuple[str, ...], cap_drop: tuple[str, ...]
) -> list[str]:
    """Docker's capability arithmetic: defaults, then drops, then adds (ALL as a word)."""
    known = host_caps()
    if privileged:
        return list(known)
    adds = [normalize_cap(c) for c in cap_add]
    drops = [normalize_cap(c) for c in cap_drop]
    for cap in adds:
        if cap != "ALL" and cap not in known:
            raise InvalidArgument(
                f"CapAdd {cap} cannot be honoured: the engine itself does not hold this capability"
            )
    if "ALL" in adds:
        base = list(known)
    elif "ALL" in drops:
        base = []
    else:
        base = [c for c in DEFAULT_CAPS if c in known]
    base = [c for c in base if c not in drops or c in adds]
    base += [c for c in adds if c != "ALL" and c not in base]
    return base


def _capset(caps: list[str]) -> dict[str, list[str]]:
    # Inheritable and ambient stay empty (CVE-2022-24769): exec'd programs gain nothing.
    return {
        "bounding": list(caps), "effective": list(caps), "permitted": list(caps),
        "inheritable": [], "ambient": [],
    }  # fmt: skip


def _security(opts: tuple[str, ...], apparmor_available: bool) -> _Security:
    sec = _Security()
    for opt in opts:
        key, sep, value = opt.partition("=")
        if not sep and ":" in opt:  # the old "key:value" spelling
            key, _, value = opt.partition(":")
        if key == "no-new-privileges":
            if value not in ("", "true", "false"):
                raise InvalidArgument(f"invalid SecurityOpt {opt!r}: expected true or false")
            sec.no_new_privileges = value != "false"
        elif key == "seccomp":
            if not value:
                raise InvalidArgument(f"invalid SecurityOpt {opt!r}: seccomp needs a value")
            sec.seccomp, sec.seccomp_origin = _seccomp_source(value)
        elif key == "apparmor":
            if value != "unconfined" and not apparmor_available:
                raise InvalidArgument(
                    f"SecurityOpt {opt!r} cannot be honoured: AppArmor is not enabled on this host"
                )
            sec.apparmor = "" if value == "unconfined" else value
        elif key == "label":
            if value != "disable":
                raise InvalidArgument(f"SecurityOpt {opt!r}: SELinux labels are not supported")
        elif key == "systempaths" and value == "unconfined":
            sec.unconfined_paths = True
        else:
            raise InvalidArgument(f"unsupported SecurityOpt {opt!r}")
    return sec


def _seccomp_source(value: str) -> tuple[str, str]:
    if value in ("unconfined", "default", "builtin"):
        return ("default" if value == "builtin" else value), value
    if value.lstrip().startswith("{"):  # docker CLI sends the profile's content
        return value, "(inline)"
    try:
        return Path(value).read_text(), value
    except OSError as err:
        raise InvalidArgument(f"SecurityOpt seccomp={value}: cannot read profile: {err}") from err


def build_spec(params: ContainerSpecParams, warnings: list[str] | None = None) -> dict[str, Any]:
    """Return the OCI ``config.json`` content for ``params``.

    Messages about adjusted values (clamped ulimits) are appended to ``warnings``.
    """
    p = params
    warns = warnings if warnings is not None else []
    if not p.args:
        raise InvalidArgument("no command specified: the image has no Cmd/Entrypoint")
    sec = _security(p.security_opt, p.apparmor_available)
    caps = capabilities(p.privileged, p.cap_add, p.cap_drop)
    process = _process(p, caps, sec, warns)
    namespaces = _namespaces(p)
    linux: dict[str, Any] = {
        "namespaces": namespaces,
        "cgroupsPath": cgroups_path(p.container_id, p.cgroup_parent),
        "resources": resources(_with_devices(p), p.host),
        "sysctl": _sysctls(p),
        "devices": [_device(d) for d in _device_list(p)],
    }
    if not p.privileged and not sec.unconfined_paths:
        linux["maskedPaths"] = list(MASKED_PATHS if p.masked_paths is None else p.masked_paths)
        linux["readonlyPaths"] = list(
            READONLY_PATHS if p.readonly_paths is None else p.readonly_paths
        )
    if not p.privileged and sec.seccomp != "unconfined":
        linux["seccomp"] = _seccomp(sec, caps)
    mounts = _mounts(p)
    if any(m["options"] and set(m["options"]) & {"shared", "rshared"} for m in mounts):
        linux["rootfsPropagation"] = "shared"
    elif any(set(m["options"]) & {"slave", "rslave"} for m in mounts):
        linux["rootfsPropagation"] = "rslave"
    spec: dict[str, Any] = {
        "ociVersion": OCI_VERSION,
        "process": process,
        "root": {"path": str(p.rootfs), "readonly": p.read_only},
        "mounts": mounts,
        "linux": linux,
    }
    if p.uts != "host" and p.hostname:
        spec["hostname"] = p.hostname
    return spec


def write_spec(bundle: Path, config: Mapping[str, Any]) -> Path:
    """Write ``config.json`` into ``bundle`` atomically; return its path."""
    import json

    bundle.mkdir(parents=True, exist_ok=True)
    path = bundle / "config.json"
    tmp = bundle / "config.json.tmp"
    tmp.write_text(json.dumps(config))
    os.replace(tmp, path)
    return path


def _seccomp(sec: _Security, caps: list[str]) -> dict[str, Any]:
    if sec.seccomp == "default":
        return seccomp.default_profile(caps)
    profile = seccomp.load_docker_profile(sec.seccomp, sec.seccomp_origin)
    return seccomp.docker_profile_to_oci(profile, caps)


def _process(
    p: ContainerSpecParams, caps: list[str], sec: _Security, warns: list[str]
) -> dict[str, Any]:
    user = resolve_user(p.rootfs, p.user, p.group_add)
    cwd = p.cwd or "/"
    if not cwd.startswith("/"):
        raise InvalidArgument(f"invalid WorkingDir {cwd!r}: the working directory must be absolute")
    if not -1000 <= p.oom_score_adj <= 1000:
        raise InvalidArgument(f"invalid OomScoreAdj {p.oom_score_adj}: range is -1000..1000")
    args = list(p.args)
    if p.init:
        args = [INIT_PATH_IN_CONTAINER, "--", *args]
    process: dict[str, Any] = {
        "terminal": p.tty,
        "user": {"uid": user.uid, "gid": user.gid},
        "args": args,
        "env": container_env(p.env, p.hostname, user.home, p.tty),
        "cwd": cwd,
        "capabilities": _capset(caps),
        "rlimits": _rlimits(p.ulimits, p.host_rlimits, warns),
        "noNewPrivileges": sec.no_new_privileges,
        "oomScoreAdj": p.oom_score_adj,
    }
    if user.additional_gids:
        process["user"]["additionalGids"] = list(user.additional_gids)
    if sec.apparmor:
        process["apparmorProfile"] = sec.apparmor
    return process


def container_env(env: tuple[str, ...], hostname: str, home: str, tty: bool) -> list[str]:
    """Docker's environment: PATH, HOSTNAME, HOME and TERM filled in when not given."""
    out: list[str] = []
    keys: set[str] = set()
    for item in env:
        key, sep, _ = item.partition("=")
        if not key or not sep:
            raise InvalidArgument(f"invalid Env entry {item!r}: expected KEY=value")
        out.append(item)
        keys.add(key)
    defaults = [("PATH", DEFAULT_PATH), ("HOSTNAME", hostname), ("HOME", home)]
    if tty:
        defaults.append(("TERM", "xterm"))
    out = [f"{k}={v}" for k, v in defaults if k not in keys and v] + out
    return out


def _rlimits(
    ulimits: tuple[Ulimit, ...],
    host: Mapping[str, tuple[int, int]] | None,
    warns: list[str],
) -> list[dict[str, Any]]:
    out = []
    for u in ulimits:
        if u.name not in ULIMIT_NAMES:
            raise InvalidArgument(f"invalid Ulimits name {u.name!r}")
        soft = RLIM_INFINITY if u.soft == -1 else u.soft
        hard = RLIM_INFINITY if u.hard == -1 else u.hard
        if soft < 0 or hard < 0 or soft > hard:
            raise InvalidArgument(
                f"invalid Ulimits {u.name}: soft {u.soft} must be between 0 and hard {u.hard}"
            )
        host_hard = _host_hard(u.name, host)
        if hard > host_hard:
            warns.append(
                f"ulimit {u.name} hard limit {u.hard} lowered to the host's hard limit "
                f"{host_hard}: raising it is not permitted here"
            )
            hard = host_hard
            soft = min(soft, hard)
        out.append({"type": "RLIMIT_" + u.name.upper(), "hard": hard, "soft": soft})
    return out


def _host_hard(name: str, host: Mapping[str, tuple[int, int]] | None) -> int:
    if host is not None and name in host:
        return host[name][1]
    rl = getattr(resource, "RLIMIT_" + name.upper(), None)
    if rl is None:
        return RLIM_INFINITY
    hard = resource.getrlimit(rl)[1]
    return RLIM_INFINITY if hard == resource.RLIM_INFINITY else hard


def _namespaces(p: ContainerSpecParams) -> list[dict[str, str]]:
    ns: list[dict[str, str]] = [{"type": "mount"}]
    for kind, mode in (("network", p.network), ("pid", p.pid), ("ipc", p.ipc), ("uts", p.uts)):
        if mode == "host":
            continue
        if mode in ("", "private", "shareable", "none"):
            if mode and kind != "ipc":
                raise InvalidArgument(f"invalid {kind} mode {mode!r}")
            ns.append({"type": kind})
        elif mode.startswith("/"):
            ns.append({"type": kind, "path": mode})
        else:
            raise InvalidArgument(f"invalid {kind} mode {mode!r}: use host or a namespace path")
    cgroupns = p.cgroupns or ("private" if p.host.mode.value == "v2" else "host")
    if cgroupns == "private":
        ns.append({"type": "cgroup"})
    elif cgroupns != "host":
        raise InvalidArgument(f"invalid CgroupnsMode {p.cgroupns!r}: use private or host")
    return ns


def _sysctls(p: ContainerSpecParams) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in p.sysctls:
        kind = next((k for k, pre in _NS_SYSCTL_PREFIXES.items() if key.startswith(pre)), None)
        if kind is None:
            raise InvalidArgument(
                f"sysctl {key!r} is not namespaced and cannot be set per container"
            )
        if getattr(p, kind) == "host":
            raise InvalidArgument(f"sysctl {key!r} cannot be set with the host's {kind} namespace")
        out[key] = value
    if p.domainname:
        # runc 1.1 does not know the OCI domainname field; the UTS-namespaced sysctl does it.
        if p.uts == "host":
            raise InvalidArgument("Domainname cannot be set with the host's UTS namespace")
        out["kernel.domainname"] = p.domainname
    return out


def _device_list(p: ContainerSpecParams) -> list[DeviceMapping]:
    devices = list(p.devices)
    if p.privileged:
        lister = p.host_devices or _host_devices
        have = {d.path_in_container or d.path_on_host for d in devices}
        devices += [DeviceMapping(d) for d in lister() if d not in have]
    return devices


def _host_devices() -> list[str]:
    out: list[str] = []
    for dirpath, dirnames, filenames in os.walk("/dev"):
        dirnames[:] = [d for d in dirnames if d not in ("pts", "shm", "fd", "mqueue")]
        for name in filenames:
            path = os.path.join(dirpath, name)
            try:
                mode = os.lstat(path).st_mode
            except OSError:
                continue
            is_dev = stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            if is_dev and path not in ("/dev/console", "/dev/ptmx"):
                out.append(path)
    return sorted(out)


def _device(d: DeviceMapping) -> dict[str, Any]:
    try:
        st = os.stat(d.path_on_host)
    except OSError as err:
        raise InvalidArgument(f"Devices {d.path_on_host}: {err.strerror}") from err
    if stat.S_ISCHR(st.st_mode):
        kind = "c"
    elif stat.S_ISBLK(st.st_mode):
        kind = "b"
    else:
        raise InvalidArgument(f"Devices {d.path_on_host}: not a character or block device")
    return {
        "path": d.path_in_container or d.path_on_host, "type": kind,
        "major": os.major(st.st_rdev), "minor": os.minor(st.st_rdev),
        "fileMode": stat.S_IMODE(st.st_mode), "uid": 0, "gid": 0,
    }  # fmt: skip


def _with_devices(p: ContainerSpecParams) -> ResourceLimits:
    if p.privileged:
        rules: list[dict[str, Any]] = [{"allow": True, "access": "rwm"}]
    else:
        rules = [dict(r) for r in DEFAULT_DEVICE_RULES]
        for d in p.devices:
            perms = d.permissions or "rwm"
            if not perms or set(perms) - set("rwm"):
                raise InvalidArgument(f"Devices {d.path_on_host}: invalid permissions {perms!r}")
            dev = _device(d)
            rules.append({"allow": True, "type": dev["type"], "major": dev["major"],
                          "minor": dev["minor"], "access": perms})  # fmt: skip
    return replace(p.limits, devices=tuple(rules))


def _mounts(p: ContainerSpecParams) -> list[dict[str, Any]]:
    shm = p.shm_size or DEFAULT_SHM_SIZE
    if shm < 0:
        raise InvalidArgument(f"invalid ShmSize {p.shm_size}")
    ro = [] if p.privileged else ["ro"]  # Docker gives privileged containers a writable /sys
    cgroup_opts = ["nosuid", "noexec", "nodev", "relatime", "rw" if p.privileged else "ro"]
    std: list[dict[str, Any]] = [
        _m("/proc", "proc", "proc", ["nosuid", "noexec", "nodev"]),
        _m("/dev", "tmpfs", "tmpfs", ["nosuid", "strictatime", "mode=755", "size=65536k"]),
        _m("/dev/pts", "devpts", "devpts",
           ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]),
        _m("/sys", "sysfs", "sysfs", ["nosuid", "noexec", "nodev", *ro]),
        _m("/sys/fs/cgroup", "cgroup", "cgroup", cgroup_opts),
    ]  # fmt: skip
    if p.network == "host" and not p.privileged:
        # sysfs cannot be mounted without owning the network namespace: bind the host's.
        std[3] = _m("/sys", "bind", "/sys", ["rbind", "nosuid", "noexec", "nodev", "ro"])
    if p.ipc == "host":
        std.append(_m("/dev/mqueue", "bind", "/dev/mqueue", ["rbind", "nosuid", "noexec", "nodev"]))
        std.append(_m("/dev/shm", "bind", "/dev/shm", ["rbind", "nosuid", "noexec", "nodev"]))
    else:
        std.append(_m("/dev/mqueue", "mqueue", "mqueue", ["nosuid", "noexec", "nodev"]))
        if p.ipc != "none":
            std.append(_m("/dev/shm", "tmpfs", "shm",
                          ["nosuid", "noexec", "nodev", "mode=1777", f"size={shm}"]))  # fmt: skip
    user = [_user_mount(m) for m in p.mounts]
    taken = {m["destination"] for m in user}
    out = [m for m in std if m["destination"] not in taken]
    if p.init:
        init = p.init_path or find_init()
        out.append(_m(INIT_PATH_IN_CONTAINER, "bind", init, ["bind", "ro", "rprivate"]))
    return out + user


def _m(dest: str, kind: str, source: str, options: list[str]) -> dict[str, Any]:
    return {"destination": dest, "type": kind, "source": source, "options": options}


def _user_mount(m: MountSpec) -> dict[str, Any]:
    if not m.target.startswith("/"):
        raise InvalidArgument(f"invalid mount target {m.target!r}: must be an absolute path")
    if m.target == "/":
        raise InvalidArgument("invalid mount target '/': cannot mount over the root")
    if m.type == "tmpfs":
        if m.propagation:
            raise InvalidArgument(f"mount {m.target}: tmpfs mounts have no propagation")
        opts = ["nosuid", "nodev", "noexec", *m.options]
        if m.read_only:
            opts.append("ro")
        return _m(m.target, "tmpfs", "tmpfs", opts)
    if m.type not in ("bind", "volume"):
        raise InvalidArgument(f"mount {m.target}: unsupported mount type {m.type!r}")
    if not m.source.startswith("/"):
        raise InvalidArgument(f"mount {m.target}: source {m.source!r} must be an absolute path")
    if not os.path.exists(m.source):
        raise InvalidArgument(f"invalid mount config: bind source path does not exist: {m.source}")
    prop = m.propagation or "rprivate"
    if prop not in _PROPAGATIONS:
        raise InvalidArgument(f"mount {m.target}: invalid propagation {prop!r}")
    opts = ["bind" if m.non_recursive else "rbind", "ro" if m.read_only else "rw", prop]
    for o in m.options:
        if o not in ("nosuid", "nodev", "noexec"):
            raise InvalidArgument(f"mount {m.target}: unsupported bind option {o!r}")
        opts.append(o)
    return _m(m.target, "bind", m.source, opts)


def apparmor_enabled(path: Path = Path("/sys/module/apparmor/parameters/enabled")) -> bool:
    """Whether the kernel has AppArmor enabled (for ``apparmor_available``)."""
    try:
        return path.read_text().strip() == "Y"
    except OSError:
        return False


def find_init() -> str:
    """The init for ``--init``: a static tini (it must run in any image), else tini."""
    for name in ("tini-static", "catatonit", "tini"):
        path = shutil.which(name)
        if path:
            return path
    raise InvalidArgument("Init cannot be honoured: no tini or catatonit is installed")


def exec_process(
    container_spec: Mapping[str, Any],
    rootfs: Path,
    args: tuple[str, ...],
    *,
    env: tuple[str, ...] = (),
    user: str = "",
    cwd: str = "",
    tty: bool = False,
    privileged: bool = False,
) -> dict[str, Any]:
    """The OCI ``process`` for ``exec`` in a container built from ``container_spec``.

    Like Docker, the exec inherits the container's environment, user, working directory,
    capabilities, rlimits and no-new-privileges unless overridden.
    """
    if not args:
        raise InvalidArgument("exec needs a command")
    base = container_spec["process"]
    proc: dict[str, Any] = {k: v for k, v in base.items() if k not in ("oomScoreAdj",)}
    proc["args"] = list(args)
    proc["terminal"] = tty
    if user:
        u = resolve_user(rootfs, user)
        proc["user"] = {"uid": u.uid, "gid": u.gid}
        if u.additional_gids:
            proc["user"]["additionalGids"] = list(u.additional_gids)
    if cwd:
        if not cwd.startswith("/"):
            raise InvalidArgument(f"invalid WorkingDir {cwd!r}: must be absolute")
        proc["cwd"] = cwd
    merged = {e.partition("=")[0]: e for e in base.get("env", [])}
    for e in env:
        key, sep, _ = e.partition("=")
        if not key or not sep:
            raise InvalidArgument(f"invalid Env entry {e!r}: expected KEY=value")
        merged[key] = e
    if tty and "TERM" not in merged:
        merged["TERM"] = "TERM=xterm"
    proc["env"] = list(merged.values())
    if privileged:
        proc["capabilities"] = _capset(list(host_caps()))
    return proc
