"""Unit tests of the YAML stage.

Expected values marked "reference" were read from docker compose v2.40.3
(`docker-compose config --format json`) on the same input.
"""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
from typing import Any

import pytest

from pycompose.compose import yamlsrc
from pycompose.compose.errors import ComposeError
from pycompose.compose.tags import Override, Reset
from pycompose.compose.yamlsrc import (
    MAX_DEPTH,
    MAX_FILE_BYTES,
    MAX_WORK,
    Source,
    parse_yaml,
    parse_yaml_documents,
)

# Generous: these must finish well under a second, but CI machines are shared.


def load(text: str) -> dict[str, Any]:
    return parse_yaml(textwrap.dedent(text), "compose.yaml").data


def value(scalar: str) -> Any:
    return parse_yaml(f"v: {scalar}\n", "compose.yaml").data["v"]


def error(text: str | bytes, *, dedent: bool = True) -> ComposeError:
    if isinstance(text, str) and dedent:
        text = textwrap.dedent(text)
    with pytest.raises(ComposeError) as info:
        parse_yaml(text, "compose.yaml")
    return info.value


# --- scalars: the reference's results for plain (unquoted) scalars ---------------------

SCALARS = [
    ("yes", "yes"),
    ("no", "no"),
    ("on", "on"),
    ("off", "off"),
    ("y", "y"),
    ("n", "n"),
    ("Yes", "Yes"),
    ("true", True),
    ("True", True),
    ("TRUE", True),
    ("tRUE", "tRUE"),
    ("false", False),
    ("False", False),
    ("FALSE", False),
    ("fAlse", "fAlse"),
    ("~", None),
    ("null", None),
    ("Null", None),
    ("NULL", None),
    ("nULL", "nULL"),
    ("", None),
    ("22:22", "22:22"),
    ("1:30", "1:30"),
    ("190:20:30", "190:20:30"),
    ("0o17", 15),
    ("0O17", 15),
    ("-0o17", -15),
    ("017", 15),
    ("-017", -15),
    ("08", 8.0),
    ("00", 0),
    ("0o8", "0o8"),
    ("0x1F", 31),
    ("0x1f", 31),
    ("0X1f", 31),
    ("+0x1F", 31),
    ("-0x10", -16),
    ("0x", "0x"),
    ("0b101", 5),
    ("0B1", 1),
    ("0b2", "0b2"),
    ("1_000", 1000),
    ("1__0", 10),
    ("1_0.5", 10.5),
    ("_1", "_1"),
    ("+12", 12),
    ("-0", 0),
    ("1e3", 1000.0),
    ("1E3", 1000.0),
    ("1.0e+3", 1000.0),
    ("12e03", 12000.0),
    ("1.5", 1.5),
    (".5", 0.5),
    (".5e1", 5.0),
    ("5.e1", 50.0),
    ("1.", 1.0),
    ("0.", 0.0),
    ("1e400", "1e400"),
    ("99999999999999999999", 1e20),
    ("18446744073709551615", 2**64 - 1),
    ("0xFFFFFFFFFFFFFFFFFF", "0xFFFFFFFFFFFFFFFFFF"),
    ("2001-12-14", "2001-12-14"),  # a time value in docker compose; we keep the text
    ("2001-12-14x", "2001-12-14x"),
    ("1.2.3", "1.2.3"),
    ("-x", "-x"),
    ("+", "+"),
    (".", "."),
    ("80:80/udp", "80:80/udp"),
]


@pytest.mark.parametrize(("scalar", "expected"), SCALARS)
def test_plain_scalars_follow_docker_compose(scalar: str, expected: Any) -> None:
    result = value(scalar)
    assert result == expected
    assert type(result) is type(expected)


def test_special_floats() -> None:
    assert value(".inf") == math.inf
    assert value("-.Inf") == -math.inf
    assert value("+.INF") == math.inf
    assert math.isnan(value(".NaN"))
    assert math.copysign(1.0, value("-0.0")) == -1.0


@pytest.mark.parametrize("scalar", ['"yes"', "'22:22'", '"12"', "'true'", '"null"', "|\n  17\n"])
def test_quoted_and_block_scalars_stay_strings(scalar: str) -> None:
    assert isinstance(value(scalar), str)


