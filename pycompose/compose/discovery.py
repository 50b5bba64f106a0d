"""Finding a project: its compose files, its directory, its environment and its name.

This mirrors docker compose v2's rules so the same folder means the same project to both:

* files come from ``-f`` (repeatable, ``-`` for stdin), else ``COMPOSE_FILE`` (split on
  ``COMPOSE_PATH_SEPARATOR``), else the first of ``compose.yaml``, ``compose.yml``,
  ``docker-compose.yml``, ``docker-compose.yaml`` found in the working directory or one of
  its parents, together with the matching ``.override`` file beside it;
* the project directory is ``--project-directory``, else the first file's directory;
* the environment is the process environment over the env files (``--env-file``,
  ``COMPOSE_ENV_FILES``, else ``.env`` in the project directory);
* the name is ``-p``, else ``COMPOSE_PROJECT_NAME``, else the top-level ``name:``, else the
  project directory's base name, the last two normalised to ``[a-z0-9][a-z0-9_-]*``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from pycompose.compose.errors import ComposeError

DEFAULT_FILENAMES = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")
OVERRIDE_FILENAMES = (
    "compose.override.yml",
    "compose.override.yaml",
    "docker-compose.override.yml",
    "docker-compose.override.yaml",
)
STDIN = "-"

_VALID_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_INVALID_CHARS = re.compile(r"[^a-z0-9_-]")
_LEADING_JUNK = re.compile(r"^[^a-z0-9]+")


@dataclass(frozen=True)
class ProjectOptions:
    """What the user said on the command line (every field optional)."""

    files: tuple[str, ...] = ()
    project_directory: str | None = None
    project_name: str | None = None
    profiles: tuple[str, ...] = ()
    env_files: tuple[str, ...] = ()
    workdir: str | None = None
    environ: Mapping[str, str] | None = None


@dataclass(frozen=True)
class Discovery:
    """Where a project lives and the environment it is loaded with."""

    files: tuple[str, ...]
    project_directory: str
    environment: Mapping[str, str]
    profiles: tuple[str, ...]
    explicit_name: str | None
    warnings: tuple[str, ...] = field(default=())


ReadEnvFile = Callable[[str, Mapping[str, str]], dict[str, str]]


def normalize_project_name(name: str) -> str:
    """Lower-case, drop characters outside ``[a-z0-9_-]`` and any leading ``_``/``-``."""
    return _LEADING_JUNK.sub("", _INVALID_CHARS.sub("", name.lower()))


def check_project_name(name: str) -> str:
    """Names given explicitly (``-p``, ``COMPOSE_PROJECT_NAME``) must already be valid."""
    if not name:
        raise ComposeError("project name must not be empty")
    if not _VALID_NAME.match(name):
        raise ComposeError(
            f'invalid project name "{name}": must consist only of lowercase alphanumeric '
            "characters, hyphens, and underscores as well as start with a letter or number"
        )
    return name


def project_name(discovery: Discovery, declared: object) -> str:
    """The project name by docker compose's precedence; ``declared`` is the files' ``name:``."""
    if discovery.explicit_name:
        return check_project_name(discovery.explicit_name)
    if isinstance(declared, str) and declared:
        candidate = normalize_project_name(declared)
    else:
        base = os.path.basename(os.path.normpath(discovery.project_directory))
        candidate = normalize_project_name(base)
    if not candidate:
        raise ComposeError("project name must not be empty")
    return candidate


def find_default_files(start: str) -> tuple[list[str], list[str]]:
    """Search ``start`` and its parents for a compose file; return (files, warnings)."""
    directory = os.path.abspath(start)
    while True:
        found = [n for n in DEFAULT_FILENAMES if os.path.isfile(os.path.join(directory, n))]
        if found:
            warnings = []
            if len(found) > 1:
                names = ", ".join(os.path.join(directory, n) for n in found)
                warnings.append(f"Found multiple config files with supported names: {names}")
                warnings.append(f"Using {os.path.join(directory, found[0])}")
            files = [os.path.join(directory, found[0])]
            for name in OVERRIDE_FILENAMES:
                candidate = os.path.join(directory, name)
                if os.path.isfile(candidate):
                    files.append(candidate)
                    break
            return files, warnings
        parent = os.path.dirname(directory)
        if parent == directory:
            raise ComposeError(
                "no configuration file provided: not found "
                f"(looked for {', '.join(DEFAULT_FILENAMES)} in {os.path.abspath(start)} "
                "and its parents)"
            )
        directory = parent


def _abs(path: str, base: str) -> str:
    return path if path == STDIN else os.path.normpath(os.path.join(base, os.path.expanduser(path)))


def _read_env_files(
    paths: Sequence[str], environ: Mapping[str, str], read_env_file: ReadEnvFile, required: bool
) -> dict[str, str]:
    values: dict[str, str] = {}
    for path in paths:
        if not os.path.exists(path):
            if required:
                raise ComposeError(f"couldn't find env file: {path}")
            continue
        if os.path.isdir(path):
            raise ComposeError(f"env file {path} is a directory")
        values.update(read_env_file(path, {**values, **environ}))
    return values


def _process_environ() -> dict[str, str]:
    """The caller's environment, without what Python's start-up added to it.

    In the C locale Python coerces the locale and puts ``LC_CTYPE`` into its own
    environment (PEP 538); the caller never set it, so compose would not see it. The
    initial environment in ``/proc/self/environ`` tells the two apart.
    """
    environ = dict(os.environ)
    if "LC_CTYPE" in environ:
        try:
            with open("/proc/self/environ", "rb") as handle:
                initial = handle.read().split(b"\0")
        except OSError:
            return environ
        if not any(entry.startswith(b"LC_CTYPE=") for entry in initial):
            del environ["LC_CTYPE"]
    return environ


def discover(options: ProjectOptions, read_env_file: ReadEnvFile) -> Discovery:
    """Resolve files, project directory, environment and profiles from ``options``.

    ``read_env_file(path, lookup_env)`` parses one env file (the dotenv stage); it is passed
    in so that this module stays free of parsing.
    """
    cwd = os.path.abspath(options.workdir or os.getcwd())
    environ = dict(_process_environ() if options.environ is None else options.environ)
    # docker compose puts the working directory in PWD when the caller's shell did not.
    environ.setdefault("PWD", cwd)
    base = _abs(options.project_directory, cwd) if options.project_directory else cwd

    # First pass: env files from the working (or given project) directory may set COMPOSE_*.
    explicit_env = list(options.env_files)
    if not explicit_env and environ.get("COMPOSE_ENV_FILES"):
        explicit_env = [p for p in environ["COMPOSE_ENV_FILES"].split(",") if p]
    # Explicit env files are relative to the working directory, not the project directory.
    env_paths = [_abs(p, cwd) for p in explicit_env]
    pre_env = _read_env_files(
        env_paths or [os.path.join(base, ".env")], environ, read_env_file, required=bool(env_paths)
    )
    settings = {**pre_env, **environ}

    warnings: list[str] = []
    if options.files:
        files = [_abs(f, cwd) for f in options.files]
    elif settings.get("COMPOSE_FILE"):
        separator = settings.get("COMPOSE_PATH_SEPARATOR") or os.pathsep
        files = [_abs(f, base) for f in settings["COMPOSE_FILE"].split(separator) if f]
    else:
        files, warnings = find_default_files(base)
    if files.count(STDIN) > 1:
        raise ComposeError("standard input (-f -) can be read only once")
    for path in files:
        if path != STDIN and not os.path.exists(path):
            raise ComposeError(f"open {path}: no such file or directory")

    real_files = [f for f in files if f != STDIN]
    if options.project_directory:
        project_dir = base
    elif real_files:
        # The first file read from disk decides, even after ``-f -`` (as in compose).
        project_dir = os.path.dirname(real_files[0])
    else:
        project_dir = cwd

    if env_paths or project_dir == base:
        dotenv = pre_env
    else:
        dotenv = _read_env_files([os.path.join(project_dir, ".env")], environ, read_env_file, False)
    environment = {**dotenv, **environ}

    profiles: tuple[str, ...] = options.profiles
    if not profiles and environment.get("COMPOSE_PROFILES"):
        profiles = tuple(p.strip() for p in environment["COMPOSE_PROFILES"].split(",") if p.strip())

    name = options.project_name or environment.get("COMPOSE_PROJECT_NAME") or None
    return Discovery(
        files=tuple(files),
        project_directory=project_dir,
        environment=environment,
        profiles=profiles,
        explicit_name=name,
        warnings=tuple(warnings),
    )
