"""Relative path resolution, checked against what docker compose v2.40 ``config`` printed."""

from __future__ import annotations

import copy
import os
from typing import Any

import pytest

from pycompose.compose.paths import (
    VolumeSpecError,
    absolute_path,
    clean_path,
    join_path,
    parse_volume_spec,
    resolve_relative_paths,
)

HOME = os.path.expanduser("~")


def test_go_path_clean_and_join() -> None:
    assert clean_path("//a/./b/../c/") == "/a/c"
    assert clean_path("") == "."
    assert join_path("/p", "./a/./b/") == "/p/a/b"
    assert join_path("/p/q", "..") == "/p"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("./a", "/p/a"),
        ("a/b/", "/p/a/b"),
        ("../o", "/o"),
        ("/abs/./kept/", "/abs/./kept/"),
        ("~", HOME),
        ("~/x/../y", f"{HOME}/y"),
        ("~user/x", f"{HOME}/user/x"),
        ("C:\\x", "C:\\x"),
        ("\\\\server\\share", "\\\\server\\share"),
        ("", ""),
    ],
)
def test_absolute_path(path: str, expected: str) -> None:
    assert absolute_path(path, "/p") == expected


def _doc() -> dict[str, Any]:
    return {
        "services": {
            "web": {
                "build": {
                    "context": "./ctx",
                    "dockerfile": "../Dockerfile.x",
                    "additional_contexts": {
                        "b": "./other",
                        "c": "docker-image://x",
                        "d": "service:db",
                        "e": "git@github.com:a/b",
                    },
                },
                "env_file": ["a.env", {"path": "./b.env", "required": False}],
                "label_file": "./labels.txt",
                "extends": {"file": "base.yaml", "service": "x"},
                "volumes": [
                    "./data:/data:ro",
                    "named:/n",
                    "/abs:/abs",
                    "~/h:/h",
                    "/anon",
                    {"type": "bind", "source": "src", "target": "/s"},
                    {"type": "volume", "source": "vol", "target": "/v"},
                ],
                "develop": {"watch": [{"path": "./src", "action": "sync"}]},
            },
            "other": {"build": "../o/./x/"},
            "remote": {"build": "https://github.com/a/b.git#main"},
            "listed": {"build": {"additional_contexts": ["a=./x", "b=docker-image://y"]}},
        },
        "secrets": {"s": {"file": "./s.txt"}, "e": {"environment": "HOME"}},
        "configs": {"c": {"file": "../c.txt"}},
        "volumes": {
            "bound": {"driver": "local", "driver_opts": {"o": "bind", "device": "./d"}},
            "nodriver": {"driver_opts": {"o": "bind", "device": "./d"}},
            "ro": {"driver": "local", "driver_opts": {"o": "bind,ro", "device": "./d"}},
        },
        "include": ["inc.yaml", {"path": ["./a.yaml"], "env_file": "e.env",
                                 "project_directory": ".."}],
    }


def test_resolves_every_path_kind() -> None:
    out = resolve_relative_paths(_doc(), "/p")
    web = out["services"]["web"]
    assert web["build"]["context"] == "/p/ctx"
    assert web["build"]["dockerfile"] == "../Dockerfile.x"
    assert web["build"]["additional_contexts"] == {
        "b": "/p/other", "c": "docker-image://x", "d": "service:db", "e": "git@github.com:a/b",
    }
    assert web["env_file"] == ["/p/a.env", {"path": "/p/b.env", "required": False}]
    assert web["label_file"] == "/p/labels.txt"
    assert web["extends"] == {"file": "/p/base.yaml", "service": "x"}
    assert web["volumes"] == [
        "/p/data:/data:ro",
        "named:/n",
        "/abs:/abs",
        f"{HOME}/h:/h",
        "/anon",
        {"type": "bind", "source": "/p/src", "target": "/s"},
        {"type": "volume", "source": "vol", "target": "/v"},
    ]
    assert web["develop"]["watch"][0]["path"] == "/p/src"
    assert out["services"]["other"]["build"] == "/o/x"
    assert out["services"]["remote"]["build"] == "https://github.com/a/b.git#main"
    assert out["services"]["listed"]["build"]["additional_contexts"] == [
        "a=/p/x", "b=docker-image://y",
    ]
    assert out["secrets"] == {"s": {"file": "/p/s.txt"}, "e": {"environment": "HOME"}}
    assert out["configs"] == {"c": {"file": "/c.txt"}}
    assert out["volumes"]["bound"]["driver_opts"]["device"] == "/p/d"
    assert out["volumes"]["nodriver"]["driver_opts"]["device"] == "./d"
    assert out["volumes"]["ro"]["driver_opts"]["device"] == "./d"
    assert out["include"] == [
        "/p/inc.yaml",
        {"path": ["/p/a.yaml"], "env_file": "/p/e.env", "project_directory": "/"},
    ]


def test_is_idempotent_and_does_not_mutate_input() -> None:
    doc = _doc()
    before = copy.deepcopy(doc)
    once = resolve_relative_paths(doc, "/p")
    assert doc == before
    assert resolve_relative_paths(once, "/elsewhere") == once


def test_leaves_bad_volume_specs_for_the_normaliser() -> None:
    doc = {"services": {"a": {"volumes": ["vol:/b:ro:extra", 5]}}}
    assert resolve_relative_paths(doc, "/p") == doc


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("./a:/b:ro", {"type": "bind", "source": "./a", "target": "/b", "read_only": True,
                       "bind": {"create_host_path": True}}),
        ("vol:/b:rw,nocopy", {"type": "volume", "source": "vol", "target": "/b",
                              "volume": {"nocopy": True}}),
        ("/x:/y:Z,ro,rslave", {"type": "bind", "source": "/x", "target": "/y", "read_only": True,
                               "bind": {"selinux": "Z", "propagation": "rslave",
                                        "create_host_path": True}}),
        ("/x:/y:shared,slave", {"type": "bind", "source": "/x", "target": "/y",
                                "bind": {"propagation": "slave", "create_host_path": True}}),
        ("./a:/b:ro,rw", {"type": "bind", "source": "./a", "target": "/b",
                          "bind": {"create_host_path": True}}),
        ("/a:/b:nocopy", {"type": "bind", "source": "/a", "target": "/b",
                          "bind": {"create_host_path": True}, "volume": {"nocopy": True}}),
        ("vol:/b:z", {"type": "volume", "source": "vol", "target": "/b",
                      "bind": {"selinux": "z"}, "volume": {}}),
        ("vol:/b:cached", {"type": "volume", "source": "vol", "target": "/b", "volume": {}}),
        ("/only", {"type": "volume", "target": "/only", "volume": {}}),
        ("ab", {"type": "volume", "target": "ab", "volume": {}}),
        ("a:/b:c:d", {"type": "bind", "source": "a:/b", "target": "c:d",
                      "bind": {"create_host_path": True}}),
        ("C:\\x:/y", {"type": "bind", "source": "C:\\x", "target": "/y",
                      "bind": {"create_host_path": True}}),
        ("\\\\srv\\share:/b", {"type": "bind", "source": "\\\\srv\\share", "target": "/b",
                               "bind": {"create_host_path": True}}),
    ],
)
def test_parse_volume_spec(spec: str, expected: dict[str, Any]) -> None:
    assert parse_volume_spec(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("vol:/b:ro:extra", "too many colons"),
        (":/x", "empty section"),
        ("a:/b:", "empty section"),
        ("", "empty volume spec"),
    ],
)
def test_parse_volume_spec_errors(spec: str, message: str) -> None:
    with pytest.raises(VolumeSpecError, match=message):
        parse_volume_spec(spec)