def test_ports_and_booleans_in_a_service() -> None:
    data = load(
        """
        services:
          web:
            image: busybox
            ports:
              - 22:22
              - 8080:80
            environment:
              DEBUG: on
              VERBOSE: yes
              ENABLED: true
        """
    )
    web = data["services"]["web"]
    assert web["ports"] == ["22:22", "8080:80"]
    assert web["environment"] == {"DEBUG": "on", "VERBOSE": "yes", "ENABLED": True}


# --- tags ----------------------------------------------------------------------------


def test_explicit_core_tags() -> None:
    assert value("!!str 12") == "12"
    assert value('!!int "12"') == 12
    assert value("!!int 0x10") == 16
    assert value("!!float 1") == 1.0 and isinstance(value("!!float 1"), float)
    assert value('!!float "1e3"') == 1000.0
    assert value('!!null ""') is None
    assert value("!!bool true") is True
    assert value("!!binary aGVsbG8=") == "hello"
    assert value("!!timestamp 2001-01-01") == "2001-01-01"


@pytest.mark.parametrize("scalar", ["!!int abc", "!!bool yes", "!!null x", "!!float abc"])
def test_explicit_tag_that_does_not_fit_is_an_error(scalar: str) -> None:
    err = error(f"v: {scalar}\n")
    assert err.line == 1
    assert "cannot decode" in err.message


def test_invalid_binary_is_an_error() -> None:
    err = error('v: !!binary "%%"\n')
    assert "!!binary" in err.message


def test_unknown_tags_keep_the_text_and_non_specific_tag_resolves() -> None:
    # reference: !foo 12 -> "12", ! 12 -> 12, tags on collections are ignored
    assert load("v: [!foo 12, ! 12, !foo [1], !foo {a: 1}, !!str [1]]\n")["v"] == [
        "12",
        12,
        [1],
        {"a": 1},
        [1],
    ]


def test_set_and_omap() -> None:
    data = load("s: !!set {a, b}\no: !!omap [{a: 1}]\n")
    assert data == {"s": {"a": None, "b": None}, "o": [{"a": 1}]}


def test_reset_and_override_tags() -> None:
    data = load(
        """
        services:
          web:
            ports: !reset []
            environment: !reset {a: 1}
            labels: !reset
            command: !override ["a", "b"]
            image: !override busybox
            user: !override 5
        """
    )
    web = data["services"]["web"]
    assert web["ports"] == Reset()
    assert web["environment"] == Reset()
    assert web["labels"] == Reset()
    assert web["command"] == Override(["a", "b"])
    assert web["image"] == Override("busybox")
    assert web["user"] == Override(5)


# --- anchors, aliases and merge keys --------------------------------------------------


def test_aliases_are_independent_copies() -> None:
    data = load(
        """
        x-env: &env
          A: "1"
        services:
          a:
            environment: *env
          b:
            environment: *env
        """
    )
    data["services"]["a"]["environment"]["B"] = "2"
    assert data["services"]["b"]["environment"] == {"A": "1"}
    assert data["x-env"] == {"A": "1"}


def test_merge_keys_follow_the_reference() -> None:
    data = load(
        """
        x-base: &base
          image: x
          environment: &env
            A: "1"
        x-more: &more
          restart: always
          image: z
        services:
          a:
            <<: [*base, *more]
            environment:
              <<: *env
              B: "2"
          b:
            image: y
            <<: *base
        """
    )
    # reference: the first merged mapping wins, keys written in the mapping win over all
    assert data["services"]["a"] == {
        "environment": {"A": "1", "B": "2"},
        "image": "x",
        "restart": "always",
    }
    assert data["services"]["b"] == {"image": "y", "environment": {"A": "1"}}


def test_merge_of_inline_mappings_and_alias_to_a_sequence() -> None:
    assert load("s:\n  <<: [{a: 1}, {a: 2, b: 3}]\n")["s"] == {"a": 1, "b": 3}
    # reference: an alias to a sequence of mappings is accepted too
    assert load("l: &l [{a: 1}, {b: 2}]\ns:\n  <<: *l\n")["s"] == {"a": 1, "b": 2}


