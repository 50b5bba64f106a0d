"""Data safety of storage in the containers component, each with its own engine: a daemon
SIGKILLed while a container writes (fsync) to a volume loses nothing already synced and
still counts the volume as used; removing containers and volumes never follows a symlink
the container planted; a daemon restart releases what stopped containers left staged.
"""

from __future__ import annotations

import json
import pathlib
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator

import pytest

from pycompose.engine.errors import Conflict
from tests.fixtures.docker_cli import ok, run_docker
from tests.fixtures.engine import (
    EngineProcess,
    load_busybox,
    respawn_engine,
    start_engine,
    stop_engine,
)
from tests.fixtures.storage import cleanup, data_dir, volume_names

pytestmark = pytest.mark.root


@pytest.fixture
def eng(busybox_layout: pathlib.Path) -> Iterator[EngineProcess]:
    engine = start_engine(components=())
    try:
        load_busybox(engine, busybox_layout)
        yield engine
        cleanup(engine)
    finally:
        stop_engine(engine)


def _acked(eng: EngineProcess, name: str) -> list[int]:
    return [int(w) for w in ok(eng, "logs", name).split()]


def _wait_acks(eng: EngineProcess, name: str, count: int) -> list[int]:
    deadline = time.monotonic() + 20
    while len(acks := _acked(eng, name)) < count:
        assert time.monotonic() < deadline, acks
        time.sleep(0.05)
    return acks


def test_daemon_sigkill_while_writing_loses_nothing_synced(eng: EngineProcess) -> None:
    # Each number is appended, fsynced (busybox `sync FILE` is fsync(2)), then acknowledged.
    writer = ("i=0; while :; do i=$((i+1)); echo $i >> /data/log; sync /data/log; "
              "echo $i; sleep 0.01; done")  # fmt: skip
    ok(eng, "run", "-d", "--name", "writer", "-v", "durable:/data", "--tmpfs", "/t",
       "busybox", "sh", "-c", writer)  # fmt: skip
    _wait_acks(eng, "writer", 20)
    eng.process.send_signal(signal.SIGKILL)
    eng.process.wait(10)
    time.sleep(0.5)  # it goes on writing while no daemon runs
    respawn_engine(eng)
    info = json.loads(ok(eng, "inspect", "writer"))[0]
    assert info["State"]["Running"], info["State"]
    acked_while_down = _wait_acks(eng, "writer", 1)
    # The re-adopted container still holds its volume.
    with pytest.raises(Conflict, match="volume is in use"):
        eng.client().delete("/volumes/durable")
    ok(eng, "stop", "-t", "1", "writer")
    acks = _acked(eng, "writer")
    assert len(acks) >= len(acked_while_down) >= 20
    written = [int(w) for w in (data_dir(eng, "durable") / "log").read_text().split()]
    # Every acknowledged (synced) number is there, in order, with nothing lost before it.
    assert written[: len(acks)] == acks == list(range(1, len(acks) + 1))
    ok(eng, "rm", "writer")
    assert "durable" in volume_names(eng)


def test_restart_releases_what_stopped_containers_left(eng: EngineProcess) -> None:
    ok(eng, "run", "-d", "--name", "short", "-v", "v1:/v", "busybox", "sleep", "0.5")
    ok(eng, "create", "--name", "made", "-v", "v2:/v", "busybox", "true")
    eng.process.send_signal(signal.SIGKILL)
    eng.process.wait(10)
    time.sleep(1.0)  # "short" exits while no daemon runs: its staged mounts stay behind
    staged = eng.config.root / "mounts"
    assert [p.name for p in staged.iterdir() if p.name != ".files"] != []
    respawn_engine(eng)
    # (a container request waits until the component, and so its recovery, is set up)
    assert json.loads(ok(eng, "inspect", "short"))[0]["State"]["Status"] == "exited"
    assert [p.name for p in staged.iterdir() if p.name != ".files"] == []
    for name in ("v1", "v2"):  # still referenced by their (stopped) containers
        with pytest.raises(Conflict):
            eng.client().delete(f"/volumes/{name}")
    ok(eng, "rm", "short", "made")
    assert volume_names(eng) == {"v1", "v2"}


@pytest.fixture
def victim() -> Iterator[pathlib.Path]:
    path = pathlib.Path(tempfile.mkdtemp(prefix="pcvictim-"))
    (path / "precious").write_text("keep me\n")
    (path / "sub").mkdir()
    (path / "sub" / "also").write_text("keep me too\n")
    try:
        yield path
    finally:
        shutil.rmtree(path)


def test_removal_never_follows_a_planted_symlink(eng: EngineProcess,
                                                 victim: pathlib.Path) -> None:  # fmt: skip
    # The container plants symlinks to a host directory everywhere the engine later deletes:
    # its anonymous and named volumes, its own layer, and a secret's target directory.
    plant = (f"for d in /anon /named /; do ln -s {victim} $d/link; "
             f"ln -s {victim}/precious $d/file; mkdir -p $d/deep; ln -s {victim}/sub $d/deep/s; "
             "done")  # fmt: skip
    ok(eng, "run", "--name", "planter", "-v", "/anon", "-v", "named:/named", "busybox",
       "sh", "-c", plant)  # fmt: skip
    anon = [n for n in volume_names(eng) if n != "named"]
    assert (data_dir(eng, "named") / "link").is_symlink()
    ok(eng, "rm", "-v", "planter")
    assert volume_names(eng) == {"named"}
    ok(eng, "volume", "rm", "named")
    assert (victim / "precious").read_text() == "keep me\n"
    assert (victim / "sub" / "also").read_text() == "keep me too\n"
    assert anon and not (eng.config.root / "volumes" / anon[0]).exists()
    # A symlink in place of a whole volume directory is removed, not followed.
    ok(eng, "volume", "create", "swapped")
    volume_dir = eng.config.root / "volumes" / "swapped"
    shutil.rmtree(volume_dir / "_data")
    (volume_dir / "_data").symlink_to(victim)
    assert run_docker(eng, "volume", "rm", "swapped").returncode == 0
    assert sorted(p.name for p in victim.iterdir()) == ["precious", "sub"]
