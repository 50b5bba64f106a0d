"""Credentials: our auth.json, docker's config.json, credential helpers, login/logout."""

from __future__ import annotations

import base64
import json
import os
import pathlib
import stat
from collections.abc import Mapping
from typing import Any

import anyio
import pytest

from pycompose.engine.errors import InvalidArgument
from pycompose.engine.images.auth import (
    AuthStore,
    default_config_dir,
    login,
    logout,
    registry_key,
)
from pycompose.engine.images.registry import Credentials, RegistryError, RegistryUnauthorized
from tests.fixtures import registry as fx


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.fixture
def docker_config(tmp_path: pathlib.Path) -> pathlib.Path:
    return tmp_path / "docker" / "config.json"


def write_docker(path: pathlib.Path, doc: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))


class RecordingHelper:
    def __init__(self, answers: dict[tuple[str, str], Mapping[str, Any] | None]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, str]] = []

    def __call__(self, name: str, server: str) -> Mapping[str, Any] | None:
        self.calls.append((name, server))
        return self.answers.get((name, server))


@pytest.mark.parametrize(("server", "key"), [
    ("docker.io", "docker.io"),
    ("https://index.docker.io/v1/", "docker.io"),
    ("index.docker.io", "docker.io"),
    ("registry-1.docker.io", "docker.io"),
    ("localhost:5000", "localhost:5000"),
    ("https://Reg.Example.com:443/v2/", "reg.example.com:443"),
    ("http://10.0.0.1:5000", "10.0.0.1:5000"),
])
def test_registry_key(server: str, key: str) -> None:
    assert registry_key(server) == key


def test_registry_key_rejects_empty() -> None:
    with pytest.raises(InvalidArgument):
        registry_key("https://")


def test_save_lookup_remove(tmp_path: pathlib.Path, docker_config: pathlib.Path) -> None:
    store = AuthStore(tmp_path / "cfg", docker_config)
    assert store.lookup("localhost:5000") is None
    store.save("https://localhost:5000/v2/", Credentials("ann", "pw:with:colons"))
    store.save("docker.io", Credentials("bob", "hub"))
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.config_dir.stat().st_mode) == 0o700
    doc = json.loads(store.path.read_text())
    assert doc == {"auths": {"localhost:5000": {"auth": b64("ann:pw:with:colons")},
                             "docker.io": {"auth": b64("bob:hub")}}}
    assert store.lookup("localhost:5000") == Credentials("ann", "pw:with:colons")
    assert store.lookup("index.docker.io") == Credentials("bob", "hub")
    assert logout("localhost:5000", store=store) is True
    assert logout("localhost:5000", store=store) is False
    assert store.lookup("localhost:5000") is None
    assert [p.name for p in store.config_dir.iterdir()] == ["auth.json"]  # no temp left


def test_docker_auths_are_read(tmp_path: pathlib.Path, docker_config: pathlib.Path) -> None:
    write_docker(docker_config, {"auths": {
        "https://index.docker.io/v1/": {"auth": b64("hubuser:hubpw")},
        "reg.example.com": {"username": "u", "password": "p"},
        "empty.example.com": {},
    }})
    store = AuthStore(tmp_path / "cfg", docker_config)
    assert store.lookup("docker.io") == Credentials("hubuser", "hubpw")
    assert store.lookup("reg.example.com") == Credentials("u", "p")
    assert store.lookup("empty.example.com") is None
    assert store.lookup("other.example.com") is None


def test_ours_win_over_docker(tmp_path: pathlib.Path, docker_config: pathlib.Path) -> None:
    write_docker(docker_config, {"auths": {"r.io": {"auth": b64("docker:1")}}})
    store = AuthStore(tmp_path / "cfg", docker_config)
    store.save("r.io", Credentials("ours", "2"))
    assert store.lookup("r.io") == Credentials("ours", "2")


@pytest.mark.parametrize(("entry", "message"), [
    ({"auth": "%%%"}, "not valid base64"),
    ({"auth": b64("nocolon")}, "not 'user:password'"),
    ({"identitytoken": "abc"}, "identity token"),
])
def test_bad_docker_entries_are_named(tmp_path: pathlib.Path, docker_config: pathlib.Path,
                                      entry: dict[str, str], message: str) -> None:
    write_docker(docker_config, {"auths": {"r.io": entry}})
    with pytest.raises(InvalidArgument, match=message):
        AuthStore(tmp_path / "cfg", docker_config).lookup("r.io")