def test_quoted_merge_key_is_an_ordinary_key() -> None:
    assert load('s: {"<<": 5}\n') == {"s": {"<<": 5}}


@pytest.mark.parametrize("merged", ["5", "[1]", "", "[{a: 1}, 2]"])
def test_merge_of_a_non_mapping_is_an_error(merged: str) -> None:
    err = error(f"x: &a [1]\ns:\n  b: 1\n  <<: {merged}\n")
    assert err.line == 4
    assert err.path == ("s",)
    assert "<<" in err.message


def test_duplicate_anchor_later_wins() -> None:
    # reference: redefining an anchor is allowed and later aliases see the new value
    data = load("a: &x 1\nb: &x 2\nc: *x\n")
    assert data["c"] == 2


def test_alias_as_a_key() -> None:
    assert load("a: &k key\nb: {*k : v}\n")["b"] == {"key": "v"}


def test_unknown_anchor() -> None:
    err = error("services:\n  a:\n    image: *nope\n")
    assert err.line == 3
    assert "unknown anchor 'nope'" in err.message


def test_anchor_that_contains_itself() -> None:
    err = error("a: &x [1, *x]\n")
    assert "contains itself" in err.message


# --- line numbers ---------------------------------------------------------------------


def test_lines_of_keys_and_items() -> None:
    source = parse_yaml(
        textwrap.dedent(
            """\
            services:
              web:
                image: busybox
                ports:
                  - "80:80"
                  - target: 443
                    published: 8443
            """
        ),
        "compose.yaml",
    )
    assert source.name == "compose.yaml"
    lines = source.lines
    assert lines[()] == 1
    assert lines[("services",)] == 1
    assert lines[("services", "web")] == 2
    assert lines[("services", "web", "image")] == 3
    assert lines[("services", "web", "ports")] == 4
    assert lines[("services", "web", "ports", 0)] == 5
    assert lines[("services", "web", "ports", 1)] == 6
    assert lines[("services", "web", "ports", 1, "target")] == 6
    assert lines[("services", "web", "ports", 1, "published")] == 7


def test_lines_inside_aliases_and_merges_point_at_the_anchor() -> None:
    source = parse_yaml(
        textwrap.dedent(
            """\
            x-base: &base
              restart: always
              logging:
                driver: local
            services:
              web:
                <<: *base
                image: x
                labels: *base
            """
        ),
        "compose.yaml",
    )
    lines = source.lines
    assert lines[("services", "web", "restart")] == 2
    assert lines[("services", "web", "logging", "driver")] == 4
    assert lines[("services", "web", "image")] == 8
    assert lines[("services", "web", "labels")] == 9
    assert lines[("services", "web", "labels", "restart")] == 2
    assert not any("<<" in path for path in lines)


def test_merged_key_overridden_in_the_mapping_keeps_its_own_line() -> None:
    source = parse_yaml("x: &b {image: a, user: u}\ns:\n  image: b\n  <<: *b\n", "c.yaml")
    assert source.lines[("s", "image")] == 3
    assert source.lines[("s", "user")] == 1


def test_reset_drops_the_lines_of_its_content() -> None:
    source = parse_yaml("s:\n  a: !reset\n    b: 1\n", "c.yaml")
    assert source.lines[("s", "a")] == 2
    assert ("s", "a", "b") not in source.lines


# --- errors ---------------------------------------------------------------------------


def test_duplicate_key_names_both_lines() -> None:
    err = error(
        """\
        services:
          web:
            image: a
            image: b
        """
    )
    assert err.file == "compose.yaml"
    assert err.line == 4
    assert err.path == ("services", "web")
    assert "duplicate key 'image'" in err.message
    assert "line 3" in err.message
    assert str(err).startswith("compose.yaml:4 services.web: ")


def test_duplicate_key_at_top_level_and_in_flow_mapping() -> None:
    assert error("services: {}\nservices: {}\n").line == 2
    assert "duplicate key 'a'" in error("x: {a: 1, a: 2}\n").message


