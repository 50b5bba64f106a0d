"""Our CLI and the real docker CLI side by side on the same daemon (an isolated dockerd, and
our own engine): for commands whose output does not depend on the moment, both must print
the same bytes and exit alike. On our engine this isolates the CLI: whatever the engine
answers, both clients must render it the same way."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pytest

from tests.fixtures.dockerd import DOCKER, load_busybox, start_dockerd, stop_dockerd

REPO = Path(__file__).resolve().parents[2]


class Daemon(Protocol):
    """What the comparisons need: a socket and the docker CLI pointed at it."""

    @property
    def host(self) -> str: ...

    def docker(self, *args: str, stdin: bytes | None = None,
               check: bool = True) -> subprocess.CompletedProcess[bytes]: ...


@dataclass
class Engine:
    """Our engine, driven by the docker CLI."""

    host: str
    config_dir: Path

    def docker(self, *args: str, stdin: bytes | None = None,
               check: bool = True) -> subprocess.CompletedProcess[bytes]:
        env = {**os.environ, "DOCKER_CONFIG": str(self.config_dir)}
        return subprocess.run([DOCKER, "-H", self.host, *args], input=stdin,
                              capture_output=True, env=env, timeout=120, check=check)


def _populate(daemon: Daemon) -> None:
    daemon.docker("run", "-d", "--name", "steady", "-l", "b=2", "-l", "a=<1>",
                  "-e", "X=&y", "busybox", "sh", "-c",
                  "echo out; echo err >&2; exec sleep 600")
    daemon.docker("run", "--name", "gone", "busybox", "sh", "-c", "echo bye; exit 4",
                  check=False)


@pytest.fixture(scope="module", params=["dockerd", "engine"])
def dockerd(request: pytest.FixtureRequest) -> Iterator[Daemon]:
    """The daemon both CLIs talk to, with a running and an exited container."""
    if request.param == "dockerd":
        daemon = start_dockerd()
        try:
            load_busybox(daemon)
            _populate(daemon)
            yield daemon
        finally:
            stop_dockerd(daemon)
        return
    from tests.fixtures.engine import load_busybox_tagged, start_engine, stop_engine

    engine = start_engine(components=())
    try:
        load_busybox_tagged(engine, "busybox:1.28")
        wrapped = Engine(engine.host, engine.tmp / "docker-config")
        _populate(wrapped)
        yield wrapped
    finally:
        stop_engine(engine)


def ours(daemon: Daemon, *args: str) -> subprocess.CompletedProcess[bytes]:
    with tempfile.TemporaryDirectory(prefix="pcdiff-") as run_dir:
        env = {**os.environ, "PYCOMPOSE_HOST": daemon.host, "PYCOMPOSE_RUNTIME_DIR": run_dir,
               "PYTHONPATH": str(REPO)}
        return subprocess.run([sys.executable, "-m", "pycompose.cli.main", *args],
                              capture_output=True, env=env, timeout=60)


def same(daemon: Daemon, *args: str, stderr: bool = True) -> bytes:
    """Run both CLIs (retrying when a second boundary made times differ); compare."""
    for _ in range(3):
        theirs = daemon.docker(*args, check=False)
        mine = ours(daemon, *args)
        if theirs.stdout == mine.stdout:
            break
        time.sleep(0.2)
    assert mine.stdout.decode() == theirs.stdout.decode()
    assert mine.returncode == theirs.returncode, mine.stderr
    if stderr:
        assert mine.stderr.decode() == theirs.stderr.decode()
    return mine.stdout


@pytest.mark.root
@pytest.mark.parametrize("args", [
    ("ps",), ("ps", "-a"), ("ps", "-a", "--no-trunc"), ("ps", "-q"), ("ps", "-aq"),
    ("ps", "-a", "--format", "json"), ("ps", "-l"), ("ps", "-n", "1", "-a"),
    ("ps", "-a", "--filter", "status=exited"), ("ps", "--filter", "label=b=2"),
    ("ps", "-a", "--format", "table {{.Names}}\t{{.Labels}}\t{{.Label \"a\"}}\t{{.State}}"),
    ("ps", "-a", "--format", "{{.Names}}: {{.Command}} {{.Networks}} {{.LocalVolumes}}"),
    ("ps", "-a", "--format", "{{json .}}"),
    ("container", "ls", "-s"),
])
def test_listing_matches_docker(dockerd: Daemon, args: tuple[str, ...]) -> None:
    same(dockerd, *args)


@pytest.mark.root
@pytest.mark.parametrize("args", [
    ("inspect", "steady"), ("inspect", "steady", "gone"), ("container", "inspect", "gone"),
    ("inspect", "-f", "{{.State.Pid}} {{.State.Running}} {{.Name}}", "steady"),
    ("inspect", "-f", "{{json .Config}}", "steady"),
    ("inspect", "-f", "{{json .Config.Labels}} {{.Config.Labels}}", "steady"),
    ("inspect", "-f", "{{range $k, $v := .Config.Labels}}{{$k}}={{$v}} {{end}}", "steady"),
    ("inspect", "-f", "{{range .Config.Env}}{{println .}}{{end}}", "steady"),
    ("inspect", "-f", "{{.State.ExitCode}} {{.State.Status}} {{.RestartCount}}", "gone"),
    ("inspect", "-f", "{{.NetworkSettings.IPAddress}}|{{.HostConfig.NetworkMode}}", "steady"),
    ("inspect", "-f", "{{index .Config.Cmd 0}} {{len .Config.Cmd}}", "steady"),
    ("inspect", "-f", "{{if .State.Running}}up{{else}}down{{end}}", "steady", "gone"),
    ("inspect", "--format", "{{.Config.Image}}", "busybox"),
    ("inspect", "nope"), ("container", "inspect", "nope"),
])
def test_inspect_matches_docker(dockerd: Daemon, args: tuple[str, ...]) -> None:
    same(dockerd, *args)


@pytest.mark.root
@pytest.mark.parametrize("args", [
    ("logs", "steady"), ("logs", "gone"), ("logs", "--tail", "1", "gone"),
    ("logs", "--since", "2000-01-01T00:00:00Z", "gone"), ("top", "steady"),
    ("top", "steady", "-o", "pid,comm"), ("wait", "gone"), ("logs", "nope"),
    ("stop", "nope"), ("rm", "nope"), ("kill", "gone"), ("pause", "nope"),
])
def test_other_commands_match_docker(dockerd: Daemon, args: tuple[str, ...]) -> None:
    same(dockerd, *args)


@pytest.mark.root
def test_exit_codes_match_docker(dockerd: Daemon) -> None:
    for args in (("run", "--rm", "busybox", "sh", "-c", "exit 42"),
                 ("run", "--rm", "busybox", "nosuchcmd"),
                 ("run", "--rm", "busybox", "/etc"),
                 ("exec", "steady", "sh", "-c", "exit 7"),
                 ("exec", "steady", "nosuchcmd")):
        theirs = dockerd.docker(*args, check=False)
        mine = ours(dockerd, *args)
        assert (mine.returncode, mine.stdout) == (theirs.returncode, theirs.stdout), args


@pytest.mark.root
@pytest.mark.parametrize("fmt", [
    "{{.Config.Entrypoint}} {{.HostConfig.Binds}} {{.Config.Volumes}} {{.HostConfig.CapAdd}}",
    "{{.State}}", "{{.State.Health}}", "{{.Config.ExposedPorts}} {{.Config.StopTimeout}}",
    "{{.HostConfig.LogConfig}}", "{{json .Config.Entrypoint}} {{json .State}}",
    "{{json .}}", "{{.Nope}}", "{{.Config.Nope}}", "{{.Mounts}} {{.Config.Env}}",
    "{{range .Config.Entrypoint}}x{{else}}none{{end}}",
    "{{.NetworkSettings.Networks.bridge.Aliases}} {{.HostConfig.RestartPolicy}}",
])
def test_typed_inspect_values_match_docker(dockerd: Daemon, fmt: str) -> None:
    """docker formats inspect against typed structs: nil slices [], structs {...}, errors."""
    theirs = dockerd.docker("inspect", "-f", fmt, "steady", check=False)
    mine = ours(dockerd, "inspect", "-f", fmt, "steady")
    assert (mine.returncode, mine.stdout.decode()) == (theirs.returncode, theirs.stdout.decode())
    if theirs.returncode:
        assert mine.stderr.decode().startswith("template parsing error: template: ")
        assert mine.stderr.decode().split(": ")[-1] == theirs.stderr.decode().split(": ")[-1]


@pytest.mark.root
def test_closed_pipe_ends_quietly_like_docker(dockerd: Daemon) -> None:
    dockerd.docker("run", "--name", "chatty", "busybox", "seq", "1", "200000")
    with tempfile.TemporaryDirectory(prefix="pcdiff-") as run_dir:
        env = {**os.environ, "PYCOMPOSE_HOST": dockerd.host, "PYCOMPOSE_RUNTIME_DIR": run_dir,
               "PYTHONPATH": str(REPO)}
        for cli in (f"{sys.executable} -m pycompose.cli.main", f"docker -H {dockerd.host}"):
            result = subprocess.run(f"{cli} logs chatty | head -c 10; echo \" ${{PIPESTATUS[0]}}\"",
                                    shell=True, executable="/bin/bash", env=env,
                                    capture_output=True, timeout=60)
            assert (result.stdout, result.stderr) == (b"1\n2\n3\n4\n5\n 141\n", b""), cli


def _tree(root: Path) -> list[tuple[str, str, str]]:
    """Relative paths under ``root`` with owner, mode and contents ("<dir>" for dirs)."""
    out = []
    for path in sorted(root.rglob("*")):
        st = path.stat()
        out.append((str(path.relative_to(root)), f"{st.st_uid}:{st.st_gid}:{st.st_mode:o}",
                    "<dir>" if path.is_dir() else path.read_text(errors="replace")))
    return out


@pytest.mark.root
@pytest.mark.parametrize(("src", "dest", "prepare"), [
    ("box:/data/dir", "new", ""), ("box:/data/dir", "existing", "dir"),
    ("box:/data/dir/.", "existing", "dir"), ("box:/data/file", "existing", "dir"),
    ("box:/data/file", "renamed.txt", ""), ("box:/data/file", "existing", "file"),
])
def test_cp_out_matches_docker(dockerd: Daemon, tmp_path: Path, src: str, dest: str,
                               prepare: str) -> None:
    if dockerd.docker("inspect", "box", check=False).returncode != 0:
        dockerd.docker("run", "-d", "--name", "box", "busybox", "sh", "-c",
                       "mkdir -p /data/dir/sub && echo a > /data/dir/sub/a && "
                       "echo f > /data/file && chown -R 1234:4321 /data && "
                       "chmod 640 /data/file && exec sleep 600")
        time.sleep(0.5)
    results = []
    for who in ("docker", "ours"):
        base = tmp_path / who
        base.mkdir()
        if prepare == "dir":
            (base / dest).mkdir()
        elif prepare == "file":
            (base / dest).write_text("old\n")
        target = str(base / dest)
        result = dockerd.docker("cp", src, target, check=False) if who == "docker" \
            else ours(dockerd, "cp", src, target)
        results.append((result.returncode, _tree(base)))
    assert results[1] == results[0]


@pytest.mark.root
@pytest.mark.parametrize(("src", "dest"), [
    ("dir", "/in/existing"), ("dir", "/in/fresh"), ("dir/.", "/in/existing"),
    ("file", "/in/existing"), ("file", "/in/newname"), ("file", "/in/afile"),
])
def test_cp_in_matches_docker(dockerd: Daemon, tmp_path: Path, src: str,
                              dest: str) -> None:
    (tmp_path / "dir" / "sub").mkdir(parents=True)
    (tmp_path / "dir" / "sub" / "x").write_text("x\n")
    (tmp_path / "file").write_text("content\n")
    listings = []
    for who in ("docker", "ours"):
        name = f"cpin-{who}"
        dockerd.docker("rm", "-f", name, check=False)
        dockerd.docker("run", "-d", "--name", name, "busybox", "sh", "-c",
                       "mkdir -p /in/existing && echo old > /in/afile && exec sleep 600")
        time.sleep(0.3)
        source = str(tmp_path / src)
        result = dockerd.docker("cp", source, f"{name}:{dest}", check=False) if who == "docker" \
            else ours(dockerd, "cp", source, f"{name}:{dest}")
        find = dockerd.docker("exec", name, "sh", "-c",
                              "cd /in && find . | sort && cat $(find . -type f | sort)")
        listings.append((result.returncode, find.stdout))
        dockerd.docker("rm", "-f", name)
    assert listings[1] == listings[0]
