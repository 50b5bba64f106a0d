"""``load()``: compose files in, a validated canonical project out.

The stages, in the order they run (each a pure ``dict -> dict`` function in its own
module, except reading files):

    discover -> read -> parse (yamlsrc) -> interpolate -> validate (schema, per file)
    -> include -> extends -> merge (across -f files) -> strip tags -> profiles
    -> resolve paths -> normalize -> semantic checks -> frozen model

Errors found after merging carry only a dotted path; :func:`_locate` puts back the file and
line from the sources, so every message reads ``compose.yaml:12 services.web.ports[0]: ...``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from pycompose.compose import checks, discovery, dotenv, interpolate, merge, yamlsrc
from pycompose.compose.errors import ComposeError, ComposeErrors, Path
from pycompose.compose.tags import Override, Reset

if TYPE_CHECKING:
    from pycompose.compose.model import Project

MAX_FILE_SIZE = 16 * 1024 * 1024


@dataclass(frozen=True)
class LoadOptions:
    """How far to take the files (``config`` flags map onto these)."""

    interpolate: bool = True
    normalize: bool = True
    resolve_paths: bool = True
    consistency: bool = True
    # Services named on the command line: enabled whatever their profiles, and the project
    # narrowed to them and their dependencies (``config web``).
    enabled_services: tuple[str, ...] = ()


@dataclass(frozen=True)
class LoadedProject:
    """The loader's result: the canonical dict and where it came from."""

    name: str
    project_dir: str
    files: tuple[str, ...]
    environment: Mapping[str, str]
    data: dict[str, Any]
    sources: tuple[yamlsrc.Source, ...]
    profiles: tuple[str, ...]
    all_profiles: tuple[str, ...]
    warnings: tuple[str, ...] = field(default=())

    def model(self) -> Project:
        """The frozen typed model of the canonical project."""
        from pycompose.compose.model import build_project

        return build_project(self.data, self.project_dir)


def read_env_file(path: str, lookup_env: Mapping[str, str]) -> dict[str, str]:
    """Read and parse one env file (``.env``, ``--env-file``)."""
    text = _read_text(path)
    return dotenv.parse_dotenv(text, path, lookup_env.get)


def _read_text(path: str) -> str:
    try:
        if path == discovery.STDIN:
            raw = sys.stdin.buffer.read(MAX_FILE_SIZE + 1)
        else:
            with open(path, "rb") as handle:
                raw = handle.read(MAX_FILE_SIZE + 1)
    except OSError as err:
        raise ComposeError(f"cannot read {path}: {err.strerror}") from err
    if len(raw) > MAX_FILE_SIZE:
        raise ComposeError(f"{path}: file is larger than {MAX_FILE_SIZE // (1024 * 1024)} MiB")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ComposeError(f"{path}: not valid UTF-8 (byte {err.start})") from err


def _display_name(path: str) -> str:
    return "(stdin)" if path == discovery.STDIN else path


def _strip_for_validation(value: Any) -> Any:
    """What a file means on its own: ``!reset`` keys dropped, ``!override`` unwrapped."""
    if isinstance(value, Override):
        return _strip_for_validation(value.value)
    if isinstance(value, dict):
        return {k: _strip_for_validation(v) for k, v in value.items() if not isinstance(v, Reset)}
    if isinstance(value, list):
        return [_strip_for_validation(v) for v in value if not isinstance(v, Reset)]
    return value


@dataclass
class _Context:
    """Per-load state shared by the recursive include/extends callbacks."""

    environment: dict[str, str]
    options: LoadOptions
    warnings: list[str]
    sources: list[yamlsrc.Source]
    include_stack: tuple[str, ...] = ()

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)


def _parse(path: str, ctx: _Context) -> yamlsrc.Source:
    """One file as one source; several ``---`` documents merge in order, as in compose."""
    documents = yamlsrc.parse_yaml_documents(_read_text(path), _display_name(path))
    ctx.sources.extend(documents)
    if len(documents) == 1:
        return documents[0]
    data: dict[str, Any] = {}
    lines: dict[Path, int] = {}
    for document in documents:
        data = merge.merge(data, document.data, file=document.name)
        lines.update(document.lines)
    stamps = tuple(p for document in documents for p in document.timestamps)
    return yamlsrc.Source(documents[0].name, data, lines, stamps)