def test_duplicate_merge_keys() -> None:
    # reference: "mapping key "<<" already defined"
    err = error("x: &a {a: 1}\ny: &b {b: 1}\ns:\n  <<: *a\n  <<: *b\n")
    assert err.line == 5
    assert "'<<'" in err.message


def test_duplicate_key_written_after_a_merge_is_still_an_error() -> None:
    err = error("x: &a {image: x}\ns:\n  <<: *a\n  image: y\n  image: z\n")
    assert err.line == 5


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("services:\n\tweb:\n    image: a\n", 2),
        ("services:\n  web:\n    image: a\n    \tcommand: x\n", 4),
        ("a:\n  - b\n  -\t- c\n", 3),
        ("a: |\n  x\n\ty\n", 3),
        ("a:\n  b: 1\n\t\n", 3),
    ],
)
def test_tabs_used_for_indentation(text: str, line: int) -> None:
    err = error(text, dedent=False)
    assert err.line == line
    assert "tab" in err.message


def test_tabs_elsewhere_are_fine() -> None:
    # reference: a tab after a colon, inside quotes and as flow whitespace is accepted
    data = load('a:\tx\nb: "x\ty"\nc: [\n\t1\n  ]\nd:\t\n  e: 1\n')
    assert data == {"a": "x", "b": "x\ty", "c": [1], "d": {"e": 1}}


def test_syntax_error_has_line_and_column() -> None:
    err = error("services:\n  web:\n    image: [a\n")
    assert err.line == 4
    assert "invalid YAML" in err.message
    assert "column" in err.message
    assert "line 3" in err.message


def test_character_that_cannot_start_a_token() -> None:
    err = error("services:\n  web:\n    image: @x\n")
    assert err.line == 3
    assert "cannot start any token" in err.message


@pytest.mark.parametrize("text", ["- a\n- b\n", "hello\n", "---\n", "null\n", "42\n"])
def test_top_level_must_be_a_mapping(text: str) -> None:
    err = error(text)
    assert err.message == "top-level object must be a mapping"
    assert err.line == 1


@pytest.mark.parametrize("text", ["", "\n\n  \n", "# only a comment\n", b"", "\ufeff"])
def test_empty_file(text: str | bytes) -> None:
    assert error(text).message == "empty compose file"


def test_multiple_documents() -> None:
    text = "services:\n  a:\n    image: x\n---\nservices:\n  b:\n    image: y\n"
    docs = parse_yaml_documents(text, "compose.yaml")
    assert [d.data for d in docs] == [
        {"services": {"a": {"image": "x"}}},
        {"services": {"b": {"image": "y"}}},
    ]
    assert docs[1].lines[("services", "b", "image")] == 7
    err = error(text)
    assert err.line == 4
    assert "2 YAML documents" in err.message


def test_anchors_do_not_cross_documents() -> None:
    with pytest.raises(ComposeError, match="unknown anchor"):
        parse_yaml_documents("a: &x 1\n---\nb: *x\n", "c.yaml")


@pytest.mark.parametrize("text", ["a: 1\n---\n", "a: 1\n---\n- x\n"])
def test_every_document_must_be_a_mapping(text: str) -> None:
    with pytest.raises(ComposeError, match="top-level object must be a mapping") as info:
        parse_yaml_documents(text, "c.yaml")
    assert info.value.line == 2


def test_document_end_marker_is_fine() -> None:
    assert load("a: 1\n...\n") == {"a": 1}


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("1: foo\n", "1"),
        ("services:\n  1:\n    image: x\n", "1"),
        ("x:\n  true: a\n", "true"),
        ("x:\n  ~: a\n", "null"),
        ("x:\n  1.5: a\n", "1.5"),
        ("x:\n  0o17: a\n", "15"),
    ],
)
def test_non_string_keys(text: str, shown: str) -> None:
    # reference: "non-string key in services.a.labels: 1"
    err = error(text)
    assert f"mapping key {shown} is not a string" in err.message


@pytest.mark.parametrize("text", ["x:\n  ? [1, 2]\n  : d\n", "x: {{a: 1}: d}\n", "x: {[1]: d}\n"])
def test_collection_keys(text: str) -> None:
    err = error(text)
    assert "mapping key must be a string" in err.message
    assert err.path == ("x",)


