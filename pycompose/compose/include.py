"""Top-level ``include``: importing other compose projects' resources.

Each entry is a path (short form) or a mapping ``{path: str | list, project_directory,
env_file}``. An entry is loaded as its own project (its paths merged like ``-f`` files,
relative paths resolved against *its* project directory) through the ``load_project``
callback, then its services, networks, volumes, secrets, configs and models are added to
the including document.

Facts checked against docker compose v2.40.3:

* relative ``path``, ``project_directory`` and ``env_file`` are resolved against the
  including project's directory (not the including file's directory);
* ``project_directory`` defaults to the directory of the entry's first path;
* without ``env_file`` the included project reads ``<its project directory>/.env`` if it
  exists; ``/dev/null`` entries are skipped (and then no ``.env`` is read);
* a resource defined both by the includer (or an earlier include) and an included project
  is an error unless both definitions are identical after path resolution;
* an include cycle is an error naming the chain of files.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pycompose.compose.errors import ComposeError

LoadProject = Callable[[list[str], str, list[str]], dict[str, Any]]
"""load_project(paths, project_directory, env_files) -> the included project's raw dict."""

RESOURCES = ("services", "networks", "volumes", "secrets", "configs", "models")
"""Top-level sections an include imports; anything else of the included project is not."""

_ENTRY_KEYS = frozenset({"path", "project_directory", "env_file"})


@dataclass(frozen=True)
class IncludeChain:
    """The files being included, outermost first, to detect include cycles.

    The loader keeps one per nesting level: ``chain.enter(path)`` returns the chain for
    loading ``path`` and raises :class:`ComposeError` if ``path`` is already being loaded.
    """

    files: tuple[str, ...] = ()

    def enter(self, path: str) -> IncludeChain:
        """The chain one level down, into ``path``; a cycle raises."""
        path = os.path.normpath(path)
        if path in self.files:
            steps = " -> ".join((*self.files, path))
            raise ComposeError(f"include cycle detected: {steps}", file=self.files[-1])
        return IncludeChain((*self.files, path))


@dataclass(frozen=True)
class IncludeEntry:
    """One ``include`` entry, with every path absolute."""

    paths: list[str]
    project_directory: str
    env_files: list[str]


def parse_entry(entry: Any, index: int, *, file: str, project_dir: str) -> IncludeEntry:
    """Read one include entry (short or long form) and make its paths absolute."""
    where = ("include", index)
    if isinstance(entry, str):
        entry = {"path": entry}
    if not isinstance(entry, dict):
        raise ComposeError("an include entry must be a path or a mapping", file=file, path=where)
    unknown = sorted(set(entry) - _ENTRY_KEYS)
    if unknown:
        raise ComposeError(
            f"unsupported include option {unknown[0]!r} (expected path, project_directory, "
            "env_file)",
            file=file,
            path=(*where, unknown[0]),
        )
    paths = [_absolute(p, project_dir) for p in _strings(entry.get("path"), file, (*where, "path"))]
    if not paths:
        raise ComposeError("an include entry needs a path", file=file, path=(*where, "path"))
    directory = entry.get("project_directory")
    if directory is not None and not isinstance(directory, str):
        raise ComposeError(
            "project_directory must be a string", file=file, path=(*where, "project_directory")
        )
    project = _absolute(directory, project_dir) if directory else os.path.dirname(paths[0])
    return IncludeEntry(paths, project, _env_files(entry, file, where, project_dir, project))


def _strings(value: Any, file: str, path: tuple[str | int, ...]) -> list[str]:
    items = value if isinstance(value, list) else [] if value is None else [value]
    if not all(isinstance(v, str) for v in items):
        raise ComposeError("expected a string or a list of strings", file=file, path=path)
    return list(items)


def _absolute(path: str, base: str) -> str:
    return os.path.normpath(path if os.path.isabs(path) else os.path.join(base, path))


def _env_files(
    entry: dict[str, Any], file: str, where: tuple[str | int, ...], parent_dir: str, project: str
) -> list[str]:
    declared = _strings(entry.get("env_file"), file, (*where, "env_file"))
    if not declared:
        default = os.path.join(project, ".env")
        return [default] if os.path.isfile(default) else []
    return [_absolute(f, parent_dir) for f in declared if f != os.devnull]


def apply_include(
    data: dict[str, Any],
    *,
    file: str,
    project_dir: str,
    load_project: LoadProject,
    chain: IncludeChain | None = None,
) -> dict[str, Any]:
    """Import the resources of every project ``data``'s ``include`` names.

    ``file`` is the including file (for errors), ``project_dir`` its project directory
    (relative include paths are resolved against it). ``chain``, when given, holds the
    files being included around this one (``file`` included): an entry naming one of them
    raises the cycle error before ``load_project`` is called. Returns a new dict without
    ``include``; raises :class:`ComposeError` on a conflicting resource.
    """
    entries = data.get("include")
    result = {k: v for k, v in data.items() if k != "include"}
    if entries is None:
        return result
    if not isinstance(entries, list):
        raise ComposeError("include must be a list", file=file, path=("include",))
    outer = chain if chain is not None else IncludeChain((os.path.normpath(file),))
    for index, raw in enumerate(entries):
        entry = parse_entry(raw, index, file=file, project_dir=project_dir)
        for path in entry.paths:
            outer.enter(path)
        imported = load_project(list(entry.paths), entry.project_directory, list(entry.env_files))
        result = _import(result, imported, entry.paths, file)
    return result


def _import(
    target: dict[str, Any], imported: dict[str, Any], paths: list[str], file: str
) -> dict[str, Any]:
    """Add ``imported``'s resources to ``target``; identical redefinitions are allowed."""
    result = dict(target)
    for section in RESOURCES:
        incoming = imported.get(section)
        if not isinstance(incoming, dict) or not incoming:
            continue
        existing = result.get(section)
        merged = dict(existing) if isinstance(existing, dict) else {}
        for name, definition in incoming.items():
            if name in merged and merged[name] != definition:
                raise ComposeError(
                    f"conflicts with the definition imported from {', '.join(paths)}",
                    file=file,
                    path=(section, name),
                )
            merged.setdefault(name, definition)
        result[section] = merged
    return result