def _value_at(data: Any, path: Path) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _reject_timestamps(source: yamlsrc.Source) -> None:
    """compose reads an unquoted date as a time, which no field accepts (x-* aside)."""
    errors = [
        ComposeError(
            f"{_value_at(source.data, path)!r} is read as a date/time, not a string: quote it",
            file=source.name,
            line=source.lines.get(path),
            path=path,
        )
        for path in source.timestamps
        if not any(isinstance(part, str) and part.startswith("x-") for part in path)
    ]
    if errors:
        raise ComposeErrors(errors)


def _load_file(
    path: str,
    project_dir: str,
    ctx: _Context,
    environment: dict[str, str],
    parsed: yamlsrc.Source | None = None,
) -> Any:
    """One file through parse, interpolate, validate, include and extends."""
    from pycompose.compose import extends, include, paths

    if parsed is None:
        source = _parse(path, ctx)
    else:
        source = parsed
        ctx.sources.append(parsed)
    _reject_timestamps(source)
    data: Any = source.data
    if ctx.options.interpolate:
        data = interpolate.interpolate(data, environment.get, source.name, warn=ctx.warn)
    from pycompose.compose import validate

    validate.validate(_strip_for_validation(data), file=source.name, lines=source.lines)

    def load_other(other: str) -> dict[str, Any]:
        loaded = _load_file(other, os.path.dirname(other), ctx, environment)
        resolved = paths.resolve_relative_paths(merge.strip_tags(loaded), os.path.dirname(other))
        assert isinstance(resolved, dict)
        return resolved

    # As in compose, a file's own extends are resolved before its includes are merged in:
    # `extends: x` cannot name a service that only an included file defines.
    if any(isinstance(s, dict) and "extends" in s for s in (data.get("services") or {}).values()):
        data = extends.apply_extends(data, file=source.name, load_file=load_other)
    if "include" in data:
        data = include.apply_include(
            data,
            file=source.name,
            project_dir=project_dir,
            load_project=lambda files, pdir, envs: _load_included(files, pdir, envs, ctx, path),
        )
    return data


def _load_included(
    files: list[str], project_dir: str, env_files: list[str], ctx: _Context, parent: str
) -> dict[str, Any]:
    from pycompose.compose import paths

    for file in files:
        if file in ctx.include_stack or file == parent:
            chain = " -> ".join([*ctx.include_stack, parent, file])
            raise ComposeError(f"include cycle detected: {chain}")
    # Several env files add up (a later one wins, and can use the earlier ones' values);
    # the project environment still wins over all of them.
    from_files: dict[str, str] = {}
    for env_file in env_files:
        from_files.update(read_env_file(env_file, {**from_files, **ctx.environment}))
    environment = {**from_files, **ctx.environment}
    child = replace(ctx, include_stack=(*ctx.include_stack, parent))
    child.environment = environment
    merged: dict[str, Any] = {}
    for file in files:
        merged = merge.merge(merged, _load_file(file, project_dir, child, environment), file=file)
    resolved = paths.resolve_relative_paths(merge.strip_tags(merged), project_dir)
    assert isinstance(resolved, dict)
    return resolved


def _declared_name(
    sources: list[yamlsrc.Source], environment: Mapping[str, str] | None
) -> Any:
    """The last ``name:`` of the files, interpolated unless ``environment`` is None."""
    declared: Any = None
    for source in sources:
        if "name" in source.data:
            declared = source.data["name"]
    if isinstance(declared, str) and environment is not None:
        declared = interpolate.substitute(declared, environment.get, file=None, path=("name",))
    return declared


def _locate(error: ComposeError, sources: tuple[yamlsrc.Source, ...]) -> ComposeError:
    """Give a path-only error the file and line where that path was written."""
    if error.file or not error.path:
        return error
    for length in range(len(error.path), 0, -1):
        prefix = error.path[:length]
        for source in reversed(sources):
            line = source.lines.get(prefix)
            if line is not None:
                return ComposeError(error.message, file=source.name, line=line, path=error.path)
    return error


def _located(err: ComposeError, sources: tuple[yamlsrc.Source, ...]) -> ComposeError:
    if isinstance(err, ComposeErrors):
        return ComposeErrors(_locate(e, sources) for e in err.errors)
    return _locate(err, sources)


