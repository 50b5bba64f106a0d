"""Bad input to `pycompose config`: one clear message per problem, exit code 1, no traceback.

These run the real CLI in a subprocess, so a crash of the YAML C library or a runaway
expansion fails the test (the timeout is a hang guard, not a performance assertion: the
benchmark in bench/ measures speed).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ENV = {"PATH": "/usr/bin:/bin", "HOME": "/root", "LANG": "C.UTF-8"}


def config(tmp_path: Path, text: str | bytes, *args: str) -> subprocess.CompletedProcess[str]:
    data = text.encode() if isinstance(text, str) else text
    (tmp_path / "compose.yaml").write_bytes(data)
    return subprocess.run(
        [sys.executable, "-m", "pycompose.cli.main", *args, "config", "-q"],
        cwd=tmp_path,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=30,
    )


def rejected(result: subprocess.CompletedProcess[str], *needles: str) -> list[str]:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines, "an error must say what is wrong"
    for needle in needles:
        assert needle in result.stderr, result.stderr
    return lines


BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(9)
)


def test_alias_bomb(tmp_path: Path) -> None:
    rejected(config(tmp_path, BOMB + "services: {}\n"), "compose.yaml")


def test_thirty_thousand_nested_brackets(tmp_path: Path) -> None:
    rejected(config(tmp_path, "services: " + "[" * 30000 + "]" * 30000 + "\n"), "nest")


def test_deeply_nested_mappings(tmp_path: Path) -> None:
    text = "services:\n" + "".join("  " * (i + 1) + f"k{i}:\n" for i in range(400))
    rejected(config(tmp_path, text + "  " * 401 + "v\n"))


def test_oversized_file(tmp_path: Path) -> None:
    text = "services:\n  a:\n    image: x\n" + "# padding\n" * (2 * 1024 * 1024)
    rejected(config(tmp_path, text), "MiB")


def test_duplicate_keys_name_both_lines(tmp_path: Path) -> None:
    lines = rejected(config(tmp_path, "services:\n  a:\n    image: x\n    image: y\n"))
    assert "3" in lines[0] and "4" in lines[0]


def test_tabs(tmp_path: Path) -> None:
    rejected(config(tmp_path, "services:\n\ta:\n\t\timage: x\n"), "tab")


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", "42\n"])
def test_non_mapping_documents(tmp_path: Path, text: str) -> None:
    rejected(config(tmp_path, text))


def test_binary_garbage(tmp_path: Path) -> None:
    rejected(config(tmp_path, b"\xff\xfe\x00garbage"))


@pytest.mark.parametrize("template", ["${TAG", "${A B}", "${}", "${A:?}"])
def test_invalid_interpolation(tmp_path: Path, template: str) -> None:
    rejected(config(tmp_path, f"services:\n  a:\n    image: 'x:{template}'\n"), "services.a.image")


def test_unset_required_variable(tmp_path: Path) -> None:
    rejected(
        config(tmp_path, "services:\n  a:\n    image: ${TAG:?please set TAG}\n"),
        "please set TAG",
        "services.a.image",
    )


def test_wrong_types_all_reported_with_lines(tmp_path: Path) -> None:
    text = "services:\n  a:\n    image: 1.5\n    ports: {x: y}\n    imgae: z\n"
    lines = rejected(config(tmp_path, text), 'did you mean "image"')
    assert len(lines) >= 2
    assert any("compose.yaml:4" in line and "ports" in line for line in lines)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (
            "services:\n  a: {image: x, depends_on: [b]}\n  b: {image: x, depends_on: [a]}\n",
            "cycle",
        ),
        ("services:\n  a: {image: x, links: ['a:self']}\n", "cycle"),
        (
            "services:\n  a: {image: x, volumes_from: [b]}\n"
            "  b: {image: x, network_mode: 'service:a'}\n",
            "cycle",
        ),
        ("services:\n  a: {image: x, extends: b}\n  b: {image: x, extends: a}\n", "extends"),
        ("include: [compose.yaml]\nservices:\n  a: {image: x}\n", "include"),
    ],
)
def test_every_kind_of_cycle(tmp_path: Path, text: str, needle: str) -> None:
    rejected(config(tmp_path, text), needle)


@pytest.mark.parametrize("port", ["99999:80", "80:80:80:80", "abc", "8080:-1"])
def test_invalid_ports(tmp_path: Path, port: str) -> None:
    rejected(config(tmp_path, f"services:\n  a:\n    image: x\n    ports: ['{port}']\n"))


def test_same_host_port_twice(tmp_path: Path) -> None:
    text = "services:\n  a: {image: x, ports: ['8080:80']}\n  b: {image: y, ports: ['8080:80']}\n"
    rejected(config(tmp_path, text), "8080", "already published")


@pytest.mark.parametrize(
    ("text", "args"),
    [
        ("services:\n  'bad name': {image: x}\n", ()),
        ("services:\n  a: {image: x, container_name: 'x'}\n", ()),
        ("services:\n  a: {image: x}\n", ("-p", "Bad Name")),
        ("name: 'ééé'\nservices:\n  a: {image: x}\n", ()),
    ],
)
def test_invalid_names(tmp_path: Path, text: str, args: tuple[str, ...]) -> None:
    rejected(config(tmp_path, text, *args))


@pytest.mark.parametrize("value", ["10x", "-", "1h2"])
def test_invalid_durations(tmp_path: Path, value: str) -> None:
    rejected(config(tmp_path, f"services:\n  a:\n    image: x\n    stop_grace_period: '{value}'\n"))


@pytest.mark.parametrize("value", ["10x", "1.2.3g", "lots"])
def test_invalid_sizes(tmp_path: Path, value: str) -> None:
    rejected(config(tmp_path, f"services:\n  a:\n    image: x\n    shm_size: '{value}'\n"))


def test_missing_file_and_directory(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pycompose.cli.main", "-f", "nope.yaml", "config"],
        cwd=tmp_path,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=30,
    )
    rejected(result, "nope.yaml")
