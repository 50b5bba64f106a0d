"""The storage tutorial's commands, as written, with ``pycompose container run`` and then with
the docker CLI, on an isolated engine with busybox: bind mounts (``-v "$(pwd)":/app`` and
``--mount type=bind,...``), a named volume (``volume create myvol2``, ``-v myvol2:/app``,
``--mount source=myvol2,target=/app``) and tmpfs (``--tmpfs /app``,
``--mount type=tmpfs,destination=/app``). Each form runs through bash in a project dir so
``"$(pwd)"`` is expanded by the shell exactly as a user's would be.
"""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator

import pytest

from tests.fixtures.docker_cli import DOCKER
from tests.fixtures.engine import REPO, EngineProcess
from tests.fixtures.storage import cleanup

pytestmark = pytest.mark.root


@pytest.fixture
def eng(module_engine: EngineProcess) -> Iterator[EngineProcess]:
    yield module_engine
    cleanup(module_engine)


@pytest.fixture
def project() -> Iterator[pathlib.Path]:
    path = pathlib.Path(tempfile.mkdtemp(prefix="pctut-"))
    (path / "index.html").write_text("<h1>hello from the host</h1>\n")
    try:
        yield path
    finally:
        shutil.rmtree(path)


def shell(eng: EngineProcess, cwd: pathlib.Path, script: str, cli: str) -> str:
    """Run ``script`` in bash with ``pycompose`` (our CLI) or ``docker`` pointed at ``eng``."""
    env = {k: v for k, v in eng.env().items() if not k.startswith("DOCKER_")}
    env["PYTHONPATH"] = str(REPO)
    env["DOCKER_CONFIG"] = str(eng.tmp / "docker-config")
    if cli == "pycompose":
        prelude = f'pycompose() {{ "{sys.executable}" -m pycompose.cli.main "$@"; }}\n'
    else:
        prelude = f'docker() {{ "{DOCKER}" -H "{eng.host}" "$@"; }}\n'
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", prelude + script], cwd=cwd,
                          env=env, capture_output=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, (script, proc.stdout.decode(), proc.stderr.decode())
    return proc.stdout.decode()


CLIS = ("pycompose", "docker")


def _cmd(cli: str) -> str:
    return "pycompose container" if cli == "pycompose" else "docker"


@pytest.mark.parametrize("cli", CLIS)
def test_bind_mount_forms(eng: EngineProcess, project: pathlib.Path, cli: str) -> None:
    c = _cmd(cli)
    out = shell(eng, project, f"""
{c} run --rm -v "$(pwd)":/app busybox cat /app/index.html
{c} run --rm --mount type=bind,source="$(pwd)",target=/app busybox sh -c 'echo saved > /app/out'
{c} run -d --name devtest -v "$(pwd)":/app:ro busybox sleep 60 >/dev/null
{c} inspect devtest
{c} rm -f devtest >/dev/null
""", cli)  # fmt: skip
    assert out.startswith("<h1>hello from the host</h1>\n")
    assert (project / "out").read_text() == "saved\n"
    mounts = json.loads(out.split("\n", 1)[1])[0]["Mounts"]
    assert [(m["Type"], m["Source"], m["Destination"], m["RW"]) for m in mounts] == [
        ("bind", str(project), "/app", False)]


@pytest.mark.parametrize("cli", CLIS)
def test_named_volume_forms(eng: EngineProcess, project: pathlib.Path, cli: str) -> None:
    c = _cmd(cli)
    vol = "pycompose volume" if cli == "pycompose" else "docker volume"
    out = shell(eng, project, f"""
{vol} create myvol2
{c} run --rm -v myvol2:/app busybox sh -c 'echo first > /app/note'
{c} run --rm --mount source=myvol2,target=/app busybox cat /app/note
{c} run -d --name devtest --mount source=myvol2,target=/app busybox sleep 60 >/dev/null
{vol} rm myvol2 2>&1 || echo "refused while in use"
{c} rm -f devtest >/dev/null
{vol} rm myvol2
{vol} ls -q
""", cli)  # fmt: skip
    lines = out.splitlines()
    assert lines[0] == "myvol2" and lines[1] == "first"
    assert "volume is in use" in out and lines[-2:] == ["refused while in use", "myvol2"]


@pytest.mark.parametrize("cli", CLIS)
def test_tmpfs_forms(eng: EngineProcess, project: pathlib.Path, cli: str) -> None:
    c = _cmd(cli)
    probe = "grep ' /app ' /proc/mounts | cut -d' ' -f1-3"
    out = shell(eng, project, f"""
{c} run --rm --tmpfs /app busybox sh -c "{probe}"
{c} run --rm --mount type=tmpfs,destination=/app busybox sh -c "{probe}"
{c} run --name tmptest --tmpfs /app busybox sh -c 'echo "seen: $(ls -A /app)"; touch /app/x'
{c} start -a tmptest
{c} rm tmptest >/dev/null
""", cli)  # fmt: skip
    lines = out.splitlines()
    assert lines[:2] == ["tmpfs /app tmpfs"] * 2
    # What the first run left in its tmpfs is gone when the container starts again.
    assert lines[2:] == ["seen: ", "seen: "]