def load(
    project_options: discovery.ProjectOptions,
    options: LoadOptions | None = None,
    warn: Callable[[str], None] | None = None,
) -> LoadedProject:
    """Load, validate and normalise a compose project. Raises :class:`ComposeError`."""
    from pycompose.compose import normalize, paths, profiles

    options = options or LoadOptions()
    found = discovery.discover(project_options, read_env_file)
    ctx = _Context(dict(found.environment), options, list(found.warnings), [])
    project_dir = found.project_directory

    # The name comes first: files may interpolate ${COMPOSE_PROJECT_NAME}.
    # Each document of each file is parsed once (stdin can only be read once anyway) and
    # handled like a separate -f file, as docker compose does with `---` documents.
    pre_sources = [
        (path, document)
        for path in found.files
        for document in yamlsrc.parse_yaml_documents(_read_text(path), _display_name(path))
    ]
    declared = _declared_name(
        [doc for _, doc in pre_sources], ctx.environment if options.interpolate else None
    )
    name = discovery.project_name(found, declared)
    ctx.environment.setdefault("COMPOSE_PROJECT_NAME", name)

    merged: dict[str, Any] = {}
    for path, pre in pre_sources:
        data = _load_file(path, project_dir, ctx, ctx.environment, parsed=pre)
        merged = merge.merge(merged, data, file=_display_name(path))
    merged = merge.strip_tags(merged)
    merged["name"] = name
    if len(pre_sources) > 1:
        # Files valid on their own can combine into an invalid whole (compose checks this too).
        from pycompose.compose import validate

        try:
            validate.validate(merged, file="", lines={})
        except ComposeError as err:
            raise _located(err, tuple(ctx.sources)) from None

    for message in ctx.warnings:
        if warn:
            warn(message)
    sources = tuple(ctx.sources)
    if not options.interpolate:
        return _model_only(found, ctx, merged, name, options)
    try:
        all_profiles = tuple(profiles.list_profiles(merged))
        merged = profiles.apply_profiles(
            merged, set(found.profiles), enabled_services=set(options.enabled_services)
        )
        if options.enabled_services:
            merged = profiles.select_services(merged, options.enabled_services)
        if options.resolve_paths:
            merged = paths.resolve_relative_paths(merged, project_dir)
        # Without normalisation compose still prints the canonical shapes, but not what it
        # infers, and the declared name as written.
        shown_name = name if options.normalize or not declared else str(declared)
        merged = normalize.normalize(
            merged,
            project_name=shown_name,
            project_dir=project_dir,
            environ=ctx.environment,
            defaults=options.normalize,
        )
        if options.consistency:
            checks.check_project(merged)
    except ComposeError as err:
        raise _located(err, sources) from None

    return LoadedProject(
        name=name,
        project_dir=project_dir,
        files=found.files,
        environment=ctx.environment,
        data=merged,
        sources=sources,
        profiles=found.profiles,
        all_profiles=all_profiles,
        warnings=tuple(ctx.warnings),
    )


def _model_only(
    found: discovery.Discovery,
    ctx: _Context,
    merged: dict[str, Any],
    name: str,
    options: LoadOptions,
) -> LoadedProject:
    """``--no-interpolate``: compose's model view, with neither profiles nor checks applied
    (values may still hold variables, so they are not converted or validated)."""
    from pycompose.compose import paths, profiles
    from pycompose.compose.normalize_model import model_view

    project_dir = found.project_directory
    if options.resolve_paths:
        merged = paths.resolve_relative_paths(merged, project_dir)
    data = model_view(merged, project_name=name, project_dir=project_dir)
    return LoadedProject(
        name=name,
        project_dir=project_dir,
        files=found.files,
        environment=ctx.environment,
        data=data,
        sources=tuple(ctx.sources),
        profiles=found.profiles,
        all_profiles=tuple(profiles.list_profiles(merged)),
        warnings=tuple(ctx.warnings),
    )


def located_path(error: ComposeError, path: Path) -> ComposeError:
    """Re-anchor an error at ``path`` (used by callers that check the model further)."""
    return ComposeError(error.message, file=error.file, line=error.line, path=path)
