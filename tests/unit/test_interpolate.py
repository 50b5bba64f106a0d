"""Unit tests of interpolation.

Expected values were read from docker compose v2.40.3 with A=aval, E="" and U, V, W unset
(its JSON output writes a literal "$" as "$$"; the values below are the real strings).
"""

from __future__ import annotations

from typing import Any

import pytest

from pycompose.compose.errors import ComposeError
from pycompose.compose.interpolate import interpolate, substitute
from pycompose.compose.tags import Override, Reset

ENV = {"A": "aval", "E": ""}


def nothing(name: str) -> str | None:
    return None


VALID = [
    ("plain", "plain"),
    ("$A", "aval"),
    ("${A}", "aval"),
    ("${U}", ""),
    ("$U", ""),
    ("${U:-def}", "def"),
    ("${E:-def}", "def"),
    ("${E-def}", ""),
    ("${U-def}", "def"),
    ("${A:+rep}", "rep"),
    ("${E:+rep}", ""),
    ("${E+rep}", "rep"),
    ("${U+rep}", ""),
    ("${A:+}", ""),
    ("${A-}", "aval"),
    ("${U:-}", ""),
    ("$$A", "$A"),
    ("$$$A", "$aval"),
    ("$${A}", "${A}"),
    ("$$${U:-1}", "$1"),
    ("${U:-${A:-x}}", "aval"),
    ("${U:-${V:-x}}", "x"),
    ("${U-${V-2}}", "2"),
    ("${A:-${U:-x}y}z", "avalz"),
    ("${U:-$A}", "aval"),
    ("${A:-$U}", "aval"),
    ("${U:+${A}}", ""),
    ("${A:+$$}", "$"),
    ("${U:-$$}", "$"),
    ("${U:-$}", "$"),
    ("${U:-a$}", "a$"),
    ("a${A}b", "aavalb"),
    ("${A:-a}b${U:-c}", "avalbc"),
    ("${A:-a}${A:?b}", "avalaval"),
    ("$A.b", "aval.b"),
    ("$Ab", ""),
    ("$_x", ""),
    ("${A_1}", ""),
    ("$1", "$1"),
    ("$", "$"),
    ("a$", "a$"),
    ("$-", "$-"),
    ("$ A", "$ A"),
    ("${A}}", "aval}"),
    ("${U:-}}", "}"),
    ("${U:-}x}", "x}"),
    ("${U:-{x}}", "{x}"),
    ("${U:-{x}y}", "{x}y"),
    ("${U:-{x}", "{x"),
    ("${U:-{{x}}y}z", "{{x}y}z"),
    ("${U:-a}b}", "ab}"),
    ("${U:-$${x}y}", "${x}y"),
    ("${U:-{}", "{"),
    ("x{${U:-a}}", "x{a}"),
    ("${U:-{${A}}}", "{aval}"),
    ("${U:-}{x}}", "{x}}"),
    ("${U:-a}\n${U:-b}", "a\nb"),
    ("${U:-x}-${V:-y}", "x-y"),
    ("${U:-a:-b}", "a:-b"),
    ('${U:-"q"}', '"q"'),
    ("${U:- spaced }", " spaced "),
    ("${A:?}", "aval"),
    ("${E?must set}", ""),
    ("${A?${U}}", "aval"),
    ("${U:-${A:?x}}", "aval"),
]


@pytest.mark.parametrize(("template", "expected"), VALID)
def test_substitute_matches_docker_compose(template: str, expected: str) -> None:
    assert substitute(template, ENV.get) == expected


INVALID = [
    "${A",
    "${A B}",
    "${}",
    "${ A}",
    "${A:=x}",
    "${A:x}",
    "${1A}",
    "${a.b}",
    "${A/x/y}",
    "${A:-x",
    "${U:-${}",
    "x ${A",
    "${A[x]}",
    "${A[x]:-d}",
    "${U:-a\nb}",
]


@pytest.mark.parametrize("template", INVALID)
def test_invalid_format(template: str) -> None:
    with pytest.raises(ComposeError) as info:
        substitute(template, ENV.get, file="compose.yaml", path=("services", "web", "image"))
    err = info.value
    assert err.file == "compose.yaml"
    assert err.path == ("services", "web", "image")
    assert err.message.startswith(f"invalid interpolation format {template!r}")
    assert '"$$"' in err.message


