"""Relative paths in a compose document, made absolute the way docker compose v2 does.

``resolve_relative_paths`` works on the raw dict of one file (short or long syntax, before
normalisation) and never mutates its input. It is idempotent, so the include and extends
stages may apply it to a file's content against that file's directory, and the normalise
stage may apply it again against the project directory.

What compose resolves: ``build`` (string form, ``context``, ``additional_contexts``) unless
remote; ``env_file``; ``label_file``; ``extends.file``; bind-mount sources in short syntax
(only sources starting with ``.``, ``/`` or ``~``: others are named volumes) and long syntax;
``develop.watch[].path``; top-level ``secrets``/``configs`` ``file``; top-level volumes with
``driver: local`` and ``driver_opts.o: bind`` (their ``device``); ``include`` entries.
``build.dockerfile`` stays as written: compose keeps it relative to the build context.
A leading ``~`` is the user's home directory (``~user`` is *not* another user's home:
compose joins the rest onto the home directory, and so do we).
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Callable
from typing import Any

from pycompose.compose.errors import ComposeError

REMOTE_PREFIXES = ("https://", "http://", "git://", "ssh://", "github.com/", "git@")
PROPAGATIONS = ("rprivate", "private", "rshared", "shared", "rslave", "slave")
SELINUX_LABELS = ("z", "Z")


def clean_path(path: str) -> str:
    """Go's ``path.Clean``: like ``posixpath.normpath`` but ``//a`` becomes ``/a``."""
    cleaned = posixpath.normpath(path)
    return cleaned[1:] if cleaned.startswith("//") else cleaned


def join_path(base: str, path: str) -> str:
    """Go's ``filepath.Join`` of two parts: join, then clean."""
    if not path:
        return clean_path(base) if base else ""
    if not base:
        return clean_path(path)
    return clean_path(f"{base}/{path}")


def is_windows_path(path: str) -> bool:
    r"""``C:\x``, ``C:/x`` or ``\\server\share``: absolute on Windows, left as written."""
    if path.startswith("\\\\"):
        return True
    return len(path) >= 2 and path[0].isalpha() and path[1] == ":"


def absolute_path(path: str, base_dir: str) -> str:
    """Make ``path`` absolute against ``base_dir``, expanding a leading ``~``."""
    if not path:
        return path
    if path.startswith("~"):
        return join_path(os.path.expanduser("~"), path[1:])
    if path.startswith("/") or is_windows_path(path):
        return path
    return join_path(base_dir, path)


def is_remote_context(context: str) -> bool:
    """A build context that is a URL or a git reference rather than a local folder."""
    return "://" in context or context.startswith(REMOTE_PREFIXES)


class VolumeSpecError(ComposeError):
    """A short-syntax volume (``src:dst:opts``) that cannot be parsed."""


def parse_volume_spec(spec: str) -> dict[str, Any]:
    """Parse short volume syntax into compose's long form (paths not yet resolved).

    ``./data:/data:ro`` -> ``{"type": "bind", "source": "./data", "target": "/data",
    "read_only": True, "bind": {"create_host_path": True}}``. A one-letter first section
    followed by ``:`` is a Windows drive (``C:\\x``), as in compose. Unknown options are
    ignored, as compose ignores them (``cached``, ``delegated``...).
    """
    if not spec:
        raise VolumeSpecError("invalid empty volume spec")
    if len(spec.encode()) <= 2:
        return {"type": "volume", "target": spec, "volume": {}}
    volume: dict[str, Any] = {}
    buffer = ""
    in_variable = False
    for char in spec:
        if char == ":" and len(buffer) == 1 and buffer.isalpha():
            buffer += char
        elif char in "{}":
            in_variable = char == "{"
            buffer += char
        elif char == ":" and not in_variable:
            _fill_volume_field(spec, buffer, volume, last=False)
            buffer = ""
        else:
            buffer += char
    _fill_volume_field(spec, buffer, volume, last=True)
    _set_volume_type(volume)
    return volume


def _fill_volume_field(spec: str, section: str, volume: dict[str, Any], *, last: bool) -> None:
    if not section:
        raise VolumeSpecError(f"invalid spec: {spec}: empty section between colons")
    if "source" not in volume and last:
        volume["target"] = section
    elif "source" not in volume:
        volume["source"] = section
    elif "target" not in volume:
        volume["target"] = section
    elif not last:
        raise VolumeSpecError(f"invalid spec: {spec}: too many colons")
    else:
        for option in section.split(","):
            _apply_volume_option(volume, option)


def _apply_volume_option(volume: dict[str, Any], option: str) -> None:
    if option in ("ro", "rw"):
        volume["read_only"] = option == "ro"
    elif option == "nocopy":
        volume["volume"] = {"nocopy": True}
    elif option in PROPAGATIONS:
        volume.setdefault("bind", {})["propagation"] = option
    elif option in SELINUX_LABELS:
        volume.setdefault("bind", {})["selinux"] = option


def _set_volume_type(volume: dict[str, Any]) -> None:
    if is_bind_source(volume.get("source", "")):
        volume["type"] = "bind"
        # Short syntax creates a missing host path, for docker-compose v1 compatibility.
        volume.setdefault("bind", {})["create_host_path"] = True
    else:
        volume["type"] = "volume"
        volume.setdefault("volume", {})
    if not volume.get("read_only"):
        volume.pop("read_only", None)


def is_bind_source(source: str) -> bool:
    """Whether a short-syntax source is a host path (else it names a volume)."""
    if not source:
        return False
    if source[0] in "./~" or source.startswith("\\\\"):
        return True
    return len(source) >= 2 and source[0].isalpha() and source[1] == ":"


