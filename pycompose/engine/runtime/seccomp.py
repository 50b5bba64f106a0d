"""Seccomp policies for containers: our default (``seccomp_default.json``) and Docker profiles.

The default policy is data in our own shape (see its ``about``): an allowlist of syscalls
with EPERM for everything else, an architecture map, and rules that depend on the granted
capabilities, the host architecture and the kernel version. ``default_profile`` renders it
into the OCI ``linux.seccomp`` object for one container. Users may also pass a profile in
Docker's JSON format (``--security-opt seccomp=profile.json``); ``docker_profile_to_oci``
renders that the same way, refusing what we cannot honour.

Both leave out an architecture the running kernel has no system calls for (``dead_abis``):
on x86_64 that is x32 when the kernel was built or booted without it (Debian's default, and
this machine's). No program of that ABI can run there (the kernel will not exec it, and its
system calls fail with ENOSYS), so the filter behaves the same for every program that can,
while runc compiles it measurably faster: each architecture costs runc ~7 ms of libseccomp
work at every container start (``bench/bench_run.py``).
"""

from __future__ import annotations

import ctypes
import errno
import json
import platform
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

from pycompose.engine.errors import InvalidArgument
from pycompose.sysinfo import kernel_version

_DATA = Path(__file__).with_name("seccomp_default.json")
_MACHINE_TO_GOARCH = {
    "x86_64": "amd64", "i386": "386", "i686": "386", "aarch64": "arm64", "armv7l": "arm",
    "armv6l": "arm", "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64",
    "mips64": "mips64", "mips64el": "mips64le",
}  # fmt: skip
_ACTIONS = {
    "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP",
    "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG",
}  # fmt: skip
_OPS = {
    "SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT",
    "SCMP_CMP_MASKED_EQ",
}  # fmt: skip
_DOCKER_KEYS = {"defaultAction", "defaultErrnoRet", "archMap", "architectures", "syscalls"}
_SYSCALL_KEYS = {"name", "names", "action", "errnoRet", "args", "includes", "excludes", "comment"}


def host_arch() -> str:
    """The host architecture under its Go name (``amd64``), as profiles spell it."""
    machine = platform.machine()
    return _MACHINE_TO_GOARCH.get(machine, machine)


# x86_64's x32 ABI: system call numbers with this bit set (getpid is 39 in both tables).
_X32_SYSCALL_BIT = 0x40000000
_GETPID_X86_64 = 39


@cache
def dead_abis() -> frozenset[str]:
    """Seccomp architectures of the host's family that the running kernel does not serve."""
    if platform.machine() != "x86_64":
        return frozenset()
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    if libc.syscall(ctypes.c_long(_X32_SYSCALL_BIT | _GETPID_X86_64)) == -1 and (
        ctypes.get_errno() == errno.ENOSYS
    ):
        return frozenset({"SCMP_ARCH_X32"})
    return frozenset()


def _served(arches: Iterable[str], dead: Iterable[str] | None) -> list[str]:
    skip = dead_abis() if dead is None else frozenset(dead)
    return [a for a in arches if a not in skip]


@cache
def _default_data() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(_DATA.read_text())
    return data


def _parse_kernel(text: str) -> tuple[int, int]:
    major, _, minor = text.partition(".")
    return int(major), int(minor or 0)


def _applies(
    when: Mapping[str, Any], caps: frozenset[str], arch: str, kernel: tuple[int, int]
) -> bool:
    if "caps" in when and not caps.intersection(when["caps"]):
        return False
    if "no_caps" in when and caps.intersection(when["no_caps"]):
        return False
    if "arches" in when and arch not in when["arches"]:
        return False
    if "not_arches" in when and arch in when["not_arches"]:
        return False
    return not ("min_kernel" in when and kernel < _parse_kernel(when["min_kernel"]))


def default_profile(
    caps: Iterable[str],
    arch: str | None = None,
    kernel: tuple[int, int] | None = None,
    dead: Iterable[str] | None = None,
) -> dict[str, Any]:
    """The OCI ``linux.seccomp`` object of our default policy for a container with ``caps``.

    ``arch``, ``kernel`` and ``dead`` (architectures to leave out) default to the host's."""
    data = _default_data()
    capset = frozenset(caps)
    arch = arch or host_arch()
    kernel = kernel or kernel_version()
    syscalls: list[dict[str, Any]] = []
    for rule in data["rules"]:
        if not _applies(rule.get("when", {}), capset, arch, kernel):
            continue
        if "deny" in rule:
            syscalls.append(
                {"names": list(rule["deny"]), "action": "SCMP_ACT_ERRNO", "errnoRet": rule["errno"]}
            )
        elif "args_any_of" in rule:
            for value in rule["args_any_of"]:
                syscalls.append({
                    "names": list(rule["allow"]), "action": "SCMP_ACT_ALLOW",
                    "args": [{"index": 0, "value": value, "valueTwo": 0, "op": "SCMP_CMP_EQ"}],
                })  # fmt: skip
        else:
            entry: dict[str, Any] = {"names": list(rule["allow"]), "action": "SCMP_ACT_ALLOW"}
            if "args" in rule:
                entry["args"] = [{"valueTwo": 0, **a} for a in rule["args"]]
            syscalls.append(entry)
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": data["default_errno"],
        "architectures": _served(data["arch_map"].get(arch, []), dead),
        "syscalls": syscalls,
    }


