"""include: expectations checked against docker compose v2.40.3."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest

from pycompose.compose.errors import ComposeError
from pycompose.compose.include import IncludeChain, apply_include, parse_entry

MAIN = "/p/compose.yaml"


class FakeProjects:
    """A load_project callback over in-memory projects keyed by their first path."""

    def __init__(self, projects: dict[str, dict[str, Any]]) -> None:
        self.projects = projects
        self.calls: list[tuple[list[str], str, list[str]]] = []

    def __call__(self, paths: list[str], project_dir: str, env_files: list[str]) -> dict[str, Any]:
        self.calls.append((paths, project_dir, env_files))
        return copy.deepcopy(self.projects[paths[0]])


def test_short_form_imports_resources_and_drops_include() -> None:
    projects = FakeProjects(
        {
            "/p/sub/inc.yaml": {
                "name": "ignored",
                "services": {"db": {"image": "y", "volumes": ["/p/sub/d:/d"]}},
                "volumes": {"v": {}},
                "networks": {"n": {}},
                "x-ext": {"a": 1},
            }
        }
    )
    data = {"include": ["sub/inc.yaml"], "services": {"web": {"image": "x", "depends_on": ["db"]}}}
    out = apply_include(data, file=MAIN, project_dir="/p", load_project=projects)
    assert out == {
        "services": {
            "web": {"image": "x", "depends_on": ["db"]},
            "db": {"image": "y", "volumes": ["/p/sub/d:/d"]},
        },
        "volumes": {"v": {}},
        "networks": {"n": {}},
    }
    assert projects.calls == [(["/p/sub/inc.yaml"], "/p/sub", [])]


def test_paths_resolve_against_the_project_directory_not_the_file() -> None:
    projects = FakeProjects({"/root/inc.yaml": {"services": {"a": {"image": "a"}}}})
    data = {"include": ["inc.yaml"]}
    apply_include(data, file="/root/a/compose.yaml", project_dir="/root", load_project=projects)
    assert projects.calls[0][:2] == (["/root/inc.yaml"], "/root")


def test_long_form_with_paths_project_directory_and_env_file() -> None:
    projects = FakeProjects({"/p/inc.yaml": {"services": {"a": {"image": "a"}}}})
    data = {
        "include": [
            {
                "path": ["../p/inc.yaml", "/p/inc.override.yaml"],
                "project_directory": "q",
                "env_file": ["e.env", "/abs/f.env"],
            }
        ]
    }
    apply_include(data, file=MAIN, project_dir="/p", load_project=projects)
    assert projects.calls == [
        (["/p/inc.yaml", "/p/inc.override.yaml"], "/p/q", ["/p/e.env", "/abs/f.env"])
    ]


def test_default_env_file_is_dot_env_of_the_included_project(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / ".env").write_text("IMG=x\n")
    inc = str(tmp_path / "sub" / "inc.yaml")
    projects = FakeProjects({inc: {"services": {}}})
    apply_include(
        {"include": ["sub/inc.yaml"]},
        file=str(tmp_path / "compose.yaml"),
        project_dir=str(tmp_path),
        load_project=projects,
    )
    assert projects.calls[0][2] == [str(tmp_path / "sub" / ".env")]


def test_dev_null_env_file_disables_the_default(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("IMG=x\n")
    inc = str(tmp_path / "inc.yaml")
    projects = FakeProjects({inc: {}})
    apply_include(
        {"include": [{"path": "inc.yaml", "env_file": "/dev/null"}]},
        file=str(tmp_path / "compose.yaml"),
        project_dir=str(tmp_path),
        load_project=projects,
    )
    assert projects.calls[0][2] == []


@pytest.mark.parametrize("section", ["services", "networks", "volumes", "secrets", "configs"])
def test_conflicting_resource_is_an_error(section: str) -> None:
    projects = FakeProjects({"/p/inc.yaml": {section: {"r": {"labels": ["a=1"]}}}})
    data = {"include": ["inc.yaml"], section: {"r": {"labels": {"a": "1"}}}}
    with pytest.raises(ComposeError) as info:
        apply_include(data, file=MAIN, project_dir="/p", load_project=projects)
    assert info.value.path == (section, "r")
    assert str(info.value) == (
        f"/p/compose.yaml {section}.r: conflicts with the definition imported from /p/inc.yaml"
    )


def test_identical_definitions_are_allowed() -> None:
    db = {"image": "y", "environment": ["A=1"]}
    projects = FakeProjects(
        {"/p/a.yaml": {"services": {"db": db}}, "/p/b.yaml": {"services": {"db": db}}}
    )
    data = {"include": ["a.yaml", "b.yaml"], "services": {"db": copy.deepcopy(db)}}
    out = apply_include(data, file=MAIN, project_dir="/p", load_project=projects)
    assert out == {"services": {"db": db}}


def test_two_included_projects_conflicting() -> None:
    projects = FakeProjects(
        {
            "/p/a.yaml": {"services": {"db": {"image": "y", "environment": ["A=1"]}}},
            "/p/b.yaml": {"services": {"db": {"image": "y", "environment": ["A=2"]}}},
        }
    )
    with pytest.raises(ComposeError, match=r"services\.db: conflicts .* /p/b\.yaml"):
        apply_include(
            {"include": ["a.yaml", "b.yaml"]}, file=MAIN, project_dir="/p", load_project=projects
        )


def test_include_chain_detects_cycles() -> None:
    chain = IncludeChain(("/p/compose.yaml",)).enter("/p/sub/a.yaml").enter("/p/sub/b.yaml")
    with pytest.raises(ComposeError) as info:
        chain.enter("/p/sub/../sub/a.yaml")
    assert info.value.message == (
        "include cycle detected: /p/compose.yaml -> /p/sub/a.yaml -> /p/sub/b.yaml -> /p/sub/a.yaml"
    )
    assert info.value.file == "/p/sub/b.yaml"


def test_apply_include_checks_the_chain_before_loading() -> None:
    projects = FakeProjects({})
    chain = IncludeChain(("/p/compose.yaml", "/p/sub/a.yaml"))
    with pytest.raises(ComposeError, match=re.escape("-> /p/compose.yaml")):
        apply_include(
            {"include": ["../compose.yaml"]},
            file="/p/sub/a.yaml",
            project_dir="/p/sub",
            load_project=projects,
            chain=chain,
        )
    assert projects.calls == []


def test_self_include_without_explicit_chain() -> None:
    with pytest.raises(ComposeError, match="include cycle detected"):
        apply_include(
            {"include": ["compose.yaml"]},
            file=MAIN,
            project_dir="/p",
            load_project=FakeProjects({}),
        )


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (3, "must be a path or a mapping"),
        ({"path": []}, "needs a path"),
        ({"path": [1]}, "expected a string"),
        ({"path": "a", "project_directory": 1}, "project_directory must be a string"),
        ({"path": "a", "envfile": "x"}, "unsupported include option 'envfile'"),
    ],
)
def test_malformed_entries(entry: Any, message: str) -> None:
    with pytest.raises(ComposeError, match=message) as info:
        parse_entry(entry, 2, file=MAIN, project_dir="/p")
    assert info.value.path[:2] == ("include", 2)


def test_include_must_be_a_list() -> None:
    with pytest.raises(ComposeError, match="include must be a list"):
        apply_include(
            {"include": "a.yaml"}, file=MAIN, project_dir="/p", load_project=FakeProjects({})
        )


def test_no_include_returns_a_copy() -> None:
    data = {"services": {"a": {"image": "x"}}}
    out = apply_include(data, file=MAIN, project_dir="/p", load_project=FakeProjects({}))
    assert out == data
    assert out is not data