@pytest.mark.parametrize(
    "key",
    [
        "2001-12-14",
        "2001-1-2",
        "2001-12-14t21:59:43.10-05:00",
        "2001-12-14 21:59:43.10",
        "2001-12-14T21:59:43Z",
    ],
)
def test_timestamp_keys_are_not_strings(key: str) -> None:
    # reference: "non-string key in x-a: time.Date(2001, ...)"
    err = error(f"x-a:\n  {key}: a\n")
    assert err.message == f"mapping key {key} is a timestamp, not a string"
    assert err.path == ("x-a",)


@pytest.mark.parametrize("key", ["2001-13-14", "2001-02-30", "2001-12-14x", "'2001-12-14'"])
def test_keys_that_only_look_like_dates_are_strings(key: str) -> None:
    assert load(f"x-a:\n  {key}: a\n")["x-a"] == {key.strip("'"): "a"}


def test_quoted_number_key_is_a_string() -> None:
    assert load('x:\n  "1": a\n') == {"x": {"1": "a"}}


def test_bytes_input() -> None:
    assert parse_yaml(b"a: 1\n", "c.yaml").data == {"a": 1}
    assert parse_yaml(b"\xef\xbb\xbfa: 1\n", "c.yaml").data == {"a": 1}
    assert parse_yaml("a: é\n".encode("utf-16"), "c.yaml").data == {"a": "é"}
    err = error(b"a: 1\nb: \xff\n")
    assert err.line == 2
    assert "UTF-8" in err.message


def test_control_characters_are_rejected() -> None:
    err = error("a: 1\nb: x\x00y\n")
    assert err.line == 2
    assert "#x0000 is not allowed" in err.message


# --- hostile input --------------------------------------------------------------------


def test_oversized_file_is_refused_before_parsing() -> None:
    big = "a: " + "x" * MAX_FILE_BYTES + "\n"
    err = error(big)
    assert "larger than the 16 MiB limit" in err.message
    assert "larger than" in error(big.encode()).message