def load_docker_profile(text: str, origin: str) -> dict[str, Any]:
    """Parse a Docker-format seccomp profile; ``origin`` names it in errors."""
    try:
        profile = json.loads(text)
    except ValueError as err:
        raise InvalidArgument(f"seccomp profile {origin}: invalid JSON: {err}") from err
    if not isinstance(profile, dict):
        raise InvalidArgument(f"seccomp profile {origin}: expected a JSON object")
    return profile


def docker_profile_to_oci(
    profile: Mapping[str, Any],
    caps: Iterable[str],
    arch: str | None = None,
    kernel: tuple[int, int] | None = None,
    dead: Iterable[str] | None = None,
) -> dict[str, Any]:
    """Render a Docker-format profile into OCI ``linux.seccomp`` for one container."""
    unknown = set(profile) - _DOCKER_KEYS
    if unknown:
        raise InvalidArgument(f"seccomp profile: unsupported field(s) {sorted(unknown)}")
    capset = frozenset(caps)
    arch = arch or host_arch()
    kernel = kernel or kernel_version()
    default = _check_action(profile.get("defaultAction", ""), "defaultAction")
    arches = _served(_arches(profile, arch), dead)
    out: dict[str, Any] = {"defaultAction": default, "architectures": arches}
    if "defaultErrnoRet" in profile:
        out["defaultErrnoRet"] = int(profile["defaultErrnoRet"])
    out["syscalls"] = [
        s for i, sc in enumerate(profile.get("syscalls") or [])
        if (s := _docker_syscall(sc, i, capset, arch, kernel)) is not None
    ]  # fmt: skip
    return out


def _arches(profile: Mapping[str, Any], arch: str) -> list[str]:
    if profile.get("archMap"):
        # Docker keeps the entry whose main architecture is the host's, plus its sub-arches.
        want = {"amd64": "SCMP_ARCH_X86_64", "arm64": "SCMP_ARCH_AARCH64"}.get(
            arch, "SCMP_ARCH_" + arch.upper()
        )
        for entry in profile["archMap"]:
            if entry.get("architecture") == want:
                return [want, *(entry.get("subArchitectures") or [])]
        return []
    return list(profile.get("architectures") or [])


def _check_action(action: object, where: str) -> str:
    if action not in _ACTIONS:
        raise InvalidArgument(f"seccomp profile {where}: unsupported action {action!r}")
    return str(action)


def _docker_syscall(
    sc: Mapping[str, Any], i: int, caps: frozenset[str], arch: str, kernel: tuple[int, int]
) -> dict[str, Any] | None:
    where = f"syscalls[{i}]"
    unknown = set(sc) - _SYSCALL_KEYS
    if unknown:
        raise InvalidArgument(f"seccomp profile {where}: unsupported field(s) {sorted(unknown)}")
    inc, exc = sc.get("includes") or {}, sc.get("excludes") or {}
    if inc.get("caps") and not caps.issuperset(inc["caps"]):
        return None
    if inc.get("arches") and arch not in inc["arches"]:
        return None
    if inc.get("minKernel") and kernel < _parse_kernel(inc["minKernel"]):
        return None
    if exc.get("caps") and caps.intersection(exc["caps"]):
        return None
    if exc.get("arches") and arch in exc["arches"]:
        return None
    names = list(sc.get("names") or []) + ([sc["name"]] if sc.get("name") else [])
    if not names:
        raise InvalidArgument(f"seccomp profile {where}: no syscall names")
    entry: dict[str, Any] = {"names": names, "action": _check_action(sc.get("action"), where)}
    if "errnoRet" in sc:
        entry["errnoRet"] = int(sc["errnoRet"])
    args = []
    for a in sc.get("args") or []:
        if a.get("op") not in _OPS:
            raise InvalidArgument(f"seccomp profile {where}: unsupported op {a.get('op')!r}")
        args.append({
            "index": int(a["index"]), "value": int(a["value"]),
            "valueTwo": int(a.get("valueTwo", 0)), "op": a["op"],
        })  # fmt: skip
    if args:
        entry["args"] = args
    return entry
