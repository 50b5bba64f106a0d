"""EngineConfig (flags, then environment, then defaults) and the daemon's lock and pid file."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pycompose.engine import daemon
from pycompose.engine.client import EngineUnreachable
from pycompose.engine.config import EngineConfig, parse_subnet_pool, socket_from_host
from pycompose.engine.errors import Conflict, InvalidArgument


def test_defaults() -> None:
    config = EngineConfig.load(environ={})
    assert config.root == Path("/var/lib/pycompose")
    assert config.socket_path == Path("/run/pycompose/engine.sock")
    assert config.host == "unix:///run/pycompose/engine.sock"
    assert config.owns_socket
    assert (config.bridge_prefix, config.subnet_pool, config.subnet_size) == (
        "pc-",
        ("10.89.0.0/16",),
        24,
    )


def test_environment_then_flags() -> None:
    env = {
        "PYCOMPOSE_ROOT": "/srv/pc",
        "PYCOMPOSE_RUNTIME_DIR": "/tmp/pcrun",
        "PYCOMPOSE_BRIDGE_PREFIX": "tb1-",
        "PYCOMPOSE_SUBNET_POOL": "10.200.0.0/16,10.201.0.0/16:26",
    }
    config = EngineConfig.load(environ=env)
    assert config.root == Path("/srv/pc") and config.socket_path == Path("/tmp/pcrun/engine.sock")
    assert config.subnet_pool == ("10.200.0.0/16", "10.201.0.0/16") and config.subnet_size == 26
    assert config.bridge_prefix == "tb1-"
    config = EngineConfig.load(
        root="/a", host="unix:///elsewhere/d.sock", environ={**env, "PYCOMPOSE_HOST": "unix:///x"}
    )
    assert config.root == Path("/a") and config.socket_path == Path("/elsewhere/d.sock")
    assert not config.owns_socket
    assert EngineConfig.load(environ={**env, "PYCOMPOSE_HOST": "unix:///x"}).socket_path == Path(
        "/x"
    )


def test_serve_args_reproduce_the_config() -> None:
    config = EngineConfig.load(
        root="/r", runtime_dir="/t", bridge_prefix="zz", subnet_pool="10.9.0.0/16:20", environ={}
    )
    args = config.serve_args()
    flags = dict(zip(args[::2], args[1::2], strict=True))
    again = EngineConfig.load(
        root=flags["--root"],
        runtime_dir=flags["--runtime-dir"],
        host=flags["--host"],
        bridge_prefix=flags["--bridge-prefix"],
        subnet_pool=flags["--subnet-pool"],
        environ={},
    )
    assert again == config


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"host": "tcp://127.0.0.1:2375"}, "only unix:///path"),
        ({"host": "unix://relative.sock"}, "absolute socket path"),
        ({"root": "relative"}, "root must be an absolute path"),
        ({"bridge_prefix": "TooLong-"}, "invalid bridge prefix"),
        ({"subnet_pool": "10.0.0.0/33"}, "invalid subnet pool entry"),
        ({"subnet_pool": "10.0.0.1/16"}, "host bits set"),
        ({"subnet_pool": "10.0.0.0/28:24"}, "smaller than the network size"),
        ({"subnet_pool": "10.0.0.0/16:31"}, "size after ':' must be 8..30"),
        ({"subnet_pool": ","}, "no CIDR"),
    ],
)
def test_invalid_settings_are_named(kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        EngineConfig.load(environ={}, **kwargs)


def test_socket_from_host() -> None:
    assert socket_from_host("unix:///run/x.sock") == Path("/run/x.sock")
    assert parse_subnet_pool("10.1.0.0/16") == (("10.1.0.0/16",), 24)


@pytest.fixture
def config() -> Iterator[EngineConfig]:
    tmp = Path(tempfile.mkdtemp(prefix="pcd-"))
    yield EngineConfig.load(root=tmp / "root", runtime_dir=tmp / "run", environ={})
    shutil.rmtree(tmp)


def test_lock_pidfile_and_refusal_of_a_second_instance(config: EngineConfig) -> None:
    assert not daemon.lock_held(config)
    with daemon.hold_lock(config):
        assert daemon.lock_held(config)
        assert daemon.read_pid(config) == os.getpid()
        with (
            pytest.raises(Conflict, match=rf"pid {os.getpid()}\) is already running"),
            daemon.hold_lock(config),
        ):
            pass
        assert daemon.lock_held(config)  # the refused attempt did not disturb the holder
    assert not daemon.lock_held(config)
    assert sorted(os.listdir(config.runtime_dir)) == []  # lock and pid file removed


def test_stale_socket_is_replaced_but_a_live_one_refused(config: EngineConfig) -> None:
    config.runtime_dir.mkdir(parents=True)
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(config.socket_path))
    stale.close()  # a socket file nobody listens on, as a SIGKILLed daemon leaves
    with daemon.hold_lock(config):
        assert not config.socket_path.exists()
    live = socket.socket(socket.AF_UNIX)
    live.bind(str(config.socket_path))
    live.listen()
    try:
        with (
            pytest.raises(Conflict, match="another server already listens"),
            daemon.hold_lock(config),
        ):
            pass
        assert config.socket_path.exists()  # not ours to remove
    finally:
        live.close()
        config.socket_path.unlink()


def test_status_and_stop_with_nothing_running(config: EngineConfig) -> None:
    st = daemon.status(config)
    assert (st.running, st.pid, st.answering) == (False, None, False)
    assert daemon.stop(config) is None


def test_no_autostart_for_a_foreign_socket(config: EngineConfig) -> None:
    foreign = EngineConfig.load(
        root=str(config.root), runtime_dir=str(config.runtime_dir), host="unix:///nowhere/x.sock",
        environ={},
    )  # fmt: skip
    with pytest.raises(EngineUnreachable, match="auto-start only applies"):
        daemon.ensure_daemon(foreign)


def test_log_tail(config: EngineConfig) -> None:
    assert daemon.log_tail(config.log_path) == "(no log file)"
    config.runtime_dir.mkdir(parents=True)
    config.log_path.write_text("".join(f"line {i}\n" for i in range(40)))
    assert daemon.log_tail(config.log_path, 3) == "line 37\nline 38\nline 39"


def test_log_rotation_keeps_one_old_log(config: EngineConfig) -> None:
    config.runtime_dir.mkdir(parents=True)
    config.log_path.write_bytes(b"x" * (daemon.LOG_ROTATE_SIZE + 1))
    daemon._rotate(config.log_path)
    assert not config.log_path.exists()
    assert config.log_path.with_name("engine.log.1").stat().st_size == daemon.LOG_ROTATE_SIZE + 1
    config.log_path.write_text("small")
    daemon._rotate(config.log_path)
    assert config.log_path.read_text() == "small"


def test_a_losing_autostart_child_is_stopped_but_a_winner_kept(config: EngineConfig) -> None:
    config.runtime_dir.mkdir(parents=True)
    sleep = shutil.which("sleep") or "/bin/sleep"
    loser = os.posix_spawn(sleep, [sleep, "30"], os.environ)
    winner = os.posix_spawn(sleep, [sleep, "30"], os.environ)
    try:
        config.pid_path.write_text(f"{winner}\n")  # another daemon won and answers
        daemon._end_loser(config, loser)
        with pytest.raises(ChildProcessError):
            os.waitpid(loser, os.WNOHANG)  # killed and reaped
        daemon._end_loser(config, winner)
        assert os.waitpid(winner, os.WNOHANG) == (0, 0)  # still running
    finally:
        for pid in (loser, winner):
            with contextlib.suppress(ProcessLookupError, ChildProcessError):
                os.kill(pid, 9)
                os.waitpid(pid, 0)
