"""extends: expectations checked against docker compose v2.40.3 (`config --format json`)."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from pycompose.compose.errors import ComposeError
from pycompose.compose.extends import apply_extends
from pycompose.compose.tags import Override, Reset

MAIN = "/p/compose.yaml"


class FakeFiles:
    """A load_file callback over in-memory documents that records what it was asked."""

    def __init__(self, files: dict[str, dict[str, Any]]) -> None:
        self.files = files
        self.calls: list[str] = []

    def __call__(self, path: str) -> dict[str, Any]:
        self.calls.append(path)
        if path not in self.files:
            raise FileNotFoundError(2, "No such file or directory", path)
        return copy.deepcopy(self.files[path])


def no_files(path: str) -> dict[str, Any]:
    raise AssertionError(f"unexpected load of {path}")


def test_same_file_extends_inherits_everything() -> None:
    base = {
        "image": "busybox",
        "depends_on": ["db"],
        "links": ["db"],
        "volumes_from": ["db"],
        "network_mode": "service:db",
        "ports": ["80:80"],
        "environment": {"A": 1},
        "command": "x",
        "profiles": ["p1"],
    }
    data = {
        "services": {
            "base": base,
            "db": {"image": "x"},
            "web": {"extends": "base", "environment": {"B": 2}, "ports": ["80:80", "81:81"]},
        }
    }
    out = apply_extends(data, file=MAIN, load_file=no_files)
    assert out["services"]["web"] == {
        **base,
        "environment": ["A=1", "B=2"],
        "ports": ["80:80", "81:81"],
    }
    assert out["services"]["base"] == base


def test_chain_is_resolved_recursively_in_any_order() -> None:
    data = {
        "services": {
            "a": {"extends": "b", "environment": ["A=1"]},
            "b": {"extends": {"service": "c"}, "environment": ["B=1"]},
            "c": {"image": "x", "environment": ["C=1"], "command": "c"},
        }
    }
    out = apply_extends(data, file=MAIN, load_file=no_files)["services"]
    # Merged environments take compose's NAME=value list form, the parent's entries first.
    assert out["a"] == {"image": "x", "environment": ["C=1", "B=1", "A=1"], "command": "c"}
    assert out["b"] == {"image": "x", "environment": ["C=1", "B=1"], "command": "c"}
    assert "extends" not in out["a"]


def test_child_rules_are_the_merge_rules() -> None:
    data = {
        "services": {
            "base": {"image": "x", "command": ["a", "b"], "volumes": ["/a:/d"], "dns": "1.1.1.1"},
            "web": {"extends": "base", "command": "c", "volumes": ["/b:/d"], "dns": "8.8.8.8"},
        }
    }
    web = apply_extends(data, file=MAIN, load_file=no_files)["services"]["web"]
    assert web == {
        "image": "x",
        "command": "c",
        "volumes": ["/b:/d"],
        "dns": ["1.1.1.1", "8.8.8.8"],
    }


def test_other_file_and_its_own_extends() -> None:
    other = "/p/sub/other.yaml"
    files = FakeFiles(
        {
            other: {
                "services": {
                    "o": {"build": "/p/sub/ctx", "volumes": ["/p/sub/d:/d"], "extends": "o2"},
                    "o2": {"image": "y", "labels": ["a=b"]},
                }
            }
        }
    )
    data = {
        "services": {
            "one": {"extends": {"file": other, "service": "o"}},
            "two": {"extends": {"file": "sub/other.yaml", "service": "o2"}, "image": "z"},
        }
    }
    out = apply_extends(data, file=MAIN, load_file=files)["services"]
    assert out["one"] == {
        "build": "/p/sub/ctx",
        "volumes": ["/p/sub/d:/d"],
        "image": "y",
        "labels": ["a=b"],
    }
    assert out["two"] == {"image": "z", "labels": ["a=b"]}
    assert files.calls == [other]


def test_cross_file_extends_back_into_the_main_file() -> None:
    other = "/p/other.yaml"
    files = FakeFiles({other: {"services": {"z": {"image": "q", "environment": ["Z=1"]}}}})
    data = {
        "services": {
            "a": {"extends": "b"},
            "b": {"extends": {"file": other, "service": "z"}, "environment": ["B=1"]},
        }
    }
    out = apply_extends(data, file=MAIN, load_file=files)["services"]
    assert out["a"] == {"image": "q", "environment": ["Z=1", "B=1"]}


@pytest.mark.parametrize(
    ("services", "chain"),
    [
        (
            {"a": {"extends": "a", "image": "x"}},
            "a in /p/compose.yaml -> extends a in /p/compose.yaml",
        ),
        (
            {"a": {"extends": "b", "image": "x"}, "b": {"extends": "c"}, "c": {"extends": "a"}},
            "a in /p/compose.yaml -> extends b in /p/compose.yaml"
            " -> extends c in /p/compose.yaml -> extends a in /p/compose.yaml",
        ),
    ],
)
def test_cycles_name_the_chain(services: dict[str, Any], chain: str) -> None:
    with pytest.raises(ComposeError) as info:
        apply_extends({"services": services}, file=MAIN, load_file=no_files)
    assert info.value.message == f"circular extends: {chain}"
    assert info.value.file == MAIN


def test_cycle_across_files() -> None:
    other = "/p/other.yaml"
    files = FakeFiles({other: {"services": {"z": {"extends": {"file": MAIN, "service": "a"}}}}})
    data = {"services": {"a": {"extends": {"file": other, "service": "z"}, "image": "x"}}}
    with pytest.raises(
        ComposeError,
        match=re.escape(
            "circular extends: a in /p/compose.yaml -> extends z in /p/other.yaml"
            " -> extends a in /p/compose.yaml"
        ),
    ):
        apply_extends(data, file=MAIN, load_file=files)


def test_cycle_through_a_loader_that_resolves_extends_itself() -> None:
    # The real loader loads the other file through the whole pipeline, extends included,
    # so the cycle shows up as nested apply_extends calls.
    docs = {
        MAIN: {"services": {"a": {"extends": {"file": "/p/other.yaml", "service": "z"}}}},
        "/p/other.yaml": {"services": {"z": {"extends": {"file": MAIN, "service": "a"}}}},
    }

    def load_file(path: str) -> dict[str, Any]:
        return apply_extends(copy.deepcopy(docs[path]), file=path, load_file=load_file)

    with pytest.raises(ComposeError) as info:
        apply_extends(docs[MAIN], file=MAIN, load_file=load_file)
    assert info.value.message == (
        "circular extends: a in /p/compose.yaml -> extends z in /p/other.yaml"
        " -> extends a in /p/compose.yaml"
    )


def test_nested_loader_without_cycle() -> None:
    docs: dict[str, dict[str, Any]] = {
        MAIN: {"services": {"a": {"extends": {"file": "/p/other.yaml", "service": "z"}}}},
        "/p/other.yaml": {"services": {"z": {"extends": "y", "command": "z"}, "y": {"image": "y"}}},
    }

    def load_file(path: str) -> dict[str, Any]:
        return apply_extends(copy.deepcopy(docs[path]), file=path, load_file=load_file)

    out = apply_extends(docs[MAIN], file=MAIN, load_file=load_file)
    assert out["services"]["a"] == {"image": "y", "command": "z"}


def test_missing_service_in_same_file() -> None:
    data = {"services": {"a": {"extends": "nope", "image": "x"}}}
    with pytest.raises(ComposeError) as info:
        apply_extends(data, file=MAIN, load_file=no_files)
    assert info.value.path == ("services", "a", "extends")
    assert str(info.value) == (
        '/p/compose.yaml services.a.extends: cannot extend service "a": service "nope" not found'
    )


def test_missing_service_in_other_file() -> None:
    files = FakeFiles({"/p/other.yaml": {"services": {"q": {"image": "x"}}}})
    data = {"services": {"a": {"extends": {"file": "/p/other.yaml", "service": "z"}}}}
    with pytest.raises(ComposeError, match=re.escape('service "z" not found in /p/other.yaml')):
        apply_extends(data, file=MAIN, load_file=files)


def test_missing_file() -> None:
    data = {"services": {"a": {"extends": {"file": "/p/none.yaml", "service": "z"}}}}
    with pytest.raises(ComposeError, match=re.escape("cannot read /p/none.yaml: No such file")):
        apply_extends(data, file=MAIN, load_file=FakeFiles({}))


@pytest.mark.parametrize("spec", [1, {"file": "x.yaml"}, {"service": 3}, ["a"]])
def test_malformed_extends(spec: Any) -> None:
    data = {"services": {"a": {"extends": spec}, "b": {"image": "x"}}}
    with pytest.raises(ComposeError, match="extends must be"):
        apply_extends(data, file=MAIN, load_file=no_files)


def test_child_tags_act_on_the_base_and_stay_for_the_merge_stage() -> None:
    data = {
        "services": {
            "base": {
                "image": "x",
                "ports": ["80:80"],
                "environment": ["A=1"],
                "labels": {"a": "1"},
            },
            "web": {"extends": "base", "ports": Reset(), "labels": Override({"b": "2"})},
        }
    }
    web = apply_extends(data, file=MAIN, load_file=no_files)["services"]["web"]
    assert web == {
        "image": "x",
        "environment": ["A=1"],
        "ports": Reset(),
        "labels": Override({"b": "2"}),
    }


def test_input_not_modified_and_no_extends_is_a_copy() -> None:
    data = {"services": {"a": {"extends": "b", "environment": ["A=1"]}, "b": {"image": "x"}}}
    snapshot = copy.deepcopy(data)
    apply_extends(data, file=MAIN, load_file=no_files)
    assert data == snapshot
    plain = {"services": {"a": {"image": "x"}}, "name": "p"}
    assert apply_extends(plain, file=MAIN, load_file=no_files) == plain
    assert apply_extends({"name": "p"}, file=MAIN, load_file=no_files) == {"name": "p"}
