"""OCI spec generation: Docker's defaults and Docker's meaning of each create field."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from pycompose.engine.errors import InvalidArgument
from pycompose.engine.runtime import spec
from pycompose.engine.runtime.cgroups import CgroupMode, HostCgroups, ResourceLimits
from pycompose.engine.runtime.spec import ContainerSpecParams, DeviceMapping, MountSpec, Ulimit

HOST = HostCgroups(CgroupMode.V1, frozenset({"memory", "cpu", "cpuset", "pids"}), True, 2)


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n"
    )
    (root / "etc" / "group").write_text("root:x:0:\napp:x:1000:\n")
    return root


def build(rootfs: Path, warnings: list[str] | None = None, **kw: Any) -> dict[str, Any]:
    params = ContainerSpecParams(container_id="c1", rootfs=rootfs, args=("sh",), host=HOST,
                                 hostname="h1",
                                 host_rlimits={"nofile": (1024, 4096), "nproc": (100, 200)},
                                 host_devices=lambda: ["/dev/null"])  # fmt: skip
    return spec.build_spec(replace(params, **kw), warnings)


def mount(s: dict[str, Any], dest: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [m for m in s["mounts"] if m["destination"] == dest]
    assert len(found) == 1, f"{dest}: {found}"
    return found[0]


def test_docker_default_capabilities(rootfs: Path) -> None:
    caps = build(rootfs)["process"]["capabilities"]
    assert sorted(caps["bounding"]) == sorted(spec.DEFAULT_CAPS) and len(caps["bounding"]) == 14
    assert caps["effective"] == caps["permitted"] == caps["bounding"]
    assert caps["inheritable"] == [] and caps["ambient"] == []


def test_cap_add_and_drop(rootfs: Path) -> None:
    caps = build(rootfs, cap_add=("net_admin",), cap_drop=("CAP_CHOWN", "kill"))["process"]
    bounding = caps["capabilities"]["bounding"]
    assert (
        "CAP_NET_ADMIN" in bounding and "CAP_CHOWN" not in bounding and "CAP_KILL" not in bounding
    )
    only = build(rootfs, cap_drop=("ALL",), cap_add=("CHOWN",))["process"]["capabilities"]
    assert only["bounding"] == ["CAP_CHOWN"]
    with pytest.raises(InvalidArgument, match="unknown capability 'FLY'"):
        build(rootfs, cap_add=("FLY",))


def test_masked_and_readonly_paths(rootfs: Path) -> None:
    linux = build(rootfs)["linux"]
    assert "/proc/kcore" in linux["maskedPaths"] and "/sys/firmware" in linux["maskedPaths"]
    assert len(linux["maskedPaths"]) == 11
    assert linux["readonlyPaths"] == [
        "/proc/bus",
        "/proc/fs",
        "/proc/irq",
        "/proc/sys",
        "/proc/sysrq-trigger",
    ]
    unconfined = build(rootfs, security_opt=("systempaths=unconfined",))["linux"]
    assert "maskedPaths" not in unconfined


def test_standard_mounts(rootfs: Path) -> None:
    s = build(rootfs)
    shm = mount(s, "/dev/shm")
    assert shm["type"] == "tmpfs" and {"nosuid", "noexec", "nodev", "size=67108864"} <= set(
        shm["options"]
    )
    assert "ro" in mount(s, "/sys")["options"] and "ro" in mount(s, "/sys/fs/cgroup")["options"]
    assert mount(s, "/proc")["type"] == "proc" and mount(s, "/dev/mqueue")["type"] == "mqueue"
    assert mount(s, "/dev/pts")["type"] == "devpts"
    assert "size=1048576" in mount(build(rootfs, shm_size=1 << 20), "/dev/shm")["options"]


def test_read_only_rootfs_and_root_path(rootfs: Path) -> None:
    assert build(rootfs, read_only=True)["root"] == {"path": str(rootfs), "readonly": True}


def test_default_seccomp_and_no_new_privileges(rootfs: Path) -> None:
    s = build(rootfs)
    assert s["linux"]["seccomp"]["defaultAction"] == "SCMP_ACT_ERRNO"
    assert s["process"]["noNewPrivileges"] is False
    s = build(rootfs, security_opt=("no-new-privileges", "seccomp=unconfined"))
    assert "seccomp" not in s["linux"] and s["process"]["noNewPrivileges"] is True
    s = build(rootfs, security_opt=("no-new-privileges:false",))
    assert s["process"]["noNewPrivileges"] is False


def test_seccomp_profile_inline_and_file(rootfs: Path, tmp_path: Path) -> None:
    text = (
        '{"defaultAction": "SCMP_ACT_ALLOW", '
        '"syscalls": [{"names": ["chmod"], "action": "SCMP_ACT_ERRNO"}]}'
    )
    s = build(rootfs, security_opt=(f"seccomp={text}",))
    assert s["linux"]["seccomp"]["syscalls"] == [{"names": ["chmod"], "action": "SCMP_ACT_ERRNO"}]
    (tmp_path / "p.json").write_text(text)
    assert build(rootfs, security_opt=(f"seccomp={tmp_path / 'p.json'}",))["linux"]["seccomp"]
    with pytest.raises(InvalidArgument, match="cannot read profile"):
        build(rootfs, security_opt=(f"seccomp={tmp_path / 'missing.json'}",))


def test_apparmor_and_unknown_security_opts(rootfs: Path) -> None:
    assert "apparmorProfile" not in build(rootfs, security_opt=("apparmor=unconfined",))["process"]
    with pytest.raises(InvalidArgument, match="AppArmor is not enabled"):
        build(rootfs, security_opt=("apparmor=docker-default",))
    s = build(rootfs, security_opt=("apparmor=mine",), apparmor_available=True)
    assert s["process"]["apparmorProfile"] == "mine"
    with pytest.raises(InvalidArgument, match="unsupported SecurityOpt 'bogus=1'"):
        build(rootfs, security_opt=("bogus=1",))
    with pytest.raises(InvalidArgument, match="SELinux"):
        build(rootfs, security_opt=("label=type:foo",))


def test_privileged(rootfs: Path) -> None:
    s = build(rootfs, privileged=True)
    assert "seccomp" not in s["linux"] and "maskedPaths" not in s["linux"]
    assert "CAP_SYS_ADMIN" in s["process"]["capabilities"]["bounding"]
    assert s["linux"]["resources"]["devices"] == [{"allow": True, "access": "rwm"}]
    assert [d["path"] for d in s["linux"]["devices"]] == ["/dev/null"]
    assert "rw" in mount(s, "/sys/fs/cgroup")["options"]
    assert "ro" not in mount(s, "/sys")["options"]


def test_device_mapping_and_cgroup_rule(rootfs: Path) -> None:
    s = build(rootfs, devices=(DeviceMapping("/dev/null", "/dev/mynull", "rw"),))
    assert (
        s["linux"]["devices"][0]["path"] == "/dev/mynull" and s["linux"]["devices"][0]["major"] == 1
    )
    assert s["linux"]["resources"]["devices"][0] == {"allow": False, "access": "rwm"}
    assert s["linux"]["resources"]["devices"][-1]["access"] == "rw"
    with pytest.raises(InvalidArgument, match="not a character or block device"):
        build(rootfs, devices=(DeviceMapping(str(rootfs)),))
    with pytest.raises(InvalidArgument, match="invalid permissions"):
        build(rootfs, devices=(DeviceMapping("/dev/null", "", "rwx"),))


def test_ulimits_are_clamped_to_the_host_hard_limit(rootfs: Path) -> None:
    warnings: list[str] = []
    s = build(rootfs, warnings, ulimits=(Ulimit("nproc", 500, 1000), Ulimit("nofile", 100, 200)))
    assert s["process"]["rlimits"] == [
        {"type": "RLIMIT_NPROC", "hard": 200, "soft": 200},
        {"type": "RLIMIT_NOFILE", "hard": 200, "soft": 100},
    ]
    assert len(warnings) == 1 and "nproc" in warnings[0] and "200" in warnings[0]
    with pytest.raises(InvalidArgument, match="soft 9 must be between 0 and hard 5"):
        build(rootfs, ulimits=(Ulimit("nofile", 9, 5),))
    with pytest.raises(InvalidArgument, match="invalid Ulimits name 'files'"):
        build(rootfs, ulimits=(Ulimit("files", 1, 1),))


def test_sysctls_must_be_namespaced(rootfs: Path) -> None:
    s = build(rootfs, sysctls=(("net.ipv4.ip_forward", "1"), ("kernel.shmmax", "100")))
    assert s["linux"]["sysctl"] == {"net.ipv4.ip_forward": "1", "kernel.shmmax": "100"}
    with pytest.raises(InvalidArgument, match=r"vm\.swappiness"):
        build(rootfs, sysctls=(("vm.swappiness", "1"),))
    with pytest.raises(InvalidArgument, match="host's network namespace"):
        build(rootfs, sysctls=(("net.ipv4.ip_forward", "1"),), network="host")


def test_hostname_and_domainname(rootfs: Path) -> None:
    s = build(rootfs, domainname="example.org")
    assert s["hostname"] == "h1" and s["linux"]["sysctl"]["kernel.domainname"] == "example.org"
    assert "HOSTNAME=h1" in s["process"]["env"]
    assert "hostname" not in build(rootfs, uts="host")


def test_namespaces(rootfs: Path) -> None:
    kinds = [n["type"] for n in build(rootfs)["linux"]["namespaces"]]
    assert kinds == ["mount", "network", "pid", "ipc", "uts"]  # cgroup ns: host on v1
    s = build(rootfs, network="host", pid="/proc/42/ns/pid")
    ns = s["linux"]["namespaces"]
    assert {"type": "pid", "path": "/proc/42/ns/pid"} in ns and all(
        n["type"] != "network" for n in ns
    )
    assert mount(s, "/sys")["type"] == "bind"  # sysfs needs its own netns
    v2 = build(rootfs, host=replace(HOST, mode=CgroupMode.V2))
    assert {"type": "cgroup"} in v2["linux"]["namespaces"]
    with pytest.raises(InvalidArgument, match="invalid pid mode 'shareable'"):
        build(rootfs, pid="shareable")
    assert all(m["destination"] != "/dev/shm" for m in build(rootfs, ipc="none")["mounts"])


def test_user_mounts(rootfs: Path, tmp_path: Path) -> None:
    s = build(rootfs, mounts=(
        MountSpec("tmpfs", "/run", options=("size=1m",)),
        MountSpec("bind", "/data", str(tmp_path), read_only=True, propagation="rshared"),
        MountSpec("tmpfs", "/dev/shm"),
    ))  # fmt: skip
    assert mount(s, "/run")["options"] == ["nosuid", "nodev", "noexec", "size=1m"]
    assert mount(s, "/data")["options"] == ["rbind", "ro", "rshared"]
    assert mount(s, "/dev/shm")["source"] == "tmpfs"  # the user's mount replaces Docker's
    assert s["linux"]["rootfsPropagation"] == "shared"
    with pytest.raises(InvalidArgument, match="bind source path does not exist"):
        build(rootfs, mounts=(MountSpec("bind", "/x", str(tmp_path / "nope")),))
    with pytest.raises(InvalidArgument, match="must be an absolute path"):
        build(rootfs, mounts=(MountSpec("bind", "x", str(tmp_path)),))
    with pytest.raises(InvalidArgument, match="unsupported mount type 'npipe'"):
        build(rootfs, mounts=(MountSpec("npipe", "/x", str(tmp_path)),))
    with pytest.raises(InvalidArgument, match="invalid propagation"):
        build(rootfs, mounts=(MountSpec("bind", "/x", str(tmp_path), propagation="weird"),))


def test_process_fields(rootfs: Path) -> None:
    s = build(rootfs, env=("A=1", "PATH=/bin"), user="app", cwd="/srv", tty=True, oom_score_adj=500)
    p = s["process"]
    assert p["user"] == {"uid": 1000, "gid": 1000} and p["cwd"] == "/srv" and p["terminal"] is True
    assert p["env"] == ["HOSTNAME=h1", "HOME=/home/app", "TERM=xterm", "A=1", "PATH=/bin"]
    assert p["oomScoreAdj"] == 500
    with pytest.raises(InvalidArgument, match="OomScoreAdj"):
        build(rootfs, oom_score_adj=2000)
    with pytest.raises(InvalidArgument, match="invalid Env entry 'NOVALUE'"):
        build(rootfs, env=("NOVALUE",))
    with pytest.raises(InvalidArgument, match="no command specified"):
        build(rootfs, args=())


def test_init_wraps_the_command(rootfs: Path) -> None:
    s = build(rootfs, init=True, init_path="/usr/bin/tini-static")
    assert s["process"]["args"] == ["/sbin/docker-init", "--", "sh"]
    assert mount(s, "/sbin/docker-init")["source"] == "/usr/bin/tini-static"


def test_resources_and_cgroups_path(rootfs: Path) -> None:
    s = build(
        rootfs, limits=ResourceLimits(memory=64 << 20, nano_cpus=1_500_000_000, pids_limit=10)
    )
    res = s["linux"]["resources"]
    assert res["memory"] == {"limit": 64 << 20, "swap": 128 << 20}
    assert res["cpu"] == {"period": 100000, "quota": 150000} and res["pids"] == {"limit": 10}
    assert s["linux"]["cgroupsPath"] == "/pycompose/c1"


def test_exec_process_inherits_and_overrides(rootfs: Path) -> None:
    s = build(rootfs, env=("A=1",), cwd="/srv")
    p = spec.exec_process(s, rootfs, ("ls",), env=("A=2", "B=3"), user="app", tty=True)
    assert p["args"] == ["ls"] and p["cwd"] == "/srv" and p["terminal"] is True
    assert p["user"] == {"uid": 1000, "gid": 1000}
    assert (
        "A=2" in p["env"]
        and "B=3" in p["env"]
        and "TERM=xterm" in p["env"]
        and "A=1" not in p["env"]
    )
    assert p["capabilities"] == s["process"]["capabilities"] and "oomScoreAdj" not in p
    with pytest.raises(InvalidArgument, match="exec needs a command"):
        spec.exec_process(s, rootfs, ())


def test_apparmor_detection(tmp_path: Path) -> None:
    flag = tmp_path / "enabled"
    assert spec.apparmor_enabled(flag) is False
    flag.write_text("Y\n")
    assert spec.apparmor_enabled(flag) is True
    flag.write_text("N\n")
    assert spec.apparmor_enabled(flag) is False


def test_host_caps_follow_the_bounding_set() -> None:
    without_sys_resource = "CapBnd:\t000001fffeffffff\n"
    caps = spec.host_caps(without_sys_resource)
    assert "CAP_SYS_RESOURCE" not in caps and "CAP_SYS_ADMIN" in caps
    assert spec.host_caps("CapBnd:\t0000000000000001\n") == ("CAP_CHOWN",)


def test_write_spec(tmp_path: Path, rootfs: Path) -> None:
    config = build(rootfs)
    path = spec.write_spec(tmp_path / "bundle", config)
    assert path.name == "config.json" and json.loads(path.read_text()) == config
