"""The normalise stage against docker compose v2.40 ``config --format json``.

Each folder under ``data/normalize/`` holds a compose.yaml and the JSON the reference binary
printed for it (``data/normalize/regen.sh`` regenerates them, with the environment below).
The inputs avoid what only the YAML and interpolation stages handle (YAML 1.1 booleans and
octals, ``$`` escapes), so ``yaml.safe_load`` gives the dict those stages would.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from pycompose.compose.normalize import normalize
from pycompose.compose.normalize_print import json_view

DATA = Path(__file__).parent / "data" / "normalize"
CASES = sorted(p.name for p in DATA.iterdir() if (p / "expected.json").exists())
# The environment regen.sh gives the reference binary.
ENVIRON = {"HOME": "/home/user", "PATH": "/usr/bin:/bin", "FROMENV": "osvalue", "Y": "osy"}


def read_env_file(path: str, lookup: Mapping[str, str]) -> dict[str, str]:
    """A minimal dotenv reader for the simple files of these cases (KEY=VALUE, KEY, #)."""
    out: dict[str, str] = {}
    with open(path, encoding="utf-8") as handle:
        for line in handle.read().splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            key, sep, value = line.partition("=")
            if sep:
                out[key] = value
            elif key in lookup:
                out[key] = lookup[key]
    return out


def _placeholders(value: Any, case_dir: str) -> Any:
    text = json.dumps(value).replace(case_dir, "@CASE@").replace(str(DATA), "@DATA@")
    return json.loads(text)


def _as_compose_json(project: dict[str, Any]) -> dict[str, Any]:
    """What compose's JSON printer leaves out (nested ``x-*``, top-level ``models``)."""
    return json_view(project)


@pytest.fixture(autouse=True)
def _home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", ENVIRON["HOME"])


def run_case(case: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Normalise a case folder; return (ours, compose's), both path-independent."""
    case_dir = DATA / case
    with open(case_dir / "compose.yaml", encoding="utf-8") as handle:
        raw = yaml.safe_load(handle)
    ours = normalize(raw, project_name="pc", project_dir=str(case_dir), environ=ENVIRON,
                     read_env_file=read_env_file)
    with open(case_dir / "expected.json", encoding="utf-8") as handle:
        expected = json.load(handle)
    return _placeholders(_as_compose_json(ours), str(case_dir)), expected


@pytest.mark.parametrize("case", CASES)
def test_matches_docker_compose_config(case: str) -> None:
    ours, expected = run_case(case)
    for name in sorted(set(ours["services"]) | set(expected["services"])):
        assert ours["services"].get(name) == expected["services"].get(name), name
    assert ours == expected


def test_cases_were_found() -> None:
    assert len(CASES) >= 10


@pytest.mark.parametrize("case", CASES)
def test_input_is_not_modified(case: str) -> None:
    with open(DATA / case / "compose.yaml", encoding="utf-8") as handle:
        raw = yaml.safe_load(handle)
    before = json.dumps(raw, sort_keys=True)
    normalize(raw, project_name="pc", project_dir=str(DATA / case), environ=ENVIRON,
              read_env_file=read_env_file)
    assert json.dumps(raw, sort_keys=True) == before


def test_models_are_pruned_like_other_resources() -> None:
    case_dir = DATA / "models_provider"
    with open(case_dir / "compose.yaml", encoding="utf-8") as handle:
        raw = yaml.safe_load(handle)
    ours = normalize(raw, project_name="pc", project_dir=str(case_dir), environ=ENVIRON,
                     read_env_file=read_env_file)
    # compose's YAML output (its JSON omits models) keeps only the model a service uses.
    assert ours["models"] == {"m1": {"model": "ai/smollm2"}}
    assert ours["x-top"] == {"keep": "me"}
    assert ours["services"]["a"]["x-svc"] == 1


def test_env_files_default_to_the_loaders_dotenv_reader() -> None:
    case_dir = DATA / "deploy_build"
    raw = {"services": {"b": {"image": "y", "env_file": ["a.env", "b.env"]}}}
    out = normalize(raw, project_name="pc", project_dir=str(case_dir), environ=ENVIRON)
    assert out["services"]["b"]["environment"] == {"X": "1", "Y": "2", "W": "q w"}