def test_corrupt_files_are_reported(tmp_path: pathlib.Path, docker_config: pathlib.Path) -> None:
    write_docker(docker_config, {"auths": []})
    with pytest.raises(InvalidArgument, match="'auths' must be an object"):
        AuthStore(tmp_path / "cfg", docker_config).lookup("r.io")
    docker_config.write_text("{not json")
    with pytest.raises(InvalidArgument, match="cannot read"):
        AuthStore(tmp_path / "cfg", docker_config).lookup("r.io")


def test_cred_helpers_and_store(tmp_path: pathlib.Path, docker_config: pathlib.Path) -> None:
    write_docker(docker_config, {
        "credsStore": "desktop",
        "credHelpers": {"gcr.io": "gcloud"},
        "auths": {"plain.io": {"auth": b64("from:auths")}},
    })
    helper = RecordingHelper({
        ("gcloud", "gcr.io"): {"ServerURL": "gcr.io", "Username": "g", "Secret": "s"},
        ("desktop", "https://index.docker.io/v1/"): {"Username": "d", "Secret": "hub"},
    })
    store = AuthStore(tmp_path / "cfg", docker_config, helper)
    assert store.lookup("gcr.io") == Credentials("g", "s")
    assert store.lookup("docker.io") == Credentials("d", "hub")
    # The store has nothing for plain.io: the auths entry is used.
    assert store.lookup("plain.io") == Credentials("from", "auths")
    assert helper.calls == [("gcloud", "gcr.io"), ("desktop", "https://index.docker.io/v1/"),
                            ("desktop", "plain.io")]


def test_helper_identity_token_refused(tmp_path: pathlib.Path,
                                       docker_config: pathlib.Path) -> None:
    write_docker(docker_config, {"credsStore": "x"})
    helper = RecordingHelper({("x", "r.io"): {"Username": "<token>", "Secret": "t"}})
    with pytest.raises(InvalidArgument, match="identity token"):
        AuthStore(tmp_path / "cfg", docker_config, helper).lookup("r.io")


def test_real_helper_program(tmp_path: pathlib.Path, docker_config: pathlib.Path,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script = bindir / "docker-credential-pyc"
    script.write_text(
        "#!/bin/sh\n"
        '[ "$1" = get ] || exit 2\n'
        "read server\n"
        'if [ "$server" = r.io ]; then\n'
        '  printf \'{"ServerURL":"r.io","Username":"helper-user","Secret":"pw"}\'\n'
        "else\n"
        "  echo 'credentials not found in native keychain'; exit 1\n"
        "fi\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    write_docker(docker_config, {"credHelpers": {"r.io": "pyc", "q.io": "pyc",
                                                 "m.io": "missing-helper"}})
    store = AuthStore(tmp_path / "cfg", docker_config)
    assert store.lookup("r.io") == Credentials("helper-user", "pw")
    assert store.lookup("q.io") is None
    with pytest.raises(RegistryError, match="docker-credential-missing-helper is not installed"):
        store.lookup("m.io")


def test_default_config_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    monkeypatch.setenv("PYCOMPOSE_CONFIG_DIR", str(tmp_path / "a"))
    assert default_config_dir() == tmp_path / "a"
    monkeypatch.delenv("PYCOMPOSE_CONFIG_DIR")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "x"))
    assert default_config_dir() == tmp_path / "x" / "pycompose"


def test_login_verifies_then_saves(tmp_path: pathlib.Path, docker_config: pathlib.Path) -> None:
    fake = fx.FakeRegistry(token_auth=True, credentials=Credentials("ann", "right"))
    store = AuthStore(tmp_path / "cfg", docker_config)
    try:
        with pytest.raises(RegistryUnauthorized):
            anyio.run(lambda: login(fake.host, "ann", "wrong", store=store))
        assert not store.path.exists()
        anyio.run(lambda: login(fake.host, "ann", "right", store=store))
        assert store.lookup(fake.host) == Credentials("ann", "right")
        with pytest.raises(InvalidArgument, match="user name"):
            anyio.run(lambda: login(fake.host, "", "x", store=store))
    finally:
        fake.close()
