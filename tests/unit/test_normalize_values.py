"""Value converters of the normalise stage; expected values printed by docker compose v2.40."""

from __future__ import annotations

from typing import Any

import pytest

from pycompose.compose.errors import ComposeError
from pycompose.compose.normalize_values import (
    dedupe,
    go_float,
    mapping,
    omit_empty,
    shell_split,
    to_bool,
    to_float32,
    to_int,
    to_str,
)


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ('echo "hello world" \'x y\' $HOME', ["echo", "hello world", "x y", "$HOME"]),
        ("echo a && echo b", ["echo", "a"]),
        ("echo a; echo b", ["echo", "a"]),
        ("echo a | grep b", ["echo", "a"]),
        ("echo a > f 2>&1", ["echo", "a"]),
        ("echo 2>x", ["echo"]),
        ("a b2>c", ["a", "b2"]),
        ("echo `x` y", ["echo", "`x`", "y"]),
        ("echo $(x) y", ["echo", "$(x)", "y"]),
        ("echo 'a\\b' \"c\\d\" e\\\\f", ["echo", "a\\b", "cd", "e\\f"]),
        ("  a   b  ", ["a", "b"]),
        ("a \"\" '' b", ["a", "", "", "b"]),
        ("a\tb\nc", ["a", "b", "c"]),
        ('a"b c"d', ["ab cd"]),
        ("echo 'it''s' \"x\"y z#c ~", ["echo", "its", "xy", "z#c", "~"]),
        ("", []),
    ],
)
def test_shell_split_like_compose(line: str, words: list[str]) -> None:
    assert shell_split(line) == words


@pytest.mark.parametrize(
    "line", ["a 'b", 'a "b', "echo a\\", "echo (a)", "echo $(a b) c)d", "a `b"]
)
def test_shell_split_rejects_what_compose_rejects(line: str) -> None:
    with pytest.raises(ComposeError, match="invalid command line string"):
        shell_split(line)


@pytest.mark.parametrize(
    ("value", "text"),
    [(1.0, "1"), (1e6, "1e+06"), (0.1, "0.1"), (1e-7, "1e-07"), (123456.0, "123456"),
     (1234567.0, "1.234567e+06"), (-2.5, "-2.5"), (0.0001, "0.0001"), (1e-5, "1e-05")],
)
def test_floats_print_like_go(value: float, text: str) -> None:
    assert go_float(value) == text
    assert to_str(value) == text


def test_scalars_as_strings() -> None:
    assert to_str(True) == "true"
    assert to_str(12345678901234567890) == "12345678901234567890"
    with pytest.raises(ComposeError):
        to_str([1])


def test_float32_rounding_like_compose() -> None:
    assert to_float32("0.333333333") == 0.33333334
    assert to_float32("1") == 1
    assert isinstance(to_float32(2.0), int)
    assert to_float32(0.5) == 0.5


@pytest.mark.parametrize(("text", "value"), [("yes", True), ("On", True), ("y", True),
                                             ("TRUE", True), ("off", False), ("n", False)])
def test_booleans_from_interpolated_strings(text: str, value: bool) -> None:
    assert to_bool(text) is value


@pytest.mark.parametrize("bad", ["maybe", "", 1, None])
def test_bad_booleans(bad: Any) -> None:
    with pytest.raises(ComposeError, match="must be a boolean"):
        to_bool(bad)


def test_integers() -> None:
    assert to_int("-500") == -500
    assert to_int(3.0) == 3
    for bad in ("abc", " 1", "1.5", True, 1.5):
        with pytest.raises(ComposeError, match="must be an integer"):
            to_int(bad)


def test_mapping_forms() -> None:
    assert mapping(["a=b", "c", "e=", "k=v=w"]) == {"a": "b", "c": "", "e": "", "k": "v=w"}
    assert mapping(["B"], bare=None) == {"B": None}
    assert mapping({"a": 1, "b": None, "c": True}) == {"a": "1", "b": "", "c": "true"}
    assert mapping({"b": None}, null=None) == {"b": None}
    with pytest.raises(ComposeError):
        mapping("a=b")


def test_omit_empty_keeps_pointer_fields_and_extensions() -> None:
    struct = {"a": False, "b": 0, "c": "", "d": [], "e": {}, "f": None, "init": False,
              "x-e": None, "g": "0"}
    assert omit_empty(struct, keep=frozenset({"init"})) == {"init": False, "x-e": None, "g": "0"}


def test_dedupe_last_wins_at_first_place() -> None:
    assert dedupe([("a", 1), ("b", 2), ("a", 3)]) == [3, 2]
