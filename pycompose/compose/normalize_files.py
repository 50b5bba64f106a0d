"""``env_file`` and ``label_file``: read and folded into ``environment`` and ``labels``.

``docker compose config`` prints neither key: it reads the files (in order, later files
winning) and shows their variables merged under the service's own values. Env files in the
default ``dotenv`` format go through the dotenv stage's parser (passed in); ``format: raw``
files are read here: ``KEY=VALUE`` lines taken literally, a bare ``KEY`` looked up in the
project environment, ``#`` comment lines and blank lines skipped.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from pycompose.compose.errors import ComposeError
from pycompose.compose.normalize_values import to_bool

ReadEnvFile = Callable[[str, Mapping[str, str]], dict[str, str]]
"""Parse one env file given the variables to interpolate with (the dotenv stage)."""

FORMATS = ("dotenv", "raw")


def file_entries(value: Any) -> list[tuple[str, bool, str]]:
    """``env_file``/``label_file`` entries as (path, required, format)."""
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        if isinstance(item, str):
            out.append((item, True, "dotenv"))
        elif isinstance(item, dict) and isinstance(item.get("path"), str):
            fmt = item.get("format") or "dotenv"
            if fmt not in FORMATS:
                raise ComposeError(f"unsupported env_file format {fmt!r} (use dotenv or raw)")
            out.append((item["path"], to_bool(item.get("required", True)), fmt))
        else:
            raise ComposeError(f"invalid entry {item!r}: expected a path or {{path: ...}}")
    return out


def read_raw_env_file(path: str, environ: Mapping[str, str]) -> dict[str, str]:
    """Read an env file in compose's ``raw`` format (no quotes, no interpolation)."""
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.lstrip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if any(c.isspace() for c in key):
            raise ComposeError(f"failed to parse {path}: variable {key!r} contains whitespace")
        if sep:
            out[key] = value
        elif key in environ:
            out[key] = environ[key]
    return out


def read_files(
    value: Any, project_dir: str, environ: Mapping[str, str], read_env_file: ReadEnvFile,
    what: str,
) -> dict[str, str]:
    """Read every file of an ``env_file``/``label_file`` value, later files winning."""
    merged: dict[str, str] = {}
    for path, required, fmt in file_entries(value):
        full = os.path.join(project_dir, path)
        if not os.path.exists(full):
            if required:
                raise ComposeError(f"{what} {full} not found")
            continue
        if os.path.isdir(full):
            raise ComposeError(f"{what} {full} is a directory")
        reader = read_raw_env_file if fmt == "raw" else read_env_file
        try:
            merged.update(reader(full, environ))
        except OSError as err:
            raise ComposeError(f"failed to read {what} {full}: {err.strerror}") from err
        except UnicodeDecodeError as err:
            raise ComposeError(f"{what} {full} is not valid UTF-8 (byte {err.start})") from err
    return merged