def test_30000_nested_brackets_do_not_crash_the_interpreter() -> None:
    # PyYAML's own C composer overflows the C stack here; a crash would kill pytest, so run
    # the parser in a child process and require a clean error from it.
    code = (
        "from pycompose.compose.yamlsrc import parse_yaml\n"
        "from pycompose.compose.errors import ComposeError\n"
        "try:\n"
        "    parse_yaml('x: ' + '[' * 30000 + ']' * 30000, 'compose.yaml')\n"
        "except ComposeError as err:\n"
        "    print(err)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    # Our own depth guard, or (with a newer bundled libyaml) libyaml's own nesting limit.
    message = result.stdout.strip()
    assert message.startswith("compose.yaml:1: "), message
    assert f"nesting is deeper than {MAX_DEPTH} levels" in message or "nesting depth" in message


@pytest.mark.parametrize(
    "text",
    [
        "x: " + "{a: " * 30000 + "1" + "}" * 30000,
        "x:\n" + "".join("  " * (i + 1) + "k:\n" for i in range(3000)),
        "x:\n" + "".join("  " * i + "- \n" for i in range(3000)),
        "x:\n  " + "- " * 30000 + "a\n",
    ],
    ids=["flow-mappings", "block-mappings", "block-sequences", "compact-sequences"],
)
def test_deep_nesting_is_refused(text: str) -> None:
    err = error(text)
    assert err.message == f"nesting is deeper than {MAX_DEPTH} levels"


def test_nesting_at_the_limit_is_fine() -> None:
    depth = MAX_DEPTH - 1  # the top-level mapping is one level
    data: Any = load("x: " + "[" * depth + "]" * depth + "\n")
    for _ in range(depth):
        data = data["x"] if isinstance(data, dict) else data[0]
    assert data == []


def billion_laughs(levels: int) -> str:
    lines = ["x-a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, levels):
        lines.append(f"x-a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def test_alias_bomb_is_refused_quickly() -> None:
    err = error(billion_laughs(10))
    assert f"over {MAX_WORK} nodes" in err.message
    assert "alias" in err.message


def test_alias_bomb_with_mappings_and_merge_keys() -> None:
    lines = ["a0: &a0 {k: v}"]
    for i in range(1, 20):
        lines.append(f"a{i}: &a{i} {{x: *a{i - 1}, y: *a{i - 1}}}")
    err = error("\n".join(lines) + "\n")
    assert "nodes" in err.message


def test_small_alias_fan_out_is_fine() -> None:
    data = load(billion_laughs(3))
    assert len(data["x-a2"]) == 9
    assert data["x-a2"][8][8] == ["lol"] * 9


def test_huge_flat_document_is_refused_quickly() -> None:
    text = "x: [" + ",".join(["a"] * (MAX_WORK // 2)) + "]\n"
    err = error(text)
    assert "too large" in err.message


def test_deep_and_wide_document_is_refused_quickly() -> None:
    # Every line entry holds its whole path, so depth multiplies the cost of each node.
    depth = MAX_DEPTH - 3
    text = "x: " + "{k: " * depth + "[" + ",".join(["a"] * 200_000) + "]" + "}" * depth + "\n"
    err = error(text)
    assert "too large" in err.message


def test_nested_anchors_are_charged() -> None:
    depth = MAX_DEPTH - 3
    inner = "[" + ",".join(["a"] * 5000) + "]"
    text = "x: " + "".join(f"&a{i} {{k: " for i in range(depth)) + inner + "}" * depth + "\n"
    err = error(text)
    assert "too large" in err.message


def test_the_benchmark_sized_project_is_well_within_the_budget() -> None:
    service = (
        "  svc{i}:\n    <<: *common\n    image: registry.example.com/app{i}:1.0\n"
        "    environment:\n      - A={i}\n      - B=x\n    ports: ['{p}:80']\n"
        "    volumes: [./d{i}:/data, cache:/cache:ro]\n    depends_on: [db]\n"
        "    healthcheck:\n      test: [CMD, curl, -f, http://localhost]\n      interval: 30s\n"
        "    labels: {{team: t{i}, tier: backend}}\n    networks: [front, back]\n"
    )
    text = "x-common: &common\n  restart: always\n  logging: {driver: local}\nservices:\n"
    text += "".join(service.format(i=i, p=8000 + i) for i in range(2000))
    data = load(text)
    assert len(data["services"]) == 2000
    assert data["services"]["svc7"]["logging"] == {"driver": "local"}


def test_the_c_parser_is_used_when_available() -> None:
    import yaml

    if hasattr(yaml, "CSafeLoader"):
        assert yamlsrc._Parser is yaml.CSafeLoader


def test_source_is_frozen() -> None:
    source = parse_yaml("a: 1\n", "c.yaml")
    assert isinstance(source, Source)
    with pytest.raises(AttributeError):
        source.name = "x"  # type: ignore[misc]


def test_pure_python_parser_gives_the_same_result(monkeypatch: pytest.MonkeyPatch) -> None:
    import yaml

    text = textwrap.dedent(
        """\
        x-base: &base {restart: always, labels: {a: "1"}}
        services:
          web:
            <<: *base
            image: !!str 12
            ports: [22:22, "80:80", 8080]
            environment: {DEBUG: on, N: 0o17, F: 1e3, T: true, Q: 'yes', E: }
            command: !override [a, !foo 1]
            volumes: !reset []
        """
    )
    fast = parse_yaml(text, "c.yaml")
    monkeypatch.setattr(yamlsrc, "_Parser", yaml.SafeLoader)
    slow = parse_yaml(text, "c.yaml")
    assert slow == fast
    assert slow.data["services"]["web"]["environment"]["DEBUG"] == "on"
    with pytest.raises(ComposeError, match="duplicate key"):
        parse_yaml("a: 1\na: 2\n", "c.yaml")


def test_pyyaml_import_defers_only_the_unicode_reader_pattern() -> None:
    # The pure-Python reader must still work: its pattern compiles on first use.
    from pycompose.compose.yamlimport import yaml

    assert yaml.safe_load("a: [1, 2]\n") == {"a": [1, 2]}
    with pytest.raises(yaml.YAMLError):
        yaml.safe_load("a: \x07\n")
