"""Project discovery: files, directory, environment and name, as docker compose finds them."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import pytest

from pycompose.compose.discovery import (
    ProjectOptions,
    check_project_name,
    discover,
    normalize_project_name,
    project_name,
)
from pycompose.compose.errors import ComposeError


def read_env(path: str, _env: Mapping[str, str]) -> dict[str, str]:
    """A minimal KEY=VALUE reader: the real dotenv parser is tested on its own."""
    out = {}
    for line in Path(path).read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key] = value
    return out


def opts(tmp: Path, **kw: object) -> ProjectOptions:
    return ProjectOptions(workdir=str(tmp), environ=kw.pop("environ", {}), **kw)  # type: ignore[arg-type]


def test_finds_compose_yaml_in_parent_with_override(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text("services: {}\n")
    (tmp_path / "compose.override.yaml").write_text("services: {}\n")
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    found = discover(opts(deep), read_env)
    assert found.files == (str(tmp_path / "compose.yaml"), str(tmp_path / "compose.override.yaml"))
    assert found.project_directory == str(tmp_path)


def test_prefers_compose_yaml_and_warns_about_others(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text("")
    (tmp_path / "docker-compose.yml").write_text("")
    found = discover(opts(tmp_path), read_env)
    assert found.files == (str(tmp_path / "compose.yaml"),)
    assert any("multiple config files" in w for w in found.warnings)


def test_docker_compose_yml_is_found(tmp_path: Path) -> None:
    (tmp_path / "docker-compose.yml").write_text("")
    assert discover(opts(tmp_path), read_env).files == (str(tmp_path / "docker-compose.yml"),)


def test_no_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ComposeError, match="no configuration file provided"):
        discover(opts(tmp_path), read_env)


def test_explicit_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ComposeError, match="no such file"):
        discover(opts(tmp_path, files=("nope.yaml",)), read_env)


def test_compose_file_variable_and_separator(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("")
    (tmp_path / "b.yaml").write_text("")
    env = {"COMPOSE_FILE": "a.yaml;b.yaml", "COMPOSE_PATH_SEPARATOR": ";"}
    found = discover(opts(tmp_path, environ=env), read_env)
    assert found.files == (str(tmp_path / "a.yaml"), str(tmp_path / "b.yaml"))


def test_compose_file_from_dotenv_in_working_dir(tmp_path: Path) -> None:
    (tmp_path / "other.yaml").write_text("")
    (tmp_path / ".env").write_text("COMPOSE_FILE=other.yaml\n")
    assert discover(opts(tmp_path), read_env).files == (str(tmp_path / "other.yaml"),)


def test_dotenv_of_project_dir_and_os_env_wins(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text("")
    (tmp_path / ".env").write_text("TAG=dot\nOTHER=x\n")
    sub = tmp_path / "sub"
    sub.mkdir()
    found = discover(opts(sub, environ={"TAG": "os"}), read_env)
    assert found.environment["TAG"] == "os"
    assert found.environment["OTHER"] == "x"


def test_env_file_flag_replaces_dotenv_and_must_exist(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text("")
    (tmp_path / ".env").write_text("A=dot\n")
    (tmp_path / "custom.env").write_text("A=custom\n")
    found = discover(opts(tmp_path, env_files=("custom.env",)), read_env)
    assert found.environment["A"] == "custom"
    with pytest.raises(ComposeError, match="couldn't find env file"):
        discover(opts(tmp_path, env_files=("missing.env",)), read_env)


def test_profiles_from_environment(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text("")
    found = discover(opts(tmp_path, environ={"COMPOSE_PROFILES": "a, b"}), read_env)
    assert found.profiles == ("a", "b")
    found = discover(opts(tmp_path, profiles=("c",), environ={"COMPOSE_PROFILES": "a"}), read_env)
    assert found.profiles == ("c",)


def test_stdin_uses_working_dir(tmp_path: Path) -> None:
    found = discover(opts(tmp_path, files=("-",)), read_env)
    assert found.files == ("-",) and found.project_directory == str(tmp_path)


def test_project_directory_flag(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "compose.yaml").write_text("")
    found = discover(opts(tmp_path, project_directory="x", files=("compose.yaml",)), read_env)
    assert found.project_directory == str(tmp_path / "x")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("My Proj.X", "myprojx"), ("_Under", "under"), ("A_b-C", "a_b-c"), ("-x", "x"), ("ééé", "")],
)
def test_normalize_project_name(raw: str, expected: str) -> None:
    assert normalize_project_name(raw) == expected


@pytest.mark.parametrize("bad", ["Bad", "bad name", "-x", ""])
def test_explicit_names_must_be_valid(bad: str) -> None:
    with pytest.raises(ComposeError):
        check_project_name(bad)


def test_name_precedence(tmp_path: Path) -> None:
    proj = tmp_path / "Some Dir"
    proj.mkdir()
    (proj / "compose.yaml").write_text("")
    found = discover(opts(proj), read_env)
    assert project_name(found, None) == "somedir"
    assert project_name(found, "Declared") == "declared"
    found = discover(opts(proj, environ={"COMPOSE_PROJECT_NAME": "fromenv"}), read_env)
    assert project_name(found, "declared") == "fromenv"
    found = discover(
        opts(proj, project_name="flag", environ={"COMPOSE_PROJECT_NAME": "e"}), read_env
    )
    assert project_name(found, "declared") == "flag"


def test_name_that_normalises_to_nothing(tmp_path: Path) -> None:
    proj = tmp_path / "ééé"
    proj.mkdir()
    (proj / "compose.yaml").write_text("")
    with pytest.raises(ComposeError, match="must not be empty"):
        project_name(discover(opts(proj), read_env), None)
    assert os.path.isdir(proj)