REQUIRED = [
    ("${U:?must set}", "U", ": must set"),
    ("${E:?must set}", "E", ": must set"),
    ("${U?must set}", "U", ": must set"),
    ("${U:?}", "U", ""),
    ("${U?}", "U", ""),
    ("${U:?}x", "U", ""),
    ("${U:?err ${A}}", "U", ": err aval"),
    ("${U:?$A}", "U", ": aval"),
    ("${U:?a}b}", "U", ": a"),
    ("${U:-x}y${W:?must}", "W", ": must"),
    # the text after an operator is interpolated first, even when it is not used
    ("${A:-${U:?boom}}", "U", ": boom"),
    ("${A:+${U:?boom}}", "U", ": boom"),
    ("${U:+${V:?boom}}", "V", ": boom"),
]


@pytest.mark.parametrize(("template", "name", "suffix"), REQUIRED)
def test_required_variable(template: str, name: str, suffix: str) -> None:
    with pytest.raises(ComposeError) as info:
        substitute(template, ENV.get, file="compose.yaml", path=("services", "web", "image"))
    assert info.value.message == f"required variable {name} is missing a value{suffix}"


def test_required_message_names_file_and_dotted_path() -> None:
    with pytest.raises(ComposeError) as info:
        interpolate(
            {"services": {"web": {"image": "app:${TAG:?set TAG}"}}}, nothing, "compose.yaml"
        )
    assert str(info.value) == (
        "compose.yaml services.web.image: required variable TAG is missing a value: set TAG"
    )


def test_path_of_a_list_item() -> None:
    data = {"services": {"web": {"ports": ["80", "${P:?}"]}}}
    with pytest.raises(ComposeError) as info:
        interpolate(data, nothing, "compose.yaml")
    assert str(info.value).startswith("compose.yaml services.web.ports[1]: ")


def test_unset_variables_are_reported_through_warn() -> None:
    warnings: list[str] = []
    assert substitute("$U-${V}-${W:-x}", ENV.get, file="c.yaml", path=("a",), warn=warnings.append)
    assert warnings == [
        'c.yaml a: the "U" variable is not set, defaulting to a blank string',
        'c.yaml a: the "V" variable is not set, defaulting to a blank string',
    ]


def test_interpolate_walks_values_only() -> None:
    data: dict[str, Any] = {
        "services": {
            "web": {
                "image": "busybox:${TAG}",
                "labels": {"$A": "$A"},
                "ports": ["${PORT}:80", 8080],
                "command": Override(["echo", "${A}"]),
                "environment": Reset(),
                "healthcheck": {"disable": True, "retries": 3, "timeout": None},
            }
        },
        "x-ext": {"k": ["$A", 5, True]},
    }
    env = {"TAG": "1.2", "PORT": "8000", "A": "aval"}
    result = interpolate(data, env.get, "compose.yaml")
    web = result["services"]["web"]
    assert web["image"] == "busybox:1.2"
    assert web["labels"] == {"$A": "aval"}  # reference: keys are not interpolated
    assert web["ports"] == ["8000:80", 8080]
    assert web["command"] == Override(["echo", "aval"])
    assert web["environment"] == Reset()
    assert web["healthcheck"] == {"disable": True, "retries": 3, "timeout": None}
    assert result["x-ext"] == {"k": ["aval", 5, True]}  # reference: extensions too
    # the input is left alone
    assert data["services"]["web"]["image"] == "busybox:${TAG}"


def test_interpolated_numbers_stay_strings() -> None:
    assert interpolate({"a": {"b": "${N}"}}, {"N": "5"}.get, "c.yaml") == {"a": {"b": "5"}}


def test_lookup_results_are_not_interpolated_again() -> None:
    assert substitute("${A}", {"A": "$B", "B": "x"}.get) == "$B"


def test_long_value_is_fast_enough() -> None:
    template = "${A}$$" * 20000
    assert substitute(template, ENV.get) == "aval$" * 20000