def resolve_relative_paths(data: dict[str, Any], base_dir: str) -> dict[str, Any]:
    """Return a copy of one compose document with every relative path made absolute."""
    out = dict(data)
    base = clean_path(base_dir)
    services = data.get("services")
    if isinstance(services, dict):
        out["services"] = {
            name: _resolve_service(svc, base) if isinstance(svc, dict) else svc
            for name, svc in services.items()
        }
    for kind in ("secrets", "configs"):
        _map_entries(out, kind, lambda entry: _resolve_key(entry, "file", base))
    _map_entries(out, "volumes", lambda entry: _resolve_bind_volume(entry, base))
    if isinstance(data.get("include"), list):
        out["include"] = [_resolve_include(item, base) for item in data["include"]]
    return out


def _map_entries(out: dict[str, Any], kind: str, fix: Callable[[Any], Any]) -> None:
    entries = out.get(kind)
    if isinstance(entries, dict):
        out[kind] = {name: fix(entry) for name, entry in entries.items()}


def _resolve_key(entry: Any, key: str, base: str) -> Any:
    if not isinstance(entry, dict) or not isinstance(entry.get(key), str):
        return entry
    return {**entry, key: absolute_path(entry[key], base)}


def _resolve_bind_volume(entry: Any, base: str) -> Any:
    if not isinstance(entry, dict) or entry.get("driver") != "local":
        return entry
    opts = entry.get("driver_opts")
    if not isinstance(opts, dict) or opts.get("o") != "bind":
        return entry
    if not isinstance(opts.get("device"), str):
        return entry
    return {**entry, "driver_opts": {**opts, "device": absolute_path(opts["device"], base)}}


def _resolve_include(item: Any, base: str) -> Any:
    if isinstance(item, str):
        return absolute_path(item, base)
    if not isinstance(item, dict):
        return item
    out = dict(item)
    for key in ("path", "env_file"):
        value = item.get(key)
        if isinstance(value, str):
            out[key] = absolute_path(value, base)
        elif isinstance(value, list):
            out[key] = [absolute_path(v, base) if isinstance(v, str) else v for v in value]
    if isinstance(item.get("project_directory"), str):
        out["project_directory"] = absolute_path(item["project_directory"], base)
    return out


def _resolve_service(service: dict[str, Any], base: str) -> dict[str, Any]:
    out = dict(service)
    for key, fix in _SERVICE_FIXERS.items():
        if key in service and service[key] is not None:
            out[key] = fix(service[key], base)
    return out


def _resolve_context(context: Any, base: str) -> Any:
    if not isinstance(context, str) or is_remote_context(context):
        return context
    return absolute_path(context, base)


def _resolve_build(build: Any, base: str) -> Any:
    if isinstance(build, str):
        return _resolve_context(build, base)
    if not isinstance(build, dict):
        return build
    out = dict(build)
    if "context" in build:
        out["context"] = _resolve_context(build["context"], base)
    extra = build.get("additional_contexts")
    if isinstance(extra, dict):
        out["additional_contexts"] = {k: _resolve_extra_context(v, base) for k, v in extra.items()}
    elif isinstance(extra, list):
        out["additional_contexts"] = [_resolve_extra_context_item(v, base) for v in extra]
    return out


def _resolve_extra_context(value: Any, base: str) -> Any:
    if isinstance(value, str) and value.startswith("service:"):
        return value
    return _resolve_context(value, base)


def _resolve_extra_context_item(item: Any, base: str) -> Any:
    if not isinstance(item, str) or "=" not in item:
        return item
    key, value = item.split("=", 1)
    return f"{key}={_resolve_extra_context(value, base)}"


def _resolve_path_list(value: Any, base: str) -> Any:
    """``env_file``/``label_file``: a string, or a list of strings or ``{path: ...}``."""
    if isinstance(value, str):
        return absolute_path(value, base)
    if isinstance(value, list):
        return [_resolve_path_list(v, base) if isinstance(v, str) else _resolve_key(v, "path", base)
                for v in value]
    return value


def _resolve_volumes(volumes: Any, base: str) -> Any:
    if not isinstance(volumes, list):
        return volumes
    return [_resolve_volume(v, base) for v in volumes]


def _resolve_volume(volume: Any, base: str) -> Any:
    if isinstance(volume, dict):
        if volume.get("type") == "bind" and isinstance(volume.get("source"), str):
            return {**volume, "source": absolute_path(volume["source"], base)}
        return volume
    if not isinstance(volume, str):
        return volume
    try:
        parsed = parse_volume_spec(volume)
    except VolumeSpecError:
        return volume  # reported with its path by the normalise stage
    source = parsed.get("source", "")
    if parsed["type"] != "bind" or not source:
        return volume
    resolved = absolute_path(source, base)
    return volume.replace(source, resolved, 1)


def _resolve_develop(develop: Any, base: str) -> Any:
    if not isinstance(develop, dict) or not isinstance(develop.get("watch"), list):
        return develop
    watch = []
    for item in develop["watch"]:
        if isinstance(item, dict) and isinstance(item.get("path"), list):
            item = {**item, "path": [absolute_path(p, base) if isinstance(p, str) else p
                                     for p in item["path"]]}
        watch.append(_resolve_key(item, "path", base))
    return {**develop, "watch": watch}


_SERVICE_FIXERS: dict[str, Callable[[Any, str], Any]] = {
    "build": _resolve_build,
    "env_file": _resolve_path_list,
    "label_file": _resolve_path_list,
    "extends": lambda value, base: _resolve_key(value, "file", base),
    "volumes": _resolve_volumes,
    "develop": _resolve_develop,
}
