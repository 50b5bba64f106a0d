"""Isolated daemons for the benchmarks: our engine, a Docker daemon, a loopback registry.

These wrap the test fixtures (``tests/fixtures/engine.py``, ``dockerd.py``, ``registry.py``)
so a benchmark starts exactly what the integration tests start: temp state dirs, a private
socket, a random bridge prefix and subnet pool for our engine; a private data root, exec
root, containerd namespaces and cgroup parent for dockerd; Debian's ``docker-registry`` on a
free 127.0.0.1 port. Each is a context manager that stops what it started, removes its temp
dirs, and then raises :class:`BenchLeftovers` naming anything still there (a process, a
mount, a bridge, an nftables table), so a benchmark that "worked" but leaked does not pass
quietly.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import pycompose_command
from pycompose.netns.nat import table_name
from tests.fixtures.dockerd import DOCKER, DockerDaemon, start_dockerd, stop_dockerd
from tests.fixtures.dockerd import load_busybox as dockerd_load_busybox
from tests.fixtures.engine import EngineProcess, start_engine, stop_engine
from tests.fixtures.images import busybox_oci_layout, layout_tarball
from tests.fixtures.registry import REGISTRY_BIN, RegistryServer, run_registry

__all__ = [
    "BenchLeftovers",
    "BenchUnavailable",
    "DockerDaemon",
    "EngineProcess",
    "RegistryServer",
    "docker_cli",
    "docker_env",
    "docker_missing",
    "isolated_dockerd",
    "load_busybox",
    "loopback_registry",
    "pycompose_engine",
    "run_pycompose",
    "store_bytes",
]


class BenchUnavailable(Exception):
    """A program the benchmark needs is not installed here."""


class BenchLeftovers(Exception):
    """Something a benchmark started was still there after it was stopped."""


def docker_missing() -> str | None:
    """Why an isolated Docker daemon cannot run here, or None when it can."""
    for program in ("dockerd", "docker", "containerd"):
        if shutil.which(program) is None:
            return f"{program} is not installed (Debian package docker.io)"
    return None


def docker_env(config_dir: Path) -> dict[str, str]:
    """Environment for a ``docker`` CLI that keeps its config out of the user's ~/.docker."""
    return {**os.environ, "DOCKER_CONFIG": str(config_dir)}


def docker_cli(host: str, *args: str) -> list[str]:
    """argv of the docker CLI talking to ``host`` (a ``unix://`` URL)."""
    return [DOCKER, "-H", host, *args]


def store_bytes(directory: Path) -> int:
    """Bytes allocated under ``directory`` (not following symlinks, not crossing mounts)."""
    total = 0
    device = directory.stat().st_dev
    for top, dirs, files in os.walk(directory):
        for name in files + dirs:
            with contextlib.suppress(OSError):
                st = os.lstat(os.path.join(top, name))
                if st.st_dev == device:
                    total += st.st_blocks * 512
    return total


def _processes_naming(path: Path) -> list[int]:
    """Pids whose command line mentions ``path`` (daemons, monitors, shims we started)."""
    needle = str(path).encode()
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            with contextlib.suppress(OSError):
                if needle in Path(f"/proc/{entry}/cmdline").read_bytes():
                    found.append(int(entry))
    return found


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path) + "/"
    lines = Path("/proc/self/mountinfo").read_text().splitlines()
    return [p for p in (line.split()[4] for line in lines) if p.startswith(prefix)]


def _engine_leftovers(engine: EngineProcess) -> list[str]:
    found = [f"process {pid}" for pid in _processes_naming(engine.tmp)]
    found += [f"mount {point}" for point in _mounts_under(engine.tmp)]
    prefix = engine.config.bridge_prefix
    found += [f"link {name}" for name in os.listdir("/sys/class/net") if name.startswith(prefix)]
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True,
                            check=False).stdout
    if table_name(prefix) in tables.split():
        found.append(f"nftables table {table_name(prefix)}")
    if engine.tmp.exists():
        found.append(f"directory {engine.tmp}")
    return found


@contextlib.contextmanager
def pycompose_engine() -> Iterator[EngineProcess]:
    """Our engine daemon with only its built-in components, fully isolated."""
    engine = start_engine(components=())
    try:
        yield engine
    finally:
        problems: list[str] = []
        try:
            stop_engine(engine)
        except AssertionError as err:  # the fixture's own check: files in the runtime dir
            problems.append(str(err))
        problems += _engine_leftovers(engine)
        if problems:
            raise BenchLeftovers(f"pycompose engine left behind: {problems}")


@contextlib.contextmanager
def isolated_dockerd() -> Iterator[DockerDaemon]:
    """A Docker daemon of its own (bridge and iptables off; 127.0.0.0/8 is insecure by default)."""
    reason = docker_missing()
    if reason is not None:
        raise BenchUnavailable(reason)
    daemon = start_dockerd()
    try:
        yield daemon
    finally:
        try:
            stop_dockerd(daemon)  # checks processes, mounts and cgroups itself
        except AssertionError as err:
            raise BenchLeftovers(str(err)) from err
        if daemon.tmp.exists() or _processes_naming(daemon.tmp):
            raise BenchLeftovers(f"isolated dockerd left {daemon.tmp} or a process naming it")


@contextlib.contextmanager
def loopback_registry() -> Iterator[RegistryServer]:
    """Debian's docker-registry over plain http on a free 127.0.0.1 port, temp storage."""
    if not os.access(REGISTRY_BIN, os.X_OK):
        raise BenchUnavailable(f"{REGISTRY_BIN} is missing (Debian package docker-registry)")
    with run_registry() as server:
        storage = server.storage
        yield server
    if storage.exists() or _processes_naming(storage.parent):
        raise BenchLeftovers(f"registry left {storage.parent} or a process naming it")


def load_busybox(target: EngineProcess | DockerDaemon) -> None:
    """Make ``busybox:latest`` (Debian's busybox-static) available in ``target``."""
    if isinstance(target, DockerDaemon):
        dockerd_load_busybox(target)
        return
    with tempfile.TemporaryDirectory(prefix="pcbench-bb-") as tmp:
        layout = busybox_oci_layout(Path(tmp) / "layout")
        buf = io.BytesIO()
        layout_tarball(layout, buf)
    run_pycompose(target, "image", "load", stdin=buf.getvalue())


def run_pycompose(engine: EngineProcess, *args: str, stdin: bytes | None = None,
                  timeout: float = 600) -> subprocess.CompletedProcess[bytes]:
    """Run the ``pycompose`` CLI against ``engine``; raise with its stderr if it fails."""
    proc = subprocess.run([*pycompose_command(), *args], input=stdin, capture_output=True,
                          env=engine.env(), timeout=timeout, check=False)
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip()
        raise RuntimeError(f"pycompose {' '.join(args)} exited {proc.returncode}: {err}")
    return proc

