"""The default seccomp policy and Docker-format profiles rendered for OCI."""

from __future__ import annotations

import platform
from typing import Any

import pytest

from pycompose.engine.errors import InvalidArgument
from pycompose.engine.runtime import seccomp
from pycompose.engine.runtime.spec import DEFAULT_CAPS

KERNEL = (6, 1)


def allowed(profile: dict[str, Any]) -> set[str]:
    """Names allowed without argument conditions."""
    return {
        n
        for s in profile["syscalls"]
        if s["action"] == "SCMP_ACT_ALLOW" and "args" not in s
        for n in s["names"]
    }


def rules_for(profile: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [s for s in profile["syscalls"] if name in s["names"]]


def test_default_shape() -> None:
    p = seccomp.default_profile(DEFAULT_CAPS, "amd64", KERNEL, dead=())
    assert p["defaultAction"] == "SCMP_ACT_ERRNO" and p["defaultErrnoRet"] == 1
    assert p["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    names = allowed(p)
    assert {"read", "write", "execve", "futex", "arch_prctl", "ptrace"} <= names
    assert not {"mount", "unshare", "setns", "reboot", "init_module", "bpf", "clone"} & names


def test_clone_is_restricted_without_sys_admin() -> None:
    p = seccomp.default_profile(DEFAULT_CAPS, "amd64", KERNEL)
    (clone,) = rules_for(p, "clone")
    assert clone["args"] == [
        {"index": 0, "value": 0x7E020000, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}
    ]
    (clone3,) = rules_for(p, "clone3")
    assert clone3 == {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}


def test_sys_admin_unlocks_namespaces() -> None:
    p = seccomp.default_profile([*DEFAULT_CAPS, "CAP_SYS_ADMIN"], "amd64", KERNEL)
    assert {"mount", "unshare", "setns", "clone", "clone3"} <= allowed(p)
    assert all("args" not in r for r in rules_for(p, "clone"))
    assert all(r["action"] == "SCMP_ACT_ALLOW" for r in rules_for(p, "clone3"))


def test_capability_gated_groups() -> None:
    base = allowed(seccomp.default_profile(DEFAULT_CAPS, "amd64", KERNEL))
    assert "reboot" not in base and "settimeofday" not in base
    more = allowed(seccomp.default_profile(["CAP_SYS_BOOT", "CAP_SYS_TIME"], "amd64", KERNEL))
    assert {"reboot", "settimeofday", "clock_settime"} <= more


def test_architecture_and_kernel_conditions() -> None:
    arm = seccomp.default_profile(DEFAULT_CAPS, "arm64", KERNEL)
    assert arm["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    assert "arch_prctl" not in allowed(arm) and "set_tls" in allowed(arm)
    old = seccomp.default_profile(DEFAULT_CAPS, "amd64", (4, 4))
    assert "ptrace" not in allowed(old)


def test_personality_only_for_listed_values() -> None:
    p = seccomp.default_profile(DEFAULT_CAPS, "amd64", KERNEL)
    values = sorted(r["args"][0]["value"] for r in rules_for(p, "personality"))
    assert values == [0, 8, 0x20000, 0x20008, 0xFFFFFFFF]


def test_socket_refuses_vsock() -> None:
    p = seccomp.default_profile(DEFAULT_CAPS, "amd64", KERNEL)
    (sock,) = rules_for(p, "socket")
    assert sock["args"][0]["value"] == 40 and sock["args"][0]["op"] == "SCMP_CMP_NE"


DOCKER_PROFILE: dict[str, Any] = {
    "defaultAction": "SCMP_ACT_ERRNO",
    "defaultErrnoRet": 1,
    "archMap": [
        {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]},
        {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]},
    ],
    "syscalls": [
        {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
        {"name": "clone", "action": "SCMP_ACT_ALLOW", "excludes": {"caps": ["CAP_SYS_ADMIN"]},
         "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_MASKED_EQ"}]},
        {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64"]}},
        {"names": ["new"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "7.0"}},
    ],
}  # fmt: skip


def test_architectures_the_kernel_does_not_serve_are_left_out() -> None:
    p = seccomp.default_profile(DEFAULT_CAPS, "amd64", KERNEL, dead={"SCMP_ARCH_X32"})
    assert p["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"]
    d = seccomp.docker_profile_to_oci(DOCKER_PROFILE, DEFAULT_CAPS, "amd64", KERNEL,
                                      dead={"SCMP_ARCH_X86"})  # fmt: skip
    assert d["architectures"] == ["SCMP_ARCH_X86_64"]


def test_dead_abis_only_names_x32_on_x86_64() -> None:
    dead = seccomp.dead_abis()
    assert dead <= {"SCMP_ARCH_X32"}
    if platform.machine() != "x86_64":
        assert not dead
    host = seccomp.default_profile(DEFAULT_CAPS)
    assert not dead & set(host["architectures"])


def test_docker_profile_conversion() -> None:
    p = seccomp.docker_profile_to_oci(DOCKER_PROFILE, DEFAULT_CAPS, "amd64", KERNEL, dead=())
    assert p["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"]
    assert [s["names"] for s in p["syscalls"]] == [["read", "write"], ["clone"], ["arch_prctl"]]
    assert p["syscalls"][1]["args"] == [
        {"index": 0, "value": 1, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}
    ]
    admin = seccomp.docker_profile_to_oci(DOCKER_PROFILE, ["CAP_SYS_ADMIN"], "arm64", KERNEL)
    assert [s["names"] for s in admin["syscalls"]] == [["read", "write"], ["mount"]]
    assert admin["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]


@pytest.mark.parametrize(
    ("profile", "message"),
    [
        ({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/x"}, "unsupported field"),
        ({"defaultAction": "SCMP_ACT_MAYBE"}, "unsupported action"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"action": "SCMP_ACT_ALLOW"}]},
         "no syscall names"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["x"],
          "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1, "op": "LIKE"}]}]},
         "unsupported op"),
    ],
)  # fmt: skip
def test_docker_profile_errors(profile: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        seccomp.docker_profile_to_oci(profile, DEFAULT_CAPS, "amd64", KERNEL)


def test_load_docker_profile_errors() -> None:
    with pytest.raises(InvalidArgument, match="invalid JSON"):
        seccomp.load_docker_profile("{", "p.json")
    with pytest.raises(InvalidArgument, match="expected a JSON object"):
        seccomp.load_docker_profile("[]", "p.json")


def test_host_arch_and_kernel() -> None:
    assert seccomp.host_arch() in {"amd64", "arm64", "386", "arm", "ppc64le", "s390x", "riscv64",
                                   "mips64", "mips64le"}  # fmt: skip
    assert seccomp.kernel_version() >= (3, 0)
