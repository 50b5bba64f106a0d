"""Secret and config file mounts: API shape, defaults, limits and the files written."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from pycompose.engine.errors import InvalidArgument
from pycompose.storage.secrets import (
    MAX_SECRET,
    describe,
    file_mount,
    parse_api,
    source_data,
    to_api,
    write_files,
)


def test_default_targets() -> None:
    assert file_mount("secret", "db", b"x").target == "/run/secrets/db"
    assert file_mount("secret", "db", b"x", target="pw").target == "/run/secrets/pw"
    assert file_mount("config", "app.conf", b"x").target == "/app.conf"
    assert file_mount("config", "c", b"x", target="etc/c.ini").target == "/etc/c.ini"
    assert file_mount("config", "c", b"x", target="/opt/c").target == "/opt/c"


def test_api_round_trip() -> None:
    m = file_mount("secret", "db", b"s3cret", uid="1000", gid=1001, mode=0o400)
    [back] = parse_api([to_api(m)], None)
    assert back == m
    cfg = {"ConfigName": "c", "File": {"Name": "/etc/c"}, "Data": base64.b64encode(b"k=v").decode()}
    [c] = parse_api(None, [cfg])
    assert (c.kind, c.target, c.data, c.uid, c.gid, c.mode) == (
        "config",
        "/etc/c",
        b"k=v",
        0,
        0,
        0o444,
    )


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"SecretName": "a", "Bogus": 1}, "unknown field Secrets.Bogus"),
        ({"SecretName": "a", "Data": "!!"}, "base64"),
        ({"SecretName": "a", "File": {"UID": "root"}}, "invalid uid"),
        ({"SecretName": "a", "File": {"Mode": 0o17777}}, "invalid mode"),
        ({"SecretName": "a", "File": {"Name": "/proc/x"}}, "not allowed"),
        ({"SecretName": ""}, "invalid secret name"),
    ],
)
def test_api_errors(item: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        parse_api([item], None)


def test_duplicate_targets_and_size_limit() -> None:
    a = to_api(file_mount("secret", "a", b"", target="/x"))
    b = to_api(file_mount("secret", "b", b"", target="/x"))
    with pytest.raises(InvalidArgument, match="two secrets"):
        parse_api([a, b], None)
    with pytest.raises(InvalidArgument, match="over the"):
        file_mount("secret", "big", b"x" * (MAX_SECRET + 1))


def test_source_data(tmp_path: Path) -> None:
    f = tmp_path / "s.txt"
    f.write_bytes(b"from file")
    assert source_data("secret", "s", {"file": str(f)}, {}) == b"from file"
    assert source_data("secret", "s", {"environment": "PW"}, {"PW": "env"}) == b"env"
    assert source_data("config", "c", {"content": "inline"}, {}) == b"inline"
    with pytest.raises(InvalidArgument, match="PW is not set"):
        source_data("secret", "s", {"environment": "PW"}, {})
    with pytest.raises(InvalidArgument, match="Swarm"):
        source_data("secret", "s", {"external": True}, {})
    with pytest.raises(InvalidArgument, match="cannot read"):
        source_data("secret", "s", {"file": str(tmp_path / "nope")}, {})


def test_write_files(tmp_path: Path) -> None:
    uid, gid = os.getuid(), os.getgid()
    mounts = [
        file_mount("secret", "db", b"pw", uid=uid, gid=gid, mode=0o440),
        file_mount("config", "c", b"cfg", uid=uid, gid=gid, mode=0o644),
    ]
    specs = write_files(tmp_path / "files", mounts)
    assert os.stat(tmp_path / "files").st_mode & 0o777 == 0o700
    assert [(s.type, s.target, s.read_only) for s in specs] == [
        ("bind", "/run/secrets/db", True),
        ("bind", "/c", True),
    ]
    assert Path(specs[0].source).read_bytes() == b"pw"
    assert describe(Path(specs[0].source)) == (uid, gid, 0o440)
    assert describe(Path(specs[1].source)) == (uid, gid, 0o644)
    write_files(tmp_path / "files", mounts)  # a restart rewrites them
