"""The runtime CLI wrapper (against a scripted stand-in binary), the probe and the fake."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import anyio
import pytest

from pycompose.engine.errors import Conflict, EngineError, NotFound
from pycompose.engine.runtime import oci
from pycompose.engine.runtime.oci import FakeRuntime, RuncRuntime

# A stand-in for runc: records its argv, answers like runc for a few verbs.
SCRIPT = """#!/bin/sh
echo "$@" >> "$(dirname "$0")/calls"
case "$*" in
  *" state missing"*) echo 'time="x" level=error msg="container does not exist"' >&2; exit 1;;
  *" state "*) echo '{"id": "c1", "status": "running", "pid": 42, "bundle": "/b"}';;
  *" ps "*) echo '[42, 43]';;
  *" list "*) echo '[{"id": "c1", "status": "stopped", "pid": 0, "bundle": "/b"}]';;
  *" exec "*) echo out; echo err >&2; exit 3;;
  *" kill "*) echo 'level=error msg="container not running"' >&2; exit 1;;
  *" run "*) echo 'level=error msg="cgroups in hybrid mode not supported"' >&2; exit 1;;
  *"--version"*) echo "fakerunc version 9.9";;
esac
"""


@pytest.fixture
def fake_binary(tmp_path: Path) -> Path:
    path = tmp_path / "bin" / "fakerunc"
    path.parent.mkdir()
    path.write_text(SCRIPT)
    path.chmod(0o755)
    return path


def calls(fake_binary: Path) -> list[str]:
    return (fake_binary.parent / "calls").read_text().splitlines()


def test_cli_composition(fake_binary: Path, tmp_path: Path) -> None:
    rt = RuncRuntime(str(fake_binary), tmp_path / "root")

    async def scenario() -> None:
        await rt.create("c1", Path("/b"), pid_file=Path("/p"))
        await rt.start("c1")
        assert await rt.state("c1") == oci.ContainerState("c1", "running", 42, "/b")
        assert await rt.ps("c1") == [42, 43]
        assert [s.status for s in await rt.list()] == ["stopped"]
        result = await rt.exec("c1", Path("/proc.json"))
        assert result == oci.ExecResult(3, b"out\n", b"err\n")
        await rt.delete("c1", force=True)
        await rt.pause("c1")
        await rt.resume("c1")

    anyio.run(scenario)
    root = str(tmp_path / "root")
    assert calls(fake_binary) == [
        f"--root {root} create --bundle /b --pid-file /p c1",
        f"--root {root} start c1",
        f"--root {root} state c1",
        f"--root {root} ps --format json c1",
        f"--root {root} list --format json",
        f"--root {root} exec --process /proc.json c1",
        f"--root {root} delete --force c1",
        f"--root {root} pause c1",
        f"--root {root} resume c1",
    ]
    assert rt.argv("x") == [str(fake_binary), "--root", root, "x"]


def test_errors_are_translated(fake_binary: Path, tmp_path: Path) -> None:
    rt = RuncRuntime(str(fake_binary), tmp_path / "root")
    with pytest.raises(NotFound, match="container does not exist"):
        anyio.run(rt.state, "missing")
    with pytest.raises(Conflict, match="container not running"):
        anyio.run(rt.kill, "c1", signal.SIGTERM)


def test_last_message() -> None:
    assert oci.last_message('a\ntime="t" level=error msg="bad \\"x\\""\n') == 'bad "x"'
    assert oci.last_message('{"level":"error","msg":"json says"}') == "json says"
    assert oci.last_message("plain words\n") == "plain words"
    assert oci.last_message("") == ""


@pytest.mark.skipif(not os.path.exists("/bin/busybox") and not shutil.which("busybox"),
                    reason="needs busybox-static")  # fmt: skip
def test_probe_reports_each_runtime_reason(fake_binary: Path, tmp_path: Path) -> None:
    with pytest.raises(EngineError) as info:
        oci.probe_runtime(candidates=(str(fake_binary), "no-such-runtime"), work_dir=tmp_path)
    text = str(info.value)
    assert (
        "cgroups in hybrid mode not supported" in text and "no-such-runtime: not installed" in text
    )
    assert any(" run --bundle " in c for c in calls(fake_binary))
    assert any(" delete --force pycompose-probe-" in c for c in calls(fake_binary))
    assert [p.name for p in tmp_path.iterdir()] == ["bin"]  # the probe bundle is gone


def test_preferred_runtime_is_the_only_one_tried(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match=r"^no OCI runtime.*\(nope: not installed\)$"):
        oci.probe_runtime("nope", work_dir=tmp_path)


def test_fake_runtime_state_machine(tmp_path: Path) -> None:
    rt = FakeRuntime()

    async def scenario() -> None:
        await rt.create("a", tmp_path, pid_file=tmp_path / "pid")
        assert (tmp_path / "pid").read_text() == "1001"
        with pytest.raises(Conflict):
            await rt.create("a", tmp_path)
        with pytest.raises(Conflict):
            await rt.delete("a")
        await rt.start("a")
        with pytest.raises(Conflict):
            await rt.start("a")
        assert await rt.ps("a") == [1001]
        rt.exec_results.append(oci.ExecResult(1, b"x", b""))
        assert (await rt.exec("a", tmp_path / "p.json")).exit_code == 1
        await rt.pause("a")
        assert (await rt.state("a")).status == "paused"
        await rt.resume("a")
        await rt.kill("a", signal.SIGTERM)
        assert (await rt.state("a")).status == "stopped"
        await rt.delete("a")
        with pytest.raises(NotFound):
            await rt.state("a")

    anyio.run(scenario)
    assert [c[0] for c in rt.calls][:3] == ["create", "create", "delete"]
    assert ("kill", "a", str(int(signal.SIGTERM))) in rt.calls


def test_runtime_for_probed_info(tmp_path: Path) -> None:
    info = oci.RuntimeInfo("runc", "/usr/sbin/runc", "runc version 1")
    rt = oci.runtime_for(info, tmp_path)
    assert rt.argv("list") == ["/usr/sbin/runc", "--root", str(tmp_path / "runc"), "list"]


def test_probe_cgroups_are_removed_even_when_the_runtime_left_them(tmp_path: Path) -> None:
    """crun 1.8.1 failing half-way on cgroup v2 leaves the probe container's own cgroup."""
    cid = "pycompose-probe-1-2"
    for base in (tmp_path, tmp_path / "memory"):
        (base / oci.PROBE_CGROUP_PARENT / cid).mkdir(parents=True)
    (tmp_path / "pids" / oci.PROBE_CGROUP_PARENT / "pycompose-probe-9-9").mkdir(parents=True)
    oci._remove_probe_cgroups(cid, tmp_path)
    assert not (tmp_path / oci.PROBE_CGROUP_PARENT).exists()
    assert not (tmp_path / "memory" / oci.PROBE_CGROUP_PARENT).exists()
    # Another probe's cgroup, running in parallel, is not touched.
    assert (tmp_path / "pids" / oci.PROBE_CGROUP_PARENT / "pycompose-probe-9-9").is_dir()
